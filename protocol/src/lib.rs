//! vmctl's shared vocabulary: the resource types (spec and status), the agent's wire messages,
//! the HTTP API's views and the errors that cross a process boundary.
//!
//! This crate does no I/O. Everything here is plain data with serde derives, so the controller,
//! the agent, the CLI and the testbed agree on one definition.
#![deny(missing_docs)]

pub mod agent;
pub mod api;
pub mod cluster;
pub mod duration;
pub mod event;
pub mod meta;
pub mod node;
pub mod pool;
pub mod provision;
pub mod release;
pub mod release_ops;
pub mod resource;
pub mod rollout;
pub mod snapshot;

pub use meta::{Condition, ConditionStatus, ObjectMeta, Timestamp};
pub use resource::{Object, Resource};
