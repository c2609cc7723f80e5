//! What each upstream unit runs, for the process backend: the `ExecStart` of Mastodon's
//! `dist/mastodon-*.service` files, as fixed argv and environment. Pure.

use super::error::ServiceError;
use super::MASTODON_SERVICES;
use crate::run::Cmd;

/// Sidekiq's concurrency in the upstream unit (`-c 5`).
const SIDEKIQ_CONCURRENCY: &str = "5";

/// `name` if it is one of [`MASTODON_SERVICES`].
///
/// # Errors
/// [`ServiceError::UnknownService`] otherwise.
pub fn check_name(name: &str) -> Result<&'static str, ServiceError> {
    MASTODON_SERVICES
        .iter()
        .find(|n| **n == name)
        .copied()
        .ok_or_else(|| ServiceError::UnknownService(name.to_string()))
}

/// Checks the queues given for `name`: only Sidekiq takes any, each a plain word.
///
/// # Errors
/// [`ServiceError::QueuesNotSidekiq`] or [`ServiceError::BadQueue`].
pub fn check_queues(name: &str, queues: &[String]) -> Result<(), ServiceError> {
    if name != "mastodon-sidekiq" && !queues.is_empty() {
        return Err(ServiceError::QueuesNotSidekiq(name.to_string()));
    }
    match queues.iter().find(|q| !is_plain_queue(q)) {
        Some(bad) => Err(ServiceError::BadQueue(bad.clone())),
        None => Ok(()),
    }
}

fn is_plain_queue(q: &str) -> bool {
    !q.is_empty()
        && q.len() <= 64
        && !q.starts_with('-')
        && q.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The command the process backend runs for `name` (cwd is set by the caller).
///
/// # Errors
/// An unknown name or bad queues.
pub fn command(name: &str, queues: &[String]) -> Result<Cmd, ServiceError> {
    check_queues(name, queues)?;
    Ok(match check_name(name)? {
        "mastodon-web" => Cmd::new("bundle", ["exec", "puma", "-C", "config/puma.rb"])
            .env("RAILS_ENV", "production")
            .env("PORT", "3000"),
        "mastodon-streaming" => Cmd::new("node", ["./streaming"])
            .env("NODE_ENV", "production")
            .env("PORT", "4000"),
        _ => {
            let mut args: Vec<String> = ["exec", "sidekiq", "-c", SIDEKIQ_CONCURRENCY]
                .map(String::from)
                .to_vec();
            for q in queues {
                args.push("-q".into());
                args.push(q.clone());
            }
            Cmd::new("bundle", args).env("RAILS_ENV", "production")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(v: &[&str]) -> Vec<String> {
        v.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn each_unit_runs_its_upstream_command() {
        assert_eq!(
            command("mastodon-web", &[]).unwrap().display(),
            "bundle exec puma -C config/puma.rb"
        );
        assert_eq!(
            command("mastodon-streaming", &[]).unwrap().display(),
            "node ./streaming"
        );
        assert_eq!(
            command("mastodon-sidekiq", &q(&["default", "push"]))
                .unwrap()
                .display(),
            "bundle exec sidekiq -c 5 -q default -q push"
        );
    }

    #[test]
    fn unknown_names_and_bad_queues_are_refused() {
        assert!(command("sshd", &[]).is_err());
        assert!(command("mastodon-web", &q(&["default"])).is_err());
        assert!(command("mastodon-sidekiq", &q(&["--require=/tmp/x.rb"])).is_err());
        assert!(command("mastodon-sidekiq", &q(&["a b"])).is_err());
    }
}
