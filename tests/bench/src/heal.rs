//! `vmctl-bench heal`: how fast one dead droplet is noticed and replaced.
//!
//! Runs the real controller (in this process, through `daemon::start`, as `vmctld` does)
//! against the in-process DigitalOcean simulator with short simulated action times, converges a
//! pool, hangs one droplet (its processes die, the API still says active) and measures:
//! - `detect_s`: hang → the pool declares it failed and starts a replacement;
//! - `replace_s`: that → the replacement is done (new droplet in the balancer, old deleted);
//! - `total_s`, and `api_calls`: DigitalOcean requests from the hang to the end.
//!
//! Targets: `detect_s` ≤ failure_grace + probe interval + 1 s; `replace_s` ≤ the simulated
//! create time + 3 s.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use clap::Parser as _;
use vmctl_controller::{
    apply,
    daemon::{self, Settings},
};
use vmctl_protocol::{
    api::{ClusterDocument, Named},
    cluster::{ClusterSpec, SshSpec},
    node::NodeSpec,
    pool::{DropletTemplate, PoolRole, PoolSpec, SnapshotPolicy},
};
use vmctl_testbed::cloud::{CloudConfig, Simulator};

/// Arguments of `heal`.
#[derive(clap::Args)]
pub struct Args {
    /// Droplets in the pool.
    #[arg(long, default_value_t = 10)]
    nodes: u32,
    /// Simulated droplet create time.
    #[arg(long, default_value = "1s", value_parser = vmctl_protocol::duration::parse)]
    create_time: Duration,
    /// The pool's failure grace.
    #[arg(long, default_value = "2s", value_parser = vmctl_protocol::duration::parse)]
    failure_grace: Duration,
    /// The cluster's probe interval.
    #[arg(long, default_value = "1s", value_parser = vmctl_protocol::duration::parse)]
    probe_interval: Duration,
    /// The agent binary to install; defaults to `vmctl-agent` next to this executable.
    #[arg(long)]
    agent: Option<PathBuf>,
}

/// Runs the bench and returns its JSON line.
///
/// # Errors
/// The world failed to start or converge, or the replacement did not finish in time.
pub fn run(args: &Args) -> anyhow::Result<serde_json::Value> {
    tokio::runtime::Runtime::new()?.block_on(run_async(args))
}

async fn run_async(args: &Args) -> anyhow::Result<serde_json::Value> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().to_path_buf();
    let (key, pubkey) = {
        let d = dir.clone();
        tokio::task::spawn_blocking(move || vmctl_testbed::generate_client_key(&d)).await??
    };
    let mut config = CloudConfig::new(dir.join("cloud"), &pubkey, "bench-token");
    config.create_duration = args.create_time;
    config.action_duration = Duration::from_millis(500);
    let sim = Simulator::start(config, "127.0.0.1:0".parse()?)
        .await
        .context("starting the simulator")?;
    let seed = dir.join("seed/root");
    for sub in [
        "etc",
        "home/mastodon",
        "var/lib/vmctl/bin",
        "run/vmctl/services",
    ] {
        std::fs::create_dir_all(seed.join(sub))?;
    }
    let (s2, seed2) = (sim.clone(), seed.clone());
    tokio::task::spawn_blocking(move || s2.register_snapshot_from_dir("bench-base", &seed2))
        .await??;
    let lb = sim.create_load_balancer("bench-web", None);
    let token_file = dir.join("token");
    std::fs::write(&token_file, "bench-token")?;

    let agent = match &args.agent {
        Some(a) => a.clone(),
        None => std::env::current_exe()?.with_file_name("vmctl-agent"),
    };
    let settings = Settings::parse_from([
        "vmctld".into(),
        "--data".into(),
        dir.join("data").display().to_string(),
        "--agent-binary".into(),
        agent.display().to_string(),
        "--do-api-url".into(),
        sim.base_url(),
        "--do-token-file".into(),
        token_file.display().to_string(),
    ]);
    let controller = daemon::start(&settings, &dir.join("data")).await?;
    let doc = ClusterDocument {
        name: "bench".into(),
        cluster: ClusterSpec {
            release: None,
            ssh: SshSpec {
                user: "root".into(),
                private_key: key.display().to_string(),
            },
            probe_interval: args.probe_interval,
            call_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(3),
            healing: Default::default(),
        },
        pools: vec![Named {
            name: "web".into(),
            spec: PoolSpec {
                role: PoolRole::Web,
                queues: vec![],
                droplets: Some(DropletTemplate {
                    count: args.nodes,
                    region: "nyc3".into(),
                    size: "s-1vcpu-1gb".into(),
                    image: "bench-base".into(),
                    tags: vec![],
                    vpc_uuid: None,
                    ssh_keys: vec![],
                    load_balancer: Some(lb.clone()),
                    startup_grace: Duration::from_secs(1),
                    failure_grace: args.failure_grace,
                    root: format!("{}/cloud/droplets/{{name}}/root", dir.display()),
                    snapshot: SnapshotPolicy::default(),
                }),
            },
        }],
        nodes: vec![],
    };
    let store = controller.store.clone();
    apply::execute(
        &store,
        &doc,
        &apply::plan(&doc, &apply::StoredSpecs::load(&store)?),
    )?;
    eprintln!("heal: converging a pool of {} droplets", args.nodes);
    let reachable = |store: &vmctl_state::Store| {
        store
            .list::<NodeSpec>()
            .map(|ns| ns.iter().filter(|n| n.status.reachable).count())
            .unwrap_or(0)
    };
    wait(Duration::from_secs(120), "the pool to converge", || {
        reachable(&store) == args.nodes as usize
            && sim.load_balancer_members(&lb).len() == args.nodes as usize
    })
    .await?;
    // Let the auto-snapshot and first-round requests settle so api_calls counts the heal alone.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let victim = sim.droplets().first().map(|d| d.id).context("no droplet")?;
    let calls_before = sim.request_log().len();
    let seq_before = store.events(1)?.first().map_or(0, |e| e.seq);
    let s2 = sim.clone();
    let t0 = Instant::now();
    tokio::task::spawn_blocking(move || s2.hang_droplet(victim)).await??;
    eprintln!("heal: droplet {victim} hung");
    let event_at = |reason: &str| -> Option<chrono::DateTime<chrono::Utc>> {
        store
            .events_after(seq_before, 10_000)
            .ok()?
            .into_iter()
            .find(|e| e.reason == reason)
            .map(|e| e.time)
    };
    let hung_at = chrono::Utc::now() - chrono::Duration::from_std(t0.elapsed())?;
    wait(Duration::from_secs(60), "the replacement to start", || {
        event_at("ReplacementStarted").is_some()
    })
    .await?;
    wait(Duration::from_secs(60), "the replacement to finish", || {
        event_at("ReplacementSucceeded").is_some()
    })
    .await?;
    let total = t0.elapsed();
    let started = event_at("ReplacementStarted").context("start event")?;
    let done = event_at("ReplacementSucceeded").context("done event")?;
    let api_calls = sim.request_log().len() - calls_before;
    let secs =
        |d: chrono::Duration| (d.num_milliseconds() as f64 / 1000.0 * 1000.0).round() / 1000.0;
    let detect = secs(started - hung_at);
    let replace = secs(done - started);
    eprintln!(
        "heal: detect {detect} s (target ≤ {} s), replace {replace} s (target ≤ {} s)",
        (args.failure_grace + args.probe_interval + Duration::from_secs(1)).as_secs_f64(),
        (args.create_time + Duration::from_secs(3)).as_secs_f64()
    );
    controller.shutdown().await;
    sim.shutdown().await;
    Ok(serde_json::json!({
        "detect_s": detect,
        "replace_s": replace,
        "total_s": (total.as_secs_f64() * 1000.0).round() / 1000.0,
        "api_calls": api_calls,
    }))
}

async fn wait(limit: Duration, what: &str, mut done: impl FnMut() -> bool) -> anyhow::Result<()> {
    let until = Instant::now() + limit;
    while !done() {
        anyhow::ensure!(
            Instant::now() < until,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
