//! One HTTP/1.1 exchange over a fresh unix or TCP connection, bounded by a deadline.
//!
//! The connection future and the request are polled together in one task, so when the
//! deadline drops the exchange nothing is left running.

use std::error::Error as StdError;
use std::io;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::{timeout_at, Instant};

use super::{ClientError, Endpoint, Token};

/// Largest reply body read. Status and event pages are KiB; this bounds a confused server.
const MAX_BODY_BYTES: usize = 16 << 20;

/// Connects, sends one request and reads the whole reply, all before `deadline` elapses.
pub(super) async fn exchange(
    endpoint: &Endpoint,
    token: Option<&Token>,
    method: Method,
    path: &str,
    json: Option<Vec<u8>>,
    deadline: Duration,
) -> Result<(StatusCode, Vec<u8>), ClientError> {
    let until = Instant::now() + deadline;
    let method_name = method_name(&method);
    let transport = |detail: String| ClientError::Transport {
        method: method_name,
        path: path.to_owned(),
        endpoint: endpoint.to_string(),
        detail,
    };

    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, endpoint.host_header())
        .header(ACCEPT, "application/json");
    if let Some(token) = token {
        builder = builder.header(AUTHORIZATION, token.header_value());
    }
    if json.is_some() {
        builder = builder.header(CONTENT_TYPE, "application/json");
    }
    let request = builder
        .body(Full::new(Bytes::from(json.unwrap_or_default())))
        .map_err(|e| transport(format!("building the request: {e}")))?;

    let result = timeout_at(until, async {
        match endpoint {
            Endpoint::Unix(socket) => {
                let io = UnixStream::connect(socket)
                    .await
                    .map_err(|e| connect_error(endpoint, e, &transport))?;
                over(io, request).await.map_err(transport)
            }
            Endpoint::Tcp { host, port } => {
                let io = TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(|e| connect_error(endpoint, e, &transport))?;
                over(io, request).await.map_err(transport)
            }
        }
    })
    .await;
    match result {
        Ok(r) => r,
        Err(_elapsed) => Err(transport(format!("no complete reply within {deadline:?}"))),
    }
}

fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        _ => "HTTP",
    }
}

/// "Nobody is there" gets its own message; anything else (permissions, DNS) is a transport
/// error with its cause.
fn connect_error(
    endpoint: &Endpoint,
    e: io::Error,
    transport: &impl Fn(String) -> ClientError,
) -> ClientError {
    match e.kind() {
        io::ErrorKind::NotFound
        | io::ErrorKind::ConnectionRefused
        | io::ErrorKind::AddrNotAvailable => ClientError::NoController {
            endpoint: endpoint.to_string(),
            hint: endpoint.hint(),
        },
        _ => transport(format!("connecting: {e}")),
    }
}

async fn over<I>(io: I, request: Request<Full<Bytes>>) -> Result<(StatusCode, Vec<u8>), String>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP handshake: {}", chain(&e)))?;
    let call = async move {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("sending the request: {}", chain(&e)))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|e| format!("reading the reply: {}", chain(e.as_ref())))?
            .to_bytes();
        Ok::<_, String>((status, body.to_vec()))
    };
    tokio::pin!(conn);
    tokio::pin!(call);
    tokio::select! {
        done = &mut call => done,
        ended = &mut conn => match ended {
            // The connection only ends on its own when the server closed it; the request
            // may still have its reply buffered.
            Ok(()) => call.await,
            Err(e) => Err(format!("connection failed: {}", chain(&e))),
        },
    }
}

/// An error and its causes on one line.
fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
