//! A fake DigitalOcean API for the cloud client's tests: an axum server on loopback that keeps
//! droplets, actions, snapshots and load balancers in memory, records every request, and
//! answers scripted faults (a 503, a 429 with `retry-after`, a 500 after doing the work).
//!
//! Shapes follow `shared/reference/digitalocean-openapi.v2.json`; `spec.rs` checks the
//! recorded request bodies against it.

#![allow(dead_code)] // Each test binary uses a different part of this module.

pub mod spec;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use vmctl_controller::cloud::{CloudConfig, CloudToken, DoClient};
use vmctl_controller::retry::Backoff;

pub const TOKEN: &str = "dop_v1_fake_token_for_tests";

/// One request as the fake saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub body: Option<Value>,
}

/// A scripted answer for `method path`, used `times` times before normal service resumes.
#[derive(Clone, Debug)]
pub struct Fault {
    pub method: Method,
    pub path: String,
    pub status: u16,
    pub body: Value,
    pub headers: Vec<(&'static str, String)>,
    pub times: u32,
    /// Do the real work first, then answer with the fault (a lost answer).
    pub after_work: bool,
}

impl Fault {
    pub fn new(method: Method, path: &str, status: u16, times: u32) -> Self {
        let id = if status >= 500 {
            "server_error"
        } else {
            "error"
        };
        Self {
            method,
            path: path.to_owned(),
            status,
            body: json!({"id": id, "message": format!("scripted {status}"), "request_id": "req-fault"}),
            headers: Vec::new(),
            times,
            after_work: false,
        }
    }
}

#[derive(Default)]
pub struct World {
    pub droplets: Vec<Value>,
    pub actions: Vec<(Value, u32)>, // (action, polls left before it completes)
    pub snapshots: Vec<Value>,
    pub lbs: Vec<Value>,
    pub next_id: u64,
    pub page_size: usize,
    pub faults: VecDeque<Fault>,
    pub requests: Vec<Recorded>,
    /// Sent as `ratelimit-remaining` on every answer.
    pub remaining: u32,
}

#[derive(Clone)]
pub struct FakeDo {
    pub world: Arc<Mutex<World>>,
    pub addr: SocketAddr,
}

impl FakeDo {
    pub async fn start() -> Self {
        let world = Arc::new(Mutex::new(World {
            next_id: 1000,
            page_size: 200,
            remaining: 4999,
            ..World::default()
        }));
        let app = Router::new().fallback(handle).with_state(world.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { world, addr }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Fast retries so tests take milliseconds: 10 ms doubling to 50 ms.
    pub fn config(&self) -> CloudConfig {
        let mut c = CloudConfig::new(CloudToken::new(TOKEN, "test").unwrap());
        c.base_url = self.base_url();
        c.retry =
            Backoff::try_new(Duration::from_millis(10), Duration::from_millis(50), 0.2).unwrap();
        c.request_timeout = Duration::from_secs(5);
        c.call_timeout = Duration::from_secs(10);
        c
    }

    pub fn client(&self) -> DoClient {
        DoClient::new(self.config()).unwrap()
    }

    pub fn fault(&self, f: Fault) {
        self.world.lock().unwrap().faults.push_back(f);
    }

    pub fn requests(&self, method: &Method, path: &str) -> usize {
        let w = self.world.lock().unwrap();
        w.requests
            .iter()
            .filter(|r| r.method == *method && r.path == path)
            .count()
    }

    pub fn recorded(&self) -> Vec<Recorded> {
        self.world.lock().unwrap().requests.clone()
    }

    /// Adds a droplet directly, as if made earlier; returns its id.
    pub fn add_droplet(&self, name: &str, tags: &[&str], status: &str) -> u64 {
        let mut w = self.world.lock().unwrap();
        w.next_id += 1;
        let id = w.next_id;
        let d = droplet_json(id, name, tags, status, 1);
        w.droplets.push(d);
        id
    }

    pub fn add_lb(&self, id: &str, tag: &str) {
        self.world.lock().unwrap().lbs.push(json!({
            "id": id, "name": id, "status": "active", "tag": tag, "droplet_ids": []
        }));
    }

    pub fn droplets_named(&self, name: &str) -> usize {
        let w = self.world.lock().unwrap();
        w.droplets.iter().filter(|d| d["name"] == name).count()
    }
}

pub fn droplet_json(id: u64, name: &str, tags: &[&str], status: &str, image: u64) -> Value {
    let networks = if status == "active" {
        json!({"v4": [{"ip_address": format!("127.0.3.{}", id % 250), "netmask": "255.255.255.0", "gateway": "127.0.3.1", "type": "public"}], "v6": []})
    } else {
        json!({"v4": [], "v6": []})
    };
    json!({
        "id": id, "name": name, "status": status, "locked": false, "memory": 1024, "vcpus": 1,
        "disk": 25, "created_at": "2024-05-01T10:00:00Z", "tags": tags, "networks": networks,
        "image": {"id": image, "name": "snap", "type": "snapshot"}, "size_slug": "s-1vcpu-1gb",
        "region": {"slug": "fra1", "name": "Frankfurt 1", "features": [], "available": true, "sizes": []},
        "vpc_uuid": "vpc-1", "features": [], "backup_ids": [], "snapshot_ids": [], "volume_ids": [],
        "next_backup_window": null
    })
}

fn answer(status: u16, body: Value, remaining: u32) -> Response {
    let mut r = (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
    let h = r.headers_mut();
    h.insert("ratelimit-limit", "5000".parse().unwrap());
    h.insert(
        "ratelimit-remaining",
        remaining.to_string().parse().unwrap(),
    );
    h.insert("ratelimit-reset", "1700000000".parse().unwrap());
    r
}

fn error(status: u16, id: &str, message: &str, remaining: u32) -> Response {
    answer(
        status,
        json!({"id": id, "message": message, "request_id": "req-fake"}),
        remaining,
    )
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.replace("%3A", ":").replace('+', " "))
    })
}

async fn handle(
    State(world): State<Arc<Mutex<World>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut w = world.lock().unwrap();
    let path = uri.path().to_owned();
    let query = uri.query().unwrap_or("").to_owned();
    let body_json =
        (!body.is_empty()).then(|| serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null));
    w.requests.push(Recorded {
        method: method.clone(),
        path: path.clone(),
        query: query.clone(),
        body: body_json.clone(),
    });
    let remaining = w.remaining;

    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        return error(401, "unauthorized", "Unable to authenticate you", remaining);
    }

    let fault = w
        .faults
        .iter()
        .position(|f| f.method == method && f.path == path)
        .map(|i| {
            let f = &mut w.faults[i];
            f.times -= 1;
            let f = f.clone();
            if f.times == 0 {
                w.faults.remove(i);
            }
            f
        });
    let fault_response = |f: &Fault| {
        let mut r = answer(f.status, f.body.clone(), remaining);
        for (k, v) in &f.headers {
            r.headers_mut().insert(*k, v.parse().unwrap());
        }
        r
    };
    if let Some(f) = &fault {
        if !f.after_work {
            return fault_response(f);
        }
    }
    let response = route(&mut w, &method, &path, &query, body_json);
    match fault {
        Some(f) => fault_response(&f),
        None => response,
    }
}

fn route(w: &mut World, method: &Method, path: &str, query: &str, body: Option<Value>) -> Response {
    let remaining = w.remaining;
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), segs.as_slice()) {
        ("GET", ["v2", "account"]) => answer(
            200,
            json!({"account": {"uuid": "acc-1", "status": "active", "status_message": "", "droplet_limit": 25, "email": "ops@example.test", "email_verified": true, "floating_ip_limit": 3}}),
            remaining,
        ),
        ("POST", ["v2", "droplets"]) => {
            let b = body.unwrap_or_default();
            w.next_id += 1;
            let id = w.next_id;
            let tags: Vec<&str> = b["tags"]
                .as_array()
                .map(|t| t.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let d = droplet_json(
                id,
                b["name"].as_str().unwrap_or(""),
                &tags,
                "new",
                b["image"].as_u64().unwrap_or(0),
            );
            w.droplets.push(d.clone());
            answer(
                202,
                json!({"droplet": d, "links": {"actions": []}}),
                remaining,
            )
        }
        ("GET", ["v2", "droplets"]) => {
            let tag = query_param(query, "tag_name");
            let name = query_param(query, "name");
            let page: usize = query_param(query, "page")
                .and_then(|p| p.parse().ok())
                .unwrap_or(1);
            let matching: Vec<Value> = w
                .droplets
                .iter()
                .filter(|d| {
                    tag.as_ref().is_none_or(|t| {
                        d["tags"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|x| x == t.as_str())
                    }) && name.as_ref().is_none_or(|n| d["name"] == n.as_str())
                })
                .cloned()
                .collect();
            paged(
                w,
                "droplets",
                matching,
                page,
                &tag.map(|t| format!("&tag_name={t}")).unwrap_or_default(),
            )
        }
        ("GET", ["v2", "droplets", id]) => {
            match w
                .droplets
                .iter()
                .find(|d| d["id"].as_u64().is_some_and(|n| n.to_string() == *id))
            {
                Some(d) => answer(200, json!({"droplet": d}), remaining),
                None => error(
                    404,
                    "not_found",
                    "The resource you were accessing could not be found.",
                    remaining,
                ),
            }
        }
        ("DELETE", ["v2", "droplets", id]) => {
            let before = w.droplets.len();
            w.droplets
                .retain(|d| d["id"].as_u64().is_none_or(|n| n.to_string() != *id));
            if w.droplets.len() == before {
                error(
                    404,
                    "not_found",
                    "The resource you were accessing could not be found.",
                    remaining,
                )
            } else {
                StatusCode::NO_CONTENT.into_response()
            }
        }
        ("POST", ["v2", "droplets", id, "actions"]) => {
            let id: u64 = id.parse().unwrap_or(0);
            if !w.droplets.iter().any(|d| d["id"] == id) {
                return error(
                    404,
                    "not_found",
                    "The resource you were accessing could not be found.",
                    remaining,
                );
            }
            if w.actions
                .iter()
                .any(|(a, _)| a["resource_id"] == id && a["status"] == "in-progress")
            {
                return error(
                    422,
                    "unprocessable_entity",
                    "Droplet already has a pending event.",
                    remaining,
                );
            }
            let b = body.unwrap_or_default();
            w.next_id += 1;
            let action = json!({"id": w.next_id, "status": "in-progress", "type": b["type"], "started_at": "2024-05-01T10:00:00Z",
                "completed_at": null, "resource_id": id, "resource_type": "droplet", "region_slug": "fra1",
                "name": b["name"]});
            w.actions.push((action.clone(), 2));
            let mut shown = action;
            shown.as_object_mut().unwrap().remove("name");
            answer(201, json!({"action": shown}), remaining)
        }
        ("GET", ["v2", "actions", id]) => {
            let Some(i) = w
                .actions
                .iter()
                .position(|(a, _)| a["id"].as_u64().is_some_and(|n| n.to_string() == *id))
            else {
                return error(
                    404,
                    "not_found",
                    "The resource you were accessing could not be found.",
                    remaining,
                );
            };
            let polls = &mut w.actions[i].1;
            if *polls > 0 {
                *polls -= 1;
                if *polls == 0 {
                    w.actions[i].0["status"] = json!("completed");
                    w.actions[i].0["completed_at"] = json!("2024-05-01T10:01:00Z");
                    let a = w.actions[i].0.clone();
                    if a["type"] == "snapshot" {
                        w.next_id += 1;
                        let snap = json!({"id": w.next_id.to_string(), "name": a["name"], "created_at": "2024-05-01T10:01:00Z",
                            "regions": ["fra1"], "min_disk_size": 25, "size_gigabytes": 2.5,
                            "resource_id": a["resource_id"].to_string(), "resource_type": "droplet", "tags": null});
                        w.snapshots.push(snap);
                    }
                }
            }
            let mut shown = w.actions[i].0.clone();
            shown.as_object_mut().unwrap().remove("name");
            answer(200, json!({"action": shown}), remaining)
        }
        ("GET", ["v2", "snapshots"]) => {
            let page: usize = query_param(query, "page")
                .and_then(|p| p.parse().ok())
                .unwrap_or(1);
            let all = w.snapshots.clone();
            paged(w, "snapshots", all, page, "&resource_type=droplet")
        }
        ("DELETE", ["v2", "snapshots", id]) => {
            let before = w.snapshots.len();
            w.snapshots.retain(|s| s["id"] != *id);
            if w.snapshots.len() == before {
                error(
                    404,
                    "not_found",
                    "The resource you were accessing could not be found.",
                    remaining,
                )
            } else {
                StatusCode::NO_CONTENT.into_response()
            }
        }
        ("GET", ["v2", "load_balancers", id]) => match w.lbs.iter().find(|l| l["id"] == *id) {
            Some(lb) => answer(200, json!({"load_balancer": lb}), remaining),
            None => error(
                404,
                "not_found",
                "The resource you were accessing could not be found.",
                remaining,
            ),
        },
        (m @ ("POST" | "DELETE"), ["v2", "load_balancers", id, "droplets"]) => {
            let Some(lb) = w.lbs.iter_mut().find(|l| l["id"] == *id) else {
                return error(
                    404,
                    "not_found",
                    "The resource you were accessing could not be found.",
                    remaining,
                );
            };
            if lb["tag"].as_str().is_some_and(|t| !t.is_empty()) {
                return error(
                    422,
                    "unprocessable_entity",
                    "droplet_ids cannot be set on a load balancer that uses a tag",
                    remaining,
                );
            }
            let ids: Vec<u64> = body.unwrap_or_default()["droplet_ids"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default();
            let mut members: Vec<u64> = lb["droplet_ids"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_u64)
                .collect();
            if m == "POST" {
                members.extend(
                    ids.iter()
                        .filter(|i| !members.contains(i))
                        .copied()
                        .collect::<Vec<_>>(),
                );
            } else {
                members.retain(|i| !ids.contains(i));
            }
            lb["droplet_ids"] = json!(members);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => error(404, "not_found", "no such route in the fake", remaining),
    }
}

/// One page of `items` with `links.pages.next` as an absolute link to the real API, as
/// DigitalOcean writes it, so the client has to re-base it.
fn paged(w: &World, key: &str, items: Vec<Value>, page: usize, extra: &str) -> Response {
    let size = w.page_size;
    let total = items.len();
    let chunk: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * size)
        .take(size)
        .collect();
    let mut pages = serde_json::Map::new();
    if page * size < total {
        let kind = key;
        pages.insert(
            "next".into(),
            json!(format!(
                "https://api.digitalocean.com/v2/{kind}?page={}&per_page={size}{extra}",
                page + 1
            )),
        );
        pages.insert(
            "last".into(),
            json!(format!(
                "https://api.digitalocean.com/v2/{kind}?page={}&per_page={size}{extra}",
                total.div_ceil(size)
            )),
        );
    }
    answer(
        200,
        json!({key: chunk, "links": {"pages": pages}, "meta": {"total": total}}),
        w.remaining,
    )
}
