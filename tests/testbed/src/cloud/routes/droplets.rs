//! `/v2/droplets`: create (one at a time), list (by tag, paginated), get and delete.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::{json, Map, Value};

use super::{json, Sim};
use crate::cloud::api_error::{parse_id, parse_json, ApiError};
use crate::cloud::state::{
    is_valid_hostname, is_valid_tag, ActionRecord, ActionStatus, DropletRecord, DropletStatus,
    World,
};
use crate::cloud::{lifecycle, lock, paging, shapes};

/// The VPC droplets land in when a create names none.
const DEFAULT_VPC: &str = "5a4981aa-9653-4bd1-bef5-d6bff52042e4";

/// `POST /v2/droplets`.
pub async fn create(State(shared): Sim, body: Bytes) -> Result<Response, ApiError> {
    let body = parse_json(&body)?;
    let request = body
        .as_object()
        .ok_or_else(|| ApiError::bad_request("The request body must be a JSON object."))?;
    if request.contains_key("names") {
        return Err(ApiError::unprocessable(
            "The simulator creates one droplet per request: send name, not names.",
        ));
    }
    let now = Utc::now();
    let (droplet, action_id) = {
        let mut world = lock(&shared.world);
        let draft = validate(&world, request, &shared.config.region)?;
        let id = world.ids.droplet();
        let action_id = world.ids.action();
        let droplet = DropletRecord {
            id,
            farm_name: world.farm_name_for(&draft.name, id),
            name: draft.name,
            status: DropletStatus::New,
            size_slug: draft.size,
            region: draft.region.clone(),
            image: draft.image,
            tags: draft.tags,
            vpc_uuid: draft.vpc_uuid,
            created_at: now,
            address: None,
            root: None,
            host_key_public: None,
            provisioned: false,
            snapshot_ids: Vec::new(),
            pending_action: Some(action_id),
            error: None,
        };
        world.actions.insert(
            action_id,
            ActionRecord {
                id: action_id,
                kind: "create".into(),
                status: ActionStatus::InProgress,
                started_at: now,
                completed_at: None,
                droplet_id: id,
                region: draft.region,
                snapshot_name: None,
            },
        );
        world.droplets.insert(id, droplet.clone());
        (droplet, action_id)
    };
    tokio::spawn(lifecycle::provision(
        Arc::clone(&shared),
        droplet.id,
        action_id,
    ));
    Ok(json(
        StatusCode::ACCEPTED,
        json!({
            "droplet": shapes::droplet(&droplet),
            "links": { "actions": [{
                "id": action_id,
                "rel": "create",
                "href": format!("{}/v2/actions/{action_id}", shared.base_url),
            }]},
        }),
    ))
}

/// A create request's checked fields.
struct Draft {
    name: String,
    size: String,
    region: String,
    image: crate::cloud::state::ImageRecord,
    tags: Vec<String>,
    vpc_uuid: String,
}

fn validate(
    world: &World,
    request: &Map<String, Value>,
    default_region: &str,
) -> Result<Draft, ApiError> {
    let name = match request.get("name") {
        Some(Value::String(name)) => name.clone(),
        _ => return Err(ApiError::unprocessable("name is required.")),
    };
    if !is_valid_hostname(&name) {
        return Err(ApiError::unprocessable(
            "Name Only valid hostname characters are allowed. (a-z, A-Z, 0-9, . and -)",
        ));
    }
    let size = match request.get("size") {
        Some(Value::String(size)) if !size.is_empty() => size.clone(),
        _ => return Err(ApiError::unprocessable("size is required.")),
    };
    let image = request
        .get("image")
        .and_then(|image| world.find_image(image))
        .cloned()
        .ok_or_else(|| {
            ApiError::unprocessable("You specified an invalid image for Droplet creation.")
        })?;
    let region = match request.get("region") {
        None | Some(Value::Null) => default_region.to_owned(),
        Some(Value::String(region)) if !region.is_empty() => region.clone(),
        Some(_) => return Err(ApiError::unprocessable("region must be a region slug.")),
    };
    check_ssh_keys(world, request.get("ssh_keys"))?;
    let tags = read_tags(request.get("tags"))?;
    let vpc_uuid = match request.get("vpc_uuid") {
        None | Some(Value::Null) => DEFAULT_VPC.to_owned(),
        Some(Value::String(vpc)) => vpc.clone(),
        Some(_) => return Err(ApiError::unprocessable("vpc_uuid must be a string.")),
    };
    if let Some(user_data) = request.get("user_data") {
        if !user_data.is_string() && !user_data.is_null() {
            return Err(ApiError::unprocessable("user_data must be a string."));
        }
    }
    Ok(Draft {
        name,
        size,
        region,
        image,
        tags,
        vpc_uuid,
    })
}

/// Key ids and fingerprints must name keys of the account, as on the real API.
fn check_ssh_keys(world: &World, keys: Option<&Value>) -> Result<(), ApiError> {
    let keys = match keys {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(keys)) => keys,
        Some(_) => return Err(ApiError::unprocessable("ssh_keys must be an array.")),
    };
    let unknown: Vec<String> = keys
        .iter()
        .filter(|key| {
            !world.keys.values().any(|known| match key {
                Value::Number(n) => n.as_u64() == Some(known.id),
                Value::String(s) => *s == known.fingerprint || s.parse() == Ok(known.id),
                _ => false,
            })
        })
        .map(ToString::to_string)
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(ApiError::unprocessable(format!(
            "ssh_keys: unknown key identifiers {}",
            unknown.join(", ")
        )))
    }
}

fn read_tags(tags: Option<&Value>) -> Result<Vec<String>, ApiError> {
    let tags = match tags {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(tags)) => tags,
        Some(_) => return Err(ApiError::unprocessable("tags must be an array of strings.")),
    };
    let mut out: Vec<String> = Vec::new();
    for tag in tags {
        match tag.as_str() {
            Some(tag) if is_valid_tag(tag) => {
                if !out.iter().any(|t| t == tag) {
                    out.push(tag.to_owned());
                }
            }
            _ => {
                return Err(ApiError::unprocessable(format!(
                    "tag {tag} is invalid: tags may hold letters, digits, colons, dashes and underscores."
                )))
            }
        }
    }
    Ok(out)
}

/// `GET /v2/droplets?tag_name=&page=&per_page=`.
pub async fn list(
    State(shared): Sim,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    let page = paging::parse(&query).map_err(ApiError::bad_request)?;
    let tag = query.get("tag_name");
    let all: Vec<Value> = {
        let world = lock(&shared.world);
        world
            .droplets
            .values()
            .filter(|d| tag.is_none_or(|tag| d.tags.contains(tag)))
            .map(shapes::droplet)
            .collect()
    };
    let links = paging::links(&shared.base_url, "/v2/droplets", &query, page, all.len());
    Ok(json(
        StatusCode::OK,
        json!({
            "droplets": paging::slice(&all, page),
            "links": links,
            "meta": { "total": all.len() },
        }),
    ))
}

/// `GET /v2/droplets/{id}`.
pub async fn get(State(shared): Sim, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let world = lock(&shared.world);
    let droplet = world.droplets.get(&id).ok_or_else(ApiError::not_found)?;
    Ok(json(
        StatusCode::OK,
        json!({ "droplet": shapes::droplet(droplet) }),
    ))
}

/// `DELETE /v2/droplets/{id}`: answers once the droplet's processes are dead.
pub async fn delete(State(shared): Sim, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let removed = lock(&shared.world)
        .remove_droplet(id)
        .ok_or_else(ApiError::not_found)?;
    // One still new is removed by its provisioning task, which finds it gone.
    if removed.provisioned {
        lifecycle::remove_from_farm(&shared, removed.farm_name).await;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
