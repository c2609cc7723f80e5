//! The agent's wire protocol: newline-delimited JSON frames over the SSH channel's stdin and
//! stdout.
//!
//! A request is `{"id": 7, "op": "facts"}`; a reply is `{"id": 7, "ok": {...}}` or
//! `{"id": 7, "err": {"code": "unknown_op", "message": "..."}}`. A frame that cannot be parsed
//! far enough to find its id is answered with `"id": null`. There is deliberately no operation
//! that runs arbitrary shell: every op is a variant of [`Op`].

use serde::{Deserialize, Serialize};

/// Version of this wire protocol. The controller refuses (and replaces) an agent whose `hello`
/// reports another.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest frame either side accepts, newline excluded. Facts are a few KiB; 1 MiB leaves room
/// for later ops while bounding what a confused peer can make us buffer.
pub const MAX_FRAME_BYTES: usize = 1 << 20;

/// Request frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Chosen by the controller, echoed in the reply; unique among in-flight requests.
    pub id: u64,
    /// The sender's protocol version. Absent means "same as yours" so a hand-typed frame works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<u32>,
    /// The operation.
    #[serde(flatten)]
    pub op: Op,
}

/// The typed operations an agent runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // frames are built once per call; boxing buys nothing
pub enum Op {
    /// Identify: version, binary hash, protocol version. Answered with [`Hello`].
    Hello,
    /// Liveness check. Answered with [`Pong`].
    Ping,
    /// Collect host and Mastodon facts. Answered with [`Facts`].
    Facts,
    /// Fetch, verify and install a release. Answered with [`crate::release_ops::PrepareReport`].
    PrepareRelease(crate::release_ops::PrepareRelease),
    /// Run a migration phase once. Answered with [`crate::release_ops::OnceReport`].
    Migrate(crate::release_ops::Migrate),
    /// `tootctl cache clear` once. Answered with [`crate::release_ops::OnceReport`].
    CacheClear(crate::release_ops::CacheClear),
    /// Point `live` at a prepared release. Answered with [`crate::release_ops::SwitchReport`].
    Switch(crate::release_ops::Switch),
    /// Act on a Mastodon service. Answered with [`Pong`].
    Service(crate::release_ops::Service),
    /// One health check. Answered with [`crate::release_ops::ProbeReport`].
    Probe(crate::release_ops::Probe),
    /// Remove old releases. Answered with [`crate::release_ops::PruneReport`].
    PruneReleases(crate::release_ops::PruneReleases),
}

impl Op {
    /// The op's wire name.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Hello => "hello",
            Op::Ping => "ping",
            Op::Facts => "facts",
            Op::PrepareRelease(_) => "prepare_release",
            Op::Migrate(_) => "migrate",
            Op::CacheClear(_) => "cache_clear",
            Op::Switch(_) => "switch",
            Op::Service(_) => "service",
            Op::Probe(_) => "probe",
            Op::PruneReleases(_) => "prune_releases",
        }
    }
}

/// Reply frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The request's id, or `None` when the frame was too broken to carry one.
    pub id: Option<u64>,
    /// Success payload or error.
    #[serde(flatten)]
    pub result: Outcome,
}

/// `ok` with the op's payload, or `err`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The op's typed payload ([`Hello`], [`Pong`], [`Facts`]) as JSON.
    Ok(serde_json::Value),
    /// Why the op failed.
    Err(AgentError),
}

/// Stable error codes an agent replies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame was not valid JSON or not a valid request (including truncated frames).
    BadFrame,
    /// The frame exceeded [`MAX_FRAME_BYTES`].
    FrameTooLarge,
    /// The frame named an op this agent does not know.
    UnknownOp,
    /// The frame's `v` is not this agent's [`PROTOCOL_VERSION`].
    ProtocolMismatch,
    /// The op was valid but failed on the droplet.
    OpFailed,
}

/// An error reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct AgentError {
    /// Stable code.
    pub code: ErrorCode,
    /// A sentence for a person.
    pub message: String,
}

/// Reply to [`Op::Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The agent's crate version.
    pub agent_version: String,
    /// Lower-case hex SHA-256 of the running agent binary.
    pub binary_sha256: String,
    /// The agent's [`PROTOCOL_VERSION`].
    pub protocol_version: u32,
}

/// Reply to [`Op::Ping`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong {}

/// Reply to [`Op::Facts`]: what a droplet looks like right now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    /// The droplet's hostname (from `<root>/etc/hostname`, else the kernel's).
    pub hostname: String,
    /// `PRETTY_NAME` from `<root>/etc/os-release` (else `/etc/os-release`).
    pub os_release: Option<String>,
    /// Kernel release, as `uname -r` prints it.
    pub kernel: String,
    /// Seconds since boot.
    pub uptime_s: u64,
    /// 1, 5 and 15-minute load averages.
    pub load: [f64; 3],
    /// Memory in bytes.
    pub memory: Capacity,
    /// The filesystem holding the agent's root, in bytes.
    pub disk: Capacity,
    /// The Mastodon install under `<root>/home/mastodon`.
    pub mastodon: MastodonInstall,
    /// State of each Mastodon service the agent knows about.
    pub services: Vec<ServiceState>,
}

/// A total and how much of it is available.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    /// Total bytes.
    pub total_bytes: u64,
    /// Bytes available for use.
    pub available_bytes: u64,
}

/// The Mastodon releases present on a droplet.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MastodonInstall {
    /// The release `home/mastodon/live` points at (the last path component), if any.
    pub live_release: Option<String>,
    /// Names of the folders under `home/mastodon/releases`, sorted.
    pub releases: Vec<String>,
    /// HEAD commit of the live release's git tree.
    #[serde(default)]
    pub live_commit: Option<String>,
    /// Whether the live tree has no local changes (`git status --porcelain` is empty).
    #[serde(default)]
    pub live_clean: Option<bool>,
}

/// Whether a service is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActiveState {
    /// Running.
    Active,
    /// Not running (stopped, or never started).
    Inactive,
    /// Exited with an error.
    Failed,
    /// The backend could not tell.
    Unknown,
}

/// One Mastodon service on a droplet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceState {
    /// Upstream unit name, e.g. `mastodon-web`.
    pub name: String,
    /// Its state.
    pub state: ActiveState,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_frames_have_the_documented_shape() {
        let r = Request {
            id: 7,
            v: None,
            op: Op::Facts,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"id":7,"op":"facts"}"#
        );
        let parsed: Request = serde_json::from_str(r#"{"id":1,"v":1,"op":"hello"}"#).unwrap();
        assert_eq!(parsed.op, Op::Hello);
        assert_eq!(parsed.v, Some(1));
    }

    #[test]
    fn response_frames_have_the_documented_shape() {
        let ok = Response {
            id: Some(3),
            result: Outcome::Ok(serde_json::json!({})),
        };
        assert_eq!(serde_json::to_string(&ok).unwrap(), r#"{"id":3,"ok":{}}"#);
        let err = Response {
            id: None,
            result: Outcome::Err(AgentError {
                code: ErrorCode::BadFrame,
                message: "x".into(),
            }),
        };
        assert_eq!(
            serde_json::to_string(&err).unwrap(),
            r#"{"id":null,"err":{"code":"bad_frame","message":"x"}}"#
        );
        let back: Response = serde_json::from_str(r#"{"id":3,"ok":{"a":1}}"#).unwrap();
        assert_eq!(back.id, Some(3));
    }

    #[test]
    fn unknown_ops_do_not_parse_as_requests() {
        assert!(
            serde_json::from_str::<Request>(r#"{"id":1,"op":"shell","cmd":"rm -rf /"}"#).is_err()
        );
    }
}
