//! The DigitalOcean API token as a secret type: it can be built from the `DIGITALOCEAN_TOKEN`
//! value or a `--do-token-file`, and it cannot be printed. `Debug` and `Display` show a mask,
//! so a token inside a config struct or an error never reaches a log line.
//!
//! This file does not read the environment: `main` reads it once and passes the value in.

use std::fmt;
use std::path::{Path, PathBuf};

/// A DigitalOcean API token. Only [`CloudToken::expose`] reveals it, for the `Authorization`
/// header and for tests.
#[derive(Clone, PartialEq, Eq)]
pub struct CloudToken(String);

/// Why no usable token could be loaded. Messages name the source, never the value.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Neither source was given.
    #[error("no DigitalOcean API token: set DIGITALOCEAN_TOKEN or pass --do-token-file")]
    Missing,
    /// The token file could not be read.
    #[error("could not read the DigitalOcean token file {path}")]
    ReadFile {
        /// The file that was given.
        path: PathBuf,
        /// Why reading failed.
        #[source]
        source: std::io::Error,
    },
    /// The source held only whitespace, or whitespace inside the token (a pasted line break).
    #[error("the DigitalOcean token from {source_name} is empty or contains whitespace")]
    Malformed {
        /// `DIGITALOCEAN_TOKEN` or the file path.
        source_name: String,
    },
}

impl CloudToken {
    /// A token from a value (trimmed).
    ///
    /// # Errors
    /// [`TokenError::Malformed`] if the value is empty or has inner whitespace.
    pub fn new(value: &str, source_name: &str) -> Result<Self, TokenError> {
        let value = value.trim();
        if value.is_empty() || value.chars().any(char::is_whitespace) {
            return Err(TokenError::Malformed {
                source_name: source_name.to_owned(),
            });
        }
        Ok(Self(value.to_owned()))
    }

    /// A token from the file named by `--do-token-file` (trimmed).
    ///
    /// # Errors
    /// [`TokenError::ReadFile`] or [`TokenError::Malformed`].
    pub fn from_file(path: &Path) -> Result<Self, TokenError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenError::ReadFile {
            path: path.to_owned(),
            source,
        })?;
        Self::new(&text, &path.display().to_string())
    }

    /// The token from `--do-token-file` if given (an explicit flag wins), otherwise from the
    /// value of `DIGITALOCEAN_TOKEN` as read by `main`.
    ///
    /// # Errors
    /// [`TokenError::Missing`] when neither is given; otherwise as the chosen source fails.
    pub fn load(env_value: Option<&str>, file: Option<&Path>) -> Result<Self, TokenError> {
        match (file, env_value) {
            (Some(path), _) => Self::from_file(path),
            (None, Some(value)) => Self::new(value, "DIGITALOCEAN_TOKEN"),
            (None, None) => Err(TokenError::Missing),
        }
    }

    /// The secret itself. Call it only where the token leaves the process (the
    /// `Authorization` header) or in tests.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CloudToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CloudToken(***)")
    }
}

impl fmt::Display for CloudToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_masked_in_debug_and_display() {
        let t = CloudToken::new("dop_v1_secret", "test").unwrap();
        assert_eq!(format!("{t:?}"), "CloudToken(***)");
        assert_eq!(t.to_string(), "***");
        assert_eq!(t.expose(), "dop_v1_secret");
    }

    #[test]
    fn token_file_is_trimmed_and_wins_over_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "  from-file\n").unwrap();
        let t = CloudToken::load(Some("from-env"), Some(&path)).unwrap();
        assert_eq!(t.expose(), "from-file");
        let t = CloudToken::load(Some(" from-env\n"), None).unwrap();
        assert_eq!(t.expose(), "from-env");
    }

    #[test]
    fn missing_empty_or_broken_tokens_are_refused_without_echoing_them() {
        assert!(matches!(
            CloudToken::load(None, None),
            Err(TokenError::Missing)
        ));
        assert!(CloudToken::new(" \n", "x").is_err());
        let err = CloudToken::new("abc def", "DIGITALOCEAN_TOKEN").unwrap_err();
        assert!(!err.to_string().contains("abc"));
    }
}
