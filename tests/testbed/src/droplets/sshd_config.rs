//! Renders a droplet's `sshd_config`. Everything sshd reads is given as an absolute path in
//! the droplet's own folder, so droplets share nothing but the sshd binary.

use std::net::Ipv4Addr;
use std::path::Path;

use super::address::SSH_PORT;
use super::process_tree::MARKER_VAR;

/// The variable the agent reads its default `--root` from.
pub const ROOT_VAR: &str = "VMCTL_ROOT";

/// The files one droplet's sshd uses.
#[derive(Debug, Clone, Copy)]
pub struct SshdPaths<'a> {
    /// The private host key.
    pub host_key: &'a Path,
    /// The file with the controller's public key.
    pub authorized_keys: &'a Path,
    /// The droplet's root folder, handed to sessions as `VMCTL_ROOT` so the agent runs
    /// with the same command line as on a real droplet.
    pub root: &'a Path,
}

/// The variable the stand-ins read the address to listen on from.
pub const LISTEN_VAR: &str = "VMCTL_TESTBED_ADDRESS";

/// The variable the agent reads the host to probe its services on from.
pub const PROBE_HOST_VAR: &str = "VMCTL_PROBE_HOST";

/// The PATH sessions get after the stub folder: the host's own tools (`git` stays real).
const SYSTEM_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The extra session environment of a droplet whose sessions find the Mastodon stubs
/// (`bundle`, `yarn`, ...) in `stub_dir`, and whose services listen on and are probed at
/// its own `address`, as on a real droplet with its own IP.
pub fn stub_env(stub_dir: &Path, address: Ipv4Addr) -> Vec<(String, String)> {
    vec![
        (
            "PATH".to_owned(),
            format!("{}:{SYSTEM_PATH}", stub_dir.display()),
        ),
        (LISTEN_VAR.to_owned(), address.to_string()),
        (PROBE_HOST_VAR.to_owned(), address.to_string()),
    ]
}

/// The config text for one droplet.
///
/// `marker` is set in every session's environment so that processes a session detaches
/// can still be found and killed with the droplet (see `process_tree`). Paths are quoted,
/// so folders with spaces work.
pub fn render(address: Ipv4Addr, paths: SshdPaths<'_>, marker: &str) -> String {
    render_with_env(address, paths, marker, &[])
}

/// [`render`], with `extra_env` added to every session's environment (after the marker,
/// the root and `SHLVL`).
pub fn render_with_env(
    address: Ipv4Addr,
    paths: SshdPaths<'_>,
    marker: &str,
    extra_env: &[(String, String)],
) -> String {
    let extra: String = extra_env
        .iter()
        .map(|(name, value)| format!(" \"{name}={value}\""))
        .collect();
    format!(
        "\
# Written by vmctl-testbed; one simulated droplet.
ListenAddress {address}:{SSH_PORT}
HostKey \"{host_key}\"
AuthorizedKeysFile \"{authorized_keys}\"
PidFile none
# The droplet folders live in temp dirs whose owners and modes sshd would refuse.
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
PrintMotd no
PrintLastLog no
# Benches open many sessions to one droplet at once.
MaxStartups 200
MaxSessions 50
LogLevel ERROR
Subsystem sftp internal-sftp
# One line: sshd keeps only the first SetEnv line. SHLVL=1 makes Debian's bash skip
# ~/.bashrc for ssh commands: the droplets share this machine's root account, whose .bashrc
# (pyenv here) costs ~100 ms of CPU per login that a fresh droplet's would not.
SetEnv \"{MARKER_VAR}={marker}\" \"{ROOT_VAR}={root}\" \"SHLVL=1\"{extra}
",
        host_key = paths.host_key.display(),
        authorized_keys = paths.authorized_keys.display(),
        root = paths.root.display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_names_address_and_absolute_paths() {
        let text = render(
            Ipv4Addr::new(127, 9, 8, 7),
            SshdPaths {
                host_key: Path::new("/d/web-1/ssh_host_ed25519_key"),
                authorized_keys: Path::new("/d/web-1/authorized_keys"),
                root: Path::new("/d/web-1/root"),
            },
            "f00/web-1",
        );
        assert!(text.contains("\nListenAddress 127.9.8.7:22\n"));
        assert!(text.contains("\nHostKey \"/d/web-1/ssh_host_ed25519_key\"\n"));
        assert!(text.contains("\nAuthorizedKeysFile \"/d/web-1/authorized_keys\"\n"));
        assert!(text.contains(
            "\nSetEnv \"VMCTL_TESTBED_DROPLET=f00/web-1\" \"VMCTL_ROOT=/d/web-1/root\" \"SHLVL=1\"\n"
        ));
        assert!(text.contains("\nPasswordAuthentication no\n"));
    }

    #[test]
    fn stub_env_extends_the_single_set_env_line() {
        let address = Ipv4Addr::new(127, 9, 8, 7);
        let text = render_with_env(
            address,
            SshdPaths {
                host_key: Path::new("/d/k"),
                authorized_keys: Path::new("/d/a"),
                root: Path::new("/d/root"),
            },
            "m",
            &stub_env(Path::new("/d/stubs"), address),
        );
        assert_eq!(text.lines().filter(|l| l.starts_with("SetEnv")).count(), 1);
        assert!(text.contains(
            "\nSetEnv \"VMCTL_TESTBED_DROPLET=m\" \"VMCTL_ROOT=/d/root\" \"SHLVL=1\" \
             \"PATH=/d/stubs:/usr/local/bin:/usr/bin:/bin\" \
             \"VMCTL_TESTBED_ADDRESS=127.9.8.7\" \"VMCTL_PROBE_HOST=127.9.8.7\"\n"
        ));
    }
}
