//! Pinning, re-pinning and forgetting SSH host keys.

use super::{host_key, temp_store};
use crate::StoreError;

#[test]
fn pin_get_and_forget() {
    let (_dir, store) = temp_store();
    assert!(store.host_key("web-1").unwrap().is_none());
    let key = host_key("AAAA");
    store.pin_host_key("web-1", &key).unwrap();
    assert_eq!(store.host_key("web-1").unwrap(), Some(key));
    assert!(store.forget_host_key("web-1").unwrap());
    assert!(!store.forget_host_key("web-1").unwrap());
    assert!(store.host_key("web-1").unwrap().is_none());
}

#[test]
fn the_same_key_pins_again_and_a_different_one_is_refused() {
    let (_dir, store) = temp_store();
    let key = host_key("AAAA");
    store.pin_host_key("web-1", &key).unwrap();
    let later = super::PinnedHostKey {
        pinned_at: chrono::Utc::now(),
        ..key.clone()
    };
    store.pin_host_key("web-1", &later).unwrap();
    match store.pin_host_key("web-1", &host_key("BBBB")) {
        Err(StoreError::HostKeyAlreadyPinned {
            node,
            pinned_fingerprint,
        }) => {
            assert_eq!(node, "web-1");
            assert_eq!(pinned_fingerprint, "SHA256:AAAA");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(store.host_key("web-1").unwrap(), Some(key));

    store.forget_host_key("web-1").unwrap();
    store.pin_host_key("web-1", &host_key("BBBB")).unwrap();
}
