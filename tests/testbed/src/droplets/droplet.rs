//! One simulated droplet: its folder, host key, address and sshd, and the steps that create,
//! stop, restart and re-key it. The farm decides which droplets exist; this file owns how.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::address::{self, MAX_ADDRESS_TRIES, SSH_PORT};
use super::error::TestbedError;
use super::keys;
use super::process_tree;
use super::root;
use super::sshd::{self, LaunchError, LaunchSpec, SshdProcess};
use super::sshd_config::{self, SshdPaths};

/// A simulated droplet: a real sshd on `address:port` that authorises the farm's key.
///
/// Its folder `dir` holds `root/`, `sshd_config`, `ssh_host_ed25519_key{,.pub}`,
/// `authorized_keys` and `sshd.log`.
#[derive(Debug)]
pub struct Droplet {
    /// Its name, also its hostname.
    pub name: String,
    /// Its own loopback address.
    pub address: Ipv4Addr,
    /// Always 22, as on a real droplet.
    pub port: u16,
    /// The folder the agent treats as `/`.
    pub root: PathBuf,
    /// `"ssh-ed25519 AAAA..."`, as a known_hosts entry would hold it.
    pub host_key_public: String,
    /// The droplet's folder, `<farm dir>/<name>`.
    pub dir: PathBuf,
    marker: String,
    /// The Mastodon stubs its sessions find first on PATH, if any.
    stub_dir: Option<PathBuf>,
    sshd: Option<SshdProcess>,
}

impl Droplet {
    /// The PID of its listening sshd, or `None` while sshd is stopped.
    pub fn sshd_pid(&self) -> Option<u32> {
        self.sshd.as_ref().map(SshdProcess::pid)
    }

    /// Where its sshd listens.
    pub fn socket_addr(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.address, self.port)
    }

    /// `"<address> ssh-ed25519 AAAA..."`, a line for an OpenSSH known_hosts file.
    pub fn known_hosts_line(&self) -> String {
        format!("{} {}", self.address, self.host_key_public)
    }

    /// True while its sshd runs.
    pub fn is_running(&self) -> bool {
        self.sshd.is_some()
    }

    /// The PIDs of its sshd and every process that descends from it or carries its marker,
    /// now. Empty while sshd is stopped and nothing marked survives.
    pub fn processes(&self) -> BTreeSet<i32> {
        let root = self.sshd_pid().and_then(|pid| i32::try_from(pid).ok());
        process_tree::tree(root, Some(&self.marker))
    }

    /// The private host key file.
    pub fn host_key_path(&self) -> PathBuf {
        self.dir.join("ssh_host_ed25519_key")
    }

    /// sshd's stderr, appended across restarts.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("sshd.log")
    }

    /// The value of `VMCTL_TESTBED_DROPLET` in this droplet's sessions.
    pub fn marker(&self) -> &str {
        &self.marker
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("sshd_config")
    }

    fn authorized_keys_path(&self) -> PathBuf {
        self.dir.join("authorized_keys")
    }

    /// Creates the droplet's folder and keys under `farm_dir` and starts its sshd on a free
    /// address. `taken` holds the addresses this farm already uses or is starting on.
    pub(super) fn provision(
        farm_dir: &Path,
        name: &str,
        authorized_key: &str,
        farm_id: &str,
        stub_dir: Option<&Path>,
        taken: &Mutex<HashSet<Ipv4Addr>>,
    ) -> Result<Droplet, TestbedError> {
        let dir = farm_dir.join(name);
        if dir.exists() {
            // A leftover from an earlier run with the same folder; its sshd is long gone.
            fs::remove_dir_all(&dir).map_err(|source| TestbedError::RemoveDir {
                path: dir.clone(),
                source,
            })?;
        }
        fs::create_dir_all(&dir).map_err(|source| TestbedError::CreateDir {
            path: dir.clone(),
            source,
        })?;
        let mut droplet = Droplet {
            name: name.to_owned(),
            address: Ipv4Addr::UNSPECIFIED,
            port: SSH_PORT,
            root: dir.join("root"),
            host_key_public: String::new(),
            marker: format!("{farm_id}/{name}"),
            stub_dir: stub_dir.map(Path::to_path_buf),
            dir,
            sshd: None,
        };
        root::create(&droplet.root, name)?;
        droplet.host_key_public =
            keys::generate_ed25519(&droplet.host_key_path(), &format!("root@{name}"))?;
        write_private(
            &droplet.authorized_keys_path(),
            &format!("{}\n", authorized_key.trim()),
        )?;
        droplet.launch_on_free_address(taken)?;
        Ok(droplet)
    }

    /// Picks addresses until sshd binds one; a clash with another process costs one try.
    fn launch_on_free_address(
        &mut self,
        taken: &Mutex<HashSet<Ipv4Addr>>,
    ) -> Result<(), TestbedError> {
        for _ in 0..MAX_ADDRESS_TRIES {
            let picked = {
                let mut taken = taken.lock().unwrap_or_else(|p| p.into_inner());
                let picked = address::pick_free(&taken, MAX_ADDRESS_TRIES).map_err(|source| {
                    TestbedError::ProbeAddress {
                        name: self.name.clone(),
                        source,
                    }
                })?;
                if let Some(address) = picked {
                    taken.insert(address);
                }
                picked
            };
            let Some(address) = picked else {
                break;
            };
            self.address = address;
            match self.launch() {
                Ok(()) => return Ok(()),
                // Left in `taken`: someone else holds it.
                Err(LaunchError::AddressInUse) => {}
                Err(LaunchError::Failed(error)) => return Err(error),
            }
        }
        Err(TestbedError::AddressesExhausted {
            name: self.name.clone(),
            tries: MAX_ADDRESS_TRIES,
        })
    }

    /// Writes the config for the current address and starts sshd.
    fn launch(&mut self) -> Result<(), LaunchError> {
        let extra_env = self
            .stub_dir
            .as_deref()
            .map(|stubs| sshd_config::stub_env(stubs, self.address))
            .unwrap_or_default();
        let config = sshd_config::render_with_env(
            self.address,
            SshdPaths {
                host_key: &self.host_key_path(),
                authorized_keys: &self.authorized_keys_path(),
                root: &self.root,
            },
            &self.marker,
            &extra_env,
        );
        write_private(&self.config_path(), &config)?;
        let process = sshd::launch(&LaunchSpec {
            name: &self.name,
            address: self.address,
            config: &self.config_path(),
            log: &self.log_path(),
            marker: &self.marker,
        })?;
        self.sshd = Some(process);
        Ok(())
    }

    /// Kills sshd and its whole tree; returns the PIDs signalled. A no-op when stopped.
    pub(super) fn stop(&mut self) -> Result<BTreeSet<i32>, TestbedError> {
        match self.sshd.take() {
            Some(process) => process.kill(),
            None => Ok(BTreeSet::new()),
        }
    }

    /// Starts sshd again on the droplet's own address.
    pub(super) fn restart(&mut self) -> Result<(), TestbedError> {
        if self.sshd.is_some() {
            return Err(TestbedError::SshdAlreadyRunning {
                name: self.name.clone(),
            });
        }
        match self.launch() {
            Ok(()) => Ok(()),
            Err(LaunchError::AddressInUse) => Err(TestbedError::AddressTaken {
                name: self.name.clone(),
                address: self.address,
            }),
            Err(LaunchError::Failed(error)) => Err(error),
        }
    }

    /// Replaces the host key (sshd must be stopped, since it reads keys only at start).
    pub(super) fn replace_host_key(&mut self) -> Result<(), TestbedError> {
        self.host_key_public =
            keys::generate_ed25519(&self.host_key_path(), &format!("root@{}", self.name))?;
        Ok(())
    }
}

/// Writes a file only its owner can read: sshd refuses world-readable key material.
fn write_private(path: &Path, text: &str) -> Result<(), TestbedError> {
    let error = |source| TestbedError::WriteFile {
        path: path.to_path_buf(),
        source,
    };
    fs::write(path, text).map_err(error)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(error)
}
