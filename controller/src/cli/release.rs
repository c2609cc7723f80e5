//! `vmctl release plan`: which upstream release the fleet moves to next, when, and why.
//!
//! Without `--feed` it shows the controller's decision (`GET /v1/release/plan`). With
//! `--feed FILE --current vX.Y.Z [--now RFC3339] [--policy FILE]` it answers a what-if with no
//! controller running: the same pure policy (`upstream::decide`) on a feed file shaped like
//! GitHub's list-releases answer. A bad feed or policy file is reported as
//! `FILE:LINE:COLUMN: FIELD: message` and exits 1.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::Utc;
use clap::{Args, Subcommand};
use semver::Version;
use vmctl_protocol::release::{ReleaseDecision, ReleasePolicy, PLAN_PATH};
use vmctl_protocol::release_ops::is_valid_tag;
use vmctl_protocol::Timestamp;

use super::output::{self, or_dash, OutputFormat};
use super::CliError;
use crate::client::{ApiClient, ClientError};
use crate::config::{ConfigError, ConfigErrors};
use crate::upstream::{decide, parse_feed, parse_tag, UpstreamError};

/// `vmctl release ...`.
#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    /// Show the next release, its earliest start, its deadline and why (or a what-if with
    /// --feed).
    Plan(PlanArgs),
    /// Allow a new major version (e.g. v5.0.0) to roll out.
    Approve {
        /// The release tag.
        tag: String,
    },
    /// Try a release again that failed or was undone.
    Retry {
        /// The release tag.
        tag: String,
    },
}

/// `vmctl release plan` flags.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Decide offline from this feed: a JSON array shaped like GitHub's list-releases answer
    /// (tag_name, name, body, draft, prerelease, published_at).
    #[arg(long, value_name = "FILE", requires = "current")]
    pub feed: Option<PathBuf>,
    /// The fleet's version for --feed, e.g. v4.3.1.
    #[arg(long, value_name = "VERSION", requires = "feed", value_parser = parse_current)]
    pub current: Option<Version>,
    /// The time to decide at for --feed (RFC 3339, e.g. 2026-01-05T12:00:00Z); default now.
    #[arg(long, value_name = "RFC3339", requires = "feed", value_parser = parse_now)]
    pub now: Option<Timestamp>,
    /// A release policy file (TOML) for --feed; default: the default policy.
    #[arg(long, value_name = "FILE", requires = "feed")]
    pub policy: Option<PathBuf>,
}

/// `v4.3.1` (or `4.3.1`): a version that is also a valid tag.
fn parse_current(text: &str) -> Result<Version, String> {
    let tag = if text.starts_with('v') {
        text.to_owned()
    } else {
        format!("v{text}")
    };
    if !is_valid_tag(&tag) {
        return Err(format!(
            "{text:?} is not a version (expected vMAJOR.MINOR.PATCH, e.g. v4.3.1)"
        ));
    }
    parse_tag(&tag).ok_or_else(|| format!("{text:?} is not a semantic version"))
}

fn parse_now(text: &str) -> Result<Timestamp, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{text:?} is not an RFC 3339 time ({e}), e.g. 2026-01-05T12:00:00Z"))
}

/// Runs `release ...`.
pub(crate) async fn run(
    client: &ApiClient,
    format: OutputFormat,
    command: &ReleaseCommand,
) -> Result<(), CliError> {
    let args = match command {
        ReleaseCommand::Plan(args) => args,
        ReleaseCommand::Approve { tag } | ReleaseCommand::Retry { tag } => {
            let verb = if matches!(command, ReleaseCommand::Approve { .. }) {
                "approve"
            } else {
                "retry"
            };
            if !vmctl_protocol::release_ops::is_valid_tag(tag) {
                return Err(CliError::BadName {
                    kind: "release",
                    reason: format!("{tag:?} is not a release tag (vX.Y.Z)"),
                });
            }
            client
                .post_empty(&format!("/v1/release/{verb}/{tag}"))
                .await?;
            use std::io::Write as _;
            writeln!(std::io::stdout().lock(), "release {tag}: {verb} recorded")?;
            return Ok(());
        }
    };
    let decision = match (&args.feed, &args.current) {
        (Some(feed), Some(current)) => what_if(feed, current, args)?,
        _ => from_controller(client).await?,
    };
    print(&mut std::io::stdout().lock(), format, &decision)
}

async fn from_controller(client: &ApiClient) -> Result<ReleaseDecision, CliError> {
    match client.get_json(PLAN_PATH).await {
        Err(ClientError::Api {
            status: 404, code, ..
        }) => Err(ClientError::Api {
            status: 404,
            code,
            message: format!(
                "this vmctld does not serve GET {PLAN_PATH}; for a what-if without it, pass \
                 --feed FILE --current vX.Y.Z"
            ),
        }
        .into()),
        other => Ok(other?),
    }
}

fn what_if(feed: &Path, current: &Version, args: &PlanArgs) -> Result<ReleaseDecision, CliError> {
    let feed_name = feed.display().to_string();
    let text = read(feed)?;
    let releases = parse_feed(&text, &feed_name).map_err(|e| feed_error(&feed_name, e))?;
    let policy = match &args.policy {
        Some(path) => load_policy(path)?,
        None => ReleasePolicy::default(),
    };
    let now = args.now.unwrap_or_else(Utc::now);
    Ok(decide(&releases, current, &policy, now))
}

fn problem(file: &str, line: usize, column: usize, field: &str, message: String) -> CliError {
    CliError::Config(ConfigErrors::Invalid(vec![ConfigError {
        file: file.to_owned(),
        line,
        column,
        field: field.to_owned(),
        message,
    }]))
}

fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| {
        problem(
            &path.display().to_string(),
            1,
            1,
            "file",
            format!("cannot read the file: {e}"),
        )
    })
}

/// A feed problem located where serde_json stopped.
fn feed_error(file: &str, e: UpstreamError) -> CliError {
    match e {
        UpstreamError::Decode { source, .. } => {
            let text = source.to_string();
            // serde_json ends its message with the position, which the prefix already gives.
            let message = text
                .rfind(" at line ")
                .map_or(text.as_str(), |i| &text[..i])
                .to_owned();
            problem(
                file,
                source.line().max(1),
                source.column().max(1),
                "feed",
                format!(
                    "not a release feed (a JSON array of GitHub releases with tag_name and \
                     published_at): {message}"
                ),
            )
        }
        UpstreamError::EmptyFeed { .. } => problem(
            file,
            1,
            1,
            "feed",
            "lists no published releases, so no rollout starts".to_owned(),
        ),
        other => problem(file, 1, 1, "feed", other.to_string()),
    }
}

/// Reads a policy file: TOML with [`ReleasePolicy`]'s fields at the top level.
fn load_policy(path: &Path) -> Result<ReleasePolicy, CliError> {
    let file = path.display().to_string();
    let bytes = read(path)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| problem(&file, 1, 1, "file", "is not UTF-8 text".to_owned()))?;
    toml::from_str(&text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start).min(text.len());
        let before = text.get(..offset).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        let this_line = text[line_start..].lines().next().unwrap_or("");
        let field = this_line
            .split_once('=')
            .map(|(key, _)| key.trim())
            .filter(|k| !k.is_empty())
            .unwrap_or("policy");
        let message = e
            .message()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        problem(&file, line, column, field, message)
    })
}

fn print(
    out: &mut impl Write,
    format: OutputFormat,
    decision: &ReleaseDecision,
) -> Result<(), CliError> {
    match format {
        OutputFormat::Json => output::print_json(out, decision),
        OutputFormat::Table => {
            writeln!(out, "{}", render(decision))?;
            Ok(())
        }
    }
}

/// The decision as a one-row table.
fn render(d: &ReleaseDecision) -> String {
    let mut t = output::table(&[
        "CURRENT",
        "TARGET",
        "SECURITY",
        "EARLIEST START",
        "DEADLINE",
        "REASON",
    ]);
    t.add_row(vec![
        d.current.clone(),
        or_dash(d.target.as_ref()),
        if d.security { "yes" } else { "no" }.to_owned(),
        or_dash(d.earliest_start.map(output::time)),
        or_dash(d.deadline.map(output::time)),
        d.reason.clone(),
    ]);
    output::render(&mut t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_versions_must_be_clean_version_tags() {
        assert_eq!(parse_current("v4.3.1"), Ok(Version::new(4, 3, 1)));
        assert_eq!(parse_current("4.3.1"), Ok(Version::new(4, 3, 1)));
        for bad in ["v4.3", "v4.3.1;ls", "../v4.3.1", "latest"] {
            assert!(parse_current(bad).is_err(), "{bad}");
        }
        assert!(parse_now("2026-01-05T12:00:00Z").is_ok());
        assert!(parse_now("2026-01-05T14:00:00+02:00")
            .is_ok_and(|t| output::time(t) == "2026-01-05T12:00:00Z"));
        assert!(parse_now("yesterday").is_err());
    }

    #[test]
    fn the_table_has_one_row_with_dashes_for_nothing() {
        let d = ReleaseDecision {
            current: "v4.3.1".into(),
            target: None,
            security: false,
            earliest_start: None,
            deadline: None,
            reason: "up to date".into(),
        };
        assert_eq!(
            render(&d),
            "CURRENT  TARGET  SECURITY  EARLIEST START  DEADLINE  REASON\n\
             v4.3.1   -       no        -               -         up to date"
        );
    }

    #[test]
    fn policy_file_errors_name_the_file_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, "soak = \"6h\"\nhold = \"v4.3.1;rm\"\n").unwrap();
        let err = load_policy(&path).unwrap_err().to_string();
        let want = format!("{}:2:8: hold: ", path.display());
        assert!(err.starts_with(&want), "{err}");
        std::fs::write(&path, "sock = \"6h\"\n").unwrap();
        let err = load_policy(&path).unwrap_err().to_string();
        assert!(err.contains(":1:1: sock: unknown field `sock`"), "{err}");
        std::fs::write(
            &path,
            "soak = \"2h\"\n[[windows]]\ndays = [\"sat\"]\nstart = \"02:00\"\nduration = \"4h\"\n",
        )
        .unwrap();
        let p = load_policy(&path).unwrap();
        assert_eq!(p.soak, std::time::Duration::from_secs(7200));
        assert_eq!(p.windows.len(), 1);
    }
}
