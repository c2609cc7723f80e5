//! What the fleet is told: [`FleetConfig`] (how to reach every droplet) and [`NodeTarget`]
//! (where one droplet is), plus the droplet-side paths and command lines derived from them.
//!
//! Command lines are built here and nowhere else, because sshd runs them through the login
//! shell: every path is single-quoted, and [`NodeTarget::validate`] refuses the characters
//! that would break out of the quotes.

use std::path::PathBuf;
use std::time::Duration;

use crate::retry::Backoff;

use super::agent_binary::AgentBinary;
use super::error::FleetError;

/// Where the agent lives under a droplet's root (DESIGN.md "Paths").
const AGENT_DIR: &str = "var/lib/vmctl/bin";
/// The agent's file name in [`AGENT_DIR`].
const AGENT_FILE: &str = "vmctl-agent";

/// How the fleet reaches every droplet.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// SSH login user.
    pub user: String,
    /// The ed25519 private key (OpenSSH format; no `.pub` needed). Never logged.
    pub private_key: PathBuf,
    /// Bound on TCP connect + handshake + auth + channel open.
    pub connect_timeout: Duration,
    /// Default deadline of each agent call (hello included).
    pub call_timeout: Duration,
    /// SSH keepalive interval; a session that hears nothing for three intervals is dropped.
    pub keepalive: Duration,
    /// Delay between reconnect attempts; reset after a successful `hello`.
    pub reconnect: Backoff,
    /// The agent binary every droplet should run.
    pub agent: AgentBinary,
}

/// Where one droplet is reached.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeTarget {
    /// The node's name (the fleet's key).
    pub name: String,
    /// IP address or host name of its sshd.
    pub address: String,
    /// sshd port.
    pub port: u16,
    /// The droplet's root; `/` on a real droplet, a folder per droplet in the testbed.
    pub root: String,
}

impl NodeTarget {
    /// Checks the target before anything connects.
    ///
    /// # Errors
    /// [`FleetError::InvalidTarget`] naming the field: an empty name or address, or a root that
    /// is not absolute or holds a quote, newline or NUL (it is pasted into a shell command).
    pub fn validate(&self) -> Result<(), FleetError> {
        let bad = |reason: &str| {
            Err(FleetError::InvalidTarget {
                node: self.name.clone(),
                reason: reason.to_string(),
            })
        };
        if self.name.is_empty() {
            return bad("name is empty");
        }
        if self.address.is_empty() {
            return bad("address is empty");
        }
        if !self.root.starts_with('/') {
            return bad("root must be an absolute path");
        }
        if self.root.contains(['\'', '\n', '\r', '\0']) {
            return bad("root must not contain a quote, newline or NUL");
        }
        Ok(())
    }

    /// `address:port`, as dialled and reported.
    #[must_use]
    pub fn addr(&self) -> String {
        if self.address.contains(':') {
            format!("[{}]:{}", self.address, self.port)
        } else {
            format!("{}:{}", self.address, self.port)
        }
    }

    /// The folder holding the agent: `<root>/var/lib/vmctl/bin`.
    #[must_use]
    pub fn agent_dir(&self) -> String {
        format!("{}/{AGENT_DIR}", self.root.trim_end_matches('/'))
    }

    /// The agent's installed path: `<root>/var/lib/vmctl/bin/vmctl-agent`.
    #[must_use]
    pub fn agent_path(&self) -> String {
        format!("{}/{AGENT_FILE}", self.agent_dir())
    }

    /// A fresh temporary upload path next to the agent, so `self-install` is a same-dir rename.
    #[must_use]
    pub fn upload_path(&self, random: u64) -> String {
        format!("{}/.{AGENT_FILE}.upload-{random:016x}", self.agent_dir())
    }

    /// `'<agent>' serve --root '<root>'`.
    #[must_use]
    pub fn serve_command(&self) -> String {
        format!(
            "{} serve --root {}",
            quote(&self.agent_path()),
            quote(&self.root)
        )
    }
}

/// `'<tmp>' self-install '<final>'`: the uploaded binary renames itself over the agent.
#[must_use]
pub fn self_install_command(tmp: &str, final_path: &str) -> String {
    format!("{} self-install {}", quote(tmp), quote(final_path))
}

/// Single-quotes a path for the remote shell. Callers only pass paths built from a validated
/// root, so there is no quote inside to escape.
fn quote(s: &str) -> String {
    format!("'{s}'")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(root: &str) -> NodeTarget {
        NodeTarget {
            name: "web-1".into(),
            address: "127.0.1.1".into(),
            port: 22,
            root: root.into(),
        }
    }

    #[test]
    fn a_real_droplet_runs_the_agent_from_var_lib() {
        let t = target("/");
        assert_eq!(t.agent_path(), "/var/lib/vmctl/bin/vmctl-agent");
        assert_eq!(
            t.serve_command(),
            "'/var/lib/vmctl/bin/vmctl-agent' serve --root '/'"
        );
    }

    #[test]
    fn a_testbed_droplet_runs_the_agent_under_its_root() {
        let t = target("/tmp/farm/web-1/");
        assert_eq!(
            t.agent_path(),
            "/tmp/farm/web-1/var/lib/vmctl/bin/vmctl-agent"
        );
        assert_eq!(
            t.upload_path(0xab),
            "/tmp/farm/web-1/var/lib/vmctl/bin/.vmctl-agent.upload-00000000000000ab"
        );
        assert_eq!(
            self_install_command("/a/.t", "/a/vmctl-agent"),
            "'/a/.t' self-install '/a/vmctl-agent'"
        );
    }

    #[test]
    fn roots_that_could_escape_the_quotes_are_refused() {
        assert!(target("/ok root").validate().is_ok());
        for bad in ["relative", "/it's", "/a\nb", ""] {
            let err = target(bad).validate().unwrap_err();
            assert_eq!(err.kind(), "invalid_target", "{bad:?}");
        }
    }

    #[test]
    fn ipv6_addresses_are_bracketed() {
        let mut t = target("/");
        t.address = "::1".into();
        assert_eq!(t.addr(), "[::1]:22");
    }
}
