//! The on-disk schema version: stamping a fresh store, migrating an older one step by step and
//! refusing one written by a newer vmctld.
//!
//! The stamp is `schema_version` in the `meta` tree, a big-endian u64.

use std::path::Path;

use crate::StoreError;

/// The schema version this build writes.
pub const SCHEMA_VERSION: u64 = 1;

/// Tree that holds store-wide bookkeeping.
pub(crate) const META_TREE: &str = "meta";
const SCHEMA_KEY: &str = "schema_version";

/// One migration: rewrites a store at version `i` into version `i + 1`. Must be idempotent, so
/// a crash halfway through is finished by running it again on the next open.
type Migration = fn(&sled::Db) -> Result<(), StoreError>;

/// `MIGRATIONS[i]` migrates version `i` to `i + 1`.
const MIGRATIONS: [Migration; SCHEMA_VERSION as usize] = [migrate_v0_to_v1];

/// What opening must do about the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SchemaStep {
    /// Nothing stored yet: stamp the current version.
    Fresh,
    /// Already at the current version.
    Current,
    /// Run the migrations from this version up.
    Migrate { from: u64 },
    /// Written by a newer build; refuse.
    TooNew { found: u64 },
}

/// Decides from the stamp (if any) and whether anything else is stored.
///
/// A store with data but no stamp predates the stamp: version 0.
pub(crate) fn decide(stamp: Option<u64>, has_data: bool) -> SchemaStep {
    match stamp {
        None if has_data => SchemaStep::Migrate { from: 0 },
        None => SchemaStep::Fresh,
        Some(v) if v == SCHEMA_VERSION => SchemaStep::Current,
        Some(v) if v < SCHEMA_VERSION => SchemaStep::Migrate { from: v },
        Some(found) => SchemaStep::TooNew { found },
    }
}

/// Brings the store at `path` to [`SCHEMA_VERSION`] or refuses it.
pub(crate) fn ensure_current(db: &sled::Db, path: &Path) -> Result<(), StoreError> {
    let meta = db
        .open_tree(META_TREE)
        .map_err(|e| StoreError::sled("opening tree", META_TREE, e))?;
    let stamp = read_stamp(&meta, path)?;
    match decide(stamp, has_data(db)?) {
        SchemaStep::Current => Ok(()),
        SchemaStep::Fresh => write_stamp(db, &meta, SCHEMA_VERSION),
        SchemaStep::TooNew { found } => Err(StoreError::SchemaTooNew {
            path: path.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        }),
        SchemaStep::Migrate { from } => {
            for version in from..SCHEMA_VERSION {
                tracing::info!(path = %path.display(), from = version, "Migrating the store schema.");
                let step = MIGRATIONS[usize::try_from(version).expect("versions are small")];
                step(db).map_err(|e| StoreError::Migrate {
                    path: path.to_owned(),
                    from: version,
                    source: Box::new(e),
                })?;
                // Stamped after each step so a crash resumes at the step that did not finish.
                write_stamp(db, &meta, version + 1)?;
            }
            Ok(())
        }
    }
}

fn read_stamp(meta: &sled::Tree, path: &Path) -> Result<Option<u64>, StoreError> {
    let Some(raw) = meta
        .get(SCHEMA_KEY)
        .map_err(|e| StoreError::sled("reading", SCHEMA_KEY, e))?
    else {
        return Ok(None);
    };
    let bytes: [u8; 8] = raw
        .as_ref()
        .try_into()
        .map_err(|_| StoreError::SchemaCorrupt {
            path: path.to_owned(),
            len: raw.len(),
        })?;
    Ok(Some(u64::from_be_bytes(bytes)))
}

fn write_stamp(db: &sled::Db, meta: &sled::Tree, version: u64) -> Result<(), StoreError> {
    meta.insert(SCHEMA_KEY, &version.to_be_bytes())
        .map_err(|e| StoreError::sled("writing", SCHEMA_KEY, e))?;
    db.flush()
        .map_err(|e| StoreError::sled("flushing", SCHEMA_KEY, e))?;
    Ok(())
}

/// True when any tree other than `meta` holds a key.
fn has_data(db: &sled::Db) -> Result<bool, StoreError> {
    for name in db.tree_names() {
        if name.as_ref() == META_TREE.as_bytes() {
            continue;
        }
        let label = String::from_utf8_lossy(&name).into_owned();
        let tree = db
            .open_tree(&name)
            .map_err(|e| StoreError::sled("opening tree", &label, e))?;
        if tree
            .first()
            .map_err(|e| StoreError::sled("reading tree", &label, e))?
            .is_some()
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Version 0 is a store written before the stamp existed. Its trees already have the version 1
/// layout, so stamping (done by the caller) is the whole migration.
fn migrate_v0_to_v1(_db: &sled::Db) -> Result<(), StoreError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_store_is_fresh_and_unstamped_data_is_v0() {
        assert_eq!(decide(None, false), SchemaStep::Fresh);
        assert_eq!(decide(None, true), SchemaStep::Migrate { from: 0 });
    }

    #[test]
    fn stamped_versions_are_current_older_or_too_new() {
        assert_eq!(decide(Some(SCHEMA_VERSION), true), SchemaStep::Current);
        assert_eq!(decide(Some(0), true), SchemaStep::Migrate { from: 0 });
        assert_eq!(
            decide(Some(SCHEMA_VERSION + 1), false),
            SchemaStep::TooNew {
                found: SCHEMA_VERSION + 1
            }
        );
    }
}
