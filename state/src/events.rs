//! The event log: a capped, append-only list of what happened, keyed by a rising sequence.
//!
//! Keys are big-endian u64 sequence numbers, so sled's key order is log order. Appends are
//! serialised and number from the last key, so sequence numbers have no gaps and a follower
//! that has seen seq N has seen everything before it.

use std::ops::RangeBounds;

use vmctl_protocol::event::Event;

use crate::{
    store::EVENTS_TREE,
    watch::{self, WatchStream},
    Store, StoreError,
};

impl Store {
    /// Appends an event, assigning the next sequence number (the caller's `seq` is ignored), and
    /// trims the oldest events beyond the cap. Returns the event as stored.
    pub fn append_event(&self, mut event: Event) -> Result<Event, StoreError> {
        let tree = &self.inner.events;
        // A poisoned lock only means another append panicked; the log itself is consistent.
        let _serial = self
            .inner
            .append_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let last = tree
            .last()
            .map_err(|e| StoreError::sled("reading", EVENTS_TREE, e))?;
        event.seq = match last {
            Some((key, _)) => seq_of(&key).saturating_add(1),
            None => 1,
        };
        let key = event.seq.to_be_bytes();
        let bytes = serde_json::to_vec(&event)
            .map_err(|e| StoreError::codec("event", &event.seq.to_string(), e))?;
        tree.insert(key, bytes)
            .map_err(|e| StoreError::sled("appending to", EVENTS_TREE, e))?;
        let cap = u64::try_from(self.inner.opts.event_cap.max(1)).unwrap_or(u64::MAX);
        if let Some(keep_from) = event.seq.checked_sub(cap - 1) {
            for old in tree.range(..keep_from.to_be_bytes()).keys() {
                let old = old.map_err(|e| StoreError::sled("trimming", EVENTS_TREE, e))?;
                tree.remove(old)
                    .map_err(|e| StoreError::sled("trimming", EVENTS_TREE, e))?;
            }
        }
        self.flush(EVENTS_TREE)?;
        let _ = self.inner.appended.send(());
        Ok(event)
    }

    /// The newest `limit` events, newest first.
    pub fn events(&self, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.read_events(.., true, limit)
    }

    /// Up to `limit` events with `seq > after_seq`, oldest first: what a follower has not seen.
    pub fn events_after(&self, after_seq: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        match after_seq.checked_add(1) {
            Some(from) => self.read_events(from.to_be_bytes().., false, limit),
            None => Ok(Vec::new()),
        }
    }

    /// A stream that yields once after events are appended (bursts coalesce into one item), for
    /// long-poll followers: on each item, read [`Store::events_after`] the last seq seen.
    pub fn watch_events(&self) -> WatchStream<()> {
        watch::subscribe(
            self.inner.appended.subscribe(),
            self.inner.live_watches.clone(),
            |_: &()| true,
        )
    }

    fn read_events<K: RangeBounds<[u8; 8]>>(
        &self,
        range: K,
        newest_first: bool,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let iter = self.inner.events.range(range);
        let iter: Box<dyn Iterator<Item = _>> = if newest_first {
            Box::new(iter.rev())
        } else {
            Box::new(iter)
        };
        iter.take(limit)
            .map(|entry| {
                let (key, bytes) =
                    entry.map_err(|e| StoreError::sled("reading", EVENTS_TREE, e))?;
                serde_json::from_slice(&bytes)
                    .map_err(|e| StoreError::codec("event", &seq_of(&key).to_string(), e))
            })
            .collect()
    }
}

/// The sequence number a key encodes. Keys are always written as 8 bytes; anything else reads as
/// 0 so a damaged key sorts first and is trimmed first.
fn seq_of(key: &[u8]) -> u64 {
    key.try_into().map(u64::from_be_bytes).unwrap_or(0)
}
