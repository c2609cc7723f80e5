//! Turning one frame's bytes into a typed [`Request`], or into the error reply it deserves.
//!
//! The checks run in a fixed order so each broken frame gets the most useful code: a frame from
//! another protocol version is told so before its op is judged, and the id is echoed whenever
//! one could be read.

use vmctl_protocol::agent::{AgentError, ErrorCode, Outcome, Request, Response, PROTOCOL_VERSION};

/// The wire names of the ops this agent serves. `Agent::run` matches
/// [`Op`](vmctl_protocol::agent::Op) exhaustively, so a
/// new variant fails to compile there until it is served; list it here at the same time (a test
/// checks the two agree).
pub const KNOWN_OPS: [&str; 10] = [
    "hello",
    "ping",
    "facts",
    "prepare_release",
    "migrate",
    "cache_clear",
    "switch",
    "service",
    "probe",
    "prune_releases",
];

/// Longest op name echoed back in an `unknown_op` message.
const MAX_ECHOED_OP_CHARS: usize = 64;

/// A frame refused before it reached an op.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The frame's id, when it carried a readable one.
    pub id: Option<u64>,
    /// Why.
    pub error: AgentError,
}

impl Rejected {
    /// A rejection with `code` and `message`.
    pub fn new(id: Option<u64>, code: ErrorCode, message: impl Into<String>) -> Self {
        Rejected {
            id,
            error: AgentError {
                code,
                message: message.into(),
            },
        }
    }

    /// The reply frame.
    pub fn into_response(self) -> Response {
        Response {
            id: self.id,
            result: Outcome::Err(self.error),
        }
    }
}

/// Decodes one frame (newline already stripped).
///
/// # Errors
/// `bad_frame` (not JSON, not an object, no integer id, no string op, or fields of the wrong
/// shape), `protocol_mismatch` (a `v` other than [`PROTOCOL_VERSION`]) or `unknown_op`.
pub fn decode(line: &[u8]) -> Result<Request, Rejected> {
    let bad = |id, msg: String| Rejected::new(id, ErrorCode::BadFrame, msg);
    let value: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| bad(None, format!("frame is not JSON: {e}")))?;
    let Some(obj) = value.as_object() else {
        return Err(bad(None, "frame is not a JSON object".into()));
    };
    let id = match obj.get("id") {
        Some(v) => v
            .as_u64()
            .ok_or_else(|| bad(None, "id must be a non-negative integer".into()))?,
        None => return Err(bad(None, "frame has no id".into())),
    };
    match obj.get("v") {
        None | Some(serde_json::Value::Null) => {}
        Some(v) if v.as_u64() == Some(u64::from(PROTOCOL_VERSION)) => {}
        Some(v) => {
            let theirs = v
                .as_u64()
                .map_or_else(|| "a non-integer".to_string(), |n| n.to_string());
            return Err(Rejected::new(
                Some(id),
                ErrorCode::ProtocolMismatch,
                format!(
                    "frame speaks protocol version {theirs}; this agent speaks {PROTOCOL_VERSION}"
                ),
            ));
        }
    }
    let op = match obj.get("op") {
        Some(serde_json::Value::String(op)) => op,
        Some(_) => return Err(bad(Some(id), "op must be a string".into())),
        None => return Err(bad(Some(id), "frame has no op".into())),
    };
    let Some(name) = KNOWN_OPS.iter().find(|known| **known == op) else {
        return Err(Rejected::new(
            Some(id),
            ErrorCode::UnknownOp,
            format!("unknown op {:?}", shorten(op, MAX_ECHOED_OP_CHARS)),
        ));
    };
    serde_json::from_value(value).map_err(|e| bad(Some(id), format!("invalid {name} request: {e}")))
}

/// `s` cut to `max` characters, marked with `…` when cut.
fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmctl_protocol::agent::Op;

    fn code_and_id(line: &str) -> (Option<u64>, ErrorCode) {
        let r = decode(line.as_bytes()).unwrap_err();
        (r.id, r.error.code)
    }

    /// One example of every [`Op`]; the match makes a new variant fail to compile here until
    /// it has an example (and so a check against [`KNOWN_OPS`]).
    fn examples() -> Vec<Op> {
        use vmctl_protocol::release_ops as r;
        let ops = vec![
            Op::Hello,
            Op::Ping,
            Op::Facts,
            Op::PrepareRelease(r::PrepareRelease {
                tag: "v1.2.3".into(),
                repo_url: "/srv/up".into(),
                expected_commit: "a".repeat(40),
                assets: true,
            }),
            Op::Migrate(r::Migrate {
                tag: "v1.2.3".into(),
                phase: r::MigratePhase::PreDeploy,
            }),
            Op::CacheClear(r::CacheClear {
                tag: "v1.2.3".into(),
            }),
            Op::Switch(r::Switch {
                tag: "v1.2.3".into(),
            }),
            Op::Service(r::Service {
                name: "mastodon-sidekiq".into(),
                action: r::ServiceAction::Quiet,
                queues: vec!["default".into()],
            }),
            Op::Probe(r::Probe {
                check: r::ProbeCheck::Web,
            }),
            Op::PruneReleases(r::PruneReleases {
                keep: 3,
                protect: vec![],
            }),
        ];
        for op in &ops {
            match op {
                Op::Hello
                | Op::Ping
                | Op::Facts
                | Op::PrepareRelease(_)
                | Op::Migrate(_)
                | Op::CacheClear(_)
                | Op::Switch(_)
                | Op::Service(_)
                | Op::Probe(_)
                | Op::PruneReleases(_) => {}
            }
        }
        ops
    }

    #[test]
    fn every_known_op_decodes() {
        let ops = examples();
        assert_eq!(ops.len(), KNOWN_OPS.len());
        for op in ops {
            assert!(KNOWN_OPS.contains(&op.name()), "{}", op.name());
            let frame = serde_json::to_vec(&Request {
                id: 5,
                v: None,
                op: op.clone(),
            })
            .unwrap();
            assert_eq!(decode(&frame).unwrap(), Request { id: 5, v: None, op });
        }
        let req = decode(br#"{"id":6,"v":1,"op":"ping"}"#).unwrap();
        assert_eq!(req.v, Some(1));
    }

    #[test]
    fn a_known_op_with_bad_fields_is_a_bad_frame_naming_the_op() {
        let r = decode(br#"{"id":7,"op":"switch"}"#).unwrap_err();
        assert_eq!((r.id, r.error.code), (Some(7), ErrorCode::BadFrame));
        assert!(
            r.error.message.starts_with("invalid switch request"),
            "{}",
            r.error.message
        );
    }

    #[test]
    fn frames_without_a_readable_id_are_bad_with_a_null_id() {
        for line in [
            "nope",
            "[1,2]",
            "17",
            r#"{"op":"ping"}"#,
            r#"{"id":-1,"op":"ping"}"#,
            r#"{"id":1.5,"op":"ping"}"#,
            r#"{"id":"1","op":"ping"}"#,
            "\u{0}",
            r#"{"id":1"#,
        ] {
            assert_eq!(code_and_id(line), (None, ErrorCode::BadFrame), "{line}");
        }
        assert_eq!(
            decode(&[0xff, 0xfe]).unwrap_err().error.code,
            ErrorCode::BadFrame
        );
    }

    #[test]
    fn frames_with_an_id_but_no_usable_op_are_bad_with_the_id() {
        assert_eq!(code_and_id(r#"{"id":3}"#), (Some(3), ErrorCode::BadFrame));
        assert_eq!(
            code_and_id(r#"{"id":3,"op":7}"#),
            (Some(3), ErrorCode::BadFrame)
        );
    }

    #[test]
    fn unknown_ops_are_named() {
        let r = decode(br#"{"id":4,"op":"shell","cmd":"rm -rf /"}"#).unwrap_err();
        assert_eq!((r.id, r.error.code), (Some(4), ErrorCode::UnknownOp));
        assert!(r.error.message.contains("\"shell\""), "{}", r.error.message);
        let long = format!(r#"{{"id":4,"op":"{}"}}"#, "x".repeat(10_000));
        assert!(decode(long.as_bytes()).unwrap_err().error.message.len() < 100);
    }

    #[test]
    fn another_protocol_version_is_a_mismatch_even_for_unknown_ops() {
        assert_eq!(
            code_and_id(r#"{"id":9,"v":2,"op":"ping"}"#),
            (Some(9), ErrorCode::ProtocolMismatch)
        );
        assert_eq!(
            code_and_id(r#"{"id":9,"v":2,"op":"new_op"}"#),
            (Some(9), ErrorCode::ProtocolMismatch)
        );
        assert_eq!(
            code_and_id(r#"{"id":9,"v":"1","op":"ping"}"#),
            (Some(9), ErrorCode::ProtocolMismatch)
        );
        assert!(decode(br#"{"id":9,"v":null,"op":"ping"}"#).is_ok());
    }

    #[test]
    fn shorten_cuts_on_character_boundaries() {
        assert_eq!(shorten("héllo", 2), "hé…");
        assert_eq!(shorten("hi", 2), "hi");
    }
}
