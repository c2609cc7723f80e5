//! Pinned SSH host keys, one per node, written on first contact and refused if they change.

use vmctl_protocol::node::PinnedHostKey;

use crate::{store::HOST_KEYS_TREE, Store, StoreError};

const PIN_ATTEMPTS: u32 = 3;

impl Store {
    /// The key pinned for `node`, if any.
    pub fn host_key(&self, node: &str) -> Result<Option<PinnedHostKey>, StoreError> {
        let raw = self
            .inner
            .host_keys
            .get(node)
            .map_err(|e| StoreError::sled("reading host key of", node, e))?;
        raw.map(|bytes| decode(node, &bytes)).transpose()
    }

    /// Pins `key` for `node` if none is pinned. Pinning the same key again is a no-op; a
    /// different key is refused with [`StoreError::HostKeyAlreadyPinned`].
    pub fn pin_host_key(&self, node: &str, key: &PinnedHostKey) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(key).map_err(|e| StoreError::codec("host_key", node, e))?;
        // A swap against "absent" fails only when a key is present, so one retry covers a
        // key forgotten between the swap and its report.
        for _ in 0..PIN_ATTEMPTS {
            let swapped = self
                .inner
                .host_keys
                .compare_and_swap(node, None::<&[u8]>, Some(bytes.as_slice()))
                .map_err(|e| StoreError::sled("pinning host key of", node, e))?;
            let Err(cas) = swapped else {
                return self.flush(node);
            };
            let Some(current) = cas.current else {
                continue;
            };
            let pinned = decode(node, &current)?;
            return if same_key(&pinned, key) {
                Ok(())
            } else {
                Err(StoreError::HostKeyAlreadyPinned {
                    node: node.to_owned(),
                    pinned_fingerprint: pinned.fingerprint,
                })
            };
        }
        Err(StoreError::Contended {
            kind: HOST_KEYS_TREE.to_owned(),
            name: node.to_owned(),
            attempts: PIN_ATTEMPTS,
        })
    }

    /// Unpins the key of `node` (after a rebuild). True when a key was pinned.
    pub fn forget_host_key(&self, node: &str) -> Result<bool, StoreError> {
        let removed = self
            .inner
            .host_keys
            .remove(node)
            .map_err(|e| StoreError::sled("forgetting host key of", node, e))?;
        if removed.is_some() {
            self.flush(node)?;
        }
        Ok(removed.is_some())
    }
}

/// The key itself decides; when it was pinned does not.
fn same_key(a: &PinnedHostKey, b: &PinnedHostKey) -> bool {
    a.key_type == b.key_type && a.key_base64 == b.key_base64
}

fn decode(node: &str, bytes: &[u8]) -> Result<PinnedHostKey, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::codec("host_key", node, e))
}
