//! `GET /v2/account` (token checks) and `GET`/`POST /v2/account/keys`, so the ids a
//! create's `ssh_keys` names are real. Every droplet gets the simulator's own key anyway.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{json, Sim};
use crate::cloud::api_error::{parse_json, ApiError};
use crate::cloud::state::KeyRecord;
use crate::cloud::{lock, paging, shapes};

/// A fingerprint shaped like DigitalOcean's (16 colon-separated hex bytes). It is derived
/// from a SHA-256 of the key line rather than MD5 of the blob: only its shape and
/// stability matter here.
pub fn fingerprint(public_key: &str) -> String {
    let digest = Sha256::digest(public_key.trim().as_bytes());
    digest[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// `GET /v2/account`.
pub async fn get_account(State(_shared): Sim) -> Response {
    json(StatusCode::OK, json!({ "account": shapes::account() }))
}

/// `GET /v2/account/keys`.
pub async fn list_keys(
    State(shared): Sim,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    let page = paging::parse(&query).map_err(ApiError::bad_request)?;
    let all: Vec<Value> = lock(&shared.world).keys.values().map(shapes::key).collect();
    let links = paging::links(
        &shared.base_url,
        "/v2/account/keys",
        &query,
        page,
        all.len(),
    );
    Ok(json(
        StatusCode::OK,
        json!({
            "ssh_keys": paging::slice(&all, page),
            "links": links,
            "meta": { "total": all.len() },
        }),
    ))
}

/// `POST /v2/account/keys` with `{"name", "public_key"}`.
pub async fn create_key(State(shared): Sim, body: Bytes) -> Result<Response, ApiError> {
    let body = parse_json(&body)?;
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::unprocessable("name is required."))?;
    let public_key = body
        .get("public_key")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|k| looks_like_public_key(k))
        .ok_or_else(|| ApiError::unprocessable("Key invalid, type not supported."))?;
    let mut world = lock(&shared.world);
    if world.keys.values().any(|k| k.public_key == public_key) {
        return Err(ApiError::unprocessable(
            "SSH Key is already in use on your account",
        ));
    }
    let id = world.ids.key();
    let record = KeyRecord {
        id,
        name: name.to_owned(),
        public_key: public_key.to_owned(),
        fingerprint: fingerprint(public_key),
    };
    let value = shapes::key(&record);
    world.keys.insert(id, record);
    Ok(json(StatusCode::CREATED, json!({ "ssh_key": value })))
}

/// `ssh-<type> <base64> [comment]` or an `ecdsa-...` key, on one line.
fn looks_like_public_key(key: &str) -> bool {
    let mut parts = key.split_whitespace();
    let kind_ok = parts
        .next()
        .is_some_and(|kind| kind.starts_with("ssh-") || kind.starts_with("ecdsa-"));
    let blob_ok = parts.next().is_some_and(|blob| {
        blob.len() >= 16
            && blob
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
    });
    kind_ok && blob_ok && !key.contains('\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_has_digitalocean_shape_and_ignores_whitespace() {
        let a = fingerprint("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB x");
        assert_eq!(a.split(':').count(), 16);
        assert_eq!(
            a,
            fingerprint("  ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB x\n")
        );
    }

    #[test]
    fn public_key_shape_is_checked() {
        assert!(looks_like_public_key(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB me@host"
        ));
        assert!(!looks_like_public_key("hello world"));
        assert!(!looks_like_public_key("ssh-rsa"));
    }
}
