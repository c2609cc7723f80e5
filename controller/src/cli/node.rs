//! `vmctl node forget-hostkey NODE`: drop a node's pinned SSH host key, after an operator has
//! checked that the new key is legitimate (a rebuilt droplet), so the next connection pins the
//! key it presents.

use std::io::Write;

use super::output::OutputFormat;
use super::CliError;
use crate::client::ApiClient;
use crate::config;

/// Route for one node's forget-hostkey action.
pub(crate) fn forget_hostkey_path(node: &str) -> String {
    format!("/v1/nodes/{node}/forget-hostkey")
}

/// Runs `node forget-hostkey`.
pub(crate) async fn forget_hostkey(
    client: &ApiClient,
    format: OutputFormat,
    node: &str,
) -> Result<(), CliError> {
    // Node names are DNS labels; checking here also keeps the name from reshaping the URL.
    config::check_object_name(node).map_err(|reason| CliError::BadName {
        kind: "node",
        reason,
    })?;
    client.post_empty(&forget_hostkey_path(node)).await?;
    if format == OutputFormat::Table {
        writeln!(
            std::io::stdout().lock(),
            "node/{node}: pinned host key forgotten; the next connection pins the key the node presents"
        )?;
    }
    Ok(())
}
