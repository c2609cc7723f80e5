//! Snapshots: `GET /v2/snapshots`, `GET`/`DELETE /v2/snapshots/{id}`, and
//! `GET /v2/images/{id}` (base images and snapshots, by id or slug).

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::{json, Sim};
use crate::cloud::api_error::{parse_id, ApiError};
use crate::cloud::state::ImageKind;
use crate::cloud::{lock, paging, shapes};

/// `GET /v2/snapshots?resource_type=droplet&page=&per_page=`; volume snapshots: none.
pub async fn list(
    State(shared): Sim,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    let page = paging::parse(&query).map_err(ApiError::bad_request)?;
    let volumes_only = match query.get("resource_type").map(String::as_str) {
        None | Some("droplet") => false,
        Some("volume") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "resource_type must be droplet or volume, not {other:?}"
            )))
        }
    };
    let all: Vec<Value> = if volumes_only {
        Vec::new()
    } else {
        lock(&shared.world)
            .images
            .values()
            .filter(|i| i.kind == ImageKind::Snapshot)
            .map(shapes::snapshot)
            .collect()
    };
    let links = paging::links(&shared.base_url, "/v2/snapshots", &query, page, all.len());
    Ok(json(
        StatusCode::OK,
        json!({
            "snapshots": paging::slice(&all, page),
            "links": links,
            "meta": { "total": all.len() },
        }),
    ))
}

/// `GET /v2/snapshots/{id}`.
pub async fn get(State(shared): Sim, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let world = lock(&shared.world);
    let image = world
        .images
        .get(&id)
        .filter(|i| i.kind == ImageKind::Snapshot)
        .ok_or_else(ApiError::not_found)?;
    Ok(json(
        StatusCode::OK,
        json!({ "snapshot": shapes::snapshot(image) }),
    ))
}

/// `DELETE /v2/snapshots/{id}`: forgets it and deletes its stored root.
pub async fn delete(State(shared): Sim, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    {
        let mut world = lock(&shared.world);
        if !world
            .images
            .get(&id)
            .is_some_and(|i| i.kind == ImageKind::Snapshot)
        {
            return Err(ApiError::not_found());
        }
        world.images.remove(&id);
    }
    let dir = shared.snapshot_dir(id);
    let removed = tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err((dir, e)),
        _ => Ok(()),
    })
    .await;
    if let Ok(Err((dir, error))) = removed {
        tracing::warn!(path = %dir.display(), %error, "Removing a snapshot's root failed.");
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /v2/images/{id or slug}`.
pub async fn get_image(State(shared): Sim, Path(id): Path<String>) -> Result<Response, ApiError> {
    let world = lock(&shared.world);
    let image = world
        .find_image(&Value::String(id))
        .ok_or_else(ApiError::not_found)?;
    Ok(json(
        StatusCode::OK,
        json!({ "image": shapes::image(image) }),
    ))
}
