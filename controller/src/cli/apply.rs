//! `vmctl apply -f FILE` and `vmctl diff -f FILE`: validate the cluster file locally (nothing
//! is sent when it is invalid), then send the document and print what changed (apply) or
//! would change (diff).
//!
//! `diff` exits 0 whether or not there are changes (unlike diff(1)); it prints `no changes`
//! when there are none, so scripts should read the output or use `-o json`.

use std::io::Write;
use std::path::Path;

use vmctl_protocol::api::{ApplyResult, Change, ChangeAction, ClusterDocument};

use super::output::{self, OutputFormat};
use super::CliError;
use crate::client::ApiClient;
use crate::config;

/// Route that stores a document.
pub(crate) const APPLY_PATH: &str = "/v1/apply";
/// Route that only compares a document with the store.
pub(crate) const DIFF_PATH: &str = "/v1/diff";

/// Apply or only compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `vmctl apply`.
    Apply,
    /// `vmctl diff`.
    Diff,
}

/// Runs `apply` or `diff`.
pub(crate) async fn run(
    client: &ApiClient,
    format: OutputFormat,
    file: &Path,
    mode: Mode,
) -> Result<(), CliError> {
    // Validation first: an invalid file returns here, before any connection is made.
    let doc: ClusterDocument = config::load_cluster_file(file)?;
    let path = match mode {
        Mode::Apply => APPLY_PATH,
        Mode::Diff => DIFF_PATH,
    };
    let result: ApplyResult = client.post_json(path, &doc).await?;
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Json => output::print_json(&mut out, &result),
        OutputFormat::Table => {
            let text = match mode {
                Mode::Apply => render_applied(&result.changes),
                Mode::Diff => render_diff(&result.changes),
            };
            writeln!(out, "{text}")?;
            Ok(())
        }
    }
}

/// `node/web-3 created`, `node/web-1 configured: address: a -> b`, `pool/x deleted`.
pub(crate) fn render_applied(changes: &[Change]) -> String {
    if changes.is_empty() {
        return "no changes".to_owned();
    }
    let lines: Vec<String> = changes
        .iter()
        .map(|c| {
            let object = format!("{}/{}", c.kind, c.name);
            match c.action {
                ChangeAction::Create => format!("{object} created"),
                ChangeAction::Delete => format!("{object} deleted"),
                ChangeAction::Update if c.details.is_empty() => format!("{object} configured"),
                ChangeAction::Update => {
                    format!("{object} configured: {}", c.details.join("; "))
                }
            }
        })
        .collect();
    lines.join("\n")
}

/// `+ node/web-3`, `~ node/web-1` with indented field changes, `- pool/x`.
pub(crate) fn render_diff(changes: &[Change]) -> String {
    if changes.is_empty() {
        return "no changes".to_owned();
    }
    let mut lines = Vec::new();
    for c in changes {
        let sign = match c.action {
            ChangeAction::Create => '+',
            ChangeAction::Update => '~',
            ChangeAction::Delete => '-',
        };
        lines.push(format!("{sign} {}/{}", c.kind, c.name));
        lines.extend(c.details.iter().map(|d| format!("    {d}")));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(kind: &str, name: &str, action: ChangeAction, details: &[&str]) -> Change {
        Change {
            kind: kind.into(),
            name: name.into(),
            action,
            details: details.iter().map(|d| (*d).to_owned()).collect(),
        }
    }

    #[test]
    fn applied_changes_read_like_kubectl() {
        let changes = [
            change("node", "web-3", ChangeAction::Create, &[]),
            change(
                "node",
                "web-1",
                ChangeAction::Update,
                &["address: a -> b", "port: 22 -> 2222"],
            ),
            change("pool", "x", ChangeAction::Delete, &[]),
        ];
        assert_eq!(
            render_applied(&changes),
            "node/web-3 created\nnode/web-1 configured: address: a -> b; port: 22 -> 2222\npool/x deleted"
        );
        assert_eq!(render_applied(&[]), "no changes");
    }

    #[test]
    fn diff_marks_each_object_and_indents_field_changes() {
        let changes = [
            change("node", "web-3", ChangeAction::Create, &[]),
            change("node", "web-1", ChangeAction::Update, &["address: a -> b"]),
            change("pool", "x", ChangeAction::Delete, &[]),
        ];
        assert_eq!(
            render_diff(&changes),
            "+ node/web-3\n~ node/web-1\n    address: a -> b\n- pool/x"
        );
        assert_eq!(render_diff(&[]), "no changes");
    }
}
