//! Why a simulator operation called from Rust (start, the fault and seeding helpers) failed.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::droplets::TestbedError;

/// A failed simulator operation.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// The listener could not be bound.
    #[error("binding the simulator to {listen}")]
    Bind {
        /// The address asked for.
        listen: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The droplet farm behind the simulator failed to start.
    #[error("starting the droplet farm in {dir}")]
    StartFarm {
        /// Its folder.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: TestbedError,
    },
    /// The runtime thread of `start_blocking` could not be set up.
    #[error("starting the simulator's runtime thread")]
    Runtime(#[source] std::io::Error),
    /// The runtime thread died before reporting the simulator started.
    #[error("the simulator's runtime thread stopped before the simulator started")]
    RuntimeGone,
    /// No droplet with this id (or it was deleted).
    #[error("no droplet {id}")]
    UnknownDroplet {
        /// The id.
        id: u64,
    },
    /// The droplet exists but is not running yet (still "new").
    #[error("droplet {id} is not provisioned yet")]
    NotProvisioned {
        /// The id.
        id: u64,
    },
    /// A farm operation on a droplet failed.
    #[error("{op} on droplet {id}")]
    Farm {
        /// What was being done.
        op: &'static str,
        /// The droplet's id.
        id: u64,
        /// The cause.
        #[source]
        source: TestbedError,
    },
    /// Copying a folder into or out of the snapshot store failed.
    #[error("copying {from} to {to}")]
    Copy {
        /// Source folder.
        from: PathBuf,
        /// Target folder.
        to: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}
