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
    api::{ApplyResult, ClusterDocument, EventList, StatusView},
    cluster::ClusterSpec,
    node::NodeSpec,
    pool::PoolSpec,
    resource::Stored,
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
