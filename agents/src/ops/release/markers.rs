//! Once-only markers: `var/lib/vmctl/markers/<tag>.<kind>`. A marker is written durably only
//! after its step succeeded, so a replay after a crash either finds it (and runs nothing) or
//! runs a step that never finished.

use super::{durable, Layout};
use std::io;
use std::path::PathBuf;
use std::time::SystemTime;

/// A step that must run at most once per release per cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnceKind {
    /// `db:migrate` with post-deployment migrations skipped.
    PreDeploy,
    /// `db:migrate` in full.
    PostDeploy,
    /// `tootctl cache clear`.
    CacheClear,
}

impl OnceKind {
    /// The marker's suffix.
    pub fn suffix(self) -> &'static str {
        match self {
            OnceKind::PreDeploy => "pre_deploy",
            OnceKind::PostDeploy => "post_deploy",
            OnceKind::CacheClear => "cache_clear",
        }
    }
}

/// The marker for (`tag`, `kind`); `tag` must have passed [`super::check_tag`].
pub fn path(layout: &Layout, tag: &str, kind: OnceKind) -> PathBuf {
    layout.markers().join(format!("{tag}.{}", kind.suffix()))
}

/// Whether the marker exists.
///
/// # Errors
/// When its folder cannot be read (an unreadable marker must not count as "not run").
pub fn is_set(layout: &Layout, tag: &str, kind: OnceKind) -> io::Result<bool> {
    match std::fs::symlink_metadata(path(layout, tag, kind)) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Writes the marker durably (file and folder flushed), noting when.
///
/// # Errors
/// Any I/O failure.
pub fn set(layout: &Layout, tag: &str, kind: OnceKind, now: SystemTime) -> io::Result<()> {
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    durable::write_file(
        &path(layout, tag, kind),
        format!("done_at_unix={secs}\n").as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::root::Root;

    #[test]
    fn a_marker_is_per_tag_and_kind() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::new(&Root::new(dir.path()).unwrap());
        assert!(!is_set(&l, "v1.2.3", OnceKind::PreDeploy).unwrap());
        set(&l, "v1.2.3", OnceKind::PreDeploy, SystemTime::now()).unwrap();
        assert!(is_set(&l, "v1.2.3", OnceKind::PreDeploy).unwrap());
        assert!(!is_set(&l, "v1.2.3", OnceKind::PostDeploy).unwrap());
        assert!(!is_set(&l, "v1.2.4", OnceKind::PreDeploy).unwrap());
        assert_eq!(
            path(&l, "v1.2.3", OnceKind::CacheClear),
            dir.path().join("var/lib/vmctl/markers/v1.2.3.cache_clear")
        );
    }
}
