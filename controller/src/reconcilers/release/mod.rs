//! The release reconciler: reads the upstream feed, asks the pure policy what the fleet should
//! run and when, records that decision in the cluster's status (`vmctl release plan`), and
//! starts a rollout when the time has come. Decisions are in `upstream::policy` and [`plan`].

pub mod plan;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use vmctl_protocol::{
    cluster::{ClusterSpec, ReleaseSpec},
    event::EventType,
    meta::{Condition, ConditionStatus},
    node::NodeSpec,
    pool::{PoolRole, PoolSpec},
    release::ReleaseOverrides,
    rollout::RolloutSpec,
    Resource,
};
use vmctl_state::Precondition;

use super::{store_err, Ctx};
use crate::{
    queue::{Action, ObjectKey, ReconcileError},
    upstream::{GithubConfig, ReleaseSource, UpdateCheckClient, UpdateCheckConfig, Upstream},
};

/// Condition type on the cluster: the upstream feed could be read and gave a usable answer.
pub const COND_RELEASE_FEED: &str = "ReleaseFeedReady";
/// Retry delay for a feed that failed (it is retried sooner than the normal check interval).
const FEED_RETRY: Duration = Duration::from_secs(60);

/// The upstream client, kept across reconciles so its ETag cache and rate limit carry over;
/// rebuilt when the release spec's endpoints change.
#[derive(Default)]
pub struct UpstreamSlot {
    current: Mutex<Option<(String, Arc<dyn ReleaseSource>)>>,
    token: Option<crate::upstream::GithubToken>,
}

impl UpstreamSlot {
    /// A slot whose GitHub client sends `token` (never logged).
    pub fn with_token(token: Option<crate::upstream::GithubToken>) -> Self {
        UpstreamSlot {
            current: Mutex::new(None),
            token,
        }
    }

    fn get(&self, spec: &ReleaseSpec) -> Result<Arc<dyn ReleaseSource>, String> {
        let key = format!(
            "{}|{}|{:?}",
            spec.github_api, spec.github_repo, spec.update_check_url
        );
        let mut slot = self.current.lock().expect("upstream slot poisoned");
        if let Some((k, u)) = slot.as_ref() {
            if *k == key {
                return Ok(u.clone());
            }
        }
        let (owner, repo) = spec
            .github_repo
            .split_once('/')
            .ok_or_else(|| format!("github_repo {:?} is not owner/name", spec.github_repo))?;
        let github = crate::upstream::GithubClient::new(GithubConfig {
            base_url: spec.github_api.clone(),
            owner: owner.into(),
            repo: repo.into(),
            token: self.token.clone(),
            ..GithubConfig::default()
        })
        .map_err(|e| e.to_string())?;
        let update_check = match &spec.update_check_url {
            Some(url) => Some(
                UpdateCheckClient::new(UpdateCheckConfig {
                    base_url: url.clone(),
                    ..UpdateCheckConfig::default()
                })
                .map_err(|e| e.to_string())?,
            ),
            None => None,
        };
        let upstream: Arc<dyn ReleaseSource> = Arc::new(Upstream::new(github, update_check));
        *slot = Some((key, upstream.clone()));
        Ok(upstream)
    }
}

/// The queue key of the release reconciler for a cluster.
pub fn key(cluster: &str) -> ObjectKey {
    ObjectKey::new("release", cluster)
}

/// Reconciles the cluster's releases.
///
/// # Errors
/// Store failures.
pub async fn reconcile(ctx: &Ctx, cluster: &str) -> Result<Action, ReconcileError> {
    let Some(c) = ctx.store.get::<ClusterSpec>(cluster).map_err(store_err)? else {
        return Ok(Action::AwaitChange);
    };
    let Some(spec) = c.spec.release.clone() else {
        return Ok(Action::AwaitChange);
    };
    let now = chrono::Utc::now();
    let upstream = match ctx.upstream.get(&spec) {
        Ok(u) => u,
        Err(e) => {
            return feed_failed(
                ctx,
                cluster,
                &format!("cannot set up the upstream client: {e}"),
            )
        }
    };
    let pools = ctx.store.list::<PoolSpec>().map_err(store_err)?;
    let live: Vec<Option<String>> = ctx
        .store
        .list::<NodeSpec>()
        .map_err(store_err)?
        .into_iter()
        .filter(|n| {
            pools.iter().any(|p| {
                p.metadata.name == n.spec.pool
                    && !matches!(p.spec.role, PoolRole::Proxy | PoolRole::Search)
            })
        })
        .map(|n| n.status.facts.and_then(|f| f.mastodon.live_release))
        .collect();
    let current = plan::fleet_version(&live);
    let overrides = ctx
        .store
        .get::<ReleaseOverrides>(cluster)
        .map_err(store_err)?
        .map(|o| o.spec)
        .unwrap_or_default();
    let mut policy = spec.policy.clone();
    policy.approved.extend(overrides.approved.iter().cloned());
    let feed = match upstream.releases(&current).await {
        Ok(f) if f.releases.is_empty() => {
            return feed_failed(ctx, cluster, "the upstream feed lists no releases")
        }
        Ok(f) => f,
        Err(e) => return feed_failed(ctx, cluster, &format!("cannot read the upstream feed: {e}")),
    };
    let decision = if live.iter().all(Option::is_none) {
        plan::install_decision(&feed.releases, &policy, now)
    } else {
        crate::upstream::decide(&feed.releases, &current, &policy, now)
    };
    let mut status = c.status.clone();
    status.release = Some(decision.clone());
    let message = feed.update_check_error.as_deref().map_or_else(
        || "the upstream feed was read".to_string(),
        |e| {
            format!("the feed was read; update-check failed ({e}), security rests on release notes")
        },
    );
    set_feed_condition(&mut status.conditions, true, "FeedRead", &message);
    if status != c.status {
        ctx.store
            .put_status::<ClusterSpec>(cluster, status, Precondition::None)
            .map_err(store_err)?;
    }

    let rollouts = ctx.store.list::<RolloutSpec>().map_err(store_err)?;
    let pairs: Vec<_> = rollouts.iter().map(|r| (&r.spec, &r.status)).collect();
    let unready = fleet_unready(ctx, &pools)?;
    match plan::next(
        &decision,
        &pairs,
        &overrides.retried,
        &overrides.withdrawn,
        unready,
        spec.check_interval,
        now,
    ) {
        plan::Next::Wait(d, _) => Ok(Action::Requeue(d)),
        plan::Next::Start(target) => {
            let commit = match upstream.tag_commit(&target).await {
                Ok(c) => c,
                Err(e) => {
                    return feed_failed(
                        ctx,
                        cluster,
                        &format!("cannot resolve {target}'s commit: {e}"),
                    )
                }
            };
            let body = feed
                .releases
                .iter()
                .find(|r| r.tag == target)
                .map(|r| r.body.clone())
                .unwrap_or_default();
            let from = live.iter().flatten().next().cloned();
            let rollout = RolloutSpec {
                target: target.clone(),
                commit,
                repo_url: spec.repo_url.clone(),
                from,
                cache_clear: body.contains("tootctl cache clear"),
                max_parallel: spec.max_parallel,
                min_healthy_time: spec.min_healthy_time,
                healthy_deadline: spec.healthy_deadline,
                progress_deadline: spec.progress_deadline,
            };
            let name = format!(
                "{}-{}",
                target.replace('.', "-"),
                now.format("%Y%m%dt%H%M%S")
            );
            ctx.store
                .put_spec(&name, rollout, Precondition::MustNotExist)
                .map_err(store_err)?;
            let why = if decision.security {
                "security release"
            } else {
                "release"
            };
            event(
                ctx,
                cluster,
                EventType::Normal,
                "RolloutStarted",
                &format!("rolling out {why} {target} ({name}): {}", decision.reason),
            );
            ctx.queue
                .enqueue(ObjectKey::new(RolloutSpec::KIND, &name), "rollout started");
            Ok(Action::Requeue(spec.check_interval))
        }
    }
}

/// Gathers what the readiness decision ([`plan::fleet_unready`]) looks at.
fn fleet_unready(
    ctx: &Ctx,
    pools: &[vmctl_protocol::resource::Stored<PoolSpec>],
) -> Result<Option<String>, ReconcileError> {
    let nodes = ctx.store.list::<NodeSpec>().map_err(store_err)?;
    let provisions = ctx
        .store
        .list::<vmctl_protocol::provision::ProvisionSpec>()
        .map_err(store_err)?;
    let in_flight = provisions
        .iter()
        .find(|p| !p.status.step.is_terminal())
        .map(|p| p.metadata.name.as_str());
    let readiness: Vec<plan::PoolReadiness> = pools
        .iter()
        .map(|p| plan::PoolReadiness {
            name: p.metadata.name.clone(),
            desired: p.spec.droplets.as_ref().map(|t| t.count),
            nodes: nodes
                .iter()
                .filter(|n| n.spec.pool == p.metadata.name)
                .map(|n| (n.metadata.name.clone(), n.status.reachable))
                .collect(),
        })
        .collect();
    Ok(plan::fleet_unready(&readiness, in_flight))
}

fn feed_failed(ctx: &Ctx, cluster: &str, message: &str) -> Result<Action, ReconcileError> {
    if let Some(c) = ctx.store.get::<ClusterSpec>(cluster).map_err(store_err)? {
        let mut status = c.status.clone();
        if set_feed_condition(&mut status.conditions, false, "FeedUnavailable", message) {
            event(
                ctx,
                cluster,
                EventType::Warning,
                "ReleaseFeedUnavailable",
                &format!("{message}; no rollout starts"),
            );
        }
        if status != c.status {
            ctx.store
                .put_status::<ClusterSpec>(cluster, status, Precondition::None)
                .map_err(store_err)?;
        }
    }
    Ok(Action::Requeue(FEED_RETRY))
}

fn set_feed_condition(
    conditions: &mut Vec<Condition>,
    ok: bool,
    reason: &str,
    message: &str,
) -> bool {
    Condition::upsert(
        conditions,
        Condition {
            type_: COND_RELEASE_FEED.into(),
            status: if ok {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            },
            reason: reason.into(),
            message: message.into(),
            last_transition: chrono::Utc::now(),
        },
    )
}

fn event(ctx: &Ctx, cluster: &str, type_: EventType, reason: &str, message: &str) {
    super::record::<ClusterSpec>(ctx, cluster, type_, reason, message);
}
