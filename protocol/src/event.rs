//! The event log: what happened to which object, newest first.

use serde::{Deserialize, Serialize};

use crate::meta::Timestamp;

/// How much an event matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    /// Something expected happened.
    Normal,
    /// Something an operator may need to act on.
    Warning,
}

/// One entry of the event log. Messages never contain secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the log; assigned by the store, rising.
    #[serde(default)]
    pub seq: u64,
    /// When it happened.
    pub time: Timestamp,
    /// Normal or Warning.
    #[serde(rename = "type")]
    pub type_: EventType,
    /// Kind of the object it is about (`node`, `pool`, `cluster`).
    pub kind: String,
    /// Name of the object it is about.
    pub name: String,
    /// CamelCase reason, e.g. `NodeUnreachable`.
    pub reason: String,
    /// A sentence for a person.
    pub message: String,
}
