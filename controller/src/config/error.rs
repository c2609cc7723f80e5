//! Errors of the cluster.toml loader: one located error per problem, and the collection the
//! loader returns. The `FILE:LINE:COLUMN: FIELD: message` format is the contract with operators
//! (and with editors, which jump to `FILE:LINE:COLUMN`).

use std::fmt;

/// One problem in a cluster file, located at a line and column (both 1-based; the column
/// counts characters, not bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file name as given to the loader.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Dotted path of the offending field, e.g. `nodes[2].pool` or `pools.web.role`.
    pub field: String,
    /// What is wrong and, where it helps, what would be right.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.column, self.field, self.message
        )
    }
}

/// Why a cluster file was refused. Nothing is sent or stored when this is returned.
#[derive(Debug, thiserror::Error)]
pub enum ConfigErrors {
    /// The file could not be read at all.
    #[error("{file}: cannot read cluster file: {source}")]
    Read {
        /// The path as given.
        file: String,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// The file was read and has one or more problems, sorted by position. Never empty.
    #[error("{}", join_lines(.0))]
    Invalid(Vec<ConfigError>),
}

impl ConfigErrors {
    /// The located problems (empty for [`ConfigErrors::Read`]).
    pub fn errors(&self) -> &[ConfigError] {
        match self {
            ConfigErrors::Read { .. } => &[],
            ConfigErrors::Invalid(errors) => errors,
        }
    }
}

fn join_lines(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_file_line_column_field_message() {
        let e = ConfigError {
            file: "cluster.toml".into(),
            line: 3,
            column: 7,
            field: "nodes[0].port".into(),
            message: "must be between 1 and 65535".into(),
        };
        assert_eq!(
            e.to_string(),
            "cluster.toml:3:7: nodes[0].port: must be between 1 and 65535"
        );
        let all = ConfigErrors::Invalid(vec![e.clone(), e]);
        assert_eq!(all.to_string().lines().count(), 2);
    }
}
