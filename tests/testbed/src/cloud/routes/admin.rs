//! `/_sim` admin routes for other processes (dev mode, tests driving the binary): kill,
//! revive or power off a droplet, set faults, read the request log and the droplets.
//! No token: they exist only on the simulator's own loopback listener.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use super::Sim;
use crate::cloud::api_error::parse_id;
use crate::cloud::{error_chain, CloudError, Faults, Shared, Simulator};

/// The admin routes.
pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_sim/droplets", get(droplets))
        .route("/_sim/droplets/{id}/hang", post(hang))
        .route("/_sim/droplets/{id}/revive", post(revive))
        .route("/_sim/droplets/{id}/power_off", post(power_off))
        .route("/_sim/faults", get(get_faults).put(put_faults))
        .route("/_sim/requests", get(requests))
}

async fn droplets(State(shared): Sim) -> Response {
    Json(Simulator { shared }.droplets()).into_response()
}

async fn hang(state: Sim, Path(id): Path<String>) -> Response {
    on_droplet(state, &id, |sim, id| sim.hang_droplet(id)).await
}

async fn revive(state: Sim, Path(id): Path<String>) -> Response {
    on_droplet(state, &id, |sim, id| sim.revive_droplet(id)).await
}

async fn power_off(state: Sim, Path(id): Path<String>) -> Response {
    on_droplet(state, &id, |sim, id| sim.power_off(id)).await
}

/// Runs a blocking droplet control; 204, or 404/409/500 with `{"error": "..."}`.
async fn on_droplet(
    State(shared): Sim,
    id: &str,
    op: fn(&Simulator, u64) -> Result<(), CloudError>,
) -> Response {
    let Ok(id) = parse_id(id) else {
        return error(StatusCode::NOT_FOUND, format!("no droplet {id}"));
    };
    let simulator = Simulator { shared };
    let result = tokio::task::spawn_blocking(move || op(&simulator, id)).await;
    match result {
        Ok(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(e @ CloudError::UnknownDroplet { .. })) => {
            error(StatusCode::NOT_FOUND, error_chain(&e))
        }
        Ok(Err(e @ CloudError::NotProvisioned { .. })) => {
            error(StatusCode::CONFLICT, error_chain(&e))
        }
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, error_chain(&e)),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

async fn get_faults(State(shared): Sim) -> Response {
    Json(Simulator { shared }.faults()).into_response()
}

async fn put_faults(State(shared): Sim, Json(faults): Json<Faults>) -> Response {
    Simulator { shared }.set_faults(faults);
    StatusCode::NO_CONTENT.into_response()
}

async fn requests(State(shared): Sim) -> Response {
    Json(Simulator { shared }.request_log()).into_response()
}
