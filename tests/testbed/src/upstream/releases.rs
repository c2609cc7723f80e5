//! Release metadata kept next to the repository (what GitHub stores besides the tag: name,
//! body, dates, flags), version ordering, and the pure decisions the APIs make from it:
//! which releases are newer, how urgent, of which type.

use std::cmp::Ordering;
use std::fmt;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::UpstreamError;

/// One GitHub release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseMeta {
    /// GitHub's numeric id.
    pub id: u64,
    /// The tag, e.g. `v4.3.1`.
    pub tag_name: String,
    /// The release title, e.g. `v4.3.1`.
    pub name: String,
    /// Markdown notes; security releases carry a `### Security` section naming a GHSA id.
    pub body: String,
    /// Drafts are hidden from the public list, as on GitHub without push access.
    pub draft: bool,
    /// A pre-release (tag with a `-suffix`).
    pub prerelease: bool,
    /// When it was published.
    pub published_at: DateTime<Utc>,
    /// Whether it fixes a security issue (urgent in the update-check API).
    pub security: bool,
    /// Whether its web stand-in answers `/health` with 200 (false: 503).
    pub health_ok: bool,
}

/// A `MAJOR.MINOR.PATCH[-PRE]` version, ordered as semver orders them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// Major.
    pub major: u64,
    /// Minor.
    pub minor: u64,
    /// Patch.
    pub patch: u64,
    /// The pre-release suffix, e.g. `beta.1`.
    pub pre: Option<String>,
}

impl Version {
    /// Parses `4.3.1`, `v4.3.1` or `v4.4.0-beta.1`.
    pub fn parse(text: &str) -> Option<Version> {
        let text = text.strip_prefix('v').unwrap_or(text);
        let (core, pre) = match text.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (text, None),
        };
        if let Some(pre) = pre {
            let ok = !pre.is_empty() && pre.chars().all(|c| c.is_ascii_alphanumeric() || c == '.');
            if !ok {
                return None;
            }
        }
        let mut parts = core.split('.');
        let mut number = || -> Option<u64> {
            let part = parts.next()?;
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            part.parse().ok()
        };
        let version = Version {
            major: number()?,
            minor: number()?,
            patch: number()?,
            pre: pre.map(str::to_owned),
        };
        parts.next().is_none().then_some(version)
    }

    /// Parses a tag, which must start with `v`.
    pub fn parse_tag(tag: &str) -> Option<Version> {
        tag.starts_with('v').then(|| Version::parse(tag)).flatten()
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        match &self.pre {
            Some(pre) => write!(f, "-{pre}"),
            None => Ok(()),
        }
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Version) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            // A release sorts after its pre-releases.
            .then_with(|| match (&self.pre, &other.pre) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => a.cmp(b),
            })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Version) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The `.ruby-version` of a Mastodon version: 4.4 moved to Ruby 3.4.
pub fn ruby_version(version: &Version) -> &'static str {
    if (version.major, version.minor) >= (4, 4) {
        "3.4.1"
    } else {
        "3.3.5"
    }
}

/// The releases the public list shows (no drafts), newest first: by publication time,
/// then by version.
pub fn newest_first(releases: &[ReleaseMeta]) -> Vec<ReleaseMeta> {
    let mut shown: Vec<ReleaseMeta> = releases.iter().filter(|r| !r.draft).cloned().collect();
    shown.sort_by(|a, b| {
        b.published_at
            .cmp(&a.published_at)
            .then_with(|| Version::parse(&b.tag_name).cmp(&Version::parse(&a.tag_name)))
    });
    shown
}

/// One entry of the update-check answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateAvailable {
    /// `4.3.1` (no `v`).
    pub version: String,
    /// True for security releases.
    pub urgent: bool,
    /// `major`, `minor` or `patch`, relative to the version asked about.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The release page.
    pub release_notes: String,
}

/// How far `newer` is from `current`.
pub fn update_kind(current: &Version, newer: &Version) -> &'static str {
    if newer.major != current.major {
        "major"
    } else if newer.minor != current.minor {
        "minor"
    } else {
        "patch"
    }
}

/// The published, non-pre-release versions newer than `current`, newest first.
pub fn updates_available(releases: &[ReleaseMeta], current: &Version) -> Vec<UpdateAvailable> {
    let mut newer: Vec<(Version, &ReleaseMeta)> = releases
        .iter()
        .filter(|r| !r.draft && !r.prerelease)
        .filter_map(|r| Some((Version::parse(&r.tag_name)?, r)))
        .filter(|(v, _)| v > current)
        .collect();
    newer.sort_by(|a, b| b.0.cmp(&a.0));
    newer
        .into_iter()
        .map(|(version, release)| UpdateAvailable {
            kind: update_kind(current, &version),
            version: version.to_string(),
            urgent: release.security,
            release_notes: html_url(&release.tag_name),
        })
        .collect()
}

/// The release's page on github.com (a string only; nothing contacts it).
pub fn html_url(tag: &str) -> String {
    format!("https://github.com/mastodon/mastodon/releases/tag/{tag}")
}

/// A GHSA id made from the tag, stable across runs: `GHSA-xxxx-xxxx-xxxx` in GitHub's
/// alphabet.
pub fn ghsa_id(tag: &str) -> String {
    const ALPHABET: &[u8] = b"23456789cfghjmpqrvwx";
    let digest = Sha256::digest(tag.as_bytes());
    let chars: Vec<char> = digest
        .iter()
        .take(12)
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect();
    let group = |i: usize| chars[i * 4..i * 4 + 4].iter().collect::<String>();
    format!("GHSA-{}-{}-{}", group(0), group(1), group(2))
}

/// The release notes: `notes` under a changelog heading, plus a `### Security` section
/// naming a GHSA id for security releases.
pub fn body(tag: &str, notes: &str, security: bool) -> String {
    let mut text = format!("## Changelog\n\n{}\n", notes.trim());
    if security {
        let ghsa = ghsa_id(tag);
        text.push_str(&format!(
            "\n### Security\n\n- Fix a security issue ([{ghsa}](https://github.com/mastodon/mastodon/security/advisories/{ghsa}))\n"
        ));
    }
    text.push_str(&format!(
        "\n## Upgrade notes\n\nTo get the code for {tag}, use `git fetch && git checkout {tag}`.\n"
    ));
    text
}

/// Reads the metadata file; a missing file is an empty list.
pub fn load(path: &Path) -> Result<Vec<ReleaseMeta>, UpstreamError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(UpstreamError::Io {
                op: "reading",
                path: path.to_path_buf(),
                source,
            })
        }
    };
    serde_json::from_slice(&bytes).map_err(|source| UpstreamError::Metadata {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes the metadata file atomically, so an API request in another process never reads
/// half of it.
pub fn save(path: &Path, releases: &[ReleaseMeta]) -> Result<(), UpstreamError> {
    let io = |op, source| UpstreamError::Io {
        op,
        path: path.to_path_buf(),
        source,
    };
    let temp = path.with_extension(format!("tmp.{}", std::process::id()));
    let text = serde_json::to_vec_pretty(releases).map_err(|source| UpstreamError::Metadata {
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::write(&temp, text).map_err(|e| io("writing", e))?;
    std::fs::rename(&temp, path).map_err(|e| io("renaming into", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn release(tag: &str, day: u32, security: bool) -> ReleaseMeta {
        ReleaseMeta {
            id: u64::from(day),
            tag_name: tag.into(),
            name: tag.into(),
            body: String::new(),
            draft: false,
            prerelease: tag.contains('-'),
            published_at: Utc.with_ymd_and_hms(2025, 1, day, 0, 0, 0).unwrap(),
            security,
            health_ok: true,
        }
    }

    #[test]
    fn versions_parse_and_order_like_semver() {
        let v = |t| Version::parse(t).unwrap();
        assert!(v("v4.3.1") > v("4.3.0"));
        assert!(v("4.10.0") > v("4.9.9"));
        assert!(v("4.4.0") > v("4.4.0-rc.1"));
        assert_eq!(v("v4.4.0-beta.2").to_string(), "4.4.0-beta.2");
        for bad in [
            "",
            "4.3",
            "4.3.1.2",
            "v4.x.1",
            "4.3.1-",
            "4.3.1-a b",
            "-4.3.1",
        ] {
            assert!(Version::parse(bad).is_none(), "{bad}");
        }
        assert!(Version::parse_tag("4.3.1").is_none());
    }

    #[test]
    fn ruby_moves_to_3_4_with_4_4() {
        assert_eq!(ruby_version(&Version::parse("4.3.9").unwrap()), "3.3.5");
        assert_eq!(ruby_version(&Version::parse("4.4.0").unwrap()), "3.4.1");
    }

    #[test]
    fn updates_list_newer_releases_with_urgency_and_type() {
        let releases = vec![
            release("v4.3.0", 1, false),
            release("v4.3.1", 2, true),
            release("v4.4.0-rc.1", 3, false),
            release("v4.4.0", 4, false),
            release("v5.0.0", 5, false),
        ];
        let found = updates_available(&releases, &Version::parse("4.3.0").unwrap());
        let summary: Vec<(&str, bool, &str)> = found
            .iter()
            .map(|u| (u.version.as_str(), u.urgent, u.kind))
            .collect();
        assert_eq!(
            summary,
            [
                ("5.0.0", false, "major"),
                ("4.4.0", false, "minor"),
                ("4.3.1", true, "patch")
            ]
        );
        assert!(updates_available(&releases, &Version::parse("5.0.0").unwrap()).is_empty());
    }

    #[test]
    fn newest_first_hides_drafts() {
        let mut draft = release("v4.4.1", 9, false);
        draft.draft = true;
        let list = newest_first(&[
            release("v4.3.0", 1, false),
            draft,
            release("v4.3.1", 2, true),
        ]);
        let tags: Vec<&str> = list.iter().map(|r| r.tag_name.as_str()).collect();
        assert_eq!(tags, ["v4.3.1", "v4.3.0"]);
    }

    #[test]
    fn security_bodies_name_a_stable_ghsa_id() {
        let text = body("v4.3.1", "- Fix things", true);
        let ghsa = ghsa_id("v4.3.1");
        assert_eq!(ghsa, ghsa_id("v4.3.1"));
        assert_eq!(ghsa.len(), "GHSA-xxxx-xxxx-xxxx".len());
        assert!(text.contains("### Security"));
        assert!(text.contains(&ghsa));
        assert!(!body("v4.3.0", "- x", false).contains("Security"));
    }
}
