//! The release feed's wire shape: GitHub's list-releases JSON (an array of objects with
//! `tag_name`, `name`, `body`, `draft`, `prerelease`, `published_at`), as the API sends it and
//! as `vmctl release plan --feed FILE` reads it. Other fields GitHub sends are ignored.
//!
//! Tags are kept as sent: the policy refuses and reports the ones that are not versions.
//! Security flags are set from the notes here ([`super::classify`]); the update-check API's
//! urgent flag is added by the caller.

use std::collections::BTreeSet;

use serde::Deserialize;
use vmctl_protocol::{release::UpstreamRelease, Timestamp};

use super::classify::mark_security;
use super::error::UpstreamError;

/// One element of GitHub's list-releases answer.
#[derive(Debug, Deserialize)]
struct GithubRelease {
    tag_name: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    draft: bool,
    #[serde(default)]
    prerelease: bool,
    /// `null` for drafts.
    #[serde(default)]
    published_at: Option<Timestamp>,
    /// Not in GitHub's shape: lets a what-if feed file mark a release urgent by hand.
    #[serde(default)]
    security: bool,
}

/// Parses one page of releases (or a whole feed file). `what` names the call or the file in
/// errors. Entries with no `published_at` (drafts) are dropped: they cannot be scheduled and
/// are never chosen. The result may be empty; callers decide whether that is an error.
///
/// # Errors
/// [`UpstreamError::Decode`] when the text is not a JSON array of release objects.
pub fn parse_releases(body: &[u8], what: &str) -> Result<Vec<UpstreamRelease>, UpstreamError> {
    let wire: Vec<GithubRelease> =
        serde_json::from_slice(body).map_err(|source| UpstreamError::Decode {
            what: what.to_owned(),
            source,
        })?;
    let mut releases: Vec<UpstreamRelease> = wire
        .into_iter()
        .filter_map(|r| {
            Some(UpstreamRelease {
                published_at: r.published_at?,
                name: r.name.unwrap_or_default(),
                body: r.body.unwrap_or_default(),
                tag: r.tag_name,
                draft: r.draft,
                prerelease: r.prerelease,
                security: r.security,
            })
        })
        .collect();
    mark_security(&mut releases, &BTreeSet::new());
    Ok(releases)
}

/// Parses a complete feed (a file, or all pages joined) and refuses an empty one.
///
/// # Errors
/// [`UpstreamError::Decode`] for text that is not the feed's shape,
/// [`UpstreamError::EmptyFeed`] for a feed with no published release.
pub fn parse_feed(body: &[u8], what: &str) -> Result<Vec<UpstreamRelease>, UpstreamError> {
    let releases = parse_releases(body, what)?;
    if releases.is_empty() {
        return Err(UpstreamError::EmptyFeed {
            what: what.to_owned(),
        });
    }
    Ok(releases)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn githubs_shape_is_read_and_classified() {
        let body = br####"[
          {"url":"https://api.github.com/x","id":1,"tag_name":"v4.3.1","name":"v4.3.1",
           "body":"### Security\n- fix","draft":false,"prerelease":false,
           "created_at":"2025-01-01T00:00:00Z","published_at":"2025-01-02T03:04:05Z",
           "author":{"login":"x"},"assets":[]},
          {"tag_name":"v4.4.0-rc.1","name":null,"body":null,"draft":false,"prerelease":true,
           "published_at":"2025-01-03T00:00:00Z"},
          {"tag_name":"v4.4.0","draft":true,"prerelease":false,"published_at":null}
        ]"####;
        let releases = parse_releases(body, "feed.json").unwrap();
        assert_eq!(releases.len(), 2);
        assert_eq!(releases[0].tag, "v4.3.1");
        assert!(releases[0].security);
        assert_eq!(
            releases[0].published_at,
            "2025-01-02T03:04:05Z".parse::<Timestamp>().unwrap()
        );
        assert!(releases[1].prerelease && !releases[1].security);
        assert_eq!(releases[1].name, "");
    }

    #[test]
    fn garbage_and_empty_feeds_are_refused_with_the_source_named() {
        for garbage in [
            &b"<html>rate limited</html>"[..],
            b"{\"message\":\"x\"}",
            b"[{\"name\":1}]",
        ] {
            let err = parse_feed(garbage, "feed.json").unwrap_err();
            assert!(matches!(err, UpstreamError::Decode { .. }), "{err}");
            assert!(
                err.to_string()
                    .starts_with("feed.json is not a valid release feed"),
                "{err}"
            );
        }
        let err = parse_feed(b"[]", "feed.json").unwrap_err();
        assert_eq!(
            err.to_string(),
            "feed.json lists no releases, so no rollout starts"
        );
    }
}
