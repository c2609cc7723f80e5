//! The `hello` op: who this agent is. The binary's hash is how the controller decides whether to
//! upload a replacement, so it is of the file actually running.

use sha2::{Digest, Sha256};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use vmctl_protocol::agent::{Hello, PROTOCOL_VERSION};

/// The agent's crate version.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why the running binary could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The running executable's path is unknown.
    #[error("find the running executable")]
    CurrentExe(#[source] io::Error),
    /// The executable could not be read.
    #[error("hash {path}")]
    Read {
        /// The executable.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Lower-case hex SHA-256 of the file at `path`, streamed.
///
/// # Errors
/// When the file cannot be opened or read.
pub fn sha256_file(path: &Path) -> Result<String, HashError> {
    let err = |source| HashError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(err)?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher).map_err(err)?;
    Ok(hex::encode(hasher.finalize()))
}

/// Hashes the running executable once and remembers it: the file does not change under a
/// running agent (a replacement is renamed over the path, leaving the running inode intact).
#[derive(Debug, Default)]
pub struct BinaryHash(OnceLock<String>);

impl BinaryHash {
    /// The hash, computing it on first use. A failure is not cached, so a later call retries.
    ///
    /// # Errors
    /// When the executable cannot be found or read.
    pub fn get(&self) -> Result<&str, HashError> {
        if let Some(h) = self.0.get() {
            return Ok(h);
        }
        // `/proc/self/exe` opens the running inode even after a newer binary was renamed over
        // its path (then `current_exe()` names a deleted file); the path is the fallback for
        // systems without procfs.
        let h = match sha256_file(Path::new("/proc/self/exe")) {
            Ok(h) => h,
            Err(_) => sha256_file(&std::env::current_exe().map_err(HashError::CurrentExe)?)?,
        };
        Ok(self.0.get_or_init(|| h))
    }
}

/// The [`Hello`] for this agent.
///
/// # Errors
/// When the binary cannot be hashed.
pub fn hello(hash: &BinaryHash) -> Result<Hello, HashError> {
    Ok(Hello {
        agent_version: AGENT_VERSION.to_string(),
        binary_sha256: hash.get()?.to_string(),
        protocol_version: PROTOCOL_VERSION,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_hashes_are_lower_case_hex_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            sha256_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(matches!(
            sha256_file(&dir.path().join("nope")),
            Err(HashError::Read { .. })
        ));
    }

    #[test]
    fn hello_reports_version_protocol_and_a_stable_hash() {
        let hash = BinaryHash::default();
        let h = hello(&hash).unwrap();
        assert_eq!(h.agent_version, AGENT_VERSION);
        assert_eq!(h.protocol_version, PROTOCOL_VERSION);
        assert_eq!(h.binary_sha256.len(), 64);
        assert_eq!(hello(&hash).unwrap().binary_sha256, h.binary_sha256);
    }
}
