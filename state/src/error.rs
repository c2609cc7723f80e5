//! The store's error type: one variant per way a store operation fails, each carrying its key.

use std::path::PathBuf;

/// Why a store operation failed.
///
/// `Display` says what failed at this layer; the cause, when there is one, is the `source`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A `ResourceVersion` precondition did not hold: someone else wrote the object first.
    #[error("{kind} {name:?} changed: expected resource version {expected}, found {actual}")]
    Conflict {
        /// Kind of the object.
        kind: String,
        /// Name of the object.
        name: String,
        /// The resource version the caller read.
        expected: u64,
        /// The resource version stored now.
        actual: u64,
    },
    /// A `MustNotExist` precondition did not hold.
    #[error("{kind} {name:?} already exists")]
    AlreadyExists {
        /// Kind of the object.
        kind: String,
        /// Name of the object.
        name: String,
    },
    /// The object must exist for this operation (status writes, version preconditions).
    #[error("{kind} {name:?} not found")]
    NotFound {
        /// Kind of the object.
        kind: String,
        /// Name of the object.
        name: String,
    },
    /// Compare-and-swap kept losing to other writers of the same object until the retry cap.
    #[error(
        "{kind} {name:?} is written too often: gave up after {attempts} compare-and-swap attempts"
    )]
    Contended {
        /// Kind of the object.
        kind: String,
        /// Name of the object.
        name: String,
        /// How many attempts were made.
        attempts: u32,
    },
    /// The store on disk was written by a newer vmctld.
    #[error(
        "store at {} has schema version {found}, but this vmctld supports up to version \
         {supported}; run a newer vmctld or point it at another state directory",
        path.display()
    )]
    SchemaTooNew {
        /// The state directory.
        path: PathBuf,
        /// The version stamped in the store.
        found: u64,
        /// The newest version this build understands.
        supported: u64,
    },
    /// The schema stamp is not a version number.
    #[error("store at {} has an unreadable schema version stamp ({len} bytes, expected 8)", path.display())]
    SchemaCorrupt {
        /// The state directory.
        path: PathBuf,
        /// Length of the stored stamp.
        len: usize,
    },
    /// Migrating the store from one schema version to the next failed.
    #[error("migrating the store at {} from schema version {from} to {}", path.display(), from + 1)]
    Migrate {
        /// The state directory.
        path: PathBuf,
        /// The version migrated from.
        from: u64,
        /// What went wrong.
        #[source]
        source: Box<StoreError>,
    },
    /// The state directory could not be opened, for example because another process holds it.
    #[error("cannot open the store at {}", path.display())]
    Open {
        /// The state directory.
        path: PathBuf,
        /// sled's error (a lock held by another process shows here).
        #[source]
        source: sled::Error,
    },
    /// sled failed while reading or writing.
    #[error("store I/O failed while {op} {key:?}")]
    Sled {
        /// The operation, e.g. `writing node`.
        op: &'static str,
        /// The key or tree it was working on.
        key: String,
        /// sled's error.
        #[source]
        source: sled::Error,
    },
    /// A stored value could not be encoded or decoded.
    #[error("cannot encode or decode {kind} {name:?}")]
    Codec {
        /// Kind of the value (`node`, `event`, `host_key`, ...).
        kind: String,
        /// Its key.
        name: String,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// A different host key is already pinned for the node.
    #[error(
        "node {node:?} already has a different host key pinned ({pinned_fingerprint}); \
         forget it first if the droplet was rebuilt"
    )]
    HostKeyAlreadyPinned {
        /// The node.
        node: String,
        /// Fingerprint of the key that stays pinned.
        pinned_fingerprint: String,
    },
}

impl StoreError {
    /// Wraps a sled error with the operation and key that hit it.
    pub(crate) fn sled(op: &'static str, key: &str, source: sled::Error) -> StoreError {
        StoreError::Sled {
            op,
            key: key.to_owned(),
            source,
        }
    }

    /// Wraps a serde_json error with the value it was about.
    pub(crate) fn codec(kind: &str, name: &str, source: serde_json::Error) -> StoreError {
        StoreError::Codec {
            kind: kind.to_owned(),
            name: name.to_owned(),
            source,
        }
    }
}
