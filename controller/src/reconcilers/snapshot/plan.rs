//! Snapshot decisions, pure: naming, which image a new droplet starts from, and which old
//! snapshots retention deletes.

use std::collections::BTreeSet;

use vmctl_protocol::{meta::Timestamp, pool::DropletTemplate};

/// A snapshot as the decisions need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Id (DigitalOcean gives snapshot ids as strings of digits).
    pub id: String,
    /// Name.
    pub name: String,
    /// When it was made.
    pub created_at: Timestamp,
}

/// The prefix of every snapshot vmctl takes of a pool.
pub fn pool_prefix(cluster: &str, pool: &str) -> String {
    format!("{cluster}-{pool}-")
}

/// `<cluster>-<pool>-<release>-<UTC timestamp>`; characters DigitalOcean dislikes in the
/// release become `-`.
pub fn snapshot_name(cluster: &str, pool: &str, release: Option<&str>, now: Timestamp) -> String {
    let release: String = release
        .unwrap_or("norelease")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!(
        "{}{release}-{}",
        pool_prefix(cluster, pool),
        now.format("%Y%m%dT%H%M%SZ")
    )
}

/// The image a new droplet of the pool starts from: the newest of the pool's own snapshots and
/// the snapshot the spec names (by name or id).
///
/// # Errors
/// A message for the pool condition when no candidate exists or the id is not numeric.
pub fn resolve_image(
    cluster: &str,
    pool: &str,
    template: &DropletTemplate,
    snapshots: &[SnapshotInfo],
) -> Result<(u64, String), String> {
    let prefix = pool_prefix(cluster, pool);
    let best = snapshots
        .iter()
        .filter(|s| {
            s.name == template.image || s.id == template.image || s.name.starts_with(&prefix)
        })
        .max_by_key(|s| (s.created_at, s.id.clone()));
    match best {
        Some(s) => s
            .id
            .parse::<u64>()
            .map(|id| (id, s.name.clone()))
            .map_err(|_| format!("snapshot {} has a non-numeric id {:?}", s.name, s.id)),
        None => Err(format!(
            "image {:?} does not exist (no snapshot with that name or id, and no {prefix}* snapshot yet)",
            template.image
        )),
    }
}

/// The pool snapshots retention deletes: all but the newest `keep` of the pool's own, never
/// one the spec names and never one an in-flight create uses.
pub fn to_prune(
    cluster: &str,
    pool: &str,
    template: &DropletTemplate,
    snapshots: &[SnapshotInfo],
    in_use: &BTreeSet<u64>,
) -> Vec<SnapshotInfo> {
    let prefix = pool_prefix(cluster, pool);
    let mut mine: Vec<&SnapshotInfo> = snapshots
        .iter()
        .filter(|s| s.name.starts_with(&prefix))
        .collect();
    mine.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    mine.into_iter()
        .skip(template.snapshot.keep as usize)
        .filter(|s| s.name != template.image && s.id != template.image)
        .filter(|s| s.id.parse::<u64>().map_or(true, |id| !in_use.contains(&id)))
        .cloned()
        .collect()
}

/// Whether the pool's newest snapshot is older than its policy allows (or missing).
pub fn is_stale(newest: Option<Timestamp>, template: &DropletTemplate, now: Timestamp) -> bool {
    match newest {
        None => true,
        Some(t) => {
            now.signed_duration_since(t).to_std().unwrap_or_default() > template.snapshot.max_age
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::DateTime;
    use vmctl_protocol::pool::SnapshotPolicy;

    use super::*;

    fn at(s: i64) -> Timestamp {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    fn template(image: &str, keep: u32) -> DropletTemplate {
        DropletTemplate {
            count: 2,
            region: "nyc3".into(),
            size: "s".into(),
            image: image.into(),
            tags: vec![],
            vpc_uuid: None,
            ssh_keys: vec![],
            load_balancer: None,
            startup_grace: Duration::from_secs(1),
            failure_grace: Duration::from_secs(1),
            root: "/".into(),
            snapshot: SnapshotPolicy {
                keep,
                max_age: Duration::from_secs(100),
            },
        }
    }

    fn snap(id: u64, name: &str, t: i64) -> SnapshotInfo {
        SnapshotInfo {
            id: id.to_string(),
            name: name.into(),
            created_at: at(t),
        }
    }

    #[test]
    fn names_carry_cluster_pool_release_and_time() {
        assert_eq!(
            snapshot_name("vmst", "web", Some("v4.3.1"), at(0)),
            "vmst-web-v4.3.1-19700101T000000Z"
        );
        assert_eq!(
            snapshot_name("vmst", "web", None, at(0)),
            "vmst-web-norelease-19700101T000000Z"
        );
        assert_eq!(
            snapshot_name("a", "b", Some("x/../y"), at(0)),
            "a-b-x-..-y-19700101T000000Z"
        );
    }

    #[test]
    fn the_newest_of_the_named_image_and_the_pools_own_snapshots_wins() {
        let t = template("base", 3);
        let snaps = [
            snap(1, "base", 10),
            snap(2, "vmst-web-v1-a", 20),
            snap(3, "other", 30),
            snap(4, "vmst-sidekiq-x", 40),
        ];
        assert_eq!(
            resolve_image("vmst", "web", &t, &snaps).unwrap(),
            (2, "vmst-web-v1-a".to_string())
        );
        assert_eq!(resolve_image("vmst", "web", &t, &snaps[..1]).unwrap().0, 1);
        assert_eq!(
            resolve_image("vmst", "web", &template("3", 3), &snaps[2..3])
                .unwrap()
                .0,
            3
        );
        assert!(
            resolve_image("vmst", "web", &template("nope", 3), &snaps[2..])
                .unwrap_err()
                .contains("does not exist")
        );
    }

    #[test]
    fn retention_keeps_the_newest_and_never_deletes_protected_ones() {
        let t = template("vmst-web-v1-a", 2);
        let snaps = [
            snap(1, "vmst-web-v1-a", 10),
            snap(2, "vmst-web-v1-b", 20),
            snap(3, "vmst-web-v1-c", 30),
            snap(4, "vmst-web-v1-d", 40),
            snap(5, "base", 1),
        ];
        let pruned: Vec<String> = to_prune("vmst", "web", &t, &snaps, &BTreeSet::new())
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(
            pruned,
            vec!["2"],
            "1 is named by the spec, 3 and 4 are the newest, 5 is not ours"
        );
        let pruned: Vec<String> = to_prune("vmst", "web", &t, &snaps, &BTreeSet::from([2]))
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert!(pruned.is_empty(), "an in-flight create's image is kept");
    }

    #[test]
    fn staleness_follows_max_age() {
        let t = template("x", 3);
        assert!(is_stale(None, &t, at(0)));
        assert!(!is_stale(Some(at(0)), &t, at(100)));
        assert!(is_stale(Some(at(0)), &t, at(101)));
    }
}
