//! Why a call to the controller's API failed, split the way the CLI reacts to it: nobody
//! listening, the server said no, the connection broke, or the reply was not what we expected.

/// A failed API call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing accepted the connection: the socket is missing or refuses, or the TCP port is
    /// closed or does not answer the connect in time.
    #[error("no controller is answering on {endpoint} (is vmctld running? {hint})")]
    NoController {
        /// The socket path or server URL tried.
        endpoint: String,
        /// What the operator can set to point elsewhere.
        hint: &'static str,
    },
    /// The controller answered with a non-2xx status and an `ApiError` body (or, from
    /// something that is not vmctld, a body we could not read as one).
    #[error("{message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The stable `ApiError` code, e.g. `not_found`.
        code: String,
        /// The server's sentence for a person.
        message: String,
    },
    /// The request could not be completed: connect failure other than "nobody there", a
    /// broken connection, or the deadline passed.
    #[error("{method} {path} on {endpoint} failed: {detail}")]
    Transport {
        /// HTTP method.
        method: &'static str,
        /// Request path.
        path: String,
        /// The socket path or server URL.
        endpoint: String,
        /// What went wrong.
        detail: String,
    },
    /// A 2xx reply whose body did not decode as the expected type.
    #[error("cannot decode the reply to {method} {path}: {source}")]
    Decode {
        /// HTTP method.
        method: &'static str,
        /// Request path.
        path: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The `--server` URL is not `http://HOST:PORT`.
    #[error("invalid server URL {url:?}: {reason}")]
    BadServerUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}
