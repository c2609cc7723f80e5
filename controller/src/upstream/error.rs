//! `upstream::UpstreamError`: how reading the release feed (GitHub, Mastodon's update-check
//! API, or a feed file) failed, with a retry hint for the work queue. Messages name the call
//! or the file and never carry the token.

use std::time::Duration;

use vmctl_protocol::Timestamp;

/// How an upstream call failed. `op` is the call, e.g. `GET /repos/mastodon/mastodon/releases`.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// A configured base URL or a link from the server is unusable.
    #[error("invalid upstream URL {url:?}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client could not be built (TLS setup).
    #[error("building the upstream HTTP client failed")]
    Client {
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The connection failed or broke.
    #[error("{op} failed: {source}")]
    Transport {
        /// The call.
        op: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// One request got no complete answer in time.
    #[error("{op} got no answer within {}", humantime::format_duration(*after))]
    RequestTimeout {
        /// The call.
        op: String,
        /// The per-request limit.
        after: Duration,
    },
    /// The call with all its retries ran out of time.
    #[error("timed out after {} waiting for {what}{}", humantime::format_duration(*after), .last.as_ref().map(|e| format!("; last error: {e}")).unwrap_or_default())]
    Timeout {
        /// What was awaited.
        what: String,
        /// The budget.
        after: Duration,
        /// The last error seen.
        last: Option<Box<UpstreamError>>,
    },
    /// 401: the token is wrong or expired.
    #[error("{op} was refused (401 Unauthorized): check the GitHub token")]
    Unauthorized {
        /// The call.
        op: String,
    },
    /// 404 where the caller needed the object to exist.
    #[error("{what} was not found ({op})")]
    NotFound {
        /// The missing object, e.g. `tag v4.3.1`.
        what: String,
        /// The call.
        op: String,
    },
    /// The API rate limit is used up for longer than vmctld is willing to wait.
    #[error("the GitHub API rate limit is used up on {op}; it resets {}, later than the {} vmctld waits: configure a token for a higher limit", .reset.map_or_else(|| "at an unknown time".to_owned(), |t| format!("at {}", t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))), humantime::format_duration(*max_wait))]
    RateLimited {
        /// The call.
        op: String,
        /// When the server said the limit resets.
        reset: Option<Timestamp>,
        /// The longest wait the client accepts.
        max_wait: Duration,
    },
    /// A 5xx answer.
    #[error("{op} failed on the server ({status}): {message}")]
    Server {
        /// The call.
        op: String,
        /// HTTP status.
        status: u16,
        /// The start of the body.
        message: String,
    },
    /// Another 4xx answer.
    #[error("{op} was refused ({status}): {message}")]
    Rejected {
        /// The call.
        op: String,
        /// HTTP status.
        status: u16,
        /// The start of the body.
        message: String,
    },
    /// The answer (or the feed file) is not the expected JSON.
    #[error("{what} is not a valid release feed: {source}")]
    Decode {
        /// The call or the file.
        what: String,
        /// The JSON error, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// The answer is larger than any real feed page.
    #[error("{op} answered more than {limit} bytes; refusing it")]
    TooLarge {
        /// The call.
        op: String,
        /// The limit.
        limit: usize,
    },
    /// The feed holds no releases at all, which upstream never does: no rollout starts.
    #[error("{what} lists no releases, so no rollout starts")]
    EmptyFeed {
        /// The call or the file.
        what: String,
    },
    /// A tag that is not `vMAJOR.MINOR.PATCH[-pre]` (shell characters, a path, …).
    #[error(
        "refusing tag {tag:?}: not a release tag (expected vMAJOR.MINOR.PATCH, e.g. \"v4.3.1\")"
    )]
    InvalidTag {
        /// The tag as given.
        tag: String,
    },
    /// The tag's ref does not lead to a commit.
    #[error("tag {tag} does not point at a commit: {reason}")]
    BadTagRef {
        /// The tag.
        tag: String,
        /// What was found instead.
        reason: String,
    },
    /// Pagination links loop or never end.
    #[error("following the pages of {what}: {reason}")]
    Pagination {
        /// The list.
        what: String,
        /// What went wrong.
        reason: String,
    },
}

/// What the caller (the work queue) should do about an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryHint {
    /// Try again after the usual backoff.
    Transient,
    /// Retrying the same call cannot help until something changes (config, token, upstream).
    Permanent,
}

impl UpstreamError {
    /// Whether the work queue should retry.
    #[must_use]
    pub fn retry_hint(&self) -> RetryHint {
        match self {
            UpstreamError::Transport { .. }
            | UpstreamError::RequestTimeout { .. }
            | UpstreamError::Timeout { .. }
            | UpstreamError::Server { .. }
            | UpstreamError::RateLimited { .. }
            | UpstreamError::EmptyFeed { .. }
            | UpstreamError::Decode { .. } => RetryHint::Transient,
            UpstreamError::Url { .. }
            | UpstreamError::Client { .. }
            | UpstreamError::Unauthorized { .. }
            | UpstreamError::NotFound { .. }
            | UpstreamError::Rejected { .. }
            | UpstreamError::TooLarge { .. }
            | UpstreamError::InvalidTag { .. }
            | UpstreamError::BadTagRef { .. }
            | UpstreamError::Pagination { .. } => RetryHint::Permanent,
        }
    }
}
