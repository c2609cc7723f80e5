//! `apply` and `diff`: turn a validated cluster document into store writes.
//!
//! The document is the whole desired cluster, so objects missing from it are deleted. The
//! decision (which objects change, and how) is the pure [`plan`]; [`execute`] writes it. File
//! parsing and its line/column errors live in `config/`; this module re-checks the invariants
//! the store depends on, because the API also accepts documents from other clients.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use vmctl_protocol::{
    api::{Change, ChangeAction, ClusterDocument},
    cluster::ClusterSpec,
    node::NodeSpec,
    pool::PoolSpec,
    Resource,
};
use vmctl_state::{Precondition, Store, StoreError};

/// The specs currently stored, by kind and name.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct StoredSpecs {
    /// Cluster objects (normally zero or one).
    pub clusters: BTreeMap<String, ClusterSpec>,
    /// Pools.
    pub pools: BTreeMap<String, PoolSpec>,
    /// Nodes.
    pub nodes: BTreeMap<String, NodeSpec>,
}

impl StoredSpecs {
    /// Reads every stored spec.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub fn load(store: &Store) -> Result<Self, StoreError> {
        Ok(StoredSpecs {
            clusters: specs(store.list::<ClusterSpec>()?),
            pools: specs(store.list::<PoolSpec>()?),
            // Nodes a pool created for its droplets belong to that pool, not to the file.
            nodes: specs(
                store
                    .list::<NodeSpec>()?
                    .into_iter()
                    .filter(|n| n.spec.droplet_id.is_none())
                    .collect(),
            ),
        })
    }
}

fn specs<R: Resource>(objs: Vec<vmctl_protocol::resource::Stored<R>>) -> BTreeMap<String, R> {
    objs.into_iter()
        .map(|o| (o.metadata.name, o.spec))
        .collect()
}

/// A document that breaks an invariant the store relies on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DocumentError {
    /// Two objects of one kind share a name.
    #[error("{kind} {name:?} is defined twice")]
    Duplicate {
        /// Kind.
        kind: &'static str,
        /// The repeated name.
        name: String,
    },
    /// A node names a pool the document does not define.
    #[error("node {node:?} is in pool {pool:?}, which is not defined")]
    UnknownPool {
        /// Node name.
        node: String,
        /// The missing pool.
        pool: String,
    },
    /// A name is not a DNS label.
    #[error("{kind} name {name:?} is invalid: use 1-63 lower-case letters, digits and '-'")]
    BadName {
        /// Kind.
        kind: &'static str,
        /// The bad name.
        name: String,
    },
}

/// True for DNS-label names: they end up in droplet names, tags and file names.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Checks the invariants of a document received over the API.
///
/// # Errors
/// Every broken invariant, in document order.
pub fn validate(doc: &ClusterDocument) -> Result<(), Vec<DocumentError>> {
    let mut errors = Vec::new();
    if !is_valid_name(&doc.name) {
        errors.push(DocumentError::BadName {
            kind: "cluster",
            name: doc.name.clone(),
        });
    }
    let mut pools = BTreeSet::new();
    for p in &doc.pools {
        if !is_valid_name(&p.name) {
            errors.push(DocumentError::BadName {
                kind: "pool",
                name: p.name.clone(),
            });
        }
        if !pools.insert(p.name.as_str()) {
            errors.push(DocumentError::Duplicate {
                kind: "pool",
                name: p.name.clone(),
            });
        }
    }
    let mut nodes = BTreeSet::new();
    for n in &doc.nodes {
        if !is_valid_name(&n.name) {
            errors.push(DocumentError::BadName {
                kind: "node",
                name: n.name.clone(),
            });
        }
        if !nodes.insert(n.name.as_str()) {
            errors.push(DocumentError::Duplicate {
                kind: "node",
                name: n.name.clone(),
            });
        }
        if !pools.contains(n.spec.pool.as_str()) {
            errors.push(DocumentError::UnknownPool {
                node: n.name.clone(),
                pool: n.spec.pool.clone(),
            });
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Decides what applying `doc` changes: creates, updates with field details, and deletes of
/// everything the document no longer names. Ordered so that executing it in order never leaves a
/// node pointing at a missing pool: cluster, pools created/updated, nodes, then pools deleted.
pub fn plan(doc: &ClusterDocument, current: &StoredSpecs) -> Vec<Change> {
    let mut changes = Vec::new();
    let clusters: BTreeMap<_, _> = [(doc.name.clone(), doc.cluster.clone())].into();
    diff_kind(
        ClusterSpec::KIND,
        &clusters,
        &current.clusters,
        &mut changes,
    );
    let pools: BTreeMap<_, _> = doc
        .pools
        .iter()
        .map(|p| (p.name.clone(), p.spec.clone()))
        .collect();
    diff_kind(PoolSpec::KIND, &pools, &current.pools, &mut changes);
    let nodes: BTreeMap<_, _> = doc
        .nodes
        .iter()
        .map(|n| (n.name.clone(), n.spec.clone()))
        .collect();
    diff_kind(NodeSpec::KIND, &nodes, &current.nodes, &mut changes);
    // Pool deletions were held back until the nodes that referenced them are gone.
    let (pool_deletes, rest): (Vec<_>, Vec<_>) = changes
        .into_iter()
        .partition(|c| c.kind == PoolSpec::KIND && c.action == ChangeAction::Delete);
    rest.into_iter().chain(pool_deletes).collect()
}

fn diff_kind<S: Serialize + PartialEq>(
    kind: &str,
    desired: &BTreeMap<String, S>,
    current: &BTreeMap<String, S>,
    out: &mut Vec<Change>,
) {
    for (name, spec) in desired {
        match current.get(name) {
            None => out.push(change(kind, name, ChangeAction::Create, Vec::new())),
            Some(old) if old != spec => out.push(change(
                kind,
                name,
                ChangeAction::Update,
                field_changes(old, spec),
            )),
            Some(_) => {}
        }
    }
    for name in current.keys().filter(|n| !desired.contains_key(*n)) {
        out.push(change(kind, name, ChangeAction::Delete, Vec::new()));
    }
}

fn change(kind: &str, name: &str, action: ChangeAction, details: Vec<String>) -> Change {
    Change {
        kind: kind.to_string(),
        name: name.to_string(),
        action,
        details,
    }
}

/// `field: old -> new` for every top-level field that differs.
fn field_changes<S: Serialize>(old: &S, new: &S) -> Vec<String> {
    let (serde_json::Value::Object(a), serde_json::Value::Object(b)) = (
        serde_json::to_value(old).unwrap_or_default(),
        serde_json::to_value(new).unwrap_or_default(),
    ) else {
        return vec!["spec changed".into()];
    };
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{k}: {} -> {}", show(a.get(k)), show(b.get(k))))
        .collect()
}

fn show(v: Option<&serde_json::Value>) -> String {
    match v {
        None | Some(serde_json::Value::Null) => "(unset)".into(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Writes the planned changes in order. Each write is a compare-and-swap on its own object, so a
/// concurrent writer makes this fail rather than be overwritten.
///
/// # Errors
/// The first store error; the writes before it are kept (re-running apply finishes the job).
pub fn execute(store: &Store, doc: &ClusterDocument, changes: &[Change]) -> Result<(), StoreError> {
    for c in changes {
        match (c.kind.as_str(), c.action) {
            (k, ChangeAction::Delete) if k == ClusterSpec::KIND => {
                store.delete::<ClusterSpec>(&c.name, Precondition::None)?;
            }
            (k, ChangeAction::Delete) if k == PoolSpec::KIND => {
                store.delete::<PoolSpec>(&c.name, Precondition::None)?;
            }
            (k, ChangeAction::Delete) if k == NodeSpec::KIND => {
                store.delete::<NodeSpec>(&c.name, Precondition::None)?;
            }
            (k, _) if k == ClusterSpec::KIND => {
                store.put_spec(&doc.name, doc.cluster.clone(), Precondition::None)?;
            }
            (k, _) if k == PoolSpec::KIND => {
                if let Some(p) = doc.pools.iter().find(|p| p.name == c.name) {
                    store.put_spec(&p.name, p.spec.clone(), Precondition::None)?;
                }
            }
            (k, _) if k == NodeSpec::KIND => {
                if let Some(n) = doc.nodes.iter().find(|n| n.name == c.name) {
                    store.put_spec(&n.name, n.spec.clone(), Precondition::None)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use vmctl_protocol::{api::Named, cluster::SshSpec, pool::PoolRole};

    use super::*;

    fn doc(pools: &[&str], nodes: &[(&str, &str, &str)]) -> ClusterDocument {
        ClusterDocument {
            name: "dev".into(),
            cluster: ClusterSpec {
                release: None,
                healing: Default::default(),
                ssh: SshSpec {
                    user: "root".into(),
                    private_key: "/k".into(),
                },
                probe_interval: Duration::from_secs(5),
                call_timeout: Duration::from_secs(10),
                connect_timeout: Duration::from_secs(10),
            },
            pools: pools
                .iter()
                .map(|p| Named {
                    name: p.to_string(),
                    spec: PoolSpec {
                        droplets: None,
                        role: PoolRole::Web,
                        queues: vec![],
                    },
                })
                .collect(),
            nodes: nodes
                .iter()
                .map(|(n, p, a)| Named {
                    name: n.to_string(),
                    spec: NodeSpec {
                        droplet_id: None,
                        pool: p.to_string(),
                        address: a.to_string(),
                        port: 22,
                        root: "/".into(),
                    },
                })
                .collect(),
        }
    }

    fn current_of(d: &ClusterDocument) -> StoredSpecs {
        StoredSpecs {
            clusters: [(d.name.clone(), d.cluster.clone())].into(),
            pools: d
                .pools
                .iter()
                .map(|p| (p.name.clone(), p.spec.clone()))
                .collect(),
            nodes: d
                .nodes
                .iter()
                .map(|n| (n.name.clone(), n.spec.clone()))
                .collect(),
        }
    }

    #[test]
    fn applying_to_an_empty_store_creates_everything() {
        let d = doc(&["web"], &[("web-1", "web", "127.0.0.1")]);
        let changes = plan(&d, &StoredSpecs::default());
        let got: Vec<_> = changes
            .iter()
            .map(|c| (c.kind.as_str(), c.name.as_str(), c.action))
            .collect();
        assert_eq!(
            got,
            vec![
                ("cluster", "dev", ChangeAction::Create),
                ("pool", "web", ChangeAction::Create),
                ("node", "web-1", ChangeAction::Create)
            ]
        );
    }

    #[test]
    fn applying_the_same_document_twice_changes_nothing() {
        let d = doc(&["web"], &[("web-1", "web", "127.0.0.1")]);
        assert!(plan(&d, &current_of(&d)).is_empty());
    }

    #[test]
    fn an_update_names_the_changed_field() {
        let old = doc(&["web"], &[("web-1", "web", "127.0.0.1")]);
        let new = doc(&["web"], &[("web-1", "web", "127.0.0.2")]);
        let changes = plan(&new, &current_of(&old));
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].action, ChangeAction::Update);
        assert_eq!(
            changes[0].details,
            vec!["address: 127.0.0.1 -> 127.0.0.2".to_string()]
        );
    }

    #[test]
    fn pools_are_deleted_after_the_nodes_that_used_them() {
        let old = doc(
            &["web", "old"],
            &[("web-1", "web", "a"), ("old-1", "old", "b")],
        );
        let new = doc(&["web"], &[("web-1", "web", "a")]);
        let changes = plan(&new, &current_of(&old));
        let got: Vec<_> = changes
            .iter()
            .map(|c| (c.kind.as_str(), c.name.as_str()))
            .collect();
        assert_eq!(got, vec![("node", "old-1"), ("pool", "old")]);
        assert!(changes.iter().all(|c| c.action == ChangeAction::Delete));
    }

    #[test]
    fn validation_reports_every_broken_invariant() {
        let d = doc(
            &["web", "web"],
            &[
                ("a", "web", "x"),
                ("a", "nope", "y"),
                ("Bad_Name", "web", "z"),
            ],
        );
        let errs = validate(&d).unwrap_err();
        assert!(errs.contains(&DocumentError::Duplicate {
            kind: "pool",
            name: "web".into()
        }));
        assert!(errs.contains(&DocumentError::Duplicate {
            kind: "node",
            name: "a".into()
        }));
        assert!(errs.contains(&DocumentError::UnknownPool {
            node: "a".into(),
            pool: "nope".into()
        }));
        assert!(errs.contains(&DocumentError::BadName {
            kind: "node",
            name: "Bad_Name".into()
        }));
        assert!(validate(&doc(&["web"], &[("web-1", "web", "x")])).is_ok());
    }
}
