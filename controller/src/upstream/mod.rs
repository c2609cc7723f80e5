//! The upstream release feed and the release policy.
//!
//! - Reading: [`GithubClient`] lists Mastodon's releases (GitHub REST API: pagination, `ETag`
//!   reuse, rate limits, optional token) and resolves a tag to its commit;
//!   [`UpdateCheckClient`] asks Mastodon's update-check API which versions are urgent.
//!   [`Upstream`] puts the two together behind the narrow [`ReleaseSource`] trait.
//! - Classifying: [`is_security`] reads release notes; [`mark_security`] adds urgent flags.
//! - Deciding: [`decide`] is the pure policy — target, earliest start, deadline and reason.
//!
//! Files: `github.rs`, `update_check.rs` (the calls), `http.rs` (the one GET with retries,
//! rate-limit waits and the `ETag` cache), `headers.rs` (pure header readers), `feed.rs` (the
//! wire shape, shared with `vmctl release plan --feed`), `classify.rs`, `version.rs` (tag →
//! version), `policy.rs` and `windows.rs` (the decision), `token.rs`, `error.rs`.

mod classify;
mod error;
mod feed;
mod github;
mod headers;
mod http;
mod policy;
mod token;
mod update_check;
mod version;
mod windows;

use futures::future::BoxFuture;
use semver::Version;
use vmctl_protocol::release::UpstreamRelease;

pub use classify::{is_security, mark_security};
pub use error::{RetryHint, UpstreamError};
pub use feed::{parse_feed, parse_releases};
pub use github::{GithubClient, GithubConfig, DEFAULT_GITHUB_URL, MAX_PAGES, PER_PAGE};
pub use headers::{next_link, rate_limited_wait, rebase, RateLimit};
pub use http::{HttpSettings, GITHUB_API_VERSION, MAX_BODY_BYTES};
pub use policy::decide;
pub use token::GithubToken;
pub use update_check::{
    urgent_versions, AvailableUpdate, UpdateCheckClient, UpdateCheckConfig,
    DEFAULT_UPDATE_CHECK_URL,
};
pub use version::{parse_tag, quote_tag, tag_of};
pub use windows::next_open;

/// The feed as one check saw it.
#[derive(Debug, Clone)]
pub struct Feed {
    /// Every published release, newest first as GitHub lists them, with security flags set.
    pub releases: Vec<UpstreamRelease>,
    /// Why the update-check API could not be asked, when it is configured and failed. The
    /// feed is still usable: security detection then rests on the release notes alone.
    pub update_check_error: Option<String>,
}

/// What the release reconciler needs from upstream. [`Upstream`] is the real one; tests pass
/// fakes.
pub trait ReleaseSource: Send + Sync {
    /// See [`Upstream::releases`].
    fn releases<'a>(&'a self, current: &'a Version) -> BoxFuture<'a, Result<Feed, UpstreamError>>;
    /// See [`GithubClient::tag_commit`].
    fn tag_commit<'a>(&'a self, tag: &'a str) -> BoxFuture<'a, Result<String, UpstreamError>>;
}

/// GitHub plus, optionally, Mastodon's update-check API.
#[derive(Clone, Debug)]
pub struct Upstream {
    github: GithubClient,
    update_check: Option<UpdateCheckClient>,
}

impl Upstream {
    /// Combines the clients.
    #[must_use]
    pub fn new(github: GithubClient, update_check: Option<UpdateCheckClient>) -> Self {
        Self {
            github,
            update_check,
        }
    }

    /// Lists the releases and marks security releases from their notes and, when configured,
    /// from the update-check API's urgent flag for `current`.
    ///
    /// # Errors
    /// As [`GithubClient::list_releases`]. An update-check failure is not an error; it is
    /// reported in [`Feed::update_check_error`].
    pub async fn releases(&self, current: &Version) -> Result<Feed, UpstreamError> {
        let mut releases = self.github.list_releases().await?;
        let mut update_check_error = None;
        if let Some(client) = &self.update_check {
            match client.check(current).await {
                Ok(updates) => mark_security(&mut releases, &urgent_versions(&updates)),
                Err(e) => update_check_error = Some(e.to_string()),
            }
        }
        Ok(Feed {
            releases,
            update_check_error,
        })
    }

    /// See [`GithubClient::tag_commit`].
    ///
    /// # Errors
    /// As [`GithubClient::tag_commit`].
    pub async fn tag_commit(&self, tag: &str) -> Result<String, UpstreamError> {
        self.github.tag_commit(tag).await
    }
}

impl ReleaseSource for Upstream {
    fn releases<'a>(&'a self, current: &'a Version) -> BoxFuture<'a, Result<Feed, UpstreamError>> {
        Box::pin(Upstream::releases(self, current))
    }

    fn tag_commit<'a>(&'a self, tag: &'a str) -> BoxFuture<'a, Result<String, UpstreamError>> {
        Box::pin(Upstream::tag_commit(self, tag))
    }
}
