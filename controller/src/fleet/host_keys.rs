//! Host-key pinning: libssh2 checks no host keys, so the fleet does it here.
//!
//! The first key a droplet presents is pinned ([`HostKeyStore::pin`]); later connects must
//! present the same key or are refused before authentication. The decision is the pure
//! [`verdict`]; where pins are stored (sled in vmctld, memory in tests) is the store's concern.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use vmctl_protocol::meta::Timestamp;
use vmctl_protocol::node::PinnedHostKey;

/// Where pinned host keys live. Called from session threads, so it must not block for long.
pub trait HostKeyStore: Send + Sync + 'static {
    /// The key pinned for `node`, if any.
    ///
    /// # Errors
    /// A message saying why the store could not be read.
    fn pinned(&self, node: &str) -> Result<Option<PinnedHostKey>, String>;

    /// Pins `key` for `node`.
    ///
    /// # Errors
    /// A message saying why the store could not be written.
    fn pin(&self, node: &str, key: &PinnedHostKey) -> Result<(), String>;
}

/// A [`HostKeyStore`] in memory, for tests, benches and dev mode.
#[derive(Debug, Default)]
pub struct MemoryHostKeyStore {
    keys: Mutex<HashMap<String, PinnedHostKey>>,
}

impl MemoryHostKeyStore {
    /// Forgets the pin of `node` (what `vmctl forget-hostkey` does to the real store).
    pub fn forget(&self, node: &str) -> Option<PinnedHostKey> {
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(node)
    }
}

impl HostKeyStore for MemoryHostKeyStore {
    fn pinned(&self, node: &str) -> Result<Option<PinnedHostKey>, String> {
        Ok(self
            .keys
            .lock()
            .map_err(|e| e.to_string())?
            .get(node)
            .cloned())
    }

    fn pin(&self, node: &str, key: &PinnedHostKey) -> Result<(), String> {
        self.keys
            .lock()
            .map_err(|e| e.to_string())?
            .insert(node.to_owned(), key.clone());
        Ok(())
    }
}

/// The OpenSSH fingerprint of a raw key blob: `SHA256:<base64 without padding>`, as
/// `ssh-keygen -l` prints it.
#[must_use]
pub fn fingerprint(blob: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(blob)))
}

/// The key a droplet presented, ready to compare or pin.
#[must_use]
pub fn presented_key(key_type: &str, blob: &[u8], now: Timestamp) -> PinnedHostKey {
    PinnedHostKey {
        key_type: key_type.to_owned(),
        key_base64: STANDARD.encode(blob),
        fingerprint: fingerprint(blob),
        pinned_at: now,
    }
}

/// The libssh2 host-key type's SSH name.
#[must_use]
pub fn key_type_name(t: ssh2::HostKeyType) -> &'static str {
    match t {
        ssh2::HostKeyType::Rsa => "ssh-rsa",
        ssh2::HostKeyType::Dss => "ssh-dss",
        ssh2::HostKeyType::Ecdsa256 => "ecdsa-sha2-nistp256",
        ssh2::HostKeyType::Ecdsa384 => "ecdsa-sha2-nistp384",
        ssh2::HostKeyType::Ecdsa521 => "ecdsa-sha2-nistp521",
        ssh2::HostKeyType::Ed25519 => "ssh-ed25519",
        ssh2::HostKeyType::Unknown => "unknown",
    }
}

/// What to do with a presented host key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// First contact: pin it and go on.
    Pin,
    /// Same key as pinned: go on.
    Matches,
    /// Another key: refuse before authenticating.
    Mismatch {
        /// The pinned fingerprint.
        pinned: String,
    },
}

/// Compares the presented key with the pin. Type and blob must both match; the fingerprint
/// is derived from the blob, so comparing it too would add nothing.
#[must_use]
pub fn verdict(pinned: Option<&PinnedHostKey>, presented: &PinnedHostKey) -> Verdict {
    match pinned {
        None => Verdict::Pin,
        Some(p) if p.key_type == presented.key_type && p.key_base64 == presented.key_base64 => {
            Verdict::Matches
        }
        Some(p) => Verdict::Mismatch {
            pinned: p.fingerprint.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(blob: &[u8]) -> PinnedHostKey {
        presented_key("ssh-ed25519", blob, Timestamp::default())
    }

    #[test]
    fn fingerprints_match_ssh_keygen() {
        // `ssh-keygen -lf` of this ed25519 public key prints this fingerprint.
        let blob = STANDARD
            .decode("AAAAC3NzaC1lZDI1NTE5AAAAIN4UpDAOyuNkPUVPT//CDb44XgBbRgGLaDokqXku6t0l")
            .unwrap();
        assert_eq!(
            fingerprint(&blob),
            "SHA256:2Mp7HXcCx4N+7kmWE+I1PFWW6f/KtX3nwwc9vjH922s"
        );
    }

    #[test]
    fn first_contact_pins_same_key_matches_other_key_is_refused() {
        let a = key(b"key-a");
        let b = key(b"key-b");
        assert_eq!(verdict(None, &a), Verdict::Pin);
        assert_eq!(verdict(Some(&a), &a), Verdict::Matches);
        assert_eq!(
            verdict(Some(&a), &b),
            Verdict::Mismatch {
                pinned: a.fingerprint.clone()
            }
        );
    }

    #[test]
    fn a_key_of_another_type_with_the_same_blob_is_refused() {
        let a = key(b"key-a");
        let mut other = a.clone();
        other.key_type = "ssh-rsa".into();
        assert!(matches!(
            verdict(Some(&a), &other),
            Verdict::Mismatch { .. }
        ));
    }

    #[test]
    fn memory_store_forgets_on_request() {
        let store = MemoryHostKeyStore::default();
        store.pin("web-1", &key(b"k")).unwrap();
        assert!(store.pinned("web-1").unwrap().is_some());
        assert!(store.forget("web-1").is_some());
        assert!(store.pinned("web-1").unwrap().is_none());
    }
}
