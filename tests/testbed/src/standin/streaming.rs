//! The streaming stand-in (what `node ./streaming` becomes): answers
//! `/api/v1/streaming/health` with 200 "OK" and the release's version header, on
//! `$VMCTL_TESTBED_ADDRESS:$PORT` (default 4000); exits on SIGTERM or SIGINT.

use std::net::TcpListener;

use super::http::{self, Reply};
use super::web::release_info;

/// The streaming server's default port.
pub const DEFAULT_PORT: u16 = 4000;

/// The answer to `GET path`.
pub fn reply(path: &str) -> Reply {
    match path {
        "/api/v1/streaming/health" => Reply {
            status: 200,
            body: "OK",
        },
        _ => Reply {
            status: 404,
            body: "Not Found",
        },
    }
}

/// Serves until SIGTERM; returns 1 when it cannot start.
pub fn run() -> i32 {
    let cwd = std::env::current_dir().unwrap_or_default();
    let info = release_info(&cwd);
    let address = match http::listen_address(DEFAULT_PORT, None) {
        Ok(address) => address,
        Err(error) => {
            eprintln!("streaming (vmctl-testbed stand-in): {error}");
            return 1;
        }
    };
    let listener = match TcpListener::bind(address) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("streaming (vmctl-testbed stand-in): binding {address}: {error}");
            return 1;
        }
    };
    if let Err(error) = super::exit_on_term() {
        eprintln!("streaming (vmctl-testbed stand-in): {error}");
        return 1;
    }
    println!(
        "Streaming API now listening on {address} ({})",
        info.version
    );
    http::serve(&listener, &info.version, |_, path| reply(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_health_path_answers() {
        assert_eq!(reply("/api/v1/streaming/health").status, 200);
        assert_eq!(reply("/health").status, 404);
    }
}
