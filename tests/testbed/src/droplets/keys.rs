//! Generates ed25519 key pairs with `ssh-keygen` (host keys for droplets, client keys for
//! tests) and reads public keys back as `"<type> <base64>"`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::error::TestbedError;

/// Writes a new ed25519 key pair at `path` and `path.pub`, replacing any old pair, and
/// returns the public key as `"ssh-ed25519 AAAA..."`.
pub fn generate_ed25519(path: &Path, comment: &str) -> Result<String, TestbedError> {
    let public_path = public_path(path);
    for old in [path, public_path.as_path()] {
        // ssh-keygen asks before overwriting, and it has no stdin to ask on.
        match fs::remove_file(old) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(TestbedError::WriteFile {
                    path: old.to_path_buf(),
                    source,
                })
            }
        }
    }
    let output = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| TestbedError::Keygen {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    if !output.status.success() {
        return Err(TestbedError::Keygen {
            path: path.to_path_buf(),
            detail: format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    read_public_key(&public_path)
}

/// Reads an OpenSSH `.pub` file and keeps its first two fields, dropping the comment.
pub fn read_public_key(path: &Path) -> Result<String, TestbedError> {
    let text = fs::read_to_string(path).map_err(|source| TestbedError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    key_type_and_blob(&text).ok_or_else(|| TestbedError::MalformedPublicKey {
        path: path.to_path_buf(),
    })
}

/// `"ssh-ed25519 AAAA... comment\n"` → `"ssh-ed25519 AAAA..."`.
pub fn key_type_and_blob(line: &str) -> Option<String> {
    let mut fields = line.split_whitespace();
    let kind = fields.next()?;
    let blob = fields.next()?;
    Some(format!("{kind} {blob}"))
}

/// The `.pub` file ssh-keygen writes next to a private key.
pub fn public_path(private: &Path) -> PathBuf {
    let mut name = private.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// Generates an ed25519 client key pair `dir/id_ed25519` for tests and benches, and returns
/// the private key path and the public key line to pass to [`super::DropletFarm::start`].
pub fn generate_client_key(dir: &Path) -> Result<(PathBuf, String), TestbedError> {
    fs::create_dir_all(dir).map_err(|source| TestbedError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join("id_ed25519");
    let public = generate_ed25519(&path, "vmctl-testbed-client")?;
    Ok((path, public))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_type_and_blob_drops_comment_and_newline() {
        assert_eq!(
            key_type_and_blob("ssh-ed25519 AAAAC3 root@host\n").as_deref(),
            Some("ssh-ed25519 AAAAC3")
        );
        assert_eq!(key_type_and_blob("ssh-ed25519").as_deref(), None);
        assert_eq!(key_type_and_blob("").as_deref(), None);
    }

    #[test]
    fn public_path_appends_pub() {
        assert_eq!(
            public_path(Path::new("/x/ssh_host_ed25519_key")),
            PathBuf::from("/x/ssh_host_ed25519_key.pub")
        );
    }
}
