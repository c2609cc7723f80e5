//! A tiny HTTP/1.1 server for the service stand-ins: one thread per connection, one request
//! per connection, `GET` by path only. Enough for health probes; no tokio in stand-ins.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// The largest request head read.
const MAX_HEAD: usize = 16 * 1024;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// An answer: status and plain-text body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: &'static str,
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// The address services listen on: `VMCTL_TESTBED_ADDRESS` (the droplet's own), else
/// 127.0.0.1; the port from `PORT`, else `default_port`.
///
/// # Errors
/// A malformed or non-loopback address (the testbed must never listen elsewhere), or a
/// malformed port.
pub fn listen_address(default_port: u16, port_override: Option<u16>) -> Result<SocketAddr, String> {
    let ip: IpAddr = match std::env::var(crate::droplets::sshd_config::LISTEN_VAR) {
        Ok(text) => text
            .parse()
            .map_err(|_| format!("VMCTL_TESTBED_ADDRESS={text:?} is not an IP address"))?,
        Err(_) => IpAddr::from([127, 0, 0, 1]),
    };
    if !ip.is_loopback() {
        return Err(format!("{ip} is not a loopback address"));
    }
    let port = match (port_override, std::env::var("PORT")) {
        (Some(port), _) => port,
        (None, Ok(text)) => text
            .parse()
            .map_err(|_| format!("PORT={text:?} is not a port number"))?,
        (None, Err(_)) => default_port,
    };
    Ok(SocketAddr::new(ip, port))
}

/// The request path of a request head (`GET /health?x HTTP/1.1` → `("GET", "/health")`).
pub fn parse_request_line(head: &str) -> Option<(&str, &str)> {
    let line = head.lines().next()?;
    let mut parts = line.split(' ');
    let method = parts.next()?;
    let target = parts.next()?;
    let path = target.split('?').next().unwrap_or(target);
    Some((method, path))
}

/// Serves forever on `listener`, answering each request with `route(method, path)` and the
/// header `x-vmctl-standin-version: version`.
pub fn serve(
    listener: &TcpListener,
    version: &str,
    route: impl Fn(&str, &str) -> Reply + Send + Sync + 'static,
) -> ! {
    let route = Arc::new(route);
    let version: Arc<str> = Arc::from(version);
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                let route = Arc::clone(&route);
                let version = Arc::clone(&version);
                std::thread::spawn(move || {
                    let _ = answer(stream, &version, |m, p| route(m, p));
                });
            }
            // Out of file descriptors and the like: back off instead of spinning.
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn answer(
    mut stream: TcpStream,
    version: &str,
    route: impl Fn(&str, &str) -> Reply,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let reply = match parse_request_line(&text) {
        Some(("GET" | "HEAD", path)) => route("GET", path),
        Some(_) => Reply {
            status: 405,
            body: "Method Not Allowed",
        },
        None => return Ok(()),
    };
    let is_head = text.starts_with("HEAD ");
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
         x-vmctl-standin-version: {version}\r\nConnection: close\r\n\r\n",
        reply.status,
        reason(reply.status),
        reply.body.len()
    );
    if !is_head {
        out.push_str(reply.body);
    }
    stream.write_all(out.as_bytes())?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_yield_method_and_path() {
        assert_eq!(
            parse_request_line("GET /health?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"),
            Some(("GET", "/health"))
        );
        assert_eq!(parse_request_line(""), None);
    }
}
