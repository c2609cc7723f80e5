//! Write preconditions and the pure check of one against what is stored.

use crate::StoreError;

/// What must hold for a write to go ahead. Checked against the stored object inside the
/// compare-and-swap, so a precondition never races with another writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precondition {
    /// Write whatever is stored. Concurrent spec and status writers still never lose each
    /// other's update: each retries its own change on top of the other's.
    #[default]
    None,
    /// The object must not exist yet (create only).
    MustNotExist,
    /// The object must exist with exactly this resource version.
    ResourceVersion(u64),
}

impl Precondition {
    /// Checks the precondition against the resource version of the stored object, if any.
    pub fn check(self, kind: &str, name: &str, stored: Option<u64>) -> Result<(), StoreError> {
        match (self, stored) {
            (Precondition::None, _) | (Precondition::MustNotExist, None) => Ok(()),
            (Precondition::MustNotExist, Some(_)) => Err(StoreError::AlreadyExists {
                kind: kind.to_owned(),
                name: name.to_owned(),
            }),
            (Precondition::ResourceVersion(_), None) => Err(StoreError::NotFound {
                kind: kind.to_owned(),
                name: name.to_owned(),
            }),
            (Precondition::ResourceVersion(expected), Some(actual)) if expected != actual => {
                Err(StoreError::Conflict {
                    kind: kind.to_owned(),
                    name: name.to_owned(),
                    expected,
                    actual,
                })
            }
            (Precondition::ResourceVersion(_), Some(_)) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_always_holds() {
        assert!(Precondition::None.check("node", "a", None).is_ok());
        assert!(Precondition::None.check("node", "a", Some(7)).is_ok());
    }

    #[test]
    fn must_not_exist_refuses_a_stored_object() {
        assert!(Precondition::MustNotExist.check("node", "a", None).is_ok());
        assert!(matches!(
            Precondition::MustNotExist.check("node", "a", Some(1)),
            Err(StoreError::AlreadyExists { .. })
        ));
    }

    #[test]
    fn resource_version_must_match_exactly() {
        let pre = Precondition::ResourceVersion(3);
        assert!(pre.check("node", "a", Some(3)).is_ok());
        match pre.check("node", "a", Some(4)) {
            Err(StoreError::Conflict {
                expected: 3,
                actual: 4,
                kind,
                name,
            }) => {
                assert_eq!((kind.as_str(), name.as_str()), ("node", "a"));
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert!(matches!(
            pre.check("node", "a", None),
            Err(StoreError::NotFound { .. })
        ));
    }
}
