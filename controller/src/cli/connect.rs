//! From the global flags to an [`ApiClient`]: which endpoint, and which bearer token.

use std::path::PathBuf;

use super::{CliError, GlobalArgs};
use crate::client::{ApiClient, Endpoint, Token};

/// Builds the client. `--server` wins over `--socket`; `--token-file` wins over `VMCTL_TOKEN`
/// (`env_token`, read by `main`).
pub(crate) fn client(global: &GlobalArgs, env_token: Option<&str>) -> Result<ApiClient, CliError> {
    let endpoint = match &global.server {
        Some(url) => Endpoint::parse_server(url)?,
        None => Endpoint::Unix(global.socket.clone()),
    };
    let token = match &global.token_file {
        Some(path) => Some(read_token_file(path)?),
        None => env_token.and_then(Token::new),
    };
    Ok(ApiClient::new(endpoint).with_token(token))
}

fn read_token_file(path: &PathBuf) -> Result<Token, CliError> {
    let text = std::fs::read_to_string(path).map_err(|source| CliError::TokenFile {
        path: path.clone(),
        source,
    })?;
    Token::new(&text).ok_or_else(|| CliError::EmptyTokenFile(path.clone()))
}
