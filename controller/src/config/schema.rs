//! The raw shape of cluster.toml as serde reads it: every leaf is `Option<Spanned<_>>` so a
//! missing or bad value can still be reported at its line, and validation (not serde) decides
//! what is required. Unknown keys are refused here (`deny_unknown_fields`); toml reports those
//! with the key's span.
//!
//! Tables are deliberately not wrapped in `Spanned`: toml cannot give a span to an implicit
//! table (`pools` in `[pools.web]`) or a dotted one (`ssh.user = ...`), and would refuse the
//! file. Their positions come from their keys or from [`super::locate::Source::key_span`].

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCluster {
    pub name: Option<Spanned<String>>,
    pub probe_interval: Option<Spanned<String>>,
    pub call_timeout: Option<Spanned<String>>,
    pub connect_timeout: Option<Spanned<String>>,
    pub ssh: Option<RawSsh>,
    pub healing: Option<super::droplets::RawHealing>,
    /// `[release]`: checked as a whole by serde; errors point at the table.
    pub release: Option<toml::Value>,
    /// Keyed by the pool name with its span; the spans also recover file order.
    #[serde(default)]
    pub pools: BTreeMap<Spanned<String>, RawPool>,
    #[serde(default)]
    pub nodes: Vec<Spanned<RawNode>>,
}

/// `[ssh]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSsh {
    pub user: Option<Spanned<String>>,
    pub private_key: Option<Spanned<String>>,
}

/// `[pools.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPool {
    /// Kept as text so an unknown role is one collected error, not a serde stop.
    pub role: Option<Spanned<String>>,
    pub queues: Option<Spanned<Vec<Spanned<String>>>>,
    pub droplets: Option<super::droplets::RawDroplets>,
}

/// One `[[nodes]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNode {
    pub name: Option<Spanned<String>>,
    pub pool: Option<Spanned<String>>,
    pub address: Option<Spanned<String>>,
    /// Wide so that `0` and `70000` reach validation and get a range message.
    pub port: Option<Spanned<i64>>,
    pub root: Option<Spanned<String>>,
}
