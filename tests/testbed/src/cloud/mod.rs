//! The DigitalOcean API v2 simulator: an HTTP server with the official API's paths, status
//! codes and JSON shapes (the contract is the bundled OpenAPI spec, see [`spec_check`]),
//! behind which every droplet is a real testbed droplet (sshd on its own loopback address,
//! own root folder) from a [`DropletFarm`].
//!
//! What it simulates: droplets go `new` → `active` after `create_duration` (addresses appear
//! only then); actions (snapshot, power) complete after `action_duration`, one at a time
//! per droplet; a snapshot copies the droplet's root and a droplet created from it starts
//! from that copy; delete kills the droplet; load balancers track members; rate-limit
//! headers and 429s; injected faults ([`Faults`]) and droplet death ([`Simulator::hang_droplet`]).
//!
//! Files: `state` is the world, `shapes` its JSON, `paging` pagination, `ids` identifiers,
//! `rate_limit` the budget, `faults` the knobs, `lifecycle` the timed transitions, `disk`
//! the snapshot copies, `routes/` one file per resource family plus the admin routes,
//! `handle` the Rust-side controls, `spec_check` the test-time validator.

mod api_error;
mod disk;
mod error;
pub mod faults;
mod handle;
mod ids;
mod lifecycle;
pub mod paging;
pub mod rate_limit;
mod routes;
pub mod shapes;
pub mod spec_check;
pub mod state;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::droplets::DropletFarm;

pub use error::CloudError;
pub use faults::Faults;
pub use handle::{Simulator, SimulatorThread};

/// How the simulator is set up.
#[derive(Debug, Clone)]
pub struct CloudConfig {
    /// Droplets live in `dir/droplets/<name>/` (via [`DropletFarm`]), snapshots in
    /// `dir/snapshots/<id>/root/`.
    pub dir: PathBuf,
    /// The public key line put on every droplet, whatever `ssh_keys` a create names.
    pub authorized_key: String,
    /// The bearer token every `/v2` request must carry.
    pub token: String,
    /// How long a droplet stays `new`.
    pub create_duration: Duration,
    /// How long an action (snapshot, power_cycle, ...) stays in progress.
    pub action_duration: Duration,
    /// Requests allowed in a rolling minute (the real API: 250).
    pub rate_limit_per_minute: u32,
    /// Requests allowed in a rolling hour (the real API: 5000).
    pub rate_limit_per_hour: u32,
    /// The region droplets land in when a create names none.
    pub region: String,
    /// A folder of Mastodon stubs put first on every droplet session's PATH (see
    /// [`crate::droplets::FarmOptions`]); none by default.
    pub stub_dir: Option<PathBuf>,
}

impl CloudConfig {
    /// The real API's limits, region `nyc3`, and short durations suited to tests.
    pub fn new(dir: impl Into<PathBuf>, authorized_key: &str, token: &str) -> CloudConfig {
        CloudConfig {
            dir: dir.into(),
            authorized_key: authorized_key.trim().to_owned(),
            token: token.to_owned(),
            create_duration: Duration::from_millis(300),
            action_duration: Duration::from_millis(300),
            rate_limit_per_minute: 250,
            rate_limit_per_hour: 5000,
            region: "nyc3".into(),
            stub_dir: None,
        }
    }
}

/// A droplet as the simulator sees it (for tests and `GET /_sim/droplets`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SimDroplet {
    /// Its id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// "new", "active" or "off".
    pub status: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its sshd's address, once provisioned.
    pub address: Option<std::net::Ipv4Addr>,
    /// Its root folder, once provisioned.
    pub root: Option<PathBuf>,
    /// Its sshd's host key (`ssh-ed25519 AAAA...`), once provisioned.
    pub host_key_public: Option<String>,
    /// The image it was created from.
    pub image_id: u64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Why provisioning failed, if it did.
    pub error: Option<String>,
}

/// One `/v2` request the simulator answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoggedRequest {
    /// "GET", "POST", ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// The status answered.
    pub status: u16,
    /// When it arrived.
    pub at: DateTime<Utc>,
}

/// Everything the server, the life-cycle tasks and the handles share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: CloudConfig,
    pub base_url: String,
    pub world: Mutex<state::World>,
    pub farm: Arc<Mutex<DropletFarm>>,
    pub faults: Mutex<faults::FaultState>,
    pub limiter: Mutex<rate_limit::RateLimiter>,
    pub log: Mutex<Vec<LoggedRequest>>,
    pub stop: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    /// Where snapshot `id` keeps its root.
    pub fn snapshot_dir(&self, id: u64) -> PathBuf {
        self.config.dir.join("snapshots").join(id.to_string())
    }
}

/// Locks a mutex, carrying on past a panic elsewhere: the world stays usable for teardown.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `error: cause: cause`, for messages that cross the API.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
