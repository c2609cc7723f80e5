use chrono::DateTime;

use super::*;

fn at(s: i64) -> Timestamp {
    DateTime::from_timestamp(s, 0).unwrap()
}

fn spec() -> RolloutSpec {
    RolloutSpec {
        target: "v4.3.1".into(),
        commit: "abc".into(),
        repo_url: "/repo".into(),
        from: Some("v4.3.0".into()),
        cache_clear: true,
        max_parallel: 2,
        min_healthy_time: Duration::from_secs(10),
        healthy_deadline: Duration::from_secs(30),
        progress_deadline: Duration::from_secs(600),
    }
}

fn node(name: &str, pool: &str, role: PoolRole) -> RollNode {
    RollNode {
        name: name.into(),
        pool: pool.into(),
        role,
        reachable: true,
    }
}

fn fleet() -> Vec<RollNode> {
    vec![
        node("web-1", "web", PoolRole::Web),
        node("web-2", "web", PoolRole::Web),
        node("web-3", "web", PoolRole::Web),
        node("sk-1", "sidekiq", PoolRole::Sidekiq),
        node("exec-1", "exec", PoolRole::Exec),
        node("st-1", "streaming", PoolRole::Streaming),
        node("px-1", "proxy", PoolRole::Proxy),
    ]
}

fn status(phase: RolloutPhase) -> RolloutStatus {
    RolloutStatus {
        phase,
        phase_since: Some(at(0)),
        ..Default::default()
    }
}

fn obs() -> Observed {
    Observed {
        nodes: fleet(),
        health: None,
    }
}

#[test]
fn workers_roll_first_then_the_scheduler_then_web_and_streaming_and_proxies_never() {
    let f = fleet();
    let names: Vec<&str> = roll_order(&f).iter().map(|n| n.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["sk-1", "exec-1", "web-1", "web-2", "web-3", "st-1"]
    );
}

#[test]
fn prepare_covers_every_mastodon_node_then_premigrates_on_exec() {
    assert_eq!(
        plan(&spec(), &status(RolloutPhase::Prepare), &obs(), at(1)),
        Action::Prepare(vec![
            "sk-1".into(),
            "exec-1".into(),
            "web-1".into(),
            "web-2".into(),
            "web-3".into(),
            "st-1".into()
        ])
    );
    let mut s = status(RolloutPhase::Prepare);
    s.prepared = roll_order(&fleet())
        .iter()
        .map(|n| n.name.clone())
        .collect();
    assert_eq!(
        plan(&spec(), &s, &obs(), at(1)),
        Action::Enter(RolloutPhase::PreMigrate)
    );
    assert_eq!(
        plan(&spec(), &status(RolloutPhase::PreMigrate), &obs(), at(1)),
        Action::Migrate(MigratePhase::PreDeploy, "exec-1".into())
    );
}

#[test]
fn a_prepare_that_outlives_the_progress_deadline_reverts() {
    assert!(matches!(
        plan(&spec(), &status(RolloutPhase::Prepare), &obs(), at(601)),
        Action::Revert(_)
    ));
}

#[test]
fn batches_stay_within_a_pool_and_respect_max_parallel() {
    let mut s = status(RolloutPhase::Roll);
    assert_eq!(
        plan(&spec(), &s, &obs(), at(1)),
        Action::StartBatch(vec!["sk-1".into()])
    );
    s.rolled = vec!["sk-1".into(), "exec-1".into()];
    assert_eq!(
        plan(&spec(), &s, &obs(), at(1)),
        Action::StartBatch(vec!["web-1".into(), "web-2".into()])
    );
    s.rolled.extend(["web-1".into(), "web-2".into()]);
    assert_eq!(
        plan(&spec(), &s, &obs(), at(1)),
        Action::StartBatch(vec!["web-3".into()])
    );
    s.rolled.extend(["web-3".into(), "st-1".into()]);
    assert_eq!(
        plan(&spec(), &s, &obs(), at(1)),
        Action::Enter(RolloutPhase::PostMigrate)
    );
}

#[test]
fn a_node_walks_drain_switch_restart_check_soak_undrain() {
    let mut s = status(RolloutPhase::Roll);
    s.batch = new_batch(&["web-1".into()], at(0));
    assert_eq!(
        plan(&spec(), &s, &obs(), at(1)),
        Action::Step("web-1".into(), NodeStep::Drain)
    );
    for (from, to) in [
        (NodeStep::Drain, NodeStep::Switch),
        (NodeStep::Switch, NodeStep::Restart),
        (NodeStep::Restart, NodeStep::Check),
    ] {
        assert_eq!(next_step(from), to);
    }
    s.batch[0].step = NodeStep::Check;
    assert_eq!(
        plan(&spec(), &s, &obs(), at(1)),
        Action::Probe(vec!["web-1".into()])
    );
    let healthy = Observed {
        nodes: fleet(),
        health: Some(vec!["web-1".into()]),
    };
    assert_eq!(
        plan(&spec(), &s, &healthy, at(1)),
        Action::Step("web-1".into(), NodeStep::Check)
    );
    s.batch[0].step = NodeStep::Soak;
    s.batch[0].since = at(1);
    assert!(
        matches!(plan(&spec(), &s, &healthy, at(5)), Action::Wait(_)),
        "soaking"
    );
    assert_eq!(
        plan(&spec(), &s, &healthy, at(11)),
        Action::Step("web-1".into(), NodeStep::Soak)
    );
    s.batch[0].step = NodeStep::Undrain;
    assert_eq!(
        plan(&spec(), &s, &obs(), at(12)),
        Action::Step("web-1".into(), NodeStep::Undrain)
    );
    s.batch[0].step = NodeStep::Done;
    assert_eq!(
        plan(&spec(), &s, &obs(), at(12)),
        Action::Promote(vec!["web-1".into()])
    );
}

#[test]
fn an_unhealthy_node_reverts_before_the_post_deploy_migrations() {
    let mut s = status(RolloutPhase::Roll);
    s.batch = new_batch(&["web-1".into()], at(0));
    s.batch[0].step = NodeStep::Check;
    let none_healthy = Observed {
        nodes: fleet(),
        health: Some(vec![]),
    };
    assert!(
        matches!(plan(&spec(), &s, &none_healthy, at(10)), Action::Wait(_)),
        "still within the healthy deadline"
    );
    assert!(
        matches!(plan(&spec(), &s, &none_healthy, at(31)), Action::Revert(m) if m.contains("web-1"))
    );
    s.batch[0].step = NodeStep::Soak;
    assert_eq!(
        plan(&spec(), &s, &none_healthy, at(5)),
        Action::Regress("web-1".into()),
        "a blip re-checks"
    );
}

#[test]
fn after_post_deploy_migrations_failures_halt_instead() {
    let o = Observed {
        nodes: fleet()
            .into_iter()
            .filter(|n| n.role != PoolRole::Exec)
            .collect(),
        health: None,
    };
    assert!(matches!(
        plan(&spec(), &status(RolloutPhase::PostMigrate), &o, at(1)),
        Action::Halt(_)
    ));
    assert_eq!(
        plan(&spec(), &status(RolloutPhase::CacheClear), &obs(), at(1)),
        Action::CacheClear("exec-1".into())
    );
    let mut no_clear = spec();
    no_clear.cache_clear = false;
    assert_eq!(
        plan(&no_clear, &status(RolloutPhase::CacheClear), &obs(), at(1)),
        Action::Enter(RolloutPhase::Finish)
    );
}

#[test]
fn a_paused_rollout_waits() {
    let mut s = status(RolloutPhase::Roll);
    s.paused = true;
    assert!(matches!(plan(&spec(), &s, &obs(), at(1)), Action::Wait(_)));
}

#[test]
fn units_assets_and_queues_follow_the_role() {
    let mail = vec!["default".to_string(), "mailers".to_string()];
    assert_eq!(unit_of(PoolRole::Exec), Some("mastodon-sidekiq"));
    assert_eq!(unit_of(PoolRole::Proxy), None);
    assert!(needs_assets(PoolRole::Web, &[]));
    assert!(needs_assets(PoolRole::Sidekiq, &mail));
    assert!(!needs_assets(PoolRole::Streaming, &[]));
    assert_eq!(service_queues(PoolRole::Sidekiq, &mail), mail);
    assert!(service_queues(PoolRole::Web, &mail).is_empty());
}
