//! vmctl-agent: the small synchronous binary vmctld runs on every droplet over SSH as
//! `vmctl-agent serve`. It answers typed request frames (see `vmctl_protocol::agent`) on
//! stdin/stdout and never runs arbitrary shell.
//!
//! Layout: [`frames`] splits input into bounded lines, [`decode`] turns a line into a request or
//! an error reply, [`ops`] runs requests (facts, releases, probes), [`serve`] is the loop,
//! [`services`] tells whether the Mastodon services run and acts on them, [`run`] runs one fixed
//! argv with a deadline, [`root`] hangs every droplet path under the agent's root, [`settings`]
//! holds the tunables `main` reads, [`self_install`] replaces the binary atomically and [`cli`]
//! parses the command line.

pub mod cli;
pub mod decode;
pub mod frames;
pub mod ops;
pub mod root;
pub mod run;
pub mod self_install;
pub mod serve;
pub mod services;
pub mod settings;

pub use ops::Agent;
pub use root::Root;
pub use settings::Settings;

/// `e` and its sources joined with `": "`, on one line, for error replies and stderr.
pub fn display_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out.replace('\n', " ")
}
