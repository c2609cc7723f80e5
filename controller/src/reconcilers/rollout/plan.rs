//! The rollout state machine's decisions. Pure: the executor passes what it observed (nodes,
//! health of the batch, time) and the plan says what to do next. Every decision a reviewer wants
//! to check about a release is here.

use std::time::Duration;

use vmctl_protocol::{
    meta::Timestamp,
    pool::PoolRole,
    release_ops::MigratePhase,
    rollout::{NodeProgress, NodeStep, RolloutPhase, RolloutSpec, RolloutStatus},
};

/// A node the rollout touches, in roll order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollNode {
    /// Name.
    pub name: String,
    /// Its pool.
    pub pool: String,
    /// Its pool's role.
    pub role: PoolRole,
    /// Whether its agent answers.
    pub reachable: bool,
}

/// What the executor observed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    /// Every node that runs Mastodon, any order (the plan sorts).
    pub nodes: Vec<RollNode>,
    /// The batch's health round, when the executor ran one for this pass: the nodes that passed.
    pub health: Option<Vec<String>>,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Prepare the release on these nodes, in parallel.
    Prepare(Vec<String>),
    /// Run a migration phase on the exec node (once-only: the agent keeps a marker).
    Migrate(MigratePhase, String),
    /// `tootctl cache clear` on the exec node (once-only).
    CacheClear(String),
    /// Begin this batch (all at `Drain`).
    StartBatch(Vec<String>),
    /// Carry out `step` on `node`; the executor then records the next step.
    Step(String, NodeStep),
    /// Check health of these batch nodes (those in `Check` or `Soak`).
    Probe(Vec<String>),
    /// Record these nodes as done (soaked long enough and back in the balancer).
    Promote(Vec<String>),
    /// A soaking node failed a check: back to `Check`, with its healthy deadline from now.
    Regress(String),
    /// Move to a phase.
    Enter(RolloutPhase),
    /// Nothing to do now; look again after this long.
    Wait(Duration),
    /// Something failed before the post-deploy migrations: put every switched node back.
    Revert(String),
    /// Something failed after them: stop and alert.
    Halt(String),
}

/// Rank of a role in roll order: workers first (they only need to be quiet), then the
/// scheduler node, then web and streaming (they serve users and go through the balancer).
fn order(role: PoolRole) -> Option<u8> {
    match role {
        PoolRole::Sidekiq => Some(0),
        PoolRole::Exec => Some(1),
        PoolRole::Web => Some(2),
        PoolRole::Streaming => Some(3),
        PoolRole::Proxy | PoolRole::Search => None,
    }
}

/// The nodes that run Mastodon, in roll order (role, pool, name).
pub fn roll_order(nodes: &[RollNode]) -> Vec<&RollNode> {
    let mut out: Vec<&RollNode> = nodes.iter().filter(|n| order(n.role).is_some()).collect();
    out.sort_by(|a, b| (order(a.role), &a.pool, &a.name).cmp(&(order(b.role), &b.pool, &b.name)));
    out
}

/// The exec node, where once-per-cluster steps run.
pub fn exec_node(nodes: &[RollNode]) -> Option<&RollNode> {
    roll_order(nodes)
        .into_iter()
        .find(|n| n.role == PoolRole::Exec)
}

fn elapsed(since: Option<Timestamp>, now: Timestamp) -> Duration {
    since.map_or(Duration::ZERO, |t| {
        now.signed_duration_since(t).to_std().unwrap_or_default()
    })
}

/// The step after `step` for a node of `role`. Sidekiq and exec nodes are never in a balancer
/// and have no HTTP health to soak on beyond their heartbeat, but they go through the same
/// steps so one shape fits every pool.
pub fn next_step(step: NodeStep) -> NodeStep {
    match step {
        NodeStep::Drain => NodeStep::Switch,
        NodeStep::Switch => NodeStep::Restart,
        NodeStep::Restart => NodeStep::Check,
        NodeStep::Check => NodeStep::Soak,
        NodeStep::Soak => NodeStep::Undrain,
        NodeStep::Undrain | NodeStep::Done => NodeStep::Done,
    }
}

/// Decides the rollout's next move.
pub fn plan(spec: &RolloutSpec, status: &RolloutStatus, obs: &Observed, now: Timestamp) -> Action {
    if status.paused && !matches!(status.phase, RolloutPhase::Reverting) {
        return Action::Wait(Duration::from_secs(5));
    }
    let stuck = elapsed(status.phase_since, now) > spec.progress_deadline;
    let order = roll_order(&obs.nodes);
    match status.phase {
        RolloutPhase::Prepare => {
            let todo: Vec<String> = order
                .iter()
                .filter(|n| !status.prepared.contains(&n.name))
                .map(|n| n.name.clone())
                .collect();
            if order.is_empty() {
                return Action::Revert("no node runs Mastodon: nothing to roll out to".into());
            }
            if todo.is_empty() {
                return Action::Enter(RolloutPhase::PreMigrate);
            }
            if stuck {
                return Action::Revert(format!(
                    "prepare did not finish within {:?} on {}",
                    spec.progress_deadline,
                    todo.join(", ")
                ));
            }
            // Prepare needs every node's agent; an unreachable one is waited for until the
            // progress deadline, not skipped (a node left on the old release would split the
            // fleet).
            if order.iter().any(|n| todo.contains(&n.name) && !n.reachable) {
                return Action::Wait(Duration::from_secs(1));
            }
            Action::Prepare(todo)
        }
        RolloutPhase::PreMigrate => match exec_node(&obs.nodes) {
            Some(exec) => Action::Migrate(MigratePhase::PreDeploy, exec.name.clone()),
            None => Action::Revert("no exec node to run migrations on".into()),
        },
        RolloutPhase::Roll => roll(spec, status, obs, &order, now),
        RolloutPhase::PostMigrate => match exec_node(&obs.nodes) {
            Some(exec) => Action::Migrate(MigratePhase::PostDeploy, exec.name.clone()),
            None => Action::Halt("no exec node to run post-deploy migrations on".into()),
        },
        RolloutPhase::CacheClear => match (spec.cache_clear, exec_node(&obs.nodes)) {
            (false, _) => Action::Enter(RolloutPhase::Finish),
            (true, Some(exec)) => Action::CacheClear(exec.name.clone()),
            (true, None) => Action::Halt("no exec node for tootctl cache clear".into()),
        },
        RolloutPhase::Finish => Action::Enter(RolloutPhase::Done),
        RolloutPhase::Reverting
        | RolloutPhase::Done
        | RolloutPhase::Reverted
        | RolloutPhase::Halted => Action::Wait(Duration::from_secs(30)),
    }
}

fn roll(
    spec: &RolloutSpec,
    status: &RolloutStatus,
    obs: &Observed,
    order: &[&RollNode],
    now: Timestamp,
) -> Action {
    if status.batch.is_empty() {
        let remaining: Vec<&&RollNode> = order
            .iter()
            .filter(|n| !status.rolled.contains(&n.name))
            .collect();
        let Some(first) = remaining.first() else {
            return Action::Enter(RolloutPhase::PostMigrate);
        };
        // A batch never spans pools: pools roll one after another.
        let batch: Vec<String> = remaining
            .iter()
            .filter(|n| n.pool == first.pool)
            .take(spec.max_parallel.max(1) as usize)
            .map(|n| n.name.clone())
            .collect();
        return Action::StartBatch(batch);
    }
    // Health first: a node that missed its deadline fails the rollout.
    for p in &status.batch {
        if p.step == NodeStep::Check
            && elapsed(Some(p.since), now) > spec.healthy_deadline
            && !healthy(obs, &p.node)
        {
            return Action::Revert(format!(
                "{} did not pass its health checks within {:?}",
                p.node, spec.healthy_deadline
            ));
        }
        if p.step == NodeStep::Soak && obs.health.is_some() && !healthy(obs, &p.node) {
            // One failed check (a probe racing a reconnect) restarts the soak from `Check`;
            // a node that stays unhealthy then fails at the healthy deadline.
            return Action::Regress(p.node.clone());
        }
        if elapsed(Some(p.since), now) > spec.progress_deadline && p.step != NodeStep::Soak {
            return Action::Revert(format!(
                "{} was stuck at {:?} longer than {:?}",
                p.node, p.step, spec.progress_deadline
            ));
        }
    }
    // Actions that need the agent go first, in batch order.
    for p in &status.batch {
        match p.step {
            NodeStep::Drain | NodeStep::Switch | NodeStep::Restart | NodeStep::Undrain => {
                return Action::Step(p.node.clone(), p.step);
            }
            _ => {}
        }
    }
    let checking: Vec<String> = status
        .batch
        .iter()
        .filter(|p| matches!(p.step, NodeStep::Check | NodeStep::Soak))
        .map(|p| p.node.clone())
        .collect();
    if !checking.is_empty() && obs.health.is_none() {
        return Action::Probe(checking);
    }
    // Move healthy nodes on: Check → Soak at once; Soak → Undrain after min_healthy_time.
    for p in &status.batch {
        if p.step == NodeStep::Check && healthy(obs, &p.node) {
            return Action::Step(p.node.clone(), NodeStep::Check);
        }
        if p.step == NodeStep::Soak
            && healthy(obs, &p.node)
            && elapsed(Some(p.since), now) >= spec.min_healthy_time
        {
            return Action::Step(p.node.clone(), NodeStep::Soak);
        }
    }
    let done: Vec<String> = status
        .batch
        .iter()
        .filter(|p| p.step == NodeStep::Done)
        .map(|p| p.node.clone())
        .collect();
    if done.len() == status.batch.len() {
        return Action::Promote(done);
    }
    let soak_left = status
        .batch
        .iter()
        .filter(|p| p.step == NodeStep::Soak)
        .map(|p| {
            spec.min_healthy_time
                .saturating_sub(elapsed(Some(p.since), now))
        })
        .min()
        .unwrap_or(Duration::from_millis(250));
    Action::Wait(soak_left.clamp(Duration::from_millis(100), Duration::from_millis(500)))
}

fn healthy(obs: &Observed, node: &str) -> bool {
    obs.health
        .as_ref()
        .is_some_and(|h| h.iter().any(|n| n == node))
}

/// The upstream unit a node of `role` runs; `None` for roles without Mastodon.
pub fn unit_of(role: PoolRole) -> Option<&'static str> {
    match role {
        PoolRole::Web => Some("mastodon-web"),
        PoolRole::Streaming => Some("mastodon-streaming"),
        PoolRole::Sidekiq | PoolRole::Exec => Some("mastodon-sidekiq"),
        PoolRole::Proxy | PoolRole::Search => None,
    }
}

/// Whether a node precompiles assets: web nodes, and nodes whose Sidekiq sends mail.
pub fn needs_assets(role: PoolRole, queues: &[String]) -> bool {
    role == PoolRole::Web || queues.iter().any(|q| q == "mailers")
}

/// The `-q` queues a node's Sidekiq gets: its pool's, for Sidekiq and exec nodes only.
pub fn service_queues(role: PoolRole, queues: &[String]) -> Vec<String> {
    if matches!(role, PoolRole::Sidekiq | PoolRole::Exec) {
        queues.to_vec()
    } else {
        Vec::new()
    }
}

/// Starts every node of a batch at `Drain`.
pub fn new_batch(nodes: &[String], now: Timestamp) -> Vec<NodeProgress> {
    nodes
        .iter()
        .map(|n| NodeProgress {
            node: n.clone(),
            step: NodeStep::Drain,
            since: now,
        })
        .collect()
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
