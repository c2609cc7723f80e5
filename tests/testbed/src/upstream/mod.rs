//! The upstream Mastodon of the testbed: a real git repository with Mastodon-like tags
//! ([`Upstream`]), their GitHub release metadata, and a GitHub-compatible API plus
//! Mastodon's update-check endpoint over them ([`UpstreamServer`]).
//!
//! Files: `fixtures` is what the tags hold, `releases` the metadata and the pure decisions
//! on it, `repo` the git repository, `github_api` the HTTP server, `error` the failures.
//!
//! ```no_run
//! use vmctl_testbed::upstream::Upstream;
//!
//! # fn main() -> Result<(), vmctl_testbed::upstream::UpstreamError> {
//! let upstream = Upstream::create(std::path::Path::new("/tmp/world/upstream"))?;
//! let server = upstream.serve("127.0.0.1:0".parse().unwrap())?;
//! // Clone from upstream.path(); list releases at
//! // {server.base_url()}/repos/mastodon/mastodon/releases.
//! upstream.publish("v4.4.2", "- Fix things", true, true)?;
//! # drop(server);
//! # Ok(()) }
//! ```

mod error;
pub mod fixtures;
pub mod github_api;
pub mod releases;
mod repo;

pub use error::UpstreamError;
pub use github_api::{ApiFaults, UpstreamServer};
pub use releases::{ReleaseMeta, Version};
pub use repo::Upstream;
