//! Builds the read views the CLI shows (`vmctl status`) from stored objects. Pure.

use vmctl_protocol::{
    agent::Capacity,
    api::{NodeView, PoolView, StatusView},
    node::NodeSpec,
    pool::PoolSpec,
    resource::Stored,
};

/// The fleet summary: pools by name, nodes by pool then name.
pub fn status_view(
    cluster: Option<String>,
    pools: &[Stored<PoolSpec>],
    nodes: &[Stored<NodeSpec>],
) -> StatusView {
    let pool_views = pools
        .iter()
        .map(|p| PoolView {
            name: p.metadata.name.clone(),
            role: p.spec.role,
            ready: p.status.ready,
            total: p.status.total,
            releases: p.status.releases.clone(),
            desired: desired_count(p),
            failed: p.status.failed,
            droplet_ids: p.status.droplet_ids.clone(),
            provisioning: p.status.provisioning.clone(),
            newest_snapshot: p.status.newest_snapshot.clone(),
        })
        .collect();
    let mut node_views: Vec<NodeView> = nodes.iter().map(node_view).collect();
    node_views.sort_by(|a, b| (&a.pool, &a.name).cmp(&(&b.pool, &b.name)));
    StatusView {
        cluster,
        pools: pool_views,
        nodes: node_views,
    }
}

/// A managed pool's droplet count, `None` for a hand-listed pool. The spec's count is current
/// as soon as `apply` stores it; the status copy lags one pool reconcile.
pub fn desired_count(p: &Stored<PoolSpec>) -> Option<u32> {
    p.spec
        .droplets
        .as_ref()
        .map(|d| d.count)
        .or(p.status.desired)
}

fn node_view(n: &Stored<NodeSpec>) -> NodeView {
    let facts = n.status.facts.as_ref();
    NodeView {
        name: n.metadata.name.clone(),
        pool: n.spec.pool.clone(),
        address: format!("{}:{}", n.spec.address, n.spec.port),
        reachable: n.status.reachable,
        agent_version: n.status.agent_version.clone(),
        release: facts.and_then(|f| f.mastodon.live_release.clone()),
        load: facts.map(|f| f.load[0]),
        memory_used_pct: facts.map(|f| used_pct(f.memory)),
        disk_used_pct: facts.map(|f| used_pct(f.disk)),
        last_seen: n.status.last_seen,
        conditions: n.status.conditions.clone(),
        droplet_id: n.spec.droplet_id,
        droplet_status: n.status.droplet_status.clone(),
        in_load_balancer: n.status.in_load_balancer,
    }
}

fn used_pct(c: Capacity) -> f64 {
    if c.total_bytes == 0 {
        return 0.0;
    }
    let used = c.total_bytes.saturating_sub(c.available_bytes) as f64;
    (used * 1000.0 / c.total_bytes as f64).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use vmctl_protocol::{
        node::NodeStatus,
        pool::{PoolRole, PoolStatus},
        Object, ObjectMeta,
    };

    fn meta(name: &str) -> ObjectMeta {
        let t = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        ObjectMeta {
            name: name.into(),
            generation: 1,
            resource_version: 1,
            created_at: t,
            updated_at: t,
        }
    }

    fn pool(name: &str, count: Option<u32>, status: PoolStatus) -> Stored<PoolSpec> {
        let droplets = count.map(|c| {
            serde_json::from_value(serde_json::json!({
                "count": c, "region": "nyc3", "size": "s-1vcpu-1gb", "image": "base",
            }))
            .unwrap()
        });
        Object {
            metadata: meta(name),
            spec: PoolSpec {
                role: PoolRole::Web,
                queues: vec![],
                droplets,
            },
            status,
        }
    }

    fn node(
        name: &str,
        pool: &str,
        droplet_id: Option<u64>,
        status: NodeStatus,
    ) -> Stored<NodeSpec> {
        Object {
            metadata: meta(name),
            spec: NodeSpec {
                pool: pool.into(),
                address: "10.0.0.5".into(),
                port: 22,
                root: "/".into(),
                droplet_id,
            },
            status,
        }
    }

    #[test]
    fn managed_pools_and_droplet_nodes_carry_their_cloud_fields() {
        let managed = pool(
            "web",
            Some(3),
            PoolStatus {
                total: 3,
                ready: 2,
                failed: 1,
                droplet_ids: vec![11, 12, 13],
                provisioning: vec!["web-prov-1".into()],
                newest_snapshot: Some("vmst-web-v4-20240101".into()),
                ..PoolStatus::default()
            },
        );
        let by_hand = pool("exec", None, PoolStatus::default());
        // Right after `apply` raised the count, the status still holds the old one.
        let lagging = pool(
            "proxy",
            Some(2),
            PoolStatus {
                desired: Some(1),
                ..PoolStatus::default()
            },
        );
        let nodes = [
            node(
                "web-b",
                "web",
                Some(12),
                NodeStatus {
                    droplet_status: Some("active".into()),
                    in_load_balancer: Some(false),
                    ..NodeStatus::default()
                },
            ),
            node("exec-1", "exec", None, NodeStatus::default()),
            node(
                "web-a",
                "web",
                Some(11),
                NodeStatus {
                    droplet_status: Some("off".into()),
                    in_load_balancer: Some(true),
                    ..NodeStatus::default()
                },
            ),
        ];
        let view = status_view(Some("vmst".into()), &[managed, by_hand, lagging], &nodes);

        let web = &view.pools[0];
        assert_eq!(
            (web.desired, web.ready, web.total, web.failed),
            (Some(3), 2, 3, 1)
        );
        assert_eq!(web.droplet_ids, [11, 12, 13]);
        assert_eq!(web.provisioning, ["web-prov-1"]);
        assert_eq!(web.newest_snapshot.as_deref(), Some("vmst-web-v4-20240101"));
        assert_eq!(view.pools[1].desired, None);
        assert_eq!(view.pools[2].desired, Some(2), "the spec's count wins");

        let names: Vec<&str> = view.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["exec-1", "web-a", "web-b"]);
        let web_a = &view.nodes[1];
        assert_eq!(
            (
                web_a.droplet_id,
                web_a.droplet_status.as_deref(),
                web_a.in_load_balancer
            ),
            (Some(11), Some("off"), Some(true))
        );
        let exec = &view.nodes[0];
        assert_eq!(
            (
                exec.droplet_id,
                exec.droplet_status.as_deref(),
                exec.in_load_balancer
            ),
            (None, None, None)
        );
    }

    #[test]
    fn views_without_the_cloud_fields_still_parse() {
        let pool = serde_json::json!({
            "name": "web", "role": "web", "ready": 1, "total": 2, "releases": [],
        });
        let pool: PoolView = serde_json::from_value(pool).unwrap();
        assert_eq!((pool.desired, pool.failed), (None, 0));
        assert!(pool.droplet_ids.is_empty() && pool.newest_snapshot.is_none());
        let node = serde_json::json!({
            "name": "web-1", "pool": "web", "address": "10.0.0.5:22", "reachable": true,
            "agent_version": null, "release": null, "load": null, "memory_used_pct": null,
            "disk_used_pct": null, "last_seen": null, "conditions": [],
        });
        let node: NodeView = serde_json::from_value(node).unwrap();
        assert_eq!((node.droplet_id, node.in_load_balancer), (None, None));
    }

    #[test]
    fn used_percent_rounds_to_one_decimal_and_survives_zero() {
        assert_eq!(
            used_pct(Capacity {
                total_bytes: 3,
                available_bytes: 1
            }),
            66.7
        );
        assert_eq!(
            used_pct(Capacity {
                total_bytes: 0,
                available_bytes: 0
            }),
            0.0
        );
    }
}
