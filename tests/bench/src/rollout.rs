//! `vmctl-bench rollout`: how much time a rollout adds beyond the waits it cannot avoid.
//!
//! Runs the real controller (in this process, through `daemon::start`) against the DigitalOcean
//! simulator with Mastodon stand-ins and the testbed's upstream, installs v4.3.0 (not timed),
//! then rolls the fleet to v4.3.1 and times it from the rollout's creation to its success.
//! `floor_s` is the sum of the waits configured in the stand-ins: every stub call sleeps
//! `--stub-delay`, so the slowest node's prepare, the two migrations and `min_healthy_time` per
//! batch. `overhead_s = total_s - floor_s`; the target is ≤ 5.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser as _;
use vmctl_controller::{
    apply,
    daemon::{self, Settings},
};
use vmctl_protocol::{
    api::{ClusterDocument, Named},
    cluster::{ClusterSpec, ReleaseSpec, SshSpec},
    node::NodeSpec,
    pool::{DropletTemplate, PoolRole, PoolSpec, SnapshotPolicy},
    release::ReleasePolicy,
    rollout::{RolloutPhase, RolloutSpec},
};
use vmctl_testbed::{
    cloud::{CloudConfig, Simulator},
    Upstream,
};

/// Arguments of `rollout`.
#[derive(clap::Args)]
pub struct Args {
    /// Droplets in the fleet (spread over web, sidekiq, streaming and one exec node).
    #[arg(long, default_value_t = 20)]
    nodes: u32,
    /// Nodes switched at once within a pool.
    #[arg(long, default_value_t = 2)]
    max_parallel: u32,
    /// How long each batch must stay healthy.
    #[arg(long, default_value = "1s", value_parser = vmctl_protocol::duration::parse)]
    min_healthy_time: Duration,
    /// Time every stub command (bundle, yarn, rails, ...) takes.
    #[arg(long, default_value = "100ms", value_parser = vmctl_protocol::duration::parse)]
    stub_delay: Duration,
}

/// Commands a web node's prepare runs through the stubs when Ruby and Node do not change:
/// `bundle config` ×2, `bundle install`, `yarn install`, `rails assets:precompile`.
const PREPARE_STUB_CALLS: u32 = 5;

/// Runs the bench and returns its JSON line.
///
/// # Errors
/// The world failed to start or a rollout did not finish in time.
pub fn run(args: &Args) -> anyhow::Result<serde_json::Value> {
    tokio::runtime::Runtime::new()?.block_on(run_async(args))
}

fn pools(args: &Args, root: &str, lb: &str) -> Vec<Named<PoolSpec>> {
    let n = args.nodes.max(4);
    let exec = 1;
    let streaming = (n / 10).max(1);
    let sidekiq = (n - exec - streaming) / 2;
    let web = n - exec - streaming - sidekiq;
    let pool = |name: &str, role, queues: &[&str], count, lb: Option<&str>| Named {
        name: name.into(),
        spec: PoolSpec {
            role,
            queues: queues.iter().map(ToString::to_string).collect(),
            droplets: Some(DropletTemplate {
                count,
                region: "nyc3".into(),
                size: "s-1vcpu-1gb".into(),
                image: "bench-base".into(),
                tags: vec![],
                vpc_uuid: None,
                ssh_keys: vec![],
                load_balancer: lb.map(str::to_string),
                startup_grace: Duration::from_secs(30),
                failure_grace: Duration::from_secs(60),
                root: root.into(),
                snapshot: SnapshotPolicy::default(),
            }),
        },
    };
    vec![
        pool(
            "sidekiq",
            PoolRole::Sidekiq,
            &["default", "ingress", "push", "pull", "mailers"],
            sidekiq,
            None,
        ),
        pool("exec", PoolRole::Exec, &["scheduler"], exec, None),
        pool("web", PoolRole::Web, &[], web, Some(lb)),
        pool("streaming", PoolRole::Streaming, &[], streaming, None),
    ]
}

async fn run_async(args: &Args) -> anyhow::Result<serde_json::Value> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().to_path_buf();
    let (key, pubkey) = {
        let d = dir.clone();
        tokio::task::spawn_blocking(move || vmctl_testbed::generate_client_key(&d)).await??
    };
    let exe = std::env::current_exe()?;
    let stubs = vmctl_testbed::stub_dir(&dir.join("stubs"), &exe.with_file_name("vmctl-testbed"))?;
    let mut config = CloudConfig::new(dir.join("cloud"), &pubkey, "bench-token");
    config.create_duration = Duration::from_millis(500);
    config.action_duration = Duration::from_millis(500);
    config.stub_dir = Some(stubs);
    let sim = Simulator::start(config, "127.0.0.1:0".parse()?)
        .await
        .context("starting the simulator")?;
    let seed = dir.join("seed/root");
    for sub in [
        "etc/vmctl-testbed",
        "home/mastodon",
        "var/lib/vmctl/bin",
        "run/vmctl/services",
    ] {
        std::fs::create_dir_all(seed.join(sub))?;
    }
    std::fs::write(
        seed.join("etc/vmctl-testbed/stub-delay-ms"),
        args.stub_delay.as_millis().to_string(),
    )?;
    let (s2, seed2) = (sim.clone(), seed.clone());
    tokio::task::spawn_blocking(move || s2.register_snapshot_from_dir("bench-base", &seed2))
        .await??;
    let lb = sim.create_load_balancer("bench-web", None);
    let token_file = dir.join("token");
    std::fs::write(&token_file, "bench-token")?;
    let upstream = Upstream::create(&dir.join("upstream"))?;
    let api = upstream.serve("127.0.0.1:0".parse()?)?;

    let settings = Settings::parse_from([
        "vmctld".into(),
        "--data".into(),
        dir.join("data").display().to_string(),
        "--agent-binary".into(),
        exe.with_file_name("vmctl-agent").display().to_string(),
        "--do-api-url".into(),
        sim.base_url(),
        "--do-token-file".into(),
        token_file.display().to_string(),
    ]);
    let controller = daemon::start(&settings, &dir.join("data")).await?;
    let store = controller.store.clone();
    let root = format!("{}/cloud/droplets/{{name}}/root", dir.display());
    let doc = |hold: &str| ClusterDocument {
        name: "bench".into(),
        cluster: ClusterSpec {
            ssh: SshSpec {
                user: "root".into(),
                private_key: key.display().to_string(),
            },
            probe_interval: Duration::from_secs(1),
            call_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            healing: Default::default(),
            release: Some(ReleaseSpec {
                repo_url: upstream.path().display().to_string(),
                github_api: api.base_url().to_string(),
                github_repo: "mastodon/mastodon".into(),
                update_check_url: None,
                check_interval: Duration::from_secs(1),
                policy: ReleasePolicy {
                    soak: Duration::ZERO,
                    hold: Some(hold.into()),
                    ..Default::default()
                },
                max_parallel: args.max_parallel,
                min_healthy_time: args.min_healthy_time,
                healthy_deadline: Duration::from_secs(30),
                progress_deadline: Duration::from_secs(300),
            }),
        },
        pools: pools(args, &root, &lb),
        nodes: vec![],
    };
    let install = doc("v4.3.0");
    apply::execute(
        &store,
        &install,
        &apply::plan(&install, &apply::StoredSpecs::load(&store)?),
    )?;
    eprintln!(
        "rollout: creating {} droplets and installing v4.3.0",
        args.nodes
    );
    wait(Duration::from_secs(300), "v4.3.0 installed", || {
        done(&store, "v4.3.0")
    })
    .await?;
    let nodes = store.list::<NodeSpec>()?.len();

    let upgrade = doc("v4.3.1");
    apply::execute(
        &store,
        &upgrade,
        &apply::plan(&upgrade, &apply::StoredSpecs::load(&store)?),
    )?;
    eprintln!("rollout: rolling {nodes} nodes to v4.3.1");
    let t0 = Instant::now();
    wait(Duration::from_secs(300), "v4.3.1 rolled out", || {
        done(&store, "v4.3.1")
    })
    .await?;
    let wall = t0.elapsed();
    let r = store
        .list::<RolloutSpec>()?
        .into_iter()
        .find(|r| r.spec.target == "v4.3.1")
        .context("the v4.3.1 rollout")?;
    let total = (r.status.phase_since.context("finish time")? - r.metadata.created_at)
        .num_milliseconds() as f64
        / 1000.0;
    if std::env::var_os("VMCTL_BENCH_TRACE").is_some() {
        eprintln!("{} created", r.metadata.created_at.format("%H:%M:%S%.3f"));
        for e in store
            .events(2000)?
            .into_iter()
            .rev()
            .filter(|e| e.kind == "rollout" && e.name == r.metadata.name)
        {
            eprintln!(
                "{} {} {}",
                e.time.format("%H:%M:%S%.3f"),
                e.reason,
                e.message
            );
        }
    }
    let batches = batch_count(args, &pools(args, &root, &lb));
    // Prepare (slowest node) + pre- and post-deploy migrations + one service start per batch,
    // each a stub call, plus the soak per batch.
    let floor = args.stub_delay.as_secs_f64() * f64::from(PREPARE_STUB_CALLS + 2 + batches)
        + args.min_healthy_time.as_secs_f64() * f64::from(batches);
    eprintln!(
        "rollout: {batches} batches; total {total:.3} s (wall {:.3} s), floor {floor:.3} s",
        wall.as_secs_f64()
    );
    controller.shutdown().await;
    sim.shutdown().await;
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    Ok(serde_json::json!({
        "total_s": round(total),
        "floor_s": round(floor),
        "overhead_s": round(total - floor),
    }))
}

fn batch_count(args: &Args, pools: &[Named<PoolSpec>]) -> u32 {
    pools
        .iter()
        .filter_map(|p| p.spec.droplets.as_ref())
        .map(|t| t.count.div_ceil(args.max_parallel.max(1)))
        .sum()
}

fn done(store: &vmctl_state::Store, target: &str) -> bool {
    store.list::<RolloutSpec>().is_ok_and(|rs| {
        rs.iter().any(|r| {
            assert!(
                !(r.spec.target == target && r.status.phase == RolloutPhase::Reverted),
                "the {target} rollout failed: {:?}",
                r.status.last_error
            );
            r.spec.target == target && r.status.phase == RolloutPhase::Done
        })
    })
}

async fn wait(limit: Duration, what: &str, mut ok: impl FnMut() -> bool) -> anyhow::Result<()> {
    let until = Instant::now() + limit;
    while !ok() {
        anyhow::ensure!(
            Instant::now() < until,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
