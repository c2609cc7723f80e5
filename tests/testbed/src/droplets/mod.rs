//! Simulated droplets: each is a real OpenSSH sshd on its own loopback address
//! (`127.X.Y.Z:22`), with its own host key, config and root folder, authorising the
//! controller's key. [`DropletFarm`] owns them and kills every process they start.
//!
//! Files: `address` picks addresses, `keys` runs ssh-keygen, `root` lays out the root
//! folder, `sshd_config` renders the config, `sshd` launches and waits, `listening` checks
//! who owns a listener, `process_tree` finds and kills process trees, `droplet` is one
//! droplet's life cycle, `farm` owns them all, `names` turns pool counts into names,
//! `manifest` and `control` talk to other processes.
//!
//! Needs root (port 22, `/run/sshd`), `/usr/sbin/sshd` and `ssh-keygen`.
//!
//! ```no_run
//! use vmctl_testbed::{generate_client_key, DropletFarm};
//!
//! # fn main() -> Result<(), vmctl_testbed::TestbedError> {
//! let dir = std::env::temp_dir().join("my-test");
//! let (private_key, public_key) = generate_client_key(&dir.join("client"))?;
//! let names = vec!["web-1".to_owned(), "web-2".to_owned()];
//! let mut farm = DropletFarm::start(&dir.join("farm"), &names, &public_key)?;
//! let web1 = farm.get("web-1").unwrap();
//! // Connect to web1.socket_addr() as root with `private_key`; pin web1.host_key_public.
//! // Sessions see VMCTL_ROOT=<web1.root>, so `vmctl-agent serve` finds its root.
//! farm.kill_sshd("web-1")?; // sessions and everything they run die with it
//! farm.start_sshd("web-1")?; // same address, same host key
//! # let _ = private_key;
//! # Ok(()) }
//! ```

pub mod address;
pub mod control;
mod droplet;
mod error;
mod farm;
mod keys;
pub mod listening;
mod manifest;
pub mod names;
pub mod process_tree;
pub mod root;
pub mod sshd;
pub mod sshd_config;

pub use droplet::Droplet;
pub use error::TestbedError;
pub use farm::{validate_name, DropletFarm, FarmOptions};
pub use keys::{generate_client_key, read_public_key};
pub use manifest::{Manifest, ManifestDroplet};
