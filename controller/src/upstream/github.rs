//! [`GithubClient`]: the two GitHub REST calls vmctld makes about upstream Mastodon — list the
//! releases (every page, reusing unchanged pages by `ETag`) and find the commit a tag points
//! at. Retries, rate limits and timeouts live in `http.rs`.

use reqwest::Url;
use serde::Deserialize;
use vmctl_protocol::release::UpstreamRelease;

use super::error::UpstreamError;
use super::feed::parse_releases;
use super::headers::rebase;
use super::http::{Http, HttpSettings};
use super::token::GithubToken;
use super::version::parse_tag;

/// The real API.
pub const DEFAULT_GITHUB_URL: &str = "https://api.github.com";

/// Releases per page: GitHub's maximum, to spend the fewest requests (and rate limit).
pub const PER_PAGE: u32 = 100;

/// A list is abandoned after this many pages (10,000 releases, far beyond Mastodon's few
/// hundred); it guards against links that never end.
pub const MAX_PAGES: usize = 100;

/// Annotated tags can point at tags; more than this many hops is a loop or an attack.
const MAX_TAG_HOPS: usize = 4;

/// Settings for [`GithubClient`].
#[derive(Clone, Debug)]
pub struct GithubConfig {
    /// Scheme, host, port and an optional path prefix (GitHub Enterprise's `/api/v3`);
    /// default [`DEFAULT_GITHUB_URL`].
    pub base_url: String,
    /// Repository owner; default `mastodon`.
    pub owner: String,
    /// Repository name; default `mastodon`.
    pub repo: String,
    /// Optional token: raises the rate limit from 60 to 5,000 requests an hour.
    pub token: Option<GithubToken>,
    /// Timeouts, retries and rate-limit waits.
    pub http: HttpSettings,
}

impl Default for GithubConfig {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_GITHUB_URL.to_owned(),
            owner: "mastodon".to_owned(),
            repo: "mastodon".to_owned(),
            token: None,
            http: HttpSettings::default(),
        }
    }
}

/// The GitHub releases client. Cheap to clone; clones share the `ETag` cache and rate limit.
#[derive(Clone, Debug)]
pub struct GithubClient {
    http: Http,
    base: Url,
    owner: String,
    repo: String,
}

/// `{"object": {"sha": "...", "type": "commit" | "tag"}}`, the shape of both a ref and an
/// annotated tag object.
#[derive(Deserialize)]
struct GitObjectHolder {
    object: GitObject,
}

#[derive(Deserialize)]
struct GitObject {
    sha: String,
    #[serde(rename = "type")]
    kind: String,
}

/// Checks a configured base URL and makes sure it ends in `/` so paths join under it.
pub(crate) fn parse_base(base: &str) -> Result<Url, UpstreamError> {
    let bad = |reason: &str| UpstreamError::Url {
        url: base.to_owned(),
        reason: reason.to_owned(),
    };
    let mut url = Url::parse(base).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("give scheme, host, port and path only"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// `base` with `segments` appended, each percent-encoded.
pub(crate) fn join(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

fn is_sha(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl GithubClient {
    /// Builds the client. Sends nothing.
    ///
    /// # Errors
    /// [`UpstreamError::Url`] for a bad base URL, [`UpstreamError::Client`] if TLS setup fails.
    pub fn new(config: GithubConfig) -> Result<Self, UpstreamError> {
        Ok(Self {
            http: Http::new(config.http, config.token, "application/vnd.github+json")?,
            base: parse_base(&config.base_url)?,
            owner: config.owner,
            repo: config.repo,
        })
    }

    fn repo_url(&self, rest: &[&str]) -> Url {
        let mut segments = vec!["repos", self.owner.as_str(), self.repo.as_str()];
        segments.extend_from_slice(rest);
        join(&self.base, &segments)
    }

    /// `GET /repos/{owner}/{repo}/releases`, every page (newest first, as GitHub sends them).
    /// Pages whose `ETag` still matches are answered 304 by GitHub and taken from the cache,
    /// which does not count against the rate limit.
    ///
    /// # Errors
    /// [`UpstreamError::Decode`] for an answer that is not a list of releases,
    /// [`UpstreamError::EmptyFeed`] when there are none, [`UpstreamError::RateLimited`],
    /// [`UpstreamError::Timeout`] and the other HTTP failures.
    pub async fn list_releases(&self) -> Result<Vec<UpstreamRelease>, UpstreamError> {
        let mut url = self.repo_url(&["releases"]);
        url.query_pairs_mut()
            .append_pair("per_page", &PER_PAGE.to_string());
        let what = format!("the releases of {}/{}", self.owner, self.repo);
        let mut seen: Vec<Url> = Vec::new();
        let mut releases = Vec::new();
        loop {
            if seen.contains(&url) {
                return Err(UpstreamError::Pagination {
                    what,
                    reason: format!("the link to {url} loops back to a page already read"),
                });
            }
            if seen.len() >= MAX_PAGES {
                return Err(UpstreamError::Pagination {
                    what,
                    reason: format!("more than {MAX_PAGES} pages"),
                });
            }
            seen.push(url.clone());
            let page = self.http.get(&url, &what).await?;
            releases.extend(parse_releases(&page.body, &format!("GET {}", url.path()))?);
            match page.next {
                Some(next) => url = rebase(&self.base, &next)?,
                None => break,
            }
        }
        if releases.is_empty() {
            return Err(UpstreamError::EmptyFeed {
                what: format!("GET {}", self.repo_url(&["releases"]).path()),
            });
        }
        Ok(releases)
    }

    /// The commit `tag` points at, from `GET /repos/{owner}/{repo}/git/ref/tags/{tag}`.
    /// Mastodon's tags are lightweight, so the ref names the commit; an annotated tag is
    /// followed through `GET /repos/{owner}/{repo}/git/tags/{sha}`.
    ///
    /// # Errors
    /// [`UpstreamError::InvalidTag`] before any request for a tag that is not a version;
    /// [`UpstreamError::NotFound`] for an unknown tag; [`UpstreamError::BadTagRef`] when the
    /// ref leads to something other than a commit.
    pub async fn tag_commit(&self, tag: &str) -> Result<String, UpstreamError> {
        if parse_tag(tag).is_none() {
            return Err(UpstreamError::InvalidTag {
                tag: tag.to_owned(),
            });
        }
        let what = format!("tag {tag}");
        let mut url = self.repo_url(&["git", "ref", "tags", tag]);
        for _ in 0..MAX_TAG_HOPS {
            let answer = self.http.get(&url, &what).await?;
            let holder: GitObjectHolder =
                serde_json::from_slice(&answer.body).map_err(|source| UpstreamError::Decode {
                    what: format!("GET {}", url.path()),
                    source,
                })?;
            let GitObject { sha, kind } = holder.object;
            if !is_sha(&sha) {
                return Err(UpstreamError::BadTagRef {
                    tag: tag.to_owned(),
                    reason: format!("{sha:?} is not a commit id"),
                });
            }
            match kind.as_str() {
                "commit" => return Ok(sha.to_ascii_lowercase()),
                "tag" => url = self.repo_url(&["git", "tags", &sha]),
                other => {
                    return Err(UpstreamError::BadTagRef {
                        tag: tag.to_owned(),
                        reason: format!("it points at a {other:?} object"),
                    })
                }
            }
        }
        Err(UpstreamError::BadTagRef {
            tag: tag.to_owned(),
            reason: format!("more than {MAX_TAG_HOPS} annotated tags deep"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked_and_paths_join_under_them() {
        let base = parse_base("https://api.github.com").unwrap();
        assert_eq!(
            join(&base, &["repos", "mastodon", "mastodon", "releases"]).as_str(),
            "https://api.github.com/repos/mastodon/mastodon/releases"
        );
        let ghe = parse_base("https://ghe.example/api/v3").unwrap();
        assert_eq!(
            join(&ghe, &["repos", "a", "b"]).as_str(),
            "https://ghe.example/api/v3/repos/a/b"
        );
        assert!(parse_base("ftp://x").is_err());
        assert!(parse_base("http://x/?a=b").is_err());
        assert!(parse_base("not a url").is_err());
    }

    #[test]
    fn only_hex_object_ids_are_commits() {
        assert!(is_sha(&"a".repeat(40)));
        assert!(is_sha(&"0".repeat(64)));
        assert!(!is_sha("abc"));
        assert!(!is_sha(&"g".repeat(40)));
    }
}
