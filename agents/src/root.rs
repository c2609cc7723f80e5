//! The agent's root directory and how droplet paths hang under it.
//!
//! Every path the agent touches on the droplet's filesystem goes through [`Root::join`], so the
//! testbed can give each simulated droplet its own root on one machine. Kernel interfaces
//! (`/proc`, `uname`) are not rooted: simulated droplets share the host's kernel.

use std::path::{Component, Path, PathBuf};

/// The directory the agent treats as `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root(PathBuf);

impl Root {
    /// A root at `dir`. A relative `dir` is made absolute against the current directory so the
    /// agent's paths do not change meaning if anything later changes directory.
    ///
    /// # Errors
    /// When the current directory cannot be read (only for a relative `dir`).
    pub fn new(dir: impl AsRef<Path>) -> std::io::Result<Self> {
        let abs = std::path::absolute(dir.as_ref())?;
        Ok(Root(normalize_under(Path::new("/"), &abs)))
    }

    /// The host's own `/`.
    pub fn host() -> Self {
        Root(PathBuf::from("/"))
    }

    /// The root directory itself.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Whether this root is the host's `/` (a real droplet rather than a testbed one).
    pub fn is_host(&self) -> bool {
        self.0 == Path::new("/")
    }

    /// `rel` (e.g. `etc/hostname` or `/etc/hostname`) under the root.
    ///
    /// The result never leaves the root lexically: a leading `/` is dropped and `..` stops at the
    /// root, the way it does inside a chroot.
    ///
    /// # Caveats
    /// Symlinks are not resolved, so a symlink inside the root can still point outside it. The
    /// agent only reads through the fixed paths it knows and never follows `live`.
    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        normalize_under(&self.0, rel.as_ref())
    }
}

/// `base` joined with `rel`, where `rel`'s root, `.` and excess `..` components are dropped.
fn normalize_under(base: &Path, rel: &Path) -> PathBuf {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(p) => parts.push(p),
            Component::ParentDir => {
                parts.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    let mut out = base.to_path_buf();
    out.extend(parts);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_root_joins_to_absolute_paths() {
        let r = Root::host();
        assert!(r.is_host());
        assert_eq!(r.join("etc/hostname"), PathBuf::from("/etc/hostname"));
        assert_eq!(r.join("/etc/os-release"), PathBuf::from("/etc/os-release"));
        assert_eq!(Root::new("/").unwrap(), r);
    }

    #[test]
    fn a_testbed_root_prefixes_every_path() {
        let r = Root::new("/tmp/x").unwrap();
        assert!(!r.is_host());
        assert_eq!(r.join("etc/hostname"), PathBuf::from("/tmp/x/etc/hostname"));
        assert_eq!(
            r.join("/home/mastodon/live"),
            PathBuf::from("/tmp/x/home/mastodon/live")
        );
        assert_eq!(r.join(""), PathBuf::from("/tmp/x"));
    }

    #[test]
    fn joined_paths_never_escape_the_root() {
        let r = Root::new("/tmp/x").unwrap();
        for evil in [
            "../../etc/passwd",
            "/../etc/passwd",
            "a/../../../etc/passwd",
            "./../etc/passwd",
        ] {
            let p = r.join(evil);
            assert!(p.starts_with("/tmp/x"), "{evil} escaped to {}", p.display());
            assert_eq!(p, PathBuf::from("/tmp/x/etc/passwd"), "{evil}");
        }
        assert_eq!(r.join("a/b/../c"), PathBuf::from("/tmp/x/a/c"));
    }

    #[test]
    fn a_root_given_with_dots_is_normalized() {
        let r = Root::new("/tmp/x/../y/./").unwrap();
        assert_eq!(r.path(), Path::new("/tmp/y"));
        assert!(Root::new("/tmp/..").unwrap().is_host());
    }

    #[test]
    fn a_relative_root_is_made_absolute() {
        let r = Root::new("some/dir").unwrap();
        assert!(r.path().is_absolute());
        assert!(r.path().ends_with("some/dir"));
    }
}
