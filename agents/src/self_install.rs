//! `self-install`: atomically put the running (freshly uploaded) binary at its final path.
//!
//! The controller scp's the new agent to a temp name next to the final one and runs it with
//! `self-install FINAL_PATH`; rename(2) within one directory is atomic, so an agent starting at
//! any instant runs either the old binary or the new one, never a partial file.

use std::fs::{self, File, Permissions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The only file name `self-install` will write.
pub const BINARY_NAME: &str = "vmctl-agent";

/// Why `self-install` refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum SelfInstallError {
    /// The running executable's path is unknown.
    #[error("find the running executable")]
    CurrentExe(#[source] io::Error),
    /// The final path's file name is not [`BINARY_NAME`].
    #[error("refuse to install to {path}: the file name must be {BINARY_NAME}")]
    WrongFileName {
        /// The requested final path.
        path: PathBuf,
    },
    /// A directory could not be resolved.
    #[error("resolve directory of {path}")]
    ResolveDir {
        /// The path whose directory failed to resolve.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The binary and the final path are in different directories, so rename would not be
    /// atomic (or would fail across filesystems).
    #[error("refuse to install {from} to {to}: not in the same directory")]
    DifferentDirectory {
        /// The running binary.
        from: PathBuf,
        /// The requested final path.
        to: PathBuf,
    },
    /// Setting mode 0755 failed.
    #[error("chmod 0755 {path}")]
    Chmod {
        /// The binary.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Flushing the binary's contents to disk failed.
    #[error("fsync {path}")]
    SyncFile {
        /// The binary.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The rename failed.
    #[error("rename {from} to {to}")]
    Rename {
        /// The running binary.
        from: PathBuf,
        /// The final path.
        to: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Flushing the directory entry to disk failed.
    #[error("fsync directory {dir}")]
    SyncDir {
        /// The directory.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Installs the running executable at `final_path`.
///
/// # Errors
/// See [`install`].
pub fn self_install(final_path: &Path) -> Result<(), SelfInstallError> {
    let exe = std::env::current_exe().map_err(SelfInstallError::CurrentExe)?;
    install(&exe, final_path)
}

/// Renames `binary` onto `final_path` after making it 0755 and durable, then fsyncs the
/// directory so the rename survives a crash. Installing a binary onto itself is a no-op success.
///
/// # Errors
/// When `final_path` is not named [`BINARY_NAME`], is not in `binary`'s directory, or a step
/// fails; see [`SelfInstallError`].
pub fn install(binary: &Path, final_path: &Path) -> Result<(), SelfInstallError> {
    if !matches!(final_path.file_name(), Some(n) if n == BINARY_NAME) {
        return Err(SelfInstallError::WrongFileName {
            path: final_path.to_path_buf(),
        });
    }
    let dir = resolved_dir(binary)?;
    if resolved_dir(final_path)? != dir {
        return Err(SelfInstallError::DifferentDirectory {
            from: binary.to_path_buf(),
            to: final_path.to_path_buf(),
        });
    }
    fs::set_permissions(binary, Permissions::from_mode(0o755)).map_err(|source| {
        SelfInstallError::Chmod {
            path: binary.to_path_buf(),
            source,
        }
    })?;
    // scp does not fsync; without this a crash after the rename could leave an empty file at
    // the final path.
    File::open(binary)
        .and_then(|f| f.sync_all())
        .map_err(|source| SelfInstallError::SyncFile {
            path: binary.to_path_buf(),
            source,
        })?;
    fs::rename(binary, final_path).map_err(|source| SelfInstallError::Rename {
        from: binary.to_path_buf(),
        to: final_path.to_path_buf(),
        source,
    })?;
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| SelfInstallError::SyncDir {
            dir: dir.clone(),
            source,
        })
}

/// The canonical directory holding `path` (symlinks resolved, so two spellings of one folder
/// compare equal).
fn resolved_dir(path: &Path) -> Result<PathBuf, SelfInstallError> {
    let err = |source| SelfInstallError::ResolveDir {
        path: path.to_path_buf(),
        source,
    };
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::canonicalize(parent).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, b"new agent").unwrap();
        fs::set_permissions(&p, Permissions::from_mode(0o600)).unwrap();
        p
    }

    #[test]
    fn installs_by_rename_with_mode_0755() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(BINARY_NAME), b"old agent").unwrap();
        let tmp = upload(dir.path(), ".vmctl-agent.upload");
        let target = dir.path().join(BINARY_NAME);
        install(&tmp, &target).unwrap();
        assert!(!tmp.exists());
        assert_eq!(fs::read(&target).unwrap(), b"new agent");
        assert_eq!(
            fs::metadata(&target).unwrap().permissions().mode() & 0o7777,
            0o755
        );
        install(&target, &target).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"new agent");
    }

    #[test]
    fn refuses_another_directory() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let tmp = upload(a.path(), "up");
        let err = install(&tmp, &b.path().join(BINARY_NAME)).unwrap_err();
        assert!(
            matches!(err, SelfInstallError::DifferentDirectory { .. }),
            "{err:?}"
        );
        assert!(tmp.exists());
    }

    #[test]
    fn refuses_another_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = upload(dir.path(), "up");
        for name in ["sshd", "vmctl-agent.bak", ""] {
            let err = install(&tmp, &dir.path().join(name)).unwrap_err();
            assert!(
                matches!(err, SelfInstallError::WrongFileName { .. }),
                "{name}: {err:?}"
            );
        }
        assert!(matches!(
            install(&tmp, Path::new("/")),
            Err(SelfInstallError::WrongFileName { .. })
        ));
        assert!(tmp.exists());
    }

    #[test]
    fn a_dotted_spelling_of_the_same_directory_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        let tmp = upload(dir.path(), "up");
        install(&tmp, &dir.path().join("sub/../vmctl-agent")).unwrap();
        assert!(dir.path().join(BINARY_NAME).exists());
    }
}
