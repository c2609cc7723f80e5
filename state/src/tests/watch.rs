//! Watch streams: object changes, event-log wakeups, and threads that end with their stream.

use std::time::Duration;

use futures::StreamExt;
use tokio::time::{timeout, Instant};
use vmctl_protocol::{node::NodeSpec, pool::PoolSpec};

use super::{event, node, status, temp_store};
use crate::{Precondition, Store, WatchEvent, WatchStream};

const DEADLINE: Duration = Duration::from_secs(5);

async fn next<T>(stream: &mut WatchStream<T>) -> T {
    timeout(DEADLINE, stream.next())
        .await
        .expect("no watch event before the deadline")
        .expect("watch stream ended")
}

fn put(name: &str) -> WatchEvent {
    WatchEvent {
        kind: "node",
        name: name.into(),
        deleted: false,
    }
}

#[tokio::test]
async fn watch_sees_puts_and_deletes_of_its_kind_only() {
    let (_dir, store) = temp_store();
    let mut nodes = store.watch::<NodeSpec>();

    store
        .put_spec("web-1", node("10.0.0.1"), Precondition::None)
        .unwrap();
    assert_eq!(next(&mut nodes).await, put("web-1"));

    store
        .put_status::<NodeSpec>("web-1", status(true), Precondition::None)
        .unwrap();
    assert_eq!(next(&mut nodes).await, put("web-1"));

    let pool = vmctl_protocol::pool::PoolSpec {
        droplets: None,
        role: vmctl_protocol::pool::PoolRole::Web,
        queues: vec![],
    };
    store
        .put_spec::<PoolSpec>("web-1", pool, Precondition::None)
        .unwrap();
    store
        .delete::<NodeSpec>("web-1", Precondition::None)
        .unwrap();
    assert_eq!(
        next(&mut nodes).await,
        WatchEvent {
            kind: "node",
            name: "web-1".into(),
            deleted: true
        }
    );
}

#[tokio::test]
async fn no_op_writes_raise_no_watch_event() {
    let (_dir, store) = temp_store();
    store
        .put_spec("web-1", node("10.0.0.1"), Precondition::None)
        .unwrap();
    let mut nodes = store.watch::<NodeSpec>();

    store
        .put_spec("web-1", node("10.0.0.1"), Precondition::None)
        .unwrap();
    store
        .put_status::<NodeSpec>("web-1", Default::default(), Precondition::None)
        .unwrap();
    store
        .put_spec("web-2", node("10.0.0.2"), Precondition::None)
        .unwrap();
    // The first event is the real write, so the no-ops before it raised nothing.
    assert_eq!(next(&mut nodes).await, put("web-2"));
}

#[tokio::test]
async fn watch_events_wakes_a_follower() {
    let (_dir, store) = temp_store();
    let mut follow = store.watch_events();
    let appended = store.append_event(event("NodeReady")).unwrap();
    next(&mut follow).await;
    assert_eq!(store.events_after(0, 10).unwrap(), [appended]);
}

#[tokio::test]
async fn dropping_a_stream_ends_its_thread() {
    let (_dir, store) = temp_store();
    let nodes = store.watch::<NodeSpec>();
    let follow = store.watch_events();
    assert_eq!(store.active_watches(), 2);
    drop(nodes);
    drop(follow);
    wait_for_no_watches(&store).await;
}

async fn wait_for_no_watches(store: &Store) {
    let deadline = Instant::now() + DEADLINE;
    while store.active_watches() > 0 {
        assert!(
            Instant::now() < deadline,
            "{} watch threads still running after their streams were dropped",
            store.active_watches()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
