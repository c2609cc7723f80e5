//! From a tag to a version: the one place an upstream tag is trusted to name a release.
//!
//! A tag must pass [`is_valid_tag`] (no shell characters, no path) and parse as semver, so
//! `v04.3.1` and `v4.3.1;rm -rf /` are both refused.

use vmctl_protocol::release_ops::is_valid_tag;

/// The version a tag names, or `None` when the tag is not `vMAJOR.MINOR.PATCH[-pre]`.
///
/// ```
/// use vmctl_controller::upstream::parse_tag;
/// assert_eq!(parse_tag("v4.3.1"), Some(semver::Version::new(4, 3, 1)));
/// assert!(parse_tag("v4.3.0-rc.1").is_some_and(|v| !v.pre.is_empty()));
/// assert_eq!(parse_tag("4.3.1"), None);
/// assert_eq!(parse_tag("v4.3.1/../../x"), None);
/// ```
#[must_use]
pub fn parse_tag(tag: &str) -> Option<semver::Version> {
    if !is_valid_tag(tag) {
        return None;
    }
    semver::Version::parse(tag.strip_prefix('v')?).ok()
}

/// The tag for a version: `v` and the version.
#[must_use]
pub fn tag_of(version: &semver::Version) -> String {
    format!("v{version}")
}

/// A tag quoted for a message, cut short so a hostile feed cannot flood a status line.
#[must_use]
pub fn quote_tag(tag: &str) -> String {
    const MAX: usize = 40;
    if tag.chars().count() <= MAX {
        return format!("{tag:?}");
    }
    let cut: String = tag.chars().take(MAX).collect();
    format!("{cut:?}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_clean_version_tags_parse() {
        assert_eq!(parse_tag("v4.3.1"), Some(semver::Version::new(4, 3, 1)));
        for bad in ["v04.3.1", "v4.3.1;ls", "../v4.3.1", "v4.3", "latest", ""] {
            assert_eq!(parse_tag(bad), None, "{bad}");
        }
        assert_eq!(tag_of(&semver::Version::new(4, 3, 1)), "v4.3.1");
        assert_eq!(quote_tag("a\"b"), r#""a\"b""#);
        assert!(quote_tag(&"x".repeat(100)).ends_with('…'));
    }
}
