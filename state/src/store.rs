//! The store handle: opening the sled database, its trees and the options it runs with.

use std::{
    path::{Path, PathBuf},
    sync::{atomic::AtomicUsize, Arc, Mutex},
};

use vmctl_protocol::Resource;

use crate::{schema, StoreError};

/// Default for [`StoreOptions::event_cap`]: days of events for a fleet of tens of droplets, a
/// few megabytes on disk.
pub const DEFAULT_EVENT_CAP: usize = 10_000;

/// Tree of the event log.
pub(crate) const EVENTS_TREE: &str = "events";
/// Tree of pinned SSH host keys.
pub(crate) const HOST_KEYS_TREE: &str = "host_keys";

/// How the store behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// How many events the log keeps; older ones are trimmed. At least 1 is kept.
    pub event_cap: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            event_cap: DEFAULT_EVENT_CAP,
        }
    }
}

/// vmctld's embedded store. Cheap to clone: clones share one database.
///
/// Every method blocks on disk I/O (each write is flushed before it returns); call it from
/// `spawn_blocking` where that matters.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

// sled's own Debug dumps every tree's contents; name the store by its path instead.
impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) db: sled::Db,
    pub(crate) path: PathBuf,
    pub(crate) opts: StoreOptions,
    pub(crate) events: sled::Tree,
    pub(crate) host_keys: sled::Tree,
    /// Serialises appends so a reader that sees seq N has seen every seq below it.
    pub(crate) append_lock: Mutex<()>,
    /// Running watch streams.
    pub(crate) live_watches: Arc<AtomicUsize>,
    /// Every committed object change, published after the write is durable.
    pub(crate) changes: tokio::sync::broadcast::Sender<crate::watch::WatchEvent>,
    /// One item per appended event.
    pub(crate) appended: tokio::sync::broadcast::Sender<()>,
}

impl Store {
    /// Opens (creating if needed) the store in `dir` with default options.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Store::open_with(dir, StoreOptions::default())
    }

    /// Opens (creating if needed) the store in `dir`, migrating an older schema and refusing a
    /// newer one. Fails with [`StoreError::Open`] when another process holds the directory.
    pub fn open_with(dir: &Path, opts: StoreOptions) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .open()
            .map_err(|source| StoreError::Open {
                path: dir.to_owned(),
                source,
            })?;
        schema::ensure_current(&db, dir)?;
        let events = open_tree(&db, EVENTS_TREE)?;
        let host_keys = open_tree(&db, HOST_KEYS_TREE)?;
        Ok(Store {
            inner: Arc::new(Inner {
                db,
                path: dir.to_owned(),
                opts,
                events,
                host_keys,
                append_lock: Mutex::new(()),
                live_watches: Arc::new(AtomicUsize::new(0)),
                changes: tokio::sync::broadcast::channel(crate::watch::CHANNEL_CAPACITY).0,
                appended: tokio::sync::broadcast::channel(crate::watch::CHANNEL_CAPACITY).0,
            }),
        })
    }

    /// The state directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// How many watch streams are still forwarding (a dropped stream's thread ends within a
    /// fraction of a second).
    pub fn active_watches(&self) -> usize {
        self.inner
            .live_watches
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The tree holding objects of kind `R`.
    pub(crate) fn kind_tree<R: Resource>(&self) -> Result<sled::Tree, StoreError> {
        open_tree(&self.inner.db, &kind_tree_name(R::KIND))
    }

    /// Makes every write so far durable. Called before a write is acknowledged.
    pub(crate) fn flush(&self, key: &str) -> Result<(), StoreError> {
        self.inner
            .db
            .flush()
            .map(drop)
            .map_err(|e| StoreError::sled("flushing after writing", key, e))
    }

    /// A fresh value of the store-wide rising counter behind resource versions.
    pub(crate) fn next_counter(&self, key: &str) -> Result<u64, StoreError> {
        self.inner
            .db
            .generate_id()
            .map_err(|e| StoreError::sled("generating a resource version for", key, e))
    }
}

/// Objects of one kind live in their own tree, keyed by name, valued by the whole object as JSON.
pub(crate) fn kind_tree_name(kind: &str) -> String {
    format!("objects/{kind}")
}

pub(crate) fn open_tree(db: &sled::Db, name: &str) -> Result<sled::Tree, StoreError> {
    db.open_tree(name)
        .map_err(|e| StoreError::sled("opening tree", name, e))
}
