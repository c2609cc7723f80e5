//! `vmctl snapshot create POOL`: ask vmctld to snapshot one droplet of a managed pool now,
//! instead of waiting for the pool's snapshot to age past its `max_age`.

use std::io::Write;

use vmctl_protocol::api::SnapshotRequested;

use super::output::{self, OutputFormat};
use super::CliError;
use crate::client::ApiClient;
use crate::config;

/// Route that starts a pool's snapshot job.
pub(crate) fn snapshot_path(pool: &str) -> String {
    format!("/v1/pools/{pool}/snapshot")
}

/// Runs `snapshot create`.
pub(crate) async fn create(
    client: &ApiClient,
    format: OutputFormat,
    pool: &str,
) -> Result<(), CliError> {
    // Pool names are DNS labels; checking here also keeps the name from reshaping the URL.
    config::check_object_name(pool).map_err(|reason| CliError::BadName {
        kind: "pool",
        reason,
    })?;
    // The route takes no options; an empty object keeps the request well-formed JSON.
    let reply: SnapshotRequested = client
        .post_json(&snapshot_path(pool), &serde_json::json!({}))
        .await?;
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Json => output::print_json(&mut out, &reply),
        OutputFormat::Table => {
            writeln!(out, "snapshot {} requested for pool {pool}", reply.name)?;
            Ok(())
        }
    }
}
