//! The upstream repository: real git tags whose trees carry the release's files, and
//! `publish` adding tags at runtime. Needs the git CLI.

use std::path::Path;
use std::process::Command;

use vmctl_testbed::upstream::{Upstream, UpstreamError};

fn git(repo: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "git {args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[test]
fn tags_point_at_commits_whose_trees_carry_the_release() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::create(&dir.path().join("upstream")).unwrap();
    let repo = upstream.path();
    let tags = upstream.tags().unwrap();
    let names: Vec<&str> = tags.keys().map(String::as_str).collect();
    assert_eq!(names, ["v4.3.0", "v4.3.1", "v4.4.0", "v4.4.1"]);
    for (tag, commit) in &tags {
        assert_eq!(
            &git(&repo, &["rev-parse", &format!("{tag}^{{commit}}")]),
            commit
        );
        assert_eq!(
            git(&repo, &["cat-file", "-t", tag]),
            "commit",
            "{tag} is lightweight"
        );
        assert_eq!(git(&repo, &["show", &format!("{tag}:VERSION")]), *tag);
        assert_eq!(git(&repo, &["show", &format!("{tag}:.nvmrc")]), "20");
        for file in [
            "Gemfile",
            "Gemfile.lock",
            "package.json",
            "yarn.lock",
            "config/puma.rb",
            "streaming/index.js",
        ] {
            git(&repo, &["cat-file", "-e", &format!("{tag}:{file}")]);
        }
        let tootctl = git(&repo, &["ls-tree", tag, "bin/tootctl"]);
        assert!(tootctl.starts_with("100755 "), "{tag}: {tootctl}");
    }
    let ruby = |tag: &str| git(&repo, &["show", &format!("{tag}:.ruby-version")]);
    assert_eq!(ruby("v4.3.1"), "3.3.5");
    assert_eq!(ruby("v4.4.0"), "3.4.1");
    let standin = |tag: &str| git(&repo, &["show", &format!("{tag}:vmctl-standin.toml")]);
    assert!(standin("v4.4.0").contains("health = \"ok\""));
    assert!(standin("v4.4.1").contains("health = \"fail\""));
    assert_eq!(
        git(&repo, &["status", "--porcelain"]),
        "",
        "worktree is clean"
    );

    let releases = upstream.releases().unwrap();
    let v431 = releases.iter().find(|r| r.tag_name == "v4.3.1").unwrap();
    assert!(v431.security && v431.body.contains("### Security") && v431.body.contains("GHSA-"));
    assert!(
        !releases
            .iter()
            .find(|r| r.tag_name == "v4.4.1")
            .unwrap()
            .health_ok
    );
}

#[test]
fn a_clone_checks_out_a_tag() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::create(&dir.path().join("upstream")).unwrap();
    let target = dir.path().join("releases/v4.4.0");
    let status = Command::new("git")
        .args(["-c", "advice.detachedHead=false", "clone", "--quiet"])
        .args(["--branch", "v4.4.0", "--depth", "1"])
        .arg(format!("file://{}", upstream.path().display()))
        .arg(&target)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        git(&target, &["rev-parse", "HEAD"]),
        upstream.tag_commit("v4.4.0").unwrap().unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(target.join(".ruby-version")).unwrap(),
        "3.4.1\n"
    );
}

#[test]
fn publish_adds_a_tag_and_refuses_bad_or_existing_ones() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::create(&dir.path().join("upstream")).unwrap();
    let commit = upstream
        .publish("v4.4.2", "- Fix a crash", true, false)
        .unwrap();
    let reopened = Upstream::open(&dir.path().join("upstream")).unwrap();
    assert_eq!(reopened.tag_commit("v4.4.2").unwrap(), Some(commit.clone()));
    assert_eq!(git(&upstream.path(), &["rev-parse", "v4.4.2"]), commit);
    let release = reopened
        .releases()
        .unwrap()
        .into_iter()
        .find(|r| r.tag_name == "v4.4.2")
        .unwrap();
    assert!(release.security && !release.health_ok && !release.prerelease);
    assert!(release.body.contains("- Fix a crash"));

    assert!(matches!(
        upstream.publish("v4.4.2", "", false, true),
        Err(UpstreamError::TagExists { .. })
    ));
    for bad in ["4.4.3", "v4.4", "v4.4.3; rm -rf /", "--help"] {
        assert!(
            matches!(
                upstream.publish(bad, "", false, true),
                Err(UpstreamError::InvalidTag { .. })
            ),
            "{bad}"
        );
    }
    assert!(matches!(
        Upstream::create(&dir.path().join("upstream")),
        Err(UpstreamError::AlreadyExists { .. })
    ));
    assert!(matches!(
        Upstream::open(&dir.path().join("nothing")),
        Err(UpstreamError::Missing { .. })
    ));
}
