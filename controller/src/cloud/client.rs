//! [`DoClient`]: the DigitalOcean API v2 calls vmctld makes, over the stack in `http.rs`.
//!
//! This file says what each call sends and what its answers mean (404 on a delete is
//! success, 422 on a droplet action is a pending event, …). Rate limits and retries are not
//! here: they live in `rate_limit.rs` and `retry_policy.rs` and apply to every call.

use std::time::Duration;

use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::retry::{retry, Backoff, Deadline, Retry};

use super::error::CloudError;
use super::http::{from_retry_error, is_not_found, Call, Http, HttpSettings};
use super::pagination::{next_url, parse_page, PageCursor, PER_PAGE};
use super::rate_limit::RateLimitSnapshot;
use super::retry_policy::{classify, plan_create, CallKind, CreateStep};
use super::token::CloudToken;
use super::types::{
    Account, AccountEnvelope, Action, ActionEnvelope, ActionStatus, CreateDroplet, Droplet,
    DropletAction, DropletEnvelope, LbDropletsBody, LoadBalancer, LoadBalancerEnvelope, Snapshot,
};

/// The real API.
pub const DEFAULT_BASE_URL: &str = "https://api.digitalocean.com";

/// Settings for [`DoClient`]. Build with [`CloudConfig::new`] and adjust fields.
#[derive(Clone, Debug)]
pub struct CloudConfig {
    /// Scheme, host and port only; default [`DEFAULT_BASE_URL`].
    pub base_url: String,
    /// The API token.
    pub token: CloudToken,
    /// Client-side budget per rolling minute: 240, under DigitalOcean's 250.
    pub per_minute: u32,
    /// Client-side budget per rolling hour: 4,800, under DigitalOcean's 5,000.
    pub per_hour: u32,
    /// Backoff between retries of one call.
    pub retry: Backoff,
    /// Time limit for one HTTP exchange.
    pub request_timeout: Duration,
    /// Time limit for one call including its retries and any wait for the budget.
    pub call_timeout: Duration,
    /// Attempts per call, the first included.
    pub max_attempts: u32,
}

impl CloudConfig {
    /// Defaults for the real API.
    #[must_use]
    pub fn new(token: CloudToken) -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            token,
            per_minute: 240,
            per_hour: 4_800,
            // 200 ms doubles to 10 s by the 7th retry; a fifth of it is jitter so that many
            // reconcilers retrying together spread out.
            retry: Backoff::new_unchecked(Duration::from_millis(200), Duration::from_secs(10), 0.2),
            request_timeout: Duration::from_secs(30),
            call_timeout: Duration::from_secs(120),
            max_attempts: 5,
        }
    }
}

/// The DigitalOcean API v2 client. Cheap to clone; clones share the rate limiter.
#[derive(Clone)]
pub struct DoClient {
    http: Http,
}

impl std::fmt::Debug for DoClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DoClient")
            .field("base", &self.http.base.as_str())
            .finish_non_exhaustive()
    }
}

fn decode<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, CloudError> {
    serde_json::from_slice(body).map_err(|source| CloudError::Decode {
        what: what.to_owned(),
        source,
    })
}

fn encode<T: Serialize>(body: &T, what: &str) -> Result<Vec<u8>, CloudError> {
    serde_json::to_vec(body).map_err(|source| CloudError::Decode {
        what: format!("the request body of {what}"),
        source,
    })
}

fn parse_base(base: &str) -> Result<Url, CloudError> {
    let bad = |reason: &str| CloudError::Url {
        url: base.to_owned(),
        reason: reason.to_owned(),
    };
    let url = Url::parse(base).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.path() != "/" || url.query().is_some() {
        return Err(bad(
            "give only scheme, host and port (the client adds /v2/...)",
        ));
    }
    Ok(url)
}

impl DoClient {
    /// Builds the client. Sends nothing; call [`DoClient::account`] to check the token.
    ///
    /// # Errors
    /// [`CloudError::Url`] for a bad base URL, [`CloudError::Client`] if TLS setup fails.
    pub fn new(config: CloudConfig) -> Result<Self, CloudError> {
        let http = Http::new(HttpSettings {
            base: parse_base(&config.base_url)?,
            token: config.token,
            per_minute: config.per_minute,
            per_hour: config.per_hour,
            backoff: config.retry,
            request_timeout: config.request_timeout,
            call_timeout: config.call_timeout,
            max_attempts: config.max_attempts,
        })?;
        Ok(Self { http })
    }

    fn call(&self, method: Method, url: Url, what: impl Into<String>, kind: CallKind) -> Call {
        Call {
            method,
            url,
            body: None,
            what: what.into(),
            kind,
        }
    }

    async fn get<T: DeserializeOwned>(&self, url: Url, what: String) -> Result<T, CloudError> {
        let call = self.call(Method::GET, url, what, CallKind::Idempotent);
        let answer = self.http.execute(&call).await?;
        decode(&answer.body, &call.op())
    }

    /// Reads every page of a list, following `links.pages.next`.
    async fn list<T: DeserializeOwned>(
        &self,
        first: Url,
        key: &str,
        what: &str,
    ) -> Result<Vec<T>, CloudError> {
        let mut items = Vec::new();
        let mut cursor = PageCursor::default();
        let mut url = first;
        loop {
            cursor.visit(&url)?;
            let call = self.call(Method::GET, url, what, CallKind::Idempotent);
            let answer = self.http.execute(&call).await?;
            let page = parse_page::<T>(&answer.body, key, &call.op())?;
            items.extend(page.items);
            match page.next {
                Some(next) => url = next_url(&self.http.base, &next)?,
                None => return Ok(items),
            }
        }
    }

    /// `GET /v2/account`: checks the token.
    ///
    /// # Errors
    /// [`CloudError::Unauthorized`] for a bad token; others as any call.
    pub async fn account(&self) -> Result<Account, CloudError> {
        let env: AccountEnvelope = self
            .get(self.http.url(&["account"], &[]), "the account".into())
            .await?;
        Ok(env.account)
    }

    /// `POST /v2/droplets`, idempotent by name: every attempt first lists the request's first
    /// tag (or, without tags, filters by name) and returns a droplet that already has the
    /// name, so a create that DigitalOcean carried out before failing is never repeated.
    ///
    /// # Errors
    /// As any call; a 5xx or lost connection is retried after a fresh lookup.
    pub async fn create_droplet(&self, req: &CreateDroplet) -> Result<Droplet, CloudError> {
        let mut call = self.call(
            Method::POST,
            self.http.url(&["droplets"], &[]),
            format!("droplet {}", req.name),
            CallKind::Create,
        );
        call.body = Some(encode(req, &call.op())?);
        let deadline = self.http.deadline(&call);
        let max = self.http.max_attempts();
        let call = &call;
        let outcome = retry(self.http.backoff(), &deadline, |attempt| async move {
            // The lookup has already been retried on its own; if it still fails, stop rather
            // than risk a duplicate.
            let existing = self.find_droplet_by_name(req).await.map_err(Retry::Permanent)?;
            if let CreateStep::UseExisting(droplet) = plan_create(&req.name, existing) {
                if attempt > 1 {
                    tracing::info!(droplet = droplet.id, name = %req.name, "Found the droplet an earlier failed create had made");
                }
                return Ok(*droplet);
            }
            let answer = self
                .http
                .send_once(call, attempt)
                .await
                .map_err(|e| classify(CallKind::Create, attempt, max, e))?;
            let env: DropletEnvelope = decode(&answer.body, &call.op()).map_err(Retry::Permanent)?;
            Ok(env.droplet)
        })
        .await;
        outcome.map_err(from_retry_error)
    }

    async fn find_droplet_by_name(&self, req: &CreateDroplet) -> Result<Vec<Droplet>, CloudError> {
        match req.tags.first() {
            Some(tag) => self.list_droplets_by_tag(tag).await,
            None => {
                let url = self.http.url(
                    &["droplets"],
                    &[("name", &req.name), ("per_page", &PER_PAGE.to_string())],
                );
                self.list(url, "droplets", "droplets by name").await
            }
        }
    }

    /// `GET /v2/droplets/{id}`; `None` if it does not exist.
    ///
    /// # Errors
    /// As any call, except that 404 is `Ok(None)`.
    pub async fn get_droplet(&self, id: u64) -> Result<Option<Droplet>, CloudError> {
        let url = self.http.url(&["droplets", &id.to_string()], &[]);
        match self
            .get::<DropletEnvelope>(url, format!("droplet {id}"))
            .await
        {
            Ok(env) => Ok(Some(env.droplet)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /v2/droplets?tag_name=…`, every page.
    ///
    /// # Errors
    /// As any call.
    pub async fn list_droplets_by_tag(&self, tag: &str) -> Result<Vec<Droplet>, CloudError> {
        let url = self.http.url(
            &["droplets"],
            &[("tag_name", tag), ("per_page", &PER_PAGE.to_string())],
        );
        self.list(url, "droplets", &format!("droplets tagged {tag}"))
            .await
    }

    /// `DELETE /v2/droplets/{id}`; a droplet that is already gone counts as deleted.
    ///
    /// # Errors
    /// As any call, except 404.
    pub async fn delete_droplet(&self, id: u64) -> Result<(), CloudError> {
        let url = self.http.url(&["droplets", &id.to_string()], &[]);
        self.delete(url, format!("droplet {id}"), None).await
    }

    async fn delete(
        &self,
        url: Url,
        what: String,
        body: Option<Vec<u8>>,
    ) -> Result<(), CloudError> {
        let mut call = self.call(Method::DELETE, url, what, CallKind::Idempotent);
        call.body = body;
        match self.http.execute(&call).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `POST /v2/droplets/{id}/actions`. Not retried once it may have reached DigitalOcean:
    /// after a lost answer, look at the droplet's actions before sending it again.
    ///
    /// # Errors
    /// [`CloudError::PendingEvent`] while another action runs on the droplet; as any call.
    pub async fn droplet_action(
        &self,
        id: u64,
        action: DropletAction,
    ) -> Result<Action, CloudError> {
        let mut call = self.call(
            Method::POST,
            self.http
                .url(&["droplets", &id.to_string(), "actions"], &[]),
            format!("droplet {id}"),
            CallKind::Action,
        );
        call.body = Some(encode(&action, &call.op())?);
        let answer = self
            .http
            .execute(&call)
            .await
            .map_err(|e| e.into_pending_event(id))?;
        let env: ActionEnvelope = decode(&answer.body, &call.op())?;
        Ok(env.action)
    }

    /// `GET /v2/actions/{id}`.
    ///
    /// # Errors
    /// As any call; 404 is [`CloudError::NotFound`].
    pub async fn get_action(&self, id: u64) -> Result<Action, CloudError> {
        let env: ActionEnvelope = self
            .get(
                self.http.url(&["actions", &id.to_string()], &[]),
                format!("action {id}"),
            )
            .await?;
        Ok(env.action)
    }

    /// Polls an action every `poll` until it completes, errors, or `deadline` passes.
    ///
    /// # Errors
    /// [`CloudError::ActionFailed`] if it errored, [`CloudError::Timeout`] at the deadline.
    pub async fn wait_action(
        &self,
        id: u64,
        deadline: &Deadline,
        poll: Duration,
    ) -> Result<Action, CloudError> {
        let timeout = |last: Option<CloudError>| {
            let exceeded = deadline.exceeded();
            CloudError::Timeout {
                what: exceeded.what,
                after: exceeded.after,
                last: last.map(Box::new),
            }
        };
        loop {
            let action = match deadline.run(self.get_action(id)).await {
                Err(_) => return Err(timeout(None)),
                Ok(result) => result?,
            };
            match action.status {
                ActionStatus::Completed => return Ok(action),
                ActionStatus::Errored => {
                    return Err(CloudError::ActionFailed {
                        action: id,
                        kind: action.kind,
                        resource: match action.resource_id {
                            Some(r) => format!(
                                "{} {r}",
                                action.resource_type.as_deref().unwrap_or("resource")
                            ),
                            None => "an unknown resource".into(),
                        },
                    })
                }
                ActionStatus::InProgress | ActionStatus::Other(_) => {}
            }
            if deadline.sleep(poll).await.is_err() {
                return Err(timeout(None));
            }
        }
    }

    /// `GET /v2/snapshots?resource_type=droplet`, every page.
    ///
    /// # Errors
    /// As any call.
    pub async fn list_snapshots(&self) -> Result<Vec<Snapshot>, CloudError> {
        let url = self.http.url(
            &["snapshots"],
            &[
                ("resource_type", "droplet"),
                ("per_page", &PER_PAGE.to_string()),
            ],
        );
        self.list(url, "snapshots", "droplet snapshots").await
    }

    /// The newest droplet snapshot called `name`: how a snapshot action's result is found,
    /// since the action does not return the snapshot's id.
    ///
    /// # Errors
    /// As any call.
    pub async fn find_snapshot_by_name(&self, name: &str) -> Result<Option<Snapshot>, CloudError> {
        let snapshots = self.list_snapshots().await?;
        Ok(snapshots
            .into_iter()
            .filter(|s| s.name == name)
            .max_by_key(|s| s.created_at))
    }

    /// `DELETE /v2/snapshots/{id}`; one already gone counts as deleted.
    ///
    /// # Errors
    /// As any call, except 404.
    pub async fn delete_snapshot(&self, id: &str) -> Result<(), CloudError> {
        self.delete(
            self.http.url(&["snapshots", id], &[]),
            format!("snapshot {id}"),
            None,
        )
        .await
    }

    /// `GET /v2/load_balancers/{id}`.
    ///
    /// # Errors
    /// As any call; 404 is [`CloudError::NotFound`].
    pub async fn get_load_balancer(&self, lb: &str) -> Result<LoadBalancer, CloudError> {
        let env: LoadBalancerEnvelope = self
            .get(
                self.http.url(&["load_balancers", lb], &[]),
                format!("load balancer {lb}"),
            )
            .await?;
        Ok(env.load_balancer)
    }

    /// `POST /v2/load_balancers/{id}/droplets`.
    ///
    /// # Errors
    /// [`CloudError::TagBasedBalancer`] if the balancer picks members by tag; as any call.
    pub async fn lb_add_droplets(&self, lb: &str, ids: &[u64]) -> Result<(), CloudError> {
        self.lb_members(Method::POST, lb, ids).await
    }

    /// `DELETE /v2/load_balancers/{id}/droplets`.
    ///
    /// # Errors
    /// As [`DoClient::lb_add_droplets`].
    pub async fn lb_remove_droplets(&self, lb: &str, ids: &[u64]) -> Result<(), CloudError> {
        self.lb_members(Method::DELETE, lb, ids).await
    }

    async fn lb_members(&self, method: Method, lb: &str, ids: &[u64]) -> Result<(), CloudError> {
        let mut call = self.call(
            method,
            self.http.url(&["load_balancers", lb, "droplets"], &[]),
            format!("load balancer {lb}"),
            CallKind::Idempotent,
        );
        call.body = Some(encode(&LbDropletsBody { droplet_ids: ids }, &call.op())?);
        match self.http.execute(&call).await {
            Ok(_) => Ok(()),
            Err(CloudError::Unprocessable {
                op,
                id,
                message,
                request_id,
            }) => {
                // DigitalOcean answers 422 when members are set by id on a balancer that
                // selects them by tag. Ask the balancer rather than trust the message alone.
                let tag = self.get_load_balancer(lb).await.ok().and_then(|b| b.tag);
                if tag.is_some() || message.to_ascii_lowercase().contains("tag") {
                    Err(CloudError::TagBasedBalancer {
                        lb: lb.to_owned(),
                        tag,
                    })
                } else {
                    Err(CloudError::Unprocessable {
                        op,
                        id,
                        message,
                        request_id,
                    })
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The rate limiter's view, for status and metrics.
    #[must_use]
    pub fn rate_limit(&self) -> RateLimitSnapshot {
        self.http.limiter.snapshot()
    }

    /// Requests sent since start (every attempt counts).
    #[must_use]
    pub fn requests_sent(&self) -> u64 {
        self.http.limiter.requests_sent()
    }
}
