//! The route table and its handlers.

use std::time::Duration;

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    routing::{get, post},
    Json, Router,
};
use futures::StreamExt;
use serde::Deserialize;
use vmctl_protocol::{
    api::{ApplyResult, ClusterDocument, EventList, SnapshotRequested, StatusView},
    cluster::ClusterSpec,
    node::NodeSpec,
    pool::PoolSpec,
    provision::ProvisionSpec,
    resource::Stored,
    snapshot::SnapshotSpec,
    Resource,
};

use super::{views::status_view, ApiFailure, ApiState};
use crate::apply;

/// Most events one request returns.
const MAX_EVENTS: usize = 1000;
/// Longest long-poll wait; the CLI asks for 25 s and re-polls.
const MAX_WAIT: Duration = Duration::from_secs(60);

pub(super) fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/nodes", get(list::<NodeSpec>))
        .route("/v1/nodes/{name}", get(one::<NodeSpec>))
        .route("/v1/nodes/{name}/forget-hostkey", post(forget_hostkey))
        .route("/v1/pools", get(list::<PoolSpec>))
        .route("/v1/pools/{name}", get(one::<PoolSpec>))
        .route("/v1/pools/{name}/snapshot", post(request_snapshot))
        .route(
            "/v1/rollouts",
            get(list::<vmctl_protocol::rollout::RolloutSpec>),
        )
        .route("/v1/rollouts/current", get(super::rollouts::current))
        .route("/v1/release/plan", get(super::rollouts::release_plan))
        .route("/v1/release/{verb}/{tag}", post(super::release_cmds::word))
        .route("/v1/rollouts/undo", post(super::release_cmds::undo))
        .route(
            "/v1/rollouts/{name}",
            get(one::<vmctl_protocol::rollout::RolloutSpec>),
        )
        .route("/v1/rollouts/{name}/{verb}", post(super::rollouts::command))
        .route("/v1/provisions", get(list::<ProvisionSpec>))
        .route("/v1/provisions/{name}", get(one::<ProvisionSpec>))
        .route("/v1/snapshots", get(list::<SnapshotSpec>))
        .route("/v1/snapshots/{name}", get(one::<SnapshotSpec>))
        .route("/v1/events", get(events))
        .route("/v1/apply", post(apply_doc))
        .route("/v1/diff", post(diff_doc))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(state)
}

async fn status(State(st): State<ApiState>) -> Result<Json<StatusView>, ApiFailure> {
    let cluster = st
        .store
        .list::<ClusterSpec>()?
        .into_iter()
        .next()
        .map(|c| c.metadata.name);
    let pools = st.store.list::<PoolSpec>()?;
    let nodes = st.store.list::<NodeSpec>()?;
    Ok(Json(status_view(cluster, &pools, &nodes)))
}

async fn list<R: Resource>(State(st): State<ApiState>) -> Result<Json<Vec<Stored<R>>>, ApiFailure> {
    Ok(Json(st.store.list::<R>()?))
}

async fn one<R: Resource>(
    State(st): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Stored<R>>, ApiFailure> {
    st.store
        .get::<R>(&name)?
        .map(Json)
        .ok_or_else(|| ApiFailure::not_found(R::KIND, &name))
}

async fn forget_hostkey(
    State(st): State<ApiState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiFailure> {
    if st.store.get::<NodeSpec>(&name)?.is_none() {
        return Err(ApiFailure::not_found(NodeSpec::KIND, &name));
    }
    let forgot = st.store.forget_host_key(&name)?;
    let message = if forgot {
        "pinned host key forgotten by an operator; the next key presented will be pinned"
    } else {
        "forget-hostkey requested but no key was pinned"
    };
    let now = chrono::Utc::now();
    st.store.append_event(crate::reconcilers::node::event(
        &name,
        vmctl_protocol::event::EventType::Normal,
        "HostKeyForgotten",
        message,
        now,
    ))?;
    (st.on_forget_hostkey)(&name);
    Ok(StatusCode::NO_CONTENT)
}

/// 404 for an unknown pool; otherwise the hook decides (it knows whether a cloud API is
/// configured and which droplet to snapshot) and its refusal is a 400 with its sentence.
async fn request_snapshot(
    State(st): State<ApiState>,
    Path(pool): Path<String>,
) -> Result<(StatusCode, Json<SnapshotRequested>), ApiFailure> {
    if st.store.get::<PoolSpec>(&pool)?.is_none() {
        return Err(ApiFailure::not_found(PoolSpec::KIND, &pool));
    }
    let name = (st.on_snapshot_request)(&pool).map_err(ApiFailure::invalid)?;
    Ok((StatusCode::ACCEPTED, Json(SnapshotRequested { name })))
}

#[derive(Deserialize)]
struct EventsQuery {
    limit: Option<usize>,
    after: Option<u64>,
    wait: Option<u64>,
}

async fn events(
    State(st): State<ApiState>,
    Query(q): Query<EventsQuery>,
) -> Result<Json<EventList>, ApiFailure> {
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_EVENTS);
    let Some(after) = q.after else {
        return Ok(Json(EventList {
            events: st.store.events(limit)?,
        }));
    };
    // Subscribe before reading so an event appended in between still wakes us.
    let mut appended = st.store.watch_events();
    let events = st.store.events_after(after, limit)?;
    let wait = Duration::from_secs(q.wait.unwrap_or(0)).min(MAX_WAIT);
    if !events.is_empty() || wait.is_zero() {
        return Ok(Json(EventList { events }));
    }
    let _ = tokio::time::timeout(wait, appended.next()).await;
    Ok(Json(EventList {
        events: st.store.events_after(after, limit)?,
    }))
}

async fn apply_doc(
    State(st): State<ApiState>,
    Json(doc): Json<ClusterDocument>,
) -> Result<Json<ApplyResult>, ApiFailure> {
    run_apply(&st, &doc, false)
}

async fn diff_doc(
    State(st): State<ApiState>,
    Json(doc): Json<ClusterDocument>,
) -> Result<Json<ApplyResult>, ApiFailure> {
    run_apply(&st, &doc, true)
}

fn run_apply(
    st: &ApiState,
    doc: &ClusterDocument,
    dry_run: bool,
) -> Result<Json<ApplyResult>, ApiFailure> {
    apply::validate(doc).map_err(|errs| {
        ApiFailure::invalid(
            errs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    let current = apply::StoredSpecs::load(&st.store)?;
    let changes = apply::plan(doc, &current);
    if !dry_run && !changes.is_empty() {
        apply::execute(&st.store, doc, &changes)?;
        let now = chrono::Utc::now();
        st.store.append_event(vmctl_protocol::event::Event {
            seq: 0,
            time: now,
            type_: vmctl_protocol::event::EventType::Normal,
            kind: ClusterSpec::KIND.into(),
            name: doc.name.clone(),
            reason: "SpecApplied".into(),
            message: format!("{} change(s) applied", changes.len()),
        })?;
    }
    Ok(Json(ApplyResult { dry_run, changes }))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::{to_bytes, Body};
    use axum::http::Request;
    use tower::ServiceExt;
    use vmctl_protocol::{api::ApiError, pool::PoolRole, snapshot::SnapshotStatus};
    use vmctl_state::{Precondition, Store};

    use super::*;

    /// A router over a fresh store whose snapshot hook accepts `web` and refuses other pools.
    fn app(dir: &std::path::Path) -> (Router, Store) {
        let store = Store::open(dir).unwrap();
        let state = ApiState {
            store: store.clone(),
            on_wake: Arc::new(|_| {}),
            on_forget_hostkey: Arc::new(|_: &str| {}),
            on_snapshot_request: Arc::new(|pool: &str| match pool {
                "web" => Ok("web-snap-1".to_owned()),
                other => Err(format!("pool {other:?} has no droplets to snapshot")),
            }),
        };
        (router(state), store)
    }

    fn pool(role: PoolRole) -> PoolSpec {
        PoolSpec {
            role,
            queues: vec![],
            droplets: None,
        }
    }

    async fn call(app: &Router, method: &str, uri: &str) -> (StatusCode, Vec<u8>) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        (
            status,
            to_bytes(resp.into_body(), 1 << 20).await.unwrap().to_vec(),
        )
    }

    #[tokio::test]
    async fn snapshot_requests_are_accepted_refused_or_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let (app, store) = app(dir.path());
        for (name, role) in [("web", PoolRole::Web), ("exec", PoolRole::Exec)] {
            store
                .put_spec(name, pool(role), Precondition::MustNotExist)
                .unwrap();
        }

        let (status, body) = call(&app, "POST", "/v1/pools/web/snapshot").await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let reply: SnapshotRequested = serde_json::from_slice(&body).unwrap();
        assert_eq!(reply.name, "web-snap-1");

        let (status, body) = call(&app, "POST", "/v1/pools/exec/snapshot").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let err: ApiError = serde_json::from_slice(&body).unwrap();
        assert_eq!(err.message, "pool \"exec\" has no droplets to snapshot");

        let (status, body) = call(&app, "POST", "/v1/pools/nope/snapshot").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let err: ApiError = serde_json::from_slice(&body).unwrap();
        assert_eq!(err.code, "not_found");
    }

    #[tokio::test]
    async fn provisions_and_snapshots_are_listed_like_nodes() {
        let dir = tempfile::tempdir().unwrap();
        let (app, store) = app(dir.path());
        let job = SnapshotSpec {
            pool: "web".into(),
            droplet_id: 11,
            name: "vmst-web-1".into(),
        };
        store
            .put_spec("web-snap-1", job.clone(), Precondition::MustNotExist)
            .unwrap();

        let (status, body) = call(&app, "GET", "/v1/snapshots").await;
        assert_eq!(status, StatusCode::OK);
        let list: Vec<Stored<SnapshotSpec>> = serde_json::from_slice(&body).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(
            (&list[0].spec, &list[0].status),
            (&job, &SnapshotStatus::default())
        );

        let (status, _) = call(&app, "GET", "/v1/snapshots/web-snap-1").await;
        assert_eq!(status, StatusCode::OK);

        let (status, body) = call(&app, "GET", "/v1/provisions").await;
        assert_eq!(status, StatusCode::OK);
        let list: Vec<Stored<ProvisionSpec>> = serde_json::from_slice(&body).unwrap();
        assert!(list.is_empty());
        let (status, _) = call(&app, "GET", "/v1/provisions/web-1").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
