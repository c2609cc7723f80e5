//! Agent operations for Mastodon releases: prepare, migrate, switch, services, probes, prune.
//! Each is a typed request; none runs arbitrary shell. Tags are validated on both sides
//! ([`is_valid_tag`]) so a tag can never carry shell characters or a path.

use serde::{Deserialize, Serialize};

/// True for `vMAJOR.MINOR.PATCH` with an optional `-pre.release` suffix of `[a-z0-9.]`.
pub fn is_valid_tag(tag: &str) -> bool {
    let Some(rest) = tag.strip_prefix('v') else {
        return false;
    };
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 6 && p.bytes().all(|b| b.is_ascii_digit()))
        && pre.is_none_or(|p| {
            !p.is_empty()
                && p.len() <= 32
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.')
        })
        && !tag.contains("..")
}

/// `prepare_release`: fetch `tag` into `home/mastodon/releases/<tag>`, verify it, install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepareRelease {
    /// The release tag, e.g. `v4.3.1`.
    pub tag: String,
    /// Git URL of upstream (a path or URL the droplet can fetch from).
    pub repo_url: String,
    /// The commit upstream says the tag points at; HEAD must equal it.
    pub expected_commit: String,
    /// Precompile assets (web nodes and nodes running `mailers`).
    pub assets: bool,
}

/// Reply to [`PrepareRelease`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepareReport {
    /// The tag prepared.
    pub tag: String,
    /// HEAD of the prepared tree.
    pub commit: String,
    /// Ruby version the release asks for (`.ruby-version`).
    pub ruby_version: Option<String>,
    /// Node version the release asks for (`.nvmrc`).
    pub node_version: Option<String>,
    /// Steps run, in order, with their durations.
    pub steps: Vec<StepTiming>,
}

/// One step of a prepare.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepTiming {
    /// e.g. `fetch`, `verify`, `rbenv install`, `bundle install`, `yarn install`, `assets`.
    pub name: String,
    /// How long it took.
    pub millis: u64,
}

/// Which migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigratePhase {
    /// `SKIP_POST_DEPLOYMENT_MIGRATIONS=true rails db:migrate`, before any node switches.
    PreDeploy,
    /// `rails db:migrate`, after every node switched.
    PostDeploy,
}

/// `migrate`: run a migration phase of `tag` once. The agent keeps a marker per (tag, phase)
/// under `var/lib/vmctl/markers/`; a replay finds it and runs nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migrate {
    /// Release tag (must be prepared).
    pub tag: String,
    /// Phase.
    pub phase: MigratePhase,
}

/// `cache_clear`: `tootctl cache clear` for `tag`, once (marker as for migrations).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheClear {
    /// Release tag.
    pub tag: String,
}

/// Reply to a once-only op ([`Migrate`], [`CacheClear`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnceReport {
    /// False when the marker showed it had already run.
    pub ran: bool,
}

/// `switch`: point `home/mastodon/live` at `releases/<tag>` atomically (symlink + rename).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Switch {
    /// Release tag (must be prepared).
    pub tag: String,
}

/// Reply to [`Switch`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchReport {
    /// What `live` pointed at before.
    pub previous: Option<String>,
}

/// What to do to a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceAction {
    /// Start it.
    Start,
    /// Stop it.
    Stop,
    /// Restart it (Puma with `preload_app!`: a hot restart).
    Restart,
    /// Quiet Sidekiq (TSTP): finish running jobs, take no new ones.
    Quiet,
}

/// `service`: act on one upstream unit (`mastodon-web`, `mastodon-sidekiq`,
/// `mastodon-streaming`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// Unit name.
    pub name: String,
    /// Action.
    pub action: ServiceAction,
    /// Sidekiq only: the queues this node's Sidekiq listens to (`-q` each), from its pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queues: Vec<String>,
}

/// What to probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeCheck {
    /// `GET /health` on Puma (:3000).
    Web,
    /// `GET /api/v1/streaming/health` on streaming (:4000).
    Streaming,
    /// Sidekiq's heartbeat file is fresh.
    Sidekiq,
}

/// `probe`: one health check from the droplet itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// Which check.
    pub check: ProbeCheck,
}

/// Reply to [`Probe`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// Passed.
    pub healthy: bool,
    /// HTTP status, for HTTP checks.
    pub status: Option<u16>,
    /// What the service reports as its version, if it does.
    pub version: Option<String>,
    /// A short description of the result.
    pub detail: String,
}

/// `prune_releases`: keep the newest `keep` releases plus `protect` (always the live one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneReleases {
    /// How many to keep.
    pub keep: u32,
    /// Tags never removed.
    pub protect: Vec<String>,
}

/// Reply to [`PruneReleases`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneReport {
    /// Tags removed.
    pub removed: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_version_tags_are_valid() {
        for ok in ["v4.3.1", "v4.4.0-rc.1", "v10.0.0"] {
            assert!(is_valid_tag(ok), "{ok}");
        }
        for bad in [
            "4.3.1",
            "v4.3",
            "v4.3.1;rm -rf",
            "v4.3.1/../x",
            "v../../etc",
            "v4.3.1 ",
            "v4.3.1-RC",
            "",
            "v4.3.1-",
        ] {
            assert!(!is_valid_tag(bad), "{bad}");
        }
    }
}
