//! Store tests against real sled databases in temporary directories.

mod events;
mod host_keys;
mod objects;
mod restart;
mod schema;
mod watch;

use vmctl_protocol::{
    event::{Event, EventType},
    node::{NodeSpec, NodeStatus, PinnedHostKey},
};

use crate::Store;

/// A store in a fresh temporary directory; keep the directory alive as long as the store.
fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open store");
    (dir, store)
}

fn node(address: &str) -> NodeSpec {
    NodeSpec {
        droplet_id: None,
        pool: "web".into(),
        address: address.into(),
        port: 22,
        root: "/".into(),
    }
}

fn status(reachable: bool) -> NodeStatus {
    NodeStatus {
        reachable,
        ..NodeStatus::default()
    }
}

fn event(reason: &str) -> Event {
    Event {
        seq: 0,
        time: chrono::Utc::now(),
        type_: EventType::Normal,
        kind: "node".into(),
        name: "web-1".into(),
        reason: reason.into(),
        message: format!("{reason} happened."),
    }
}

fn host_key(blob: &str) -> PinnedHostKey {
    PinnedHostKey {
        key_type: "ssh-ed25519".into(),
        key_base64: blob.into(),
        fingerprint: format!("SHA256:{blob}"),
        pinned_at: chrono::Utc::now(),
    }
}

#[test]
fn handles_and_streams_can_move_into_tasks() {
    fn handle<T: Clone + Send + Sync + 'static>() {}
    fn stream<S: futures::Stream + Send + Unpin + 'static>() {}
    handle::<Store>();
    stream::<crate::WatchStream<crate::WatchEvent>>();
    stream::<crate::WatchStream<()>>();
}
