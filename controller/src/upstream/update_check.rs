//! [`UpdateCheckClient`]: Mastodon's update-check API (`GET {base}/update-check?version=X`),
//! the same service a Mastodon server asks to show admins an "urgent update" banner. Its
//! `urgent` flag marks security releases that carry no advisory in their notes yet.

use std::collections::BTreeSet;

use reqwest::Url;
use serde::Deserialize;

use super::error::UpstreamError;
use super::github::{join, parse_base};
use super::http::{Http, HttpSettings};

/// The real service.
pub const DEFAULT_UPDATE_CHECK_URL: &str = "https://api.joinmastodon.org";

/// Settings for [`UpdateCheckClient`].
#[derive(Clone, Debug)]
pub struct UpdateCheckConfig {
    /// Scheme, host, port and optional path prefix; default [`DEFAULT_UPDATE_CHECK_URL`].
    pub base_url: String,
    /// Timeouts and retries.
    pub http: HttpSettings,
}

impl Default for UpdateCheckConfig {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_UPDATE_CHECK_URL.to_owned(),
            http: HttpSettings::default(),
        }
    }
}

/// One entry of `updatesAvailable`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AvailableUpdate {
    /// The version, without `v` (e.g. `4.3.1`).
    pub version: String,
    /// Mastodon asks admins to update at once.
    #[serde(default)]
    pub urgent: bool,
    /// `major`, `minor` or `patch`.
    #[serde(default, rename = "type")]
    pub kind: String,
    /// A link to the release notes.
    #[serde(default)]
    pub release_notes: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateCheckAnswer {
    #[serde(default)]
    updates_available: Vec<AvailableUpdate>,
}

/// The versions the answer calls urgent; entries whose version does not parse are ignored.
#[must_use]
pub fn urgent_versions(updates: &[AvailableUpdate]) -> BTreeSet<semver::Version> {
    updates
        .iter()
        .filter(|u| u.urgent)
        .filter_map(|u| semver::Version::parse(u.version.trim_start_matches('v')).ok())
        .collect()
}

/// The update-check client.
#[derive(Clone, Debug)]
pub struct UpdateCheckClient {
    http: Http,
    base: Url,
}

impl UpdateCheckClient {
    /// Builds the client. Sends nothing.
    ///
    /// # Errors
    /// [`UpstreamError::Url`] for a bad base URL, [`UpstreamError::Client`] if TLS setup fails.
    pub fn new(config: UpdateCheckConfig) -> Result<Self, UpstreamError> {
        Ok(Self {
            http: Http::new(config.http, None, "application/json")?,
            base: parse_base(&config.base_url)?,
        })
    }

    /// `GET {base}/update-check?version={current}`: the updates available from `current`.
    ///
    /// # Errors
    /// [`UpstreamError::Decode`] for an answer that is not the documented shape; the HTTP
    /// failures of any call.
    pub async fn check(
        &self,
        current: &semver::Version,
    ) -> Result<Vec<AvailableUpdate>, UpstreamError> {
        let mut url = join(&self.base, &["update-check"]);
        url.query_pairs_mut()
            .append_pair("version", &current.to_string());
        let answer = self.http.get(&url, "the update check").await?;
        let parsed: UpdateCheckAnswer =
            serde_json::from_slice(&answer.body).map_err(|source| UpstreamError::Decode {
                what: format!("GET {}", url.path()),
                source,
            })?;
        Ok(parsed.updates_available)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urgent_versions_are_read_from_mastodons_shape() {
        let answer: UpdateCheckAnswer = serde_json::from_str(
            r#"{"updatesAvailable":[
                {"version":"4.3.1","urgent":true,"type":"patch","releaseNotes":"https://x"},
                {"version":"4.3.2","urgent":false,"type":"patch","releaseNotes":"https://y"},
                {"version":"garbage","urgent":true,"type":"patch","releaseNotes":""}]}"#,
        )
        .unwrap();
        assert_eq!(answer.updates_available[0].kind, "patch");
        assert_eq!(
            urgent_versions(&answer.updates_available),
            BTreeSet::from([semver::Version::new(4, 3, 1)])
        );
        let none: UpdateCheckAnswer = serde_json::from_str("{}").unwrap();
        assert!(none.updates_available.is_empty());
    }
}
