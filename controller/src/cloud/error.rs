//! `cloud::CloudError`: how a DigitalOcean call failed, classified from the status and the
//! `{id, message, request_id}` body, with a [`RetryHint`] for the work queue.
//!
//! Classification is pure ([`CloudError::from_response`]); the client only adds context such
//! as "this 422 was a pending event on droplet 42".

use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;

/// What the caller (the work queue) should do about an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryHint {
    /// Try again after the usual backoff.
    Transient,
    /// Try again, but not before this delay.
    After(Duration),
    /// Retrying the same call cannot help.
    Permanent,
}

/// The error body DigitalOcean sends: `{"id": "not_found", "message": "...", "request_id": "..."}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct ApiErrorBody {
    /// A short code such as `unprocessable_entity`.
    #[serde(default)]
    pub id: String,
    /// A sentence from DigitalOcean.
    #[serde(default)]
    pub message: String,
    /// Quote this in a support ticket.
    #[serde(default)]
    pub request_id: Option<String>,
}

impl ApiErrorBody {
    /// Parses an error body; a body that is not the documented shape (an HTML error page from
    /// a proxy, say) becomes a message holding its first 200 characters.
    #[must_use]
    pub fn parse(body: &[u8]) -> Self {
        serde_json::from_slice(body).unwrap_or_else(|_| {
            let text = String::from_utf8_lossy(body);
            Self {
                id: String::new(),
                message: text.chars().take(200).collect(),
                request_id: None,
            }
        })
    }
}

fn rid(request_id: &Option<String>) -> String {
    request_id
        .as_deref()
        .map(|r| format!(" (request id {r})"))
        .unwrap_or_default()
}

/// How a DigitalOcean API call failed. `op` is the call, e.g. `GET /v2/droplets/42`.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// 401: the token is wrong, revoked or expired.
    #[error("DigitalOcean rejected the API token (401 Unauthorized) on {op}: check DIGITALOCEAN_TOKEN or --do-token-file; {message}{}", rid(.request_id))]
    Unauthorized {
        /// The call.
        op: String,
        /// DigitalOcean's message.
        message: String,
        /// DigitalOcean's request id.
        request_id: Option<String>,
    },
    /// 403: the token is valid but lacks a scope.
    #[error("DigitalOcean refused {op} (403 Forbidden): the API token lacks a scope this call needs; {message}{}", rid(.request_id))]
    Forbidden {
        /// The call.
        op: String,
        /// DigitalOcean's message.
        message: String,
        /// DigitalOcean's request id.
        request_id: Option<String>,
    },
    /// 404 where the caller needed the object to exist.
    #[error("{what} was not found on DigitalOcean ({op})")]
    NotFound {
        /// The missing object, e.g. `droplet 42`.
        what: String,
        /// The call.
        op: String,
    },
    /// 422 "pending event": the droplet is still busy with another action.
    #[error("droplet {droplet} already has a pending action on DigitalOcean; wait for it to finish before starting another")]
    PendingEvent {
        /// The busy droplet.
        droplet: u64,
    },
    /// 422 from a load balancer that selects its droplets by tag, so members cannot be set by id.
    #[error("load balancer {lb} selects its droplets by tag{}: add or remove the tag on the droplets instead of changing members by id", .tag.as_deref().map(|t| format!(" {t:?}")).unwrap_or_default())]
    TagBasedBalancer {
        /// The balancer's id.
        lb: String,
        /// Its tag, if it could be read.
        tag: Option<String>,
    },
    /// 422 for any other reason: the request itself is wrong.
    #[error("DigitalOcean refused {op} (422 {id}): {message}{}", rid(.request_id))]
    Unprocessable {
        /// The call.
        op: String,
        /// DigitalOcean's error id.
        id: String,
        /// DigitalOcean's message.
        message: String,
        /// DigitalOcean's request id.
        request_id: Option<String>,
    },
    /// Another 4xx (400, 409, …).
    #[error("DigitalOcean refused {op} ({status} {id}): {message}{}", rid(.request_id))]
    Rejected {
        /// The call.
        op: String,
        /// The HTTP status.
        status: u16,
        /// DigitalOcean's error id.
        id: String,
        /// DigitalOcean's message.
        message: String,
        /// DigitalOcean's request id.
        request_id: Option<String>,
    },
    /// 429: DigitalOcean's rate limit was hit.
    #[error("DigitalOcean rate limit hit on {op}; retry after {}", humantime::format_duration(*.retry_after))]
    RateLimited {
        /// The call.
        op: String,
        /// From `retry-after` or `ratelimit-reset`, or a default.
        retry_after: Duration,
    },
    /// 5xx: a DigitalOcean-side failure.
    #[error("DigitalOcean failed {op} ({status} {id}): {message}{}", rid(.request_id))]
    Server {
        /// The call.
        op: String,
        /// The HTTP status.
        status: u16,
        /// DigitalOcean's error id.
        id: String,
        /// DigitalOcean's message.
        message: String,
        /// DigitalOcean's request id.
        request_id: Option<String>,
    },
    /// The request never got an answer: connection refused or reset, DNS, TLS, timeout.
    #[error("could not reach DigitalOcean for {op}")]
    Transport {
        /// The call.
        op: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// A wait or a call (with its retries) ran out of time.
    #[error("timed out after {} waiting for {what}{}", humantime::format_duration(*.after), .last.as_ref().map(|e| format!("; last error: {e}")).unwrap_or_default())]
    Timeout {
        /// What was awaited.
        what: String,
        /// The budget.
        after: Duration,
        /// The last error seen before the deadline, if any.
        last: Option<Box<CloudError>>,
    },
    /// A 2xx body did not have the documented shape.
    #[error("could not decode DigitalOcean's answer to {what}")]
    Decode {
        /// The call.
        what: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The client-side request budget (or the server's hourly quota) has no room before the
    /// caller's deadline.
    #[error("DigitalOcean request budget exhausted for {op}: next slot in {}", humantime::format_duration(*.wait))]
    BudgetExhausted {
        /// The call.
        op: String,
        /// How long until a request may be sent.
        wait: Duration,
    },
    /// A DigitalOcean action finished with status `errored`.
    #[error("DigitalOcean action {action} ({kind}) on {resource} errored")]
    ActionFailed {
        /// The action id.
        action: u64,
        /// The action type, e.g. `snapshot`.
        kind: String,
        /// The resource, e.g. `droplet 42`.
        resource: String,
    },
    /// The configured base URL or a pagination link could not be used.
    #[error("bad DigitalOcean URL {url:?}: {reason}")]
    Url {
        /// The offending URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The HTTP client could not be built (TLS backend setup).
    #[error("could not build the DigitalOcean HTTP client")]
    Client {
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
}

/// 429 without a usable `retry-after` or `ratelimit-reset`: DigitalOcean's limits refill per
/// minute, so a minute is the longest a wait could need (clamped further by the backoff).
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);

impl CloudError {
    /// Classifies a non-2xx answer. `retry_after` is what the headers said (see
    /// `rate_limit::retry_after`); `what` names the object for a 404.
    #[must_use]
    pub fn from_response(
        op: &str,
        what: &str,
        status: StatusCode,
        body: &[u8],
        retry_after: Option<Duration>,
    ) -> Self {
        let ApiErrorBody {
            id,
            message,
            request_id,
        } = ApiErrorBody::parse(body);
        let op = op.to_owned();
        match status.as_u16() {
            401 => Self::Unauthorized {
                op,
                message,
                request_id,
            },
            403 => Self::Forbidden {
                op,
                message,
                request_id,
            },
            404 => Self::NotFound {
                what: what.to_owned(),
                op,
            },
            422 => Self::Unprocessable {
                op,
                id,
                message,
                request_id,
            },
            429 => Self::RateLimited {
                op,
                retry_after: retry_after.unwrap_or(DEFAULT_RETRY_AFTER),
            },
            s @ 500..=599 => Self::Server {
                op,
                status: s,
                id,
                message,
                request_id,
            },
            s => Self::Rejected {
                op,
                status: s,
                id,
                message,
                request_id,
            },
        }
    }

    /// Whether the same call may succeed later.
    #[must_use]
    pub fn retry_hint(&self) -> RetryHint {
        match self {
            Self::RateLimited { retry_after, .. } => RetryHint::After(*retry_after),
            Self::BudgetExhausted { wait, .. } => RetryHint::After(*wait),
            // DigitalOcean finishes most droplet actions within a minute or two.
            Self::PendingEvent { .. } => RetryHint::After(Duration::from_secs(10)),
            Self::Server { .. } | Self::Transport { .. } | Self::Timeout { .. } => {
                RetryHint::Transient
            }
            Self::Unauthorized { .. }
            | Self::Forbidden { .. }
            | Self::NotFound { .. }
            | Self::TagBasedBalancer { .. }
            | Self::Unprocessable { .. }
            | Self::Rejected { .. }
            | Self::Decode { .. }
            | Self::ActionFailed { .. }
            | Self::Url { .. }
            | Self::Client { .. } => RetryHint::Permanent,
        }
    }

    /// A 422 to a droplet action that says "pending event" becomes [`CloudError::PendingEvent`].
    #[must_use]
    pub fn into_pending_event(self, droplet: u64) -> Self {
        match self {
            Self::Unprocessable { ref message, .. }
                if message.to_ascii_lowercase().contains("pending event") =>
            {
                Self::PendingEvent { droplet }
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(status: u16, body: &str) -> CloudError {
        CloudError::from_response(
            "GET /v2/droplets/7",
            "droplet 7",
            StatusCode::from_u16(status).unwrap(),
            body.as_bytes(),
            None,
        )
    }

    #[test]
    fn error_bodies_are_parsed_into_id_message_and_request_id() {
        let b = ApiErrorBody::parse(br#"{"id":"not_found","message":"gone","request_id":"r-1"}"#);
        assert_eq!(b.id, "not_found");
        assert_eq!(b.message, "gone");
        assert_eq!(b.request_id.as_deref(), Some("r-1"));
        let b = ApiErrorBody::parse(b"<html>bad gateway</html>");
        assert_eq!(b.message, "<html>bad gateway</html>");
        assert!(b.request_id.is_none());
    }

    #[test]
    fn statuses_map_to_variants_with_the_right_retry_hint() {
        let e = classify(
            401,
            r#"{"id":"unauthorized","message":"Unable to authenticate you"}"#,
        );
        assert!(e.to_string().contains("DIGITALOCEAN_TOKEN"), "{e}");
        assert_eq!(e.retry_hint(), RetryHint::Permanent);
        assert!(
            matches!(classify(404, "{}"), CloudError::NotFound { ref what, .. } if what == "droplet 7")
        );
        let e = classify(
            503,
            r#"{"id":"server_error","message":"oops","request_id":"abc"}"#,
        );
        assert!(e.to_string().contains("request id abc"), "{e}");
        assert_eq!(e.retry_hint(), RetryHint::Transient);
        assert_eq!(
            classify(429, "{}").retry_hint(),
            RetryHint::After(DEFAULT_RETRY_AFTER)
        );
        assert!(matches!(
            classify(400, "{}"),
            CloudError::Rejected { status: 400, .. }
        ));
    }

    #[test]
    fn a_422_pending_event_is_recognised_and_other_422s_are_not() {
        let pending = classify(
            422,
            r#"{"id":"unprocessable_entity","message":"Droplet already has a pending event."}"#,
        )
        .into_pending_event(7);
        assert!(matches!(pending, CloudError::PendingEvent { droplet: 7 }));
        assert!(matches!(pending.retry_hint(), RetryHint::After(_)));
        let other = classify(422, r#"{"id":"unprocessable_entity","message":"bad size"}"#)
            .into_pending_event(7);
        assert!(matches!(other, CloudError::Unprocessable { .. }));
    }
}
