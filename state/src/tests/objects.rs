//! get, list, put_spec, put_status and delete, including preconditions and concurrent writers.

use vmctl_protocol::{
    node::{NodeSpec, NodeStatus},
    pool::{PoolRole, PoolSpec},
};

use super::{node, status, temp_store};
use crate::{Precondition, StoreError};

#[test]
fn put_get_list_delete() {
    let (_dir, store) = temp_store();
    assert!(store.get::<NodeSpec>("web-1").unwrap().is_none());

    let created = store
        .put_spec("web-2", node("10.0.0.2"), Precondition::MustNotExist)
        .unwrap();
    store
        .put_spec("web-1", node("10.0.0.1"), Precondition::None)
        .unwrap();
    assert_eq!(created.metadata.name, "web-2");
    assert_eq!(created.metadata.generation, 1);
    assert_eq!(created.status, NodeStatus::default());
    assert_eq!(store.get::<NodeSpec>("web-2").unwrap(), Some(created));

    let names: Vec<_> = store
        .list::<NodeSpec>()
        .unwrap()
        .into_iter()
        .map(|o| o.metadata.name)
        .collect();
    assert_eq!(names, ["web-1", "web-2"]);

    assert!(store
        .delete::<NodeSpec>("web-1", Precondition::None)
        .unwrap());
    assert!(!store
        .delete::<NodeSpec>("web-1", Precondition::None)
        .unwrap());
    assert!(store.get::<NodeSpec>("web-1").unwrap().is_none());
    assert_eq!(store.list::<NodeSpec>().unwrap().len(), 1);
}

#[test]
fn kinds_do_not_share_names() {
    let (_dir, store) = temp_store();
    store
        .put_spec("web", node("10.0.0.1"), Precondition::None)
        .unwrap();
    let pool = PoolSpec {
        droplets: None,
        role: PoolRole::Web,
        queues: vec![],
    };
    store
        .put_spec("web", pool.clone(), Precondition::MustNotExist)
        .unwrap();
    assert_eq!(store.get::<PoolSpec>("web").unwrap().unwrap().spec, pool);
    assert_eq!(store.list::<NodeSpec>().unwrap().len(), 1);
}

#[test]
fn generation_rises_only_when_the_spec_changes() {
    let (_dir, store) = temp_store();
    let first = store
        .put_spec("web-1", node("10.0.0.1"), Precondition::None)
        .unwrap();
    let with_status = store
        .put_status::<NodeSpec>("web-1", status(true), Precondition::None)
        .unwrap();
    assert_eq!(with_status.metadata.generation, 1);
    let changed = store
        .put_spec("web-1", node("10.0.0.9"), Precondition::None)
        .unwrap();
    assert_eq!(changed.metadata.generation, 2);
    assert_eq!(changed.metadata.created_at, first.metadata.created_at);
    assert!(changed.metadata.updated_at >= first.metadata.updated_at);
}

#[test]
fn resource_version_rises_on_every_write() {
    let (_dir, store) = temp_store();
    let a = store
        .put_spec("web-1", node("10.0.0.1"), Precondition::None)
        .unwrap();
    let b = store
        .put_status::<NodeSpec>("web-1", status(true), Precondition::None)
        .unwrap();
    let c = store
        .put_spec("web-1", node("10.0.0.2"), Precondition::None)
        .unwrap();
    let d = store
        .put_status::<NodeSpec>("web-1", status(false), Precondition::None)
        .unwrap();
    let versions = [a, b, c, d].map(|o| o.metadata.resource_version);
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "versions {versions:?}"
    );
    // Recreating after a delete never reuses a version a stale writer may still hold.
    store
        .delete::<NodeSpec>("web-1", Precondition::None)
        .unwrap();
    let e = store
        .put_spec("web-1", node("10.0.0.1"), Precondition::None)
        .unwrap();
    assert!(e.metadata.resource_version > versions[3]);
    assert_eq!(e.metadata.generation, 1);
}

#[test]
fn identical_writes_are_no_ops() {
    let (_dir, store) = temp_store();
    let spec_written = store
        .put_spec("web-1", node("10.0.0.1"), Precondition::None)
        .unwrap();
    let again = store
        .put_spec("web-1", node("10.0.0.1"), Precondition::None)
        .unwrap();
    assert_eq!(again, spec_written);

    let status_written = store
        .put_status::<NodeSpec>("web-1", status(true), Precondition::None)
        .unwrap();
    let again = store
        .put_status::<NodeSpec>(
            "web-1",
            status(true),
            Precondition::ResourceVersion(status_written.metadata.resource_version),
        )
        .unwrap();
    assert_eq!(again, status_written);
    assert_eq!(
        store.get::<NodeSpec>("web-1").unwrap(),
        Some(status_written)
    );
}

#[test]
fn stale_resource_version_is_a_conflict_and_writes_nothing() {
    let (_dir, store) = temp_store();
    let read = store
        .put_spec("web-1", node("10.0.0.1"), Precondition::None)
        .unwrap();
    let stale = Precondition::ResourceVersion(read.metadata.resource_version);
    let winner = store.put_spec("web-1", node("10.0.0.2"), stale).unwrap();

    match store.put_spec("web-1", node("10.0.0.3"), stale) {
        Err(StoreError::Conflict {
            kind,
            name,
            expected,
            actual,
        }) => {
            assert_eq!((kind.as_str(), name.as_str()), ("node", "web-1"));
            assert_eq!(expected, read.metadata.resource_version);
            assert_eq!(actual, winner.metadata.resource_version);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(matches!(
        store.put_status::<NodeSpec>("web-1", status(true), stale),
        Err(StoreError::Conflict { .. })
    ));
    assert!(matches!(
        store.delete::<NodeSpec>("web-1", stale),
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(store.get::<NodeSpec>("web-1").unwrap(), Some(winner));
}

#[test]
fn must_not_exist_refuses_an_existing_object() {
    let (_dir, store) = temp_store();
    store
        .put_spec("web-1", node("10.0.0.1"), Precondition::MustNotExist)
        .unwrap();
    assert!(matches!(
        store.put_spec("web-1", node("10.0.0.1"), Precondition::MustNotExist),
        Err(StoreError::AlreadyExists { .. })
    ));
}

#[test]
fn status_of_a_missing_object_is_not_found() {
    let (_dir, store) = temp_store();
    assert!(matches!(
        store.put_status::<NodeSpec>("ghost", status(true), Precondition::None),
        Err(StoreError::NotFound { .. })
    ));
    assert!(store.get::<NodeSpec>("ghost").unwrap().is_none());
}

#[test]
fn status_write_keeps_the_spec_and_spec_write_keeps_the_status() {
    let (_dir, store) = temp_store();
    store
        .put_spec("web-1", node("10.0.0.1"), Precondition::None)
        .unwrap();
    let after_status = store
        .put_status::<NodeSpec>("web-1", status(true), Precondition::None)
        .unwrap();
    assert_eq!(after_status.spec, node("10.0.0.1"));
    let after_spec = store
        .put_spec("web-1", node("10.0.0.2"), Precondition::None)
        .unwrap();
    assert_eq!(after_spec.status, status(true));
    assert_eq!(store.get::<NodeSpec>("web-1").unwrap(), Some(after_spec));
}

#[test]
fn concurrent_spec_and_status_writers_keep_both_updates() {
    const ROUNDS: u16 = 200;
    let (_dir, store) = temp_store();
    store
        .put_spec("web-1", node("10.0.0.0"), Precondition::None)
        .unwrap();

    let spec_store = store.clone();
    let spec_writer = std::thread::spawn(move || {
        for i in 1..=ROUNDS {
            let spec = NodeSpec {
                port: i,
                ..node("10.0.0.0")
            };
            spec_store
                .put_spec("web-1", spec, Precondition::None)
                .unwrap();
        }
    });
    let status_store = store.clone();
    let status_writer = std::thread::spawn(move || {
        for i in 1..=ROUNDS {
            let status = NodeStatus {
                observed_generation: u64::from(i),
                ..NodeStatus::default()
            };
            status_store
                .put_status::<NodeSpec>("web-1", status, Precondition::None)
                .unwrap();
        }
    });
    spec_writer.join().unwrap();
    status_writer.join().unwrap();

    let last = store.get::<NodeSpec>("web-1").unwrap().unwrap();
    assert_eq!(last.spec.port, ROUNDS);
    assert_eq!(last.status.observed_generation, u64::from(ROUNDS));
    assert_eq!(last.metadata.generation, u64::from(ROUNDS) + 1);
}
