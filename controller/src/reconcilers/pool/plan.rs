//! The pool reconciler's decision: a pool's status summarised from its nodes. Pure.

use std::collections::BTreeSet;

use vmctl_protocol::{
    meta::{Condition, ConditionStatus, Timestamp},
    node::{NodeSpec, NodeStatus},
    pool::PoolStatus,
};

/// Condition type: every node of the pool is reachable.
pub const COND_POOL_READY: &str = "Ready";

/// Summarises `nodes` (all nodes of the cluster; the plan picks this pool's) into the pool's
/// status, keeping condition transition times from `previous`.
pub fn plan(
    pool: &str,
    generation: u64,
    previous: &PoolStatus,
    nodes: &[(&str, &NodeSpec, &NodeStatus)],
    now: Timestamp,
) -> PoolStatus {
    let mine: Vec<_> = nodes
        .iter()
        .filter(|(_, spec, _)| spec.pool == pool)
        .collect();
    let total = mine.len() as u32;
    let ready = mine.iter().filter(|(_, _, st)| st.reachable).count() as u32;
    let releases: BTreeSet<String> = mine
        .iter()
        .filter_map(|(_, _, st)| st.facts.as_ref()?.mastodon.live_release.clone())
        .collect();
    let mut status = PoolStatus {
        desired: None,
        failed: 0,
        droplet_ids: Vec::new(),
        provisioning: Vec::new(),
        newest_snapshot: None,
        observed_generation: generation,
        total,
        ready,
        nodes: mine.iter().map(|(n, _, _)| n.to_string()).collect(),
        releases: releases.into_iter().collect(),
        conditions: previous.conditions.clone(),
    };
    status.nodes.sort();
    let (cs, reason, message) = if ready == total {
        (
            ConditionStatus::True,
            "AllNodesReady",
            format!("{ready}/{total} nodes ready"),
        )
    } else {
        (
            ConditionStatus::False,
            "NodesUnready",
            format!("{ready}/{total} nodes ready"),
        )
    };
    Condition::upsert(
        &mut status.conditions,
        Condition {
            type_: COND_POOL_READY.into(),
            status: cs,
            reason: reason.into(),
            message,
            last_transition: now,
        },
    );
    status
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;

    fn spec(pool: &str) -> NodeSpec {
        NodeSpec {
            droplet_id: None,
            pool: pool.into(),
            address: "127.0.0.1".into(),
            port: 22,
            root: "/".into(),
        }
    }

    #[test]
    fn counts_only_this_pools_nodes() {
        let up = NodeStatus {
            reachable: true,
            ..Default::default()
        };
        let down = NodeStatus::default();
        let (a, b, c) = (spec("web"), spec("web"), spec("sidekiq"));
        let nodes = [("web-2", &a, &up), ("web-1", &b, &down), ("sk-1", &c, &up)];
        let now = DateTime::from_timestamp(5, 0).unwrap();
        let st = plan("web", 2, &PoolStatus::default(), &nodes, now);
        assert_eq!((st.ready, st.total), (1, 2));
        assert_eq!(st.nodes, vec!["web-1", "web-2"]);
        assert_eq!(st.observed_generation, 2);
        assert!(!Condition::is_true(&st.conditions, COND_POOL_READY));
        let all_up = [("web-2", &a, &up)];
        assert!(Condition::is_true(
            &plan("web", 2, &st, &all_up, now).conditions,
            COND_POOL_READY
        ));
    }
}
