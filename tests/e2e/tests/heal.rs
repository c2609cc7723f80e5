//! Self-healing end to end: the real vmctld against the DigitalOcean simulator, whose droplets
//! are real sshd processes.

use std::time::Duration;

use serde_json::Value;
use vmctl_e2e::{
    bin,
    cloud::{CloudWorld, MARKER, MARKER_TEXT},
    count_reachable, wait_for, Vmctld,
};
use vmctl_testbed::generate_client_key;

fn reasons(v: &Vmctld, reason: &str) -> usize {
    v.events().iter().filter(|e| e["reason"] == reason).count()
}

/// Starts vmctld on a fresh world, applies a pool of `count`, and waits until every droplet is
/// a reachable node in the balancer.
fn converged(tmp: &std::path::Path, count: u32, healing: &str) -> (CloudWorld, Vmctld) {
    let (key, pubkey) = generate_client_key(tmp).unwrap();
    let world = CloudWorld::start(tmp, &pubkey);
    let args = world.vmctld_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let v = Vmctld::start(&tmp.join("data"), &bin("vmctl-agent"), &args);
    let toml = world.cluster_toml(&key, count, healing);
    let out = v.vmctl(&["apply", "-f", toml.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("the pool to converge", Duration::from_secs(90), || {
        let s = v.status();
        (s.nodes.len() == count as usize
            && count_reachable(&s, true) == count as usize
            && world.lb_members().len() == count as usize)
            .then_some(())
    });
    (world, v)
}

fn node_of_droplet(v: &Vmctld, id: u64) -> String {
    v.list("nodes")
        .iter()
        .find(|n| n["spec"]["droplet_id"] == id)
        .expect("node for droplet")["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string()
}

/// After a replacement: `count` droplets, none of them the old one, all in the balancer, all
/// registered and reachable, and exactly one replacement recorded for the failed node.
fn assert_replaced(world: &CloudWorld, v: &Vmctld, old: u64, old_node: &str, count: usize) {
    let ids = world.droplet_ids();
    assert_eq!(ids.len(), count, "no duplicate and nothing leaked: {ids:?}");
    assert!(!ids.contains(&old), "the dead droplet is deleted");
    assert_eq!(
        world.lb_members(),
        ids,
        "the balancer holds exactly the live droplets"
    );
    let names: std::collections::BTreeSet<String> =
        world.sim.droplets().into_iter().map(|d| d.name).collect();
    assert_eq!(names.len(), count, "droplet names are unique");
    let replacing: Vec<Value> = v
        .list("provisions")
        .into_iter()
        .filter(|p| p["spec"]["reason"]["node"] == old_node)
        .collect();
    assert_eq!(
        replacing.len(),
        1,
        "exactly one replacement for {old_node}: {replacing:?}"
    );
    assert_eq!(replacing[0]["status"]["step"], "done");
}

#[test]
fn a_hung_droplet_is_replaced_from_the_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let (world, v) = converged(tmp.path(), 3, "");
    let creates_before = world.creates();
    let victim = world.droplet_ids()[1];
    let victim_node = node_of_droplet(&v, victim);
    world.sim.hang_droplet(victim).unwrap();
    wait_for("the replacement to finish", Duration::from_secs(60), || {
        (reasons(&v, "ReplacementSucceeded") == 1).then_some(())
    });
    wait_for("3 reachable nodes", Duration::from_secs(20), || {
        (count_reachable(&v.status(), true) == 3).then_some(())
    });
    assert_replaced(&world, &v, victim, &victim_node, 3);
    assert_eq!(
        world.creates(),
        creates_before + 1,
        "one create for one failure"
    );
    let fresh = world
        .sim
        .droplets()
        .into_iter()
        .find(|d| d.image_id == world.image_id && !d.name.is_empty() && d.id > victim)
        .unwrap();
    let marker = std::fs::read_to_string(fresh.root.unwrap().join(MARKER)).unwrap();
    assert_eq!(
        marker, MARKER_TEXT,
        "the new droplet holds the snapshot's content"
    );
    for step in [
        "ReplacementStarted",
        "DropletCreated",
        "DropletActive",
        "AddedToLoadBalancer",
        "OldDropletDeleted",
    ] {
        assert!(reasons(&v, step) >= 1, "event {step} recorded");
    }
}

/// Whether the run reached the point to kill at, given the create count before the failure.
type KillPoint = dyn Fn(&CloudWorld, &Vmctld, usize) -> bool;

/// SIGKILL at three points of a replacement, then restart: each time exactly one replacement,
/// no duplicate droplet, nothing leaked, the balancer right.
#[test]
fn a_controller_killed_mid_replacement_finishes_exactly_one() {
    let tmp = tempfile::tempdir().unwrap();
    let (world, mut v) = converged(tmp.path(), 3, "max_replacements_per_hour = 20");
    let points: [(&str, Box<KillPoint>); 3] = [
        (
            "after the create was sent",
            Box::new(|w: &CloudWorld, _: &Vmctld, creates: usize| w.creates() > creates),
        ),
        (
            "while waiting for active",
            Box::new(|_: &CloudWorld, v: &Vmctld, _| {
                v.list("provisions")
                    .iter()
                    .any(|p| p["status"]["step"] == "wait_active")
            }),
        ),
        (
            "after the balancer add",
            Box::new(|w: &CloudWorld, _: &Vmctld, _| {
                w.lb_members().len() > 2 && w.droplet_ids().len() > 3
            }),
        ),
    ];
    for (round, (point, reached)) in points.iter().enumerate() {
        let creates = world.creates();
        let victim = world.droplet_ids()[0];
        let victim_node = node_of_droplet(&v, victim);
        if round == 2 {
            // The balancer add and the old droplet's delete follow each other within
            // milliseconds; slow every API answer so the kill lands between them.
            world.sim.set_faults(vmctl_testbed::cloud::Faults {
                latency: Duration::from_millis(1500),
                ..Default::default()
            });
        }
        world.sim.hang_droplet(victim).unwrap();
        wait_for(point, Duration::from_secs(60), || {
            reached(&world, &v, creates).then_some(())
        });
        v.kill();
        world
            .sim
            .set_faults(vmctl_testbed::cloud::Faults::default());
        eprintln!("round {round}: killed vmctld {point}");
        v.restart();
        wait_for(
            "the replacement to finish after the restart",
            Duration::from_secs(60),
            || (reasons(&v, "ReplacementSucceeded") == round + 1).then_some(()),
        );
        wait_for("3 reachable nodes", Duration::from_secs(30), || {
            (count_reachable(&v.status(), true) == 3).then_some(())
        });
        assert_replaced(&world, &v, victim, &victim_node, 3);
        assert_eq!(world.creates(), creates + 1, "{point}: exactly one create");
    }
}

#[test]
fn four_of_six_down_is_degraded_and_replaces_nothing_until_they_return() {
    let tmp = tempfile::tempdir().unwrap();
    let (world, v) = converged(tmp.path(), 6, "");
    let creates = world.creates();
    let ids = world.droplet_ids();
    for id in &ids[..4] {
        world.sim.hang_droplet(*id).unwrap();
    }
    let degraded = |v: &Vmctld| {
        v.list("pools")[0]["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "FleetDegraded" && c["status"] == "True")
    };
    wait_for("FleetDegraded", Duration::from_secs(30), || {
        degraded(&v).then_some(())
    });
    // Well past the failure grace: still nothing replaced.
    let until = std::time::Instant::now() + Duration::from_secs(8);
    while std::time::Instant::now() < until {
        assert_eq!(world.creates(), creates, "no replacement while degraded");
        std::thread::park_timeout(Duration::from_millis(200));
    }
    assert!(reasons(&v, "FleetDegraded") >= 1);
    for id in &ids[..4] {
        world.sim.revive_droplet(*id).unwrap();
    }
    wait_for("the condition to clear", Duration::from_secs(40), || {
        (!degraded(&v)).then_some(())
    });
    wait_for("6 reachable", Duration::from_secs(30), || {
        (count_reachable(&v.status(), true) == 6).then_some(())
    });
    if world.creates() != creates {
        for e in v.events().iter().rev() {
            eprintln!(
                "{} {} {}/{} {} {}",
                e["time"], e["type"], e["kind"], e["name"], e["reason"], e["message"]
            );
        }
    }
    assert_eq!(world.creates(), creates, "nothing was created");
    assert_eq!(world.droplet_ids(), ids, "nothing was deleted");
}

#[test]
fn an_existing_fleet_is_adopted_without_creating_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let (key, pubkey) = generate_client_key(tmp.path()).unwrap();
    let world = CloudWorld::start(tmp.path(), &pubkey);
    // A fleet that exists before vmctl: three droplets with the pool's tag.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let token = std::fs::read_to_string(&world.token_file).unwrap();
    let mut config = vmctl_controller::cloud::CloudConfig::new(
        vmctl_controller::cloud::CloudToken::new(&token, "test").unwrap(),
    );
    config.base_url = world.sim.base_url();
    let client = vmctl_controller::cloud::DoClient::new(config).unwrap();
    for i in 1..=3 {
        let req = vmctl_controller::cloud::CreateDroplet {
            name: format!("legacy-web-{i}"),
            region: "nyc3".into(),
            size: "s-1vcpu-1gb".into(),
            image: vmctl_controller::cloud::ImageRef::Id(world.image_id),
            vpc_uuid: None,
            tags: vec!["vmctl-e2e-web".into()],
            ssh_keys: vec![],
            user_data: None,
        };
        rt.block_on(client.create_droplet(&req)).unwrap();
    }
    wait_for("3 active droplets", Duration::from_secs(30), || {
        (world
            .sim
            .droplets()
            .iter()
            .filter(|d| d.status == "active")
            .count()
            == 3)
            .then_some(())
    });
    let creates = world.creates();
    let args = world.vmctld_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let v = Vmctld::start(&tmp.path().join("data"), &bin("vmctl-agent"), &args);
    let toml = world.cluster_toml(&key, 3, "");
    assert!(v
        .vmctl(&["apply", "-f", toml.to_str().unwrap()])
        .status
        .success());
    wait_for("3 adopted reachable nodes", Duration::from_secs(60), || {
        (count_reachable(&v.status(), true) == 3).then_some(())
    });
    let names: Vec<String> = v.status().nodes.iter().map(|n| n.name.clone()).collect();
    assert_eq!(names, vec!["legacy-web-1", "legacy-web-2", "legacy-web-3"]);
    assert_eq!(world.creates(), creates, "adoption creates nothing");
    assert_eq!(reasons(&v, "NodeAdopted"), 3);
}

#[test]
fn server_errors_and_429s_converge_within_the_request_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let (key, pubkey) = generate_client_key(tmp.path()).unwrap();
    let world = CloudWorld::start(tmp.path(), &pubkey);
    world.sim.set_faults(vmctl_testbed::cloud::Faults {
        error_rate: 0.2,
        force_429: 8,
        seed: 7,
        ..Default::default()
    });
    let args = world.vmctld_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let v = Vmctld::start(&tmp.path().join("data"), &bin("vmctl-agent"), &args);
    let toml = world.cluster_toml(&key, 4, "");
    assert!(v
        .vmctl(&["apply", "-f", toml.to_str().unwrap()])
        .status
        .success());
    wait_for(
        "4 reachable nodes through the faults",
        Duration::from_secs(120),
        || (count_reachable(&v.status(), true) == 4 && world.lb_members().len() == 4).then_some(()),
    );
    let ids = world.droplet_ids();
    assert_eq!(
        ids.len(),
        4,
        "no duplicate droplet despite 5xx answers: {ids:?}"
    );
    let log = world.sim.request_log();
    assert!(log.iter().any(|r| r.status >= 500), "faults were injected");
    assert!(log.iter().any(|r| r.status == 429), "429s were injected");
    for (i, r) in log.iter().enumerate() {
        let window = log[i..]
            .iter()
            .take_while(|o| o.at - r.at < chrono::Duration::seconds(60))
            .count();
        assert!(
            window <= 250,
            "{window} requests within a minute of {}",
            r.at
        );
    }
}
