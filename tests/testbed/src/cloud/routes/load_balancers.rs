//! Load balancers: create, list, get, delete, and membership by droplet id
//! (`POST`/`DELETE /v2/load_balancers/{id}/droplets`). A balancer created with a `tag`
//! takes its members from the tag and refuses id-based membership changes, as the real API.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use rand::Rng;
use serde_json::{json, Value};

use super::{json, Sim};
use crate::cloud::api_error::{parse_json, ApiError};
use crate::cloud::state::{is_valid_tag, LoadBalancerRecord, World};
use crate::cloud::{ids, lock, paging, shapes};

/// An address for a balancer: nothing listens there, it only fills the field.
pub fn made_up_ip() -> String {
    let mut rng = rand::thread_rng();
    format!("127.251.{}.{}", rng.gen::<u8>(), rng.gen_range(1..=254u8))
}

/// `POST /v2/load_balancers`.
pub async fn create(State(shared): Sim, body: Bytes) -> Result<Response, ApiError> {
    let body = parse_json(&body)?;
    let rules = match body.get("forwarding_rules") {
        Some(Value::Array(rules)) if !rules.is_empty() => Value::Array(rules.clone()),
        _ => {
            return Err(ApiError::unprocessable(
                "forwarding_rules is required and must hold at least one rule.",
            ))
        }
    };
    let tag = match body.get("tag") {
        None | Some(Value::Null) => None,
        Some(Value::String(tag)) if is_valid_tag(tag) => Some(tag.clone()),
        Some(_) => return Err(ApiError::unprocessable("tag must be a valid tag name.")),
    };
    let ids_given = body.get("droplet_ids").filter(|v| !v.is_null());
    if tag.is_some() && ids_given.is_some() {
        return Err(ApiError::unprocessable(
            "Specify either droplet_ids or tag, not both.",
        ));
    }
    let mut world = lock(&shared.world);
    let droplet_ids = match ids_given {
        Some(ids) => read_droplet_ids(&world, ids)?,
        None => Vec::new(),
    };
    let id = ids::uuid();
    let record = LoadBalancerRecord {
        id: id.clone(),
        name: body
            .get("name")
            .and_then(Value::as_str)
            .map_or_else(|| format!("lb-{}", &id[..8]), str::to_owned),
        region: body
            .get("region")
            .and_then(Value::as_str)
            .unwrap_or(&shared.config.region)
            .to_owned(),
        created_at: Utc::now(),
        forwarding_rules: rules,
        health_check: body
            .get("health_check")
            .filter(|h| h.is_object())
            .cloned()
            .unwrap_or_else(shapes::default_health_check),
        droplet_ids,
        tag,
        ip: made_up_ip(),
    };
    let value = shapes::load_balancer(&record, &world.members(&record));
    world.load_balancers.insert(id, record);
    Ok(json(
        StatusCode::ACCEPTED,
        json!({ "load_balancer": value }),
    ))
}

/// Reads `droplet_ids`, each of which must be a live droplet.
fn read_droplet_ids(world: &World, ids: &Value) -> Result<Vec<u64>, ApiError> {
    let ids = ids
        .as_array()
        .ok_or_else(|| ApiError::unprocessable("droplet_ids must be an array of integers."))?;
    let mut out = Vec::new();
    for id in ids {
        let id = id
            .as_u64()
            .ok_or_else(|| ApiError::unprocessable("droplet_ids must be an array of integers."))?;
        if !world.droplets.contains_key(&id) {
            return Err(ApiError::unprocessable(format!(
                "droplet {id} does not exist."
            )));
        }
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

/// `GET /v2/load_balancers`.
pub async fn list(
    State(shared): Sim,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    let page = paging::parse(&query).map_err(ApiError::bad_request)?;
    let all: Vec<Value> = {
        let world = lock(&shared.world);
        world
            .load_balancers
            .values()
            .map(|lb| shapes::load_balancer(lb, &world.members(lb)))
            .collect()
    };
    let links = paging::links(
        &shared.base_url,
        "/v2/load_balancers",
        &query,
        page,
        all.len(),
    );
    Ok(json(
        StatusCode::OK,
        json!({
            "load_balancers": paging::slice(&all, page),
            "links": links,
            "meta": { "total": all.len() },
        }),
    ))
}

/// `GET /v2/load_balancers/{id}`.
pub async fn get(State(shared): Sim, Path(id): Path<String>) -> Result<Response, ApiError> {
    let world = lock(&shared.world);
    let lb = world
        .load_balancers
        .get(&id)
        .ok_or_else(ApiError::not_found)?;
    Ok(json(
        StatusCode::OK,
        json!({ "load_balancer": shapes::load_balancer(lb, &world.members(lb)) }),
    ))
}

/// `DELETE /v2/load_balancers/{id}`.
pub async fn delete(State(shared): Sim, Path(id): Path<String>) -> Result<Response, ApiError> {
    lock(&shared.world)
        .load_balancers
        .remove(&id)
        .ok_or_else(ApiError::not_found)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /v2/load_balancers/{id}/droplets`.
pub async fn add_droplets(
    State(shared): Sim,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    change_members(&shared.world, &id, &body, true)
}

/// `DELETE /v2/load_balancers/{id}/droplets`.
pub async fn remove_droplets(
    State(shared): Sim,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    change_members(&shared.world, &id, &body, false)
}

fn change_members(
    world: &std::sync::Mutex<World>,
    lb_id: &str,
    body: &[u8],
    add: bool,
) -> Result<Response, ApiError> {
    let body = parse_json(body)?;
    let mut world = lock(world);
    let Some(lb) = world.load_balancers.get(lb_id) else {
        return Err(ApiError::not_found());
    };
    if let Some(tag) = &lb.tag {
        return Err(ApiError::unprocessable(format!(
            "This load balancer selects its droplets by the tag {tag:?}; add or remove the \
             tag on droplets instead of changing droplet_ids."
        )));
    }
    let requested = match body.get("droplet_ids") {
        Some(ids) if add => read_droplet_ids(&world, ids)?,
        Some(Value::Array(ids)) => ids.iter().filter_map(Value::as_u64).collect(),
        _ => return Err(ApiError::unprocessable("droplet_ids is required.")),
    };
    let Some(lb) = world.load_balancers.get_mut(lb_id) else {
        return Err(ApiError::not_found());
    };
    if add {
        for id in requested {
            if !lb.droplet_ids.contains(&id) {
                lb.droplet_ids.push(id);
            }
        }
    } else {
        lb.droplet_ids.retain(|id| !requested.contains(id));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
