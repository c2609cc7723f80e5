//! Lays out a droplet's root folder: the few paths of a Mastodon droplet that the agent
//! expects to find. Everything the agent touches on a droplet hangs under this root.

use std::fs;
use std::path::Path;

use super::error::TestbedError;

/// Folders every droplet root starts with.
const ROOT_DIRS: &[&str] = &[
    "etc",
    "home/mastodon",
    "var/lib/vmctl/bin",
    "run/vmctl/services",
];

/// Where os-release is copied from, so the agent's facts read like the host's distribution.
const HOST_OS_RELEASE: &str = "/etc/os-release";

/// Fallback when the host has no os-release.
const DEFAULT_OS_RELEASE: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n";

/// Creates `root` with its folders, `etc/hostname` (the droplet's name) and `etc/os-release`.
pub fn create(root: &Path, hostname: &str) -> Result<(), TestbedError> {
    for dir in ROOT_DIRS {
        let path = root.join(dir);
        fs::create_dir_all(&path).map_err(|source| TestbedError::CreateDir { path, source })?;
    }
    write(&root.join("etc/hostname"), &format!("{hostname}\n"))?;
    let os_release =
        fs::read_to_string(HOST_OS_RELEASE).unwrap_or_else(|_| DEFAULT_OS_RELEASE.to_owned());
    write(&root.join("etc/os-release"), &os_release)
}

fn write(path: &Path, text: &str) -> Result<(), TestbedError> {
    fs::write(path, text).map_err(|source| TestbedError::WriteFile {
        path: path.to_path_buf(),
        source,
    })
}
