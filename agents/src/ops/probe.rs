//! `probe`: one health check run on the droplet itself. Web and streaming get a minimal
//! HTTP/1.1 GET over a std `TcpStream` (no HTTP client: the agent stays small and synchronous);
//! Sidekiq is judged by its service state and heartbeat file.

use crate::root::Root;
use crate::services::ServiceBackend;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};
use vmctl_protocol::agent::ActiveState;
use vmctl_protocol::release_ops::{ProbeCheck, ProbeReport};

/// Whole-request deadline for an HTTP probe: a health endpoint answers in milliseconds, and the
/// controller probes again soon.
pub const HTTP_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Oldest Sidekiq heartbeat still counted as alive.
pub const HEARTBEAT_MAX_AGE: Duration = Duration::from_secs(10);

/// Where Sidekiq's heartbeat file is, under the root.
pub const HEARTBEAT_FILE: &str = "run/vmctl/sidekiq-heartbeat";

/// The response header through which a testbed stand-in reports its release.
pub const VERSION_HEADER: &str = "x-vmctl-standin-version";

/// Most response-head bytes read; health responses have a few short headers.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Puma's port and health path.
pub const WEB: (u16, &str) = (3000, "/health");
/// Streaming's port and health path.
pub const STREAMING: (u16, &str) = (4000, "/api/v1/streaming/health");

/// Runs one probe. Never fails: an unreachable service is an unhealthy report.
pub fn probe(
    check: ProbeCheck,
    host: &str,
    root: &Root,
    services: &dyn ServiceBackend,
) -> ProbeReport {
    match check {
        ProbeCheck::Web => http_probe(host, WEB.0, WEB.1, HTTP_PROBE_TIMEOUT),
        ProbeCheck::Streaming => http_probe(host, STREAMING.0, STREAMING.1, HTTP_PROBE_TIMEOUT),
        ProbeCheck::Sidekiq => {
            let age = heartbeat_age(&root.join(HEARTBEAT_FILE), SystemTime::now());
            sidekiq_verdict(services.state("mastodon-sidekiq"), age)
        }
    }
}

/// `GET path` on `host:port` as a [`ProbeReport`]: healthy on 200.
pub fn http_probe(host: &str, port: u16, path: &str, timeout: Duration) -> ProbeReport {
    match http_get(host, port, path, timeout) {
        Ok(head) => ProbeReport {
            healthy: head.status == 200,
            status: Some(head.status),
            version: head.header(VERSION_HEADER).map(str::to_string),
            detail: format!("GET {path}: {}", head.status_line),
        },
        Err(e) => ProbeReport {
            healthy: false,
            status: None,
            version: None,
            detail: format!("GET {path} on {host}:{port}: {e}"),
        },
    }
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// The status line without `HTTP/1.x `.
    pub status_line: String,
    /// Headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
}

impl ResponseHead {
    /// The first header named `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `GET path` with `Connection: close` and reads the response head, all within `timeout`.
///
/// # Errors
/// Name resolution, connect (e.g. refused), write, read or timeout failures, and heads that do
/// not parse (`InvalidData`).
pub fn http_get(host: &str, port: u16, path: &str, timeout: Duration) -> io::Result<ResponseHead> {
    let deadline = Instant::now() + timeout;
    let addr = (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_write_timeout(Some(remaining(deadline)?))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: vmctl-agent\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;
    let mut head = Vec::new();
    let mut chunk = [0u8; 2048];
    loop {
        if let Some(end) = find_head_end(&head) {
            head.truncate(end);
            break;
        }
        if head.len() > MAX_HEAD_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "response head too large",
            ));
        }
        stream.set_read_timeout(Some(remaining(deadline)?))?;
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            // A head that ends with the connection is still usable (HTTP/1.0 style servers).
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    parse_head(&head)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed response head"))
}

fn remaining(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(io::Error::new(io::ErrorKind::TimedOut, "probe timed out"))
    } else {
        Ok(left)
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

/// Parses `HTTP/1.x CODE REASON` and the header lines after it. Pure.
pub fn parse_head(head: &[u8]) -> Option<ResponseHead> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let first = lines.next()?;
    let rest = first.strip_prefix("HTTP/1.")?.get(2..)?;
    let status: u16 = rest.get(..3)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some(ResponseHead {
        status,
        status_line: rest.trim().to_string(),
        headers,
    })
}

/// Age of the heartbeat file at `path` at `now`; `None` when it does not exist or cannot be read.
pub fn heartbeat_age(path: &Path, now: SystemTime) -> Option<Duration> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(now.duration_since(modified).unwrap_or(Duration::ZERO))
}

/// Sidekiq is healthy when its service is active and, if it keeps a heartbeat, the heartbeat is
/// at most [`HEARTBEAT_MAX_AGE`] old. Pure.
pub fn sidekiq_verdict(state: ActiveState, heartbeat_age: Option<Duration>) -> ProbeReport {
    let (healthy, detail) = match (state, heartbeat_age) {
        (ActiveState::Active, None) => (true, "mastodon-sidekiq is active".to_string()),
        (ActiveState::Active, Some(age)) if age <= HEARTBEAT_MAX_AGE => (
            true,
            format!(
                "mastodon-sidekiq is active; heartbeat {}s old",
                age.as_secs()
            ),
        ),
        (ActiveState::Active, Some(age)) => (
            false,
            format!(
                "mastodon-sidekiq is active but its heartbeat is {}s old (limit {}s)",
                age.as_secs(),
                HEARTBEAT_MAX_AGE.as_secs()
            ),
        ),
        (other, _) => (
            false,
            format!("mastodon-sidekiq is {other:?}").to_lowercase(),
        ),
    };
    ProbeReport {
        healthy,
        status: None,
        version: None,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// Serves one connection with `response`, returning the port and the request it read.
    fn one_shot(response: &'static str) -> (u16, std::thread::JoinHandle<String>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while find_head_end(&req).is_none() {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            s.write_all(response.as_bytes()).unwrap();
            String::from_utf8(req).unwrap()
        });
        (port, h)
    }

    #[test]
    fn a_200_is_healthy_and_reports_the_standin_version() {
        let (port, h) = one_shot(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Vmctl-Standin-Version: v1.2.3\r\n\r\nOK",
        );
        let r = http_probe("127.0.0.1", port, "/health", Duration::from_secs(2));
        assert_eq!(
            r,
            ProbeReport {
                healthy: true,
                status: Some(200),
                version: Some("v1.2.3".into()),
                detail: "GET /health: 200 OK".into()
            }
        );
        let req = h.join().unwrap();
        assert!(
            req.starts_with("GET /health HTTP/1.1\r\nHost: 127.0.0.1:"),
            "{req}"
        );
    }

    #[test]
    fn a_500_is_unhealthy_with_its_status() {
        let (port, h) = one_shot("HTTP/1.1 500 Internal Server Error\r\n\r\n");
        let r = http_probe(
            "127.0.0.1",
            port,
            "/api/v1/streaming/health",
            Duration::from_secs(2),
        );
        assert!(!r.healthy);
        assert_eq!(r.status, Some(500));
        assert_eq!(r.version, None);
        h.join().unwrap();
    }

    #[test]
    fn a_refused_connection_is_unhealthy_with_a_detail() {
        // Bind then drop: the port is very likely closed right after.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let r = http_probe("127.0.0.1", port, "/health", Duration::from_secs(2));
        assert!(!r.healthy);
        assert_eq!(r.status, None);
        assert!(r.detail.to_lowercase().contains("refused"), "{}", r.detail);
    }

    #[test]
    fn a_silent_server_times_out() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let started = Instant::now();
        let r = http_probe("127.0.0.1", port, "/health", Duration::from_millis(300));
        assert!(!r.healthy);
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(l);
    }

    #[test]
    fn heads_parse() {
        let h = parse_head(b"HTTP/1.0 204 No Content\r\nA: b\r\n").unwrap();
        assert_eq!((h.status, h.header("a")), (204, Some("b")));
        assert_eq!(parse_head(b"SSH-2.0-OpenSSH"), None);
        assert_eq!(parse_head(b"HTTP/1.1 abc"), None);
    }

    #[test]
    fn sidekiq_needs_an_active_service_and_a_fresh_heartbeat() {
        assert!(sidekiq_verdict(ActiveState::Active, None).healthy);
        assert!(sidekiq_verdict(ActiveState::Active, Some(Duration::from_secs(3))).healthy);
        assert!(!sidekiq_verdict(ActiveState::Active, Some(Duration::from_secs(11))).healthy);
        let r = sidekiq_verdict(ActiveState::Inactive, Some(Duration::ZERO));
        assert!(!r.healthy);
        assert_eq!(r.detail, "mastodon-sidekiq is inactive");
    }
}
