//! The release operations: prepare, migrate and cache-clear (once each), switch and prune, plus
//! the on-disk layout they share.
//!
//! Every op checks its tag with [`is_valid_tag`] before it touches the disk, so a tag can never
//! name a path outside `releases/` or reach a program as anything but a version.

pub mod durable;
pub mod git;
pub mod markers;
pub mod migrate;
pub mod prepare;
pub mod prune;
pub mod switch;

use crate::root::Root;
use std::io;
use std::path::PathBuf;
use vmctl_protocol::release_ops::is_valid_tag;

/// A tag that [`is_valid_tag`] refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refuse tag {0:?}: not a vMAJOR.MINOR.PATCH[-pre] release tag")]
pub struct InvalidTag(pub String);

/// `tag`, if it is a valid release tag.
///
/// # Errors
/// [`InvalidTag`] for anything [`is_valid_tag`] refuses.
pub fn check_tag(tag: &str) -> Result<&str, InvalidTag> {
    if is_valid_tag(tag) {
        Ok(tag)
    } else {
        Err(InvalidTag(tag.to_string()))
    }
}

/// Where releases, the live link and the once-markers live under a droplet root.
#[derive(Debug, Clone)]
pub struct Layout {
    home: PathBuf,
    markers: PathBuf,
}

impl Layout {
    /// The layout under `root`.
    pub fn new(root: &Root) -> Self {
        Layout {
            home: root.join("home/mastodon"),
            markers: root.join("var/lib/vmctl/markers"),
        }
    }

    /// `home/mastodon`.
    pub fn home(&self) -> PathBuf {
        self.home.clone()
    }

    /// `home/mastodon/releases`.
    pub fn releases(&self) -> PathBuf {
        self.home.join("releases")
    }

    /// `home/mastodon/releases/<tag>`; `tag` must have passed [`check_tag`].
    pub fn release(&self, tag: &str) -> PathBuf {
        self.releases().join(tag)
    }

    /// Where a release is built before it is renamed into place. The leading dot keeps it out of
    /// `facts` and `prune`, which only look at tag-named folders.
    pub fn staging(&self, tag: &str) -> PathBuf {
        self.releases().join(format!(".{tag}.preparing"))
    }

    /// Where a release is moved before it is deleted, so a half-deleted tree never looks like a
    /// release.
    pub fn doomed(&self, tag: &str) -> PathBuf {
        self.releases().join(format!(".{tag}.removing"))
    }

    /// The `home/mastodon/live` symlink.
    pub fn live(&self) -> PathBuf {
        self.home.join("live")
    }

    /// `var/lib/vmctl/markers`.
    pub fn markers(&self) -> PathBuf {
        self.markers.clone()
    }

    /// Whether `releases/<tag>` is a prepared release (a real folder, not a symlink).
    pub fn is_prepared(&self, tag: &str) -> bool {
        std::fs::symlink_metadata(self.release(tag)).is_ok_and(|m| m.is_dir())
    }

    /// The tag `live` points at (its last path component), `None` when there is no `live`.
    ///
    /// # Errors
    /// When `live` exists but is not a readable symlink.
    pub fn live_tag(&self) -> io::Result<Option<String>> {
        match std::fs::read_link(self.live()) {
            Ok(target) => Ok(target.file_name().map(|n| n.to_string_lossy().into_owned())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_that_could_name_a_path_or_carry_shell_are_refused() {
        for bad in [
            "../v1.2.3",
            "v1.2.3/..",
            "v1.2.3; rm -rf /",
            "",
            "main",
            "-v1.2.3",
        ] {
            assert_eq!(check_tag(bad), Err(InvalidTag(bad.to_string())), "{bad}");
        }
        assert_eq!(check_tag("v4.3.1"), Ok("v4.3.1"));
        assert_eq!(check_tag("v4.4.0-rc.1"), Ok("v4.4.0-rc.1"));
    }

    #[test]
    fn paths_hang_under_the_root() {
        let root = Root::new("/tmp/d1").unwrap();
        let l = Layout::new(&root);
        assert_eq!(
            l.release("v1.2.3"),
            PathBuf::from("/tmp/d1/home/mastodon/releases/v1.2.3")
        );
        assert_eq!(l.live(), PathBuf::from("/tmp/d1/home/mastodon/live"));
        assert_eq!(l.markers(), PathBuf::from("/tmp/d1/var/lib/vmctl/markers"));
        assert_eq!(
            l.staging("v1.2.3"),
            PathBuf::from("/tmp/d1/home/mastodon/releases/.v1.2.3.preparing")
        );
    }
}
