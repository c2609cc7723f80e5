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
