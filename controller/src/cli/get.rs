//! `vmctl get nodes|pools|provisions|snapshots [NAME]`: the stored objects (`{metadata, spec,
//! status}`) as tables or JSON.
//!
//! The API lists whole collections; a NAME filters the list here, so `get` needs no per-object
//! route and says "not found" itself.

use std::io::Write;

use chrono::Utc;
use serde::Serialize;
use vmctl_protocol::{
    node::NodeSpec, pool::PoolSpec, provision::ProvisionSpec, resource::Stored,
    snapshot::SnapshotSpec, Timestamp,
};

use super::jobs::{render_provisions, render_snapshots, PROVISIONS_PATH, SNAPSHOTS_PATH};
use super::output::{self, ago, list_or_dash, or_dash, OutputFormat};
use super::CliError;
use crate::api::views::desired_count;
use crate::client::ApiClient;

/// Route listing nodes.
pub(crate) const NODES_PATH: &str = "/v1/nodes";
/// Route listing pools.
pub(crate) const POOLS_PATH: &str = "/v1/pools";

/// What `get` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Nodes (droplets).
    #[value(alias = "node", alias = "no")]
    Nodes,
    /// Pools (tiers).
    #[value(alias = "pool")]
    Pools,
    /// Droplets being brought into managed pools (scale-ups and replacements).
    #[value(alias = "provision", alias = "prov")]
    Provisions,
    /// Snapshot jobs of managed pools.
    #[value(alias = "snapshot", alias = "snap")]
    Snapshots,
}

/// Runs `get`.
pub(crate) async fn run(
    client: &ApiClient,
    format: OutputFormat,
    kind: Kind,
    name: Option<&str>,
) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    let now = Utc::now();
    match kind {
        Kind::Nodes => {
            let all: Vec<Stored<NodeSpec>> = client.get_json(NODES_PATH).await?;
            let items = select(all, name, "node", |n| &n.metadata.name)?;
            emit(&mut out, format, name.is_some(), &items, |i| {
                render_nodes(i, now)
            })
        }
        Kind::Pools => {
            let all: Vec<Stored<PoolSpec>> = client.get_json(POOLS_PATH).await?;
            let items = select(all, name, "pool", |p| &p.metadata.name)?;
            emit(&mut out, format, name.is_some(), &items, render_pools)
        }
        Kind::Provisions => {
            let all: Vec<Stored<ProvisionSpec>> = client.get_json(PROVISIONS_PATH).await?;
            let items = select(all, name, "provision", |p| &p.metadata.name)?;
            emit(&mut out, format, name.is_some(), &items, |i| {
                render_provisions(i, now)
            })
        }
        Kind::Snapshots => {
            let all: Vec<Stored<SnapshotSpec>> = client.get_json(SNAPSHOTS_PATH).await?;
            let items = select(all, name, "snapshot", |s| &s.metadata.name)?;
            emit(&mut out, format, name.is_some(), &items, |i| {
                render_snapshots(i, now)
            })
        }
    }
}

fn select<T>(
    all: Vec<T>,
    name: Option<&str>,
    kind: &'static str,
    name_of: impl Fn(&T) -> &String,
) -> Result<Vec<T>, CliError> {
    let Some(wanted) = name else {
        return Ok(all);
    };
    let found: Vec<T> = all.into_iter().filter(|o| name_of(o) == wanted).collect();
    if found.is_empty() {
        return Err(CliError::NotFound {
            kind,
            name: wanted.to_owned(),
        });
    }
    Ok(found)
}

/// JSON prints the object itself when one was named, the array otherwise.
fn emit<T: Serialize>(
    out: &mut impl Write,
    format: OutputFormat,
    single: bool,
    items: &[T],
    table: impl Fn(&[T]) -> String,
) -> Result<(), CliError> {
    match (format, items) {
        (OutputFormat::Json, [one]) if single => output::print_json(out, one),
        (OutputFormat::Json, _) => output::print_json(out, &items),
        (OutputFormat::Table, []) => {
            writeln!(out, "No resources found.")?;
            Ok(())
        }
        (OutputFormat::Table, _) => {
            writeln!(out, "{}", table(items))?;
            Ok(())
        }
    }
}

/// The node table.
pub(crate) fn render_nodes(nodes: &[Stored<NodeSpec>], now: Timestamp) -> String {
    let mut t = output::table(&[
        "NAME",
        "POOL",
        "ADDRESS",
        "ROOT",
        "REACHABLE",
        "AGENT",
        "RELEASE",
        "LAST SEEN",
        "CONDITIONS",
    ]);
    for n in nodes {
        let release = n
            .status
            .facts
            .as_ref()
            .and_then(|f| f.mastodon.live_release.clone());
        t.add_row(vec![
            n.metadata.name.clone(),
            n.spec.pool.clone(),
            output::host_port(&n.spec.address, n.spec.port),
            n.spec.root.clone(),
            if n.status.reachable { "yes" } else { "no" }.to_owned(),
            or_dash(n.status.agent_version.as_ref()),
            or_dash(release),
            ago(now, n.status.last_seen),
            output::problem_conditions(&n.status.conditions),
        ]);
    }
    output::render(&mut t)
}

/// The pool table. DESIRED is `-` for a pool whose nodes are listed by hand.
pub(crate) fn render_pools(pools: &[Stored<PoolSpec>]) -> String {
    let mut t = output::table(&[
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
        "RELEASES",
    ]);
    for p in pools {
        t.add_row(vec![
            p.metadata.name.clone(),
            p.spec.role.as_str().to_owned(),
            list_or_dash(&p.spec.queues),
            or_dash(desired_count(p)),
            format!("{}/{}", p.status.ready, p.status.total),
            p.status.failed.to_string(),
            list_or_dash(&p.status.nodes),
            list_or_dash(&p.status.droplet_ids),
            list_or_dash(&p.status.provisioning),
            or_dash(p.status.newest_snapshot.as_ref()),
            list_or_dash(&p.status.releases),
        ]);
    }
    output::render(&mut t)
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

    #[test]
    fn node_and_pool_tables_show_the_key_columns() {
        let now = DateTime::from_timestamp(1_700_000_060, 0).unwrap();
        let node = Object {
            metadata: meta("web-1"),
            spec: NodeSpec {
                droplet_id: None,
                pool: "web".into(),
                address: "::1".into(),
                port: 2222,
                root: "/srv/w".into(),
            },
            status: NodeStatus {
                reachable: true,
                last_seen: Some(DateTime::from_timestamp(1_700_000_000, 0).unwrap()),
                ..NodeStatus::default()
            },
        };
        let text = render_nodes(&[node], now);
        let row: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(
            row,
            [
                "web-1",
                "web",
                "[::1]:2222",
                "/srv/w",
                "yes",
                "-",
                "-",
                "1m",
                "ago",
                "-"
            ]
        );

        let pool = Object {
            metadata: meta("sidekiq"),
            spec: PoolSpec {
                droplets: None,
                role: PoolRole::Sidekiq,
                queues: vec!["push".into(), "pull".into()],
            },
            status: PoolStatus {
                total: 2,
                ready: 1,
                nodes: vec!["s-1".into(), "s-2".into()],
                ..PoolStatus::default()
            },
        };
        let text = render_pools(&[pool]);
        let row: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(
            row,
            [
                "sidekiq",
                "sidekiq",
                "push,pull",
                "-",
                "1/2",
                "0",
                "s-1,s-2",
                "-",
                "-",
                "-",
                "-"
            ]
        );

        let managed = Object {
            metadata: meta("web"),
            spec: PoolSpec {
                droplets: Some(
                    serde_json::from_value(serde_json::json!({
                        "count": 3, "region": "nyc3", "size": "s-1vcpu-1gb", "image": "base",
                    }))
                    .unwrap(),
                ),
                role: PoolRole::Web,
                queues: vec![],
            },
            status: PoolStatus {
                total: 3,
                ready: 2,
                failed: 1,
                nodes: vec!["web-a".into(), "web-b".into(), "web-c".into()],
                droplet_ids: vec![11, 12, 13],
                provisioning: vec!["web-d".into()],
                newest_snapshot: Some("vmst-web-1".into()),
                releases: vec!["v4.3.1".into()],
                ..PoolStatus::default()
            },
        };
        let text = render_pools(&[managed]);
        let row: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(
            row,
            [
                "web",
                "web",
                "-",
                "3",
                "2/3",
                "1",
                "web-a,web-b,web-c",
                "11,12,13",
                "web-d",
                "vmst-web-1",
                "v4.3.1"
            ]
        );
    }

    #[test]
    fn a_name_filters_or_is_not_found() {
        let all = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(
            select(all.clone(), Some("b"), "node", |s| s).unwrap(),
            ["b"]
        );
        assert_eq!(select(all.clone(), None, "node", |s| s).unwrap().len(), 2);
        let err = select(all, Some("c"), "node", |s| s).unwrap_err();
        assert_eq!(err.to_string(), "node \"c\" not found");
    }
}
