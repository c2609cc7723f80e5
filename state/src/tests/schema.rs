//! Schema stamps on disk: fresh stores, unstamped (v0) stores and stores from a newer build.

use std::path::Path;

use vmctl_protocol::node::NodeSpec;

use super::node;
use crate::{Precondition, Store, StoreError, SCHEMA_VERSION};

fn raw_stamp(dir: &Path) -> Option<Vec<u8>> {
    let db = sled::open(dir).unwrap();
    let stamp = db.open_tree("meta").unwrap().get("schema_version").unwrap();
    stamp.map(|v| v.to_vec())
}

fn write_raw(dir: &Path, tree: &str, key: &str, value: &[u8]) {
    let db = sled::open(dir).unwrap();
    db.open_tree(tree).unwrap().insert(key, value).unwrap();
    db.flush().unwrap();
}

#[test]
fn a_fresh_store_is_stamped_with_the_current_version() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    assert_eq!(
        raw_stamp(dir.path()),
        Some(SCHEMA_VERSION.to_be_bytes().to_vec())
    );
}

#[test]
fn an_unstamped_v0_store_is_migrated_and_keeps_its_objects() {
    let dir = tempfile::tempdir().unwrap();
    // A v0 store: objects in their kind's tree, no `meta` stamp.
    let v0_object = serde_json::json!({
        "metadata": {
            "name": "web-1",
            "generation": 3,
            "resource_version": 41,
            "created_at": "2024-05-01T10:00:00Z",
            "updated_at": "2024-05-02T10:00:00Z"
        },
        "spec": { "pool": "web", "address": "10.0.0.1" }
    });
    write_raw(
        dir.path(),
        "objects/node",
        "web-1",
        &serde_json::to_vec(&v0_object).unwrap(),
    );

    let store = Store::open(dir.path()).unwrap();
    let migrated = store.get::<NodeSpec>("web-1").unwrap().unwrap();
    assert_eq!(migrated.spec, node("10.0.0.1"));
    assert_eq!(migrated.metadata.generation, 3);
    // Versions keep rising past what the old store handed out.
    let next = store
        .put_spec("web-1", node("10.0.0.2"), Precondition::None)
        .unwrap();
    assert!(next.metadata.resource_version > 41);
    drop(store);
    assert_eq!(
        raw_stamp(dir.path()),
        Some(SCHEMA_VERSION.to_be_bytes().to_vec())
    );
}

#[test]
fn a_store_from_a_newer_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let newer = SCHEMA_VERSION + 1;
    write_raw(dir.path(), "meta", "schema_version", &newer.to_be_bytes());

    let err = Store::open(dir.path()).unwrap_err();
    assert!(
        matches!(&err, StoreError::SchemaTooNew { found, supported, path }
            if *found == newer && *supported == SCHEMA_VERSION && path == dir.path()),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&dir.path().display().to_string()),
        "{message}"
    );
    assert!(message.contains(&format!("version {newer}")), "{message}");
    assert!(
        message.contains(&format!("version {SCHEMA_VERSION}")),
        "{message}"
    );
    // Refusing wrote nothing: the stamp is still the newer build's.
    assert_eq!(raw_stamp(dir.path()), Some(newer.to_be_bytes().to_vec()));
}

#[test]
fn an_unreadable_stamp_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_raw(dir.path(), "meta", "schema_version", b"one");
    assert!(matches!(
        Store::open(dir.path()),
        Err(StoreError::SchemaCorrupt { len: 3, .. })
    ));
}
