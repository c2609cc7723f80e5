//! Why an upstream operation (creating the repository, publishing a tag, serving the API)
//! failed.

use std::path::PathBuf;

/// A failed upstream operation.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// A folder or file could not be written or read.
    #[error("{op} {path}")]
    Io {
        /// What was being done, e.g. "writing".
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `git` could not be started.
    #[error("running git {args:?} in {repo}")]
    GitSpawn {
        /// Its arguments.
        args: Vec<String>,
        /// The repository.
        repo: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `git` exited non-zero.
    #[error("git {args:?} in {repo} failed: {stderr}")]
    Git {
        /// Its arguments.
        args: Vec<String>,
        /// The repository.
        repo: PathBuf,
        /// What it said.
        stderr: String,
    },
    /// `create` found a repository already there.
    #[error("an upstream repository already exists in {path}")]
    AlreadyExists {
        /// The repository.
        path: PathBuf,
    },
    /// `open` found no repository.
    #[error("no upstream repository in {path}")]
    Missing {
        /// The folder looked in.
        path: PathBuf,
    },
    /// A tag that is not `vMAJOR.MINOR.PATCH[-PRE]`.
    #[error("tag {tag:?} is not of the form vMAJOR.MINOR.PATCH[-PRE]")]
    InvalidTag {
        /// The tag given.
        tag: String,
    },
    /// `publish` was given a tag the repository already has.
    #[error("tag {tag} already exists")]
    TagExists {
        /// The tag.
        tag: String,
    },
    /// The release metadata file is not valid JSON of the expected shape.
    #[error("reading release metadata {path}")]
    Metadata {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The API server could not bind its address or start its runtime.
    #[error("starting the upstream API on {listen}")]
    Serve {
        /// The address asked for.
        listen: std::net::SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}
