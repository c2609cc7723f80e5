//! Tables for the controller's persisted jobs, `vmctl get provisions` and `vmctl get
//! snapshots`. Pure: stored objects in, text out.

use vmctl_protocol::{
    provision::{ProvisionReason, ProvisionSpec, ProvisionStep},
    resource::Stored,
    snapshot::{SnapshotSpec, SnapshotStep},
    Timestamp,
};

use super::output::{self, or_dash};

/// Route listing provisions.
pub(crate) const PROVISIONS_PATH: &str = "/v1/provisions";
/// Route listing snapshot jobs.
pub(crate) const SNAPSHOTS_PATH: &str = "/v1/snapshots";

/// The provision table.
pub(crate) fn render_provisions(items: &[Stored<ProvisionSpec>], now: Timestamp) -> String {
    let mut t = output::table(&["NAME", "POOL", "REASON", "STEP", "DROPLET", "AGE", "ERROR"]);
    for p in items {
        t.add_row(vec![
            p.metadata.name.clone(),
            p.spec.pool.clone(),
            reason(&p.spec.reason),
            provision_step(p.status.step).to_owned(),
            or_dash(p.status.droplet_id),
            output::age(now, p.metadata.created_at),
            or_dash(p.status.last_error.as_ref()),
        ]);
    }
    output::render(&mut t)
}

/// The snapshot job table.
pub(crate) fn render_snapshots(items: &[Stored<SnapshotSpec>], now: Timestamp) -> String {
    let mut t = output::table(&[
        "NAME",
        "POOL",
        "DROPLET",
        "STEP",
        "SNAPSHOT ID",
        "AGE",
        "ERROR",
    ]);
    for s in items {
        t.add_row(vec![
            s.metadata.name.clone(),
            s.spec.pool.clone(),
            s.spec.droplet_id.to_string(),
            snapshot_step(s.status.step).to_owned(),
            or_dash(s.status.snapshot_id.as_ref()),
            output::age(now, s.metadata.created_at),
            or_dash(s.status.last_error.as_ref()),
        ]);
    }
    output::render(&mut t)
}

/// `scale-up`, or `replace NODE`.
fn reason(r: &ProvisionReason) -> String {
    match r {
        ProvisionReason::ScaleUp => "scale-up".to_owned(),
        ProvisionReason::Replace { node, .. } => format!("replace {node}"),
    }
}

/// The step as the JSON spells it, so a table and `-o json` agree.
fn provision_step(step: ProvisionStep) -> &'static str {
    match step {
        ProvisionStep::Create => "create",
        ProvisionStep::WaitActive => "wait_active",
        ProvisionStep::Bootstrap => "bootstrap",
        ProvisionStep::AddToLoadBalancer => "add_to_load_balancer",
        ProvisionStep::DeleteOld => "delete_old",
        ProvisionStep::Done => "done",
        ProvisionStep::Failed => "failed",
    }
}

/// The step as the JSON spells it.
fn snapshot_step(step: SnapshotStep) -> &'static str {
    match step {
        SnapshotStep::Request => "request",
        SnapshotStep::Wait => "wait",
        SnapshotStep::Prune => "prune",
        SnapshotStep::Done => "done",
        SnapshotStep::Failed => "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use vmctl_protocol::{
        provision::ProvisionStatus, snapshot::SnapshotStatus, Object, ObjectMeta,
    };

    fn meta(name: &str) -> ObjectMeta {
        let t = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        ObjectMeta {
            name: name.into(),
            generation: 1,
            resource_version: 1,
            created_at: t,
            updated_at: t,
        }
    }

    fn row(text: &str, i: usize) -> Vec<&str> {
        text.lines().nth(i).unwrap().split_whitespace().collect()
    }

    #[test]
    fn step_names_match_the_json() {
        for step in [
            ProvisionStep::Create,
            ProvisionStep::WaitActive,
            ProvisionStep::Bootstrap,
            ProvisionStep::AddToLoadBalancer,
            ProvisionStep::DeleteOld,
            ProvisionStep::Done,
            ProvisionStep::Failed,
        ] {
            assert_eq!(
                serde_json::to_value(step).unwrap(),
                provision_step(step),
                "{step:?}"
            );
        }
        for step in [
            SnapshotStep::Request,
            SnapshotStep::Wait,
            SnapshotStep::Prune,
            SnapshotStep::Done,
            SnapshotStep::Failed,
        ] {
            assert_eq!(
                serde_json::to_value(step).unwrap(),
                snapshot_step(step),
                "{step:?}"
            );
        }
    }

    #[test]
    fn provision_rows_name_the_reason_step_and_error() {
        let now = DateTime::from_timestamp(1_700_000_300, 0).unwrap();
        let replace = Object {
            metadata: meta("web-7f3a"),
            spec: ProvisionSpec {
                pool: "web".into(),
                droplet_name: "web-7f3a".into(),
                image_id: 99,
                reason: ProvisionReason::Replace {
                    node: "web-3".into(),
                    droplet_id: 13,
                    cause: "unreachable".into(),
                },
            },
            status: ProvisionStatus {
                step: ProvisionStep::Bootstrap,
                droplet_id: Some(21),
                last_error: Some("agent not answering".into()),
                ..ProvisionStatus::default()
            },
        };
        let scale = Object {
            metadata: meta("web-0c1d"),
            spec: ProvisionSpec {
                reason: ProvisionReason::ScaleUp,
                ..replace.spec.clone()
            },
            status: ProvisionStatus::default(),
        };
        let text = render_provisions(&[replace, scale], now);
        assert_eq!(
            row(&text, 0),
            ["NAME", "POOL", "REASON", "STEP", "DROPLET", "AGE", "ERROR"]
        );
        assert_eq!(
            row(&text, 1),
            [
                "web-7f3a",
                "web",
                "replace",
                "web-3",
                "bootstrap",
                "21",
                "5m",
                "agent",
                "not",
                "answering"
            ]
        );
        assert_eq!(
            row(&text, 2),
            ["web-0c1d", "web", "scale-up", "create", "-", "5m", "-"]
        );
    }

    #[test]
    fn snapshot_rows_show_the_droplet_and_snapshot_id() {
        let now = DateTime::from_timestamp(1_700_000_030, 0).unwrap();
        let job = Object {
            metadata: meta("web-snap-1"),
            spec: SnapshotSpec {
                pool: "web".into(),
                droplet_id: 11,
                name: "vmst-web-v4-20240101".into(),
            },
            status: SnapshotStatus {
                step: SnapshotStep::Done,
                snapshot_id: Some("5150".into()),
                ..SnapshotStatus::default()
            },
        };
        let text = render_snapshots(&[job], now);
        assert!(text.starts_with("NAME "), "{text}");
        assert_eq!(
            row(&text, 1),
            ["web-snap-1", "web", "11", "done", "5150", "30s", "-"]
        );
    }
}
