//! How the agent learns whether a Mastodon service is running and acts on it: a small trait with
//! one backend per file, and the rule that picks one.
//!
//! A backend answers [`ActiveState::Unknown`] when it cannot tell (systemctl missing or hung,
//! an unreadable pid file) rather than failing, so one broken service check never hides the rest
//! of a droplet's facts.

pub mod error;
pub mod process;
pub mod process_control;
pub mod systemd;
pub mod units;

use crate::root::Root;
pub use error::ServiceError;
use vmctl_protocol::agent::ActiveState;
use vmctl_protocol::release_ops::ServiceAction;

/// The upstream unit names the agent reports on, in reply order.
pub const MASTODON_SERVICES: [&str; 3] = ["mastodon-web", "mastodon-streaming", "mastodon-sidekiq"];

/// Tells whether one service is running, and starts, stops, restarts or quiets it.
pub trait ServiceBackend: Send + Sync + std::fmt::Debug {
    /// The state of the service named `name` (an upstream unit name such as `mastodon-web`).
    fn state(&self, name: &str) -> ActiveState;

    /// Applies `action` to `name`, one of [`MASTODON_SERVICES`]. `queues` are Sidekiq's `-q`
    /// queues where the backend decides them (the process backend); empty for other services.
    /// Returns once the action has taken effect as far as the backend can tell.
    ///
    /// # Errors
    /// An unknown service, bad queues, or the backend failing; see [`ServiceError`].
    fn act(&self, name: &str, action: ServiceAction, queues: &[String])
        -> Result<(), ServiceError>;
}

/// Which backend `--services` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// systemd (`systemctl is-active`), for real droplets.
    Systemd,
    /// Pid files under `<root>/run/vmctl/services`, for the testbed.
    Process,
    /// [`Selection::Process`] when the root is not `/`, else [`Selection::Systemd`].
    Auto,
}

impl std::str::FromStr for Selection {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "systemd" => Ok(Selection::Systemd),
            "process" => Ok(Selection::Process),
            "auto" => Ok(Selection::Auto),
            other => Err(format!(
                "unknown services backend {other:?} (want systemd, process or auto)"
            )),
        }
    }
}

impl Selection {
    /// The concrete choice for `root`: a testbed root never talks to the host's systemd.
    pub fn resolve(self, root: &Root) -> Selection {
        match self {
            Selection::Auto if root.is_host() => Selection::Systemd,
            Selection::Auto => Selection::Process,
            concrete => concrete,
        }
    }
}

/// The backend `selection` names, for `root`.
pub fn backend(selection: Selection, root: &Root) -> Box<dyn ServiceBackend> {
    match selection.resolve(root) {
        Selection::Process => Box::new(process::ProcessBackend::new(root)),
        Selection::Systemd | Selection::Auto => Box::new(systemd::Systemd::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_picks_process_for_a_testbed_root_and_systemd_for_the_host() {
        let tb = Root::new("/tmp/droplet-1").unwrap();
        assert_eq!(Selection::Auto.resolve(&tb), Selection::Process);
        assert_eq!(Selection::Auto.resolve(&Root::host()), Selection::Systemd);
        assert_eq!(Selection::Systemd.resolve(&tb), Selection::Systemd);
        assert_eq!(
            Selection::Process.resolve(&Root::host()),
            Selection::Process
        );
    }

    #[test]
    fn selections_parse_from_their_flag_values() {
        assert_eq!("auto".parse::<Selection>(), Ok(Selection::Auto));
        assert_eq!("process".parse::<Selection>(), Ok(Selection::Process));
        assert_eq!("systemd".parse::<Selection>(), Ok(Selection::Systemd));
        assert!("docker".parse::<Selection>().is_err());
    }
}
