//! Loading and validating `cluster.toml`, the operator's desired state for the whole fleet.
//!
//! Every problem is reported as `FILE:LINE:COLUMN: FIELD: message` ([`ConfigError`]), and all
//! semantic problems are collected before failing. TOML syntax errors, unknown keys and type
//! errors stop parsing at the first one (serde cannot go on), and are reported the same way.
//! This module only reads: the CLI calls it before sending anything, so a bad file stores
//! nothing.
//!
//! ```
//! let doc = vmctl_controller::config::parse_cluster("c.toml", r#"
//! name = "vmst"
//! [ssh]
//! private_key = "/etc/vmctl/id_ed25519"
//! [pools.web]
//! role = "web"
//! [[nodes]]
//! name = "web-1"
//! pool = "web"
//! address = "10.0.0.5"
//! "#).unwrap();
//! assert_eq!(doc.nodes[0].spec.port, 22);
//!
//! let bad = "name = \"Bad!\"\n[ssh]\nprivate_key = \"/k\"\n";
//! let err = vmctl_controller::config::parse_cluster("c.toml", bad).unwrap_err();
//! assert!(err.to_string().starts_with("c.toml:1:8: name: \"Bad!\" is not a valid name"));
//! ```

mod droplets;
mod error;
mod locate;
mod rules;
mod schema;
mod validate;

#[cfg(test)]
mod tests;

use std::path::Path;

use vmctl_protocol::api::ClusterDocument;

pub use error::{ConfigError, ConfigErrors};
pub use rules::{KNOWN_QUEUES, SCHEDULER_QUEUE};

use locate::Source;

/// Checks an object name (cluster, pool, node) given outside a file, e.g. on the command line.
///
/// # Errors
/// A sentence saying what a valid name looks like.
pub fn check_object_name(name: &str) -> Result<(), String> {
    rules::check_name(name)
}
use schema::RawCluster;

/// Reads and validates a cluster file. Errors name the path as given.
///
/// # Errors
/// [`ConfigErrors::Read`] when the file cannot be read, [`ConfigErrors::Invalid`] with every
/// located problem otherwise.
pub fn load_cluster_file(path: &Path) -> Result<ClusterDocument, ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigErrors::Read {
        file: file.clone(),
        source,
    })?;
    parse_cluster(&file, &text)
}

/// Parses and validates cluster-file text; `file_name` is only used in error messages.
///
/// # Errors
/// [`ConfigErrors::Invalid`] with every located problem, sorted by position.
pub fn parse_cluster(file_name: &str, text: &str) -> Result<ClusterDocument, ConfigErrors> {
    let src = Source::new(file_name, text);
    let raw: RawCluster = toml::from_str(text)
        .map_err(|e| ConfigErrors::Invalid(vec![toml_error(&src, text, &e)]))?;
    validate::validate(&src, raw)
}

/// Locates a toml syntax, unknown-key or type error. The field is the key path at the error's
/// span; a syntax error has no parsed tree, so its field is guessed from the line.
fn toml_error(src: &Source<'_>, text: &str, e: &toml::de::Error) -> ConfigError {
    let offset = e.span().map_or(0, |s| s.start);
    let (line, column) = src.position(offset);
    let field = src
        .field_at(offset)
        .or_else(|| guess_field(text, offset))
        .unwrap_or_else(|| "toml".to_owned());
    // toml's messages can span lines ("invalid string\nexpected `\"`"); keep one line each.
    let message = e
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    ConfigError {
        file: src.file().to_owned(),
        line,
        column,
        field,
        message,
    }
}

/// Best effort for text that does not parse: `key` on the error's line, under the last
/// `[table]` header above it.
fn guess_field(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset.min(text.len()))?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("").trim();
    let header = before[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|h| h.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim())
        .filter(|k| !k.is_empty() && !k.starts_with('['));
    match (header, key) {
        (Some(h), Some(k)) => Some(format!("{h}.{k}")),
        (None, Some(k)) => Some(k.to_owned()),
        (Some(h), None) => Some(h),
        (None, None) => None,
    }
}
