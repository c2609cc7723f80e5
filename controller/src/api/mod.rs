//! The controller's HTTP/JSON API (axum), served on a unix socket and optionally on TCP behind a
//! bearer token. Routes are thin: they read the store, or validate and hand a document to
//! `apply`. Everything they return is a `vmctl_protocol::api` type.

mod auth;
mod error;
mod release_cmds;
mod rollouts;
mod routes;
mod serve;
pub mod views;

use std::sync::Arc;

use vmctl_state::Store;

pub use auth::BearerToken;
pub use error::ApiFailure;
pub use serve::{bind_unix, serve_tcp, serve_unix, SocketError};

/// Called after an operator forgets a node's pinned host key, so the fleet reconnects it now.
pub type ForgetHook = Arc<dyn Fn(&str) + Send + Sync>;

/// Starts a snapshot job for the named pool (`POST /v1/pools/{name}/snapshot`). Returns the
/// stored job's name, or a sentence saying why none was started (the reply is then a 400).
/// Called only for a pool that exists.
pub type SnapshotHook = Arc<dyn Fn(&str) -> Result<String, String> + Send + Sync>;

/// Wakes a key in the controller's work queue.
pub type WakeHook = Arc<dyn Fn(crate::queue::ObjectKey) + Send + Sync>;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The store.
    pub store: Store,
    /// Wakes a key in the work queue (after an operator command).
    pub on_wake: WakeHook,
    /// Runs after `forget-hostkey` succeeds.
    pub on_forget_hostkey: ForgetHook,
    /// Runs for `snapshot create`.
    pub on_snapshot_request: SnapshotHook,
}

/// The router with every route, without authentication (the TCP listener adds it).
pub fn router(state: ApiState) -> axum::Router {
    routes::router(state)
}
