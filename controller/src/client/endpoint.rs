//! Where the controller listens: a unix socket path or an `http://HOST:PORT` server, and the
//! bearer token that goes with it. Parsing is pure and tested here; connecting is in `http.rs`.

use std::fmt;
use std::path::PathBuf;

use super::ClientError;

/// Default socket path of vmctld, used when neither `--socket` nor `--server` is given.
pub const DEFAULT_SOCKET: &str = "/var/lib/vmctl/vmctld.sock";

/// A controller address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A unix socket path (the default, local-only transport).
    Unix(PathBuf),
    /// Plain HTTP over TCP, e.g. through an SSH tunnel; needs a bearer token.
    Tcp {
        /// Host name or IP literal (IPv6 without brackets).
        host: String,
        /// TCP port.
        port: u16,
    },
}

impl Endpoint {
    /// Parses `http://HOST[:PORT][/]` (port defaults to 80).
    ///
    /// # Errors
    /// [`ClientError::BadServerUrl`] for another scheme, a path, or a bad port.
    pub fn parse_server(url: &str) -> Result<Self, ClientError> {
        let bad = |reason| ClientError::BadServerUrl {
            url: url.to_owned(),
            reason,
        };
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| bad("expected http://HOST:PORT (https is not supported)"))?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#', '@']) {
            return Err(bad(
                "expected only http://HOST:PORT, without a path or user",
            ));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        let port = match port {
            None => 80,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| bad("port must be a number between 1 and 65535"))?,
        };
        Ok(Endpoint::Tcp {
            host: host.to_owned(),
            port,
        })
    }

    /// The `Host` header value. Over a unix socket there is no host, and `localhost` is what
    /// HTTP servers expect.
    pub(crate) fn host_header(&self) -> String {
        match self {
            Endpoint::Unix(_) => "localhost".to_owned(),
            Endpoint::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
            Endpoint::Tcp { host, port } => format!("{host}:{port}"),
        }
    }

    /// What to set to point vmctl elsewhere, for "nobody answering" messages.
    pub(crate) fn hint(&self) -> &'static str {
        match self {
            Endpoint::Unix(_) => "set --socket or VMCTL_SOCKET",
            Endpoint::Tcp { .. } => "set --server or VMCTL_SERVER",
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "{}", path.display()),
            Endpoint::Tcp { .. } => write!(f, "http://{}", self.host_header()),
        }
    }
}

/// A bearer token. Its `Debug` is masked and it has no `Display`, so it cannot reach output or
/// logs by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a token, trimming whitespace (token files end with a newline). `None` when empty.
    pub fn new(text: &str) -> Option<Token> {
        let t = text.trim();
        (!t.is_empty()).then(|| Token(t.to_owned()))
    }

    /// The `Authorization` header value.
    pub(crate) fn header_value(&self) -> String {
        format!("Bearer {}", self.0)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_parse_to_host_and_port() {
        let cases = [
            ("http://127.0.0.1:8080", "127.0.0.1", 8080),
            ("http://localhost:8080/", "localhost", 8080),
            ("http://ctl.internal", "ctl.internal", 80),
            ("http://[::1]:9000", "::1", 9000),
        ];
        for (url, host, port) in cases {
            assert_eq!(
                Endpoint::parse_server(url).unwrap(),
                Endpoint::Tcp {
                    host: host.into(),
                    port
                },
                "{url}"
            );
        }
        for bad in [
            "https://x:1",
            "127.0.0.1:80",
            "http://x:0",
            "http://x:99999",
            "http://x:1/v1",
            "http://:80",
            "http://[::1:80",
        ] {
            assert!(Endpoint::parse_server(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn display_and_host_header() {
        let v6 = Endpoint::parse_server("http://[::1]:9000").unwrap();
        assert_eq!(v6.to_string(), "http://[::1]:9000");
        assert_eq!(v6.host_header(), "[::1]:9000");
        let unix = Endpoint::Unix("/run/v.sock".into());
        assert_eq!(unix.to_string(), "/run/v.sock");
        assert_eq!(unix.host_header(), "localhost");
    }

    #[test]
    fn tokens_are_trimmed_and_never_shown() {
        assert_eq!(Token::new("  \n"), None);
        let t = Token::new("s3cret\n").unwrap();
        assert_eq!(t.header_value(), "Bearer s3cret");
        assert!(!format!("{t:?}").contains("s3cret"));
    }
}
