//! The fleet against real sshd droplets: first contact (pin + upload), multiplexed calls, and
//! re-installing a changed agent binary everywhere.
//!
//! Needs `cargo build -p vmctl-agent` first.

mod fleet_support;

use std::collections::HashSet;
use std::io::Write;
use std::time::Duration;

use fleet_support::{wait_all_ready, World};
use vmctl_controller::fleet::{FleetEvent, HostKeyStore, SessionState};

const READY_WITHIN: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_droplets_get_the_agent_on_first_contact_and_answer_facts() {
    let mut w = World::start("ready", 10);
    let names = w.names();
    w.ensure_all();
    wait_all_ready(&w.fleet, &names, READY_WITHIN).await;

    let mut uploaded = HashSet::new();
    let mut pinned = HashSet::new();
    let mut ready_after_upload = HashSet::new();
    while uploaded.len() < names.len()
        || pinned.len() < names.len()
        || ready_after_upload.len() < names.len()
    {
        match w
            .event("upload, pin and ready events", READY_WITHIN, |_| true)
            .await
        {
            FleetEvent::AgentUploaded { node, sha256 } => {
                assert_eq!(sha256, w.fleet.agent().sha256());
                uploaded.insert(node);
            }
            FleetEvent::HostKeyPinned { node, .. } => {
                pinned.insert(node);
            }
            FleetEvent::Ready {
                node,
                uploaded: true,
                hello,
            } => {
                assert_eq!(hello.binary_sha256, w.fleet.agent().sha256());
                ready_after_upload.insert(node);
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    for d in w.farm.droplets() {
        assert!(w.store.pinned(&d.name).unwrap().is_some());
        let facts = w.fleet.facts(&d.name).await.unwrap();
        assert_eq!(facts.hostname, d.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_calls_on_one_session_all_answer() {
    let w = World::start("mux", 1);
    let names = w.names();
    w.ensure_all();
    wait_all_ready(&w.fleet, &names, READY_WITHIN).await;
    let calls = (0..50).map(|_| w.fleet.facts(&names[0]));
    let replies = futures::future::join_all(calls).await;
    for r in replies {
        assert_eq!(r.unwrap().hostname, names[0]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_agent_binary_is_reinstalled_on_every_node() {
    let mut w = World::start("refresh", 3);
    let names = w.names();
    // Point the fleet at a copy, so the test can change it.
    let copy = w.dir.path().join("vmctl-agent");
    std::fs::copy(&w.agent, &copy).unwrap();
    let (fleet, events) = vmctl_controller::fleet::Fleet::new(
        fleet_support::config(w.key.clone(), &copy),
        w.store.clone(),
    );
    w.fleet.shutdown();
    w.fleet = fleet;
    w.events = events;
    w.ensure_all();
    wait_all_ready(&w.fleet, &names, READY_WITHIN).await;
    let old = w.fleet.agent().sha256().to_owned();

    // Trailing bytes change the hash but not what the ELF binary does.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&copy)
        .unwrap()
        .write_all(b"\0vmctl-test")
        .unwrap();
    assert!(w.fleet.refresh_agent());
    let new = w.fleet.agent().sha256().to_owned();
    assert_ne!(old, new);

    let mut reinstalled = HashSet::new();
    while reinstalled.len() < names.len() {
        if let FleetEvent::Ready {
            node,
            hello,
            uploaded: true,
        } = w
            .event("ready after re-upload", READY_WITHIN, |e| {
                matches!(e, FleetEvent::Ready { .. })
            })
            .await
        {
            if hello.binary_sha256 == new {
                reinstalled.insert(node);
            }
        }
    }
    for n in &names {
        match w.fleet.state(n).unwrap() {
            SessionState::Ready { hello, .. } => assert_eq!(hello.binary_sha256, new),
            other => panic!("{n} is {other:?}"),
        }
        w.fleet.facts(n).await.unwrap();
    }
    assert!(!w.fleet.refresh_agent(), "an unchanged binary is not news");
}
