//! How work gets into the queue: a cheap, cloneable [`QueueHandle`] that store watchers,
//! fleet events and the API call from anywhere, sync or async, without blocking.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::ObjectKey;

/// One enqueue, stamped when it was made so a slow runner doesn't stretch delays.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) key: ObjectKey,
    /// `None` when `now + delay` is too far to represent; the runner clamps it anyway.
    pub(crate) at: Option<Instant>,
    pub(crate) reason: &'static str,
}

/// Enqueues keys for the runner. Clone it freely.
#[derive(Clone, Debug)]
pub struct QueueHandle {
    // Unbounded so that enqueue never blocks or fails under load: the runner merges
    // duplicates as fast as it reads them, so the backlog is bounded by the flow of
    // triggers, not by how long reconciles take.
    tx: mpsc::UnboundedSender<Request>,
}

/// The runner's end of [`channel`]; hand it to [`run`](super::run).
#[derive(Debug)]
pub struct QueueReceiver {
    pub(crate) rx: mpsc::UnboundedReceiver<Request>,
}

/// A new queue: the handle to enqueue with, and the receiver for [`run`](super::run).
#[must_use]
pub fn channel() -> (QueueHandle, QueueReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    (QueueHandle { tx }, QueueReceiver { rx })
}

impl QueueHandle {
    /// Reconcile `key` as soon as possible. `reason` labels the run in logs.
    ///
    /// After the runner has stopped this does nothing: there is no one left to do the work.
    pub fn enqueue(&self, key: ObjectKey, reason: &'static str) {
        self.enqueue_after(key, Duration::ZERO, reason);
    }

    /// Reconcile `key` after `delay` (clamped to the queue's `max_delay`), or sooner if
    /// something else schedules it sooner.
    pub fn enqueue_after(&self, key: ObjectKey, delay: Duration, reason: &'static str) {
        let at = Instant::now().checked_add(delay);
        if let Err(mpsc::error::SendError(req)) = self.tx.send(Request { key, at, reason }) {
            tracing::debug!(key = %req.key, reason, "Queue has stopped; enqueue ignored.");
        }
    }

    /// Whether the runner has stopped, so enqueues go nowhere.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}
