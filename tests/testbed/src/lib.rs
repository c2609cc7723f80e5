//! vmctl testbed: the simulated world vmctl is tested in.
//!
//! It holds the simulated droplets ([`DropletFarm`]): real OpenSSH `sshd` processes, each on
//! its own loopback address with its own host key and root folder; the DigitalOcean API
//! simulator (`cloud`); the upstream Mastodon repository and its GitHub-compatible API
//! (`upstream`); and the stubs and service stand-ins droplets run (`standin`).

pub mod cloud;
pub mod droplets;
pub mod standin;
pub mod upstream;

pub use droplets::{
    generate_client_key, Droplet, DropletFarm, FarmOptions, Manifest, ManifestDroplet, TestbedError,
};
pub use standin::stub_dir;
pub use upstream::{Upstream, UpstreamServer};
