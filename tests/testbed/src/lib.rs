//! vmctl testbed: the simulated world vmctl is tested in.
//!
//! For now this holds the simulated droplets ([`DropletFarm`]): real OpenSSH `sshd`
//! processes, each on its own loopback address with its own host key and root folder.

pub mod cloud;
pub mod droplets;

pub use droplets::{
    generate_client_key, Droplet, DropletFarm, Manifest, ManifestDroplet, TestbedError,
};
