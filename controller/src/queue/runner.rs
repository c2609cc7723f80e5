//! The async loop of the work queue: reads enqueues, fires timers and the resync, starts due
//! keys up to the concurrency limit, and feeds outcomes back to the [`Scheduler`].
//!
//! Each reconcile is a spawned task, so a slow or panicking reconcile cannot stall the loop
//! or the other keys. Scheduling decisions live in `scheduler.rs`; this file only does I/O.

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;

use tokio::task::{self, JoinSet};
use tokio::time::{self, Instant, MissedTickBehavior};
use tracing::Instrument;

use super::handle::{QueueReceiver, Request};
use super::scheduler::{Outcome, Scheduler};
use super::{Action, ObjectKey, QueueConfig, Reason, ReconcileContext, ReconcileError, RetryHint};

/// How many enqueues are merged per pass of the loop before due keys get a chance to start,
/// so a flood of triggers cannot starve the runs.
const MAX_BURST: usize = 1024;

/// Runs the work queue until `shutdown` resolves, then stops taking new work, waits for the
/// reconciles in flight to finish, and returns.
///
/// - A key enqueued many times before it runs is reconciled once, at the earliest time asked.
/// - A key never runs twice at once; a key enqueued while it runs runs again right after.
/// - At most `config.concurrency` reconciles run at once.
/// - A failure is retried after `config.backoff.delay(attempt, jitter)`, or after the
///   [`RetryHint::After`] delay clamped into the backoff's range; [`RetryHint::NoRetry`] waits
///   for a trigger or the resync. Success resets the attempt count.
/// - A trigger may cut a backoff short. Such an early attempt's failure does not raise the
///   count: it rises only for runs that start once the backoff has elapsed (or when no backoff
///   is in progress), so the delay never grows faster than the backoff schedule
///   (kubernetes/kubernetes#132805). A resync does not cut a backoff short.
/// - [`Action::Requeue`] schedules the key again; [`Action::AwaitChange`] does not.
/// - Every `config.resync`, each key from `list_keys()` is enqueued.
/// - Each reconcile runs in a `reconcile` span with `kind`, `name`, `attempt` and `reason`.
///   A failure is logged once, here.
///
/// # Caveats
/// Shutdown waits for in-flight reconciles without a bound of its own: each reconcile must
/// bound its waits (every wait has a deadline). A caller that needs a bound can wrap this
/// future in a [`Deadline`](crate::retry::Deadline) once `shutdown` has fired. Keys still
/// pending at shutdown are dropped; the next start's resync picks them up.
pub async fn run<F, Fut>(
    rx: QueueReceiver,
    config: QueueConfig,
    list_keys: impl Fn() -> Vec<ObjectKey>,
    reconcile: F,
    shutdown: impl Future<Output = ()>,
) where
    F: Fn(ObjectKey, ReconcileContext) -> Fut,
    Fut: Future<Output = Result<Action, ReconcileError>> + Send + 'static,
{
    run_with_jitter(
        rx,
        config,
        list_keys,
        reconcile,
        shutdown,
        rand::random::<f64>,
    )
    .await;
}

/// [`run`] with the jitter source injected, so tests are deterministic.
pub(crate) async fn run_with_jitter<F, Fut>(
    mut rx: QueueReceiver,
    config: QueueConfig,
    list_keys: impl Fn() -> Vec<ObjectKey>,
    reconcile: F,
    shutdown: impl Future<Output = ()>,
    mut jitter: impl FnMut() -> f64,
) where
    F: Fn(ObjectKey, ReconcileContext) -> Fut,
    Fut: Future<Output = Result<Action, ReconcileError>> + Send + 'static,
{
    let mut scheduler = Scheduler::new(config.backoff, config.max_delay);
    let mut tasks = JoinSet::new();
    let mut in_flight: HashMap<task::Id, (ObjectKey, tracing::Span)> = HashMap::new();
    let mut resync = config.resync.filter(|p| !p.is_zero()).map(|period| {
        let mut interval = time::interval_at(Instant::now() + period, period);
        // After a stall, resync once, not once per missed period.
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        interval
    });
    let mut shutdown = pin!(shutdown);
    let mut accepting = true;
    let mut rx_open = true;

    loop {
        while accepting && tasks.len() < config.concurrency.get() {
            let Some((key, ctx)) = scheduler.pop_ready(Instant::now()) else {
                break;
            };
            let span = tracing::info_span!(
                "reconcile",
                kind = %key.kind,
                name = %key.name,
                attempt = ctx.attempt,
                reason = %ctx.reason,
            );
            let fut = span
                .in_scope(|| reconcile(key.clone(), ctx))
                .instrument(span.clone());
            let id = tasks.spawn(fut).id();
            in_flight.insert(id, (key, span));
        }
        if !accepting && tasks.is_empty() {
            return;
        }
        // Only wait for the next due key if a slot is free to run it; otherwise a finishing
        // task is what wakes us, and a past due time would spin the loop.
        let next_due = scheduler
            .next_due()
            .filter(|_| accepting && tasks.len() < config.concurrency.get());

        tokio::select! {
            biased;
            () = &mut shutdown, if accepting => {
                tracing::info!(in_flight = tasks.len(), "Work queue stopping; waiting for reconciles in flight.");
                accepting = false;
                // Later enqueues see a closed queue instead of vanishing silently.
                rx.rx.close();
            }
            Some(joined) = tasks.join_next_with_id() => {
                let (id, result) = match joined {
                    Ok((id, result)) => (id, result),
                    Err(e) => (e.id(), Err(panicked(&e))),
                };
                let Some((key, span)) = in_flight.remove(&id) else { continue };
                let now = Instant::now();
                let outcome = match &result {
                    Ok(action) => Outcome::Success(*action),
                    Err(e) => Outcome::Failure(e.hint),
                };
                let retry_in = scheduler.finish(&key, outcome, jitter(), now);
                if let Err(e) = result {
                    span.in_scope(|| log_failure(&e, retry_in));
                }
            }
            msg = rx.rx.recv(), if accepting && rx_open => match msg {
                Some(first) => {
                    // Take the whole burst before starting anything, so duplicates in it
                    // merge instead of making the key run, then run again as dirty.
                    let now = Instant::now();
                    let mut req = Some(first);
                    let mut taken = 0;
                    while let Some(Request { key, at, reason }) = req {
                        scheduler.schedule(key, at, Reason::Trigger(reason), now);
                        taken += 1;
                        req = if taken < MAX_BURST { rx.rx.try_recv().ok() } else { None };
                    }
                }
                // Every handle is gone; retries, requeues and the resync still run.
                None => rx_open = false,
            },
            () = time::sleep_until(next_due.unwrap_or_else(Instant::now)), if next_due.is_some() => {}
            _ = tick(&mut resync), if accepting && resync.is_some() => {
                let now = Instant::now();
                let keys = list_keys();
                tracing::debug!(keys = keys.len(), "Resync enqueues every key.");
                for key in keys {
                    scheduler.schedule(key, Some(now), Reason::Resync, now);
                }
            }
        }
    }
}

async fn tick(interval: &mut Option<time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

fn panicked(e: &task::JoinError) -> ReconcileError {
    ReconcileError::new(
        anyhow::anyhow!("reconcile task ended abnormally: {e}"),
        RetryHint::Backoff,
    )
}

fn log_failure(e: &ReconcileError, retry_in: Option<std::time::Duration>) {
    let error = format!("{:#}", e.error);
    match retry_in {
        Some(delay) => tracing::warn!(
            error,
            retry_in = %humantime::format_duration(delay),
            "Reconcile failed; will retry."
        ),
        None => tracing::warn!(
            error,
            "Reconcile failed; waiting for a change or the resync."
        ),
    }
}

#[cfg(test)]
mod tests;
