//! `vmctl-bench fanout`: how fast the fleet reaches N droplets and fans a call out to all.
//!
//! 1. Starts N testbed droplets (real sshd on loopback) and installs the agent with a first
//!    fleet, which is then dropped, so the measured fleet finds the agent in place.
//! 2. `cold_connect_s`: a fresh fleet, from nothing to every session Ready (hello answered).
//! 3. `round_*_ms`: R rounds of one `facts` call to every node at once, wall time per round.
//! 4. `rss_mb`: the process's peak resident memory (VmHWM), read after the rounds.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use tokio::sync::mpsc::UnboundedReceiver;
use vmctl_controller::fleet::{
    AgentBinary, Fleet, FleetConfig, FleetEvent, MemoryHostKeyStore, NodeTarget,
};
use vmctl_controller::retry::Backoff;
use vmctl_testbed::{generate_client_key, DropletFarm};

/// How long the whole fleet may take to get Ready before the bench gives up.
const READY_DEADLINE: Duration = Duration::from_secs(120);

/// Arguments of `fanout`.
#[derive(clap::Args)]
pub struct Args {
    /// Droplets to start.
    #[arg(long, default_value_t = 50)]
    nodes: usize,
    /// Rounds of one facts call to every node.
    #[arg(long, default_value_t = 20)]
    rounds: usize,
    /// The agent binary to install; defaults to `vmctl-agent` next to this executable.
    #[arg(long)]
    agent: Option<PathBuf>,
}

/// Runs the bench and returns its JSON line.
///
/// # Errors
/// A droplet failed to start, a session did not get Ready in time, or a call failed.
pub fn run(args: &Args) -> anyhow::Result<serde_json::Value> {
    ensure!(
        args.nodes > 0 && args.rounds > 0,
        "--nodes and --rounds must be positive"
    );
    let agent = match &args.agent {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("executable has no folder")?
            .join("vmctl-agent"),
    };
    let agent = AgentBinary::load(&agent).with_context(|| {
        format!(
            "agent binary {} (build it with -p vmctl-agent)",
            agent.display()
        )
    })?;

    let dir = tempfile::tempdir()?;
    let (key, public) = generate_client_key(&dir.path().join("client"))?;
    let names: Vec<String> = (0..args.nodes).map(|i| format!("bench-{i}")).collect();
    let started = Instant::now();
    let farm = DropletFarm::start(&dir.path().join("farm"), &names, &public)?;
    eprintln!(
        "fanout: {} droplets up in {:.2}s",
        args.nodes,
        started.elapsed().as_secs_f64()
    );
    let targets: Vec<NodeTarget> = farm
        .droplets()
        .iter()
        .map(|d| NodeTarget {
            name: d.name.clone(),
            address: d.address.to_string(),
            port: d.port,
            root: d.root.display().to_string(),
        })
        .collect();
    let config = FleetConfig {
        user: "root".into(),
        private_key: key,
        connect_timeout: Duration::from_secs(10),
        call_timeout: Duration::from_secs(10),
        keepalive: Duration::from_secs(15),
        reconnect: Backoff::try_new(Duration::from_millis(200), Duration::from_secs(5), 0.2)?,
        agent,
    };
    // Pins persist across the two fleets, as they do in vmctld's store.
    let store = Arc::new(MemoryHostKeyStore::default());

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(async {
        let started = Instant::now();
        let (installer, mut events) = Fleet::new(config.clone(), store.clone());
        ensure_all(&installer, &targets)?;
        let uploads = ready_all(&mut events, targets.len()).await?;
        installer.shutdown();
        drop(installer);
        eprintln!(
            "fanout: agent installed ({uploads} uploads) in {:.2}s",
            started.elapsed().as_secs_f64()
        );

        let started = Instant::now();
        let (fleet, mut events) = Fleet::new(config, store);
        ensure_all(&fleet, &targets)?;
        ready_all(&mut events, targets.len()).await?;
        let cold = started.elapsed();
        eprintln!(
            "fanout: cold connect to {} nodes in {:.3}s",
            targets.len(),
            cold.as_secs_f64()
        );

        let mut rounds = Vec::with_capacity(args.rounds);
        for round in 0..args.rounds {
            let started = Instant::now();
            let calls = targets.iter().map(|t| fleet.facts(&t.name));
            for (t, r) in targets.iter().zip(futures::future::join_all(calls).await) {
                r.with_context(|| format!("round {round}: facts on {}", t.name))?;
            }
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            eprintln!("fanout: round {round}: {ms:.2} ms");
            rounds.push(ms);
        }
        let rss_mb = peak_rss_mb()?;
        fleet.shutdown();
        rounds.sort_by(f64::total_cmp);
        anyhow::Ok(serde_json::json!({
            "nodes": targets.len(),
            "cold_connect_s": round3(cold.as_secs_f64()),
            "round_p50_ms": round3(percentile(&rounds, 50)),
            "round_p99_ms": round3(percentile(&rounds, 99)),
            "rss_mb": round3(rss_mb),
        }))
    })?;
    drop(farm);
    Ok(report)
}

fn ensure_all(fleet: &Fleet, targets: &[NodeTarget]) -> anyhow::Result<()> {
    for t in targets {
        fleet.ensure(t.clone())?;
    }
    Ok(())
}

/// Waits for `n` distinct Ready events; returns how many agents were uploaded on the way.
async fn ready_all(events: &mut UnboundedReceiver<FleetEvent>, n: usize) -> anyhow::Result<usize> {
    let mut ready = std::collections::HashSet::new();
    let mut uploads = 0;
    let wait = async {
        while ready.len() < n {
            match events.recv().await {
                Some(FleetEvent::Ready { node, .. }) => {
                    ready.insert(node);
                }
                Some(FleetEvent::AgentUploaded { .. }) => uploads += 1,
                Some(FleetEvent::Down { node, error }) => eprintln!("fanout: {node} down: {error}"),
                Some(_) => {}
                None => bail!("fleet event channel closed"),
            }
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(READY_DEADLINE, wait)
        .await
        .with_context(|| format!("not every node was Ready within {READY_DEADLINE:?}"))??;
    Ok(uploads)
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Peak resident memory of this process, from `VmHWM` in `/proc/self/status`.
fn peak_rss_mb() -> anyhow::Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .context("no VmHWM in /proc/self/status")?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 50), 10.0);
        assert_eq!(percentile(&v, 99), 20.0);
        assert_eq!(percentile(&[3.0], 50), 3.0);
    }
}
