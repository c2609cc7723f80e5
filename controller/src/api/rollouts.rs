//! Operator commands on rollouts: pause, resume, abort. A rollout's status is the controller's,
//! but these flags are an operator's word, so the API writes them with compare-and-swap and the
//! rollout reconciler reads them on its next pass.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use vmctl_protocol::{
    event::{Event, EventType},
    rollout::{RolloutPhase, RolloutSpec, RolloutStatus},
    Resource,
};
use vmctl_state::Precondition;

use super::{ApiFailure, ApiState};
use crate::queue::ObjectKey;

/// What an operator asks of a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Stop starting new steps.
    Pause,
    /// Carry on.
    Resume,
    /// Give up: revert if the post-deploy migrations have not run, else halt.
    Abort,
}

/// Applies `cmd` to a rollout's status. Pure.
///
/// # Errors
/// A message when the command makes no sense in the rollout's phase.
pub fn apply(cmd: Command, status: &RolloutStatus) -> Result<RolloutStatus, String> {
    if status.phase.is_terminal() {
        return Err(format!(
            "the rollout has already ended ({:?})",
            status.phase
        ));
    }
    let mut st = status.clone();
    match cmd {
        Command::Pause => st.paused = true,
        Command::Resume => st.paused = false,
        Command::Abort => {
            st.paused = false;
            st.last_error = Some("aborted by an operator".into());
            st.phase = match status.phase {
                RolloutPhase::Prepare
                | RolloutPhase::PreMigrate
                | RolloutPhase::Roll
                | RolloutPhase::Reverting => RolloutPhase::Reverting,
                _ => RolloutPhase::Halted,
            };
        }
    }
    Ok(st)
}

/// `POST /v1/rollouts/{name}/{pause|resume|abort}`.
pub async fn command(
    State(st): State<ApiState>,
    Path((name, verb)): Path<(String, String)>,
) -> Result<StatusCode, ApiFailure> {
    let cmd = match verb.as_str() {
        "pause" => Command::Pause,
        "resume" => Command::Resume,
        "abort" => Command::Abort,
        other => {
            return Err(ApiFailure::invalid(format!(
                "unknown rollout command {other:?}: pause, resume or abort"
            )))
        }
    };
    let r = st
        .store
        .get::<RolloutSpec>(&name)?
        .ok_or_else(|| ApiFailure::not_found(RolloutSpec::KIND, &name))?;
    let next =
        apply(cmd, &r.status).map_err(|m| ApiFailure::new(StatusCode::CONFLICT, "conflict", m))?;
    st.store.put_status::<RolloutSpec>(
        &name,
        next,
        Precondition::ResourceVersion(r.metadata.resource_version),
    )?;
    st.store.append_event(Event {
        seq: 0,
        time: chrono::Utc::now(),
        type_: EventType::Normal,
        kind: RolloutSpec::KIND.into(),
        name: name.clone(),
        reason: format!(
            "Rollout{}",
            match cmd {
                Command::Pause => "Paused",
                Command::Resume => "Resumed",
                Command::Abort => "Aborted",
            }
        ),
        message: format!("{verb} by an operator"),
    })?;
    (st.on_wake)(ObjectKey::new(RolloutSpec::KIND, &name));
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/rollouts/current`: the rollout in flight, else the newest.
pub async fn current(
    State(st): State<ApiState>,
) -> Result<Json<Option<vmctl_protocol::resource::Stored<RolloutSpec>>>, ApiFailure> {
    let all = st.store.list::<RolloutSpec>()?;
    let active = all.iter().find(|r| !r.status.phase.is_terminal()).cloned();
    Ok(Json(active.or_else(|| {
        all.into_iter().max_by_key(|r| r.metadata.created_at)
    })))
}

/// `GET /v1/release/plan`: the release reconciler's latest decision.
pub async fn release_plan(
    State(st): State<ApiState>,
) -> Result<Json<vmctl_protocol::release::ReleaseDecision>, ApiFailure> {
    let cluster = st
        .store
        .list::<vmctl_protocol::cluster::ClusterSpec>()?
        .into_iter()
        .next();
    let Some(cluster) = cluster else {
        return Err(ApiFailure::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no cluster spec has been applied",
        ));
    };
    if cluster.spec.release.is_none() {
        return Err(ApiFailure::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "the cluster has no [release] section: vmctl does not upgrade Mastodon",
        ));
    }
    cluster.status.release.map(Json).ok_or_else(|| {
        let why = cluster
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == "ReleaseFeedReady")
            .map_or_else(
                || "the release feed has not been read yet".to_string(),
                |c| c.message.clone(),
            );
        ApiFailure::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", why)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(phase: RolloutPhase) -> RolloutStatus {
        RolloutStatus {
            phase,
            ..Default::default()
        }
    }

    #[test]
    fn abort_reverts_before_post_deploy_migrations_and_halts_after() {
        assert_eq!(
            apply(Command::Abort, &at(RolloutPhase::Roll))
                .unwrap()
                .phase,
            RolloutPhase::Reverting
        );
        assert_eq!(
            apply(Command::Abort, &at(RolloutPhase::PostMigrate))
                .unwrap()
                .phase,
            RolloutPhase::Halted
        );
        assert!(apply(Command::Pause, &at(RolloutPhase::Done)).is_err());
        assert!(
            apply(Command::Pause, &at(RolloutPhase::Roll))
                .unwrap()
                .paused
        );
        assert!(
            !apply(
                Command::Resume,
                &apply(Command::Pause, &at(RolloutPhase::Roll)).unwrap()
            )
            .unwrap()
            .paused
        );
    }
}
