//! `vmctl status [--watch]`: the pool summary and node table from `GET /v1/status`.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use chrono::Utc;
use vmctl_protocol::{api::StatusView, Timestamp};

use super::output::{self, ago, or_dash, OutputFormat};
use super::CliError;
use crate::client::ApiClient;

/// Route of the status view.
pub(crate) const STATUS_PATH: &str = "/v1/status";

/// Clears the screen and homes the cursor: a redraw without flicker on terminals.
const CLEAR_SCREEN: &str = "\x1b[2J\x1b[H";

/// `--watch` settings.
pub(crate) struct Watch {
    /// Time between redraws.
    pub interval: Duration,
}

/// Runs `status`, once or (with `watch`) until Ctrl-C.
pub(crate) async fn run(
    client: &ApiClient,
    format: OutputFormat,
    watch: Option<Watch>,
) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    let Some(watch) = watch else {
        let view: StatusView = client.get_json(STATUS_PATH).await?;
        return print_once(&mut out, format, &view);
    };
    let tty = std::io::stdout().is_terminal();
    let mut first = true;
    // One listener for the whole watch, so a Ctrl-C during a fetch is not missed.
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let frame = match client.get_json::<StatusView>(STATUS_PATH).await {
            Ok(view) => frame(format, &view, Utc::now())?,
            // A watch outlives controller restarts: show the error and try again next tick.
            Err(e) => format!("error: {e}"),
        };
        if format == OutputFormat::Json {
            writeln!(out, "{}", frame.trim_end())?;
        } else if tty {
            writeln!(out, "{CLEAR_SCREEN}{frame}")?;
        } else {
            if !first {
                writeln!(out)?;
            }
            writeln!(out, "{frame}")?;
        }
        out.flush()?;
        first = false;
        tokio::select! {
            () = tokio::time::sleep(watch.interval) => {}
            _ = &mut ctrl_c => return Ok(()),
        }
    }
}

fn print_once(
    out: &mut impl Write,
    format: OutputFormat,
    view: &StatusView,
) -> Result<(), CliError> {
    match format {
        OutputFormat::Json => output::print_json(out, view),
        OutputFormat::Table => {
            writeln!(out, "{}", render(view, Utc::now()))?;
            Ok(())
        }
    }
}

/// One watch frame: a table, or one line of JSON.
fn frame(format: OutputFormat, view: &StatusView, now: Timestamp) -> Result<String, CliError> {
    match format {
        OutputFormat::Json => serde_json::to_string(view).map_err(CliError::Encode),
        OutputFormat::Table => Ok(render(view, now)),
    }
}

/// The status screen: cluster name, pool summary, node table.
pub(crate) fn render(view: &StatusView, now: Timestamp) -> String {
    let cluster = view
        .cluster
        .as_deref()
        .unwrap_or("(no cluster applied yet; run vmctl apply -f cluster.toml)");
    let mut text = format!("CLUSTER: {cluster}\n\n");

    if view.pools.is_empty() {
        text.push_str("No pools.\n");
    } else {
        let mut pools = output::table(&[
            "POOL",
            "ROLE",
            "DESIRED",
            "READY",
            "FAILED",
            "PROVISIONING",
            "SNAPSHOT",
            "RELEASES",
        ]);
        for p in &view.pools {
            pools.add_row(vec![
                p.name.clone(),
                p.role.as_str().to_owned(),
                or_dash(p.desired),
                format!("{}/{}", p.ready, p.total),
                p.failed.to_string(),
                output::list_or_dash(&p.provisioning),
                or_dash(p.newest_snapshot.as_ref()),
                output::list_or_dash(&p.releases),
            ]);
        }
        text.push_str(&output::render(&mut pools));
        text.push('\n');
    }
    text.push('\n');

    if view.nodes.is_empty() {
        text.push_str("No nodes.");
        return text;
    }
    let mut nodes = output::table(&[
        "NAME",
        "POOL",
        "ADDRESS",
        "DROPLET",
        "LB",
        "REACHABLE",
        "AGENT",
        "RELEASE",
        "PURITY",
        "LOAD",
        "MEM%",
        "DISK%",
        "LAST SEEN",
        "CONDITIONS",
    ]);
    for n in &view.nodes {
        nodes.add_row(vec![
            n.name.clone(),
            n.pool.clone(),
            n.address.clone(),
            or_dash(n.droplet_id),
            output::lb_membership(n.in_load_balancer).to_owned(),
            if n.reachable { "yes" } else { "no" }.to_owned(),
            or_dash(n.agent_version.as_ref()),
            or_dash(n.release.as_ref()),
            purity(&n.conditions),
            or_dash(n.load.map(|l| format!("{l:.2}"))),
            or_dash(n.memory_used_pct.map(|p| format!("{p:.0}"))),
            or_dash(n.disk_used_pct.map(|p| format!("{p:.0}"))),
            ago(now, n.last_seen),
            output::problem_conditions(&n.conditions),
        ]);
    }
    text.push_str(&output::render(&mut nodes));
    text
}

/// `pure` when the live tree is upstream's tag unmodified, the drift's reason when not, `-`
/// when unknown.
fn purity(conditions: &[vmctl_protocol::Condition]) -> String {
    match vmctl_protocol::Condition::find(conditions, "CodePurity") {
        Some(c) if c.status == vmctl_protocol::ConditionStatus::True => "pure".into(),
        Some(c) => c.reason.clone(),
        None => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use vmctl_protocol::{
        api::{NodeView, PoolView},
        pool::PoolRole,
        Condition, ConditionStatus,
    };

    #[test]
    fn renders_pools_and_nodes_with_problems_only() {
        let now = DateTime::from_timestamp(1_700_000_100, 0).unwrap();
        let seen = DateTime::from_timestamp(1_700_000_097, 0).unwrap();
        let view = StatusView {
            cluster: Some("vmst".into()),
            pools: vec![
                PoolView {
                    name: "web".into(),
                    role: PoolRole::Web,
                    ready: 1,
                    total: 2,
                    releases: vec!["v4.3.1".into()],
                    desired: Some(2),
                    failed: 1,
                    droplet_ids: vec![11, 12],
                    provisioning: vec!["web-p1".into()],
                    newest_snapshot: Some("vmst-web-1".into()),
                },
                PoolView {
                    name: "exec".into(),
                    role: PoolRole::Exec,
                    ready: 0,
                    total: 0,
                    releases: vec![],
                    desired: None,
                    failed: 0,
                    droplet_ids: vec![],
                    provisioning: vec![],
                    newest_snapshot: None,
                },
            ],
            nodes: vec![
                NodeView {
                    name: "web-1".into(),
                    pool: "web".into(),
                    address: "10.0.0.5:22".into(),
                    reachable: true,
                    agent_version: Some("0.1.0".into()),
                    release: Some("v4.3.1".into()),
                    load: Some(0.5),
                    memory_used_pct: Some(37.4),
                    disk_used_pct: Some(61.0),
                    last_seen: Some(seen),
                    conditions: vec![],
                    droplet_id: Some(11),
                    droplet_status: Some("active".into()),
                    in_load_balancer: Some(true),
                },
                NodeView {
                    name: "web-2".into(),
                    pool: "web".into(),
                    address: "10.0.0.6:22".into(),
                    reachable: false,
                    agent_version: None,
                    release: None,
                    load: None,
                    memory_used_pct: None,
                    disk_used_pct: None,
                    last_seen: None,
                    conditions: vec![Condition {
                        type_: "Reachable".into(),
                        status: ConditionStatus::False,
                        reason: "ConnectRefused".into(),
                        message: "refused".into(),
                        last_transition: seen,
                    }],
                    droplet_id: None,
                    droplet_status: None,
                    in_load_balancer: None,
                },
            ],
        };
        let text = render(&view, now);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "CLUSTER: vmst");
        let split = |i: usize| lines[i].split_whitespace().collect::<Vec<_>>();
        assert_eq!(
            split(2),
            [
                "POOL",
                "ROLE",
                "DESIRED",
                "READY",
                "FAILED",
                "PROVISIONING",
                "SNAPSHOT",
                "RELEASES"
            ],
            "{text}"
        );
        assert_eq!(
            split(3),
            [
                "web",
                "web",
                "2",
                "1/2",
                "1",
                "web-p1",
                "vmst-web-1",
                "v4.3.1"
            ]
        );
        assert_eq!(split(4), ["exec", "exec", "-", "0/0", "0", "-", "-", "-"]);
        assert!(lines[6].starts_with("NAME "), "{text}");
        assert_eq!(
            split(7),
            [
                "web-1",
                "web",
                "10.0.0.5:22",
                "11",
                "in",
                "yes",
                "0.1.0",
                "v4.3.1",
                "-",
                "0.50",
                "37",
                "61",
                "3s",
                "ago",
                "-"
            ]
        );
        let web2 = split(8);
        assert_eq!(web2[3..5], ["-", "-"]);
        assert_eq!(
            web2[web2.len() - 2..],
            ["never", "Reachable=False(ConnectRefused)"]
        );
    }

    #[test]
    fn an_empty_controller_says_so() {
        let view = StatusView {
            cluster: None,
            pools: vec![],
            nodes: vec![],
        };
        let text = render(&view, Utc::now());
        assert!(text.contains("no cluster applied yet"));
        assert!(text.contains("No pools.") && text.contains("No nodes."));
    }
}
