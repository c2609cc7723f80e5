//! `vmctl-testbed`: runs the simulated world as a process of its own, for `vmctld --dev`
//! and for tests that drive the real binaries.
//!
//! `vmctl-testbed droplets ...` starts a droplet farm, writes its manifest, prints
//! `ready <manifest>` and serves `DIR/control.sock` until SIGTERM, SIGINT or stdin closing
//! (so the farm dies with a parent that dies), then tears the farm down and exits 0.
//! `vmctl-testbed cloud ...` does the same for the DigitalOcean simulator (`--stubs` puts the
//! Mastodon stubs on droplets' PATH, `--upstream DIR` serves an upstream repository and its
//! GitHub API too), and `vmctl-testbed publish` adds a release to a running world.
//!
//! Run through a symlink named `bundle`, `yarn`, `rails`, `tootctl`, `rbenv`, `nodenv` or
//! `node`, the binary is that stub instead (see `vmctl_testbed::standin`).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use vmctl_testbed::cloud::{CloudConfig, Simulator};
use vmctl_testbed::droplets::control;
use vmctl_testbed::droplets::names::{numbered_names, parse_pools, pool_names};
use vmctl_testbed::{DropletFarm, FarmOptions, Manifest, Upstream};

#[derive(Parser)]
#[command(
    name = "vmctl-testbed",
    about = "The simulated world vmctl is tested in"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start simulated droplets (real sshd on loopback addresses) and keep them up.
    Droplets(DropletsArgs),
    /// Run the DigitalOcean API simulator (droplets it creates are real testbed droplets).
    Cloud(CloudArgs),
    /// Add a release (a new tag with its GitHub metadata) to an upstream repository, e.g.
    /// the one a running `cloud --upstream` world serves.
    Publish(PublishArgs),
    /// Act on a droplet of a running `droplets` farm through its control socket, e.g. to
    /// watch vmctld notice a dead droplet in dev mode.
    Ctl(CtlArgs),
}

#[derive(Args)]
struct CtlArgs {
    /// The farm's folder (the `--dir` it was started with); its control.sock is used.
    #[arg(long)]
    dir: PathBuf,
    /// What to do.
    #[arg(value_enum)]
    op: CtlOp,
    /// The droplet's name, e.g. web-1.
    name: String,
}

#[derive(Args)]
struct PublishArgs {
    /// The upstream folder (`cloud --upstream DIR`), or a cloud folder whose world.json
    /// names one.
    #[arg(long)]
    dir: PathBuf,
    /// The tag, e.g. v4.4.2.
    tag: String,
    /// A security release: urgent in update-check, with a `### Security` section.
    #[arg(long)]
    security: bool,
    /// Its web stand-in answers /health with 503.
    #[arg(long)]
    broken: bool,
    /// Changelog text for the release notes.
    #[arg(long, default_value = "### Fixed\n\n- Fix various bugs")]
    notes: String,
}

#[derive(Args)]
struct CloudArgs {
    /// Address to serve the API on, e.g. 127.0.0.1:0 (loopback only).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// Folder for droplets (droplets/), snapshots (snapshots/) and the token file.
    #[arg(long)]
    dir: PathBuf,
    /// The OpenSSH public key (one line) every droplet authorises for root.
    #[arg(long)]
    authorized_key_file: PathBuf,
    /// The API token to require; a random one when absent. Written to DIR/token (0600).
    #[arg(long, env = "VMCTL_TESTBED_CLOUD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// How long a new droplet takes to become active.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    create_duration: std::time::Duration,
    /// How long an action (snapshot, power_cycle, ...) takes.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    action_duration: std::time::Duration,
    /// Requests allowed per rolling minute.
    #[arg(long, default_value_t = 250)]
    rate_limit_per_minute: u32,
    /// Requests allowed per rolling hour.
    #[arg(long, default_value_t = 5000)]
    rate_limit_per_hour: u32,
    /// Region slug droplets land in by default.
    #[arg(long, default_value = "nyc3")]
    region: String,
    /// Seed a snapshot image with this name (a fresh droplet root), so pools can create
    /// droplets from it. Repeatable.
    #[arg(long = "image", value_name = "NAME")]
    images: Vec<String>,
    /// Create a load balancer with this name. Repeatable.
    #[arg(long = "load-balancer", value_name = "NAME")]
    load_balancers: Vec<String>,
    /// Put the Mastodon stubs (links to this binary, in DIR/stubs) first on every droplet
    /// session's PATH, with VMCTL_TESTBED_ADDRESS and VMCTL_PROBE_HOST set.
    #[arg(long)]
    stubs: bool,
    /// Create (or reopen) the upstream repository in this folder, serve its GitHub API and
    /// name both in world.json as `upstream`.
    #[arg(long, value_name = "DIR")]
    upstream: Option<PathBuf>,
    /// Keep running when stdin closes (for running by hand in the background).
    #[arg(long)]
    ignore_stdin: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum CtlOp {
    /// Kill the droplet's sshd and every process under it.
    KillSshd,
    /// Start its sshd again, same address and host key.
    StartSshd,
    /// Give it a new host key and restart its sshd.
    RotateHostKey,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("size").required(true).args(["count", "pools"])))]
struct DropletsArgs {
    /// Folder for the droplets' folders and control.sock.
    #[arg(long)]
    dir: PathBuf,
    /// The OpenSSH public key (one line) every droplet authorises for root.
    #[arg(long)]
    authorized_key_file: PathBuf,
    /// How many droplets, named <prefix>-1...
    #[arg(long)]
    count: Option<usize>,
    /// Name prefix for --count.
    #[arg(long, default_value = "node", requires = "count")]
    prefix: String,
    /// Droplets per pool, e.g. web=2,streaming=1,sidekiq=2,exec=1; named <pool>-1...
    #[arg(long)]
    pools: Option<String>,
    /// Where to write the manifest (JSON).
    #[arg(long)]
    manifest: PathBuf,
    /// Put the Mastodon stubs (links to this binary, in DIR/stubs) first on every droplet
    /// session's PATH, with VMCTL_TESTBED_ADDRESS and VMCTL_PROBE_HOST set.
    #[arg(long)]
    stubs: bool,
    /// Keep running when stdin closes (for running by hand in the background).
    #[arg(long)]
    ignore_stdin: bool,
}

fn main() -> Result<()> {
    // Before anything else: a stub must not log or parse arguments as the testbed would.
    if let Some(code) = vmctl_testbed::standin::run_as_stub() {
        std::process::exit(code);
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match Cli::parse().command {
        Command::Droplets(args) => run_droplets(&args),
        Command::Ctl(args) => run_ctl(&args),
        Command::Cloud(args) => run_cloud(args),
        Command::Publish(args) => run_publish(&args),
    }
}

/// The stub folder `DIR/stubs`, linking to this very binary.
fn own_stub_dir(dir: &Path) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("finding this binary")?;
    vmctl_testbed::stub_dir(&dir.join("stubs"), &exe).context("creating the stub folder")
}

fn run_publish(args: &PublishArgs) -> Result<()> {
    let dir = upstream_dir_of(&args.dir)?;
    let upstream = Upstream::open(&dir)?;
    let notes = args.notes.replace("\\n", "\n");
    let commit = upstream
        .publish(&args.tag, &notes, args.security, !args.broken)
        .with_context(|| format!("publishing {}", args.tag))?;
    println!("{} {commit}", args.tag);
    Ok(())
}

/// `dir` itself, or the upstream folder named in `dir/world.json`.
fn upstream_dir_of(dir: &Path) -> Result<PathBuf> {
    let world_path = dir.join("world.json");
    if !world_path.is_file() {
        return Ok(dir.to_path_buf());
    }
    let world: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&world_path).with_context(|| format!("reading {}", world_path.display()))?,
    )
    .with_context(|| format!("parsing {}", world_path.display()))?;
    let named = world["upstream"]["dir"].as_str().with_context(|| {
        format!(
            "{} has no upstream (start the world with --upstream)",
            world_path.display()
        )
    })?;
    Ok(PathBuf::from(named))
}

fn run_ctl(args: &CtlArgs) -> Result<()> {
    let op = match args.op {
        CtlOp::KillSshd => control::ControlOp::KillSshd,
        CtlOp::StartSshd => control::ControlOp::StartSshd,
        CtlOp::RotateHostKey => control::ControlOp::RotateHostKey,
    };
    let socket = args.dir.join("control.sock");
    let request = control::ControlRequest {
        op,
        name: args.name.clone(),
    };
    let response = control::request(&socket, &request)
        .with_context(|| format!("is a farm running in {}?", args.dir.display()))?;
    match response.error {
        None if response.ok => Ok(()),
        error => anyhow::bail!(
            "{}",
            error.unwrap_or_else(|| "the farm refused the request".into())
        ),
    }
}

/// Why the process is stopping.
enum Stop {
    Signal(i32),
    StdinClosed,
}

fn run_droplets(args: &DropletsArgs) -> Result<()> {
    let planned = match (&args.pools, args.count) {
        (Some(pools), _) => pool_names(&parse_pools(pools).context("reading --pools")?),
        (None, Some(count)) => numbered_names(&args.prefix, count),
        (None, None) => unreachable!("clap requires --count or --pools"),
    };
    let key = std::fs::read_to_string(&args.authorized_key_file)
        .with_context(|| format!("reading {}", args.authorized_key_file.display()))?;
    // Signals are caught before anything starts, so none can kill us mid-start and
    // leave sshds behind.
    let (stop_tx, stop_rx) = mpsc::channel();
    watch_signals(stop_tx.clone())?;
    if !args.ignore_stdin {
        watch_stdin(stop_tx);
    }

    let names: Vec<String> = planned.iter().map(|(name, _)| name.clone()).collect();
    let pools: HashMap<String, Option<String>> = planned.into_iter().collect();
    let pool_of = move |name: &str| pools.get(name).cloned().flatten();
    let options = FarmOptions {
        stub_dir: if args.stubs {
            Some(own_stub_dir(&args.dir)?)
        } else {
            None
        },
    };
    let farm =
        DropletFarm::start_with(&args.dir, &names, &key, options).context("starting droplets")?;
    Manifest::from_farm(&farm, &pool_of)
        .write_atomic(&args.manifest)
        .context("writing the manifest")?;
    let socket_path = farm.dir().join("control.sock");
    let listener = bind_control_socket(&socket_path)?;
    let farm = Arc::new(Mutex::new(farm));
    {
        let farm = Arc::clone(&farm);
        let manifest = args.manifest.clone();
        std::thread::spawn(move || {
            control::serve(&listener, &farm, |farm| {
                // A rotated key must reach the manifest's readers.
                if let Err(error) = Manifest::from_farm(farm, &pool_of).write_atomic(&manifest) {
                    tracing::warn!(%error, "Rewriting the manifest failed.");
                }
            });
        });
    }

    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "ready {}", args.manifest.display()).context("writing to stdout")?;
    stdout.flush().context("writing to stdout")?;

    let reason = stop_rx.recv().unwrap_or(Stop::StdinClosed);
    match reason {
        Stop::Signal(signal) => tracing::info!(signal, "Stopping on signal."),
        Stop::StdinClosed => tracing::info!("Stopping: stdin closed."),
    }
    farm.lock().unwrap_or_else(|p| p.into_inner()).teardown();
    let _ = std::fs::remove_file(&socket_path);
    Ok(())
}

fn run_cloud(args: CloudArgs) -> Result<()> {
    anyhow::ensure!(
        args.listen.ip().is_loopback(),
        "--listen {} is not a loopback address",
        args.listen
    );
    let key = std::fs::read_to_string(&args.authorized_key_file)
        .with_context(|| format!("reading {}", args.authorized_key_file.display()))?;
    let (stop_tx, stop_rx) = mpsc::channel();
    watch_signals(stop_tx.clone())?;
    if !args.ignore_stdin {
        watch_stdin(stop_tx);
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let token = args.token.unwrap_or_else(random_token);
    let token_path = args.dir.join("token");
    write_secret(&token_path, &token)?;
    let config = CloudConfig {
        dir: args.dir.clone(),
        authorized_key: key.trim().to_owned(),
        token,
        create_duration: args.create_duration,
        action_duration: args.action_duration,
        rate_limit_per_minute: args.rate_limit_per_minute,
        rate_limit_per_hour: args.rate_limit_per_hour,
        region: args.region,
        stub_dir: if args.stubs {
            Some(own_stub_dir(&args.dir)?)
        } else {
            None
        },
    };
    let simulator =
        Simulator::start_blocking(config, args.listen).context("starting the cloud simulator")?;
    let mut world = serde_json::json!({
        "base_url": simulator.base_url(),
        "token_file": token_path,
        "images": {},
        "load_balancers": {},
    });
    for name in &args.images {
        let root = args.dir.join("seed").join(name).join("root");
        vmctl_testbed::droplets::root::create(&root, name)
            .with_context(|| format!("creating the seed image root {}", root.display()))?;
        let id = simulator
            .register_snapshot_from_dir(name, &root)
            .with_context(|| format!("registering image {name}"))?;
        world["images"][name] = id.into();
    }
    for name in &args.load_balancers {
        let id = simulator.create_load_balancer(name, None);
        world["load_balancers"][name] = id.into();
    }
    // Kept alive until we stop: dropping it stops the API.
    let mut _upstream_server = None;
    if let Some(dir) = &args.upstream {
        let upstream = Upstream::open_or_create(dir).context("creating the upstream repository")?;
        let listen = std::net::SocketAddr::new(args.listen.ip(), 0);
        let server = upstream.serve(listen).context("serving the upstream API")?;
        world["upstream"] = serde_json::json!({
            "dir": upstream.dir(),
            "repo": upstream.path(),
            "api": server.base_url(),
        });
        _upstream_server = Some(server);
    }
    let world_path = args.dir.join("world.json");
    std::fs::write(&world_path, serde_json::to_vec_pretty(&world)?)
        .with_context(|| format!("writing {}", world_path.display()))?;

    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "ready {} {}",
        simulator.base_url(),
        token_path.display()
    )
    .context("writing to stdout")?;
    stdout.flush().context("writing to stdout")?;

    match stop_rx.recv().unwrap_or(Stop::StdinClosed) {
        Stop::Signal(signal) => tracing::info!(signal, "Stopping on signal."),
        Stop::StdinClosed => tracing::info!("Stopping: stdin closed."),
    }
    drop(simulator);
    Ok(())
}

/// 32 random bytes as hex.
fn random_token() -> String {
    use rand::Rng;
    let bytes: [u8; 32] = rand::thread_rng().gen();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes a file only its owner can read, creating it with that mode.
fn write_secret(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

fn watch_signals(stop: mpsc::Sender<Stop>) -> Result<()> {
    let mut signals = Signals::new([SIGTERM, SIGINT]).context("installing signal handlers")?;
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            let _ = stop.send(Stop::Signal(signal));
        }
    });
    Ok(())
}

fn watch_stdin(stop: mpsc::Sender<Stop>) {
    std::thread::spawn(move || {
        let mut sink = [0u8; 256];
        let mut stdin = std::io::stdin().lock();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        let _ = stop.send(Stop::StdinClosed);
    });
}

/// Binds the control socket, replacing a stale one left by a killed run.
fn bind_control_socket(path: &Path) -> Result<UnixListener> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing stale {}", path.display())),
    }
    UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))
}
