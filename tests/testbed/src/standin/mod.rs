//! Stand-ins for Mastodon's tools and services on simulated droplets. `vmctl-testbed` is a
//! multi-call binary: run through a symlink named `bundle`, `yarn`, `rails`, `tootctl`,
//! `rbenv`, `nodenv` or `node` (see [`stub_dir`]), it acts as that command ([`run_as_stub`]).
//!
//! Every call appends one JSON line to `$VMCTL_ROOT/var/log/vmctl-stubs.log`, sleeps
//! `$VMCTL_ROOT/etc/vmctl-testbed/stub-delay-ms` (default 0) and fails when a fail file
//! exists (see `stubs`). `bundle exec puma` becomes the web stand-in (`web`), `node
//! ./streaming` the streaming one (`streaming`), `bundle exec sidekiq` the Sidekiq one
//! (`sidekiq`); `http` is their tiny HTTP server.
//!
//! Environment read: `VMCTL_ROOT` (required), `VMCTL_TESTBED_ADDRESS` (address services
//! listen on, default 127.0.0.1, loopback only), `PORT`, `RAILS_ENV`,
//! `SKIP_POST_DEPLOYMENT_MIGRATIONS`.

mod http;
pub mod sidekiq;
pub mod streaming;
pub mod stubs;
pub mod web;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The commands the binary answers to by name.
pub const STUB_NAMES: [&str; 7] = [
    "bundle", "yarn", "rails", "tootctl", "rbenv", "nodenv", "node",
];

/// Why the stub folder could not be made.
#[derive(Debug, thiserror::Error)]
pub enum StandinError {
    /// Creating the folder or a symlink failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Fills `dir` with symlinks named after [`STUB_NAMES`] to `testbed_exe` (replacing any
/// there) and returns `dir` as an absolute path, for `FarmOptions::stub_dir`.
///
/// # Errors
/// The folder or a link could not be made.
pub fn stub_dir(dir: &Path, testbed_exe: &Path) -> Result<PathBuf, StandinError> {
    let io = |op, path: &Path| {
        let path = path.to_path_buf();
        move |source| StandinError::Io { op, path, source }
    };
    let dir = std::path::absolute(dir).map_err(io("resolving", dir))?;
    let target = std::path::absolute(testbed_exe).map_err(io("resolving", testbed_exe))?;
    std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
    for name in STUB_NAMES {
        let link = dir.join(name);
        match std::fs::remove_file(&link) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("replacing", &link)(e)),
        }
        std::os::unix::fs::symlink(&target, &link).map_err(io("linking", &link))?;
    }
    Ok(dir)
}

/// Exits the process with 0 on SIGTERM or SIGINT, from a thread of its own.
///
/// # Errors
/// The handlers could not be installed.
pub(crate) fn exit_on_term() -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            std::process::exit(0);
        }
    });
    Ok(())
}

/// The stub name `argv0` calls for, if any (its file name, whatever the folder).
pub fn stub_name(argv0: &OsString) -> Option<&'static str> {
    let base = Path::new(argv0).file_name()?.to_str()?;
    STUB_NAMES.iter().copied().find(|name| *name == base)
}

/// When this process was started under a stub name, acts as that command and returns its
/// exit code; `None` otherwise. Call first thing in `main`, before parsing arguments.
pub fn run_as_stub() -> Option<i32> {
    let mut args = std::env::args_os();
    let name = stub_name(&args.next()?)?;
    let args: Vec<String> = args.map(|a| a.to_string_lossy().into_owned()).collect();
    Some(stubs::run(name, &args))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stub_names_come_from_the_file_name() {
        assert_eq!(stub_name(&"/x/stubs/bundle".into()), Some("bundle"));
        assert_eq!(stub_name(&"node".into()), Some("node"));
        assert_eq!(stub_name(&"/x/vmctl-testbed".into()), None);
        assert_eq!(stub_name(&"bundler".into()), None);
    }

    #[test]
    fn stub_dir_links_every_name_and_can_be_redone() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("exe");
        std::fs::write(&exe, "").unwrap();
        let stubs = stub_dir(&dir.path().join("stubs"), &exe).unwrap();
        stub_dir(&stubs, &exe).unwrap();
        for name in STUB_NAMES {
            assert_eq!(std::fs::read_link(stubs.join(name)).unwrap(), exe);
        }
    }
}
