//! `vmctl rollout status|pause|resume|abort`: watch and steer the release rollout in flight.

use std::io::Write;

use comfy_table::Table;
use vmctl_protocol::{resource::Stored, rollout::RolloutSpec};

use super::output::{self, OutputFormat};
use super::CliError;
use crate::client::ApiClient;

/// What `vmctl rollout` can do.
#[derive(Debug, clap::Subcommand)]
pub enum RolloutCommand {
    /// The rollout in flight (else the newest): phase, batch, progress, last error.
    Status,
    /// Finish the current step, then start no new one.
    Pause {
        /// Rollout name (default: the one in flight).
        name: Option<String>,
    },
    /// Carry on after a pause.
    Resume {
        /// Rollout name (default: the one in flight).
        name: Option<String>,
    },
    /// Give up: switch touched nodes back (before post-deploy migrations) or halt (after).
    Abort {
        /// Rollout name (default: the one in flight).
        name: Option<String>,
    },
    /// Roll the fleet back to the release before the last rollout; that release is then
    /// withdrawn until `vmctl release retry`.
    Undo,
}

/// Runs a `rollout` subcommand.
///
/// # Errors
/// API failures, or no rollout to act on.
pub(crate) async fn run(
    client: &ApiClient,
    format: OutputFormat,
    command: &RolloutCommand,
) -> Result<(), CliError> {
    if matches!(command, RolloutCommand::Undo) {
        let started: vmctl_protocol::api::SnapshotRequested = client
            .post_json("/v1/rollouts/undo", &serde_json::json!({}))
            .await?;
        writeln!(std::io::stdout().lock(), "rollout {} started", started.name)?;
        return Ok(());
    }
    let current: Option<Stored<RolloutSpec>> = client.get_json("/v1/rollouts/current").await?;
    let (verb, name) = match command {
        RolloutCommand::Status => return print(format, current.as_ref()),
        RolloutCommand::Pause { name } => ("pause", name),
        RolloutCommand::Resume { name } => ("resume", name),
        RolloutCommand::Abort { name } => ("abort", name),
        RolloutCommand::Undo => unreachable!("handled above"),
    };
    let name = match (name, &current) {
        (Some(n), _) => n.clone(),
        (None, Some(r)) => r.metadata.name.clone(),
        (None, None) => {
            return Err(CliError::NotFound {
                kind: "rollout",
                name: "(in flight)".into(),
            })
        }
    };
    crate::config::check_object_name(&name).map_err(|reason| CliError::BadName {
        kind: "rollout",
        reason,
    })?;
    client
        .post_empty(&format!("/v1/rollouts/{name}/{verb}"))
        .await?;
    writeln!(std::io::stdout().lock(), "rollout {name}: {verb} requested")?;
    Ok(())
}

fn print(format: OutputFormat, r: Option<&Stored<RolloutSpec>>) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    if format == OutputFormat::Json {
        return output::print_json(&mut out, &r);
    }
    let Some(r) = r else {
        writeln!(out, "no rollout yet")?;
        return Ok(());
    };
    let s = &r.status;
    let mut t = Table::new();
    t.load_preset(comfy_table::presets::NOTHING);
    let batch: Vec<String> = s
        .batch
        .iter()
        .map(|p| format!("{}:{:?}", p.node, p.step))
        .collect();
    for (k, v) in [
        ("ROLLOUT", r.metadata.name.clone()),
        (
            "TARGET",
            format!("{} ({})", r.spec.target, short(&r.spec.commit)),
        ),
        ("FROM", r.spec.from.clone().unwrap_or_else(|| "-".into())),
        (
            "PHASE",
            format!("{:?}{}", s.phase, if s.paused { " (paused)" } else { "" }),
        ),
        ("PREPARED", s.prepared.len().to_string()),
        (
            "ROLLED",
            if s.rolled.is_empty() {
                "-".into()
            } else {
                s.rolled.join(", ")
            },
        ),
        (
            "BATCH",
            if batch.is_empty() {
                "-".into()
            } else {
                batch.join(", ")
            },
        ),
        ("ERROR", s.last_error.clone().unwrap_or_else(|| "-".into())),
    ] {
        t.add_row(vec![k.to_string(), v]);
    }
    writeln!(out, "{t}")?;
    Ok(())
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}
