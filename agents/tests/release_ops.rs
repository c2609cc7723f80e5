//! Drives the release ops through the built `vmctl-agent serve` against a testbed root, a real
//! upstream git repository and stub `bundle`, `yarn`, `rbenv` and `nodenv` programs that log
//! every call, so the exact command sequence can be checked.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;
use vmctl_protocol::agent::Facts;
use vmctl_protocol::release_ops::{OnceReport, PrepareReport, PruneReport, SwitchReport};

const AGENT: &str = env!("CARGO_BIN_EXE_vmctl-agent");
/// Bounds a hung agent; every op here takes well under a second with the stubs.
const REPLY_DEADLINE: Duration = Duration::from_secs(60);

/// The stubs log their name, each argument in brackets (so one argument holding a space stays
/// visibly one), and the environment variables the release steps set.
const STUB: &str = r#"#!/bin/bash
line="$(basename "$0") $(printf '[%s]' "$@")"
for v in RAILS_ENV SKIP_POST_DEPLOYMENT_MIGRATIONS BUNDLE_FROZEN; do
  if [ -n "${!v-}" ]; then line="$line $v=${!v}"; fi
done
echo "$line" >> "$VMCTL_TEST_STUB_LOG"
# Install output lands in folders upstream's .gitignore covers, as in Mastodon.
case "$(basename "$0") $*" in
  "yarn install --immutable") mkdir -p node_modules && touch node_modules/.yarn-state.yml ;;
  "bundle exec rails assets:precompile") mkdir -p public/packs && echo '{}' > public/packs/manifest.json ;;
esac
"#;

struct World {
    _dir: tempfile::TempDir,
    upstream: PathBuf,
    root: PathBuf,
    bin: PathBuf,
    log: PathBuf,
}

impl World {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let upstream = dir.path().join("upstream");
        let root = dir.path().join("droplet");
        let bin = dir.path().join("bin");
        let log = dir.path().join("stub.log");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        for name in ["bundle", "yarn", "rbenv", "nodenv"] {
            let p = bin.join(name);
            std::fs::write(&p, STUB).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::create_dir_all(&upstream).unwrap();
        git(&upstream, &["init", "-q"]);
        for (tag, ruby, node) in [
            ("v1.2.3", "3.3.5", "20"),
            ("v1.2.4", "3.3.6", "20"),
            ("v1.2.5", "3.3.6", "20"),
        ] {
            std::fs::write(upstream.join(".ruby-version"), format!("{ruby}\n")).unwrap();
            std::fs::write(upstream.join(".nvmrc"), format!("{node}\n")).unwrap();
            std::fs::write(upstream.join("VERSION"), tag).unwrap();
            std::fs::write(
                upstream.join(".gitignore"),
                "/node_modules/\n/public/packs/\n",
            )
            .unwrap();
            git(&upstream, &["add", "-A"]);
            git(&upstream, &["commit", "-q", "-m", tag]);
            git(&upstream, &["tag", tag]);
        }
        World {
            _dir: dir,
            upstream,
            root,
            bin,
            log,
        }
    }

    fn commit_of(&self, tag: &str) -> String {
        git(&self.upstream, &["rev-parse", &format!("{tag}^{{commit}}")])
    }

    fn agent(&self, extra_env: &[(&str, &Path)]) -> Served {
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new(AGENT);
        cmd.args(["serve", "--root"])
            .arg(&self.root)
            .env("PATH", path)
            .env("VMCTL_TEST_STUB_LOG", &self.log)
            .env("VMCTL_STEP_TIMEOUT_S", "60")
            .env_remove("VMCTL_ROOT")
            .env_remove("GIT_TEMPLATE_DIR");
        for v in [
            "RAILS_ENV",
            "SKIP_POST_DEPLOYMENT_MIGRATIONS",
            "BUNDLE_FROZEN",
        ] {
            cmd.env_remove(v);
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        Served::start(cmd)
    }

    /// Stub log lines written since `from` lines.
    fn log_since(&self, from: usize) -> Vec<String> {
        self.log_lines().split_off(from)
    }

    fn log_lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn release(&self, tag: &str) -> PathBuf {
        self.root.join("home/mastodon/releases").join(tag)
    }

    fn releases_dir_names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.root.join("home/mastodon/releases"))
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().into_string().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    fn prepare_frame(&self, tag: &str, commit: &str, assets: bool) -> serde_json::Value {
        serde_json::json!({
            "op": "prepare_release",
            "tag": tag,
            "repo_url": self.upstream.to_str().unwrap(),
            "expected_commit": commit,
            "assets": assets,
        })
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.email=t@example.org", "-c", "user.name=t"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

struct Served {
    child: Child,
    stdin: Option<ChildStdin>,
    replies: Receiver<String>,
    next_id: u64,
}

impl Served {
    fn start(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn vmctl-agent serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, replies) = mpsc::channel();
        // Lines arrive on a channel so every read below can carry a deadline.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        Served {
            child,
            stdin,
            replies,
            next_id: 1,
        }
    }

    /// Sends `op` (an object with `op` and its fields) and returns the reply's `ok` or `err`.
    fn call(&mut self, mut op: serde_json::Value) -> Result<serde_json::Value, (String, String)> {
        let id = self.next_id;
        self.next_id += 1;
        op["id"] = id.into();
        let what = op["op"].as_str().unwrap_or("?").to_string();
        let mut line = serde_json::to_vec(&op).unwrap();
        line.push(b'\n');
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(&line).unwrap();
        stdin.flush().unwrap();
        let reply = self
            .replies
            .recv_timeout(REPLY_DEADLINE)
            .unwrap_or_else(|e| panic!("no reply to {what} within {REPLY_DEADLINE:?}: {e}"));
        let v: serde_json::Value = serde_json::from_str(&reply).unwrap();
        assert_eq!(v["id"], id, "{reply}");
        match v.get("ok") {
            Some(ok) => Ok(ok.clone()),
            None => Err((
                v["err"]["code"].as_str().unwrap().to_string(),
                v["err"]["message"].as_str().unwrap().to_string(),
            )),
        }
    }

    fn ok<T: serde::de::DeserializeOwned>(&mut self, op: serde_json::Value) -> T {
        let shown = op.to_string();
        let v = self
            .call(op)
            .unwrap_or_else(|e| panic!("{shown} failed: {e:?}"));
        serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"))
    }

    fn finish(mut self) {
        drop(self.stdin.take());
        match self.replies.recv_timeout(REPLY_DEADLINE) {
            Err(mpsc::RecvTimeoutError::Disconnected) => {}
            other => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("agent did not exit cleanly after EOF: {other:?}");
            }
        }
        assert!(self.child.wait().unwrap().success());
    }
}

fn step_names(r: &PrepareReport) -> Vec<&str> {
    r.steps.iter().map(|s| s.name.as_str()).collect()
}

#[test]
fn a_release_is_prepared_migrated_switched_and_pruned() {
    let w = World::new();
    let mut agent = w.agent(&[]);
    let c123 = w.commit_of("v1.2.3");

    // First prepare: no live release, so Ruby and Node are installed; assets asked for.
    let r: PrepareReport = agent.ok(w.prepare_frame("v1.2.3", &c123, true));
    assert_eq!(r.commit, c123);
    assert_eq!(r.ruby_version.as_deref(), Some("3.3.5"));
    assert_eq!(r.node_version.as_deref(), Some("20"));
    assert_eq!(
        step_names(&r),
        [
            "fetch",
            "checkout",
            "verify",
            "rbenv install",
            "nodenv install",
            "bundle config",
            "bundle config",
            "bundle install",
            "yarn install",
            "assets",
            "verify"
        ]
    );
    assert_eq!(
        w.log_lines(),
        [
            "rbenv [install][--skip-existing][3.3.5]",
            "nodenv [install][--skip-existing][20]",
            "bundle [config][set][--local][deployment][true]",
            "bundle [config][set][--local][without][development test]",
            "bundle [install] BUNDLE_FROZEN=true",
            "yarn [install][--immutable]",
            "bundle [exec][rails][assets:precompile] RAILS_ENV=production",
        ]
    );
    assert_eq!(w.releases_dir_names(), ["v1.2.3"]);

    // A replay reuses the verified release and runs nothing.
    let again: PrepareReport = agent.ok(w.prepare_frame("v1.2.3", &c123, true));
    assert_eq!(again.commit, c123);
    assert_eq!(step_names(&again), ["verify"]);
    assert_eq!(w.log_lines().len(), 7);

    // Pre-deploy migrations run once; the replay finds the marker.
    let mark = w.log_lines().len();
    let migrate = serde_json::json!({"op": "migrate", "tag": "v1.2.3", "phase": "pre_deploy"});
    assert_eq!(
        agent.ok::<OnceReport>(migrate.clone()),
        OnceReport { ran: true }
    );
    assert_eq!(agent.ok::<OnceReport>(migrate), OnceReport { ran: false });
    assert_eq!(
        w.log_since(mark),
        ["bundle [exec][rails][db:migrate] RAILS_ENV=production SKIP_POST_DEPLOYMENT_MIGRATIONS=true"]
    );
    assert!(w
        .root
        .join("var/lib/vmctl/markers/v1.2.3.pre_deploy")
        .is_file());

    // Switch, then facts show the live release and its purity.
    let sw: SwitchReport = agent.ok(serde_json::json!({"op": "switch", "tag": "v1.2.3"}));
    assert_eq!(sw.previous, None);
    let facts: Facts = agent.ok(serde_json::json!({"op": "facts"}));
    assert_eq!(facts.mastodon.live_release.as_deref(), Some("v1.2.3"));
    assert_eq!(facts.mastodon.live_commit.as_deref(), Some(c123.as_str()));
    assert_eq!(facts.mastodon.live_clean, Some(true));

    // The next release changes Ruby only; no assets this time.
    let mark = w.log_lines().len();
    let r: PrepareReport = agent.ok(w.prepare_frame("v1.2.4", &w.commit_of("v1.2.4"), false));
    assert_eq!(r.ruby_version.as_deref(), Some("3.3.6"));
    assert_eq!(
        w.log_since(mark),
        [
            "rbenv [install][--skip-existing][3.3.6]",
            "bundle [config][set][--local][deployment][true]",
            "bundle [config][set][--local][without][development test]",
            "bundle [install] BUNDLE_FROZEN=true",
            "yarn [install][--immutable]",
        ]
    );
    let sw: SwitchReport = agent.ok(serde_json::json!({"op": "switch", "tag": "v1.2.4"}));
    assert_eq!(sw.previous.as_deref(), Some("v1.2.3"));
    assert_eq!(
        std::fs::read_link(w.root.join("home/mastodon/live")).unwrap(),
        Path::new("releases/v1.2.4")
    );

    // Same Ruby and Node as the live release: no installs of either.
    let mark = w.log_lines().len();
    agent.ok::<PrepareReport>(w.prepare_frame("v1.2.5", &w.commit_of("v1.2.5"), false));
    assert!(w
        .log_since(mark)
        .iter()
        .all(|l| !l.starts_with("rbenv") && !l.starts_with("nodenv")));

    // Install output is there, ignored by git, so the live tree is still clean.
    assert!(w
        .release("v1.2.4")
        .join("node_modules/.yarn-state.yml")
        .is_file());
    assert!(w
        .release("v1.2.3")
        .join("public/packs/manifest.json")
        .is_file());
    let facts: Facts = agent.ok(serde_json::json!({"op": "facts"}));
    assert_eq!(facts.mastodon.live_clean, Some(true));

    // A local change to the live tree shows in facts.
    std::fs::write(w.release("v1.2.4").join("app.rb"), "patched\n").unwrap();
    let facts: Facts = agent.ok(serde_json::json!({"op": "facts"}));
    assert_eq!(facts.mastodon.live_clean, Some(false));
    assert_eq!(facts.mastodon.releases, ["v1.2.3", "v1.2.4", "v1.2.5"]);

    // Prune by version order; the live release survives even outside the newest N.
    let p: PruneReport =
        agent.ok(serde_json::json!({"op": "prune_releases", "keep": 2, "protect": []}));
    assert_eq!(p.removed, ["v1.2.3"]);
    let p: PruneReport =
        agent.ok(serde_json::json!({"op": "prune_releases", "keep": 1, "protect": []}));
    assert!(p.removed.is_empty(), "{p:?}");
    assert_eq!(w.releases_dir_names(), ["v1.2.4", "v1.2.5"]);
    agent.finish();
}

#[test]
fn bad_tags_wrong_commits_and_dirty_trees_are_refused_and_leave_nothing() {
    let w = World::new();
    let mut agent = w.agent(&[]);

    let (code, msg) = agent
        .call(w.prepare_frame("v1.2.3;touch x", &w.commit_of("v1.2.3"), false))
        .unwrap_err();
    assert_eq!(code, "op_failed");
    assert!(msg.starts_with("prepare_release: refuse tag"), "{msg}");
    for op in [
        serde_json::json!({"op": "switch", "tag": "../../etc"}),
        serde_json::json!({"op": "migrate", "tag": "v1.2", "phase": "post_deploy"}),
        serde_json::json!({"op": "cache_clear", "tag": "main"}),
    ] {
        let (code, msg) = agent.call(op).unwrap_err();
        assert_eq!(code, "op_failed");
        assert!(msg.contains("refuse tag"), "{msg}");
    }
    assert!(!w.root.join("home").exists() && !w.root.join("var").exists());

    let wrong = w.commit_of("v1.2.4");
    let (code, msg) = agent
        .call(w.prepare_frame("v1.2.3", &wrong, false))
        .unwrap_err();
    assert_eq!(code, "op_failed");
    assert!(
        msg.contains(&format!(
            "tag v1.2.3 is at {}, upstream says {wrong}",
            w.commit_of("v1.2.3")
        )),
        "{msg}"
    );
    assert!(
        w.releases_dir_names().is_empty(),
        "{:?}",
        w.releases_dir_names()
    );
    assert!(
        w.log_lines().is_empty(),
        "nothing installed for a wrong commit"
    );

    // Switching to or migrating a release that is not prepared is refused.
    let (_, msg) = agent
        .call(serde_json::json!({"op": "switch", "tag": "v1.2.3"}))
        .unwrap_err();
    assert!(msg.contains("not prepared"), "{msg}");
    agent.finish();

    // A git template whose post-checkout hook drops a file makes the checkout dirty.
    let template = w.root.parent().unwrap().join("template");
    std::fs::create_dir_all(template.join("hooks")).unwrap();
    let hook = template.join("hooks/post-checkout");
    std::fs::write(&hook, "#!/bin/sh\necho local > stray.txt\n").unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut agent = w.agent(&[("GIT_TEMPLATE_DIR", &template)]);
    let (code, msg) = agent
        .call(w.prepare_frame("v1.2.3", &w.commit_of("v1.2.3"), false))
        .unwrap_err();
    assert_eq!(code, "op_failed");
    assert!(msg.contains("tree is dirty"), "{msg}");
    assert!(msg.contains("stray.txt"), "{msg}");
    assert!(!w.release("v1.2.3").exists());
    assert!(
        w.releases_dir_names().is_empty(),
        "{:?}",
        w.releases_dir_names()
    );
    assert!(w.log_lines().is_empty());
    agent.finish();
}
