//! The upstream repository: a real git repository (driven with the git CLI, fixed argv)
//! with Mastodon-like lightweight tags, and its release metadata in `releases.json` beside
//! it. Everything is read back from disk on each call, so another process (`vmctl-testbed
//! publish`) can add a tag to a world that is running.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Utc};

use super::error::UpstreamError;
use super::fixtures::{self, INITIAL_RELEASES};
use super::releases::{self, ReleaseMeta, Version};

/// The upstream Mastodon repository of one world, in `dir/mastodon` with its metadata in
/// `dir/releases.json`. A cheap handle: it holds paths only.
#[derive(Debug, Clone)]
pub struct Upstream {
    dir: PathBuf,
}

/// The first release id; GitHub's are large numbers.
const FIRST_RELEASE_ID: u64 = 180_000_001;

impl Upstream {
    /// Creates the repository with tags v4.3.0, v4.3.1, v4.4.0 and v4.4.1 (one commit each,
    /// on `main`) and their release metadata.
    ///
    /// # Errors
    /// A repository already exists in `dir`, or git or the file system failed.
    pub fn create(dir: &Path) -> Result<Upstream, UpstreamError> {
        let dir = absolute(dir)?;
        let upstream = Upstream { dir };
        if upstream.repo_path().exists() {
            return Err(UpstreamError::AlreadyExists {
                path: upstream.repo_path(),
            });
        }
        create_dir(&upstream.repo_path())?;
        upstream.git(&["init", "--quiet", "--initial-branch=main"], None)?;
        releases::save(&upstream.releases_path(), &[])?;
        for release in INITIAL_RELEASES {
            upstream.add_release(
                release.tag,
                release.notes,
                release.security,
                release.health_ok,
                release.published_at(),
            )?;
        }
        Ok(upstream)
    }

    /// Opens a repository made by [`Upstream::create`].
    ///
    /// # Errors
    /// There is none in `dir`.
    pub fn open(dir: &Path) -> Result<Upstream, UpstreamError> {
        let upstream = Upstream {
            dir: absolute(dir)?,
        };
        if !upstream.repo_path().join(".git").is_dir() {
            return Err(UpstreamError::Missing {
                path: upstream.dir.clone(),
            });
        }
        Ok(upstream)
    }

    /// Opens the repository in `dir`, creating it first when there is none.
    ///
    /// # Errors
    /// As [`Upstream::create`].
    pub fn open_or_create(dir: &Path) -> Result<Upstream, UpstreamError> {
        match Upstream::open(dir) {
            Ok(upstream) => Ok(upstream),
            Err(UpstreamError::Missing { .. }) => Upstream::create(dir),
            Err(error) => Err(error),
        }
    }

    /// The folder holding the repository and its metadata.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The repository's path, which is also its clone URL.
    pub fn path(&self) -> PathBuf {
        self.repo_path()
    }

    fn repo_path(&self) -> PathBuf {
        self.dir.join("mastodon")
    }

    fn releases_path(&self) -> PathBuf {
        self.dir.join("releases.json")
    }

    /// Every tag and the commit it points at.
    ///
    /// # Errors
    /// git failed.
    pub fn tags(&self) -> Result<BTreeMap<String, String>, UpstreamError> {
        let out = self.git(
            &[
                "for-each-ref",
                "--format=%(refname:strip=2) %(objectname)",
                "refs/tags",
            ],
            None,
        )?;
        Ok(out
            .lines()
            .filter_map(|line| line.split_once(' '))
            .map(|(tag, commit)| (tag.to_owned(), commit.to_owned()))
            .collect())
    }

    /// The commit `tag` points at, if the tag exists.
    ///
    /// # Errors
    /// git failed.
    pub fn tag_commit(&self, tag: &str) -> Result<Option<String>, UpstreamError> {
        Ok(self.tags()?.remove(tag))
    }

    /// Every release's metadata (drafts included), in the order published.
    ///
    /// # Errors
    /// The metadata file is unreadable.
    pub fn releases(&self) -> Result<Vec<ReleaseMeta>, UpstreamError> {
        releases::load(&self.releases_path())
    }

    /// Adds a commit tagged `tag` (`vX.Y.Z[-PRE]`) on `main` with its release metadata,
    /// published now; returns the commit. `health_ok = false` makes its web stand-in
    /// answer `/health` with 503; `security` adds a `### Security` section and makes it
    /// urgent in the update-check API.
    ///
    /// # Errors
    /// A malformed or existing tag, or git or the file system failed.
    pub fn publish(
        &self,
        tag: &str,
        notes: &str,
        security: bool,
        health_ok: bool,
    ) -> Result<String, UpstreamError> {
        self.add_release(tag, notes, security, health_ok, Utc::now())
    }

    fn add_release(
        &self,
        tag: &str,
        notes: &str,
        security: bool,
        health_ok: bool,
        published_at: DateTime<Utc>,
    ) -> Result<String, UpstreamError> {
        let version = Version::parse_tag(tag).ok_or_else(|| UpstreamError::InvalidTag {
            tag: tag.to_owned(),
        })?;
        if self.tags()?.contains_key(tag) {
            return Err(UpstreamError::TagExists {
                tag: tag.to_owned(),
            });
        }
        let repo = self.repo_path();
        for file in fixtures::tree(tag, &version, health_ok) {
            let path = repo.join(file.path);
            if let Some(parent) = path.parent() {
                create_dir(parent)?;
            }
            fs::write(&path, &file.text).map_err(|source| UpstreamError::Io {
                op: "writing",
                path: path.clone(),
                source,
            })?;
            let mode = if file.executable { 0o755 } else { 0o644 };
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(|source| {
                UpstreamError::Io {
                    op: "setting the mode of",
                    path: path.clone(),
                    source,
                }
            })?;
        }
        let date = published_at.to_rfc3339();
        self.git(&["add", "--all"], None)?;
        self.git(
            &[
                "commit",
                "--quiet",
                "--allow-empty",
                "--message",
                &format!("Bump version to {tag}"),
            ],
            Some(&date),
        )?;
        // The tag first, then the metadata: whoever lists a release can fetch its tag.
        self.git(&["tag", tag], None)?;
        let commit = self
            .git(&["rev-parse", "--verify", "HEAD^{commit}"], None)?
            .trim()
            .to_owned();
        let mut all = self.releases()?;
        let id = all
            .iter()
            .map(|r| r.id + 1)
            .max()
            .unwrap_or(FIRST_RELEASE_ID);
        all.push(ReleaseMeta {
            id,
            tag_name: tag.to_owned(),
            name: tag.to_owned(),
            body: releases::body(tag, notes, security),
            draft: false,
            prerelease: version.pre.is_some(),
            published_at,
            security,
            health_ok,
        });
        releases::save(&self.releases_path(), &all)?;
        Ok(commit)
    }

    /// Runs git in the repository with the host's and user's config ignored (so signing or
    /// hooks set there cannot interfere) and a fixed identity; `date` fixes the commit
    /// time, which makes the fixture's commits the same in every run.
    fn git(&self, args: &[&str], date: Option<&str>) -> Result<String, UpstreamError> {
        let repo = self.repo_path();
        let mut command = Command::new("git");
        command
            .arg("-C")
            .arg(&repo)
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "Mastodon")
            .env("GIT_AUTHOR_EMAIL", "noreply@joinmastodon.org")
            .env("GIT_COMMITTER_NAME", "Mastodon")
            .env("GIT_COMMITTER_EMAIL", "noreply@joinmastodon.org");
        if let Some(date) = date {
            command
                .env("GIT_AUTHOR_DATE", date)
                .env("GIT_COMMITTER_DATE", date);
        }
        let output = command.output().map_err(|source| UpstreamError::GitSpawn {
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            repo: repo.clone(),
            source,
        })?;
        if !output.status.success() {
            return Err(UpstreamError::Git {
                args: args.iter().map(|a| (*a).to_owned()).collect(),
                repo,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

fn create_dir(path: &Path) -> Result<(), UpstreamError> {
    fs::create_dir_all(path).map_err(|source| UpstreamError::Io {
        op: "creating",
        path: path.to_path_buf(),
        source,
    })
}

fn absolute(dir: &Path) -> Result<PathBuf, UpstreamError> {
    std::path::absolute(dir).map_err(|source| UpstreamError::Io {
        op: "resolving",
        path: dir.to_path_buf(),
        source,
    })
}
