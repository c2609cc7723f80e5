//! The `facts` op: reads what a droplet looks like right now.
//!
//! Only the listed facts leave the droplet; error messages name files and causes, never their
//! contents. Droplet files are read under the [`Root`]; kernel figures (`/proc`, `uname`) are the
//! host's.

use super::facts_parse::{
    parse_loadavg, parse_meminfo, parse_os_release_pretty_name, parse_uptime,
};
use super::release::git;
use crate::root::Root;
use crate::services::{ServiceBackend, MASTODON_SERVICES};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;
use vmctl_protocol::agent::{Capacity, Facts, MastodonInstall, ServiceState};

/// Largest file `facts` will read. The files it reads are a few KiB; the bound stops a stray
/// huge or endless file (a FIFO, `/dev/zero` via a symlink) from stalling or bloating the agent.
const MAX_FACT_FILE_BYTES: u64 = 256 * 1024;

/// Deadline for each git call about the live tree. Both answer in milliseconds on a healthy
/// disk; the bound keeps a stuck filesystem from holding up the facts reply.
const GIT_FACTS_DEADLINE: Duration = Duration::from_secs(10);

/// Why `facts` failed.
#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    /// A file could not be read.
    #[error("read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A kernel file did not have the expected format.
    #[error("parse {path}: unexpected format")]
    Parse {
        /// The file.
        path: PathBuf,
    },
    /// statvfs(2) on the root failed.
    #[error("statvfs {path}")]
    Statvfs {
        /// The root directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `home/mastodon/live` exists but could not be read as a symlink.
    #[error("readlink {path}")]
    ReadLink {
        /// The link.
        path: PathBuf,
        /// The cause (`Invalid argument` when it is not a symlink).
        #[source]
        source: io::Error,
    },
    /// `home/mastodon/releases` exists but could not be listed.
    #[error("list {path}")]
    ListReleases {
        /// The folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Collects [`Facts`] for the droplet at `root`, asking `services` about each Mastodon service.
///
/// # Errors
/// When a file that must exist cannot be read or parsed; see [`FactsError`].
pub fn collect(root: &Root, services: &dyn ServiceBackend) -> Result<Facts, FactsError> {
    Ok(Facts {
        hostname: hostname(root)?,
        os_release: os_release(root)?,
        kernel: rustix::system::uname()
            .release()
            .to_string_lossy()
            .into_owned(),
        uptime_s: parse_proc(Path::new("/proc/uptime"), parse_uptime)?,
        load: parse_proc(Path::new("/proc/loadavg"), parse_loadavg)?,
        memory: parse_proc(Path::new("/proc/meminfo"), parse_meminfo)?,
        disk: disk(root.path())?,
        mastodon: mastodon(root)?,
        services: MASTODON_SERVICES
            .iter()
            .map(|name| ServiceState {
                name: (*name).to_string(),
                state: services.state(name),
            })
            .collect(),
    })
}

fn hostname(root: &Root) -> Result<String, FactsError> {
    let from_root = read_optional(&root.join("etc/hostname"))?
        .and_then(|t| t.lines().next().map(|l| l.trim().to_string()))
        .filter(|h| !h.is_empty());
    match from_root {
        Some(h) => Ok(h),
        None => Ok(read_small(Path::new("/proc/sys/kernel/hostname"))?
            .trim()
            .to_string()),
    }
}

fn os_release(root: &Root) -> Result<Option<String>, FactsError> {
    let text = match read_optional(&root.join("etc/os-release"))? {
        Some(t) => Some(t),
        None => read_optional(Path::new("/etc/os-release"))?,
    };
    Ok(text.as_deref().and_then(parse_os_release_pretty_name))
}

fn disk(root_dir: &Path) -> Result<Capacity, FactsError> {
    let st = rustix::fs::statvfs(root_dir).map_err(|e| FactsError::Statvfs {
        path: root_dir.to_path_buf(),
        source: e.into(),
    })?;
    Ok(Capacity {
        total_bytes: st.f_blocks.saturating_mul(st.f_frsize),
        available_bytes: st.f_bavail.saturating_mul(st.f_frsize),
    })
}

fn mastodon(root: &Root) -> Result<MastodonInstall, FactsError> {
    let live = root.join("home/mastodon/live");
    // The link is read, never followed: its target is reported by name only.
    let live_release = match std::fs::read_link(&live) {
        Ok(target) => target.file_name().map(|n| n.to_string_lossy().into_owned()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(source) => return Err(FactsError::ReadLink { path: live, source }),
    };
    let dir = root.join("home/mastodon/releases");
    let mut releases = Vec::new();
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry.map_err(|source| FactsError::ListReleases {
                    path: dir.clone(),
                    source,
                })?;
                // Dot-names are releases being built or removed, not releases.
                let hidden = entry.file_name().as_encoded_bytes().starts_with(b".");
                if !hidden && entry.file_type().is_ok_and(|t| t.is_dir()) {
                    releases.push(entry.file_name().to_string_lossy().into_owned());
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(FactsError::ListReleases { path: dir, source }),
    }
    releases.sort();
    let (live_commit, live_clean) = match live_release {
        Some(_) => purity(&live),
        None => (None, None),
    };
    Ok(MastodonInstall {
        live_release,
        releases,
        live_commit,
        live_clean,
    })
}

/// HEAD of the live tree and whether it has no local changes. Each is `None` when git cannot
/// tell (no repository, git missing, a timeout): unknown purity is reported, never fatal.
fn purity(live: &Path) -> (Option<String>, Option<bool>) {
    if !live.join(".git").exists() {
        return (None, None);
    }
    let commit = git::head(live, GIT_FACTS_DEADLINE)
        .ok()
        .filter(|c| !c.is_empty());
    let clean = git::status_porcelain(live, git::Untracked::Count, GIT_FACTS_DEADLINE)
        .ok()
        .map(|s| s.trim().is_empty());
    (commit, clean)
}

/// Reads and parses a kernel file that must exist.
fn parse_proc<T>(path: &Path, parse: impl Fn(&str) -> Option<T>) -> Result<T, FactsError> {
    parse(&read_small(path)?).ok_or_else(|| FactsError::Parse {
        path: path.to_path_buf(),
    })
}

/// Reads a file that may be absent (`None`), up to [`MAX_FACT_FILE_BYTES`].
fn read_optional(path: &Path) -> Result<Option<String>, FactsError> {
    match read_small(path) {
        Ok(t) => Ok(Some(t)),
        Err(FactsError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn read_small(path: &Path) -> Result<String, FactsError> {
    let err = |source| FactsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(err)?;
    let mut text = String::new();
    file.take(MAX_FACT_FILE_BYTES)
        .read_to_string(&mut text)
        .map_err(err)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::process::ProcessBackend;
    use std::fs;
    use vmctl_protocol::agent::ActiveState;

    fn droplet() -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path()).unwrap();
        (dir, root)
    }

    #[test]
    fn a_bare_root_falls_back_to_the_host_and_reports_no_install() {
        let (_dir, root) = droplet();
        let facts = collect(&root, &ProcessBackend::new(&root)).unwrap();
        assert!(!facts.hostname.is_empty());
        assert_eq!(facts.mastodon, MastodonInstall::default());
        assert!(facts.memory.total_bytes >= facts.memory.available_bytes);
        assert!(facts.disk.total_bytes >= facts.disk.available_bytes && facts.disk.total_bytes > 0);
        assert!(!facts.kernel.is_empty());
        let states: Vec<_> = facts
            .services
            .iter()
            .map(|s| (s.name.as_str(), s.state))
            .collect();
        assert_eq!(
            states,
            vec![
                ("mastodon-web", ActiveState::Inactive),
                ("mastodon-streaming", ActiveState::Inactive),
                ("mastodon-sidekiq", ActiveState::Inactive),
            ]
        );
    }

    #[test]
    fn droplet_files_under_the_root_are_read() {
        let (_dir, root) = droplet();
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(root.join("etc/hostname"), "  web-1 \n").unwrap();
        fs::write(root.join("etc/os-release"), "PRETTY_NAME=\"Testbed 1\"\n").unwrap();
        for r in ["v4.3.0", "v4.2.9", "v4.3.1"] {
            fs::create_dir_all(root.join("home/mastodon/releases").join(r)).unwrap();
        }
        fs::write(root.join("home/mastodon/releases/stray-file"), "").unwrap();
        std::os::unix::fs::symlink("releases/v4.3.0", root.join("home/mastodon/live")).unwrap();

        let facts = collect(&root, &ProcessBackend::new(&root)).unwrap();
        assert_eq!(facts.hostname, "web-1");
        assert_eq!(facts.os_release.as_deref(), Some("Testbed 1"));
        assert_eq!(facts.mastodon.live_release.as_deref(), Some("v4.3.0"));
        assert_eq!(facts.mastodon.releases, vec!["v4.2.9", "v4.3.0", "v4.3.1"]);
    }

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = std::process::Command::new("git")
            .args(["-c", "user.email=t@example.org", "-c", "user.name=t"])
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    #[test]
    fn the_live_tree_reports_its_commit_and_whether_it_is_clean() {
        let (_dir, root) = droplet();
        let rel = root.join("home/mastodon/releases/v1.0.0");
        fs::create_dir_all(&rel).unwrap();
        fs::write(rel.join("README"), "upstream\n").unwrap();
        git(&rel, &["init", "-q"]);
        git(&rel, &["add", "README"]);
        git(&rel, &["commit", "-q", "-m", "v1.0.0"]);
        let head = git(&rel, &["rev-parse", "HEAD"]);
        std::os::unix::fs::symlink("releases/v1.0.0", root.join("home/mastodon/live")).unwrap();

        let m = collect(&root, &ProcessBackend::new(&root))
            .unwrap()
            .mastodon;
        assert_eq!(m.live_commit.as_deref(), Some(head.as_str()));
        assert_eq!(m.live_clean, Some(true));

        fs::write(rel.join("README"), "patched locally\n").unwrap();
        let m = collect(&root, &ProcessBackend::new(&root))
            .unwrap()
            .mastodon;
        assert_eq!(m.live_clean, Some(false));
    }

    #[test]
    fn a_live_tree_without_git_has_unknown_purity() {
        let (_dir, root) = droplet();
        fs::create_dir_all(root.join("home/mastodon/releases/v1.0.0")).unwrap();
        fs::create_dir_all(root.join("home/mastodon/releases/.v1.1.0.preparing")).unwrap();
        std::os::unix::fs::symlink("releases/v1.0.0", root.join("home/mastodon/live")).unwrap();
        let m = collect(&root, &ProcessBackend::new(&root))
            .unwrap()
            .mastodon;
        assert_eq!((m.live_commit, m.live_clean), (None, None));
        assert_eq!(m.releases, vec!["v1.0.0"]);
    }

    #[test]
    fn a_live_that_is_not_a_symlink_fails_with_its_path() {
        let (_dir, root) = droplet();
        fs::create_dir_all(root.join("home/mastodon/live")).unwrap();
        let err = collect(&root, &ProcessBackend::new(&root)).unwrap_err();
        assert!(matches!(err, FactsError::ReadLink { .. }), "{err:?}");
        assert!(err.to_string().ends_with("home/mastodon/live"), "{err}");
    }
}
