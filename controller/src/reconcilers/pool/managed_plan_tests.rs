//! Table-style tests of the managed pool plan: desired and observed state in, actions out.

use std::time::Duration;

use chrono::DateTime;
use vmctl_protocol::{
    cluster::HealingPolicy,
    meta::{Condition, ConditionStatus, Timestamp},
    node::{NodeSpec, NodeStatus, COND_REACHABLE},
    pool::{DropletTemplate, SnapshotPolicy},
    provision::{ProvisionReason, ProvisionSpec, ProvisionStatus, ProvisionStep},
};

use super::managed_plan::*;

fn at(s: i64) -> Timestamp {
    DateTime::from_timestamp(s, 0).unwrap()
}

fn template(count: u32, lb: bool) -> DropletTemplate {
    DropletTemplate {
        count,
        region: "nyc3".into(),
        size: "s".into(),
        image: "base".into(),
        tags: vec![],
        vpc_uuid: None,
        ssh_keys: vec![],
        load_balancer: lb.then(|| "lb".into()),
        startup_grace: Duration::from_secs(10),
        failure_grace: Duration::from_secs(60),
        root: "/".into(),
        snapshot: SnapshotPolicy::default(),
    }
}

fn droplet(id: u64, status: &str) -> DropletObs {
    DropletObs {
        id,
        name: format!("c-web-{id}"),
        status: status.into(),
        address: Some(format!("127.9.0.{id}")),
        created_at: at(0),
    }
}

struct World {
    specs: Vec<NodeSpec>,
    statuses: Vec<NodeStatus>,
    provisions: Vec<(ProvisionSpec, ProvisionStatus)>,
}

fn reachable(up: bool, since: i64) -> NodeStatus {
    NodeStatus {
        reachable: up,
        conditions: vec![Condition {
            type_: COND_REACHABLE.into(),
            status: if up {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            },
            reason: "r".into(),
            message: "m".into(),
            last_transition: at(since),
        }],
        ..Default::default()
    }
}

fn world(nodes: &[(u64, bool, i64)]) -> World {
    World {
        specs: nodes
            .iter()
            .map(|(id, _, _)| NodeSpec {
                pool: "web".into(),
                address: "a".into(),
                port: 22,
                root: "/".into(),
                droplet_id: Some(*id),
            })
            .collect(),
        statuses: nodes
            .iter()
            .map(|(_, up, since)| reachable(*up, *since))
            .collect(),
        provisions: vec![],
    }
}

fn names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("c-web-{i}")).collect()
}

fn observe<'a>(
    w: &'a World,
    node_names: &'a [String],
    t: &'a DropletTemplate,
    healing: &'a HealingPolicy,
    droplets: &'a [DropletObs],
    lb: Option<&'a std::collections::BTreeSet<u64>>,
    now: i64,
) -> PoolObserved<'a> {
    let unhealthy = w.statuses.iter().filter(|s| !s.reachable).count() as u32;
    PoolObserved {
        cluster: "c",
        pool: "web",
        template: t,
        healing,
        droplets,
        nodes: w
            .specs
            .iter()
            .zip(&w.statuses)
            .zip(node_names)
            .map(|((spec, status), name)| NodeObs {
                name,
                spec,
                status,
                created_at: at(0),
            })
            .collect(),
        provisions: w
            .provisions
            .iter()
            .zip(node_names.iter().chain(std::iter::repeat(&String::new())))
            .map(|((spec, status), _)| ProvisionObs {
                name: &spec.droplet_name,
                spec,
                status,
            })
            .collect(),
        lb_members: lb,
        draining: Default::default(),
        fleet_total: w.specs.len() as u32,
        fleet_unhealthy: unhealthy,
        replacements_last_hour: 0,
        degraded_cleared_at: None,
        name_seed: 42,
        now: at(now),
    }
}

fn replacements(p: &PoolPlan) -> Vec<String> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            PoolAction::StartProvision {
                reason: ProvisionReason::Replace { node, .. },
                ..
            } => Some(node.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn an_existing_fleet_is_adopted_and_nothing_is_created() {
    let w = World {
        specs: vec![],
        statuses: vec![],
        provisions: vec![],
    };
    let t = template(3, false);
    let h = HealingPolicy::default();
    let ds = [
        droplet(1, "active"),
        droplet(2, "active"),
        droplet(3, "active"),
    ];
    let p = plan(&observe(&w, &[], &t, &h, &ds, None, 100));
    let registered = p
        .actions
        .iter()
        .filter(|a| matches!(a, PoolAction::RegisterNode { .. }))
        .count();
    assert_eq!(registered, 3);
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, PoolAction::StartProvision { .. })),
        "{:?}",
        p.actions
    );
}

#[test]
fn a_node_is_replaced_only_after_its_failure_grace() {
    let w = world(&[(1, true, 0), (2, false, 100), (3, true, 0)]);
    let n = names(3);
    let (t, h) = (template(3, false), HealingPolicy::default());
    let ds = [
        droplet(1, "active"),
        droplet(2, "active"),
        droplet(3, "active"),
    ];
    let early = plan(&observe(&w, &n, &t, &h, &ds, None, 150));
    assert!(replacements(&early).is_empty());
    assert_eq!(
        early.recheck_in.map(|d| d.as_secs()),
        Some(10),
        "look again when the grace ends"
    );
    let late = plan(&observe(&w, &n, &t, &h, &ds, None, 161));
    assert_eq!(replacements(&late), vec!["c-web-2"]);
    assert_eq!(late.failed.len(), 1);
}

#[test]
fn startup_grace_protects_a_new_droplet() {
    let w = world(&[(1, false, 0)]);
    let n = names(1);
    let (mut t, h) = (template(1, false), HealingPolicy::default());
    t.startup_grace = Duration::from_secs(100);
    let ds = [droplet(1, "active")];
    assert!(replacements(&plan(&observe(&w, &n, &t, &h, &ds, None, 150))).is_empty());
    assert_eq!(
        replacements(&plan(&observe(&w, &n, &t, &h, &ds, None, 161))),
        vec!["c-web-1"]
    );
}

#[test]
fn a_powered_off_droplet_fails_at_once() {
    let w = world(&[(1, true, 0), (2, true, 0)]);
    let n = names(2);
    let (t, h) = (template(2, false), HealingPolicy::default());
    let ds = [droplet(1, "active"), droplet(2, "off")];
    assert_eq!(
        replacements(&plan(&observe(&w, &n, &t, &h, &ds, None, 1))),
        vec!["c-web-2"]
    );
}

#[test]
fn four_of_six_down_is_degraded_and_replaces_nothing() {
    let w = world(&[
        (1, false, 0),
        (2, false, 0),
        (3, false, 0),
        (4, false, 0),
        (5, true, 0),
        (6, true, 0),
    ]);
    let n = names(6);
    let (t, h) = (template(6, false), HealingPolicy::default());
    let ds: Vec<_> = (1..=6).map(|i| droplet(i, "active")).collect();
    let p = plan(&observe(&w, &n, &t, &h, &ds, None, 1000));
    assert!(p.degraded.is_some());
    assert!(replacements(&p).is_empty());
    assert!(!p
        .actions
        .iter()
        .any(|a| matches!(a, PoolAction::StartProvision { .. })));
}

#[test]
fn one_replacement_at_a_time_per_pool_and_none_twice_for_a_node() {
    let mut w = world(&[
        (1, false, 0),
        (2, false, 0),
        (3, true, 0),
        (4, true, 0),
        (5, true, 0),
        (6, true, 0),
    ]);
    w.provisions.push((
        ProvisionSpec {
            pool: "web".into(),
            droplet_name: "c-web-new".into(),
            image_id: 1,
            reason: ProvisionReason::Replace {
                node: "c-web-1".into(),
                droplet_id: 1,
                cause: "x".into(),
            },
        },
        ProvisionStatus {
            step: ProvisionStep::WaitActive,
            droplet_id: Some(9),
            ..Default::default()
        },
    ));
    let n = names(6);
    let (t, h) = (template(6, false), HealingPolicy::default());
    let ds: Vec<_> = (1..=6).map(|i| droplet(i, "active")).collect();
    let p = plan(&observe(&w, &n, &t, &h, &ds, None, 1000));
    assert!(replacements(&p).is_empty(), "{:?}", p.actions);
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, PoolAction::StartProvision { .. })),
        "the in-flight replacement keeps the count"
    );
}

#[test]
fn the_hourly_cap_and_the_failure_backoff_hold_replacements() {
    let w = world(&[(1, false, 0), (2, true, 0), (3, true, 0)]);
    let n = names(3);
    let t = template(3, false);
    let ds: Vec<_> = (1..=3).map(|i| droplet(i, "active")).collect();
    let capped = HealingPolicy {
        max_replacements_per_hour: 0,
        ..Default::default()
    };
    let p = plan(&observe(&w, &n, &t, &capped, &ds, None, 1000));
    assert!(replacements(&p).is_empty());
    assert!(p.held.as_deref().unwrap().contains("cap"));

    let mut failing = world(&[(1, false, 0), (2, true, 0), (3, true, 0)]);
    for i in 0..2 {
        failing.provisions.push((
            ProvisionSpec {
                pool: "web".into(),
                droplet_name: format!("c-web-f{i}"),
                image_id: 1,
                reason: ProvisionReason::Replace {
                    node: "c-web-1".into(),
                    droplet_id: 1,
                    cause: "x".into(),
                },
            },
            ProvisionStatus {
                step: ProvisionStep::Failed,
                finished_at: Some(at(990 + i)),
                ..Default::default()
            },
        ));
    }
    let h = HealingPolicy {
        retry_backoff: Duration::from_secs(30),
        ..Default::default()
    };
    let p = plan(&observe(&failing, &n, &t, &h, &ds, None, 1000));
    assert!(
        replacements(&p).is_empty(),
        "two failures: wait 60 s after the last"
    );
    assert!(p.held.is_some());
    assert_eq!(
        replacements(&plan(&observe(&failing, &n, &t, &h, &ds, None, 1052))),
        vec!["c-web-1"]
    );
}

#[test]
fn scaling_up_and_down_counts_what_stays() {
    let w = world(&[(1, true, 0)]);
    let n = names(1);
    let h = HealingPolicy::default();
    let t3 = template(3, false);
    let ds = [droplet(1, "active")];
    let up = plan(&observe(&w, &n, &t3, &h, &ds, None, 1));
    let ups = up
        .actions
        .iter()
        .filter(|a| {
            matches!(
                a,
                PoolAction::StartProvision {
                    reason: ProvisionReason::ScaleUp,
                    ..
                }
            )
        })
        .count();
    assert_eq!(ups, 2);
    let mut unique: Vec<String> = up
        .actions
        .iter()
        .filter_map(|a| match a {
            PoolAction::StartProvision { droplet_name, .. } => Some(droplet_name.clone()),
            _ => None,
        })
        .collect();
    unique.dedup();
    assert_eq!(unique.len(), 2, "new names are distinct");

    let w3 = world(&[(1, true, 0), (2, false, 500), (3, true, 0)]);
    let n3 = names(3);
    let t1 = template(2, false);
    let ds3: Vec<_> = (1..=3).map(|i| droplet(i, "active")).collect();
    let down = plan(&observe(&w3, &n3, &t1, &h, &ds3, None, 501));
    assert_eq!(
        down.actions,
        vec![PoolAction::ScaleDown {
            node: "c-web-2".into(),
            droplet_id: 2
        }],
        "the unhealthy one goes first"
    );
}

#[test]
fn the_balancer_gets_healthy_nodes_and_loses_failed_ones() {
    let w = world(&[(1, true, 0), (2, false, 0), (3, true, 0)]);
    let n = names(3);
    let (t, h) = (template(3, true), HealingPolicy::default());
    let ds: Vec<_> = (1..=3).map(|i| droplet(i, "active")).collect();
    let members = std::collections::BTreeSet::from([2u64, 3]);
    let p = plan(&observe(&w, &n, &t, &h, &ds, Some(&members), 1000));
    assert!(p.actions.contains(&PoolAction::LbAdd(vec![1])));
    assert!(p.actions.contains(&PoolAction::LbRemove(vec![2])));
}

#[test]
fn a_vanished_droplet_forgets_its_node() {
    let w = world(&[(1, true, 0), (2, true, 0)]);
    let n = names(2);
    let (t, h) = (template(2, false), HealingPolicy::default());
    let ds = [droplet(1, "active")];
    let p = plan(&observe(&w, &n, &t, &h, &ds, None, 1));
    assert!(p.actions.contains(&PoolAction::ForgetNode {
        name: "c-web-2".into()
    }));
}

#[test]
fn after_a_fleet_incident_clears_stragglers_get_a_fresh_grace() {
    let w = world(&[(1, false, 0), (2, true, 0), (3, true, 0)]);
    let n = names(3);
    let (t, h) = (template(3, false), HealingPolicy::default());
    let ds: Vec<_> = (1..=3).map(|i| droplet(i, "active")).collect();
    let mut o = observe(&w, &n, &t, &h, &ds, None, 1000);
    o.degraded_cleared_at = Some(at(990));
    assert!(
        replacements(&plan(&o)).is_empty(),
        "down since 0, but the incident ended at 990"
    );
    o.now = at(1051);
    assert_eq!(replacements(&plan(&o)), vec!["c-web-1"]);
}

#[test]
fn a_node_a_rollout_drained_is_left_out_of_the_balancer() {
    let w = world(&[(1, true, 0), (2, true, 0)]);
    let n = names(2);
    let (t, h) = (template(2, true), HealingPolicy::default());
    let ds: Vec<_> = (1..=2).map(|i| droplet(i, "active")).collect();
    let members = std::collections::BTreeSet::from([2u64]);
    let mut o = observe(&w, &n, &t, &h, &ds, Some(&members), 10);
    o.draining.insert(1);
    assert!(!plan(&o)
        .actions
        .iter()
        .any(|a| matches!(a, PoolAction::LbAdd(_))));
}
