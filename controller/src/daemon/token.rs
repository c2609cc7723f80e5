//! The API bearer token file: read it, or create it with mode 0600 on first start.

use std::{io::Write, os::unix::fs::OpenOptionsExt, path::Path};

use anyhow::Context as _;
use rand::Rng;

/// Reads the token from `path`, creating a random one (mode 0600) if the file does not exist.
///
/// # Errors
/// When the file cannot be read or created, or is empty.
pub fn load_or_create(path: &Path) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_string()),
        Ok(_) => anyhow::bail!("token file {} is empty", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read token file {}", path.display()))
        }
    }
    let token: String = rand::thread_rng()
        .sample_iter(rand::distributions::Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create token file {}", path.display()))?;
    writeln!(f, "{token}")?;
    f.sync_all()?;
    Ok(token)
}
