//! The work queue: the contract every reconciler follows, and the queue that runs them.
//!
//! Owns deduplication, one-in-flight-per-key, bounded concurrency, per-key failure backoff,
//! requeues and the periodic resync (DESIGN.md "The work queue", STYLE.md pattern 4). It does
//! not know what a key means: reconcilers read the whole state themselves (level-triggered),
//! and why a reconcile was triggered is only a label for logs.
//!
//! - [`handle`]: [`channel`], and the [`QueueHandle`] that anything can enqueue through.
//! - [`scheduler`]: which key runs next and when; pure, time is passed in.
//! - [`runner`]: the async loop that drives the scheduler and runs reconciles ([`run`]).

use std::fmt;
use std::num::NonZeroUsize;
use std::time::Duration;

use crate::retry::Backoff;

mod handle;
mod runner;
mod scheduler;

pub use handle::{channel, QueueHandle, QueueReceiver};
pub use runner::run;

/// Names one object the queue reconciles, e.g. `pool/web`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Ord, PartialOrd)]
pub struct ObjectKey {
    /// The object's kind, e.g. `pool`, `release`.
    pub kind: String,
    /// The object's name, unique within its kind.
    pub name: String,
}

impl ObjectKey {
    /// A key for `kind/name`.
    #[must_use]
    pub fn new(kind: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// What a successful reconcile asks of the queue.
///
/// The periodic resync runs regardless, so `AwaitChange` cannot strand a key for ever.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Reconcile this key again after the delay (clamped to [`QueueConfig::max_delay`]),
    /// e.g. to poll a droplet that is still booting.
    Requeue(Duration),
    /// Nothing to do until a trigger or the resync.
    AwaitChange,
}

/// How the queue should retry a failed reconcile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryHint {
    /// Transient: retry after the key's next backoff delay.
    Backoff,
    /// Retry after this delay (e.g. a `retry-after`), clamped into the backoff's `[min, max]`.
    After(Duration),
    /// Retrying cannot help; wait for a trigger or the resync.
    NoRetry,
}

/// A failed reconcile: the error (logged once, by the queue) and how to retry.
#[derive(Debug)]
pub struct ReconcileError {
    /// What went wrong, with its context chain.
    pub error: anyhow::Error,
    /// How the queue should retry.
    pub hint: RetryHint,
}

impl ReconcileError {
    /// An error with an explicit retry hint.
    #[must_use]
    pub fn new(error: impl Into<anyhow::Error>, hint: RetryHint) -> Self {
        Self {
            error: error.into(),
            hint,
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for ReconcileError {
    /// Any error, retried with backoff: the safe default for an unclassified failure.
    fn from(error: E) -> Self {
        Self::new(error, RetryHint::Backoff)
    }
}

/// Why a reconcile runs. Only for logs and spans: reconcilers must not branch on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Something was enqueued through a [`QueueHandle`]; the label says what.
    Trigger(&'static str),
    /// A previous reconcile returned [`Action::Requeue`].
    Requeue,
    /// A previous reconcile failed, and its backoff elapsed.
    Retry,
    /// The periodic resync.
    Resync,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Trigger(label) => f.write_str(label),
            Reason::Requeue => f.write_str("requeue"),
            Reason::Retry => f.write_str("retry"),
            Reason::Resync => f.write_str("resync"),
        }
    }
}

/// What the queue tells a reconcile about its run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReconcileContext {
    /// 1 after a success, then 1 + the number of counted consecutive failures (see
    /// [`run`] for which failures count).
    pub attempt: u32,
    /// Why this run happened.
    pub reason: Reason,
}

/// Settings of the work queue, validated by construction of their types.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QueueConfig {
    /// At most this many reconciles run at once, across all keys.
    pub concurrency: NonZeroUsize,
    /// Per-key backoff after failures.
    pub backoff: Backoff,
    /// Enqueue every key from `list_keys` this often; `None` turns the resync off.
    pub resync: Option<Duration>,
    /// No key is scheduled further ahead than this, whatever a requeue or enqueue asked
    /// (kube-runtime clamps the same way after a far-future time panicked, kube-rs#1772).
    pub max_delay: Duration,
}
