//! The git commands a release needs, each a fixed argv run through [`crate::run`].
//!
//! Every call pins `safe.directory` to the tree it works on (the agent may run as another user
//! than the tree's owner) and forbids the `ext::` transport, so a repository URL can only fetch.

use crate::run::{run, Cmd, Output, RunError};
use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

/// A repository URL or path the agent is willing to hand to `git fetch`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refuse repo_url {0:?}: want a URL or an absolute path")]
pub struct BadRepoUrl(pub String);

/// Checks `url` before it becomes an argv element: nothing that git could read as an option, no
/// control characters, and no helper transports (`ext::`, `fd::`).
///
/// # Errors
/// [`BadRepoUrl`] when it is refused.
pub fn check_repo_url(url: &str) -> Result<&str, BadRepoUrl> {
    let ok = !url.is_empty()
        && url.len() <= 2048
        && !url.starts_with('-')
        && !url.chars().any(char::is_control)
        && !url.contains("::")
        && (url.starts_with('/') || url.contains("://") || url.contains('@'));
    if ok {
        Ok(url)
    } else {
        Err(BadRepoUrl(url.to_string()))
    }
}

/// `git <args>` working in `dir`.
pub fn git<I, S>(dir: &Path, args: I) -> Cmd
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mut safe = OsString::from("safe.directory=");
    safe.push(&dir);
    let mut argv: Vec<OsString> = vec![
        "-c".into(),
        safe,
        "-c".into(),
        "protocol.ext.allow=never".into(),
    ];
    argv.extend(args.into_iter().map(Into::into));
    // A tree without its own `.git` must not be mistaken for part of a repository above it.
    let ceiling = dir
        .parent()
        .unwrap_or(Path::new("/"))
        .as_os_str()
        .to_os_string();
    Cmd::new("git", argv)
        .cwd(&dir)
        .env("GIT_CEILING_DIRECTORIES", ceiling)
        // Never wait on a password prompt: there is no one to answer it.
        .env("GIT_TERMINAL_PROMPT", "0")
}

/// `git init -q` in the (existing, empty) folder `dir`.
///
/// # Errors
/// As [`run`].
pub fn init(dir: &Path, deadline: Duration) -> Result<Output, RunError> {
    run(&git(dir, ["init", "-q"]), deadline)
}

/// Fetches `refs/tags/<tag>` from `url`: shallow first (a Mastodon history is hundreds of MB),
/// then in full when the server cannot serve a shallow fetch.
///
/// # Errors
/// The full fetch's error when both fail.
pub fn fetch_tag(dir: &Path, url: &str, tag: &str, deadline: Duration) -> Result<(), RunError> {
    let refspec = format!("refs/tags/{tag}:refs/tags/{tag}");
    let shallow = git(
        dir,
        [
            "fetch",
            "-q",
            "--depth",
            "1",
            "--no-tags",
            "--",
            url,
            &refspec,
        ],
    );
    if run(&shallow, deadline).is_ok() {
        return Ok(());
    }
    run(
        &git(dir, ["fetch", "-q", "--no-tags", "--", url, &refspec]),
        deadline,
    )
    .map(|_| ())
}

/// Checks out the fetched tag with a detached HEAD.
///
/// # Errors
/// As [`run`].
pub fn checkout_tag(dir: &Path, tag: &str, deadline: Duration) -> Result<(), RunError> {
    let target = format!("refs/tags/{tag}");
    run(
        &git(
            dir,
            [
                "-c",
                "advice.detachedHead=false",
                "checkout",
                "-q",
                "--detach",
                &target,
            ],
        ),
        deadline,
    )
    .map(|_| ())
}

/// `git rev-parse HEAD`, trimmed.
///
/// # Errors
/// As [`run`].
pub fn head(dir: &Path, deadline: Duration) -> Result<String, RunError> {
    Ok(run(&git(dir, ["rev-parse", "HEAD"]), deadline)?
        .stdout
        .trim()
        .to_string())
}

/// Which changes [`status_porcelain`] lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Untracked {
    /// Untracked files count as changes (a fresh checkout, the live tree's purity).
    Count,
    /// Only changes to tracked files count: after the installs, whose output a Mastodon tree
    /// ignores (`node_modules/`, `public/packs/`, `.bundle/`), but a fixture may not.
    Ignore,
}

/// `git status --porcelain`: empty for a tree with no local changes (ignored files aside).
///
/// # Errors
/// As [`run`].
pub fn status_porcelain(
    dir: &Path,
    untracked: Untracked,
    deadline: Duration,
) -> Result<String, RunError> {
    let args: &[&str] = match untracked {
        Untracked::Count => &["status", "--porcelain"],
        Untracked::Ignore => &["status", "--porcelain", "--untracked-files=no"],
    };
    Ok(run(&git(dir, args.iter().copied()), deadline)?.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_urls_and_paths_are_fetched() {
        for ok in [
            "/srv/upstream/mastodon.git",
            "https://github.com/mastodon/mastodon.git",
            "git@github.com:mastodon/mastodon.git",
            "file:///tmp/up",
        ] {
            assert_eq!(check_repo_url(ok), Ok(ok), "{ok}");
        }
        for bad in [
            "",
            "--upload-pack=touch /tmp/pwned",
            "ext::sh -c touch% /tmp/pwned",
            "relative/path",
            "https://x/\nmore",
        ] {
            assert!(check_repo_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_git_call_pins_safe_directory_and_bans_ext() {
        let c = git(Path::new("/nonexistent/x"), ["status"]);
        assert_eq!(
            c.display(),
            "git -c safe.directory=/nonexistent/x -c protocol.ext.allow=never status"
        );
    }
}
