//! The event log: order, sequence numbers, the cap and reading after a sequence number.

use super::{event, temp_store};
use crate::{Store, StoreOptions};

fn reasons(events: &[vmctl_protocol::event::Event]) -> Vec<&str> {
    events.iter().map(|e| e.reason.as_str()).collect()
}

#[test]
fn events_are_numbered_from_one_and_listed_newest_first() {
    let (_dir, store) = temp_store();
    for reason in ["A", "B", "C"] {
        store.append_event(event(reason)).unwrap();
    }
    let newest = store.events(10).unwrap();
    assert_eq!(reasons(&newest), ["C", "B", "A"]);
    assert_eq!(newest.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 2, 1]);
    assert_eq!(reasons(&store.events(2).unwrap()), ["C", "B"]);
}

#[test]
fn the_log_keeps_only_the_newest_cap_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), StoreOptions { event_cap: 3 }).unwrap();
    for reason in ["A", "B", "C", "D", "E"] {
        store.append_event(event(reason)).unwrap();
    }
    let kept = store.events(10).unwrap();
    assert_eq!(reasons(&kept), ["E", "D", "C"]);
    assert_eq!(kept.iter().map(|e| e.seq).collect::<Vec<_>>(), [5, 4, 3]);
}

#[test]
fn events_after_reads_oldest_first_past_a_seq() {
    let (_dir, store) = temp_store();
    for reason in ["A", "B", "C", "D"] {
        store.append_event(event(reason)).unwrap();
    }
    assert_eq!(
        reasons(&store.events_after(0, 10).unwrap()),
        ["A", "B", "C", "D"]
    );
    assert_eq!(reasons(&store.events_after(1, 2).unwrap()), ["B", "C"]);
    assert!(store.events_after(4, 10).unwrap().is_empty());
    assert!(store.events_after(u64::MAX, 10).unwrap().is_empty());
}

#[test]
fn the_store_assigns_seq_whatever_the_caller_sent() {
    let (_dir, store) = temp_store();
    let mut e = event("A");
    e.seq = 99;
    assert_eq!(store.append_event(e).unwrap().seq, 1);
}
