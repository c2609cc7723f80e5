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

/// The config text for one droplet.
///
/// `marker` is set in every session's environment so that processes a session detaches
/// can still be found and killed with the droplet (see `process_tree`). Paths are quoted,
/// so folders with spaces work.
pub fn render(address: Ipv4Addr, paths: SshdPaths<'_>, marker: &str) -> String {
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
SetEnv \"{MARKER_VAR}={marker}\" \"{ROOT_VAR}={root}\" \"SHLVL=1\"
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
}
