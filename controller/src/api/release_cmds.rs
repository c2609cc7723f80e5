//! Operator commands on releases: approve a major version, retry a failed release, undo the
//! last rollout. They are an operator's word, stored as the cluster's `ReleaseOverrides`; the
//! release reconciler reads them on its next pass.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use vmctl_protocol::{
    cluster::ClusterSpec,
    event::{Event, EventType},
    release::ReleaseOverrides,
    release_ops::is_valid_tag,
    resource::Stored,
    rollout::{RolloutPhase, RolloutSpec},
    Resource,
};
use vmctl_state::Precondition;

use super::{ApiFailure, ApiState};
use crate::queue::ObjectKey;

/// What an operator says about a release tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Word {
    /// Allow a new major version.
    Approve,
    /// Try a failed or withdrawn release again.
    Retry,
}

/// Records `word` for `tag`. Pure.
pub fn record(mut o: ReleaseOverrides, word: Word, tag: &str) -> ReleaseOverrides {
    let push = |list: &mut Vec<String>| {
        if !list.iter().any(|t| t == tag) {
            list.push(tag.to_string());
        }
    };
    match word {
        Word::Approve => push(&mut o.approved),
        Word::Retry => {
            push(&mut o.retried);
            o.withdrawn.retain(|t| t != tag);
        }
    }
    o
}

/// The rollout that undoes the newest finished one: back to the release it came from.
///
/// # Errors
/// When there is nothing to undo or the previous release's commit is not on record.
pub fn undo_of(rollouts: &[Stored<RolloutSpec>]) -> Result<RolloutSpec, String> {
    if rollouts.iter().any(|r| !r.status.phase.is_terminal()) {
        return Err("a rollout is in flight: abort it instead".into());
    }
    let last = rollouts
        .iter()
        .filter(|r| r.status.phase == RolloutPhase::Done)
        .max_by_key(|r| r.status.phase_since)
        .ok_or("no finished rollout to undo")?;
    let from = last
        .spec
        .from
        .clone()
        .ok_or("the last rollout was a first install: there is nothing to go back to")?;
    let commit = rollouts
        .iter()
        .find(|r| r.spec.target == from)
        .map(|r| r.spec.commit.clone())
        .ok_or_else(|| format!("no record of {from}'s upstream commit"))?;
    Ok(RolloutSpec {
        target: from,
        commit,
        from: Some(last.spec.target.clone()),
        cache_clear: false,
        ..last.spec.clone()
    })
}

fn cluster_name(st: &ApiState) -> Result<String, ApiFailure> {
    st.store
        .list::<ClusterSpec>()?
        .into_iter()
        .next()
        .map(|c| c.metadata.name)
        .ok_or_else(|| {
            ApiFailure::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no cluster spec has been applied",
            )
        })
}

fn note(st: &ApiState, cluster: &str, reason: &str, message: String) -> Result<(), ApiFailure> {
    st.store.append_event(Event {
        seq: 0,
        time: chrono::Utc::now(),
        type_: EventType::Normal,
        kind: ClusterSpec::KIND.into(),
        name: cluster.into(),
        reason: reason.into(),
        message,
    })?;
    Ok(())
}

/// `POST /v1/release/{approve|retry}/{tag}`.
pub async fn word(
    State(st): State<ApiState>,
    Path((verb, tag)): Path<(String, String)>,
) -> Result<StatusCode, ApiFailure> {
    let word = match verb.as_str() {
        "approve" => Word::Approve,
        "retry" => Word::Retry,
        other => {
            return Err(ApiFailure::invalid(format!(
                "unknown release command {other:?}: approve or retry"
            )))
        }
    };
    if !is_valid_tag(&tag) {
        return Err(ApiFailure::invalid(format!(
            "{tag:?} is not a release tag (vX.Y.Z)"
        )));
    }
    let cluster = cluster_name(&st)?;
    let current = st.store.get::<ReleaseOverrides>(&cluster)?;
    let pre = current.as_ref().map_or(Precondition::MustNotExist, |c| {
        Precondition::ResourceVersion(c.metadata.resource_version)
    });
    let next = record(current.map(|c| c.spec).unwrap_or_default(), word, &tag);
    st.store.put_spec(&cluster, next, pre)?;
    note(
        &st,
        &cluster,
        if word == Word::Approve {
            "ReleaseApproved"
        } else {
            "ReleaseRetried"
        },
        format!("{verb} {tag} by an operator"),
    )?;
    (st.on_wake)(crate::reconcilers::release::key(&cluster));
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/rollouts/undo`: roll back to the release before the last rollout, and withdraw
/// that release until `vmctl release retry`.
pub async fn undo(
    State(st): State<ApiState>,
) -> Result<(StatusCode, Json<vmctl_protocol::api::SnapshotRequested>), ApiFailure> {
    let cluster = cluster_name(&st)?;
    let rollouts = st.store.list::<RolloutSpec>()?;
    let spec =
        undo_of(&rollouts).map_err(|m| ApiFailure::new(StatusCode::CONFLICT, "conflict", m))?;
    let withdrawn = spec.from.clone().unwrap_or_default();
    let current = st.store.get::<ReleaseOverrides>(&cluster)?;
    let pre = current.as_ref().map_or(Precondition::MustNotExist, |c| {
        Precondition::ResourceVersion(c.metadata.resource_version)
    });
    let mut o = current.map(|c| c.spec).unwrap_or_default();
    if !o.withdrawn.contains(&withdrawn) {
        o.withdrawn.push(withdrawn.clone());
    }
    o.retried.retain(|t| t != &withdrawn);
    st.store.put_spec(&cluster, o, pre)?;
    let name = format!(
        "undo-{}-{}",
        withdrawn.replace('.', "-"),
        chrono::Utc::now().format("%Y%m%dt%H%M%S")
    );
    let target = spec.target.clone();
    st.store.put_spec(&name, spec, Precondition::MustNotExist)?;
    note(&st, &cluster, "RolloutUndo", format!("rolling back from {withdrawn} to {target} ({name}); {withdrawn} is withdrawn until `vmctl release retry {withdrawn}`"))?;
    (st.on_wake)(ObjectKey::new(RolloutSpec::KIND, &name));
    Ok((
        StatusCode::ACCEPTED,
        Json(vmctl_protocol::api::SnapshotRequested { name }),
    ))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use vmctl_protocol::{rollout::RolloutStatus, ObjectMeta};

    use super::*;

    fn stored(
        target: &str,
        from: Option<&str>,
        phase: RolloutPhase,
        at: i64,
    ) -> Stored<RolloutSpec> {
        let t = chrono::DateTime::from_timestamp(at, 0).unwrap();
        Stored {
            metadata: ObjectMeta {
                name: target.into(),
                generation: 1,
                resource_version: 1,
                created_at: t,
                updated_at: t,
            },
            spec: RolloutSpec {
                target: target.into(),
                commit: format!("c-{target}"),
                repo_url: "r".into(),
                from: from.map(str::to_string),
                cache_clear: true,
                max_parallel: 1,
                min_healthy_time: Duration::ZERO,
                healthy_deadline: Duration::ZERO,
                progress_deadline: Duration::ZERO,
            },
            status: RolloutStatus {
                phase,
                phase_since: Some(t),
                ..Default::default()
            },
        }
    }

    #[test]
    fn undo_goes_back_to_the_previous_release_with_its_commit() {
        let rs = [
            stored("v4.3.0", None, RolloutPhase::Done, 1),
            stored("v4.3.1", Some("v4.3.0"), RolloutPhase::Done, 2),
        ];
        let u = undo_of(&rs).unwrap();
        assert_eq!(
            (u.target.as_str(), u.commit.as_str(), u.from.as_deref()),
            ("v4.3.0", "c-v4.3.0", Some("v4.3.1"))
        );
        assert!(!u.cache_clear);
        assert!(undo_of(&rs[..1]).unwrap_err().contains("first install"));
        let busy = [
            rs[0].clone(),
            stored("v4.3.1", Some("v4.3.0"), RolloutPhase::Roll, 2),
        ];
        assert!(undo_of(&busy).unwrap_err().contains("in flight"));
    }

    #[test]
    fn retry_clears_a_withdrawal_and_words_are_not_repeated() {
        let o = ReleaseOverrides {
            withdrawn: vec!["v4.3.1".into()],
            ..Default::default()
        };
        let o = record(record(o, Word::Retry, "v4.3.1"), Word::Retry, "v4.3.1");
        assert_eq!(o.retried, vec!["v4.3.1"]);
        assert!(o.withdrawn.is_empty());
        assert_eq!(record(o, Word::Approve, "v5.0.0").approved, vec!["v5.0.0"]);
    }
}
