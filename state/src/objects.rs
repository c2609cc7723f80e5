//! Typed objects: get, list, spec and status writes, delete and watch.
//!
//! Each object is one key in its kind's tree, so a write of either half is one
//! compare-and-swap of the whole object. A writer that loses the race re-reads and re-applies
//! its own half, so concurrent spec and status writers never drop each other's update.

use std::time::Duration;

use vmctl_protocol::{resource::Stored, Resource};

use crate::{
    plan::{self, Change},
    watch::{self, WatchEvent, WatchStream},
    Precondition, Store, StoreError,
};

/// Compare-and-swap attempts before a write gives up with [`StoreError::Contended`]. Each lost
/// attempt means another write of the same object succeeded, so this only trips under a storm.
const CAS_ATTEMPTS: u32 = 64;
/// Backoff between lost attempts: doubles from here, capped at [`CAS_BACKOFF_MAX`].
const CAS_BACKOFF_MIN: Duration = Duration::from_micros(50);
const CAS_BACKOFF_MAX: Duration = Duration::from_millis(5);

impl Store {
    /// Reads one object.
    pub fn get<R: Resource>(&self, name: &str) -> Result<Option<Stored<R>>, StoreError> {
        let tree = self.kind_tree::<R>()?;
        let raw = tree
            .get(name)
            .map_err(|e| StoreError::sled("reading", name, e))?;
        raw.map(|bytes| decode::<R>(name, &bytes)).transpose()
    }

    /// Reads every object of a kind, sorted by name.
    pub fn list<R: Resource>(&self) -> Result<Vec<Stored<R>>, StoreError> {
        let tree = self.kind_tree::<R>()?;
        tree.iter()
            .map(|entry| {
                let (key, bytes) = entry.map_err(|e| StoreError::sled("listing", R::KIND, e))?;
                decode::<R>(&String::from_utf8_lossy(&key), &bytes)
            })
            .collect()
    }

    /// Creates the object (generation 1, default status) or replaces its spec.
    ///
    /// The generation rises only when the spec differs; the resource version rises on every
    /// write that changes the stored bytes. Writing the stored spec again is a no-op that
    /// returns the stored object (no version bump, no watch event).
    pub fn put_spec<R: Resource>(
        &self,
        name: &str,
        spec: R,
        pre: Precondition,
    ) -> Result<Stored<R>, StoreError> {
        let now = chrono::Utc::now();
        self.write::<R>(name, pre, |current| {
            Ok(plan::spec_change(current, name, spec.clone(), now))
        })
    }

    /// Replaces the status of an existing object, leaving its spec and generation alone.
    /// [`StoreError::NotFound`] if the object does not exist. An identical status is a no-op.
    pub fn put_status<R: Resource>(
        &self,
        name: &str,
        status: R::Status,
        pre: Precondition,
    ) -> Result<Stored<R>, StoreError> {
        let now = chrono::Utc::now();
        self.write::<R>(name, pre, |current| match current {
            Some(current) => Ok(plan::status_change(current, status.clone(), now)),
            None => Err(StoreError::NotFound {
                kind: R::KIND.to_owned(),
                name: name.to_owned(),
            }),
        })
    }

    /// Deletes the object. True when something was deleted, false when it did not exist.
    pub fn delete<R: Resource>(&self, name: &str, pre: Precondition) -> Result<bool, StoreError> {
        let tree = self.kind_tree::<R>()?;
        let mut backoff = CAS_BACKOFF_MIN;
        for _ in 0..CAS_ATTEMPTS {
            let old = tree
                .get(name)
                .map_err(|e| StoreError::sled("reading", name, e))?;
            let current = old
                .as_ref()
                .map(|bytes| decode::<R>(name, bytes))
                .transpose()?;
            pre.check(
                R::KIND,
                name,
                current.as_ref().map(|o| o.metadata.resource_version),
            )?;
            let Some(old) = old else {
                return Ok(false);
            };
            let swapped = tree
                .compare_and_swap(name, Some(old), None::<&[u8]>)
                .map_err(|e| StoreError::sled("deleting", name, e))?;
            if swapped.is_ok() {
                self.flush(name)?;
                self.publish(R::KIND, name, true);
                return Ok(true);
            }
            backoff = pause(backoff);
        }
        Err(contended::<R>(name))
    }

    /// An async stream of changes to objects of kind `R`: every put that changed bytes and every
    /// delete, with the object's name. It starts at the call; read the current state with
    /// [`Store::list`] after subscribing so nothing falls between.
    ///
    /// # Caveats
    /// Changes are published in-process after each write is durable, so only writes through this
    /// `Store` (and its clones) are seen. sled's own `watch_prefix` was used before and lost
    /// events under concurrent writers (see `tests/watch_burst.rs`).
    pub fn watch<R: Resource>(&self) -> WatchStream<WatchEvent> {
        watch::subscribe(
            self.inner.changes.subscribe(),
            self.inner.live_watches.clone(),
            |e: &WatchEvent| e.kind == R::KIND,
        )
    }

    fn publish(&self, kind: &'static str, name: &str, deleted: bool) {
        // No receivers is fine: nobody is watching.
        let _ = self.inner.changes.send(WatchEvent {
            kind,
            name: name.to_string(),
            deleted,
        });
    }

    /// The compare-and-swap loop shared by spec and status writes. `change` decides from the
    /// stored object; it runs again after every lost race, against the winner's write.
    fn write<R: Resource>(
        &self,
        name: &str,
        pre: Precondition,
        change: impl Fn(Option<Stored<R>>) -> Result<Change<R>, StoreError>,
    ) -> Result<Stored<R>, StoreError> {
        let tree = self.kind_tree::<R>()?;
        let mut backoff = CAS_BACKOFF_MIN;
        for _ in 0..CAS_ATTEMPTS {
            let old = tree
                .get(name)
                .map_err(|e| StoreError::sled("reading", name, e))?;
            let current = old
                .as_ref()
                .map(|bytes| decode::<R>(name, bytes))
                .transpose()?;
            let current_version = current.as_ref().map(|o| o.metadata.resource_version);
            pre.check(R::KIND, name, current_version)?;
            let mut next = match change(current)? {
                Change::Unchanged(stored) => return Ok(stored),
                Change::Write(next) => next,
            };
            next.metadata.resource_version =
                plan::next_resource_version(self.next_counter(name)?, current_version);
            let bytes = encode::<R>(name, &next)?;
            let swapped = tree
                .compare_and_swap(name, old, Some(bytes))
                .map_err(|e| StoreError::sled("writing", name, e))?;
            if swapped.is_ok() {
                self.flush(name)?;
                self.publish(R::KIND, name, false);
                return Ok(next);
            }
            backoff = pause(backoff);
        }
        Err(contended::<R>(name))
    }
}

fn decode<R: Resource>(name: &str, bytes: &[u8]) -> Result<Stored<R>, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::codec(R::KIND, name, e))
}

fn encode<R: Resource>(name: &str, object: &Stored<R>) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(object).map_err(|e| StoreError::codec(R::KIND, name, e))
}

fn contended<R: Resource>(name: &str) -> StoreError {
    StoreError::Contended {
        kind: R::KIND.to_owned(),
        name: name.to_owned(),
        attempts: CAS_ATTEMPTS,
    }
}

/// Waits out one lost compare-and-swap and returns the next, doubled, backoff.
fn pause(backoff: Duration) -> Duration {
    std::thread::sleep(backoff);
    (backoff * 2).min(CAS_BACKOFF_MAX)
}
