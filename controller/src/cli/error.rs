//! Why a `vmctl` command failed. `main` prints these as `error: ...` and exits 1.

use std::path::PathBuf;

use crate::client::ClientError;
use crate::config::ConfigErrors;

/// A failed command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Talking to the controller failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The cluster file is unreadable or invalid; nothing was sent.
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    /// `--token-file` could not be read.
    #[error("cannot read token file {}: {source}", path.display())]
    TokenFile {
        /// The path given.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// `--token-file` is empty.
    #[error("token file {} is empty", .0.display())]
    EmptyTokenFile(PathBuf),
    /// `get KIND NAME` named an object that does not exist.
    #[error("{kind} {name:?} not found")]
    NotFound {
        /// `node`, `pool`, `provision` or `snapshot`.
        kind: &'static str,
        /// The name asked for.
        name: String,
    },
    /// A name given on the command line is not a valid object name.
    #[error("invalid {kind} name: {reason}")]
    BadName {
        /// `node` or `pool`.
        kind: &'static str,
        /// Why.
        reason: String,
    },
    /// Writing to stdout failed.
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
    /// A reply could not be re-encoded as JSON.
    #[error("encoding JSON output: {0}")]
    Encode(#[source] serde_json::Error),
}

impl CliError {
    /// A closed stdout (`vmctl events | head`) ends the command quietly, like other CLIs.
    pub(crate) fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// The lines printed after `error: `; one per problem for an invalid cluster file.
    pub(crate) fn lines(&self) -> Vec<String> {
        match self {
            CliError::Config(ConfigErrors::Invalid(errors)) => {
                let mut lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
                let file = errors.first().map_or("", |e| e.file.as_str());
                let n = errors.len();
                lines.push(format!(
                    "{file}: {n} problem{}; nothing was sent",
                    if n == 1 { "" } else { "s" }
                ));
                lines
            }
            other => vec![other.to_string()],
        }
    }
}
