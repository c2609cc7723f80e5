//! Watch streams over the store's in-process change broadcast.
//!
//! Every committed write publishes a [`WatchEvent`] after it is durable. sled's own
//! `watch_prefix` subscribers were used before; under concurrent writers they lost events
//! (`tests/watch_burst.rs` reproduces it), and a controller trigger that misses a creation
//! leaves the object unreconciled until the next resync.
//!
//! A watcher that falls more than [`CHANNEL_CAPACITY`] changes behind gets a `lagged` warning
//! and continues; the periodic resync covers what it skipped, as with any level-triggered
//! controller.

use std::{
    pin::Pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    task::{Context, Poll},
};

use futures::{stream::BoxStream, Stream, StreamExt};
use tokio::sync::broadcast;

/// Changes buffered per watcher before it counts as lagging.
pub(crate) const CHANNEL_CAPACITY: usize = 16_384;

/// One change to an object of a watched kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    /// Kind of the object (`Resource::KIND`).
    pub kind: &'static str,
    /// Name of the object.
    pub name: String,
    /// True when the object was deleted, false when it was created or written.
    pub deleted: bool,
}

/// An async stream of store changes.
pub struct WatchStream<T> {
    inner: BoxStream<'static, T>,
    _live: LiveGuard,
}

impl<T> std::fmt::Debug for WatchStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WatchStream")
    }
}

impl<T> Stream for WatchStream<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.inner.poll_next_unpin(cx)
    }
}

/// A stream of the broadcast's items that pass `keep`. `live` counts open streams.
pub(crate) fn subscribe<T, F>(
    rx: broadcast::Receiver<T>,
    live: Arc<AtomicUsize>,
    keep: F,
) -> WatchStream<T>
where
    T: Clone + Send + 'static,
    F: Fn(&T) -> bool + Send + 'static,
{
    live.fetch_add(1, Ordering::SeqCst);
    let inner = futures::stream::unfold((rx, keep), |(mut rx, keep)| async move {
        loop {
            match rx.recv().await {
                Ok(item) if keep(&item) => return Some((item, (rx, keep))),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(
                        skipped = n,
                        "A store watcher fell behind; the resync covers what it skipped."
                    );
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .boxed();
    WatchStream {
        inner,
        _live: LiveGuard(live),
    }
}

/// Decrements the open-stream count when a stream is dropped.
struct LiveGuard(Arc<AtomicUsize>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
