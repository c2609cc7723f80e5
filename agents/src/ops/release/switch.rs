//! `switch`: point `home/mastodon/live` at `releases/<tag>` in one atomic step.
//!
//! A new symlink is made under a temp name and renamed over `live`; rename(2) replaces the old
//! link atomically, so anything starting at any instant sees either the old release or the new
//! one. The link is relative (`releases/<tag>`) so it stays right when a droplet's root is
//! copied elsewhere (a testbed snapshot) or mounted at another path.

use super::{durable, Layout};
use std::io;
use std::path::{Path, PathBuf};
use vmctl_protocol::release_ops::SwitchReport;

/// Why a switch failed. `live` is unchanged in every case.
#[derive(Debug, thiserror::Error)]
pub enum SwitchError {
    /// `releases/<tag>` is not a prepared release.
    #[error("release {tag} is not prepared")]
    NotPrepared {
        /// The tag.
        tag: String,
    },
    /// A filesystem operation failed.
    #[error("{what} {path}")]
    Io {
        /// The operation.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SwitchError {
    let path = path.to_path_buf();
    move |source| SwitchError::Io { what, path, source }
}

/// Points `live` at `tag` (which must have passed [`super::check_tag`]) and reports what it
/// pointed at before.
///
/// # Errors
/// See [`SwitchError`]. A `live` that is a real folder is not replaced (rename fails).
pub fn switch(layout: &Layout, tag: &str) -> Result<SwitchReport, SwitchError> {
    if !layout.is_prepared(tag) {
        return Err(SwitchError::NotPrepared {
            tag: tag.to_string(),
        });
    }
    let live = layout.live();
    let previous = layout.live_tag().map_err(io_err("readlink", &live))?;
    let home = layout.home();
    let tmp = home.join(format!(".live.switching-{}", std::process::id()));
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err("remove", &tmp)(e)),
        _ => {}
    }
    std::os::unix::fs::symlink(Path::new("releases").join(tag), &tmp)
        .map_err(io_err("symlink", &tmp))?;
    if let Err(e) = std::fs::rename(&tmp, &live) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err("rename over", &live)(e));
    }
    durable::sync_dir(&home).map_err(io_err("fsync", &home))?;
    Ok(SwitchReport { previous })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::root::Root;

    fn droplet(tags: &[&str]) -> (tempfile::TempDir, Layout) {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::new(&Root::new(dir.path()).unwrap());
        for t in tags {
            std::fs::create_dir_all(l.release(t)).unwrap();
            std::fs::write(l.release(t).join("VERSION"), t).unwrap();
        }
        (dir, l)
    }

    #[test]
    fn live_moves_to_the_new_release_and_reports_the_old_one() {
        let (_d, l) = droplet(&["v1.0.0", "v1.1.0"]);
        assert_eq!(
            switch(&l, "v1.0.0").unwrap(),
            SwitchReport { previous: None }
        );
        assert_eq!(
            switch(&l, "v1.1.0").unwrap(),
            SwitchReport {
                previous: Some("v1.0.0".into())
            }
        );
        assert_eq!(
            std::fs::read_link(l.live()).unwrap(),
            Path::new("releases/v1.1.0")
        );
        assert_eq!(
            std::fs::read_to_string(l.live().join("VERSION")).unwrap(),
            "v1.1.0"
        );
        // Nothing but the release folders and `live` is left behind.
        let mut names: Vec<_> = std::fs::read_dir(l.home())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["live", "releases"]);
        // Switching to the current release is a no-op that still succeeds.
        assert_eq!(
            switch(&l, "v1.1.0").unwrap().previous.as_deref(),
            Some("v1.1.0")
        );
    }

    #[test]
    fn an_unprepared_release_is_refused_and_live_is_unchanged() {
        let (_d, l) = droplet(&["v1.0.0"]);
        switch(&l, "v1.0.0").unwrap();
        let err = switch(&l, "v2.0.0").unwrap_err();
        assert!(matches!(err, SwitchError::NotPrepared { .. }), "{err}");
        assert_eq!(
            std::fs::read_link(l.live()).unwrap(),
            Path::new("releases/v1.0.0")
        );
    }

    #[test]
    fn a_live_folder_is_not_replaced() {
        let (_d, l) = droplet(&["v1.0.0"]);
        std::fs::create_dir_all(l.live().join("x")).unwrap();
        assert!(switch(&l, "v1.0.0").is_err());
        assert!(l.live().join("x").is_dir());
    }
}
