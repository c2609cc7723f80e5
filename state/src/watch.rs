//! Turning sled subscribers into async streams.
//!
//! A sled `Subscriber` is a blocking iterator and a future, but its future can miss a wakeup
//! (it registers the waker after checking its channel) and a subscriber nobody drains blocks
//! writers once 1024 events queue up. So each watch gets a small thread that drains the
//! subscriber with a bounded blocking wait and forwards into a tokio channel. The thread stops
//! when the stream is dropped (noticed within [`DRAIN_TICK`]) or the database closes.

use std::{
    pin::Pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
        mpsc::RecvTimeoutError,
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};

use futures::Stream;
use tokio::sync::mpsc;

/// How long the forwarding thread blocks before checking that its stream still exists.
const DRAIN_TICK: Duration = Duration::from_millis(250);

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

/// An async stream of store changes. Dropping it stops its forwarding thread.
#[derive(Debug)]
pub struct WatchStream<T> {
    rx: Receiver<T>,
}

#[derive(Debug)]
enum Receiver<T> {
    Every(mpsc::UnboundedReceiver<T>),
    Coalesced(mpsc::Receiver<T>),
}

impl<T> Stream for WatchStream<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        match &mut self.get_mut().rx {
            Receiver::Every(rx) => rx.poll_recv(cx),
            Receiver::Coalesced(rx) => rx.poll_recv(cx),
        }
    }
}

enum Sender<T> {
    Every(mpsc::UnboundedSender<T>),
    Coalesced(mpsc::Sender<T>),
}

impl<T> Sender<T> {
    /// Delivers one item; false once the stream is gone.
    fn send(&self, item: T) -> bool {
        match self {
            Sender::Every(tx) => tx.send(item).is_ok(),
            Sender::Coalesced(tx) => match tx.try_send(item) {
                // A wakeup is already pending; the reader will look at the log anyway.
                Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => true,
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            },
        }
    }

    fn is_closed(&self) -> bool {
        match self {
            Sender::Every(tx) => tx.is_closed(),
            Sender::Coalesced(tx) => tx.is_closed(),
        }
    }
}

/// Whether a stream delivers every change or coalesces bursts into one wakeup.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Delivery {
    Every,
    Coalesced,
}

/// Starts forwarding `subscriber` into a stream, mapping each sled event with `map` (events it
/// maps to `None` are skipped). `live` counts running forwarders.
pub(crate) fn forward<T, F>(
    label: &str,
    mut subscriber: sled::Subscriber,
    delivery: Delivery,
    live: Arc<AtomicUsize>,
    map: F,
) -> WatchStream<T>
where
    T: Send + 'static,
    F: Fn(sled::Event) -> Option<T> + Send + 'static,
{
    let (tx, rx) = match delivery {
        Delivery::Every => {
            let (tx, rx) = mpsc::unbounded_channel();
            (Sender::Every(tx), Receiver::Every(rx))
        }
        Delivery::Coalesced => {
            let (tx, rx) = mpsc::channel(1);
            (Sender::Coalesced(tx), Receiver::Coalesced(rx))
        }
    };
    live.fetch_add(1, Ordering::SeqCst);
    let guard = LiveGuard(live);
    let spawned = std::thread::Builder::new()
        .name(format!("vmctl-watch-{label}"))
        .spawn(move || {
            let _guard = guard;
            loop {
                match subscriber.next_timeout(DRAIN_TICK) {
                    Ok(event) => {
                        if let Some(item) = map(event) {
                            if !tx.send(item) {
                                return;
                            }
                        }
                    }
                    Err(RecvTimeoutError::Timeout) if tx.is_closed() => return,
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
        });
    if let Err(error) = spawned {
        // The stream then ends at once; callers treat an ended watch like a lost one and
        // resync, which is what a level-triggered controller does anyway.
        tracing::error!(%error, watch = label, "Cannot start a store watch thread.");
    }
    WatchStream { rx }
}

/// A stream that has already ended: what a watch that could not start returns.
pub(crate) fn ended<T>() -> WatchStream<T> {
    let (_, rx) = mpsc::unbounded_channel();
    WatchStream {
        rx: Receiver::Every(rx),
    }
}

/// Decrements the live-forwarder count when the forwarding thread ends (or never starts).
struct LiveGuard(Arc<AtomicUsize>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
