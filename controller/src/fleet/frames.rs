//! Line framing and request multiplexing on one agent channel, with no I/O.
//!
//! [`LineSplitter`] turns the channel's byte stream into newline-delimited frames, bounded by
//! [`MAX_FRAME_BYTES`]. [`Mux`] remembers which caller waits for which frame id, routes each
//! reply to it, and answers callers whose deadline passed with a timeout. The session thread
//! owns both and feeds them; tests feed them directly.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use vmctl_protocol::agent::{Op, Outcome, Request, Response, MAX_FRAME_BYTES, PROTOCOL_VERSION};

use super::error::FleetError;

/// What a caller gets back: the op's JSON payload or why there is none.
pub type Reply = Result<serde_json::Value, FleetError>;

/// One request frame, newline included.
#[must_use]
pub fn encode_request(id: u64, op: &Op) -> Vec<u8> {
    let req = Request {
        id,
        v: Some(PROTOCOL_VERSION),
        op: op.clone(),
    };
    // A Request is plain data (an integer and a unit enum): serialization cannot fail.
    let mut line = serde_json::to_vec(&req).unwrap_or_default();
    line.push(b'\n');
    line
}

// === impl LineSplitter ===

/// One line out of the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete frame, newline stripped.
    Frame(Vec<u8>),
    /// A frame longer than [`MAX_FRAME_BYTES`]; its bytes were dropped up to its newline.
    TooLarge,
}

/// Splits a byte stream into lines without ever buffering more than one maximal frame.
#[derive(Debug, Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
    /// Inside an oversized frame: drop bytes until the next newline.
    discarding: bool,
}

impl LineSplitter {
    /// Feeds bytes in; returns the lines they completed.
    pub fn feed(&mut self, mut data: &[u8]) -> Vec<Line> {
        let mut lines = Vec::new();
        while !data.is_empty() {
            match data.iter().position(|&b| b == b'\n') {
                Some(nl) => {
                    let (head, rest) = (&data[..nl], &data[nl + 1..]);
                    if self.discarding || self.buf.len() + head.len() > MAX_FRAME_BYTES {
                        lines.push(Line::TooLarge);
                        self.buf.clear();
                    } else {
                        self.buf.extend_from_slice(head);
                        lines.push(Line::Frame(std::mem::take(&mut self.buf)));
                    }
                    self.discarding = false;
                    data = rest;
                }
                None => {
                    if !self.discarding {
                        if self.buf.len() + data.len() > MAX_FRAME_BYTES {
                            self.discarding = true;
                            self.buf = Vec::new();
                        } else {
                            self.buf.extend_from_slice(data);
                        }
                    }
                    data = &[];
                }
            }
        }
        lines
    }
}

/// Parses a reply frame.
///
/// # Errors
/// A sentence saying what is wrong with it.
pub fn parse_response(frame: &[u8]) -> Result<Response, String> {
    serde_json::from_slice(frame).map_err(|e| format!("unparseable reply frame: {e}"))
}

/// Turns a reply's outcome into what the caller gets.
pub fn outcome_reply(node: &str, outcome: Outcome) -> Reply {
    match outcome {
        Outcome::Ok(v) => Ok(v),
        Outcome::Err(error) => Err(FleetError::Agent {
            node: node.to_owned(),
            error,
        }),
    }
}

// === impl Mux ===

/// A caller waiting for one frame id.
#[derive(Debug)]
pub struct Waiter {
    /// The op's name, for the timeout error.
    pub op: &'static str,
    /// When to give up.
    pub deadline: Instant,
    /// The budget `deadline` was made from, for the timeout error.
    pub budget: Duration,
    /// Where the reply goes.
    pub reply: oneshot::Sender<Reply>,
}

/// What became of one reply frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Routed {
    /// Delivered to its caller (who may have given up meanwhile).
    Delivered(u64),
    /// No caller waits for this id any more (it timed out, or the agent is confused).
    Unmatched(u64),
    /// The agent could not read one of our frames and said so with `id: null`.
    Unaddressed(String),
    /// The frame was not a reply at all.
    Bad(String),
}

/// In-flight calls of one session, by frame id.
#[derive(Debug, Default)]
pub struct Mux {
    waiting: HashMap<u64, Waiter>,
}

impl Mux {
    /// Registers a caller for `id`.
    pub fn insert(&mut self, id: u64, waiter: Waiter) {
        self.waiting.insert(id, waiter);
    }

    /// Whether no call is in flight.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Routes one reply frame to its caller.
    pub fn route(&mut self, node: &str, frame: &[u8]) -> Routed {
        let resp = match parse_response(frame) {
            Ok(r) => r,
            Err(reason) => return Routed::Bad(reason),
        };
        let Some(id) = resp.id else {
            let why = match resp.result {
                Outcome::Err(e) => e.to_string(),
                Outcome::Ok(_) => "ok reply without id".to_owned(),
            };
            return Routed::Unaddressed(why);
        };
        match self.waiting.remove(&id) {
            Some(w) => {
                // The caller may have timed out and dropped its receiver: nothing to do then.
                let _ = w.reply.send(outcome_reply(node, resp.result));
                Routed::Delivered(id)
            }
            None => Routed::Unmatched(id),
        }
    }

    /// Answers every caller whose deadline is at or before `now` with a timeout, and forgets
    /// them. Returns how many timed out.
    pub fn expire(&mut self, node: &str, now: Instant) -> usize {
        let expired: Vec<u64> = self
            .waiting
            .iter()
            .filter(|(_, w)| w.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in &expired {
            if let Some(w) = self.waiting.remove(id) {
                let _ = w.reply.send(Err(FleetError::Timeout {
                    node: node.to_owned(),
                    op: w.op.to_owned(),
                    after: w.budget,
                }));
            }
        }
        expired.len()
    }

    /// The earliest deadline among in-flight calls.
    #[must_use]
    pub fn next_deadline(&self) -> Option<Instant> {
        self.waiting.values().map(|w| w.deadline).min()
    }

    /// Fails every in-flight call with `error` (the session is gone).
    pub fn fail_all(&mut self, error: &FleetError) {
        for (_, w) in self.waiting.drain() {
            let _ = w.reply.send(Err(error.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmctl_protocol::agent::{AgentError, ErrorCode};

    fn waiter(op: &'static str, deadline: Instant) -> (Waiter, oneshot::Receiver<Reply>) {
        let (tx, rx) = oneshot::channel();
        (
            Waiter {
                op,
                deadline,
                budget: Duration::from_millis(50),
                reply: tx,
            },
            rx,
        )
    }

    #[test]
    fn request_frames_carry_our_protocol_version_and_a_newline() {
        assert_eq!(
            encode_request(7, &Op::Facts),
            b"{\"id\":7,\"v\":1,\"op\":\"facts\"}\n"
        );
    }

    #[test]
    fn splitter_reassembles_frames_cut_anywhere() {
        let mut s = LineSplitter::default();
        assert!(s.feed(b"{\"id\":1").is_empty());
        let lines = s.feed(b"}\n{\"id\":2}\n{\"i");
        assert_eq!(
            lines,
            vec![
                Line::Frame(b"{\"id\":1}".to_vec()),
                Line::Frame(b"{\"id\":2}".to_vec())
            ]
        );
        assert_eq!(
            s.feed(b"d\":3}\n"),
            vec![Line::Frame(b"{\"id\":3}".to_vec())]
        );
    }

    #[test]
    fn an_oversized_frame_is_dropped_and_the_next_one_survives() {
        let mut s = LineSplitter::default();
        let big = vec![b'x'; MAX_FRAME_BYTES + 1];
        assert!(s.feed(&big).is_empty());
        assert!(s.feed(b"more").is_empty());
        assert_eq!(
            s.feed(b"\nok\n"),
            vec![Line::TooLarge, Line::Frame(b"ok".to_vec())]
        );
    }

    #[test]
    fn replies_reach_their_callers_in_any_order() {
        let far = Instant::now() + Duration::from_secs(60);
        let mut mux = Mux::default();
        let (w1, mut r1) = waiter("facts", far);
        let (w2, mut r2) = waiter("ping", far);
        mux.insert(1, w1);
        mux.insert(2, w2);
        assert_eq!(mux.route("n", br#"{"id":2,"ok":{}}"#), Routed::Delivered(2));
        assert_eq!(
            mux.route(
                "n",
                br#"{"id":1,"err":{"code":"op_failed","message":"disk"}}"#
            ),
            Routed::Delivered(1)
        );
        assert_eq!(r2.try_recv().unwrap().unwrap(), serde_json::json!({}));
        let err = r1.try_recv().unwrap().unwrap_err();
        assert_eq!(
            err,
            FleetError::Agent {
                node: "n".into(),
                error: AgentError {
                    code: ErrorCode::OpFailed,
                    message: "disk".into()
                }
            }
        );
        assert!(mux.is_empty());
    }

    #[test]
    fn a_wedged_agent_times_out_the_call_and_a_late_reply_is_unmatched() {
        let now = Instant::now();
        let mut mux = Mux::default();
        let (w, mut rx) = waiter("facts", now + Duration::from_millis(50));
        mux.insert(9, w);
        assert_eq!(mux.expire("n", now), 0);
        assert_eq!(mux.next_deadline(), Some(now + Duration::from_millis(50)));
        assert_eq!(mux.expire("n", now + Duration::from_millis(50)), 1);
        assert_eq!(rx.try_recv().unwrap().unwrap_err().kind(), "timeout");
        assert_eq!(mux.route("n", br#"{"id":9,"ok":{}}"#), Routed::Unmatched(9));
    }

    #[test]
    fn broken_and_unaddressed_frames_are_reported_not_routed() {
        let mut mux = Mux::default();
        assert!(matches!(mux.route("n", b"not json"), Routed::Bad(_)));
        assert!(matches!(
            mux.route(
                "n",
                br#"{"id":null,"err":{"code":"bad_frame","message":"x"}}"#
            ),
            Routed::Unaddressed(_)
        ));
    }

    #[test]
    fn a_closed_session_fails_every_caller() {
        let far = Instant::now() + Duration::from_secs(60);
        let mut mux = Mux::default();
        let (w, mut rx) = waiter("facts", far);
        mux.insert(1, w);
        mux.fail_all(&FleetError::SessionClosed {
            node: "n".into(),
            reason: "eof".into(),
        });
        assert_eq!(rx.try_recv().unwrap().unwrap_err().kind(), "session_closed");
    }
}
