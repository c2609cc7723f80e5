//! A fake vmctld for CLI tests: an axum server on a unix socket (or loopback TCP) that answers
//! canned JSON per route and records every request it receives, plus a runner for the real
//! `vmctl` binary.

#![allow(dead_code)] // Each test binary uses a different part of the support code.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::{
    body::{to_bytes, Body},
    extract::{Request, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Router,
};
use tokio::net::{TcpListener, UnixListener};
use tokio::task::JoinHandle;

/// How long any one vmctl run may take before the test fails.
pub const RUN_DEADLINE: Duration = Duration::from_secs(30);

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query, e.g. `/v1/events?limit=5`.
    pub uri: String,
    pub authorization: Option<String>,
    pub body: String,
}

/// A canned reply.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    /// Held this long before answering (to act like a long poll).
    pub delay: Duration,
}

impl Reply {
    pub fn json(value: &impl serde::Serialize) -> Self {
        Self::with_status(200, value)
    }

    pub fn with_status(status: u16, value: &impl serde::Serialize) -> Self {
        Self {
            status,
            body: serde_json::to_string(value).unwrap(),
            delay: Duration::ZERO,
        }
    }

    pub fn no_content() -> Self {
        Self {
            status: 204,
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

#[derive(Default)]
struct Shared {
    /// Keyed by `METHOD /path?query` (exact) or `METHOD /path` (any query).
    replies: HashMap<String, Reply>,
    requests: Vec<Recorded>,
}

/// A running fake controller. Dropping it stops the server.
pub struct FakeController {
    shared: Arc<Mutex<Shared>>,
    task: JoinHandle<()>,
    /// Holds the socket's folder alive.
    pub dir: tempfile::TempDir,
    /// The unix socket (unix mode).
    pub socket: PathBuf,
    /// `http://127.0.0.1:PORT` (TCP mode).
    pub url: Option<String>,
}

impl FakeController {
    /// Serves on `DIR/vmctld.sock`.
    pub async fn unix() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("vmctld.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let app = router(shared.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            shared,
            task,
            dir,
            socket,
            url: None,
        }
    }

    /// Serves on an ephemeral loopback TCP port.
    pub async fn tcp() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Mutex::new(Shared::default()));
        let app = router(shared.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            shared,
            task,
            socket: dir.path().join("unused.sock"),
            dir,
            url: Some(url),
        }
    }

    /// Answers `key` (`"GET /v1/status"` or with an exact query) with `reply`.
    pub fn reply(&self, key: &str, reply: Reply) {
        self.shared
            .lock()
            .unwrap()
            .replies
            .insert(key.to_owned(), reply);
    }

    /// Stops serving and waits until the listener is closed. Dropping alone only asks the task
    /// to stop, so a connect made right after could still reach the listener's backlog and be
    /// reset instead of refused.
    pub async fn stop(&mut self) {
        self.task.abort();
        // The task's future (and with it the listener) is dropped before the handle resolves.
        let _ = (&mut self.task).await;
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().unwrap().requests.clone()
    }
}

impl Drop for FakeController {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn router(shared: Arc<Mutex<Shared>>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

async fn handle(State(shared): State<Arc<Mutex<Shared>>>, req: Request) -> Response {
    let method = req.method().to_string();
    let uri = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_owned(), |pq| pq.as_str().to_owned());
    let path = req.uri().path().to_owned();
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = to_bytes(req.into_body(), 1 << 20).await.unwrap();
    let reply = {
        let mut s = shared.lock().unwrap();
        s.requests.push(Recorded {
            method: method.clone(),
            uri: uri.clone(),
            authorization,
            body: String::from_utf8(body.to_vec()).unwrap(),
        });
        s.replies
            .get(&format!("{method} {uri}"))
            .or_else(|| s.replies.get(&format!("{method} {path}")))
            .cloned()
    };
    let Some(reply) = reply else {
        let body =
            serde_json::json!({"code": "not_found", "message": format!("no route {method} {uri}")});
        return (StatusCode::NOT_FOUND, axum::Json(body)).into_response();
    };
    tokio::time::sleep(reply.delay).await;
    Response::builder()
        .status(reply.status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(reply.body))
        .unwrap()
}

/// The real `vmctl` binary with no VMCTL_* settings inherited from the test's environment.
pub fn vmctl() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_vmctl"));
    for var in [
        "VMCTL_SOCKET",
        "VMCTL_SERVER",
        "VMCTL_TOKEN",
        "VMCTL_TOKEN_FILE",
    ] {
        cmd.env_remove(var);
    }
    cmd.kill_on_drop(true);
    cmd
}

/// Runs `vmctl --socket SOCKET ARGS...` to completion.
pub async fn run(socket: &Path, args: &[&str]) -> Output {
    let mut cmd = vmctl();
    cmd.arg("--socket").arg(socket).args(args);
    output(cmd).await
}

/// Runs a prepared command to completion under [`RUN_DEADLINE`].
pub async fn output(mut cmd: tokio::process::Command) -> Output {
    tokio::time::timeout(RUN_DEADLINE, cmd.output())
        .await
        .expect("vmctl did not finish in time")
        .expect("vmctl could not be started")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}
