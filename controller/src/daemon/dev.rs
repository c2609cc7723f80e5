//! Dev mode: start the simulated world (`vmctl-testbed`) as a child process, point the controller
//! at it with the same settings a real fleet uses, and tear it down on exit.
//!
//! The controller crate never links the testbed; it talks to the testbed binary through its
//! command line and the manifest file it writes, exactly as an operator's tooling could.

use std::{
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
    node::NodeSpec,
    pool::{PoolRole, PoolSpec},
};
use vmctl_state::Store;

/// Dev mode probes faster than production so a newcomer sees changes at once.
const DEV_PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// How long the testbed may take to start its droplets.
const TESTBED_START_DEADLINE: Duration = Duration::from_secs(90);
/// Sidekiq queues of the reference deployment's worker pool.
const WORKER_QUEUES: [&str; 5] = ["default", "ingress", "push", "pull", "mailers"];

/// The running simulated world.
pub struct DevWorld {
    child: Child,
    /// The cluster document applied for it.
    pub document: ClusterDocument,
}

#[derive(Deserialize)]
struct Manifest {
    droplets: Vec<ManifestDroplet>,
}

#[derive(Deserialize)]
struct ManifestDroplet {
    name: String,
    pool: Option<String>,
    address: String,
    port: u16,
    root: String,
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

/// Builds the dev cluster document from the testbed's manifest. Pure.
fn document(manifest: &Manifest, pools: &[(String, u32)], private_key: &Path) -> ClusterDocument {
    let pools = pools
        .iter()
        .map(|(name, _)| {
            let role = role_of(name).unwrap_or(PoolRole::Web);
            let queues = match role {
                PoolRole::Sidekiq => WORKER_QUEUES.iter().map(ToString::to_string).collect(),
                PoolRole::Exec => vec!["scheduler".to_string()],
                _ => Vec::new(),
            };
            Named {
                name: name.clone(),
                spec: PoolSpec {
                    role,
                    queues,
                    droplets: None,
                },
            }
        })
        .collect();
    let nodes = manifest
        .droplets
        .iter()
        .map(|d| Named {
            name: d.name.clone(),
            spec: NodeSpec {
                droplet_id: None,
                pool: d.pool.clone().unwrap_or_else(|| "web".into()),
                address: d.address.clone(),
                port: d.port,
                root: d.root.clone(),
            },
        })
        .collect();
    ClusterDocument {
        name: "dev".into(),
        cluster: ClusterSpec {
            healing: Default::default(),
            ssh: SshSpec {
                user: "root".into(),
                private_key: private_key.display().to_string(),
            },
            probe_interval: DEV_PROBE_INTERVAL,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        },
        pools,
        nodes,
    }
}

impl DevWorld {
    /// Generates the controller's SSH key, starts `vmctl-testbed droplets`, waits until it is
    /// ready, and applies the cluster document to the store. Host keys pinned by an earlier dev
    /// run are forgotten, since every run's droplets are new.
    ///
    /// # Errors
    /// When the testbed binary is missing, fails to start, or is not ready in time.
    pub fn start(data: &Path, pools_arg: &str, store: &Store) -> anyhow::Result<DevWorld> {
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
        let manifest_path = dev.join("manifest.json");
        let _ = std::fs::remove_file(&manifest_path);
        let droplets_dir = dev.join("droplets");
        let _ = std::fs::remove_dir_all(&droplets_dir);
        let testbed = super::sibling_binary("vmctl-testbed")?;
        let pools_flag = pools
            .iter()
            .map(|(p, n)| format!("{p}={n}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut child = Command::new(&testbed)
            .arg("droplets")
            .arg("--dir")
            .arg(&droplets_dir)
            .arg("--authorized-key-file")
            .arg(key.with_extension("pub"))
            .arg("--pools")
            .arg(&pools_flag)
            .arg("--manifest")
            .arg(&manifest_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {}", testbed.display()))?;
        wait_ready(&mut child)?;
        let manifest: Manifest = serde_json::from_slice(&std::fs::read(&manifest_path)?)
            .with_context(|| {
                format!(
                    "cannot read the testbed manifest {}",
                    manifest_path.display()
                )
            })?;
        let document = document(&manifest, &pools, &key);
        for n in &document.nodes {
            store.forget_host_key(&n.name)?;
        }
        let changes = crate::apply::plan(&document, &crate::apply::StoredSpecs::load(store)?);
        crate::apply::execute(store, &document, &changes)?;
        Ok(DevWorld { child, document })
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
fn wait_ready(child: &mut Child) -> anyhow::Result<PathBuf> {
    let stdout = child.stdout.take().context("testbed stdout missing")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(path) = line.strip_prefix("ready ") {
                let _ = tx.send(PathBuf::from(path.trim()));
            }
        }
    });
    match rx.recv_timeout(TESTBED_START_DEADLINE) {
        Ok(p) => Ok(p),
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
    fn the_dev_document_gives_workers_and_exec_their_queues() {
        let m = Manifest {
            droplets: vec![ManifestDroplet {
                name: "exec-1".into(),
                pool: Some("exec".into()),
                address: "127.9.0.1".into(),
                port: 22,
                root: "/tmp/r".into(),
            }],
        };
        let d = document(
            &m,
            &[("sidekiq".into(), 0), ("exec".into(), 1)],
            Path::new("/k"),
        );
        assert_eq!(d.pools[0].spec.queues.len(), 5);
        assert_eq!(d.pools[1].spec.queues, vec!["scheduler"]);
        assert_eq!(d.nodes[0].spec.pool, "exec");
        assert!(crate::apply::validate(&d).is_ok());
    }
}
