//! Why acting on a service failed. Every variant names the service.

use crate::run::RunError;
use std::io;
use std::path::PathBuf;

/// Why a start, stop, restart or quiet failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The name is not one of the upstream units the agent drives.
    #[error("unknown service {0:?} (want mastodon-web, mastodon-streaming or mastodon-sidekiq)")]
    UnknownService(String),
    /// A Sidekiq queue name that is not a plain word.
    #[error("refuse queue {0:?} for mastodon-sidekiq: want [a-z0-9_-], not starting with -")]
    BadQueue(String),
    /// Queues were given for a service that has none.
    #[error("{0}: only mastodon-sidekiq takes queues")]
    QueuesNotSidekiq(String),
    /// `systemctl` failed or missed its deadline.
    #[error("systemctl {action} {name}")]
    Systemctl {
        /// The unit.
        name: String,
        /// The systemctl verb.
        action: &'static str,
        /// The cause.
        #[source]
        source: RunError,
    },
    /// There is no live release to run the service from.
    #[error("start {name}: no live release at {path}")]
    NoLiveRelease {
        /// The service.
        name: String,
        /// The `live` link.
        path: PathBuf,
    },
    /// The service's process could not be started.
    #[error("start {name}")]
    Spawn {
        /// The service.
        name: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A file the process backend keeps (pid file, log) could not be used.
    #[error("{what} {path}")]
    File {
        /// The operation.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Signalling the service's process failed.
    #[error("signal {signal} to {name} (pid {pid})")]
    Signal {
        /// The service.
        name: String,
        /// The pid.
        pid: u32,
        /// The signal's name.
        signal: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The process outlived SIGTERM and SIGKILL.
    #[error("stop {name}: pid {pid} still running after SIGKILL")]
    StopTimeout {
        /// The service.
        name: String,
        /// The pid.
        pid: u32,
    },
    /// Quiet was asked of a service that is not running.
    #[error("{name} is not running")]
    NotRunning {
        /// The service.
        name: String,
    },
}
