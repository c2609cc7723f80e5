//! The farm's control socket: lets another process (`vmctl dev kill`, a test driving the
//! `vmctl-testbed` binary) kill, restart or re-key a droplet's sshd. One JSON line in, one
//! JSON line out, per connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::TestbedError;
use super::farm::DropletFarm;

/// How long a client gets to send its request, and we get to answer, before we drop it.
const IO_DEADLINE: Duration = Duration::from_secs(5);

/// How long a client waits for the answer: a restart may take sshd's whole ready deadline.
const CLIENT_DEADLINE: Duration = Duration::from_secs(15);

/// Requests longer than this are refused, so a stray writer cannot grow our memory.
const MAX_REQUEST_BYTES: u64 = 4096;

/// What to do to which droplet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlRequest {
    /// The operation.
    pub op: ControlOp,
    /// The droplet's name.
    pub name: String,
}

/// The operations the socket offers; each maps to the [`DropletFarm`] method of that name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlOp {
    /// [`DropletFarm::kill_sshd`].
    KillSshd,
    /// [`DropletFarm::start_sshd`].
    StartSshd,
    /// [`DropletFarm::rotate_host_key`].
    RotateHostKey,
}

/// `{"ok":true}` or `{"ok":false,"error":"..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlResponse {
    /// Whether the operation succeeded.
    pub ok: bool,
    /// Why not, with its cause chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Why a control-socket client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The socket could not be reached or the exchange broke off.
    #[error("talking to control socket {path}")]
    Io {
        /// The socket.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The answer was not a [`ControlResponse`].
    #[error("control socket {path} answered {answer:?}")]
    BadAnswer {
        /// The socket.
        path: String,
        /// What it said.
        answer: String,
    },
}

/// Applies one request line to the farm and returns the answer to send.
pub fn handle_line(farm: &mut DropletFarm, line: &str) -> ControlResponse {
    let result = serde_json::from_str::<ControlRequest>(line.trim())
        .map_err(|e| format!("bad request: {e}"))
        .and_then(|request| apply(farm, &request).map_err(|e| error_chain(&e)));
    match result {
        Ok(()) => ControlResponse {
            ok: true,
            error: None,
        },
        Err(error) => ControlResponse {
            ok: false,
            error: Some(error),
        },
    }
}

fn apply(farm: &mut DropletFarm, request: &ControlRequest) -> Result<(), TestbedError> {
    match request.op {
        ControlOp::KillSshd => farm.kill_sshd(&request.name),
        ControlOp::StartSshd => farm.start_sshd(&request.name),
        ControlOp::RotateHostKey => farm.rotate_host_key(&request.name),
    }
}

/// `error: cause: cause`, so the client sees why, not only what.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// Serves requests one connection at a time until the listener fails. Meant for its own
/// thread; `on_change` runs after each successful operation (to rewrite the manifest).
pub fn serve(listener: &UnixListener, farm: &Mutex<DropletFarm>, on_change: impl Fn(&DropletFarm)) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else {
            continue;
        };
        if let Err(error) = serve_one(stream, farm, &on_change) {
            tracing::warn!(%error, "Control connection failed.");
        }
    }
}

fn serve_one(
    stream: UnixStream,
    farm: &Mutex<DropletFarm>,
    on_change: &impl Fn(&DropletFarm),
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IO_DEADLINE))?;
    stream.set_write_timeout(Some(IO_DEADLINE))?;
    let mut line = String::new();
    BufReader::new((&stream).take(MAX_REQUEST_BYTES)).read_line(&mut line)?;
    let response = {
        let mut farm = farm.lock().unwrap_or_else(|p| p.into_inner());
        let response = handle_line(&mut farm, &line);
        if response.ok {
            on_change(&farm);
        }
        response
    };
    let mut answer = serde_json::to_string(&response).map_err(std::io::Error::other)?;
    answer.push('\n');
    (&stream).write_all(answer.as_bytes())
}

/// Sends one request to a farm's control socket and returns its answer.
pub fn request(socket: &Path, request: &ControlRequest) -> Result<ControlResponse, ControlError> {
    let path = socket.display().to_string();
    let io = |source| ControlError::Io {
        path: path.clone(),
        source,
    };
    let mut stream = UnixStream::connect(socket).map_err(io)?;
    stream.set_read_timeout(Some(CLIENT_DEADLINE)).map_err(io)?;
    stream
        .set_write_timeout(Some(CLIENT_DEADLINE))
        .map_err(io)?;
    let mut line = serde_json::to_string(request).map_err(|e| io(std::io::Error::other(e)))?;
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(io)?;
    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer).map_err(io)?;
    serde_json::from_str(answer.trim()).map_err(|_| ControlError::BadAnswer {
        path: path.clone(),
        answer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_json_matches_the_documented_shape() {
        let request: ControlRequest =
            serde_json::from_str(r#"{"op":"rotate_host_key","name":"web-1"}"#).unwrap();
        assert_eq!(
            request,
            ControlRequest {
                op: ControlOp::RotateHostKey,
                name: "web-1".into()
            }
        );
        assert_eq!(
            serde_json::to_string(&ControlResponse {
                ok: true,
                error: None
            })
            .unwrap(),
            r#"{"ok":true}"#
        );
    }

    #[test]
    fn error_chain_joins_causes() {
        let error = TestbedError::ReadFile {
            path: "/x".into(),
            source: std::io::Error::other("boom"),
        };
        assert_eq!(error_chain(&error), "reading /x: boom");
    }
}
