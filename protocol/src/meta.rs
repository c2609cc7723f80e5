//! Object metadata and status conditions, shared by every resource kind.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Every timestamp vmctl stores or sends is UTC.
pub type Timestamp = DateTime<Utc>;

/// Identity and versioning of a stored object.
///
/// `generation` rises only when the spec changes; `resource_version` rises on every write
/// (spec or status) and is what compare-and-swap checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// Unique within its kind.
    pub name: String,
    /// Starts at 1 and rises on every spec change.
    pub generation: u64,
    /// Rises on every write of the object; the compare-and-swap token.
    pub resource_version: u64,
    /// When the object was first stored.
    pub created_at: Timestamp,
    /// When the object was last written.
    pub updated_at: Timestamp,
}

/// The tri-state of a condition, as in Kubernetes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not known yet (for example, never probed).
    Unknown,
}

/// One observed fact about an object, with when it last changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    /// What the condition is about, e.g. `Reachable`, `HostKeyMismatch`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Whether it holds.
    pub status: ConditionStatus,
    /// A CamelCase machine-readable reason, e.g. `ConnectRefused`.
    pub reason: String,
    /// A sentence a person can act on. Never contains secrets.
    pub message: String,
    /// When `status` last changed (not when the condition was last written).
    pub last_transition: Timestamp,
}

impl Condition {
    /// Sets or replaces the condition `new.type_` in `conditions`, keeping `last_transition`
    /// when the status did not change. Returns true when the status changed (a transition).
    pub fn upsert(conditions: &mut Vec<Condition>, mut new: Condition) -> bool {
        match conditions.iter_mut().find(|c| c.type_ == new.type_) {
            Some(existing) => {
                let transitioned = existing.status != new.status;
                if !transitioned {
                    new.last_transition = existing.last_transition;
                }
                *existing = new;
                transitioned
            }
            None => {
                conditions.push(new);
                true
            }
        }
    }

    /// Finds a condition by type.
    pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
        conditions.iter().find(|c| c.type_ == type_)
    }

    /// True when the condition of this type is present with status `True`.
    pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
        Self::find(conditions, type_).is_some_and(|c| c.status == ConditionStatus::True)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(status: ConditionStatus, at: i64) -> Condition {
        Condition {
            type_: "Reachable".into(),
            status,
            reason: "R".into(),
            message: "m".into(),
            last_transition: DateTime::from_timestamp(at, 0).unwrap(),
        }
    }

    #[test]
    fn upsert_keeps_transition_time_when_status_is_unchanged() {
        let mut cs = vec![cond(ConditionStatus::True, 10)];
        assert!(!Condition::upsert(&mut cs, cond(ConditionStatus::True, 20)));
        assert_eq!(cs[0].last_transition.timestamp(), 10);
        assert!(Condition::upsert(&mut cs, cond(ConditionStatus::False, 30)));
        assert_eq!(cs[0].last_transition.timestamp(), 30);
        assert_eq!(cs.len(), 1);
    }
}
