//! The local agent binary the fleet installs on every droplet: its path and SHA-256.
//!
//! The hash is what `hello` is compared with. It is recomputed only when the file's size or
//! mtime changes, so [`AgentBinary::refresh`] is cheap enough to call on every resync. This
//! module does not choose the path (vmctld does) and does not read the bytes for an upload
//! (the upload streams the file and checks the hash again, see `bootstrap.rs`).

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

/// Reading the local agent binary failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentBinaryError {
    /// `stat` or read of the file failed.
    #[error("reading agent binary {path} failed")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// The agent binary to install, identified by its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentBinary {
    path: PathBuf,
    sha256: String,
    size: u64,
    modified: Option<SystemTime>,
}

impl AgentBinary {
    /// Hashes the file at `path`.
    ///
    /// # Errors
    /// [`AgentBinaryError::Read`] if the file cannot be read.
    pub fn load(path: impl Into<PathBuf>) -> Result<Self, AgentBinaryError> {
        let path = path.into();
        let (size, modified) = stat(&path)?;
        let (sha256, _) = hash_file(&path)?;
        Ok(Self {
            path,
            sha256,
            size,
            modified,
        })
    }

    /// Re-hashes the file if its size or mtime changed.
    ///
    /// Returns `true` only if the hash changed (a touched but identical file is not news).
    ///
    /// # Errors
    /// [`AgentBinaryError::Read`]; `self` is then unchanged.
    pub fn refresh(&mut self) -> Result<bool, AgentBinaryError> {
        let (size, modified) = stat(&self.path)?;
        if size == self.size && modified == self.modified && modified.is_some() {
            return Ok(false);
        }
        let (sha256, _) = hash_file(&self.path)?;
        let changed = sha256 != self.sha256;
        self.sha256 = sha256;
        self.size = size;
        self.modified = modified;
        Ok(changed)
    }

    /// The file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Lower-case hex SHA-256, as the agent's `hello` reports it.
    #[must_use]
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Size in bytes when last hashed.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }
}

fn stat(path: &Path) -> Result<(u64, Option<SystemTime>), AgentBinaryError> {
    let meta = std::fs::metadata(path).map_err(|source| AgentBinaryError::Read {
        path: path.to_owned(),
        source,
    })?;
    Ok((meta.len(), meta.modified().ok()))
}

/// SHA-256 (hex) and length of a file, streamed.
pub(crate) fn hash_file(path: &Path) -> Result<(String, u64), AgentBinaryError> {
    let err = |source| AgentBinaryError::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn refresh_reports_a_change_only_when_the_hash_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent");
        std::fs::write(&path, b"v1").unwrap();
        let mut bin = AgentBinary::load(&path).unwrap();
        assert_eq!(bin.sha256(), hex::encode(Sha256::digest(b"v1")));
        assert!(!bin.refresh().unwrap());

        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"+")
            .unwrap();
        assert!(bin.refresh().unwrap());
        assert_eq!(bin.sha256(), hex::encode(Sha256::digest(b"v1+")));
        assert_eq!(bin.size(), 3);
    }

    #[test]
    fn a_missing_file_names_its_path() {
        let err = AgentBinary::load("/nonexistent/vmctl-agent").unwrap_err();
        assert!(err.to_string().contains("/nonexistent/vmctl-agent"));
    }
}
