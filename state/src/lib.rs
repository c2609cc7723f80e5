//! vmctl's state store: typed objects in sled with compare-and-swap, watch streams, the event
//! log and pinned SSH host keys.
//!
//! Layout: one tree per kind (`objects/<kind>`) keyed by name, each value the whole object as
//! JSON; `events` keyed by big-endian sequence number; `host_keys` keyed by node name; `meta`
//! with the schema version. Every acknowledged write has been flushed to disk.

mod error;
mod events;
mod host_keys;
mod objects;
mod plan;
mod precondition;
mod schema;
mod store;
mod watch;

#[cfg(test)]
mod tests;

pub use error::StoreError;
pub use precondition::Precondition;
pub use schema::SCHEMA_VERSION;
pub use store::{Store, StoreOptions, DEFAULT_EVENT_CAP};
pub use watch::{WatchEvent, WatchStream};
