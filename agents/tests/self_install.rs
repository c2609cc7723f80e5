//! Runs the built binary's `self-install` the way vmctld does after an scp upload.
//!
//! One test function only: it writes executables and runs them, and a concurrent fork from
//! another test thread could hold the write descriptor and make exec fail with ETXTBSY.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const AGENT: &str = env!("CARGO_BIN_EXE_vmctl-agent");

/// Copies the built agent to `dir/name`, as scp would upload it.
fn upload(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::copy(AGENT, &p).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
    p
}

fn run(binary: &Path, args: &[&std::ffi::OsStr]) -> Output {
    Command::new(binary)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", binary.display()))
}

#[test]
fn self_install_renames_within_its_directory_and_refuses_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();

    let tmp = upload(dir.path(), ".vmctl-agent.upload");
    let final_path = dir.path().join("vmctl-agent");
    let out = run(&tmp, &["self-install".as_ref(), final_path.as_os_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    assert!(!tmp.exists());
    let mode = std::fs::metadata(&final_path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o755);
    assert_eq!(
        std::fs::read(&final_path).unwrap(),
        std::fs::read(AGENT).unwrap()
    );
    assert!(run(&final_path, &["version".as_ref()]).status.success());

    let tmp = upload(dir.path(), ".vmctl-agent.upload2");
    for (target, why) in [
        (
            other.path().join("vmctl-agent"),
            "not in the same directory",
        ),
        (dir.path().join("sshd"), "file name must be vmctl-agent"),
    ] {
        let out = run(&tmp, &["self-install".as_ref(), target.as_os_str()]);
        assert_eq!(out.status.code(), Some(1), "{}", target.display());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(why), "{stderr}");
        assert!(tmp.exists() && !target.exists());
    }
}
