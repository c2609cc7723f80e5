//! `prepare_release`: fetch a tag into `releases/<tag>`, prove it is upstream's exact commit with
//! no local changes, install its Ruby, Node, gems and packages, and optionally precompile assets.
//!
//! The tree is built under a dot-name and renamed into place only after every step passed, so a
//! folder named for a tag is always a fully prepared release. An existing one that verifies is
//! reused, which makes a replayed prepare a no-op.
//!
//! "Clean" means no `git status --porcelain` output right after the checkout. After the installs
//! (and when reusing a release) only tracked files must be unchanged: a frozen lockfile that
//! moved is a purity failure, install output is not.

use super::git::{self, BadRepoUrl, Untracked};
use super::{durable, Layout};
use crate::run::{run, Cmd, RunError};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use vmctl_protocol::release_ops::{PrepareRelease, PrepareReport, StepTiming};

/// Inside `.git` (so it never shows in `git status`): written when a build finished, with
/// whether assets were precompiled. A tree without it was not prepared by this agent.
const RECORD: &str = ".git/vmctl-prepared";

/// Why a prepare failed.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The repository URL was refused.
    #[error(transparent)]
    RepoUrl(#[from] BadRepoUrl),
    /// `expected_commit` is not a full commit id.
    #[error("expected_commit {0:?} is not a full hex commit id")]
    BadExpectedCommit(String),
    /// A step's program failed or missed its deadline.
    #[error("{step} for {tag}")]
    Step {
        /// The tag.
        tag: String,
        /// The step (`fetch`, `bundle install`, ...).
        step: &'static str,
        /// The cause, with the stderr tail.
        #[source]
        source: RunError,
    },
    /// HEAD is not the commit upstream announced.
    #[error("tag {tag} is at {head}, upstream says {expected}")]
    WrongCommit {
        /// The tag.
        tag: String,
        /// HEAD of the fetched tree.
        head: String,
        /// What upstream says.
        expected: String,
    },
    /// The tree has local changes.
    #[error("tag {tag}: tree is dirty ({first})")]
    Dirty {
        /// The tag.
        tag: String,
        /// The first `git status --porcelain` line.
        first: String,
    },
    /// `.ruby-version` or `.nvmrc` holds something that is not a version.
    #[error("{path}: {value:?} is not a version")]
    BadVersion {
        /// The file.
        path: PathBuf,
        /// What it held (first line, cut).
        value: String,
    },
    /// A release folder without the record a finished build writes.
    #[error("releases/{tag} was not prepared by this agent (no {RECORD})")]
    Unfinished {
        /// The tag.
        tag: String,
    },
    /// The live release does not verify, so it is neither reused nor replaced.
    #[error("releases/{tag} is live but does not verify")]
    LiveUnverified {
        /// The tag.
        tag: String,
        /// Why it does not verify.
        #[source]
        reason: Box<PrepareError>,
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

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> PrepareError {
    let path = path.to_path_buf();
    move |source| PrepareError::Io { what, path, source }
}

/// Prepares `req.tag`; see the module docs. The tag must have passed
/// [`super::check_tag`].
///
/// # Errors
/// See [`PrepareError`]. On failure no `releases/<tag>` is left behind (unless one that verified
/// was there before).
pub fn prepare(
    layout: &Layout,
    req: &PrepareRelease,
    step_timeout: Duration,
) -> Result<PrepareReport, PrepareError> {
    git::check_repo_url(&req.repo_url)?;
    let expected = check_commit(&req.expected_commit)?;
    let mut steps = Steps::new(&req.tag, step_timeout);
    let dest = layout.release(&req.tag);
    if std::fs::symlink_metadata(&dest).is_ok() {
        let verified = verify(&dest, &req.tag, &expected, Untracked::Ignore, &mut steps)
            .and_then(|()| read_record(&dest, &req.tag).map(|_| ()));
        match verified {
            Ok(()) => return reuse(&dest, req, expected, steps),
            Err(reason) if layout.live_tag().ok().flatten().as_deref() == Some(&req.tag) => {
                return Err(PrepareError::LiveUnverified {
                    tag: req.tag.clone(),
                    reason: Box::new(reason),
                });
            }
            // Not live and not upstream's tree: it is rebuilt from scratch below.
            Err(_) => discard(&dest, &layout.doomed(&req.tag))?,
        }
    }
    let staging = layout.staging(&req.tag);
    remove_if_present(&staging)?;
    std::fs::create_dir_all(layout.releases()).map_err(io_err("create", &layout.releases()))?;
    std::fs::create_dir(&staging).map_err(io_err("create", &staging))?;
    let built = build(layout, &staging, req, &expected, &mut steps).and_then(|()| {
        std::fs::rename(&staging, &dest).map_err(io_err("rename into place", &dest))?;
        durable::sync_dir(&layout.releases()).map_err(io_err("fsync", &layout.releases()))
    });
    if let Err(e) = built {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    report(&dest, req, expected, steps)
}

/// Fetch, verify and install into `dir`.
fn build(
    layout: &Layout,
    dir: &Path,
    req: &PrepareRelease,
    expected: &str,
    steps: &mut Steps,
) -> Result<(), PrepareError> {
    let tag = req.tag.as_str();
    let t = steps.timeout;
    steps.time("fetch", || {
        git::init(dir, t)?;
        git::fetch_tag(dir, &req.repo_url, tag, t)
    })?;
    steps.time("checkout", || git::checkout_tag(dir, tag, t))?;
    verify(dir, tag, expected, Untracked::Count, steps)?;
    link_shared_env(layout, dir)?;

    let live = layout.live();
    for (file, tool, step) in [
        (".ruby-version", "rbenv", "rbenv install"),
        (".nvmrc", "nodenv", "nodenv install"),
    ] {
        let Some(wanted) = read_version(&dir.join(file))? else {
            continue;
        };
        // A live release that cannot be read counts as absent: installing is the safe side.
        let live_has = read_version(&live.join(file)).ok().flatten();
        if live_has.as_deref() != Some(wanted.as_str()) {
            let cmd = Cmd::new(tool, ["install", "--skip-existing", wanted.as_str()]).cwd(dir);
            steps.cmd(step, &cmd)?;
        }
    }
    steps.cmd(
        "bundle config",
        &Cmd::new("bundle", ["config", "set", "--local", "deployment", "true"]).cwd(dir),
    )?;
    steps.cmd(
        "bundle config",
        &Cmd::new(
            "bundle",
            ["config", "set", "--local", "without", "development test"],
        )
        .cwd(dir),
    )?;
    steps.cmd(
        "bundle install",
        &Cmd::new("bundle", ["install"])
            .cwd(dir)
            .env("BUNDLE_FROZEN", "true"),
    )?;
    steps.cmd(
        "yarn install",
        &Cmd::new("yarn", ["install", "--immutable"]).cwd(dir),
    )?;
    if req.assets {
        precompile(dir, steps)?;
    }
    // Installs must leave upstream's tracked files untouched (frozen lockfiles).
    verify(dir, tag, expected, Untracked::Ignore, steps)?;
    write_record(dir, req.assets)
}

/// Links the instance's configuration, `home/mastodon/shared/.env.production`, into the release
/// (Mastodon reads it from its working directory), and makes sure only its owner can read it.
/// The file's content is never read: it holds the instance's secrets. No shared file, no link
/// (the testbed's droplets run without one).
fn link_shared_env(layout: &Layout, dir: &Path) -> Result<(), PrepareError> {
    use std::os::unix::fs::PermissionsExt;
    let shared = layout.home().join("shared/.env.production");
    let Ok(meta) = std::fs::metadata(&shared) else {
        return Ok(());
    };
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o600))
            .map_err(io_err("restrict permissions of", &shared))?;
    }
    let link = dir.join(".env.production");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink("../../shared/.env.production", &link)
        .map_err(io_err("link .env.production into", dir))
}

fn precompile(dir: &Path, steps: &mut Steps) -> Result<(), PrepareError> {
    steps.cmd(
        "assets",
        &Cmd::new("bundle", ["exec", "rails", "assets:precompile"])
            .cwd(dir)
            .env("RAILS_ENV", "production"),
    )
}

fn write_record(dir: &Path, assets: bool) -> Result<(), PrepareError> {
    durable::write_file(&dir.join(RECORD), format!("assets={assets}\n").as_bytes())
        .map_err(io_err("write", &dir.join(RECORD)))
}

/// Whether the release's build finished, and with assets.
fn read_record(dir: &Path, tag: &str) -> Result<bool, PrepareError> {
    match std::fs::read_to_string(dir.join(RECORD)) {
        Ok(r) => Ok(r.contains("assets=true")),
        Err(_) => Err(PrepareError::Unfinished {
            tag: tag.to_string(),
        }),
    }
}

/// HEAD is `expected` and `git status --porcelain` (with `untracked` as given) is empty.
fn verify(
    dir: &Path,
    tag: &str,
    expected: &str,
    untracked: Untracked,
    steps: &mut Steps,
) -> Result<(), PrepareError> {
    let t = steps.timeout;
    let (head, status) = steps.time("verify", || {
        Ok((
            git::head(dir, t)?,
            git::status_porcelain(dir, untracked, t)?,
        ))
    })?;
    if !head.eq_ignore_ascii_case(expected) {
        return Err(PrepareError::WrongCommit {
            tag: tag.to_string(),
            head,
            expected: expected.to_string(),
        });
    }
    if let Some(first) = status.lines().find(|l| !l.trim().is_empty()) {
        return Err(PrepareError::Dirty {
            tag: tag.to_string(),
            first: first.trim().to_string(),
        });
    }
    Ok(())
}

/// An existing release that verified: only assets may still be missing.
fn reuse(
    dest: &Path,
    req: &PrepareRelease,
    expected: String,
    mut steps: Steps,
) -> Result<PrepareReport, PrepareError> {
    if req.assets && !read_record(dest, &req.tag)? {
        precompile(dest, &mut steps)?;
        write_record(dest, true)?;
    }
    report(dest, req, expected, steps)
}

fn report(
    dest: &Path,
    req: &PrepareRelease,
    commit: String,
    steps: Steps,
) -> Result<PrepareReport, PrepareError> {
    Ok(PrepareReport {
        tag: req.tag.clone(),
        commit,
        ruby_version: read_version(&dest.join(".ruby-version"))?,
        node_version: read_version(&dest.join(".nvmrc"))?,
        steps: steps.timings,
    })
}

/// A full hex commit id (SHA-1 or SHA-256), lower-cased.
fn check_commit(c: &str) -> Result<String, PrepareError> {
    let c = c.trim();
    if (c.len() == 40 || c.len() == 64) && c.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(c.to_ascii_lowercase())
    } else {
        Err(PrepareError::BadExpectedCommit(c.to_string()))
    }
}

/// The version in a `.ruby-version` / `.nvmrc`: its first non-empty line, which must be a plain
/// version (`3.3.5`, `ruby-3.3.5`, `22`) because it becomes an argv element. `None` when absent.
pub fn read_version(path: &Path) -> Result<Option<String>, PrepareError> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("read", path)(e)),
    };
    let mut text = String::new();
    file.take(4096)
        .read_to_string(&mut text)
        .map_err(io_err("read", path))?;
    let line = text.lines().map(str::trim).find(|l| !l.is_empty());
    let Some(v) = line else { return Ok(None) };
    if is_plain_version(v) {
        Ok(Some(v.to_string()))
    } else {
        Err(PrepareError::BadVersion {
            path: path.to_path_buf(),
            value: v.chars().take(40).collect(),
        })
    }
}

/// Letters, digits, `.`, `_` and `-`, not starting with `-`, at most 64 bytes.
pub fn is_plain_version(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && !v.starts_with('-')
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn remove_if_present(dir: &Path) -> Result<(), PrepareError> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", dir)(e)),
        _ => Ok(()),
    }
}

/// Moves a release aside (atomically: it stops being a release at once), then deletes it.
pub fn discard(dir: &Path, aside: &Path) -> Result<(), PrepareError> {
    remove_if_present(aside)?;
    std::fs::rename(dir, aside).map_err(io_err("move aside", dir))?;
    remove_if_present(aside)
}

/// The timings of the steps run so far, and the per-step deadline.
struct Steps {
    tag: String,
    timeout: Duration,
    timings: Vec<StepTiming>,
}

impl Steps {
    fn new(tag: &str, timeout: Duration) -> Self {
        Steps {
            tag: tag.to_string(),
            timeout,
            timings: Vec::new(),
        }
    }

    /// Runs `f` as step `name`, recording its duration even when it fails.
    fn time<T>(
        &mut self,
        name: &'static str,
        f: impl FnOnce() -> Result<T, RunError>,
    ) -> Result<T, PrepareError> {
        let started = Instant::now();
        let result = f();
        self.timings.push(StepTiming {
            name: name.to_string(),
            millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        });
        result.map_err(|source| PrepareError::Step {
            tag: self.tag.clone(),
            step: name,
            source,
        })
    }

    fn cmd(&mut self, name: &'static str, cmd: &Cmd) -> Result<(), PrepareError> {
        let t = self.timeout;
        self.time(name, || run(cmd, t).map(|_| ()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_files_must_hold_plain_versions() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(".ruby-version");
        assert_eq!(read_version(&p).unwrap(), None);
        std::fs::write(&p, "\n 3.3.5 \n").unwrap();
        assert_eq!(read_version(&p).unwrap().as_deref(), Some("3.3.5"));
        std::fs::write(&p, "--help\n").unwrap();
        assert!(matches!(
            read_version(&p),
            Err(PrepareError::BadVersion { .. })
        ));
        std::fs::write(&p, "3.3.5; rm -rf /\n").unwrap();
        assert!(read_version(&p).is_err());
        assert!(is_plain_version("ruby-3.3.5"));
        assert!(!is_plain_version("lts/*"));
    }

    #[test]
    fn expected_commits_are_full_hex_ids() {
        let sha1 = "0123456789abcdef0123456789ABCDEF01234567";
        assert_eq!(check_commit(sha1).unwrap(), sha1.to_ascii_lowercase());
        assert!(check_commit("abc123").is_err());
        assert!(check_commit(&"g".repeat(40)).is_err());
    }
}

#[cfg(test)]
mod env_link_tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_shared_env_is_linked_relative_and_made_private() {
        let tmp = tempfile::tempdir().unwrap();
        let root = crate::root::Root::new(tmp.path()).unwrap();
        let layout = Layout::new(&root);
        let release = layout.releases().join("v1.2.3");
        std::fs::create_dir_all(&release).unwrap();
        link_shared_env(&layout, &release).unwrap();
        assert!(
            std::fs::symlink_metadata(release.join(".env.production")).is_err(),
            "no shared file, no link"
        );
        let shared = layout.home().join("shared/.env.production");
        std::fs::create_dir_all(shared.parent().unwrap()).unwrap();
        std::fs::write(&shared, "SECRET_KEY_BASE=x\n").unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o644)).unwrap();
        link_shared_env(&layout, &release).unwrap();
        assert_eq!(
            std::fs::read_link(release.join(".env.production")).unwrap(),
            Path::new("../../shared/.env.production")
        );
        assert_eq!(
            std::fs::read_to_string(release.join(".env.production")).unwrap(),
            "SECRET_KEY_BASE=x\n"
        );
        assert_eq!(
            std::fs::metadata(&shared).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
