//! vmctl-controller: `vmctld`, the controller, and `vmctl`, its CLI.
//!
//! Subsystems, one folder each: the work queue (`queue`), reconcilers (`reconcilers`), the SSH
//! fleet layer (`fleet`), the DigitalOcean client (`cloud`), the HTTP API (`api`), cluster
//! file loading (`config`), the CLI's client (`client`, `cli`) and the daemon's wiring
//! (`daemon`). `retry` is the one backoff and deadline
//! mechanism they all share.

pub mod api;
pub mod apply;
pub mod cli;
pub mod client;
pub mod cloud;
pub mod config;
pub mod daemon;
pub mod fleet;
pub mod queue;
pub mod reconcilers;
pub mod retry;
pub mod upstream;
