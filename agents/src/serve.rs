//! The `serve` loop: frames in on one stream, exactly one reply line out per frame, flushed at
//! once so the controller never waits on a buffer.

use crate::frames::{Frame, FrameReader};
use crate::ops::{frame_too_large, truncated_frame, Agent};
use std::io::{self, BufRead, Write};
use vmctl_protocol::agent::{Response, MAX_FRAME_BYTES};

/// Why serving stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Reading the next frame failed.
    #[error("read frame")]
    Read(#[source] io::Error),
    /// Writing or flushing a reply failed (the controller went away).
    #[error("write reply for frame {id:?}")]
    Write {
        /// The reply's id.
        id: Option<u64>,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A reply could not be encoded.
    #[error("encode reply for frame {id:?}")]
    Encode {
        /// The reply's id.
        id: Option<u64>,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

/// Serves frames from `input` until it ends, replying on `output`. Blank lines are skipped;
/// every other frame, however broken, gets one reply and serving goes on.
///
/// # Errors
/// Only when the streams themselves fail; see [`ServeError`].
pub fn serve(
    input: impl BufRead,
    output: impl Write + Send,
    agent: &Agent,
) -> Result<(), ServeError> {
    let mut frames = FrameReader::new(input, MAX_FRAME_BYTES);
    let output = std::sync::Mutex::new(output);
    let send = |reply: &Response| {
        let mut out = output
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        write_reply(&mut *out, reply)
    };
    // Long operations (a prepare can take minutes) run on their own thread so `facts` and
    // `ping` keep answering within their deadlines; a silent agent would look like a dead
    // droplet to the controller. Replies carry their id, so order does not matter.
    std::thread::scope(|scope| {
        let mut failed: Option<ServeError> = None;
        loop {
            let frame = match frames.next_frame() {
                Ok(f) => f,
                Err(e) => return Err(ServeError::Read(e)),
            };
            let reply = match frame {
                Frame::Eof => break,
                Frame::Line(l) | Frame::Truncated(l) if l.trim_ascii().is_empty() => continue,
                Frame::Line(l) if is_slow(&l) => {
                    let send = &send;
                    scope.spawn(move || {
                        let reply = agent.handle_frame(&l);
                        let _ = send(&reply);
                    });
                    continue;
                }
                Frame::Line(l) => agent.handle_frame(&l),
                Frame::Truncated(_) => truncated_frame(),
                Frame::TooLarge => frame_too_large(),
            };
            if let Err(e) = send(&reply) {
                failed = Some(e);
                break;
            }
        }
        failed.map_or(Ok(()), Err)
    })
}

/// Operations that may run for minutes.
fn is_slow(frame: &[u8]) -> bool {
    const SLOW: [&str; 5] = [
        "prepare_release",
        "migrate",
        "cache_clear",
        "service",
        "prune_releases",
    ];
    serde_json::from_slice::<serde_json::Value>(frame)
        .ok()
        .and_then(|v| v.get("op").and_then(|o| o.as_str().map(str::to_owned)))
        .is_some_and(|op| SLOW.contains(&op.as_str()))
}

fn write_reply(output: &mut impl Write, reply: &Response) -> Result<(), ServeError> {
    let mut line = serde_json::to_vec(reply).map_err(|source| ServeError::Encode {
        id: reply.id,
        source,
    })?;
    line.push(b'\n');
    output
        .write_all(&line)
        .and_then(|()| output.flush())
        .map_err(|source| ServeError::Write {
            id: reply.id,
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::root::Root;
    use crate::services::process::ProcessBackend;

    fn run(input: &[u8]) -> Vec<serde_json::Value> {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path()).unwrap();
        let agent = Agent::new(root.clone(), Box::new(ProcessBackend::new(&root)));
        let mut out = Vec::new();
        serve(input, &mut out, &agent).unwrap();
        out.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    fn summary(v: &serde_json::Value) -> (serde_json::Value, String) {
        let code = v["err"]["code"]
            .as_str()
            .map_or_else(|| "ok".to_string(), str::to_string);
        (v["id"].clone(), code)
    }

    #[test]
    fn blank_lines_get_no_reply_and_every_other_frame_gets_one() {
        let mut input = b"\n  \n{\"id\":1,\"op\":\"ping\"}\r\n\nnot json\n".to_vec();
        input.extend(vec![b'a'; MAX_FRAME_BYTES + 1]);
        input.extend_from_slice(b"\n{\"id\":2,\"op\":\"ping\"}\n{\"id\":3,\"op\":\"pi");
        let got: Vec<_> = run(&input).iter().map(summary).collect();
        assert_eq!(
            got,
            vec![
                (1.into(), "ok".into()),
                (serde_json::Value::Null, "bad_frame".into()),
                (serde_json::Value::Null, "frame_too_large".into()),
                (2.into(), "ok".into()),
                (serde_json::Value::Null, "bad_frame".into()),
            ]
        );
    }

    #[test]
    fn a_whitespace_tail_at_eof_is_not_a_frame() {
        assert!(run(b"\n  ").is_empty());
        assert!(run(b"").is_empty());
    }
}
