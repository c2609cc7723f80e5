//! Dev mode: start the simulated world (`vmctl-testbed cloud`: a DigitalOcean API simulator
//! whose droplets are real sshd processes) as a child process, point the controller at it with
//! the same settings a real fleet uses, and tear it down on exit.
//!
//! The controller crate never links the testbed; it talks to the testbed binary through its
//! command line and the `world.json` it writes, exactly as an operator's tooling could.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::Context as _;
use serde::Deserialize;
use vmctl_protocol::{
    api::{ClusterDocument, Named},
    cluster::{ClusterSpec, SshSpec, DEFAULT_CALL_TIMEOUT, DEFAULT_CONNECT_TIMEOUT},
    pool::{DropletTemplate, PoolRole, PoolSpec, SnapshotPolicy},
};
use vmctl_state::Store;

/// Dev mode probes faster than production so a newcomer sees changes at once.
const DEV_PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// Short graces so a killed droplet is replaced within seconds in the demo.
const DEV_STARTUP_GRACE: Duration = Duration::from_secs(20);
const DEV_FAILURE_GRACE: Duration = Duration::from_secs(8);
/// How long the testbed may take to start.
const TESTBED_START_DEADLINE: Duration = Duration::from_secs(90);
/// Sidekiq queues of the reference deployment's worker pool.
const WORKER_QUEUES: [&str; 5] = ["default", "ingress", "push", "pull", "mailers"];
/// The seed image every dev pool starts from.
const DEV_IMAGE: &str = "dev-base";
/// The web pool's load balancer.
const DEV_LB: &str = "dev-web";

/// The running simulated world.
pub struct DevWorld {
    child: Child,
    /// The simulator's API base URL.
    pub api_url: String,
    /// The file holding the simulator's token (mode 0600).
    pub token_file: PathBuf,
    /// The cluster document to apply.
    pub document: ClusterDocument,
    /// The simulated upstream's folder (for `vmctl-testbed publish --dir`).
    pub upstream_dir: Option<PathBuf>,
}

#[derive(Deserialize)]
struct World {
    base_url: String,
    token_file: PathBuf,
    #[serde(default)]
    load_balancers: BTreeMap<String, String>,
    upstream: Option<WorldUpstream>,
}

#[derive(Deserialize)]
struct WorldUpstream {
    dir: PathBuf,
    repo: PathBuf,
    api: String,
}

/// Parses `web=2,streaming=1` into (pool, count) pairs.
///
/// # Errors
/// A message naming the bad pair.
pub fn parse_pools(spec: &str) -> anyhow::Result<Vec<(String, u32)>> {
    spec.split(',')
        .map(|pair| {
            let (name, count) = pair
                .split_once('=')
                .with_context(|| format!("--dev-pools: {pair:?} is not pool=count"))?;
            let count: u32 = count.parse().with_context(|| format!("--dev-pools: {count:?} is not a count"))?;
            role_of(name).with_context(|| format!("--dev-pools: unknown pool {name:?} (web, streaming, sidekiq, exec, proxy, search)"))?;
            Ok((name.to_string(), count))
        })
        .collect()
}

fn role_of(pool: &str) -> Option<PoolRole> {
    Some(match pool {
        "web" => PoolRole::Web,
        "streaming" => PoolRole::Streaming,
        "sidekiq" => PoolRole::Sidekiq,
        "exec" => PoolRole::Exec,
        "proxy" => PoolRole::Proxy,
        "search" => PoolRole::Search,
        _ => return None,
    })
}

/// Dev mode's release settings: the simulated upstream, a fast pace, no soak, and v4.4.1 (the
/// fixture whose web stand-in fails /health) skipped so the first install works; publish a tag
/// to watch the fleet follow it.
fn dev_release(repo: &Path, api: &str) -> vmctl_protocol::cluster::ReleaseSpec {
    let mut policy = vmctl_protocol::release::ReleasePolicy {
        soak: Duration::ZERO,
        ..Default::default()
    };
    policy.skip.push("v4.4.1".into());
    vmctl_protocol::cluster::ReleaseSpec {
        repo_url: repo.display().to_string(),
        github_api: api.to_string(),
        github_repo: "mastodon/mastodon".into(),
        update_check_url: None,
        check_interval: Duration::from_secs(5),
        policy,
        max_parallel: 1,
        min_healthy_time: Duration::from_secs(2),
        healthy_deadline: Duration::from_secs(30),
        progress_deadline: Duration::from_secs(300),
    }
}

/// Builds the dev cluster document: every pool managed, created from the seed image. Pure.
fn document(
    pools: &[(String, u32)],
    private_key: &Path,
    cloud_dir: &Path,
    lb: Option<&str>,
) -> ClusterDocument {
    let pools = pools
        .iter()
        .map(|(name, count)| {
            let role = role_of(name).unwrap_or(PoolRole::Web);
            let queues = match role {
                PoolRole::Sidekiq => WORKER_QUEUES.iter().map(ToString::to_string).collect(),
                PoolRole::Exec => vec!["scheduler".to_string()],
                _ => Vec::new(),
            };
            let droplets = DropletTemplate {
                count: *count,
                region: "nyc3".into(),
                size: "s-2vcpu-4gb".into(),
                image: DEV_IMAGE.into(),
                tags: vec![],
                vpc_uuid: None,
                ssh_keys: vec![],
                load_balancer: if role == PoolRole::Web {
                    lb.map(str::to_string)
                } else {
                    None
                },
                startup_grace: DEV_STARTUP_GRACE,
                failure_grace: DEV_FAILURE_GRACE,
                root: cloud_dir
                    .join("droplets")
                    .join("{name}")
                    .join("root")
                    .display()
                    .to_string(),
                snapshot: SnapshotPolicy::default(),
            };
            Named {
                name: name.clone(),
                spec: PoolSpec {
                    role,
                    queues,
                    droplets: Some(droplets),
                },
            }
        })
        .collect();
    ClusterDocument {
        name: "dev".into(),
        cluster: ClusterSpec {
            ssh: SshSpec {
                user: "root".into(),
                private_key: private_key.display().to_string(),
            },
            probe_interval: DEV_PROBE_INTERVAL,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            healing: Default::default(),
            release: None,
        },
        pools,
        nodes: Vec::new(),
    }
}

impl DevWorld {
    /// Generates the controller's SSH key and starts `vmctl-testbed cloud` with a seed image and
    /// a load balancer; returns once it is ready. Nothing is stored yet: start the controller
    /// with [`DevWorld::api_url`] and [`DevWorld::token_file`], then [`DevWorld::apply`].
    ///
    /// # Errors
    /// When the testbed binary is missing, fails to start, or is not ready in time.
    pub fn start(data: &Path, pools_arg: &str) -> anyhow::Result<DevWorld> {
        let pools = parse_pools(pools_arg)?;
        let dev = data.join("dev");
        std::fs::create_dir_all(&dev)?;
        let key = dev.join("id_ed25519");
        if !key.exists() {
            let status = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "vmctld-dev", "-f"])
                .arg(&key)
                .status()
                .context("cannot run ssh-keygen (install openssh-client)")?;
            anyhow::ensure!(
                status.success(),
                "ssh-keygen failed to create {}",
                key.display()
            );
        }
        let cloud_dir = dev.join("cloud");
        let _ = std::fs::remove_dir_all(&cloud_dir);
        let testbed = super::sibling_binary("vmctl-testbed")?;
        let mut child = Command::new(&testbed)
            .arg("cloud")
            .args([
                "--listen",
                "127.0.0.1:0",
                "--create-duration",
                "2s",
                "--action-duration",
                "2s",
            ])
            .args([
                "--image",
                DEV_IMAGE,
                "--load-balancer",
                DEV_LB,
                "--stubs",
                "--upstream",
            ])
            .arg(dev.join("upstream"))
            .arg("--dir")
            .arg(&cloud_dir)
            .arg("--authorized-key-file")
            .arg(key.with_extension("pub"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {}", testbed.display()))?;
        wait_ready(&mut child)?;
        let world_path = cloud_dir.join("world.json");
        let world: World = serde_json::from_slice(&std::fs::read(&world_path)?)
            .with_context(|| format!("cannot read the testbed's {}", world_path.display()))?;
        let mut document = document(
            &pools,
            &key,
            &cloud_dir,
            world.load_balancers.get(DEV_LB).map(String::as_str),
        );
        if let Some(up) = &world.upstream {
            document.cluster.release = Some(dev_release(&up.repo, &up.api));
        }
        Ok(DevWorld {
            child,
            api_url: world.base_url,
            token_file: world.token_file,
            document,
            upstream_dir: world.upstream.map(|u| u.dir),
        })
    }

    /// Stores the dev cluster document (the controller then creates every droplet).
    ///
    /// # Errors
    /// Store failures.
    pub fn apply(&self, store: &Store) -> anyhow::Result<()> {
        let changes = crate::apply::plan(&self.document, &crate::apply::StoredSpecs::load(store)?);
        crate::apply::execute(store, &self.document, &changes)?;
        Ok(())
    }

    /// Tears the simulated world down: closing its stdin asks it to stop; SIGKILL if it lingers.
    pub fn stop(mut self) {
        drop(self.child.stdin.take());
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::park_timeout(Duration::from_millis(50));
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return;
                }
            }
        }
    }
}

/// Reads the testbed's stdout until its `ready` line, within the deadline.
fn wait_ready(child: &mut Child) -> anyhow::Result<()> {
    let stdout = child.stdout.take().context("testbed stdout missing")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.starts_with("ready ") {
                let _ = tx.send(());
            }
        }
    });
    match rx.recv_timeout(TESTBED_START_DEADLINE) {
        Ok(()) => Ok(()),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("the testbed did not report ready within {TESTBED_START_DEADLINE:?}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_pairs_parse_and_bad_ones_are_named() {
        assert_eq!(
            parse_pools("web=2,exec=1").unwrap(),
            vec![("web".into(), 2), ("exec".into(), 1)]
        );
        assert!(parse_pools("web")
            .unwrap_err()
            .to_string()
            .contains("pool=count"));
        assert!(parse_pools("web=x")
            .unwrap_err()
            .to_string()
            .contains("not a count"));
        assert!(parse_pools("db=1")
            .unwrap_err()
            .to_string()
            .contains("unknown pool"));
    }

    #[test]
    fn the_dev_document_manages_every_pool_and_gives_workers_their_queues() {
        let d = document(
            &[("web".into(), 2), ("sidekiq".into(), 2), ("exec".into(), 1)],
            Path::new("/k"),
            Path::new("/c"),
            Some("lb-1"),
        );
        assert_eq!(d.pools[1].spec.queues.len(), 5);
        assert_eq!(d.pools[2].spec.queues, vec!["scheduler"]);
        let web = d.pools[0].spec.droplets.as_ref().unwrap();
        assert_eq!((web.count, web.load_balancer.as_deref()), (2, Some("lb-1")));
        assert_eq!(web.root_for("dev-web-1"), "/c/droplets/dev-web-1/root");
        assert!(d.pools[1]
            .spec
            .droplets
            .as_ref()
            .unwrap()
            .load_balancer
            .is_none());
        assert!(d.nodes.is_empty());
        assert!(crate::apply::validate(&d).is_ok());
    }
}
