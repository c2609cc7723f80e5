//! Pure decisions of an object write: what the next stored object is, or that nothing changes.
//!
//! The store stamps `resource_version` after the plan, inside its compare-and-swap loop; the
//! plan decides everything else (generation, timestamps, no-op detection).

use vmctl_protocol::{resource::Stored, ObjectMeta, Resource, Timestamp};

/// What a write does to the stored object.
pub(crate) enum Change<R: Resource> {
    /// The write changes nothing; the stored object is returned as is.
    Unchanged(Stored<R>),
    /// Store this object (its resource version is stamped by the caller).
    Write(Stored<R>),
}

/// Creates the object at generation 1 or replaces its spec, raising the generation only when
/// the spec differs.
pub(crate) fn spec_change<R: Resource>(
    current: Option<Stored<R>>,
    name: &str,
    spec: R,
    now: Timestamp,
) -> Change<R> {
    match current {
        None => Change::Write(Stored::<R> {
            metadata: ObjectMeta {
                name: name.to_owned(),
                generation: 1,
                resource_version: 0,
                created_at: now,
                updated_at: now,
            },
            spec,
            status: R::Status::default(),
        }),
        Some(current) if current.spec == spec => Change::Unchanged(current),
        Some(mut next) => {
            next.spec = spec;
            next.metadata.generation += 1;
            next.metadata.updated_at = now;
            Change::Write(next)
        }
    }
}

/// Replaces the status of a stored object, leaving spec and generation alone.
pub(crate) fn status_change<R: Resource>(
    current: Stored<R>,
    status: R::Status,
    now: Timestamp,
) -> Change<R> {
    if current.status == status {
        return Change::Unchanged(current);
    }
    let mut next = current;
    next.status = status;
    next.metadata.updated_at = now;
    Change::Write(next)
}

/// The resource version of the next write: one past the store-wide counter (which starts at
/// 0), but never at or below the object's current version (a migrated object may carry a
/// version the counter never issued).
pub(crate) fn next_resource_version(counter: u64, current: Option<u64>) -> u64 {
    let floor = current.map_or(1, |v| v.saturating_add(1));
    counter.saturating_add(1).max(floor)
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use vmctl_protocol::pool::{PoolRole, PoolSpec, PoolStatus};

    use super::*;

    fn at(secs: i64) -> Timestamp {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    fn spec(role: PoolRole) -> PoolSpec {
        PoolSpec {
            droplets: None,
            role,
            queues: vec![],
        }
    }

    fn written(change: Change<PoolSpec>) -> Stored<PoolSpec> {
        match change {
            Change::Write(o) => o,
            Change::Unchanged(_) => panic!("expected a write"),
        }
    }

    #[test]
    fn create_starts_at_generation_one_with_default_status() {
        let o = written(spec_change(None, "web", spec(PoolRole::Web), at(10)));
        assert_eq!(o.metadata.name, "web");
        assert_eq!(o.metadata.generation, 1);
        assert_eq!(o.metadata.created_at, at(10));
        assert_eq!(o.metadata.updated_at, at(10));
        assert_eq!(o.status, PoolStatus::default());
    }

    #[test]
    fn same_spec_is_unchanged_and_new_spec_raises_generation() {
        let o = written(spec_change(None, "web", spec(PoolRole::Web), at(10)));
        assert!(matches!(
            spec_change(Some(o.clone()), "web", spec(PoolRole::Web), at(20)),
            Change::Unchanged(same) if same == o
        ));
        let next = written(spec_change(Some(o), "web", spec(PoolRole::Proxy), at(20)));
        assert_eq!(next.metadata.generation, 2);
        assert_eq!(next.metadata.created_at, at(10));
        assert_eq!(next.metadata.updated_at, at(20));
    }

    #[test]
    fn status_change_keeps_spec_and_generation() {
        let o = written(spec_change(None, "web", spec(PoolRole::Web), at(10)));
        let status = PoolStatus {
            total: 3,
            ..PoolStatus::default()
        };
        let next = written(status_change(o.clone(), status.clone(), at(30)));
        assert_eq!(next.spec, o.spec);
        assert_eq!(next.metadata.generation, 1);
        assert_eq!(next.status, status);
        assert!(matches!(
            status_change(next, status, at(40)),
            Change::Unchanged(_)
        ));
    }

    #[test]
    fn resource_version_never_goes_back() {
        assert_eq!(next_resource_version(0, None), 1);
        assert_eq!(next_resource_version(5, None), 6);
        assert_eq!(next_resource_version(5, Some(9)), 10);
        assert_eq!(next_resource_version(12, Some(9)), 13);
    }
}
