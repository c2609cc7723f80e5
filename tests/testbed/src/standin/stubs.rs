//! The stub commands: what each of `bundle`, `yarn`, `rails`, `tootctl`, `rbenv`, `nodenv`
//! and `node` does when called, decided by [`classify`] (pure) and carried out by [`run`].
//!
//! Every call first appends a [`StubCall`] line to `$VMCTL_ROOT/var/log/vmctl-stubs.log`
//! (so tests see the exact order, failed calls included), then sleeps
//! `$VMCTL_ROOT/etc/vmctl-testbed/stub-delay-ms`, then fails with exit 1 when one of
//! [`fail_files`] exists in `$VMCTL_ROOT/etc/vmctl-testbed/` (its text, if any, is the
//! message). `bundle exec X ...` also checks X's own fail files, so `fail-bundle-install`
//! fails only installs and `fail-rails-db:migrate` only migrations, while `fail-bundle`
//! fails every `bundle` call, services included.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{sidekiq, streaming, web};
use crate::droplets::sshd_config::ROOT_VAR;

/// The call log, under the droplet root.
pub const LOG_FILE: &str = "var/log/vmctl-stubs.log";
/// The folder of knobs (delay, fail files), under the droplet root.
pub const CONFIG_DIR: &str = "etc/vmctl-testbed";
/// Milliseconds every call sleeps, in `CONFIG_DIR`.
pub const DELAY_FILE: &str = "stub-delay-ms";
/// Variables each log line records (null when unset).
pub const LOGGED_ENV: [&str; 4] = [
    "RAILS_ENV",
    "NODE_ENV",
    "SKIP_POST_DEPLOYMENT_MIGRATIONS",
    "PORT",
];
/// The longest delay honoured, so a typo cannot hang a test for hours.
const MAX_DELAY: Duration = Duration::from_secs(600);

/// One line of the call log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StubCall {
    /// When the call started (ms since the epoch).
    pub at_ms: u64,
    /// The command: `bundle`, `yarn`, ...
    pub cmd: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its working folder.
    pub cwd: String,
    /// The variables of [`LOGGED_ENV`].
    pub env: BTreeMap<String, Option<String>>,
    /// Its process id.
    pub pid: u32,
}

/// Reads a droplet's call log (empty when nothing was called yet); unparsable lines are
/// skipped.
///
/// # Errors
/// The file exists but cannot be read.
pub fn read_log(root: &Path) -> std::io::Result<Vec<StubCall>> {
    match fs::read_to_string(root.join(LOG_FILE)) {
        Ok(text) => Ok(text
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// What a call does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Become the web stand-in (Puma), with Puma's arguments.
    Web(Vec<String>),
    /// Become the streaming stand-in.
    Streaming,
    /// Become the Sidekiq stand-in, with Sidekiq's arguments.
    Sidekiq(Vec<String>),
    /// Write `public/packs/manifest.json` in the working folder.
    Precompile,
    /// Print what a migration prints.
    Migrate,
    /// Create `node_modules/` in the working folder.
    YarnInstall,
    /// Create `~mastodon/.<tool>/versions/<version>/`.
    InstallRuntime {
        /// `rbenv` or `nodenv`.
        tool: &'static str,
        /// The version.
        version: String,
    },
    /// List the installed versions.
    ListRuntimes {
        /// `rbenv` or `nodenv`.
        tool: &'static str,
    },
    /// Print this and succeed.
    Print(String),
    /// Print this and exit 1.
    Usage(String),
    /// Succeed silently.
    Nothing,
}

const STREAMING_ENTRIES: [&str; 4] = [
    "./streaming",
    "streaming",
    "./streaming/index.js",
    "streaming/index.js",
];

/// Decides what `cmd args...` does.
pub fn classify(cmd: &str, args: &[String]) -> Action {
    let first = args.first().map(String::as_str);
    let rest = args.get(1..).unwrap_or_default().to_vec();
    match (cmd, first) {
        ("bundle", Some("exec")) => match rest.first().map(String::as_str) {
            Some("puma") => Action::Web(rest[1..].to_vec()),
            Some("sidekiq") => Action::Sidekiq(rest[1..].to_vec()),
            Some("rails") => classify("rails", &rest[1..]),
            Some("tootctl" | "bin/tootctl") => classify("tootctl", &rest[1..]),
            Some(_) => Action::Nothing,
            None => Action::Usage("bundler: exec needs a command to run".into()),
        },
        ("bundle", Some("install")) => {
            Action::Print("Bundle complete! 3 Gemfile dependencies, 3 gems now installed.".into())
        }
        ("bundle", Some("--version" | "-v" | "version")) => {
            Action::Print("Bundler version 2.5.22".into())
        }
        ("rails", Some("db:migrate")) => Action::Migrate,
        ("rails", Some("assets:precompile")) => Action::Precompile,
        ("yarn", Some("install")) => Action::YarnInstall,
        ("yarn", Some("--version" | "-v")) => Action::Print("4.5.0".into()),
        ("rbenv" | "nodenv", Some("install")) => {
            let tool = if cmd == "rbenv" { "rbenv" } else { "nodenv" };
            match rest.iter().rev().find(|a| !a.starts_with('-')) {
                Some(version) if is_safe_version(version) => Action::InstallRuntime {
                    tool,
                    version: version.clone(),
                },
                Some(version) => Action::Usage(format!("{tool}: bad version {version:?}")),
                None => Action::Usage(format!("Usage: {tool} install [--skip-existing] <version>")),
            }
        }
        ("rbenv", Some("versions")) => Action::ListRuntimes { tool: "rbenv" },
        ("nodenv", Some("versions")) => Action::ListRuntimes { tool: "nodenv" },
        ("rbenv", Some("--version")) => Action::Print("rbenv 1.3.0".into()),
        ("nodenv", Some("--version")) => Action::Print("nodenv 1.5.0".into()),
        ("node", Some("--version" | "-v")) => Action::Print("v20.18.0".into()),
        ("node", _) => {
            let script = args.iter().find(|a| !a.starts_with('-'));
            if script.is_some_and(|s| STREAMING_ENTRIES.contains(&s.as_str())) {
                Action::Streaming
            } else {
                Action::Nothing
            }
        }
        _ => Action::Nothing,
    }
}

/// A version that is safe as a folder name.
fn is_safe_version(version: &str) -> bool {
    !version.is_empty()
        && !version.starts_with('.')
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// The fail files that make `cmd args...` fail, least specific first: `fail-<cmd>`,
/// `fail-<cmd>-<first arg>`, and for `bundle exec X ...` those of `X ...` too.
pub fn fail_files(cmd: &str, args: &[String]) -> Vec<String> {
    let clean = |s: &str| s.replace('/', "_");
    let mut names = vec![format!("fail-{}", clean(cmd))];
    if let Some(first) = args.first() {
        names.push(format!("fail-{}-{}", clean(cmd), clean(first)));
        if cmd == "bundle" && first == "exec" {
            if let Some(inner) = args.get(1) {
                names.extend(fail_files(inner, &args[2..]));
            }
        }
    }
    names
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Runs stub `cmd` with `args`; returns the exit code.
pub fn run(cmd: &'static str, args: &[String]) -> i32 {
    let Some(root) = std::env::var_os(ROOT_VAR).map(PathBuf::from) else {
        eprintln!(
            "{cmd} (vmctl-testbed stub): {ROOT_VAR} is not set; stubs run on testbed droplets only"
        );
        return 1;
    };
    let cwd = std::env::current_dir().unwrap_or_default();
    let call = StubCall {
        at_ms: now_ms(),
        cmd: cmd.to_owned(),
        args: args.to_vec(),
        cwd: cwd.display().to_string(),
        env: LOGGED_ENV
            .iter()
            .map(|name| ((*name).to_owned(), std::env::var(name).ok()))
            .collect(),
        pid: std::process::id(),
    };
    if let Err(error) = append_log(&root, &call) {
        // A call the tests cannot see would make their evidence wrong: refuse it.
        eprintln!(
            "{cmd} (vmctl-testbed stub): writing {}: {error}",
            root.join(LOG_FILE).display()
        );
        return 1;
    }
    let config = root.join(CONFIG_DIR);
    let delay = read_delay(&config.join(DELAY_FILE));
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
    for name in fail_files(cmd, args) {
        let path = config.join(&name);
        if path.exists() {
            let text = fs::read_to_string(&path).unwrap_or_default();
            let message = if text.trim().is_empty() {
                format!("failing as asked by {}", path.display())
            } else {
                text.trim().to_owned()
            };
            eprintln!("{cmd}: {message}");
            return 1;
        }
    }
    act(&root, &cwd, cmd, classify(cmd, args))
}

fn act(root: &Path, cwd: &Path, cmd: &str, action: Action) -> i32 {
    let result = match action {
        Action::Web(args) => return web::run(&args),
        Action::Streaming => return streaming::run(),
        Action::Sidekiq(args) => return sidekiq::run(root, &args),
        Action::Precompile => {
            write_file(&cwd.join("public/packs/manifest.json"), "{}\n").map(|()| {
                println!(
                    "Compiled all packs in {}",
                    cwd.join("public/packs").display()
                )
            })
        }
        Action::Migrate => {
            println!("== 20241008000000 StandinMigration: migrated (0.0001s) ==");
            Ok(())
        }
        Action::YarnInstall => write_file(&cwd.join("node_modules/.yarn-state.yml"), "")
            .map(|()| println!("➤ YN0000: · Done")),
        Action::InstallRuntime { tool, version } => {
            let path = runtimes_dir(root, tool).join(&version);
            let existed = path.is_dir();
            fs::create_dir_all(&path)
                .map_err(|e| format!("creating {}: {e}", path.display()))
                .map(|()| {
                    if !existed {
                        println!("Installed {version} to {}", path.display());
                    }
                })
        }
        Action::ListRuntimes { tool } => {
            let mut versions: Vec<String> = fs::read_dir(runtimes_dir(root, tool))
                .map(|entries| {
                    entries
                        .filter_map(Result::ok)
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            versions.sort();
            for version in versions {
                println!("{version}");
            }
            Ok(())
        }
        Action::Print(text) => {
            println!("{text}");
            Ok(())
        }
        Action::Usage(text) => Err(text),
        Action::Nothing => Ok(()),
    };
    match result {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("{cmd}: {message}");
            1
        }
    }
}

/// Where `rbenv`/`nodenv` keep versions: the mastodon user's home under the root.
pub fn runtimes_dir(root: &Path, tool: &str) -> PathBuf {
    root.join("home/mastodon")
        .join(format!(".{tool}"))
        .join("versions")
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
    }
    fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// One `write` of one line with O_APPEND, so concurrent stubs never interleave lines.
fn append_log(root: &Path, call: &StubCall) -> std::io::Result<()> {
    let path = root.join(LOG_FILE);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut line = serde_json::to_vec(call)?;
    line.push(b'\n');
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?
        .write_all(&line)
}

fn read_delay(path: &Path) -> Duration {
    fs::read_to_string(path)
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .map_or(Duration::ZERO, |ms| {
            Duration::from_millis(ms).min(MAX_DELAY)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn bundle_exec_routes_to_services_and_rails() {
        assert_eq!(
            classify("bundle", &args("exec puma -C config/puma.rb")),
            Action::Web(args("-C config/puma.rb"))
        );
        assert_eq!(
            classify("bundle", &args("exec sidekiq -c 5 -q default")),
            Action::Sidekiq(args("-c 5 -q default"))
        );
        assert_eq!(
            classify("bundle", &args("exec rails db:migrate")),
            Action::Migrate
        );
        assert_eq!(
            classify("bundle", &args("exec rails assets:precompile")),
            Action::Precompile
        );
        assert!(matches!(
            classify("bundle", &args("exec")),
            Action::Usage(_)
        ));
        assert!(matches!(
            classify("bundle", &args("install")),
            Action::Print(_)
        ));
    }

    #[test]
    fn node_serves_streaming_only_for_the_streaming_entry() {
        assert_eq!(classify("node", &args("./streaming")), Action::Streaming);
        assert_eq!(
            classify("node", &args("--trace streaming/index.js")),
            Action::Streaming
        );
        assert_eq!(classify("node", &args("other.js")), Action::Nothing);
    }

    #[test]
    fn runtime_installs_take_the_last_plain_argument() {
        assert_eq!(
            classify("rbenv", &args("install --skip-existing 3.4.1")),
            Action::InstallRuntime {
                tool: "rbenv",
                version: "3.4.1".into()
            }
        );
        assert!(matches!(
            classify("nodenv", &args("install")),
            Action::Usage(_)
        ));
        assert!(matches!(
            classify("rbenv", &args("install ../x")),
            Action::Usage(_)
        ));
    }

    #[test]
    fn fail_files_reach_through_bundle_exec() {
        assert_eq!(
            fail_files("bundle", &args("exec rails db:migrate")),
            [
                "fail-bundle",
                "fail-bundle-exec",
                "fail-rails",
                "fail-rails-db:migrate"
            ]
        );
        assert_eq!(
            fail_files("node", &args("./streaming")),
            ["fail-node", "fail-node-._streaming"]
        );
        assert_eq!(fail_files("tootctl", &[]), ["fail-tootctl"]);
    }
}
