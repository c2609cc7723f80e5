//! The agent's ops and the [`Agent`] that dispatches decoded requests to them, one file per
//! family of ops.

pub mod facts;
pub mod facts_parse;
pub mod hello;
pub mod probe;
pub mod release;

use crate::decode::{decode, Rejected};
use crate::root::Root;
use crate::services::ServiceBackend;
use crate::settings::Settings;
use hello::BinaryHash;
use release::{check_tag, migrate, prepare, prune, switch, Layout};
use serde::Serialize;
use vmctl_protocol::agent::{AgentError, ErrorCode, Op, Outcome, Pong, Response};

/// Everything an op needs: the droplet's root, its services backend, the settings and the cached
/// binary hash.
#[derive(Debug)]
pub struct Agent {
    root: Root,
    layout: Layout,
    services: Box<dyn ServiceBackend>,
    settings: Settings,
    hash: BinaryHash,
}

impl Agent {
    /// An agent serving the droplet at `root` with default [`Settings`].
    pub fn new(root: Root, services: Box<dyn ServiceBackend>) -> Self {
        Agent::with_settings(root, services, Settings::default())
    }

    /// An agent serving the droplet at `root` with `settings`.
    pub fn with_settings(
        root: Root,
        services: Box<dyn ServiceBackend>,
        settings: Settings,
    ) -> Self {
        Agent {
            layout: Layout::new(&root),
            root,
            services,
            settings,
            hash: BinaryHash::default(),
        }
    }

    /// The cached hash of the running binary.
    pub fn binary_hash(&self) -> &BinaryHash {
        &self.hash
    }

    /// The reply to one frame (newline stripped). Never panics on any input.
    pub fn handle_frame(&self, line: &[u8]) -> Response {
        match decode(line) {
            Ok(req) => Response {
                id: Some(req.id),
                result: self.run(&req.op),
            },
            Err(rejected) => rejected.into_response(),
        }
    }

    /// Runs a decoded op.
    pub fn run(&self, op: &Op) -> Outcome {
        let result = match op {
            Op::Hello => hello::hello(&self.hash)
                .map_err(|e| op_failed(op, &e))
                .and_then(to_json),
            Op::Ping => to_json(Pong {}),
            Op::Facts => facts::collect(&self.root, self.services.as_ref())
                .map_err(|e| op_failed(op, &e))
                .and_then(to_json),
            Op::PrepareRelease(req) => check_tag(&req.tag)
                .map_err(|e| op_failed(op, &e))
                .and_then(|_| {
                    prepare::prepare(&self.layout, req, self.settings.step_timeout)
                        .map_err(|e| op_failed(op, &e))
                })
                .and_then(to_json),
            Op::Migrate(req) => self.once(op, &req.tag, migrate::kind_of(req.phase)),
            Op::CacheClear(req) => self.once(op, &req.tag, release::markers::OnceKind::CacheClear),
            Op::Switch(req) => check_tag(&req.tag)
                .map_err(|e| op_failed(op, &e))
                .and_then(|tag| switch::switch(&self.layout, tag).map_err(|e| op_failed(op, &e)))
                .and_then(to_json),
            Op::Service(req) => self
                .services
                .act(&req.name, req.action, &req.queues)
                .map_err(|e| op_failed(op, &e))
                .and_then(|()| to_json(Pong {})),
            Op::Probe(req) => to_json(probe::probe(
                req.check,
                &self.settings.probe_host,
                &self.root,
                self.services.as_ref(),
            )),
            Op::PruneReleases(req) => prune::prune(&self.layout, req)
                .map_err(|e| op_failed(op, &e))
                .and_then(to_json),
        };
        match result {
            Ok(v) => Outcome::Ok(v),
            Err(e) => Outcome::Err(e),
        }
    }
}

impl Agent {
    fn once(
        &self,
        op: &Op,
        tag: &str,
        kind: release::markers::OnceKind,
    ) -> Result<serde_json::Value, AgentError> {
        let tag = check_tag(tag).map_err(|e| op_failed(op, &e))?;
        migrate::once(&self.layout, tag, kind, self.settings.step_timeout)
            .map_err(|e| op_failed(op, &e))
            .and_then(to_json)
    }
}

/// The reply to a line longer than the frame bound.
pub fn frame_too_large() -> Response {
    Rejected::new(
        None,
        ErrorCode::FrameTooLarge,
        format!(
            "frame exceeds {} bytes",
            vmctl_protocol::agent::MAX_FRAME_BYTES
        ),
    )
    .into_response()
}

/// The reply to bytes left without a newline when the input ended.
pub fn truncated_frame() -> Response {
    Rejected::new(
        None,
        ErrorCode::BadFrame,
        "truncated frame: input ended before its newline",
    )
    .into_response()
}

fn op_failed(op: &Op, e: &dyn std::error::Error) -> AgentError {
    AgentError {
        code: ErrorCode::OpFailed,
        message: format!("{}: {}", op.name(), crate::display_chain(e)),
    }
}

fn to_json(payload: impl Serialize) -> Result<serde_json::Value, AgentError> {
    serde_json::to_value(payload).map_err(|e| AgentError {
        code: ErrorCode::OpFailed,
        message: format!("encode reply: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::process::ProcessBackend;
    use vmctl_protocol::agent::{Facts, Hello, PROTOCOL_VERSION};

    fn agent() -> (tempfile::TempDir, Agent) {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path()).unwrap();
        let services = Box::new(ProcessBackend::new(&root));
        (dir, Agent::new(root, services))
    }

    fn err_code(r: &Response) -> Option<ErrorCode> {
        match &r.result {
            Outcome::Err(e) => Some(e.code),
            Outcome::Ok(_) => None,
        }
    }

    #[test]
    fn each_op_answers_with_its_payload() {
        let (_d, a) = agent();
        let r = a.handle_frame(br#"{"id":1,"op":"ping"}"#);
        assert_eq!(
            r,
            Response {
                id: Some(1),
                result: Outcome::Ok(serde_json::json!({}))
            }
        );
        let Outcome::Ok(v) = a.handle_frame(br#"{"id":2,"v":1,"op":"hello"}"#).result else {
            panic!()
        };
        let hello: Hello = serde_json::from_value(v).unwrap();
        assert_eq!(hello.protocol_version, PROTOCOL_VERSION);
        let Outcome::Ok(v) = a.handle_frame(br#"{"id":3,"op":"facts"}"#).result else {
            panic!()
        };
        let facts: Facts = serde_json::from_value(v).unwrap();
        assert_eq!(facts.services.len(), 3);
    }

    #[test]
    fn each_error_code_is_reachable() {
        let (dir, a) = agent();
        let cases: [(&[u8], Option<u64>, ErrorCode); 4] = [
            (b"garbage", None, ErrorCode::BadFrame),
            (br#"{"id":7,"op":"shell"}"#, Some(7), ErrorCode::UnknownOp),
            (
                br#"{"id":8,"v":99,"op":"ping"}"#,
                Some(8),
                ErrorCode::ProtocolMismatch,
            ),
            (br#"{"id":9}"#, Some(9), ErrorCode::BadFrame),
        ];
        for (line, id, code) in cases {
            let r = a.handle_frame(line);
            assert_eq!(
                (r.id, err_code(&r)),
                (id, Some(code)),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        assert_eq!(err_code(&frame_too_large()), Some(ErrorCode::FrameTooLarge));
        assert_eq!(err_code(&truncated_frame()), Some(ErrorCode::BadFrame));

        // A `live` that is a folder, not a symlink, makes facts fail on the droplet.
        std::fs::create_dir_all(dir.path().join("home/mastodon/live")).unwrap();
        let r = a.handle_frame(br#"{"id":10,"op":"facts"}"#);
        assert_eq!((r.id, err_code(&r)), (Some(10), Some(ErrorCode::OpFailed)));
        let Outcome::Err(e) = r.result else {
            unreachable!()
        };
        assert!(e.message.starts_with("facts: readlink "), "{}", e.message);
    }
}
