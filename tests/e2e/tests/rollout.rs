//! Upstream releases end to end: the testbed's git upstream and GitHub API, droplets with
//! Mastodon stand-ins, and the real vmctld rolling the fleet.

use std::{collections::BTreeMap, path::Path, time::Duration};

use serde_json::Value;
use vmctl_e2e::{bin, cloud::CloudWorld, count_reachable, wait_for, Vmctld};
use vmctl_testbed::{generate_client_key, stub_dir, Upstream};

fn current_rollout(v: &Vmctld) -> Value {
    let out = v.vmctl(&["rollout", "status", "-o", "json"]);
    assert!(
        out.status.success(),
        "rollout status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn cluster_toml(
    world: &CloudWorld,
    key: &Path,
    upstream: &Upstream,
    api: &str,
    hold: &str,
) -> std::path::PathBuf {
    cluster_toml_with(world, key, upstream, api, hold, "15s")
}

fn cluster_toml_with(
    world: &CloudWorld,
    key: &Path,
    upstream: &Upstream,
    api: &str,
    hold: &str,
    healthy_deadline: &str,
) -> std::path::PathBuf {
    let text = format!(
        r#"name = "e2e"
probe_interval = "1s"
call_timeout = "5s"
connect_timeout = "5s"

[ssh]
private_key = "{key}"

[release]
repo_url = "{repo}"
github_api = "{api}"
check_interval = "1s"
max_parallel = 1
min_healthy_time = "1s"
healthy_deadline = "{healthy_deadline}"
progress_deadline = "120s"

[release.policy]
soak = "0s"
hold = "{hold}"

[pools.sidekiq]
role = "sidekiq"
queues = ["default", "ingress", "push", "pull", "mailers"]
[pools.sidekiq.droplets]
count = 2
region = "nyc3"
size = "s-1vcpu-1gb"
image = "e2e-base"
root = "{root}"

[pools.exec]
role = "exec"
queues = ["scheduler"]
[pools.exec.droplets]
count = 1
region = "nyc3"
size = "s-1vcpu-1gb"
image = "e2e-base"
root = "{root}"

[pools.web]
role = "web"
[pools.web.droplets]
count = 2
region = "nyc3"
size = "s-1vcpu-1gb"
image = "e2e-base"
load_balancer = "{lb}"
root = "{root}"

[pools.streaming]
role = "streaming"
[pools.streaming.droplets]
count = 1
region = "nyc3"
size = "s-1vcpu-1gb"
image = "e2e-base"
root = "{root}"
"#,
        key = key.display(),
        repo = upstream.path().display(),
        lb = world.lb,
        root = world.root_template(),
        healthy_deadline = healthy_deadline,
    );
    let path = world.dir.join("cluster.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Web health of each balancer member, straight from the stand-in: (member, healthy).
fn lb_health(world: &CloudWorld) -> Vec<(u64, bool)> {
    let members = world.lb_members();
    world
        .sim
        .droplets()
        .into_iter()
        .filter(|d| members.contains(&d.id))
        .map(|d| {
            let ok = d.address.is_some_and(|a| {
                let addr = std::net::SocketAddr::from((a, 3000));
                std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok_and(
                    |mut s| {
                        use std::io::{Read, Write};
                        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                        let _ = s.write_all(b"GET /health HTTP/1.0\r\nHost: x\r\n\r\n");
                        let mut buf = String::new();
                        let _ = s.read_to_string(&mut buf);
                        buf.starts_with("HTTP/1.1 200") || buf.starts_with("HTTP/1.0 200")
                    },
                )
            });
            (d.id, ok)
        })
        .collect()
}

fn stub_calls(world: &CloudWorld) -> Vec<(String, Value)> {
    let mut calls = Vec::new();
    for d in world.sim.droplets() {
        let Some(root) = d.root else { continue };
        let Ok(text) = std::fs::read_to_string(root.join("var/log/vmctl-stubs.log")) else {
            continue;
        };
        for line in text.lines() {
            if let Ok(v) = serde_json::from_str::<Value>(line) {
                calls.push((d.name.clone(), v));
            }
        }
    }
    calls
}

fn is_migrate(call: &Value, pre: bool) -> bool {
    let args: Vec<&str> = call["args"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let skip = call["env"]["SKIP_POST_DEPLOYMENT_MIGRATIONS"].as_str() == Some("true");
    args.contains(&"db:migrate") && skip == pre
}

#[test]
fn a_security_release_rolls_through_the_fleet_in_order_with_migrations_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (key, pubkey) = generate_client_key(tmp.path()).unwrap();
    let stubs = stub_dir(&tmp.path().join("stubs"), &bin("vmctl-testbed")).unwrap();
    let world = CloudWorld::start_with_stubs(tmp.path(), &pubkey, Some(stubs));
    let upstream = Upstream::create(&tmp.path().join("upstream")).unwrap();
    let api = upstream.serve("127.0.0.1:0".parse().unwrap()).unwrap();
    let args = world.vmctld_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let v = Vmctld::start(&tmp.path().join("data"), &bin("vmctl-agent"), &args);

    // Install v4.3.0 on a fresh fleet.
    let toml = cluster_toml(&world, &key, &upstream, api.base_url(), "v4.3.0");
    let out = v.vmctl(&["apply", "-f", toml.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("6 reachable nodes", Duration::from_secs(90), || {
        (count_reachable(&v.status(), true) == 6).then_some(())
    });
    wait_for(
        "v4.3.0 installed everywhere",
        Duration::from_secs(120),
        || {
            let r = current_rollout(&v);
            assert_ne!(r["status"]["phase"], "reverted", "install failed: {r}");
            (r["spec"]["target"] == "v4.3.0" && r["status"]["phase"] == "done").then_some(())
        },
    );
    wait_for(
        "facts to show v4.3.0 everywhere",
        Duration::from_secs(20),
        || {
            v.status()
                .nodes
                .iter()
                .all(|n| n.release.as_deref() == Some("v4.3.0"))
                .then_some(())
        },
    );

    // Roll to the security release, sampling the balancer against real health throughout.
    let toml = cluster_toml(&world, &key, &upstream, api.base_url(), "v4.3.1");
    assert!(v
        .vmctl(&["apply", "-f", toml.to_str().unwrap()])
        .status
        .success());
    let mut samples = 0;
    let mut violations = Vec::new();
    wait_for("v4.3.1 rolled out", Duration::from_secs(180), || {
        for (id, healthy) in lb_health(&world) {
            samples += 1;
            if !healthy {
                violations.push(id);
            }
        }
        let r = current_rollout(&v);
        assert_ne!(r["status"]["phase"], "reverted", "rollout failed: {r}");
        (r["spec"]["target"] == "v4.3.1" && r["status"]["phase"] == "done").then_some(())
    });
    eprintln!("balancer sampled {samples} times");
    assert!(samples > 10, "the balancer was sampled throughout");
    assert!(
        violations.is_empty(),
        "the balancer held droplets failing /health: {violations:?}"
    );
    wait_for(
        "facts to show v4.3.1 everywhere",
        Duration::from_secs(20),
        || {
            v.status()
                .nodes
                .iter()
                .all(|n| n.release.as_deref() == Some("v4.3.1"))
                .then_some(())
        },
    );

    wait_for(
        "every node reports a pure v4.3.1 tree",
        Duration::from_secs(20),
        || {
            v.status()
                .nodes
                .iter()
                .all(|n| {
                    n.conditions.iter().any(|c| {
                        c.type_ == "CodePurity" && c.status == vmctl_protocol::ConditionStatus::True
                    })
                })
                .then_some(())
        },
    );
    let calls = stub_calls(&world);
    let count = |pre| {
        calls
            .iter()
            .filter(|(_, c)| {
                is_migrate(c, pre) && c["cwd"].as_str().is_some_and(|d| d.contains("v4.3.1"))
            })
            .count()
    };
    assert_eq!(
        count(true),
        1,
        "pre-deploy migrations ran exactly once for v4.3.1"
    );
    assert_eq!(
        count(false),
        1,
        "post-deploy migrations ran exactly once for v4.3.1"
    );
    let exec_calls: Vec<&(String, Value)> = calls
        .iter()
        .filter(|(n, c)| {
            is_migrate(c, true)
                && n.contains("exec")
                && c["cwd"].as_str().is_some_and(|d| d.contains("v4.3.1"))
        })
        .collect();
    assert_eq!(exec_calls.len(), 1, "migrations ran on the exec node");
    // Every node prepared v4.3.1 (bundle install in its release dir) before the pre-deploy migration.
    let pre_at = calls
        .iter()
        .find(|(_, c)| {
            is_migrate(c, true) && c["cwd"].as_str().is_some_and(|d| d.contains("v4.3.1"))
        })
        .unwrap()
        .1["at_ms"]
        .as_u64()
        .unwrap();
    let mut installs: BTreeMap<String, u64> = BTreeMap::new();
    for (n, c) in &calls {
        let args: Vec<&str> = c["args"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if c["cmd"] == "bundle"
            && args.first() == Some(&"install")
            && c["cwd"].as_str().is_some_and(|d| d.contains("v4.3.1"))
        {
            installs.insert(n.clone(), c["at_ms"].as_u64().unwrap());
        }
    }
    assert_eq!(installs.len(), 6, "prepared on every node: {installs:?}");
    assert!(
        installs.values().all(|t| *t <= pre_at),
        "prepare finished everywhere before the migration"
    );
    // The old release is kept.
    for d in world.sim.droplets() {
        let releases = d.root.unwrap().join("home/mastodon/releases");
        assert!(
            releases.join("v4.3.0").is_dir() && releases.join("v4.3.1").is_dir(),
            "{} keeps both releases",
            d.name
        );
    }
    let events = v.events();
    assert!(events.iter().any(|e| e["reason"] == "RolloutSucceeded"));
    assert!(
        events
            .iter()
            .any(|e| e["reason"] == "SnapshotRequested" && e["kind"] == "rollout"),
        "snapshots refreshed"
    );

    // Undo: back to v4.3.0, and v4.3.1 stays withdrawn until an operator retries it.
    let out = v.vmctl(&["rollout", "undo"]);
    assert!(
        out.status.success(),
        "undo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("the fleet back on v4.3.0", Duration::from_secs(120), || {
        let r = current_rollout(&v);
        (r["spec"]["target"] == "v4.3.0" && r["status"]["phase"] == "done").then_some(())
    });
    std::thread::park_timeout(Duration::from_secs(3));
    assert_eq!(
        current_rollout(&v)["spec"]["target"],
        "v4.3.0",
        "a withdrawn release is not rolled out again"
    );
    assert!(v.vmctl(&["release", "retry", "v4.3.1"]).status.success());
    wait_for(
        "v4.3.1 again after the retry",
        Duration::from_secs(120),
        || {
            let r = current_rollout(&v);
            (r["spec"]["target"] == "v4.3.1" && r["status"]["phase"] == "done").then_some(())
        },
    );
}

/// A fleet with every Mastodon node on `hold`, installed through a first rollout.
fn installed(
    tmp: &Path,
    hold: &str,
    healthy_deadline: &str,
) -> (
    CloudWorld,
    Upstream,
    vmctl_testbed::UpstreamServer,
    std::path::PathBuf,
    Vmctld,
) {
    let (key, pubkey) = generate_client_key(tmp).unwrap();
    let stubs = stub_dir(&tmp.join("stubs"), &bin("vmctl-testbed")).unwrap();
    let world = CloudWorld::start_with_stubs(tmp, &pubkey, Some(stubs));
    let upstream = Upstream::create(&tmp.join("upstream")).unwrap();
    let api = upstream.serve("127.0.0.1:0".parse().unwrap()).unwrap();
    let args = world.vmctld_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let v = Vmctld::start(&tmp.join("data"), &bin("vmctl-agent"), &args);
    let toml = cluster_toml_with(
        &world,
        &key,
        &upstream,
        api.base_url(),
        hold,
        healthy_deadline,
    );
    let out = v.vmctl(&["apply", "-f", toml.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for(
        &format!("{hold} installed everywhere"),
        Duration::from_secs(150),
        || {
            let r = current_rollout(&v);
            assert_ne!(r["status"]["phase"], "reverted", "install failed: {r}");
            (r["spec"]["target"] == hold && r["status"]["phase"] == "done").then_some(())
        },
    );
    wait_for(
        "facts to show the release everywhere",
        Duration::from_secs(20),
        || {
            v.status()
                .nodes
                .iter()
                .all(|n| n.release.as_deref() == Some(hold))
                .then_some(())
        },
    );
    (world, upstream, api, key, v)
}

#[test]
fn a_release_that_fails_health_is_reverted_and_not_retried() {
    let tmp = tempfile::tempdir().unwrap();
    let (world, upstream, api, key, v) = installed(tmp.path(), "v4.4.0", "4s");
    let toml = cluster_toml_with(&world, &key, &upstream, api.base_url(), "v4.4.1", "4s");
    assert!(v
        .vmctl(&["apply", "-f", toml.to_str().unwrap()])
        .status
        .success());
    let r = wait_for(
        "the v4.4.1 rollout to end",
        Duration::from_secs(120),
        || {
            let r = current_rollout(&v);
            (r["spec"]["target"] == "v4.4.1"
                && (r["status"]["phase"] == "reverted" || r["status"]["phase"] == "done"))
                .then_some(r)
        },
    );
    assert_eq!(r["status"]["phase"], "reverted", "{r}");
    let error = r["status"]["last_error"].as_str().unwrap();
    assert!(error.contains("health"), "{error}");
    let switched: Vec<&str> = r["status"]["switched"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let webs: Vec<&str> = switched
        .iter()
        .copied()
        .filter(|n| n.contains("-web-"))
        .collect();
    assert_eq!(
        webs.len(),
        1,
        "only the first web node was touched: {switched:?}"
    );
    assert!(
        !switched.iter().any(|n| n.contains("streaming")),
        "streaming never switched: {switched:?}"
    );
    wait_for("every node back on v4.4.0", Duration::from_secs(20), || {
        v.status()
            .nodes
            .iter()
            .all(|n| n.release.as_deref() == Some("v4.4.0"))
            .then_some(())
    });
    wait_for(
        "both web nodes back in the balancer",
        Duration::from_secs(20),
        || (world.lb_members().len() == 2).then_some(()),
    );
    assert!(
        lb_health(&world).iter().all(|(_, ok)| *ok),
        "the balancer holds only healthy web nodes"
    );
    assert!(v.events().iter().any(|e| e["reason"] == "RolloutFailed"));
    // The failed release is not retried on the next feed checks.
    let rollouts_before = v.vmctl(&["rollout", "status", "-o", "json"]);
    std::thread::park_timeout(Duration::from_secs(4));
    let after = current_rollout(&v);
    assert_eq!(
        after["metadata"]["name"],
        serde_json::from_slice::<Value>(&rollouts_before.stdout).unwrap()["metadata"]["name"]
    );
    assert_eq!(after["status"]["phase"], "reverted");
}

#[test]
fn a_controller_killed_at_random_points_of_rollouts_finishes_each_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (world, upstream, api, key, mut v) = installed(tmp.path(), "v4.3.0", "15s");
    for seed in 1..=10u64 {
        let tag = format!("v4.3.{}", seed + 1);
        if upstream.tag_commit(&tag).unwrap().is_none() {
            upstream.publish(&tag, "Fixes.", false, true).unwrap();
        }
        let toml = cluster_toml_with(&world, &key, &upstream, api.base_url(), &tag, "15s");
        assert!(v
            .vmctl(&["apply", "-f", toml.to_str().unwrap()])
            .status
            .success());
        wait_for(
            &format!("the {tag} rollout to start"),
            Duration::from_secs(30),
            || (current_rollout(&v)["spec"]["target"] == tag.as_str()).then_some(()),
        );
        // A pseudo-random kill point within the rollout, from the seed.
        let delay = Duration::from_millis(seed.wrapping_mul(2_654_435_761) % 6_000);
        std::thread::park_timeout(delay);
        v.kill();
        eprintln!("seed {seed}: killed vmctld {delay:?} into the {tag} rollout");
        v.restart();
        let r = wait_for(
            &format!("{tag} to finish after the restart"),
            Duration::from_secs(120),
            || {
                let r = current_rollout(&v);
                assert_ne!(r["status"]["phase"], "reverted", "seed {seed}: {r}");
                (r["spec"]["target"] == tag.as_str() && r["status"]["phase"] == "done").then_some(r)
            },
        );
        assert_eq!(r["spec"]["target"], tag.as_str());
        let calls = stub_calls(&world);
        for pre in [true, false] {
            let n = calls
                .iter()
                .filter(|(_, c)| {
                    is_migrate(c, pre) && c["cwd"].as_str().is_some_and(|d| d.ends_with(&tag))
                })
                .count();
            assert_eq!(
                n,
                1,
                "seed {seed}: {} migrations ran exactly once",
                if pre { "pre-deploy" } else { "post-deploy" }
            );
        }
        wait_for(
            "both web nodes in the balancer",
            Duration::from_secs(20),
            || (world.lb_members().len() == 2).then_some(()),
        );
        assert!(
            lb_health(&world).iter().all(|(_, ok)| *ok),
            "seed {seed}: every balancer member is healthy"
        );
    }
}

#[test]
fn a_prepare_failing_on_one_node_switches_nothing_and_names_its_stderr() {
    let tmp = tempfile::tempdir().unwrap();
    let (world, upstream, api, key, v) = installed(tmp.path(), "v4.3.0", "15s");
    let victim = world.sim.droplets().into_iter().next().unwrap();
    let knobs = victim.root.unwrap().join("etc/vmctl-testbed");
    std::fs::create_dir_all(&knobs).unwrap();
    std::fs::write(
        knobs.join("fail-bundle-install"),
        "No space left on device while installing gems",
    )
    .unwrap();
    let toml = cluster_toml(&world, &key, &upstream, api.base_url(), "v4.3.1");
    assert!(v
        .vmctl(&["apply", "-f", toml.to_str().unwrap()])
        .status
        .success());
    let r = wait_for(
        "the v4.3.1 rollout to fail",
        Duration::from_secs(120),
        || {
            let r = current_rollout(&v);
            (r["spec"]["target"] == "v4.3.1" && r["status"]["phase"] == "reverted").then_some(r)
        },
    );
    assert!(
        r["status"]["switched"].as_array().unwrap().is_empty(),
        "no node switched: {r}"
    );
    let failed = v
        .events()
        .into_iter()
        .find(|e| e["reason"] == "RolloutFailed")
        .expect("a RolloutFailed event");
    let message = failed["message"].as_str().unwrap();
    assert!(
        message.contains(&victim.name) && message.contains("No space left on device"),
        "{message}"
    );
    assert!(
        v.status()
            .nodes
            .iter()
            .all(|n| n.release.as_deref() == Some("v4.3.0")),
        "every node still runs v4.3.0"
    );
}
