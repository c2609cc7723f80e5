//! The fleet against broken droplets: sshd killed and restarted, a rotated host key, nothing
//! listening, a refused client key, an unwritable agent folder and a wedged agent.
//!
//! Needs `cargo build -p vmctl-agent` first.

mod fleet_support;

use std::time::Duration;

use fleet_support::{target, wait_all_ready, wait_state, World};
use vmctl_controller::fleet::{
    Fleet, FleetError, FleetEvent, HostKeyStore, NodeTarget, SessionState,
};
use vmctl_protocol::agent::Op;

const WITHIN: Duration = Duration::from_secs(30);

fn down_with(kind: &'static str) -> impl Fn(&SessionState) -> bool {
    move |s| matches!(s, SessionState::Down { error, .. } if error.kind() == kind)
}

fn ready_since(fleet: &Fleet, node: &str) -> chrono::DateTime<chrono::Utc> {
    match fleet.state(node) {
        Some(SessionState::Ready { since, .. }) => since,
        other => panic!("{node} is not ready: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_sshd_drops_only_its_session_and_a_restart_brings_it_back() {
    let mut w = World::start("kill", 3);
    let names = w.names();
    w.ensure_all();
    wait_all_ready(&w.fleet, &names, WITHIN).await;
    let others: Vec<_> = names[1..]
        .iter()
        .map(|n| (n.clone(), ready_since(&w.fleet, n)))
        .collect();

    w.farm.kill_sshd(&names[0]).unwrap();
    // EOF on the socket, not a keepalive timeout (15 s), must be what notices.
    wait_state(&w.fleet, &names[0], "down", Duration::from_secs(2), |s| {
        matches!(s, SessionState::Down { .. })
    })
    .await;
    let err = w.fleet.call(&names[0], Op::Ping).await.unwrap_err();
    assert!(
        matches!(
            err,
            FleetError::NotConnected { .. } | FleetError::SessionClosed { .. }
        ),
        "{err}"
    );

    w.farm.start_sshd(&names[0]).unwrap();
    wait_state(
        &w.fleet,
        &names[0],
        "ready again",
        WITHIN,
        SessionState::is_ready,
    )
    .await;
    w.fleet.facts(&names[0]).await.unwrap();
    for (n, since) in others {
        assert_eq!(ready_since(&w.fleet, &n), since, "{n} was disturbed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_host_key_is_refused_until_the_pin_is_forgotten() {
    let mut w = World::start("rotate", 1);
    let node = w.names().remove(0);
    w.ensure_all();
    wait_state(&w.fleet, &node, "ready", WITHIN, SessionState::is_ready).await;
    let old = w.store.pinned(&node).unwrap().unwrap().fingerprint;

    w.farm.rotate_host_key(&node).unwrap();
    let ev = w
        .event("host key mismatch", WITHIN, |e| {
            matches!(e, FleetEvent::HostKeyMismatch { .. })
        })
        .await;
    let FleetEvent::HostKeyMismatch {
        pinned_fingerprint,
        presented_fingerprint,
        ..
    } = ev
    else {
        unreachable!()
    };
    assert_eq!(pinned_fingerprint, old);
    assert_ne!(presented_fingerprint, old);
    wait_state(
        &w.fleet,
        &node,
        "down with a host key mismatch",
        WITHIN,
        down_with("host_key_mismatch"),
    )
    .await;
    assert_eq!(
        w.store.pinned(&node).unwrap().unwrap().fingerprint,
        old,
        "a changed key is never pinned"
    );

    w.store.forget(&node);
    w.fleet.reconnect(&node);
    wait_state(
        &w.fleet,
        &node,
        "ready with the new key",
        WITHIN,
        SessionState::is_ready,
    )
    .await;
    assert_eq!(
        w.store.pinned(&node).unwrap().unwrap().fingerprint,
        presented_fingerprint
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_a_connect_error() {
    let w = World::start("unreach", 1);
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let t = NodeTarget {
        name: "ghost".into(),
        address: "127.0.0.1".into(),
        port,
        root: "/".into(),
    };
    w.fleet.ensure(t).unwrap();
    wait_state(
        &w.fleet,
        "ghost",
        "down with a connect error",
        WITHIN,
        down_with("connect"),
    )
    .await;
    let err = w.fleet.facts("ghost").await.unwrap_err();
    assert_eq!(err.kind(), "not_connected", "{err}");
    assert_eq!(
        w.fleet.facts("nobody").await.unwrap_err().kind(),
        "unknown_node"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_key_the_droplet_does_not_authorize_is_rejected() {
    let w = World::start("auth", 1);
    let node = w.names().remove(0);
    let (other_key, _) = vmctl_testbed::generate_client_key(&w.dir.path().join("other")).unwrap();
    let store = std::sync::Arc::new(vmctl_controller::fleet::MemoryHostKeyStore::default());
    let (fleet, _events) = Fleet::new(fleet_support::config(other_key, &w.agent), store);
    fleet.ensure(target(&w.farm.droplets()[0])).unwrap();
    wait_state(
        &fleet,
        &node,
        "down with auth rejected",
        WITHIN,
        down_with("auth_rejected"),
    )
    .await;
    fleet.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_agent_folder_fails_the_upload_and_heals_once_fixed() {
    let mut w = World::start("upload", 1);
    let node = w.names().remove(0);
    let bin_dir = w.farm.droplets()[0].root.join("var/lib/vmctl/bin");
    // A file where the folder should be: scp fails even for root (unlike chmod 0555).
    std::fs::remove_dir_all(&bin_dir).unwrap();
    std::fs::write(&bin_dir, b"not a folder").unwrap();
    w.ensure_all();
    let ev = w
        .event("upload failure", WITHIN, |e| {
            matches!(e, FleetEvent::AgentUploadFailed { .. })
        })
        .await;
    let FleetEvent::AgentUploadFailed { error, .. } = ev else {
        unreachable!()
    };
    assert_eq!(error.kind(), "upload", "{error}");
    wait_state(
        &w.fleet,
        &node,
        "down with an upload error",
        WITHIN,
        down_with("upload"),
    )
    .await;

    std::fs::remove_file(&bin_dir).unwrap();
    std::fs::create_dir(&bin_dir).unwrap();
    wait_state(
        &w.fleet,
        &node,
        "ready after the fix",
        WITHIN,
        SessionState::is_ready,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wedged_agent_times_out_calls_without_dropping_the_session() {
    use rustix::process::{kill_process, Pid, Signal};

    let w = World::start("wedge", 1);
    let node = w.names().remove(0);
    w.ensure_all();
    wait_state(&w.fleet, &node, "ready", WITHIN, SessionState::is_ready).await;
    let agent_pid = w.farm.droplets()[0]
        .processes()
        .into_iter()
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    let c = String::from_utf8_lossy(&c).replace('\0', " ");
                    c.contains("vmctl-agent") && c.contains(" serve ")
                })
                .unwrap_or(false)
        })
        .expect("the agent runs under the droplet's sshd");
    let pid = Pid::from_raw(agent_pid).unwrap();

    kill_process(pid, Signal::Stop).unwrap();
    let err = w
        .fleet
        .call_with_timeout(&node, Op::Ping, Duration::from_millis(300))
        .await
        .unwrap_err();
    kill_process(pid, Signal::Cont).unwrap();
    assert_eq!(err.kind(), "timeout", "{err}");
    assert!(w.fleet.state(&node).unwrap().is_ready());
    w.fleet.facts(&node).await.unwrap();
}
