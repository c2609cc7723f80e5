//! Simulated droplets: each is a real OpenSSH sshd on its own loopback address
//! (`127.X.Y.Z:22`), with its own host key, config and root folder, authorising the
//! controller's key. [`DropletFarm`] owns them and kills every process they start.
//!
//! Files: `address` picks addresses, `keys` runs ssh-keygen, `root` lays out the root
//! folder, `sshd_config` renders the config, `sshd` launches and waits, `listening` checks
//! who owns a listener, `process_tree` finds and kills process trees, `droplet` is one
//! droplet's life cycle, `farm` owns them all, `names` turns pool counts into names,
//! `manifest` and `control` talk to other processes.

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
mod root;
pub mod sshd;
pub mod sshd_config;

pub use droplet::Droplet;
pub use error::TestbedError;
pub use farm::{validate_name, DropletFarm};
pub use keys::{generate_client_key, read_public_key};
pub use manifest::{Manifest, ManifestDroplet};
