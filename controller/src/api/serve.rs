//! Listeners: the unix socket (mode 0600) and, when asked, TCP behind the bearer token.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use axum::middleware;
use tokio::net::{TcpListener, UnixListener};

use super::{auth, BearerToken};

/// Why a listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// Another process answers on the socket path.
    #[error("another controller is already answering on {0}")]
    InUse(PathBuf),
    /// Bind, permission or cleanup failed.
    #[error("cannot listen on {path}: {source}")]
    Io {
        /// The socket path or address.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// Binds the unix socket with mode 0600, replacing a stale socket file left by a crash but never
/// one a live controller still answers on.
///
/// # Errors
/// [`SocketError::InUse`] when a live controller answers there; I/O failures otherwise.
pub async fn bind_unix(path: &Path) -> Result<UnixListener, SocketError> {
    let io = |source| SocketError::Io {
        path: path.to_path_buf(),
        source,
    };
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(SocketError::InUse(path.to_path_buf()));
        }
        fs::remove_file(path).map_err(io)?;
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io)?;
    }
    let listener = UnixListener::bind(path).map_err(io)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(listener)
}

/// Serves the router on the unix socket until `shutdown` resolves.
///
/// # Errors
/// When the server fails.
pub async fn serve_unix(
    listener: UnixListener,
    router: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serves the router on TCP with every route behind the bearer token.
///
/// # Errors
/// When the server fails.
pub async fn serve_tcp(
    listener: TcpListener,
    router: axum::Router,
    token: BearerToken,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let guarded = router.layer(middleware::from_fn_with_state(token, auth::require_bearer));
    axum::serve(listener, guarded)
        .with_graceful_shutdown(shutdown)
        .await
}
