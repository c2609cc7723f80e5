//! Real-sshd tests of the droplet farm: ssh works, kill/start/rotate behave, and teardown
//! leaves no process behind. Needs root, /usr/sbin/sshd and the ssh client.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::{accepts_tcp, comm, ssh, ssh_ok, wait_until};
use vmctl_testbed::droplets::process_tree::is_alive;
use vmctl_testbed::{generate_client_key, DropletFarm, TestbedError};

const DEADLINE: Duration = Duration::from_secs(10);

fn names(prefix: &str, count: usize) -> Vec<String> {
    (1..=count).map(|i| format!("{prefix}-{i}")).collect()
}

fn all_gone(pids: &BTreeSet<i32>) -> bool {
    pids.iter().all(|&pid| !is_alive(pid))
}

#[test]
fn three_droplets_serve_ssh_with_their_own_host_keys_and_root_folders() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = generate_client_key(&dir.path().join("client")).unwrap();
    let mut farm =
        DropletFarm::start(&dir.path().join("farm"), &names("node", 3), &public).unwrap();

    let addresses: BTreeSet<_> = farm.droplets().iter().map(|d| d.address).collect();
    assert_eq!(addresses.len(), 3, "droplets share an address");
    for droplet in farm.droplets() {
        assert!(accepts_tcp(droplet), "{} refuses TCP", droplet.name);
        assert!(droplet.host_key_public.starts_with("ssh-ed25519 AAAA"));
        assert!(ssh_ok(
            &key,
            droplet,
            Some(&droplet.host_key_public),
            "true"
        ));
        let hostname = std::fs::read_to_string(droplet.root.join("etc/hostname")).unwrap();
        assert_eq!(hostname.trim(), droplet.name);
        for dir in ["home/mastodon", "var/lib/vmctl/bin", "run/vmctl/services"] {
            assert!(
                droplet.root.join(dir).is_dir(),
                "{} lacks {dir}",
                droplet.name
            );
        }
        assert!(droplet.root.join("etc/os-release").is_file());
        let env = ssh(&key, droplet, None, "echo $VMCTL_ROOT")
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&env.stdout).trim(),
            droplet.root.to_str().unwrap()
        );
    }
    let sshd_pids: BTreeSet<i32> = farm
        .droplets()
        .iter()
        .map(|d| d.sshd_pid().unwrap() as i32)
        .collect();

    farm.teardown();
    wait_until("every sshd is gone", DEADLINE, || all_gone(&sshd_pids));
    for droplet in farm.droplets() {
        assert!(!accepts_tcp(droplet), "{} still accepts TCP", droplet.name);
        assert!(droplet.processes().is_empty());
    }
    farm.teardown(); // idempotent
}

#[test]
fn kill_sshd_ends_open_sessions_and_start_sshd_brings_back_the_same_host_key() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = generate_client_key(&dir.path().join("client")).unwrap();
    let mut farm = DropletFarm::start(&dir.path().join("farm"), &names("web", 1), &public).unwrap();
    let droplet = &farm.droplets()[0];
    let (name, host_key) = (droplet.name.clone(), droplet.host_key_public.clone());

    let mut session = ssh(&key, droplet, None, "sleep 30").spawn().unwrap();
    let mut tree = BTreeSet::new();
    wait_until(
        "the remote sleep runs under the droplet's sshd",
        DEADLINE,
        || {
            tree = farm.get(&name).unwrap().processes();
            tree.iter()
                .any(|&pid| comm(pid).as_deref() == Some("sleep"))
        },
    );

    farm.kill_sshd(&name).unwrap();
    let droplet = farm.get(&name).unwrap();
    assert!(!droplet.is_running());
    assert!(!accepts_tcp(droplet), "killed sshd still accepts TCP");
    wait_until("the session's processes are gone", DEADLINE, || {
        all_gone(&tree)
    });
    wait_until("the ssh client sees its session end", DEADLINE, || {
        session.try_wait().unwrap().is_some()
    });
    farm.kill_sshd(&name).unwrap(); // already stopped: a no-op

    farm.start_sshd(&name).unwrap();
    let droplet = farm.get(&name).unwrap();
    assert_eq!(droplet.host_key_public, host_key);
    assert!(ssh_ok(&key, droplet, Some(&host_key), "true"));
    assert!(matches!(
        farm.start_sshd(&name),
        Err(TestbedError::SshdAlreadyRunning { .. })
    ));
}

#[test]
fn rotate_host_key_presents_a_new_key_on_the_same_address() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = generate_client_key(&dir.path().join("client")).unwrap();
    let mut farm =
        DropletFarm::start(&dir.path().join("farm"), &names("exec", 1), &public).unwrap();
    let before = farm.droplets()[0].host_key_public.clone();
    let address = farm.droplets()[0].address;

    farm.rotate_host_key("exec-1").unwrap();
    let droplet = farm.get("exec-1").unwrap();
    assert_ne!(droplet.host_key_public, before);
    assert_eq!(droplet.address, address);
    assert!(ssh_ok(
        &key,
        droplet,
        Some(&droplet.host_key_public),
        "true"
    ));
    let pinned_old = ssh(&key, droplet, Some(&before), "true").output().unwrap();
    assert!(!pinned_old.status.success(), "old host key still accepted");
}

#[test]
fn kill_sshd_also_kills_processes_a_session_detached() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = generate_client_key(&dir.path().join("client")).unwrap();
    let mut farm = DropletFarm::start(&dir.path().join("farm"), &names("svc", 1), &public).unwrap();
    let droplet = &farm.droplets()[0];
    let pid_file = droplet.root.join("run/vmctl/services/daemon.pid");
    let remote = format!(
        "setsid sh -c 'echo $$ > {}; exec sleep 300' </dev/null >/dev/null 2>&1 &",
        pid_file.display()
    );
    assert!(ssh_ok(&key, droplet, None, &remote));
    let mut daemon = 0;
    wait_until("the detached daemon wrote its pid", DEADLINE, || {
        daemon = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        daemon > 0 && comm(daemon).as_deref() == Some("sleep")
    });
    assert!(farm.get("svc-1").unwrap().processes().contains(&daemon));

    farm.kill_sshd("svc-1").unwrap();
    wait_until("the detached daemon is gone", DEADLINE, || {
        !is_alive(daemon)
    });
}

#[test]
fn add_and_remove_change_the_farm() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = generate_client_key(&dir.path().join("client")).unwrap();
    let mut farm =
        DropletFarm::start(&dir.path().join("farm"), &names("pool", 1), &public).unwrap();

    let added = farm.add("pool-2").unwrap();
    assert!(ssh_ok(&key, added, None, "true"));
    assert!(matches!(
        farm.add("pool-1"),
        Err(TestbedError::DuplicateDroplet { .. })
    ));

    let removed = farm.get("pool-1").unwrap();
    let (folder, pid) = (removed.dir.clone(), removed.sshd_pid().unwrap() as i32);
    farm.remove("pool-1").unwrap();
    assert!(!folder.exists());
    assert!(farm.get("pool-1").is_none());
    wait_until("the removed droplet's sshd is gone", DEADLINE, || {
        !is_alive(pid)
    });
    assert!(matches!(
        farm.remove("pool-1"),
        Err(TestbedError::UnknownDroplet { .. })
    ));
    assert_eq!(farm.droplets().len(), 1);
}

#[test]
fn twenty_droplets_start_in_parallel() {
    let dir = tempfile::tempdir().unwrap();
    let (_key, public) = generate_client_key(&dir.path().join("client")).unwrap();
    let farm = DropletFarm::start(&dir.path().join("farm"), &names("many", 20), &public).unwrap();
    assert_eq!(farm.droplets().len(), 20);
    let addresses: BTreeSet<_> = farm.droplets().iter().map(|d| d.address).collect();
    assert_eq!(addresses.len(), 20);
    for droplet in farm.droplets() {
        assert!(accepts_tcp(droplet), "{} refuses TCP", droplet.name);
    }
    let pids: BTreeSet<i32> = farm
        .droplets()
        .iter()
        .map(|d| d.sshd_pid().unwrap() as i32)
        .collect();
    drop(farm);
    wait_until("dropping the farm killed every sshd", DEADLINE, || {
        all_gone(&pids)
    });
}

#[test]
fn start_rejects_bad_input_before_starting_anything() {
    let dir = tempfile::tempdir().unwrap();
    let farm_dir = dir.path().join("farm");
    let two_lines = "ssh-ed25519 AAAA a\nssh-ed25519 BBBB b\n";
    assert!(matches!(
        DropletFarm::start(&farm_dir, &names("x", 1), two_lines),
        Err(TestbedError::InvalidAuthorizedKey { line_count: 2 })
    ));
    let key = "ssh-ed25519 AAAA a";
    assert!(matches!(
        DropletFarm::start(&farm_dir, &["a/b".to_owned()], key),
        Err(TestbedError::InvalidName { .. })
    ));
    assert!(matches!(
        DropletFarm::start(&farm_dir, &["x".to_owned(), "x".to_owned()], key),
        Err(TestbedError::DuplicateDroplet { .. })
    ));
}
