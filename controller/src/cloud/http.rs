//! The HTTP edge of the DigitalOcean client: the tower stack every request goes through
//! (transport, then the rate limiter), one place that sends a request and classifies the
//! answer, and one place that retries it with `crate::retry`.
//!
//! Nothing here knows about droplets; `client.rs` says what to send and what an answer means.

use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Method, Url};
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};

use crate::retry::{retry, Backoff, Deadline, RetryError};

use super::error::CloudError;
use super::rate_limit::{retry_after, unix_now, RateLimitLayer, RateLimiter};
use super::retry_policy::{classify, CallKind};
use super::token::CloudToken;

type HttpService = BoxCloneSyncService<reqwest::Request, reqwest::Response, CloudError>;

/// One request to make: what, where, and how safe it is to repeat.
#[derive(Debug)]
pub(crate) struct Call {
    pub method: Method,
    pub url: Url,
    /// Already-serialized JSON. Never logged: a create's body holds the user data.
    pub body: Option<Vec<u8>>,
    /// The object concerned, for a 404 (`droplet 42`).
    pub what: String,
    pub kind: CallKind,
}

impl Call {
    pub fn op(&self) -> String {
        format!("{} {}", self.method, self.url.path())
    }
}

/// A successful (2xx) answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub body: Vec<u8>,
}

/// The configured HTTP stack plus the retry settings.
#[derive(Clone)]
pub(crate) struct Http {
    pub base: Url,
    token: CloudToken,
    builder: reqwest::Client,
    service: HttpService,
    pub limiter: RateLimiter,
    backoff: Backoff,
    max_attempts: u32,
    call_timeout: Duration,
}

pub(crate) struct HttpSettings {
    pub base: Url,
    pub token: CloudToken,
    pub per_minute: u32,
    pub per_hour: u32,
    pub backoff: Backoff,
    pub request_timeout: Duration,
    pub call_timeout: Duration,
    pub max_attempts: u32,
}

impl Http {
    pub fn new(s: HttpSettings) -> Result<Self, CloudError> {
        let client = reqwest::Client::builder()
            .timeout(s.request_timeout)
            .connect_timeout(s.request_timeout)
            .user_agent(concat!("vmctld/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| CloudError::Client { source })?;
        let limiter = RateLimiter::new(s.per_minute, s.per_hour, s.call_timeout);
        let transport = client
            .clone()
            .map_err(|source: reqwest::Error| CloudError::Transport {
                op: source
                    .url()
                    .map(|u| u.path().to_owned())
                    .unwrap_or_default(),
                source,
            });
        let service = ServiceBuilder::new()
            .layer(RateLimitLayer::new(limiter.clone()))
            .service(transport);
        Ok(Self {
            base: s.base,
            token: s.token,
            builder: client,
            service: BoxCloneSyncService::new(service),
            limiter,
            backoff: s.backoff,
            max_attempts: s.max_attempts.max(1),
            call_timeout: s.call_timeout,
        })
    }

    /// `base` + `/v2/<segments>?<query>`, each segment percent-encoded.
    pub fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.clear().push("v2").extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// The deadline for one call with all its retries.
    pub fn deadline(&self, call: &Call) -> Deadline {
        Deadline::after(format!("DigitalOcean {}", call.op()), self.call_timeout)
    }

    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    pub fn backoff(&self) -> Backoff {
        self.backoff
    }

    /// Sends `call` once and classifies the answer.
    pub async fn send_once(&self, call: &Call, attempt: u32) -> Result<Answer, CloudError> {
        let op = call.op();
        let mut builder = self
            .builder
            .request(call.method.clone(), call.url.clone())
            .bearer_auth(self.token.expose())
            .header(ACCEPT, "application/json");
        if let Some(body) = &call.body {
            builder = builder
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let request = builder.build().map_err(|source| CloudError::Transport {
            op: op.clone(),
            source,
        })?;
        let response = self
            .service
            .clone()
            .oneshot(request)
            .await
            .map_err(|e| match e {
                CloudError::Transport { source, .. } => CloudError::Transport {
                    op: op.clone(),
                    source,
                },
                other => other,
            });
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(op = %op, attempt, error = %e, "DigitalOcean request failed");
                return Err(e);
            }
        };
        let status = response.status();
        let wait = retry_after(response.headers(), unix_now());
        let body = response
            .bytes()
            .await
            .map_err(|source| CloudError::Transport {
                op: op.clone(),
                source,
            })?
            .to_vec();
        if status.is_success() {
            tracing::debug!(op = %op, attempt, status = status.as_u16(), "DigitalOcean request finished");
            return Ok(Answer { body });
        }
        let err = CloudError::from_response(&op, &call.what, status, &body, wait);
        let request_id = super::error::ApiErrorBody::parse(&body).request_id;
        tracing::debug!(
            op = %op,
            attempt,
            status = status.as_u16(),
            request_id = request_id.as_deref().unwrap_or(""),
            "DigitalOcean request refused"
        );
        Err(err)
    }

    /// Sends `call`, retrying as its [`CallKind`] allows, within the call's deadline.
    pub async fn execute(&self, call: &Call) -> Result<Answer, CloudError> {
        let deadline = self.deadline(call);
        let max = self.max_attempts;
        let outcome = retry(self.backoff, &deadline, |attempt| async move {
            self.send_once(call, attempt)
                .await
                .map_err(|e| classify(call.kind, attempt, max, e))
        })
        .await;
        outcome.map_err(from_retry_error)
    }
}

/// Unwraps `crate::retry`'s error: a final error is returned as itself (so callers can match
/// `NotFound` and friends); a deadline becomes [`CloudError::Timeout`].
pub(crate) fn from_retry_error(e: RetryError<CloudError>) -> CloudError {
    match e {
        RetryError::Permanent { error, .. } => error,
        RetryError::TimedOut { deadline, last, .. } => CloudError::Timeout {
            what: deadline.what,
            after: deadline.after,
            last: last.map(Box::new),
        },
    }
}

/// Whether an error is the 404 that some calls treat as an answer.
pub(crate) fn is_not_found(e: &CloudError) -> bool {
    matches!(e, CloudError::NotFound { .. })
}
