//! The `vmctl` side of the controller's HTTP/JSON API: one request per connection over a unix
//! socket or TCP, each under a deadline, with a bearer token when one is set.
//!
//! hyper's low-level client is used because reqwest cannot speak over a unix socket. One
//! connection per request keeps the client stateless; the CLI makes a handful of calls.

mod endpoint;
mod error;
mod http;

use std::time::Duration;

use hyper::{Method, StatusCode};
use serde::{de::DeserializeOwned, Serialize};
use vmctl_protocol::api::ApiError;

pub use endpoint::{Endpoint, Token, DEFAULT_SOCKET};
pub use error::ClientError;

/// Deadline for one ordinary request, connect to last body byte. The controller answers from
/// its store in milliseconds; ten seconds only trips on a wedged or unreachable server.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client for one controller.
#[derive(Debug, Clone)]
pub struct ApiClient {
    endpoint: Endpoint,
    token: Option<Token>,
    timeout: Duration,
}

impl ApiClient {
    /// A client without a token and with [`DEFAULT_TIMEOUT`].
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            token: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Sends `Authorization: Bearer <token>` on every request when `Some`.
    #[must_use]
    pub fn with_token(mut self, token: Option<Token>) -> Self {
        self.token = token;
        self
    }

    /// Replaces the per-request deadline.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Where this client connects.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The per-request deadline.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `GET path` and decodes a 2xx JSON body.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.get_json_within(path, self.timeout).await
    }

    /// `GET path` under a custom deadline, for long polls (`wait` plus a margin).
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn get_json_within<T: DeserializeOwned>(
        &self,
        path: &str,
        deadline: Duration,
    ) -> Result<T, ClientError> {
        let body = self.call(Method::GET, path, None, deadline).await?;
        decode("GET", path, &body)
    }

    /// `POST path` with a JSON body and decodes a 2xx JSON reply.
    ///
    /// # Errors
    /// See [`ClientError`]; a body that fails to serialize is a [`ClientError::Decode`].
    pub async fn post_json<B, T>(&self, path: &str, body: &B) -> Result<T, ClientError>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let json = serde_json::to_vec(body).map_err(|source| ClientError::Decode {
            method: "POST",
            path: path.to_owned(),
            source,
        })?;
        let reply = self
            .call(Method::POST, path, Some(json), self.timeout)
            .await?;
        decode("POST", path, &reply)
    }

    /// `POST path` without a body, expecting any 2xx (typically 204); the reply body is ignored.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn post_empty(&self, path: &str) -> Result<(), ClientError> {
        self.call(Method::POST, path, None, self.timeout)
            .await
            .map(drop)
    }

    /// One exchange; non-2xx replies become [`ClientError::Api`].
    async fn call(
        &self,
        method: Method,
        path: &str,
        json: Option<Vec<u8>>,
        deadline: Duration,
    ) -> Result<Vec<u8>, ClientError> {
        let (status, body) = http::exchange(
            &self.endpoint,
            self.token.as_ref(),
            method,
            path,
            json,
            deadline,
        )
        .await?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(api_error(status, &body))
        }
    }
}

fn decode<T: DeserializeOwned>(
    method: &'static str,
    path: &str,
    body: &[u8],
) -> Result<T, ClientError> {
    serde_json::from_slice(body).map_err(|source| ClientError::Decode {
        method,
        path: path.to_owned(),
        source,
    })
}

/// Reads the `ApiError` body every vmctld error carries; anything else (a proxy's HTML page)
/// is summarised so the operator still sees the status.
fn api_error(status: StatusCode, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<ApiError>(body) {
        Ok(e) => ClientError::Api {
            status: status.as_u16(),
            code: e.code,
            message: e.message,
        },
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let snippet: String = text.trim().chars().take(200).collect();
            let message = if snippet.is_empty() {
                format!("the server replied {status}")
            } else {
                format!("the server replied {status}: {snippet}")
            };
            ClientError::Api {
                status: status.as_u16(),
                code: format!("http_{}", status.as_u16()),
                message,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_use_the_servers_message_or_summarise_the_body() {
        let e = api_error(
            StatusCode::NOT_FOUND,
            br#"{"code":"not_found","message":"node \"x\" not found"}"#,
        );
        assert!(
            matches!(&e, ClientError::Api { status: 404, code, .. } if code == "not_found"),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "node \"x\" not found");
        let e = api_error(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>");
        assert_eq!(
            e.to_string(),
            "the server replied 502 Bad Gateway: <html>bad gateway</html>"
        );
    }
}
