//! What happens when another process holds a droplet's address, as a parallel test process
//! may: sshd must not be taken as ready because a connect reached the other listener.

use std::collections::HashSet;
use std::net::TcpListener;

use vmctl_testbed::droplets::address::{pick_free, SSH_PORT};
use vmctl_testbed::droplets::sshd::{self, LaunchError, LaunchSpec};
use vmctl_testbed::droplets::sshd_config::{render, SshdPaths};
use vmctl_testbed::{generate_client_key, DropletFarm, TestbedError};

#[test]
fn launch_on_a_held_address_reports_address_in_use_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    // Any ed25519 key pair serves as a host key.
    let (host_key, public) = generate_client_key(dir.path()).unwrap();
    let authorized_keys = dir.path().join("authorized_keys");
    std::fs::write(&authorized_keys, public).unwrap();
    let address = pick_free(&HashSet::new(), 8).unwrap().unwrap();
    // A listener that accepts TCP, as another test's sshd would.
    let _other = TcpListener::bind((address, SSH_PORT)).unwrap();

    let config = dir.path().join("sshd_config");
    let paths = SshdPaths {
        host_key: &host_key,
        authorized_keys: &authorized_keys,
        root: dir.path(),
    };
    std::fs::write(&config, render(address, paths, "clash/test")).unwrap();
    sshd::ensure_privsep_dir().unwrap();
    let result = sshd::launch(&LaunchSpec {
        name: "clash",
        address,
        config: &config,
        log: &dir.path().join("sshd.log"),
        marker: "clash/test",
    });
    assert!(
        matches!(result, Err(LaunchError::AddressInUse)),
        "got {result:?}"
    );
}

#[test]
fn start_sshd_fails_clearly_when_its_address_was_taken_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let (_key, public) = generate_client_key(&dir.path().join("client")).unwrap();
    let mut farm =
        DropletFarm::start(&dir.path().join("farm"), &["a-1".to_owned()], &public).unwrap();
    let address = farm.droplets()[0].address;
    farm.kill_sshd("a-1").unwrap();
    let other = TcpListener::bind((address, SSH_PORT)).unwrap();

    let result = farm.start_sshd("a-1");
    assert!(
        matches!(result, Err(TestbedError::AddressTaken { .. })),
        "got {result:?}"
    );
    drop(other);
    farm.start_sshd("a-1").unwrap();
}
