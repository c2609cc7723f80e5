//! `vmctl-testbed`: runs the simulated world as a process of its own, for `vmctld --dev`
//! and for tests that drive the real binaries.
//!
//! `vmctl-testbed droplets ...` starts a droplet farm, writes its manifest, prints
//! `ready <manifest>` and serves `DIR/control.sock` until SIGTERM, SIGINT or stdin closing
//! (so the farm dies with a parent that dies), then tears the farm down and exits 0.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use vmctl_testbed::droplets::control;
use vmctl_testbed::droplets::names::{numbered_names, parse_pools, pool_names};
use vmctl_testbed::{DropletFarm, Manifest};

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
    /// Keep running when stdin closes (for running by hand in the background).
    #[arg(long)]
    ignore_stdin: bool,
}

fn main() -> Result<()> {
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
    }
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
    let farm = DropletFarm::start(&args.dir, &names, &key).context("starting droplets")?;
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
