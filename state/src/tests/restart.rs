//! A controller restart: dropping the store and opening the same directory again.

use vmctl_protocol::node::NodeSpec;

use super::{event, host_key, node, status};
use crate::{Precondition, Store, StoreError};

#[test]
fn reopening_keeps_objects_host_keys_and_events() {
    let dir = tempfile::tempdir().unwrap();
    let (written, last_event) = {
        let store = Store::open(dir.path()).unwrap();
        store
            .put_spec("web-1", node("10.0.0.1"), Precondition::None)
            .unwrap();
        let written = store
            .put_status::<NodeSpec>("web-1", status(true), Precondition::None)
            .unwrap();
        store.pin_host_key("web-1", &host_key("AAAA")).unwrap();
        store.append_event(event("A")).unwrap();
        (written, store.append_event(event("B")).unwrap())
    };

    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store.get::<NodeSpec>("web-1").unwrap(),
        Some(written.clone())
    );
    assert_eq!(store.host_key("web-1").unwrap().unwrap().key_base64, "AAAA");
    assert_eq!(store.events(10).unwrap().first(), Some(&last_event));

    // Numbering carries on where it stopped.
    assert_eq!(
        store.append_event(event("C")).unwrap().seq,
        last_event.seq + 1
    );
    let next = store
        .put_spec("web-1", node("10.0.0.2"), Precondition::None)
        .unwrap();
    assert!(next.metadata.resource_version > written.metadata.resource_version);
    assert_eq!(next.metadata.generation, 2);
}

#[test]
fn a_directory_in_use_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let _held = Store::open(dir.path()).unwrap();
    match Store::open(dir.path()) {
        Err(StoreError::Open { path, .. }) => assert_eq!(path, dir.path()),
        other => panic!("expected an open error, got {other:?}"),
    }
}
