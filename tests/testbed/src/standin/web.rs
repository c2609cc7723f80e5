//! The web stand-in (what `bundle exec puma` becomes): answers `/health` with 200 "OK", or
//! 503 when the release it was started in says `health = "fail"` in `vmctl-standin.toml`;
//! every answer carries `x-vmctl-standin-version: <VERSION>`. Listens on
//! `$VMCTL_TESTBED_ADDRESS:$PORT` (default port 3000, or Puma's `-p`/`--port`); exits on
//! SIGTERM or SIGINT.

use std::net::TcpListener;
use std::path::Path;

use serde::Deserialize;

use super::http::{self, Reply};

/// Puma's default port.
pub const DEFAULT_PORT: u16 = 3000;
/// The stand-in config of a release, in its root.
pub const STANDIN_CONFIG: &str = "vmctl-standin.toml";

/// The release a stand-in was started in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseInfo {
    /// Its `VERSION` file, trimmed (`unknown` when missing).
    pub version: String,
    /// False when its `vmctl-standin.toml` says `health = "fail"`.
    pub healthy: bool,
}

#[derive(Debug, Default, Deserialize)]
struct StandinConfig {
    health: Option<String>,
}

/// Reads the release in `dir`; a missing or unreadable config means healthy.
pub fn release_info(dir: &Path) -> ReleaseInfo {
    let version = std::fs::read_to_string(dir.join("VERSION"))
        .map(|text| text.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned());
    let config: StandinConfig = std::fs::read_to_string(dir.join(STANDIN_CONFIG))
        .ok()
        .and_then(|text| toml::from_str(&text).ok())
        .unwrap_or_default();
    ReleaseInfo {
        version,
        healthy: config.health.as_deref() != Some("fail"),
    }
}

/// The answer to `GET path`.
pub fn reply(path: &str, healthy: bool) -> Reply {
    match path {
        "/health" if healthy => Reply {
            status: 200,
            body: "OK",
        },
        "/health" => Reply {
            status: 503,
            body: "Service Unavailable",
        },
        _ => Reply {
            status: 404,
            body: "Not Found",
        },
    }
}

/// Puma's port flag, if given (`-p N`, `--port N`, `--port=N`).
pub fn port_flag(args: &[String]) -> Option<u16> {
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if let Some(value) = arg.strip_prefix("--port=") {
            return value.parse().ok();
        }
        if arg == "-p" || arg == "--port" {
            return iter.next().and_then(|v| v.parse().ok());
        }
    }
    None
}

/// Serves until SIGTERM; returns 1 when it cannot start.
pub fn run(args: &[String]) -> i32 {
    let cwd = std::env::current_dir().unwrap_or_default();
    let info = release_info(&cwd);
    let address = match http::listen_address(DEFAULT_PORT, port_flag(args)) {
        Ok(address) => address,
        Err(error) => {
            eprintln!("puma (vmctl-testbed stand-in): {error}");
            return 1;
        }
    };
    let listener = match TcpListener::bind(address) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("puma (vmctl-testbed stand-in): binding {address}: {error}");
            return 1;
        }
    };
    if let Err(error) = super::exit_on_term() {
        eprintln!("puma (vmctl-testbed stand-in): {error}");
        return 1;
    }
    println!("Puma starting in single mode...");
    println!(
        "* Version {} (stand-in), healthy: {}",
        info.version, info.healthy
    );
    println!("* Listening on http://{address}");
    let healthy = info.healthy;
    http::serve(&listener, &info.version, move |_, path| {
        reply(path, healthy)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_follows_the_release_config() {
        assert_eq!(reply("/health", true).status, 200);
        assert_eq!(reply("/health", true).body, "OK");
        assert_eq!(reply("/health", false).status, 503);
        assert_eq!(reply("/", true).status, 404);
    }

    #[test]
    fn release_info_reads_version_and_health() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            release_info(dir.path()),
            ReleaseInfo {
                version: "unknown".into(),
                healthy: true
            }
        );
        std::fs::write(dir.path().join("VERSION"), "v4.4.1\n").unwrap();
        std::fs::write(dir.path().join(STANDIN_CONFIG), "health = \"fail\"\n").unwrap();
        assert_eq!(
            release_info(dir.path()),
            ReleaseInfo {
                version: "v4.4.1".into(),
                healthy: false
            }
        );
    }

    #[test]
    fn port_flags_are_read() {
        let args = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(port_flag(&args("-C config/puma.rb")), None);
        assert_eq!(port_flag(&args("-p 3001")), Some(3001));
        assert_eq!(port_flag(&args("--port=3002")), Some(3002));
    }
}
