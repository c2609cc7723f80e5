//! Command-line parsing, by hand to keep the binary small and quick to start. Pure: the caller
//! passes the arguments and the `VMCTL_ROOT` value in.

use crate::services::Selection;
use std::ffi::OsString;
use std::path::PathBuf;

/// Usage text, printed on bad arguments and for `help`.
pub const USAGE: &str = "\
usage: vmctl-agent serve [--root DIR] [--services systemd|process|auto]
       vmctl-agent self-install FINAL_PATH
       vmctl-agent version

serve         answer request frames (one JSON object per line) on stdin/stdout
              --root DIR defaults to $VMCTL_ROOT, else /
              --services defaults to auto (process when the root is not /, else systemd)
self-install  rename this executable onto FINAL_PATH (same directory, named vmctl-agent)
version       print {\"agent_version\",\"binary_sha256\",\"protocol_version\"} as JSON";

/// What the command line asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `serve`.
    Serve {
        /// The droplet root.
        root: PathBuf,
        /// The services backend.
        services: Selection,
    },
    /// `self-install FINAL_PATH`.
    SelfInstall {
        /// Where the binary goes.
        final_path: PathBuf,
    },
    /// `version`.
    Version,
    /// `help`, `-h` or `--help`.
    Help,
}

/// A command line that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(String);

/// Parses `args` (without the program name). `env_root` is `VMCTL_ROOT`, used when `--root` is
/// not given; an empty value counts as unset.
///
/// # Errors
/// An unknown subcommand or flag, a missing or empty value, or extra arguments.
pub fn parse(
    args: impl IntoIterator<Item = OsString>,
    env_root: Option<OsString>,
) -> Result<Command, UsageError> {
    let mut args = args.into_iter();
    let Some(sub) = args.next() else {
        return Err(UsageError("missing subcommand".into()));
    };
    match sub.to_str() {
        Some("serve") => parse_serve(args, env_root),
        Some("self-install") => {
            let final_path = args.next().filter(|p| !p.is_empty());
            let Some(final_path) = final_path else {
                return Err(UsageError("self-install needs FINAL_PATH".into()));
            };
            no_more(args)?;
            Ok(Command::SelfInstall {
                final_path: final_path.into(),
            })
        }
        Some("version") => no_more(args).map(|()| Command::Version),
        Some("help" | "-h" | "--help") => Ok(Command::Help),
        _ => Err(UsageError(format!("unknown subcommand {sub:?}"))),
    }
}

fn parse_serve(
    mut args: impl Iterator<Item = OsString>,
    env_root: Option<OsString>,
) -> Result<Command, UsageError> {
    let mut root = None;
    let mut services = Selection::Auto;
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy();
        let (flag, inline) = match text.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(OsString::from(v))),
            _ => (text.into_owned(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| UsageError(format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--root" => root = Some(value()?),
            "--services" => {
                let v = value()?;
                services = v.to_str().unwrap_or("").parse().map_err(UsageError)?;
            }
            _ => return Err(UsageError(format!("unknown serve argument {arg:?}"))),
        }
    }
    let root = root
        .or(env_root.filter(|r| !r.is_empty()))
        .unwrap_or_else(|| "/".into());
    Ok(Command::Serve {
        root: root.into(),
        services,
    })
}

fn no_more(mut args: impl Iterator<Item = OsString>) -> Result<(), UsageError> {
    match args.next() {
        Some(extra) => Err(UsageError(format!("unexpected argument {extra:?}"))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str], env: Option<&str>) -> Result<Command, UsageError> {
        parse(args.iter().map(OsString::from), env.map(OsString::from))
    }

    fn serve(root: &str, services: Selection) -> Command {
        Command::Serve {
            root: root.into(),
            services,
        }
    }

    #[test]
    fn serve_takes_root_from_flag_then_env_then_slash() {
        assert_eq!(p(&["serve"], None), Ok(serve("/", Selection::Auto)));
        assert_eq!(p(&["serve"], Some("")), Ok(serve("/", Selection::Auto)));
        assert_eq!(
            p(&["serve"], Some("/tmp/e")),
            Ok(serve("/tmp/e", Selection::Auto))
        );
        assert_eq!(
            p(&["serve", "--root", "/tmp/f"], Some("/tmp/e")),
            Ok(serve("/tmp/f", Selection::Auto))
        );
        assert_eq!(
            p(&["serve", "--root=/tmp/g", "--services", "process"], None),
            Ok(serve("/tmp/g", Selection::Process))
        );
        assert_eq!(
            p(&["serve", "--services=systemd"], None),
            Ok(serve("/", Selection::Systemd))
        );
    }

    #[test]
    fn other_subcommands_parse() {
        assert_eq!(p(&["version"], None), Ok(Command::Version));
        assert_eq!(
            p(&["self-install", "/opt/vmctl/vmctl-agent"], None),
            Ok(Command::SelfInstall {
                final_path: "/opt/vmctl/vmctl-agent".into()
            })
        );
        assert_eq!(p(&["--help"], None), Ok(Command::Help));
    }

    #[test]
    fn bad_command_lines_are_usage_errors() {
        for args in [
            &[][..],
            &["shell"],
            &["serve", "--root"],
            &["serve", "--root="],
            &["serve", "--services", "docker"],
            &["serve", "--verbose"],
            &["serve", "extra"],
            &["self-install"],
            &["self-install", "a", "b"],
            &["version", "x"],
        ] {
            assert!(p(args, None).is_err(), "{args:?}");
        }
    }
}
