//! The HTTP surface: `/v2` routes (one file per resource family) behind one gate that adds
//! latency, checks the token, applies forced 429s, the rate budget and the error rate, adds
//! the `ratelimit-*` headers and logs the request; and the unauthenticated `/_sim` admin
//! routes for other processes (dev mode).

pub mod account;
mod actions;
mod admin;
mod droplets;
pub mod load_balancers;
mod snapshots;

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::Utc;

use super::api_error::ApiError;
use super::faults::Verdict;
use super::rate_limit::{Admission, RateHeaders};
use super::{lock, LoggedRequest, Shared};

type Sim = State<Arc<Shared>>;

/// The whole app.
pub fn router(shared: Arc<Shared>) -> Router {
    let v2 = Router::new()
        .route("/v2/account", get(account::get_account))
        .route(
            "/v2/account/keys",
            get(account::list_keys).post(account::create_key),
        )
        .route("/v2/droplets", get(droplets::list).post(droplets::create))
        .route(
            "/v2/droplets/{droplet_id}",
            get(droplets::get).delete(droplets::delete),
        )
        .route(
            "/v2/droplets/{droplet_id}/actions",
            get(actions::list_for_droplet).post(actions::create),
        )
        .route(
            "/v2/droplets/{droplet_id}/actions/{action_id}",
            get(actions::get_for_droplet),
        )
        .route("/v2/actions/{action_id}", get(actions::get))
        .route("/v2/snapshots", get(snapshots::list))
        .route(
            "/v2/snapshots/{snapshot_id}",
            get(snapshots::get).delete(snapshots::delete),
        )
        .route("/v2/images/{image_id}", get(snapshots::get_image))
        .route(
            "/v2/load_balancers",
            get(load_balancers::list).post(load_balancers::create),
        )
        .route(
            "/v2/load_balancers/{lb_id}",
            get(load_balancers::get).delete(load_balancers::delete),
        )
        .route(
            "/v2/load_balancers/{lb_id}/droplets",
            post(load_balancers::add_droplets).delete(load_balancers::remove_droplets),
        )
        .fallback(|| async { ApiError::not_found() })
        .layer(middleware::from_fn_with_state(Arc::clone(&shared), gate));
    Router::new()
        .merge(admin::router())
        .merge(v2)
        .with_state(shared)
}

/// Every `/v2` request passes here.
async fn gate(State(shared): Sim, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let at = Utc::now();
    let latency = lock(&shared.faults).faults().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut response = admit(&shared, request, next).await;
    if response.status() == StatusCode::NO_CONTENT {
        // The spec lists a content-type even on 204s, as the real API sends one.
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    lock(&shared.log).push(LoggedRequest {
        method,
        path,
        query,
        status: response.status().as_u16(),
        at,
    });
    response
}

async fn admit(shared: &Arc<Shared>, request: Request, next: Next) -> Response {
    let now = Instant::now();
    let now_unix = unix_now();
    if !authorized(request.headers(), &shared.config.token) {
        let headers = lock(&shared.limiter).peek(now, now_unix);
        return with_rate_headers(ApiError::unauthorized().into_response(), headers);
    }
    let verdict = lock(&shared.faults).next_verdict();
    if verdict == Verdict::TooManyRequests {
        let headers = lock(&shared.limiter).peek(now, now_unix);
        return too_many(headers, 1);
    }
    let headers = match lock(&shared.limiter).admit(now, now_unix) {
        Admission::Allowed(headers) => headers,
        Admission::Limited {
            headers,
            retry_after_secs,
        } => return too_many(headers, retry_after_secs),
    };
    if verdict == Verdict::ServerError {
        let error = ApiError::server_error("Server was unable to give you a response.");
        return with_rate_headers(error.into_response(), headers);
    }
    with_rate_headers(next.run(request).await, headers)
}

fn authorized(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| given.trim() == token)
}

fn too_many(headers: RateHeaders, retry_after_secs: u64) -> Response {
    let mut response = with_rate_headers(ApiError::too_many_requests().into_response(), headers);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    response
}

fn with_rate_headers(mut response: Response, rate: RateHeaders) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        HeaderName::from_static("ratelimit-limit"),
        HeaderValue::from(rate.limit),
    );
    headers.insert(
        HeaderName::from_static("ratelimit-remaining"),
        HeaderValue::from(rate.remaining),
    );
    headers.insert(
        HeaderName::from_static("ratelimit-reset"),
        HeaderValue::from(rate.reset),
    );
    response
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A JSON answer with a status.
pub(crate) fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}
