//! Tests of the runner loop on paused tokio time: each test drives a real `run` with a
//! scripted reconcile and reads back what ran when. Waits are bounded by a [`Deadline`] on
//! virtual time, so a bug shows as a labelled timeout, never a hang.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{self, Instant};

use super::{run, run_with_jitter};
use crate::queue::{
    channel, Action, ObjectKey, QueueConfig, QueueHandle, Reason, ReconcileContext, ReconcileError,
    RetryHint,
};
use crate::retry::{Backoff, Deadline};

const SEC: Duration = Duration::from_secs(1);

/// What the scripted reconcile does: how long it works, and what it returns.
type Script = dyn Fn(&ObjectKey, &ReconcileContext) -> (Duration, Result<Action, ReconcileError>)
    + Send
    + Sync;

#[derive(Clone, Debug, PartialEq)]
struct Run {
    key: ObjectKey,
    ctx: ReconcileContext,
    /// Seconds after the harness started, on virtual time.
    start: Duration,
    end: Duration,
}

struct Harness {
    handle: QueueHandle,
    runs: mpsc::UnboundedReceiver<Run>,
    shutdown: Option<oneshot::Sender<()>>,
    runner: JoinHandle<()>,
    /// Keys the resync lists.
    listed: Arc<Mutex<Vec<ObjectKey>>>,
}

fn config(concurrency: usize) -> QueueConfig {
    QueueConfig {
        concurrency: NonZeroUsize::new(concurrency).unwrap(),
        backoff: Backoff::try_new(SEC, 8 * SEC, 0.0).unwrap(),
        resync: None,
        max_delay: 600 * SEC,
    }
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::new("pool", name)
}

fn ok_after(work: Duration, action: Action) -> Arc<Script> {
    Arc::new(move |_, _| (work, Ok(action)))
}

impl Harness {
    fn start(config: QueueConfig, script: Arc<Script>) -> Self {
        let t0 = Instant::now();
        let (handle, rx) = channel();
        let (runs_tx, runs) = mpsc::unbounded_channel();
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let listed = Arc::new(Mutex::new(Vec::new()));
        let list = listed.clone();
        let reconcile = move |key: ObjectKey, ctx: ReconcileContext| {
            let (work, result) = script(&key, &ctx);
            let runs_tx = runs_tx.clone();
            async move {
                let start = t0.elapsed();
                time::sleep(work).await;
                let _ = runs_tx.send(Run {
                    key,
                    ctx,
                    start,
                    end: t0.elapsed(),
                });
                result
            }
        };
        let runner = tokio::spawn(run_with_jitter(
            rx,
            config,
            move || list.lock().unwrap().clone(),
            reconcile,
            async move {
                let _ = shutdown_rx.await;
            },
            || 0.0,
        ));
        Self {
            handle,
            runs,
            shutdown: Some(shutdown_tx),
            runner,
            listed,
        }
    }

    /// The next finished run; fails the test if none finishes within `within`.
    async fn next_run(&mut self, within: Duration) -> Run {
        Deadline::after("the next reconcile to finish", within)
            .run(self.runs.recv())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .expect("runner alive")
    }

    async fn next_runs(&mut self, n: usize) -> Vec<Run> {
        let mut runs = Vec::new();
        for _ in 0..n {
            runs.push(self.next_run(3_600 * SEC).await);
        }
        runs
    }

    /// Asserts that no run finishes within `quiet`.
    async fn assert_no_run_within(&mut self, quiet: Duration) {
        if let Ok(run) = Deadline::after("silence", quiet)
            .run(self.runs.recv())
            .await
        {
            panic!("expected no more runs, got {run:?}");
        }
    }

    /// Fires shutdown and waits (bounded) for `run` to return.
    async fn shut_down(mut self, within: Duration) -> Vec<Run> {
        let _ = self.shutdown.take().unwrap().send(());
        Deadline::after("the runner to return after shutdown", within)
            .run(&mut self.runner)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .expect("runner did not panic");
        let mut rest = Vec::new();
        while let Ok(run) = self.runs.try_recv() {
            rest.push(run);
        }
        rest
    }
}

/// The largest number of runs overlapping in time, counting only those `filter` keeps.
fn max_overlap(runs: &[Run], filter: impl Fn(&Run) -> bool) -> usize {
    let mut edges: Vec<(Duration, i32)> = Vec::new();
    for r in runs.iter().filter(|r| filter(r)) {
        edges.push((r.start, 1));
        edges.push((r.end, -1));
    }
    // Ends sort before starts at the same instant: back-to-back runs do not overlap.
    edges.sort();
    let (mut now, mut max) = (0i32, 0i32);
    for (_, delta) in edges {
        now += delta;
        max = max.max(now);
    }
    usize::try_from(max).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_key_enqueued_many_times_before_it_runs_is_reconciled_once() {
    let mut h = Harness::start(config(4), ok_after(SEC, Action::AwaitChange));
    for _ in 0..5 {
        h.handle.enqueue(key("a"), "test");
    }
    let run = h.next_run(10 * SEC).await;
    assert_eq!((run.key, run.start), (key("a"), Duration::ZERO));
    h.assert_no_run_within(100 * SEC).await;
}

#[tokio::test(start_paused = true)]
async fn the_earliest_scheduled_time_wins() {
    let mut h = Harness::start(config(4), ok_after(Duration::ZERO, Action::AwaitChange));
    for delay in [10, 3, 7] {
        h.handle.enqueue_after(key("a"), delay * SEC, "test");
    }
    let run = h.next_run(60 * SEC).await;
    assert_eq!(run.start, 3 * SEC);
    h.assert_no_run_within(100 * SEC).await;
}

#[tokio::test(start_paused = true)]
async fn runner_never_runs_one_key_twice_at_once_and_reruns_it_if_triggered_meanwhile() {
    let mut h = Harness::start(config(4), ok_after(5 * SEC, Action::AwaitChange));
    h.handle.enqueue(key("a"), "first");
    time::sleep(SEC).await;
    h.handle.enqueue(key("a"), "second");
    h.handle.enqueue(key("a"), "second");
    let runs = h.next_runs(2).await;
    assert_eq!(max_overlap(&runs, |_| true), 1);
    assert_eq!(runs[0].ctx.reason, Reason::Trigger("first"));
    assert_eq!(runs[1].ctx.reason, Reason::Trigger("second"));
    assert_eq!((runs[1].start, runs[1].end), (5 * SEC, 10 * SEC));
    h.assert_no_run_within(100 * SEC).await;
}

#[tokio::test(start_paused = true)]
async fn runner_with_concurrency_two_never_runs_three_at_once() {
    let mut h = Harness::start(config(2), ok_after(SEC, Action::AwaitChange));
    for i in 0..7 {
        h.handle.enqueue(key(&format!("k{i}")), "test");
    }
    let runs = h.next_runs(7).await;
    assert_eq!(max_overlap(&runs, |_| true), 2);
    assert_eq!(
        runs.iter().map(|r| r.end).max(),
        Some(4 * SEC),
        "slots are reused"
    );
}

#[tokio::test(start_paused = true)]
async fn failures_back_off_exponentially_to_the_cap_and_success_resets_the_count() {
    // Runs 1-7 fail, run 8 succeeds asking for a requeue, run 9 fails again.
    let calls = Arc::new(AtomicU32::new(0));
    let script: Arc<Script> = Arc::new(move |_, _| {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        let result = match n {
            8 => Ok(Action::Requeue(2 * SEC)),
            _ => Err(anyhow::anyhow!("run {n} failed").into()),
        };
        (Duration::ZERO, result)
    });
    let mut h = Harness::start(config(1), script);
    h.handle.enqueue(key("a"), "test");
    let runs = h.next_runs(10).await;
    let starts: Vec<u64> = runs.iter().map(|r| r.start.as_secs()).collect();
    let attempts: Vec<u32> = runs.iter().map(|r| r.ctx.attempt).collect();
    // Delays 1, 2, 4, 8, 8, 8 (cap), then success at 31, requeue at 33, retry 1s later.
    assert_eq!(starts, [0, 1, 3, 7, 15, 23, 31, 39, 41, 42]);
    assert_eq!(attempts, [1, 2, 3, 4, 5, 6, 7, 8, 1, 2]);
    assert_eq!(runs[8].ctx.reason, Reason::Requeue);
    assert_eq!(runs[9].ctx.reason, Reason::Retry);
}

#[tokio::test(start_paused = true)]
async fn the_public_run_jitters_the_retry_delay_within_bounds() {
    let (handle, rx) = channel();
    let (tx, mut starts) = mpsc::unbounded_channel();
    let mut cfg = config(1);
    cfg.backoff = Backoff::try_new(10 * SEC, 60 * SEC, 0.5).unwrap();
    let t0 = Instant::now();
    let runner = tokio::spawn(run(
        rx,
        cfg,
        Vec::new,
        move |_key, _ctx| {
            let _ = tx.send(t0.elapsed());
            async { Err::<Action, _>(anyhow::anyhow!("always fails").into()) }
        },
        std::future::pending(),
    ));
    handle.enqueue(key("a"), "test");
    let deadline = Deadline::after("two attempts", 3_600 * SEC);
    let first = deadline.run(starts.recv()).await.unwrap().unwrap();
    let second = deadline.run(starts.recv()).await.unwrap().unwrap();
    let delay = second - first;
    assert!(delay > 5 * SEC && delay <= 10 * SEC, "delay {delay:?}");
    runner.abort();
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_hint_is_clamped_and_no_retry_waits_for_a_trigger() {
    let calls = Arc::new(AtomicU32::new(0));
    let script: Arc<Script> = Arc::new(move |_, _| {
        let hint = match calls.fetch_add(1, Ordering::SeqCst) {
            0 => RetryHint::After(3_600 * SEC),
            _ => RetryHint::NoRetry,
        };
        let error = ReconcileError::new(anyhow::anyhow!("rate limited"), hint);
        (Duration::ZERO, Err(error))
    });
    let mut h = Harness::start(config(1), script);
    h.handle.enqueue(key("a"), "test");
    let runs = h.next_runs(2).await;
    assert_eq!(runs[1].start, 8 * SEC, "clamped to the backoff max");
    h.assert_no_run_within(600 * SEC).await;
    h.handle.enqueue(key("a"), "changed");
    let run = h.next_run(SEC).await;
    assert_eq!(
        (run.ctx.attempt, run.ctx.reason),
        (3, Reason::Trigger("changed"))
    );
}

/// Regression for kubernetes/kubernetes#132805.
#[tokio::test(start_paused = true)]
async fn triggers_that_cut_a_backoff_short_do_not_make_it_run_away() {
    let always_fail: Arc<Script> =
        Arc::new(|_, _| (Duration::ZERO, Err(anyhow::anyhow!("broken").into())));
    let mut cfg = config(1);
    cfg.backoff = Backoff::try_new(10 * SEC, 600 * SEC, 0.0).unwrap();
    let mut h = Harness::start(cfg, always_fail);
    // A trigger every second for 75s.
    for _ in 0..75 {
        h.handle.enqueue(key("a"), "noise");
        time::sleep(SEC).await;
    }
    let mut runs = Vec::new();
    while let Ok(run) = h.runs.try_recv() {
        runs.push(run);
    }
    assert_eq!(runs.len(), 75, "every trigger runs");
    // Pure schedule: failures at 0, 10, 30 and 70s, so attempt 5 at most.
    let max_attempt = runs.iter().map(|r| r.ctx.attempt).max().unwrap();
    assert_eq!(max_attempt, 5);
    // Once the noise stops, the next retry follows the schedule: 70s + 80s.
    let next = h.next_run(3_600 * SEC).await;
    assert_eq!((next.start, next.ctx.reason), (150 * SEC, Reason::Retry));
}

#[tokio::test(start_paused = true)]
async fn requeue_is_clamped_to_max_delay_and_await_change_schedules_nothing() {
    let calls = Arc::new(AtomicU32::new(0));
    let script: Arc<Script> = Arc::new(move |_, _| {
        let action = match calls.fetch_add(1, Ordering::SeqCst) {
            0 => Action::Requeue(86_400 * SEC),
            _ => Action::AwaitChange,
        };
        (Duration::ZERO, Ok(action))
    });
    let mut h = Harness::start(config(1), script);
    h.handle.enqueue(key("a"), "test");
    let runs = h.next_runs(2).await;
    assert_eq!(runs[1].start, 600 * SEC);
    assert_eq!(runs[1].ctx.reason, Reason::Requeue);
    h.assert_no_run_within(3_000 * SEC).await;
}

#[tokio::test(start_paused = true)]
async fn resync_enqueues_every_listed_key_each_period() {
    let mut cfg = config(4);
    cfg.resync = Some(60 * SEC);
    let mut h = Harness::start(cfg, ok_after(Duration::ZERO, Action::AwaitChange));
    *h.listed.lock().unwrap() = vec![key("a"), key("b"), key("c")];
    let runs = h.next_runs(6).await;
    let mut by_time: HashMap<u64, Vec<String>> = HashMap::new();
    for r in &runs {
        assert_eq!(r.ctx.reason, Reason::Resync);
        by_time
            .entry(r.start.as_secs())
            .or_default()
            .push(r.key.name.clone());
    }
    for names in by_time.values_mut() {
        names.sort();
    }
    assert_eq!(by_time.len(), 2);
    assert_eq!(by_time[&60], ["a", "b", "c"]);
    assert_eq!(by_time[&120], ["a", "b", "c"]);
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_in_flight_reconciles_finish_and_starts_nothing_new() {
    let h = Harness::start(config(1), ok_after(5 * SEC, Action::Requeue(SEC)));
    h.handle.enqueue(key("a"), "test");
    h.handle.enqueue(key("b"), "test"); // Waits for the single slot.
    time::sleep(SEC).await;
    let handle = h.handle.clone();
    let t0 = Instant::now();
    let rest = h.shut_down(60 * SEC).await;
    assert_eq!(
        t0.elapsed(),
        4 * SEC,
        "returned when the in-flight run finished"
    );
    assert_eq!(rest.len(), 1, "only the in-flight run finished: {rest:?}");
    assert_eq!(rest[0].key, key("a"));
    assert!(handle.is_closed(), "enqueues after shutdown go nowhere");
    handle.enqueue(key("c"), "too late");
}

#[tokio::test(start_paused = true)]
async fn an_idle_queue_shuts_down_at_once() {
    let h = Harness::start(config(1), ok_after(SEC, Action::AwaitChange));
    time::sleep(SEC).await;
    let t0 = Instant::now();
    let rest = h.shut_down(SEC).await;
    assert!(rest.is_empty());
    assert_eq!(t0.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_reconcile_is_retried_with_backoff() {
    let calls = Arc::new(AtomicU32::new(0));
    let (tx, mut done) = mpsc::unbounded_channel();
    let (handle, rx) = channel();
    let t0 = Instant::now();
    let counter = calls.clone();
    tokio::spawn(run_with_jitter(
        rx,
        config(1),
        Vec::new,
        move |_key, ctx: ReconcileContext| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let tx = tx.clone();
            async move {
                assert!(n > 0, "first run panics on purpose");
                let _ = tx.send((ctx.attempt, t0.elapsed()));
                Ok(Action::AwaitChange)
            }
        },
        std::future::pending(),
        || 0.0,
    ));
    handle.enqueue(key("a"), "test");
    let (attempt, at) = Deadline::after("the retry after a panic", 60 * SEC)
        .run(done.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((attempt, at), (2, SEC));
}

/// Spans and events seen on one test's thread, with their fields, as text.
#[derive(Clone, Default)]
struct Recorder {
    spans: Arc<Mutex<Vec<String>>>,
    events: Arc<Mutex<Vec<String>>>,
}

thread_local! {
    /// Where [`ThreadSink`] records on this thread, if anywhere.
    static SINK: std::cell::RefCell<Option<Recorder>> = const { std::cell::RefCell::new(None) };
}

/// A layer that records into the current thread's [`SINK`].
///
/// Why global and not `set_default`: tracing caches each callsite's interest. When tests run
/// in parallel, another thread can register the `reconcile` callsite while no subscriber
/// wants it, caching "never" and hiding it from a scoped subscriber (a race, so the test
/// would be flaky). A global subscriber that wants everything avoids that; the thread-local
/// sink keeps each test's records apart (a current-thread runtime runs its tasks here).
struct ThreadSink;

/// Starts recording this thread's spans and events.
fn record_this_thread() -> (Recorder, Option<tracing::subscriber::DefaultGuard>) {
    use tracing_subscriber::layer::SubscriberExt;
    static GLOBAL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let global = *GLOBAL.get_or_init(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(ThreadSink))
            .is_ok()
    });
    // Someone else owns the global subscriber: fall back to a scoped one and refresh the
    // interest cache, which is right unless the race above strikes.
    let guard = (!global).then(|| {
        let guard =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(ThreadSink));
        tracing::callsite::rebuild_interest_cache();
        guard
    });
    let recorder = Recorder::default();
    SINK.with(|sink| *sink.borrow_mut() = Some(recorder.clone()));
    (recorder, guard)
}

fn with_sink(f: impl FnOnce(&Recorder)) {
    SINK.with(|sink| {
        if let Some(recorder) = sink.borrow().as_ref() {
            f(recorder);
        }
    });
}

struct FieldText(String);

impl tracing::field::Visit for FieldText {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={value:?}", field.name()));
    }
}

impl<S> tracing_subscriber::Layer<S> for ThreadSink
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _id: &tracing::span::Id,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        with_sink(|recorder| {
            let mut text = FieldText(attrs.metadata().name().to_owned());
            attrs.record(&mut text);
            recorder.spans.lock().unwrap().push(text.0);
        });
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        with_sink(|recorder| {
            let parent = ctx.event_span(event).map_or("none", |s| s.name());
            let mut text = FieldText(format!("{} in {parent}:", event.metadata().level()));
            event.record(&mut text);
            recorder.events.lock().unwrap().push(text.0);
        });
    }
}

#[tokio::test(start_paused = true)]
async fn each_reconcile_runs_in_a_span_keyed_by_the_object_and_failures_are_logged_in_it() {
    let (recorder, _guard) = record_this_thread();
    let calls = Arc::new(AtomicU32::new(0));
    let script: Arc<Script> = Arc::new(move |_, _| {
        let result = match calls.fetch_add(1, Ordering::SeqCst) {
            0 => Err(anyhow::anyhow!("droplet unreachable").into()),
            _ => Ok(Action::AwaitChange),
        };
        (Duration::ZERO, result)
    });
    let mut h = Harness::start(config(1), script);
    h.handle
        .enqueue(ObjectKey::new("release", "v4.3"), "store change");
    let _ = h.next_runs(2).await;
    let spans = recorder.spans.lock().unwrap().clone();
    assert_eq!(
        spans,
        [
            r#"reconcile kind=release name=v4.3 attempt=1 reason=store change"#,
            r#"reconcile kind=release name=v4.3 attempt=2 reason=retry"#,
        ]
    );
    let events = recorder.events.lock().unwrap().clone();
    let failure = events
        .iter()
        .find(|e| e.contains("Reconcile failed"))
        .expect("the failure is logged");
    assert!(failure.starts_with("WARN in reconcile:"), "{failure}");
    assert!(failure.contains("droplet unreachable"), "{failure}");
    assert!(failure.contains("retry_in=1s"), "{failure}");
}
