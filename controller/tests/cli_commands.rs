//! The real `vmctl` binary against a fake vmctld (canned JSON on a unix socket or loopback
//! TCP): output formats, exit codes, validation before sending, and the bearer token.

mod cli_support;

use std::process::Stdio;
use std::time::Duration;

use chrono::DateTime;
use cli_support::{output, run, stderr, stdout, vmctl, FakeController, Reply, RUN_DEADLINE};
use tokio::io::{AsyncBufReadExt, BufReader};
use vmctl_protocol::{
    api::{
        ApplyResult, Change, ChangeAction, ClusterDocument, EventList, NodeView, PoolView,
        SnapshotRequested, StatusView,
    },
    event::{Event, EventType},
    node::{NodeSpec, NodeStatus},
    pool::PoolRole,
    provision::{ProvisionReason, ProvisionSpec, ProvisionStatus, ProvisionStep},
    snapshot::{SnapshotSpec, SnapshotStatus, SnapshotStep},
    Condition, ConditionStatus, Object, ObjectMeta,
};

const GOOD: &str = r#"name = "vmst"
[ssh]
private_key = "/etc/vmctl/id_ed25519"

[pools.web]
role = "web"

[[nodes]]
name = "web-1"
pool = "web"
address = "127.0.1.1"
"#;

fn ts(secs: i64) -> vmctl_protocol::Timestamp {
    DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
}

fn status_view() -> StatusView {
    let cond = |type_: &str, status, reason: &str| Condition {
        type_: type_.into(),
        status,
        reason: reason.into(),
        message: "m".into(),
        last_transition: ts(0),
    };
    let node = |name: &str, reachable: bool, conditions: Vec<Condition>| NodeView {
        name: name.into(),
        pool: "web".into(),
        address: "127.0.1.1:22".into(),
        reachable,
        agent_version: reachable.then(|| "0.1.0".into()),
        release: reachable.then(|| "v4.3.1".into()),
        load: reachable.then_some(0.25),
        memory_used_pct: reachable.then_some(41.6),
        disk_used_pct: reachable.then_some(12.0),
        last_seen: Some(ts(0)),
        conditions,
        // web-1 is a droplet its pool made, in the balancer; web-2 was listed by hand.
        droplet_id: reachable.then_some(11),
        droplet_status: reachable.then(|| "active".into()),
        in_load_balancer: reachable.then_some(true),
    };
    StatusView {
        cluster: Some("vmst".into()),
        pools: vec![
            PoolView {
                name: "web".into(),
                role: PoolRole::Web,
                ready: 1,
                total: 2,
                releases: vec!["v4.3.1".into()],
                desired: Some(2),
                failed: 1,
                droplet_ids: vec![11, 12],
                provisioning: vec!["web-7f3a".into()],
                newest_snapshot: Some("vmst-web-v4.3.1-20231114".into()),
            },
            PoolView {
                name: "exec".into(),
                role: PoolRole::Exec,
                ready: 0,
                total: 0,
                releases: vec![],
                desired: None,
                failed: 0,
                droplet_ids: vec![],
                provisioning: vec![],
                newest_snapshot: None,
            },
        ],
        nodes: vec![
            node(
                "web-1",
                true,
                vec![cond("Reachable", ConditionStatus::True, "Connected")],
            ),
            node(
                "web-2",
                false,
                vec![
                    cond("Reachable", ConditionStatus::False, "ConnectRefused"),
                    cond("HostKeyMismatch", ConditionStatus::True, "KeyChanged"),
                ],
            ),
        ],
    }
}

fn event(seq: u64, reason: &str) -> Event {
    Event {
        seq,
        time: ts(seq as i64),
        type_: EventType::Normal,
        kind: "node".into(),
        name: format!("web-{seq}"),
        reason: reason.into(),
        message: format!("event {seq}"),
    }
}

#[tokio::test]
async fn status_prints_tables_and_round_trips_json() {
    let fake = FakeController::unix().await;
    fake.reply("GET /v1/status", Reply::json(&status_view()));

    let out = run(&fake.socket, &["status"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("CLUSTER: vmst\n"), "{text}");
    let words = |prefix: &str| -> Vec<String> {
        let line = text.lines().find(|l| l.starts_with(prefix)).unwrap();
        line.split_whitespace().map(str::to_owned).collect()
    };
    assert_eq!(
        words("POOL"),
        [
            "POOL",
            "ROLE",
            "DESIRED",
            "READY",
            "FAILED",
            "PROVISIONING",
            "SNAPSHOT",
            "RELEASES"
        ]
    );
    assert_eq!(
        words("web "),
        [
            "web",
            "web",
            "2",
            "1/2",
            "1",
            "web-7f3a",
            "vmst-web-v4.3.1-20231114",
            "v4.3.1"
        ]
    );
    assert_eq!(
        words("exec "),
        ["exec", "exec", "-", "0/0", "0", "-", "-", "-"]
    );
    assert_eq!(words("NAME")[2..5], ["ADDRESS", "DROPLET", "LB"]);
    let web2 = text.lines().find(|l| l.starts_with("web-2")).unwrap();
    assert!(
        web2.ends_with("Reachable=False(ConnectRefused), HostKeyMismatch"),
        "{web2}"
    );
    assert_eq!(words("web-2")[3..5], ["-", "-"]);
    let web1 = text.lines().find(|l| l.starts_with("web-1")).unwrap();
    assert!(
        web1.contains("0.25") && web1.contains(" 42 ") && web1.ends_with(" -"),
        "{web1}"
    );
    assert_eq!(words("web-1")[3..5], ["11", "in"]);

    let out = run(&fake.socket, &["status", "-o", "json"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let back: StatusView = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(back, status_view());
    assert!(fake
        .requests()
        .iter()
        .all(|r| r.method == "GET" && r.uri == "/v1/status"));
}

#[tokio::test]
async fn status_watch_prints_successive_snapshots_when_not_a_tty() {
    let fake = FakeController::unix().await;
    fake.reply("GET /v1/status", Reply::json(&status_view()));
    let mut cmd = vmctl();
    cmd.arg("--socket")
        .arg(&fake.socket)
        .args(["status", "--watch", "--interval", "50ms"])
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    tokio::time::timeout(RUN_DEADLINE, async {
        while seen
            .iter()
            .filter(|l: &&String| l.starts_with("CLUSTER:"))
            .count()
            < 2
        {
            seen.push(lines.next_line().await.unwrap().expect("stdout closed"));
        }
    })
    .await
    .expect("two snapshots");
    child.kill().await.unwrap();
    let second = seen
        .iter()
        .rposition(|l| l.starts_with("CLUSTER:"))
        .unwrap();
    assert_eq!(
        seen[second - 1],
        "",
        "snapshots are separated by a blank line: {seen:?}"
    );
    assert!(
        !seen.concat().contains('\x1b'),
        "no ANSI codes when not a tty"
    );
}

#[tokio::test]
async fn events_print_oldest_first_and_json_as_served() {
    let fake = FakeController::unix().await;
    let list = EventList {
        events: vec![event(3, "C"), event(2, "B"), event(1, "A")],
    };
    fake.reply("GET /v1/events?limit=5", Reply::json(&list));

    let out = run(&fake.socket, &["events", "--limit", "5"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("TIME"), "{text}");
    assert!(
        lines[1].contains("node/web-1") && lines[1].ends_with("event 1"),
        "{text}"
    );
    assert!(lines[3].contains("node/web-3"), "{text}");

    let out = run(&fake.socket, &["events", "--limit", "5", "-o", "json"]).await;
    let back: EventList = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(back, list);
}

#[tokio::test]
async fn events_follow_long_polls_after_the_last_seq() {
    let fake = FakeController::unix().await;
    fake.reply(
        "GET /v1/events?limit=50",
        Reply::json(&EventList {
            events: vec![event(2, "B"), event(1, "A")],
        }),
    );
    fake.reply(
        "GET /v1/events?after=2&wait=25",
        Reply::json(&EventList {
            events: vec![event(3, "C")],
        }),
    );
    // The next poll is held, like a quiet log.
    fake.reply(
        "GET /v1/events?after=3&wait=25",
        Reply::json(&EventList { events: vec![] }).delayed(Duration::from_secs(60)),
    );
    let mut cmd = vmctl();
    cmd.arg("--socket")
        .arg(&fake.socket)
        .args(["events", "--follow", "-o", "json"])
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut got = Vec::new();
    tokio::time::timeout(RUN_DEADLINE, async {
        while got.len() < 3 {
            let line = lines.next_line().await.unwrap().expect("stdout closed");
            got.push(serde_json::from_str::<Event>(&line).unwrap().seq);
        }
    })
    .await
    .expect("three events");
    assert_eq!(got, [1, 2, 3]);
    // Wait for the held poll to arrive before stopping the child.
    let deadline = tokio::time::Instant::now() + RUN_DEADLINE;
    while !fake.requests().iter().any(|r| r.uri.contains("after=3")) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no poll after seq 3"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().await.unwrap();
}

#[tokio::test]
async fn apply_refuses_a_bad_file_and_sends_nothing() {
    let fake = FakeController::unix().await;
    let file = fake.dir.path().join("cluster.toml");
    let bad = GOOD.replace("pool = \"web\"", "pool = \"x\"").replace(
        "address = \"127.0.1.1\"",
        "address = \"127.0.1.1\"\nport = 0",
    );
    std::fs::write(&file, bad).unwrap();

    let out = run(&fake.socket, &["apply", "-f", file.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let f = file.display();
    assert!(
        err.contains(&format!(
            "error: {f}:12:8: nodes[0].port: must be between 1 and 65535, got 0\n"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "error: {f}:10:8: nodes[0].pool: unknown pool \"x\"; defined pools: web\n"
        )),
        "{err}"
    );
    assert!(err.contains("nothing was sent"), "{err}");
    assert!(stdout(&out).is_empty());
    assert!(fake.requests().is_empty(), "{:?}", fake.requests());
}

#[tokio::test]
async fn apply_sends_the_document_and_prints_changes() {
    let fake = FakeController::unix().await;
    let file = fake.dir.path().join("cluster.toml");
    std::fs::write(&file, GOOD).unwrap();
    let result = ApplyResult {
        dry_run: false,
        changes: vec![
            Change {
                kind: "node".into(),
                name: "web-1".into(),
                action: ChangeAction::Update,
                details: vec!["address: 127.0.1.2 -> 127.0.1.1".into()],
            },
            Change {
                kind: "pool".into(),
                name: "old".into(),
                action: ChangeAction::Delete,
                details: vec![],
            },
        ],
    };
    fake.reply("POST /v1/apply", Reply::json(&result));
    fake.reply(
        "POST /v1/diff",
        Reply::json(&ApplyResult {
            dry_run: true,
            ..result.clone()
        }),
    );

    let out = run(&fake.socket, &["apply", "-f", file.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "node/web-1 configured: address: 127.0.1.2 -> 127.0.1.1\npool/old deleted\n"
    );
    let reqs = fake.requests();
    assert_eq!(
        (reqs[0].method.as_str(), reqs[0].uri.as_str()),
        ("POST", "/v1/apply")
    );
    let sent: ClusterDocument = serde_json::from_str(&reqs[0].body).unwrap();
    assert_eq!(
        sent,
        vmctl_controller::config::parse_cluster("x", GOOD).unwrap()
    );

    let out = run(&fake.socket, &["diff", "-f", file.to_str().unwrap()]).await;
    assert!(
        out.status.success(),
        "diff exits 0 with changes: {}",
        stderr(&out)
    );
    assert_eq!(
        stdout(&out),
        "~ node/web-1\n    address: 127.0.1.2 -> 127.0.1.1\n- pool/old\n"
    );
    fake.reply(
        "POST /v1/diff",
        Reply::json(&ApplyResult {
            dry_run: true,
            changes: vec![],
        }),
    );
    let out = run(&fake.socket, &["diff", "-f", file.to_str().unwrap()]).await;
    assert_eq!(
        (out.status.code(), stdout(&out).as_str()),
        (Some(0), "no changes\n")
    );
}

#[tokio::test]
async fn get_lists_and_names_objects() {
    let fake = FakeController::unix().await;
    let node = Object {
        metadata: ObjectMeta {
            name: "web-1".into(),
            generation: 1,
            resource_version: 3,
            created_at: ts(0),
            updated_at: ts(0),
        },
        spec: NodeSpec {
            droplet_id: None,
            pool: "web".into(),
            address: "127.0.1.1".into(),
            port: 22,
            root: "/".into(),
        },
        status: NodeStatus::default(),
    };
    fake.reply("GET /v1/nodes", Reply::json(&vec![node.clone()]));

    let out = run(&fake.socket, &["get", "nodes"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out)
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("web-1  web   127.0.1.1:22"),
        "{}",
        stdout(&out)
    );

    let out = run(&fake.socket, &["get", "node", "web-1", "-o", "json"]).await;
    let back: Object<NodeSpec, NodeStatus> = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(back, node);

    let out = run(&fake.socket, &["get", "nodes", "web-9"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "error: node \"web-9\" not found\n");
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: name.into(),
        generation: 1,
        resource_version: 1,
        created_at: ts(0),
        updated_at: ts(0),
    }
}

fn provisions() -> Vec<Object<ProvisionSpec, ProvisionStatus>> {
    let replace = Object {
        metadata: meta("web-7f3a"),
        spec: ProvisionSpec {
            pool: "web".into(),
            droplet_name: "web-7f3a".into(),
            image_id: 5150,
            reason: ProvisionReason::Replace {
                node: "web-3".into(),
                droplet_id: 13,
                cause: "unreachable for 60s".into(),
            },
        },
        status: ProvisionStatus {
            step: ProvisionStep::WaitActive,
            droplet_id: Some(21),
            started_at: Some(ts(0)),
            ..ProvisionStatus::default()
        },
    };
    let scale_up = Object {
        metadata: meta("web-0c1d"),
        spec: ProvisionSpec {
            droplet_name: "web-0c1d".into(),
            reason: ProvisionReason::ScaleUp,
            ..replace.spec.clone()
        },
        status: ProvisionStatus {
            step: ProvisionStep::Failed,
            last_error: Some("create refused: 422 size unavailable".into()),
            ..ProvisionStatus::default()
        },
    };
    vec![replace, scale_up]
}

fn snapshot_jobs() -> Vec<Object<SnapshotSpec, SnapshotStatus>> {
    vec![Object {
        metadata: meta("web-snap-1"),
        spec: SnapshotSpec {
            pool: "web".into(),
            droplet_id: 11,
            name: "vmst-web-v4.3.1-20231114".into(),
        },
        status: SnapshotStatus {
            step: SnapshotStep::Done,
            action_id: Some(7),
            snapshot_id: Some("9001".into()),
            ..SnapshotStatus::default()
        },
    }]
}

#[tokio::test]
async fn get_pools_shows_the_managed_columns() {
    let fake = FakeController::unix().await;
    let pool = Object {
        metadata: meta("web"),
        spec: vmctl_protocol::pool::PoolSpec {
            role: PoolRole::Web,
            queues: vec![],
            droplets: Some(
                serde_json::from_value(serde_json::json!({
                    "count": 3, "region": "nyc3", "size": "s-2vcpu-4gb", "image": "base",
                }))
                .unwrap(),
            ),
        },
        status: vmctl_protocol::pool::PoolStatus {
            total: 3,
            ready: 2,
            failed: 1,
            desired: Some(3),
            nodes: vec!["web-a".into(), "web-b".into(), "web-c".into()],
            droplet_ids: vec![11, 12, 13],
            provisioning: vec!["web-7f3a".into()],
            newest_snapshot: Some("vmst-web-1".into()),
            ..Default::default()
        },
    };
    fake.reply("GET /v1/pools", Reply::json(&vec![pool]));
    let out = run(&fake.socket, &["get", "pools"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        [
            "NAME",
            "ROLE",
            "QUEUES",
            "DESIRED",
            "READY",
            "FAILED",
            "NODES",
            "DROPLETS",
            "PROVISIONING",
            "SNAPSHOT",
            "RELEASES"
        ]
    );
    assert_eq!(
        rows[1],
        [
            "web",
            "web",
            "-",
            "3",
            "2/3",
            "1",
            "web-a,web-b,web-c",
            "11,12,13",
            "web-7f3a",
            "vmst-web-1",
            "-"
        ]
    );
}

#[tokio::test]
async fn get_provisions_lists_reasons_steps_and_errors() {
    let fake = FakeController::unix().await;
    fake.reply("GET /v1/provisions", Reply::json(&provisions()));

    let out = run(&fake.socket, &["get", "provisions"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "POOL", "REASON", "STEP", "DROPLET", "AGE", "ERROR"]
    );
    // Ages depend on the wall clock; every other column is fixed.
    let replace: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        replace[..6],
        ["web-7f3a", "web", "replace", "web-3", "wait_active", "21"]
    );
    assert_eq!(replace.last(), Some(&"-"));
    let scale_up: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(
        scale_up[..5],
        ["web-0c1d", "web", "scale-up", "failed", "-"]
    );
    assert!(
        lines[2].ends_with("create refused: 422 size unavailable"),
        "{text}"
    );

    let out = run(&fake.socket, &["get", "provisions", "-o", "json"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let back: Vec<Object<ProvisionSpec, ProvisionStatus>> =
        serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(back, provisions());

    let out = run(
        &fake.socket,
        &["get", "provision", "web-0c1d", "-o", "json"],
    )
    .await;
    let one: Object<ProvisionSpec, ProvisionStatus> = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(one, provisions()[1]);

    let out = run(&fake.socket, &["get", "provisions", "web-9"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "error: provision \"web-9\" not found\n");

    fake.reply("GET /v1/provisions", Reply::json(&Vec::<()>::new()));
    let out = run(&fake.socket, &["get", "provisions"]).await;
    assert_eq!(stdout(&out), "No resources found.\n");
}

#[tokio::test]
async fn get_snapshots_lists_jobs_and_their_snapshot_ids() {
    let fake = FakeController::unix().await;
    fake.reply("GET /v1/snapshots", Reply::json(&snapshot_jobs()));

    let out = run(&fake.socket, &["get", "snapshots"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("NAME        POOL  DROPLET  STEP  SNAPSHOT ID  AGE"),
        "{text}"
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[..5], ["web-snap-1", "web", "11", "done", "9001"]);
    assert_eq!(row.last(), Some(&"-"));

    let out = run(&fake.socket, &["get", "snap", "-o", "json"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let back: Vec<Object<SnapshotSpec, SnapshotStatus>> =
        serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(back, snapshot_jobs());
}

#[tokio::test]
async fn snapshot_create_posts_and_reports_the_job_or_the_error() {
    let fake = FakeController::unix().await;
    fake.reply(
        "POST /v1/pools/web/snapshot",
        Reply::with_status(
            202,
            &SnapshotRequested {
                name: "web-snap-2".into(),
            },
        ),
    );
    let out = run(&fake.socket, &["snapshot", "create", "web"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "snapshot web-snap-2 requested for pool web\n");

    let out = run(&fake.socket, &["snapshot", "create", "web", "-o", "json"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let back: SnapshotRequested = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(back.name, "web-snap-2");

    fake.reply(
        "POST /v1/pools/nope/snapshot",
        Reply::with_status(
            404,
            &serde_json::json!({"code": "not_found", "message": "pool \"nope\" does not exist"}),
        ),
    );
    let out = run(&fake.socket, &["snapshot", "create", "nope"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "error: pool \"nope\" does not exist\n");
    assert!(stdout(&out).is_empty());

    fake.reply(
        "POST /v1/pools/exec/snapshot",
        Reply::with_status(
            400,
            &serde_json::json!({"code": "invalid", "message": "snapshots need a DigitalOcean API (--do-token-file)"}),
        ),
    );
    let out = run(&fake.socket, &["snapshot", "create", "exec"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "error: snapshots need a DigitalOcean API (--do-token-file)\n"
    );

    // A name that is not an object name is refused before anything is sent.
    let before = fake.requests().len();
    let out = run(&fake.socket, &["snapshot", "create", "../x"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("error: invalid pool name"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fake.requests().len(), before);

    let posts: Vec<String> = fake
        .requests()
        .into_iter()
        .map(|r| format!("{} {}", r.method, r.uri))
        .collect();
    assert_eq!(
        posts,
        [
            "POST /v1/pools/web/snapshot",
            "POST /v1/pools/web/snapshot",
            "POST /v1/pools/nope/snapshot",
            "POST /v1/pools/exec/snapshot"
        ]
    );
}

#[tokio::test]
async fn forget_hostkey_posts_and_reports_api_errors() {
    let fake = FakeController::unix().await;
    fake.reply("POST /v1/nodes/web-1/forget-hostkey", Reply::no_content());
    let out = run(&fake.socket, &["node", "forget-hostkey", "web-1"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("host key forgotten"));

    fake.reply(
        "POST /v1/nodes/web-9/forget-hostkey",
        Reply::with_status(
            404,
            &serde_json::json!({"code": "not_found", "message": "node \"web-9\" not found"}),
        ),
    );
    let out = run(&fake.socket, &["node", "forget-hostkey", "web-9"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "error: node \"web-9\" not found\n");
}

#[tokio::test]
async fn no_controller_is_a_plain_message() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("vmctld.sock");
    let out = run(&socket, &["status"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "error: no controller is answering on {} (is vmctld running? set --socket or VMCTL_SOCKET)\n",
            socket.display()
        )
    );
    // The same through the environment variable.
    let mut cmd = vmctl();
    cmd.env("VMCTL_SOCKET", &socket).arg("status");
    let out = output(cmd).await;
    assert!(
        stderr(&out).contains(&socket.display().to_string()),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn usage_errors_exit_2() {
    for args in [
        &["frobnicate"][..],
        &["get"],
        &["apply"],
        &["status", "--interval", "2"],
        &["snapshot"],
        &["snapshot", "create"],
        &["get", "droplets"],
        &["-o", "yaml", "status"],
    ] {
        let mut cmd = vmctl();
        cmd.args(args);
        let out = output(cmd).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
}

#[tokio::test]
async fn bearer_token_is_sent_over_tcp_and_never_printed() {
    let mut fake = FakeController::tcp().await;
    let url = fake.url.clone().unwrap();
    fake.reply("GET /v1/status", Reply::json(&status_view()));
    fake.reply(
        "GET /v1/pools",
        Reply::with_status(
            401,
            &serde_json::json!({"code": "unauthorized", "message": "bad token"}),
        ),
    );
    let token_file = fake.dir.path().join("token");
    std::fs::write(&token_file, "file-s3cret\n").unwrap();

    let mut cmd = vmctl();
    cmd.args([
        "--server",
        &url,
        "--token-file",
        token_file.to_str().unwrap(),
        "status",
    ]);
    let out = output(cmd).await;
    assert!(out.status.success(), "{}", stderr(&out));

    let mut cmd = vmctl();
    cmd.env("VMCTL_SERVER", &url)
        .env("VMCTL_TOKEN", "env-s3cret")
        .args(["get", "pools"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "error: bad token\n");
    assert!(!stdout(&out).contains("s3cret") && !stderr(&out).contains("s3cret"));

    let auth: Vec<Option<String>> = fake
        .requests()
        .into_iter()
        .map(|r| r.authorization)
        .collect();
    assert_eq!(
        auth,
        [
            Some("Bearer file-s3cret".to_owned()),
            Some("Bearer env-s3cret".to_owned())
        ]
    );

    // Nothing listening on a closed TCP port.
    fake.stop().await;
    drop(fake);
    let mut cmd = vmctl();
    cmd.args(["--server", &url, "status"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("set --server or VMCTL_SERVER"),
        "{}",
        stderr(&out)
    );
}
