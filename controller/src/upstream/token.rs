//! The GitHub API token as a secret type. It is optional (anonymous calls get 60 requests an
//! hour, enough for an hourly feed check), and it cannot be printed: `Debug` and `Display`
//! show a mask, so a token inside a config struct or an error never reaches a log line.
//!
//! This file does not read the environment: `main` reads it once and passes the value in.

use std::fmt;

/// A GitHub API token. Only [`GithubToken::expose`] reveals it, for the `Authorization`
/// header and for tests.
#[derive(Clone, PartialEq, Eq)]
pub struct GithubToken(String);

impl GithubToken {
    /// A token from a value (trimmed); `None` when it is empty or has inner whitespace (a
    /// pasted line break), which GitHub would refuse anyway.
    #[must_use]
    pub fn new(value: &str) -> Option<Self> {
        let value = value.trim();
        (!value.is_empty() && !value.chars().any(char::is_whitespace))
            .then(|| Self(value.to_owned()))
    }

    /// The secret itself. Call it only where the token leaves the process.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for GithubToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GithubToken(***)")
    }
}

impl fmt::Display for GithubToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_masked_and_trimmed() {
        let t = GithubToken::new(" ghp_secret\n").unwrap();
        assert_eq!(format!("{t:?}"), "GithubToken(***)");
        assert_eq!(t.to_string(), "***");
        assert_eq!(t.expose(), "ghp_secret");
        assert!(GithubToken::new(" ").is_none());
        assert!(GithubToken::new("a b").is_none());
    }
}
