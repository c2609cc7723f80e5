//! `migrate` and `cache_clear`: Rails tasks that must run once per release per cluster, guarded
//! by a marker (see [`super::markers`]).

use super::markers::{self, OnceKind};
use super::Layout;
use crate::run::{run, Cmd, RunError};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use vmctl_protocol::release_ops::{MigratePhase, OnceReport};

/// Why a once-only step failed.
#[derive(Debug, thiserror::Error)]
pub enum OnceError {
    /// The release is not prepared on this droplet.
    #[error("release {tag} is not prepared")]
    NotPrepared {
        /// The tag.
        tag: String,
    },
    /// The marker could not be read or written.
    #[error("marker {path}")]
    Marker {
        /// The marker file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The step's program failed or missed its deadline; no marker was written.
    #[error("{kind} for {tag}")]
    Step {
        /// The tag.
        tag: String,
        /// The marker kind (`pre_deploy`, ...).
        kind: &'static str,
        /// The cause, with the stderr tail.
        #[source]
        source: RunError,
    },
}

/// The command for a once-only step, run in the release folder `dir`.
pub fn command(kind: OnceKind, dir: &Path) -> Cmd {
    let cmd = match kind {
        OnceKind::PreDeploy => Cmd::new("bundle", ["exec", "rails", "db:migrate"])
            .env("SKIP_POST_DEPLOYMENT_MIGRATIONS", "true"),
        OnceKind::PostDeploy => Cmd::new("bundle", ["exec", "rails", "db:migrate"]),
        OnceKind::CacheClear => {
            // Absolute: a relative program path with a changed cwd is platform-specific.
            Cmd::new(dir.join("bin/tootctl"), ["cache", "clear"])
        }
    };
    cmd.cwd(dir).env("RAILS_ENV", "production")
}

/// The marker kind for a migration phase.
pub fn kind_of(phase: MigratePhase) -> OnceKind {
    match phase {
        MigratePhase::PreDeploy => OnceKind::PreDeploy,
        MigratePhase::PostDeploy => OnceKind::PostDeploy,
    }
}

/// Runs `kind` for `tag` unless its marker says it already ran. The tag must have passed
/// [`super::check_tag`].
///
/// # Errors
/// See [`OnceError`]. A failed step leaves no marker, so it runs again on the next call.
pub fn once(
    layout: &Layout,
    tag: &str,
    kind: OnceKind,
    deadline: Duration,
) -> Result<OnceReport, OnceError> {
    let marker_err = |source| OnceError::Marker {
        path: markers::path(layout, tag, kind),
        source,
    };
    if markers::is_set(layout, tag, kind).map_err(marker_err)? {
        return Ok(OnceReport { ran: false });
    }
    if !layout.is_prepared(tag) {
        return Err(OnceError::NotPrepared {
            tag: tag.to_string(),
        });
    }
    let cmd = command(kind, &layout.release(tag));
    run(&cmd, deadline).map_err(|source| OnceError::Step {
        tag: tag.to_string(),
        kind: kind.suffix(),
        source,
    })?;
    markers::set(layout, tag, kind, SystemTime::now()).map_err(marker_err)?;
    Ok(OnceReport { ran: true })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::root::Root;
    use std::os::unix::fs::PermissionsExt;

    /// A droplet with `releases/v1.2.3` holding a `bin/tootctl` that counts its runs.
    fn droplet(tootctl_exit: i32) -> (tempfile::TempDir, Layout) {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::new(&Root::new(dir.path()).unwrap());
        let bin = l.release("v1.2.3").join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let script = format!(
            "#!/bin/sh\necho \"$RAILS_ENV $*\" >> ../../tootctl.log\nexit {tootctl_exit}\n"
        );
        std::fs::write(bin.join("tootctl"), script).unwrap();
        std::fs::set_permissions(bin.join("tootctl"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        (dir, l)
    }

    #[test]
    fn a_second_run_finds_the_marker_and_runs_nothing() {
        let (_d, l) = droplet(0);
        let t = Duration::from_secs(10);
        assert_eq!(
            once(&l, "v1.2.3", OnceKind::CacheClear, t).unwrap(),
            OnceReport { ran: true }
        );
        assert_eq!(
            once(&l, "v1.2.3", OnceKind::CacheClear, t).unwrap(),
            OnceReport { ran: false }
        );
        let log = std::fs::read_to_string(l.home().join("tootctl.log")).unwrap();
        assert_eq!(log, "production cache clear\n");
    }

    #[test]
    fn a_failed_step_leaves_no_marker() {
        let (_d, l) = droplet(1);
        let err = once(&l, "v1.2.3", OnceKind::CacheClear, Duration::from_secs(10)).unwrap_err();
        assert!(matches!(err, OnceError::Step { .. }), "{err}");
        assert!(!markers::is_set(&l, "v1.2.3", OnceKind::CacheClear).unwrap());
    }

    #[test]
    fn an_unprepared_release_is_refused() {
        let (_d, l) = droplet(0);
        let err = once(&l, "v9.9.9", OnceKind::PreDeploy, Duration::from_secs(1)).unwrap_err();
        assert!(matches!(err, OnceError::NotPrepared { .. }), "{err}");
    }

    #[test]
    fn pre_deploy_skips_post_deployment_migrations() {
        let c = command(OnceKind::PreDeploy, Path::new("/r"));
        assert_eq!(c.display(), "bundle exec rails db:migrate");
        let env: Vec<_> = c
            .env
            .iter()
            .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
            .collect();
        assert_eq!(
            env,
            [
                "SKIP_POST_DEPLOYMENT_MIGRATIONS=true",
                "RAILS_ENV=production"
            ]
        );
        assert!(command(OnceKind::PostDeploy, Path::new("/r"))
            .env
            .iter()
            .all(|(k, _)| k != "SKIP_POST_DEPLOYMENT_MIGRATIONS"));
    }
}
