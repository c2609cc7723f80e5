//! From the raw, spanned file to a [`ClusterDocument`]: fills defaults and checks every rule,
//! collecting all problems (not just the first) with their positions. Pure: no I/O.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use toml::Spanned;
use vmctl_protocol::{
    api::{ClusterDocument, Named},
    cluster::{
        ClusterSpec, SshSpec, DEFAULT_CALL_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_PROBE_INTERVAL,
    },
    node::{NodeSpec, DEFAULT_ROOT},
    pool::{PoolRole, PoolSpec},
};

use super::error::{ConfigError, ConfigErrors};
use super::locate::Source;
use super::rules::{self, SCHEDULER_QUEUE};
use super::schema::{RawCluster, RawNode, RawPool, RawSsh};

const DEFAULT_SSH_USER: &str = "root";
const DEFAULT_SSH_PORT: u16 = 22;

/// Collects located errors against one source.
pub(super) struct Report<'s, 'a> {
    src: &'s Source<'a>,
    errors: Vec<ConfigError>,
}

impl Report<'_, '_> {
    pub(super) fn at(
        &mut self,
        offset: usize,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        let (line, column) = self.src.position(offset);
        self.errors.push(ConfigError {
            file: self.src.file().to_owned(),
            line,
            column,
            field: field.into(),
            message: message.into(),
        });
    }

    /// Runs `check` on a spanned value and reports its error at the value.
    pub(super) fn check<T, V>(
        &mut self,
        value: &Spanned<T>,
        field: &str,
        check: impl FnOnce(&T) -> Result<V, String>,
    ) -> Option<V> {
        match check(value.get_ref()) {
            Ok(v) => Some(v),
            Err(message) => {
                self.at(value.span().start, field, message);
                None
            }
        }
    }

    /// A required value: reports `is required` at `owner` when absent.
    pub(super) fn required<'v, T>(
        &mut self,
        value: &'v Option<Spanned<T>>,
        owner: usize,
        field: &str,
    ) -> Option<&'v Spanned<T>> {
        if value.is_none() {
            self.at(owner, field, "is required");
        }
        value.as_ref()
    }
}

/// Checks `raw` and builds the document, or returns every problem sorted by position.
pub(crate) fn validate(src: &Source<'_>, raw: RawCluster) -> Result<ClusterDocument, ConfigErrors> {
    let mut r = Report {
        src,
        errors: Vec::new(),
    };

    let name = r.required(&raw.name, 0, "name").and_then(|n| {
        r.check(n, "name", |s| rules::check_name(s))
            .map(|()| n.get_ref().clone())
    });
    let cluster = cluster_spec(&mut r, &raw);
    let pools = pools(&mut r, &raw.pools, &raw.nodes);
    let nodes = nodes(&mut r, &raw.nodes, &raw.pools);

    // A missing name or cluster spec always comes with an error, so the first arm is taken
    // exactly when the file is valid.
    match (name, cluster) {
        (Some(name), Some(cluster)) if r.errors.is_empty() => Ok(ClusterDocument {
            name,
            cluster,
            pools,
            nodes,
        }),
        _ => {
            let mut errors = r.errors;
            errors.sort_by_key(|e| (e.line, e.column));
            Err(ConfigErrors::Invalid(errors))
        }
    }
}

fn duration(
    r: &mut Report<'_, '_>,
    value: &Option<Spanned<String>>,
    field: &str,
    default: std::time::Duration,
) -> std::time::Duration {
    value
        .as_ref()
        .and_then(|v| r.check(v, field, |s| rules::check_duration(s)))
        .unwrap_or(default)
}

fn cluster_spec(r: &mut Report<'_, '_>, raw: &RawCluster) -> Option<ClusterSpec> {
    let probe_interval = duration(
        r,
        &raw.probe_interval,
        "probe_interval",
        DEFAULT_PROBE_INTERVAL,
    );
    let call_timeout = duration(r, &raw.call_timeout, "call_timeout", DEFAULT_CALL_TIMEOUT);
    let connect_timeout = duration(
        r,
        &raw.connect_timeout,
        "connect_timeout",
        DEFAULT_CONNECT_TIMEOUT,
    );
    let ssh = match &raw.ssh {
        Some(ssh) => ssh_spec(r, ssh)?,
        None => {
            r.at(
                0,
                "ssh",
                "the [ssh] table is required (at least `private_key = \"/path/to/key\"`)",
            );
            return None;
        }
    };
    let healing = super::droplets::healing(r, raw.healing.as_ref());
    let release = match &raw.release {
        None => None,
        Some(value) => {
            let at = r.src.key_span("release").map_or(0, |s| s.start);
            match value
                .clone()
                .try_into::<vmctl_protocol::cluster::ReleaseSpec>()
            {
                Ok(spec) if spec.repo_url.trim().is_empty() => {
                    r.at(
                        at,
                        "release.repo_url",
                        "must name the git URL droplets fetch releases from",
                    );
                    None
                }
                Ok(spec) => Some(spec),
                Err(e) => {
                    r.at(at, "release", e.to_string().trim().to_string());
                    None
                }
            }
        }
    };
    Some(ClusterSpec {
        release,
        healing,
        ssh,
        probe_interval,
        call_timeout,
        connect_timeout,
    })
}

fn ssh_spec(r: &mut Report<'_, '_>, raw: &RawSsh) -> Option<SshSpec> {
    let table_at = r.src.key_span("ssh").map_or(0, |s| s.start);
    let user = match &raw.user {
        Some(u) => r
            .check(u, "ssh.user", |s| rules::check_user(s))
            .map(|()| u.get_ref().clone()),
        None => Some(DEFAULT_SSH_USER.to_owned()),
    };
    let key = r
        .required(&raw.private_key, table_at, "ssh.private_key")
        .and_then(|k| {
            r.check(k, "ssh.private_key", |s| rules::check_private_key(s))
                .map(|()| k.get_ref().clone())
        });
    Some(SshSpec {
        user: user?,
        private_key: key?,
    })
}

/// Pools in file order (TOML tables come back sorted by name; the key spans restore order).
fn pools(
    r: &mut Report<'_, '_>,
    raw: &BTreeMap<Spanned<String>, RawPool>,
    nodes: &[Spanned<RawNode>],
) -> Vec<Named<PoolSpec>> {
    let mut ordered: Vec<(&Spanned<String>, &RawPool)> = raw.iter().collect();
    ordered.sort_by_key(|(k, _)| k.span().start);

    let mut out = Vec::new();
    // Where `scheduler` was first listed: (pool name, offset of that list entry).
    let mut scheduler_at: Option<(&str, usize)> = None;
    for (key, pool) in ordered {
        let name = key.get_ref().as_str();
        let field = format!("pools.{name}");
        let name_ok = r.check(key, &field, |s| rules::check_name(s)).is_some();
        let role_field = format!("{field}.role");
        let role = r
            .required(&pool.role, key.span().start, &role_field)
            .and_then(|role| r.check(role, &role_field, |s| rules::parse_role(s)));
        let queues = queues(r, &field, name, role, pool, nodes, &mut scheduler_at);
        let droplets = pool
            .droplets
            .as_ref()
            .map(|d| super::droplets::template(r, &field, key.span().start, d));
        if let Some(None) = droplets {
            continue;
        }
        if let (true, Some(role)) = (name_ok, role) {
            out.push(Named {
                name: name.to_owned(),
                spec: PoolSpec {
                    role,
                    queues,
                    droplets: droplets.flatten(),
                },
            });
        }
    }
    out
}

fn queues<'p>(
    r: &mut Report<'_, '_>,
    pool_field: &str,
    pool_name: &'p str,
    role: Option<PoolRole>,
    pool: &RawPool,
    nodes: &[Spanned<RawNode>],
    scheduler_at: &mut Option<(&'p str, usize)>,
) -> Vec<String> {
    let Some(list) = &pool.queues else {
        return Vec::new();
    };
    let field = format!("{pool_field}.queues");
    if let Some(role) = role.filter(|&role| !rules::role_takes_queues(role)) {
        r.at(
            list.span().start,
            &field,
            format!(
                "queues are only allowed on sidekiq and exec pools (this pool's role is {})",
                role.as_str()
            ),
        );
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, q) in list.get_ref().iter().enumerate() {
        let item = format!("{field}[{i}]");
        let text = q.get_ref().as_str();
        if r.check(q, &item, |s| rules::check_queue(s)).is_none() {
            continue;
        }
        if let Some(first) = seen.insert(text, i) {
            r.at(
                q.span().start,
                &item,
                format!("{text:?} is already listed as {field}[{first}]"),
            );
            continue;
        }
        if text != SCHEDULER_QUEUE {
            continue;
        }
        match *scheduler_at {
            Some((other, at)) => {
                let (line, _) = r.src.position(at);
                r.at(
                    q.span().start,
                    &item,
                    format!(
                        "scheduler is already run by pool {other:?} (line {line}); exactly one \
                         pool may run it"
                    ),
                );
            }
            None => {
                *scheduler_at = Some((pool_name, q.span().start));
                match pool.droplets.as_ref().and_then(|d| d.count.as_ref()) {
                    // A managed pool's size is its droplet count.
                    Some(count) if *count.get_ref() != 1 => r.at(
                        q.span().start,
                        &item,
                        format!(
                            "the pool that runs scheduler must have exactly 1 node; pool {pool_name:?} asks for {} droplets",
                            count.get_ref()
                        ),
                    ),
                    Some(_) => {}
                    None => scheduler_pool_size(r, &item, q.span(), pool_name, nodes),
                }
            }
        }
    }
    list.get_ref().iter().map(|q| q.get_ref().clone()).collect()
}

/// The scheduler must run in exactly one Sidekiq process, so its pool has exactly one node.
fn scheduler_pool_size(
    r: &mut Report<'_, '_>,
    field: &str,
    at: Range<usize>,
    pool_name: &str,
    nodes: &[Spanned<RawNode>],
) {
    let members: Vec<&str> = nodes
        .iter()
        .filter(|n| {
            n.get_ref()
                .pool
                .as_ref()
                .is_some_and(|p| p.get_ref() == pool_name)
        })
        .map(|n| {
            n.get_ref()
                .name
                .as_ref()
                .map_or("?", |s| s.get_ref().as_str())
        })
        .collect();
    if members.len() != 1 {
        let listed = if members.is_empty() {
            String::new()
        } else {
            format!(" ({})", members.join(", "))
        };
        r.at(
            at.start,
            field,
            format!(
                "the pool that runs scheduler must have exactly 1 node; pool {pool_name:?} has {}{listed}",
                members.len()
            ),
        );
    }
}

fn nodes(
    r: &mut Report<'_, '_>,
    raw: &[Spanned<RawNode>],
    pools: &BTreeMap<Spanned<String>, RawPool>,
) -> Vec<Named<NodeSpec>> {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, spanned) in raw.iter().enumerate() {
        let node = spanned.get_ref();
        let at = spanned.span().start;
        let field = |f: &str| format!("nodes[{i}].{f}");

        let name = r.required(&node.name, at, &field("name")).and_then(|n| {
            r.check(n, &field("name"), |s| rules::check_name(s))?;
            if let Some(first) = names.insert(n.get_ref(), n.span().start) {
                let (line, _) = r.src.position(first);
                r.at(
                    n.span().start,
                    field("name"),
                    format!(
                        "duplicate node name {:?} (first defined on line {line})",
                        n.get_ref()
                    ),
                );
                return None;
            }
            Some(n.get_ref().clone())
        });
        let pool = r.required(&node.pool, at, &field("pool")).and_then(|p| {
            r.check(p, &field("pool"), |s| pool_exists(s, pools))
                .map(|()| p.get_ref().clone())
        });
        let address = r
            .required(&node.address, at, &field("address"))
            .and_then(|a| {
                r.check(a, &field("address"), |s| rules::check_address(s))
                    .map(|()| a.get_ref().clone())
            });
        let port = match &node.port {
            Some(p) => r.check(p, &field("port"), |&n| rules::check_port(n)),
            None => Some(DEFAULT_SSH_PORT),
        };
        let root = match &node.root {
            Some(root) => r
                .check(root, &field("root"), |s| rules::check_root(s))
                .map(|()| root.get_ref().clone()),
            None => Some(DEFAULT_ROOT.to_owned()),
        };
        if let (Some(name), Some(pool), Some(address), Some(port), Some(root)) =
            (name, pool, address, port, root)
        {
            out.push(Named {
                name,
                spec: NodeSpec {
                    droplet_id: None,
                    pool,
                    address,
                    port,
                    root,
                },
            });
        }
    }
    out
}

fn pool_exists(name: &str, pools: &BTreeMap<Spanned<String>, RawPool>) -> Result<(), String> {
    if pools.keys().any(|k| k.get_ref() == name) {
        return Ok(());
    }
    let defined: Vec<&str> = pools.keys().map(|k| k.get_ref().as_str()).collect();
    Err(if defined.is_empty() {
        format!("unknown pool {name:?}; no pools are defined (add a [pools.{name}] table)")
    } else {
        format!(
            "unknown pool {name:?}; defined pools: {}",
            defined.join(", ")
        )
    })
}
