//! Decisions for a pool whose droplets the controller owns: adopt, scale, declare failures,
//! replace within the guards, and keep load-balancer membership. Pure: the executor gathers the
//! droplets (one list-by-tag), nodes, provisions and time, and carries out the actions.

use std::{collections::BTreeSet, time::Duration};

use vmctl_protocol::{
    cluster::HealingPolicy,
    meta::{Condition, ConditionStatus, Timestamp},
    node::{NodeSpec, NodeStatus, COND_REACHABLE},
    pool::DropletTemplate,
    provision::{ProvisionReason, ProvisionSpec, ProvisionStatus, ProvisionStep},
};

/// A droplet of the pool as the cloud lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropletObs {
    /// Id.
    pub id: u64,
    /// Name.
    pub name: String,
    /// `new`, `active`, `off`, `archive`, ...
    pub status: String,
    /// Public address once active.
    pub address: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
}

/// A node object of the pool.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeObs<'a> {
    /// Name.
    pub name: &'a str,
    /// Spec.
    pub spec: &'a NodeSpec,
    /// Status.
    pub status: &'a NodeStatus,
    /// When the node object was created (the start of "unreachable" before any probe answered).
    pub created_at: Timestamp,
}

/// A provision of the pool.
#[derive(Debug, Clone, PartialEq)]
pub struct ProvisionObs<'a> {
    /// Name.
    pub name: &'a str,
    /// Spec.
    pub spec: &'a ProvisionSpec,
    /// Status.
    pub status: &'a ProvisionStatus,
}

/// Everything the plan looks at.
#[derive(Debug, Clone)]
pub struct PoolObserved<'a> {
    /// Cluster name (droplet names and tags).
    pub cluster: &'a str,
    /// Pool name.
    pub pool: &'a str,
    /// The pool's droplet template.
    pub template: &'a DropletTemplate,
    /// Guards.
    pub healing: &'a HealingPolicy,
    /// Droplets carrying the pool's tag.
    pub droplets: &'a [DropletObs],
    /// The pool's node objects.
    pub nodes: Vec<NodeObs<'a>>,
    /// The pool's provisions, any state.
    pub provisions: Vec<ProvisionObs<'a>>,
    /// Current balancer members, when the pool has a balancer.
    pub lb_members: Option<&'a BTreeSet<u64>>,
    /// Droplets a rollout has taken out of the balancer; the rollout puts them back.
    pub draining: BTreeSet<u64>,
    /// Nodes in the whole fleet, and how many of them are unreachable.
    pub fleet_total: u32,
    /// Unreachable nodes fleet-wide.
    pub fleet_unhealthy: u32,
    /// Replacements started fleet-wide in the last hour.
    pub replacements_last_hour: u32,
    /// When the pool last stopped being degraded: failures are counted from then, so nodes
    /// coming back from a fleet-wide incident get a full grace before any is replaced.
    pub degraded_cleared_at: Option<Timestamp>,
    /// Random bits for new droplet names.
    pub name_seed: u64,
    /// Now.
    pub now: Timestamp,
}

/// What the executor does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolAction {
    /// A droplet with the pool's tag has no node: register it (adoption after a crash, or a
    /// fleet vmctl was pointed at).
    RegisterNode {
        /// Node name (= droplet name).
        name: String,
        /// Droplet.
        droplet_id: u64,
        /// Address.
        address: String,
    },
    /// The node's droplet is gone: forget the node.
    ForgetNode {
        /// Node.
        name: String,
    },
    /// Start a provision; the executor resolves the image first.
    StartProvision {
        /// The new droplet's name.
        droplet_name: String,
        /// Why.
        reason: ProvisionReason,
    },
    /// Too many droplets: drain this one from the balancer, delete it, forget its node.
    ScaleDown {
        /// Node.
        node: String,
        /// Droplet.
        droplet_id: u64,
    },
    /// Put these healthy droplets into the balancer.
    LbAdd(Vec<u64>),
    /// Take these failed droplets out of the balancer.
    LbRemove(Vec<u64>),
}

/// The plan's output.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolPlan {
    /// Actions, in order.
    pub actions: Vec<PoolAction>,
    /// Nodes declared failed, with why.
    pub failed: Vec<(String, String)>,
    /// Set when replacements are held back because too much is unhealthy.
    pub degraded: Option<String>,
    /// Set when a replacement waits for the hourly cap or its backoff.
    pub held: Option<String>,
    /// When to look again (a grace period runs out), if sooner than the resync.
    pub recheck_in: Option<Duration>,
}

fn since(now: Timestamp, t: Timestamp) -> Duration {
    now.signed_duration_since(t).to_std().unwrap_or_default()
}

/// When the node started failing its probes, if it is failing them.
fn unreachable_since(n: &NodeObs<'_>) -> Option<Timestamp> {
    if n.status.reachable {
        return None;
    }
    match Condition::find(&n.status.conditions, COND_REACHABLE) {
        Some(c) if c.status == ConditionStatus::False => Some(c.last_transition),
        _ => Some(n.created_at),
    }
}

/// A new droplet name: `<cluster>-<pool>-<6 hex>`, unique per seed and index.
pub fn droplet_name(cluster: &str, pool: &str, seed: u64, index: u64) -> String {
    let mixed = seed
        .wrapping_add(index.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .rotate_left(17)
        ^ seed;
    format!("{cluster}-{pool}-{:06x}", mixed & 0xFF_FFFF)
}

/// Decides everything for one managed pool.
pub fn plan(o: &PoolObserved<'_>) -> PoolPlan {
    let mut actions = Vec::new();
    let mut recheck: Option<Duration> = None;
    let mut soonest = |d: Duration| recheck = Some(recheck.map_or(d, |r: Duration| r.min(d)));

    let in_flight: Vec<&ProvisionObs<'_>> = o
        .provisions
        .iter()
        .filter(|p| !p.status.step.is_terminal())
        .collect();
    // Droplets a provision is working on are its business, not adoption's or failure detection's.
    let provisioning_ids: BTreeSet<u64> = in_flight
        .iter()
        .filter_map(|p| p.status.droplet_id)
        .collect();
    let provisioning_names: BTreeSet<&str> = in_flight
        .iter()
        .map(|p| p.spec.droplet_name.as_str())
        .collect();
    let being_replaced: BTreeSet<&str> = in_flight
        .iter()
        .filter_map(|p| match &p.spec.reason {
            ProvisionReason::Replace { node, .. } => Some(node.as_str()),
            ProvisionReason::ScaleUp => None,
        })
        .collect();
    let node_droplets: BTreeSet<u64> = o.nodes.iter().filter_map(|n| n.spec.droplet_id).collect();
    let listed: BTreeSet<u64> = o.droplets.iter().map(|d| d.id).collect();

    // Adoption and forgetting.
    for d in o.droplets {
        let owned =
            provisioning_ids.contains(&d.id) || provisioning_names.contains(d.name.as_str());
        if node_droplets.contains(&d.id) || owned || d.status != "active" {
            continue;
        }
        if let Some(address) = &d.address {
            actions.push(PoolAction::RegisterNode {
                name: d.name.clone(),
                droplet_id: d.id,
                address: address.clone(),
            });
        }
    }
    for n in &o.nodes {
        if let Some(id) = n.spec.droplet_id {
            if !listed.contains(&id) && !provisioning_ids.contains(&id) {
                actions.push(PoolAction::ForgetNode {
                    name: n.name.to_string(),
                });
            }
        }
    }

    // Failure detection.
    let t = o.template;
    let mut failed: Vec<(String, String, u64, Timestamp)> = Vec::new();
    let mut unhealthy_in_pool = 0u32;
    for n in &o.nodes {
        let Some(id) = n.spec.droplet_id else {
            continue;
        };
        if provisioning_ids.contains(&id) || !listed.contains(&id) {
            continue;
        }
        let droplet = o.droplets.iter().find(|d| d.id == id);
        if let Some(d) = droplet.filter(|d| d.status == "off" || d.status == "archive") {
            unhealthy_in_pool += 1;
            failed.push((
                n.name.to_string(),
                format!("DigitalOcean reports the droplet {}", d.status),
                id,
                o.now,
            ));
            continue;
        }
        let Some(down_since) = unreachable_since(n) else {
            continue;
        };
        unhealthy_in_pool += 1;
        let born = droplet.map_or(n.created_at, |d| d.created_at);
        let mut grace_starts = (born
            + chrono::Duration::from_std(t.startup_grace).unwrap_or_default())
        .max(down_since);
        if let Some(cleared) = o.degraded_cleared_at {
            grace_starts = grace_starts.max(cleared);
        }
        let down_for = since(o.now, grace_starts);
        if o.now >= grace_starts && down_for >= t.failure_grace {
            failed.push((
                n.name.to_string(),
                format!(
                    "unreachable for {}s (failure grace {}s)",
                    since(o.now, down_since).as_secs(),
                    t.failure_grace.as_secs()
                ),
                id,
                down_since,
            ));
        } else {
            let left = t.failure_grace.saturating_sub(down_for)
                + grace_starts
                    .signed_duration_since(o.now)
                    .to_std()
                    .unwrap_or_default();
            soonest(left + Duration::from_millis(100));
        }
    }
    failed.sort_by_key(|f| f.3);

    // Guards: a crowd of unreachable nodes more likely means the controller lost its network.
    // One unhealthy node never trips them, or a pool of one could never heal.
    let pool_size = o
        .nodes
        .iter()
        .filter(|n| n.spec.droplet_id.is_some())
        .count() as u32;
    let degraded = if o.fleet_unhealthy > 1
        && o.fleet_unhealthy * 100 > o.healing.max_unhealthy_fleet_percent * o.fleet_total
    {
        Some(format!(
            "{}/{} nodes of the fleet are unreachable (more than {}%): not replacing anything, the problem is more likely the controller's network",
            o.fleet_unhealthy, o.fleet_total, o.healing.max_unhealthy_fleet_percent
        ))
    } else if unhealthy_in_pool > 1
        && unhealthy_in_pool * 100 > o.healing.max_unhealthy_pool_percent * pool_size.max(1)
    {
        Some(format!(
            "{unhealthy_in_pool}/{pool_size} nodes of pool {} are unhealthy (more than {}%): not replacing them automatically",
            o.pool, o.healing.max_unhealthy_pool_percent
        ))
    } else {
        None
    };

    // Replacement: one at a time per pool, a fleet-wide hourly cap, backoff after failures.
    let mut held = None;
    let mut name_index = 0u64;
    let replacing_now = in_flight
        .iter()
        .any(|p| matches!(p.spec.reason, ProvisionReason::Replace { .. }));
    if degraded.is_none() && !replacing_now {
        if let Some((node, cause, droplet_id, _)) = failed
            .iter()
            .find(|f| !being_replaced.contains(f.0.as_str()))
        {
            if o.replacements_last_hour >= o.healing.max_replacements_per_hour {
                held = Some(format!(
                    "{} replacements in the last hour reached the cap of {}; {node} waits",
                    o.replacements_last_hour, o.healing.max_replacements_per_hour
                ));
            } else if let Some(wait) = backoff_left(o) {
                held = Some(format!(
                    "the last replacements failed; next try in {}s",
                    wait.as_secs()
                ));
                soonest(wait);
            } else {
                name_index += 1;
                actions.push(PoolAction::StartProvision {
                    droplet_name: droplet_name(o.cluster, o.pool, o.name_seed, name_index),
                    reason: ProvisionReason::Replace {
                        node: node.clone(),
                        droplet_id: *droplet_id,
                        cause: cause.clone(),
                    },
                });
            }
        }
    }

    // Scaling: count droplets that stay, plus provisions whose droplet is not listed yet.
    let replaced_ids: BTreeSet<u64> = in_flight
        .iter()
        .filter_map(|p| match &p.spec.reason {
            ProvisionReason::Replace { droplet_id, .. } => Some(*droplet_id),
            ProvisionReason::ScaleUp => None,
        })
        .collect();
    let staying = o
        .droplets
        .iter()
        .filter(|d| !replaced_ids.contains(&d.id) && d.status != "archive")
        .count() as u32;
    let pending = in_flight
        .iter()
        .filter(|p| p.status.droplet_id.is_none_or(|id| !listed.contains(&id)))
        .count() as u32;
    let effective = staying + pending;
    let mut scaling_down = BTreeSet::new();
    if effective < t.count {
        for _ in 0..(t.count - effective) {
            name_index += 1;
            actions.push(PoolAction::StartProvision {
                droplet_name: droplet_name(o.cluster, o.pool, o.name_seed, name_index),
                reason: ProvisionReason::ScaleUp,
            });
        }
    } else if effective > t.count && in_flight.is_empty() {
        let failed_names: BTreeSet<&str> = failed.iter().map(|f| f.0.as_str()).collect();
        let mut candidates: Vec<&NodeObs<'_>> = o
            .nodes
            .iter()
            .filter(|n| n.spec.droplet_id.is_some())
            .collect();
        // Unhealthy first, then the newest, then by name: deterministic, so a replay after a
        // crash picks the same droplet.
        candidates.sort_by(|a, b| {
            let key = |n: &NodeObs<'_>| {
                (
                    !failed_names.contains(n.name) && n.status.reachable,
                    std::cmp::Reverse(n.created_at),
                    n.name.to_string(),
                )
            };
            key(a).cmp(&key(b))
        });
        for n in candidates.into_iter().take((effective - t.count) as usize) {
            let id = n.spec.droplet_id.expect("filtered");
            scaling_down.insert(id);
            actions.push(PoolAction::ScaleDown {
                node: n.name.to_string(),
                droplet_id: id,
            });
        }
    }

    // Balancer membership: healthy, settled droplets in; declared-failed ones out.
    if let Some(members) = o.lb_members {
        let failed_ids: BTreeSet<u64> = failed.iter().map(|f| f.2).collect();
        let add: Vec<u64> = o
            .nodes
            .iter()
            .filter(|n| n.status.reachable)
            .filter_map(|n| n.spec.droplet_id)
            .filter(|id| {
                !o.draining.contains(id)
                    && !members.contains(id)
                    && !provisioning_ids.contains(id)
                    && !scaling_down.contains(id)
                    && !replaced_ids.contains(id)
            })
            .collect();
        let remove: Vec<u64> = failed_ids
            .iter()
            .copied()
            .filter(|id| members.contains(id))
            .collect();
        if !add.is_empty() {
            actions.push(PoolAction::LbAdd(add));
        }
        if !remove.is_empty() {
            actions.push(PoolAction::LbRemove(remove));
        }
    }

    PoolPlan {
        actions,
        failed: failed.into_iter().map(|f| (f.0, f.1)).collect(),
        degraded,
        held,
        recheck_in: recheck,
    }
}

/// Time left before another replacement may start after consecutive failures (doubling).
fn backoff_left(o: &PoolObserved<'_>) -> Option<Duration> {
    let mut replaces: Vec<&ProvisionObs<'_>> = o
        .provisions
        .iter()
        .filter(|p| {
            matches!(p.spec.reason, ProvisionReason::Replace { .. }) && p.status.step.is_terminal()
        })
        .collect();
    replaces.sort_by_key(|p| std::cmp::Reverse(p.status.finished_at));
    let failures = replaces
        .iter()
        .take_while(|p| p.status.step == ProvisionStep::Failed)
        .count() as u32;
    if failures == 0 {
        return None;
    }
    let last = replaces[0].status.finished_at?;
    let wait = o
        .healing
        .retry_backoff
        .saturating_mul(1u32 << (failures - 1).min(10));
    let elapsed = since(o.now, last);
    (elapsed < wait).then(|| wait - elapsed)
}
