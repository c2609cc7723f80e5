//! The farm: owns every droplet of one test (or of dev mode), starts them in parallel, and
//! tears them all down on `teardown` or drop.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use rand::Rng;

use super::droplet::Droplet;
use super::error::TestbedError;
use super::sshd;

/// How many droplets start at once. Each start is mostly waiting on ssh-keygen and sshd,
/// so this is well above the core count; it is capped so 50 droplets don't fork 100
/// processes at the same instant.
const START_THREADS: usize = 16;

/// Optional settings of a farm; `FarmOptions::default()` is what [`DropletFarm::start`] uses.
#[derive(Debug, Clone, Default)]
pub struct FarmOptions {
    /// A folder of Mastodon stubs (see `standin::stub_dir`). When set, every droplet's
    /// sessions get `PATH=<stub_dir>:/usr/local/bin:/usr/bin:/bin` and
    /// `VMCTL_TESTBED_ADDRESS` / `VMCTL_PROBE_HOST` set to the droplet's address.
    pub stub_dir: Option<PathBuf>,
}

/// Every droplet of one farm. Dropping it kills every process it started.
#[derive(Debug)]
pub struct DropletFarm {
    dir: PathBuf,
    options: FarmOptions,
    authorized_key: String,
    /// Makes this farm's environment markers unique among farms on the machine.
    farm_id: String,
    droplets: Vec<Droplet>,
}

impl DropletFarm {
    /// Starts one droplet per name, in parallel, each in `dir/<name>/`, authorising
    /// `authorized_key` (one OpenSSH public key line) for root.
    ///
    /// # Errors
    /// The first droplet that failed to start; the others are then torn down.
    pub fn start(
        dir: &Path,
        names: &[String],
        authorized_key: &str,
    ) -> Result<DropletFarm, TestbedError> {
        DropletFarm::start_with(dir, names, authorized_key, FarmOptions::default())
    }

    /// [`DropletFarm::start`] with options (e.g. the stub folder put on sessions' PATH).
    ///
    /// # Errors
    /// The first droplet that failed to start; the others are then torn down.
    pub fn start_with(
        dir: &Path,
        names: &[String],
        authorized_key: &str,
        options: FarmOptions,
    ) -> Result<DropletFarm, TestbedError> {
        let line_count = authorized_key
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count();
        if line_count != 1 {
            return Err(TestbedError::InvalidAuthorizedKey { line_count });
        }
        let mut seen = HashSet::new();
        for name in names {
            validate_name(name)?;
            if !seen.insert(name.as_str()) {
                return Err(TestbedError::DuplicateDroplet { name: name.clone() });
            }
        }
        sshd::ensure_privsep_dir()?;
        let dir = sshd::absolute(dir)?;
        std::fs::create_dir_all(&dir).map_err(|source| TestbedError::CreateDir {
            path: dir.clone(),
            source,
        })?;
        let mut farm = DropletFarm {
            dir,
            options,
            authorized_key: authorized_key.trim().to_owned(),
            farm_id: format!(
                "{:x}-{:08x}",
                std::process::id(),
                rand::thread_rng().gen::<u32>()
            ),
            droplets: Vec::with_capacity(names.len()),
        };
        farm.droplets = farm.provision_all(names)?;
        Ok(farm)
    }

    /// Provisions `names` on up to `START_THREADS` threads, keeping the input order.
    fn provision_all(&self, names: &[String]) -> Result<Vec<Droplet>, TestbedError> {
        let taken = Mutex::new(self.addresses());
        let next = AtomicUsize::new(0);
        let slots: Vec<Mutex<Option<Result<Droplet, TestbedError>>>> =
            names.iter().map(|_| Mutex::new(None)).collect();
        let workers = START_THREADS.min(names.len());
        let panicked = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    scope.spawn(|| loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(name) = names.get(index) else {
                            break;
                        };
                        let result = Droplet::provision(
                            &self.dir,
                            name,
                            &self.authorized_key,
                            &self.farm_id,
                            self.options.stub_dir.as_deref(),
                            &taken,
                        );
                        *slots[index].lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
                    })
                })
                .collect();
            handles.into_iter().any(|h| h.join().is_err())
        });
        let results: Vec<Option<Result<Droplet, TestbedError>>> = slots
            .into_iter()
            .map(|slot| slot.into_inner().unwrap_or_else(|p| p.into_inner()))
            .collect();
        if panicked {
            // Dropping `results` kills whatever did start.
            return Err(TestbedError::StartThreadPanicked);
        }
        // Collecting stops at the first error and drops (kills) the droplets already started.
        results
            .into_iter()
            .map(|slot| slot.unwrap_or(Err(TestbedError::StartThreadPanicked)))
            .collect()
    }

    /// The farm's folder (absolute).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every droplet, in the order started or added.
    pub fn droplets(&self) -> &[Droplet] {
        &self.droplets
    }

    /// The droplet called `name`.
    pub fn get(&self, name: &str) -> Option<&Droplet> {
        self.droplets.iter().find(|d| d.name == name)
    }

    fn get_mut(&mut self, name: &str) -> Result<&mut Droplet, TestbedError> {
        self.droplets
            .iter_mut()
            .find(|d| d.name == name)
            .ok_or_else(|| TestbedError::UnknownDroplet {
                name: name.to_owned(),
            })
    }

    fn addresses(&self) -> HashSet<Ipv4Addr> {
        self.droplets.iter().map(|d| d.address).collect()
    }

    /// Starts one more droplet.
    pub fn add(&mut self, name: &str) -> Result<&Droplet, TestbedError> {
        validate_name(name)?;
        if self.get(name).is_some() {
            return Err(TestbedError::DuplicateDroplet {
                name: name.to_owned(),
            });
        }
        let droplet = Droplet::provision(
            &self.dir,
            name,
            &self.authorized_key,
            &self.farm_id,
            self.options.stub_dir.as_deref(),
            &Mutex::new(self.addresses()),
        )?;
        self.droplets.push(droplet);
        Ok(&self.droplets[self.droplets.len() - 1])
    }

    /// SIGKILLs the droplet's sshd and all its descendants: open sessions and whatever they
    /// run (the agent, services). The droplet keeps its address, folder and host key.
    /// A no-op when sshd is already stopped.
    pub fn kill_sshd(&mut self, name: &str) -> Result<(), TestbedError> {
        self.get_mut(name)?.stop().map(drop)
    }

    /// Starts the droplet's sshd again, on the same address with the same host key, and
    /// waits until it accepts connections.
    pub fn start_sshd(&mut self, name: &str) -> Result<(), TestbedError> {
        self.get_mut(name)?.restart()
    }

    /// Gives the droplet a new host key and restarts its sshd, as a rebuilt droplet would.
    pub fn rotate_host_key(&mut self, name: &str) -> Result<(), TestbedError> {
        let droplet = self.get_mut(name)?;
        droplet.stop()?;
        droplet.replace_host_key()?;
        droplet.restart()
    }

    /// Kills the droplet and deletes its folder.
    pub fn remove(&mut self, name: &str) -> Result<(), TestbedError> {
        let index = self
            .droplets
            .iter()
            .position(|d| d.name == name)
            .ok_or_else(|| TestbedError::UnknownDroplet {
                name: name.to_owned(),
            })?;
        let mut droplet = self.droplets.remove(index);
        droplet.stop()?;
        std::fs::remove_dir_all(&droplet.dir).map_err(|source| TestbedError::RemoveDir {
            path: droplet.dir.clone(),
            source,
        })
    }

    /// Kills every process the farm started, droplet by droplet. Folders stay for
    /// post-mortems. Safe to call more than once; also runs on drop.
    pub fn teardown(&mut self) {
        for droplet in &mut self.droplets {
            if let Err(error) = droplet.stop() {
                tracing::warn!(droplet = %droplet.name, %error, "Tearing down droplet failed.");
            }
        }
    }
}

impl Drop for DropletFarm {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Names become folder names and hostnames, so only a safe alphabet is accepted.
pub fn validate_name(name: &str) -> Result<(), TestbedError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(TestbedError::InvalidName {
            name: name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_name_accepts_hostnames_and_rejects_paths() {
        for good in ["web-1", "node_3", "a.b", "X"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in ["", "..", ".hidden", "a/b", "a b", &"x".repeat(64)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
