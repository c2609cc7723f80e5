//! `prune_releases`: remove old release folders, keeping the newest `keep` by version order, the
//! live release and any protected tag.

use super::{check_tag, durable, Layout};
use std::io;
use std::path::PathBuf;
use vmctl_protocol::release_ops::{PruneReleases, PruneReport};

/// Why a prune failed. Releases removed before the failure stay removed.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
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

/// A release tag as a version: `v` stripped, parsed as semver (pre-releases sort before their
/// release). `None` for anything [`check_tag`] refuses.
pub fn version_of(tag: &str) -> Option<semver::Version> {
    check_tag(tag).ok()?;
    semver::Version::parse(tag.strip_prefix('v')?).ok()
}

/// Which of `present` to remove: everything but the newest `keep` versions, never `live` nor a
/// tag in `protect`, never a name that is not a release tag. Newest removals first. Pure.
pub fn plan(present: &[String], keep: u32, live: Option<&str>, protect: &[String]) -> Vec<String> {
    let mut tags: Vec<(semver::Version, &String)> = present
        .iter()
        .filter_map(|t| version_of(t).map(|v| (v, t)))
        .collect();
    tags.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(a.1)));
    let keep = usize::try_from(keep).unwrap_or(usize::MAX);
    tags.into_iter()
        .skip(keep)
        .map(|(_, t)| t)
        .filter(|t| Some(t.as_str()) != live && !protect.contains(t))
        .cloned()
        .collect()
}

/// Prunes the releases under `layout`.
///
/// # Errors
/// See [`PruneError`].
pub fn prune(layout: &Layout, req: &PruneReleases) -> Result<PruneReport, PruneError> {
    let dir = layout.releases();
    let io_err = |what, path: &PathBuf| {
        let path = path.clone();
        move |source| PruneError::Io { what, path, source }
    };
    let live = layout
        .live_tag()
        .map_err(io_err("readlink", &layout.live()))?;
    let mut present = Vec::new();
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry.map_err(io_err("list", &dir))?;
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    present.push(entry.file_name().to_string_lossy().into_owned());
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("list", &dir)(e)),
    }
    let mut removed = Vec::new();
    for tag in plan(&present, req.keep, live.as_deref(), &req.protect) {
        let aside = layout.doomed(&tag);
        let _ = std::fs::remove_dir_all(&aside);
        // The rename makes it stop being a release at once; the slow delete comes after.
        std::fs::rename(layout.release(&tag), &aside)
            .map_err(io_err("move aside", &layout.release(&tag)))?;
        std::fs::remove_dir_all(&aside).map_err(io_err("remove", &aside))?;
        removed.push(tag);
    }
    if !removed.is_empty() {
        durable::sync_dir(&dir).map_err(io_err("fsync", &dir))?;
    }
    Ok(PruneReport { removed })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::root::Root;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn the_newest_by_version_survive_not_by_name() {
        let present = s(&[
            "v4.2.10",
            "v4.2.9",
            "v4.3.0-rc.1",
            "v4.3.0",
            "v4.10.0",
            ".v4.0.0.preparing",
            "notes",
        ]);
        assert_eq!(
            plan(&present, 2, None, &[]),
            s(&["v4.3.0-rc.1", "v4.2.10", "v4.2.9"])
        );
        assert_eq!(plan(&present, 0, None, &[]).len(), 5);
        assert!(plan(&present, 10, None, &[]).is_empty());
    }

    #[test]
    fn live_and_protected_releases_are_never_removed() {
        let present = s(&["v1.0.0", "v1.1.0", "v1.2.0", "v1.3.0"]);
        assert_eq!(
            plan(&present, 1, Some("v1.0.0"), &s(&["v1.2.0"])),
            s(&["v1.1.0"])
        );
    }

    #[test]
    fn pruning_removes_folders_and_reports_them() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::new(&Root::new(dir.path()).unwrap());
        for t in ["v1.0.0", "v1.1.0", "v1.2.0"] {
            std::fs::create_dir_all(l.release(t).join("app")).unwrap();
        }
        std::os::unix::fs::symlink("releases/v1.0.0", l.live()).unwrap();
        let r = prune(
            &l,
            &PruneReleases {
                keep: 1,
                protect: vec![],
            },
        )
        .unwrap();
        assert_eq!(r.removed, s(&["v1.1.0"]));
        assert!(l.is_prepared("v1.0.0") && l.is_prepared("v1.2.0") && !l.is_prepared("v1.1.0"));
        assert_eq!(std::fs::read_dir(l.releases()).unwrap().count(), 2);
        let none = prune(
            &Layout::new(&Root::new(dir.path().join("empty")).unwrap()),
            &PruneReleases {
                keep: 1,
                protect: vec![],
            },
        )
        .unwrap();
        assert!(none.removed.is_empty());
    }
}
