//! Droplet actions: `POST /v2/droplets/{id}/actions` (snapshot, power_off, power_on,
//! power_cycle, shutdown, reboot), one in progress per droplet; `GET /v2/actions/{id}`,
//! `GET /v2/droplets/{id}/actions[/{action_id}]`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use serde_json::{json, Value};

use super::{json, Sim};
use crate::cloud::api_error::{parse_id, parse_json, ApiError};
use crate::cloud::state::{ActionRecord, ActionStatus};
use crate::cloud::{lifecycle, lock, paging, shapes};

/// `POST /v2/droplets/{id}/actions`.
pub async fn create(
    State(shared): Sim,
    Path(droplet_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let droplet_id = parse_id(&droplet_id)?;
    let body = parse_json(&body)?;
    let kind = match body.get("type") {
        Some(Value::String(kind)) => kind.clone(),
        _ => return Err(ApiError::unprocessable("type is required.")),
    };
    if lifecycle::effect_of(&kind).is_none() {
        return Err(ApiError::unprocessable(format!(
            "The simulator does not support action type {kind:?}; it supports snapshot, \
             power_off, shutdown, power_on, power_cycle and reboot."
        )));
    }
    let snapshot_name = match body.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => Some(name.clone()),
        Some(_) => return Err(ApiError::unprocessable("name must be a string.")),
    };
    let action = {
        let mut world = lock(&shared.world);
        let droplet = world
            .droplets
            .get(&droplet_id)
            .ok_or_else(ApiError::not_found)?;
        // A droplet whose create failed never gets a running machine to act on.
        if droplet.pending_action.is_some() || !droplet.provisioned {
            return Err(ApiError::unprocessable(
                "Droplet already has a pending event.",
            ));
        }
        let region = droplet.region.clone();
        let id = world.ids.action();
        let action = ActionRecord {
            id,
            kind,
            status: ActionStatus::InProgress,
            started_at: Utc::now(),
            completed_at: None,
            droplet_id,
            region,
            snapshot_name,
        };
        world.actions.insert(id, action.clone());
        if let Some(droplet) = world.droplets.get_mut(&droplet_id) {
            droplet.pending_action = Some(id);
        }
        action
    };
    tokio::spawn(lifecycle::run_action(Arc::clone(&shared), action.id));
    Ok(json(
        StatusCode::CREATED,
        json!({ "action": shapes::action(&action) }),
    ))
}

/// `GET /v2/actions/{id}`.
pub async fn get(State(shared): Sim, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let world = lock(&shared.world);
    let action = world.actions.get(&id).ok_or_else(ApiError::not_found)?;
    Ok(json(
        StatusCode::OK,
        json!({ "action": shapes::action(action) }),
    ))
}

/// `GET /v2/droplets/{id}/actions/{action_id}`.
pub async fn get_for_droplet(
    State(shared): Sim,
    Path((droplet_id, action_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let droplet_id = parse_id(&droplet_id)?;
    let action_id = parse_id(&action_id)?;
    let world = lock(&shared.world);
    let action = world
        .actions
        .get(&action_id)
        .filter(|a| a.droplet_id == droplet_id)
        .ok_or_else(ApiError::not_found)?;
    Ok(json(
        StatusCode::OK,
        json!({ "action": shapes::action(action) }),
    ))
}

/// `GET /v2/droplets/{id}/actions`, newest first as the real API lists them.
pub async fn list_for_droplet(
    State(shared): Sim,
    Path(droplet_id): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    let droplet_id = parse_id(&droplet_id)?;
    let page = paging::parse(&query).map_err(ApiError::bad_request)?;
    let all: Vec<Value> = {
        let world = lock(&shared.world);
        if !world.droplets.contains_key(&droplet_id) {
            return Err(ApiError::not_found());
        }
        world
            .actions
            .values()
            .rev()
            .filter(|a| a.droplet_id == droplet_id)
            .map(shapes::action)
            .collect()
    };
    let path = format!("/v2/droplets/{droplet_id}/actions");
    let links = paging::links(&shared.base_url, &path, &query, page, all.len());
    Ok(json(
        StatusCode::OK,
        json!({
            "actions": paging::slice(&all, page),
            "links": links,
            "meta": { "total": all.len() },
        }),
    ))
}
