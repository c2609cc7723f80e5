//! `vmctl`, the operator's CLI: argument parsing, dispatch to one module per command family,
//! and the exit-code contract (0 ok, 1 error, 2 usage — clap's own code for usage errors).
//!
//! Errors are printed on stderr as `error: <message>`; an invalid cluster file prints one
//! `error: FILE:LINE:COLUMN: FIELD: message` line per problem.

mod apply;
mod connect;
mod error;
mod events;
mod get;
mod jobs;
mod node;
mod output;
mod release;
mod rollout;
mod snapshot;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

pub use error::CliError;
pub use get::Kind;
pub use output::OutputFormat;
pub use release::{PlanArgs, ReleaseCommand};

use crate::client::DEFAULT_SOCKET;

/// Operate a Mastodon fleet through vmctld.
#[derive(Debug, Parser)]
#[command(name = "vmctl", version, about)]
pub struct Cli {
    /// Where vmctld is and how to talk to it.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command accepts.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// vmctld's unix socket.
    #[arg(long, global = true, env = "VMCTL_SOCKET", value_name = "PATH", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Talk to vmctld over TCP instead, e.g. http://127.0.0.1:7070 (overrides --socket).
    #[arg(long, global = true, env = "VMCTL_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// File holding the bearer token (else the VMCTL_TOKEN environment variable is used).
    #[arg(long, global = true, env = "VMCTL_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show pools and nodes: reachability, agent, release, load, problems.
    Status {
        /// Redraw until Ctrl-C (with -o json: one JSON document per line).
        #[arg(long, short = 'w')]
        watch: bool,
        /// Time between redraws with --watch, e.g. 2s, 500ms.
        #[arg(long, default_value = "2s", value_parser = parse_interval)]
        interval: Duration,
    },
    /// List stored nodes, pools, provisions or snapshot jobs, or show one by name.
    Get {
        /// nodes, pools, provisions or snapshots.
        #[arg(value_enum)]
        kind: Kind,
        /// Show only this object.
        name: Option<String>,
    },
    /// Show recent events, oldest first.
    Events {
        /// How many recent events to show.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Keep printing new events until Ctrl-C (with -o json: one event per line).
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// Validate a cluster file and make it the desired state.
    Apply {
        /// The cluster file.
        #[arg(short = 'f', long = "filename", value_name = "FILE")]
        file: PathBuf,
    },
    /// Validate a cluster file and show what apply would change (exits 0 either way).
    Diff {
        /// The cluster file.
        #[arg(short = 'f', long = "filename", value_name = "FILE")]
        file: PathBuf,
    },
    /// Node actions.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Snapshot actions.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Upstream releases: what the fleet moves to next, and why.
    #[command(subcommand)]
    Release(ReleaseCommand),
    /// The release rollout in flight: status, pause, resume, abort.
    #[command(subcommand)]
    Rollout(rollout::RolloutCommand),
}

/// `vmctl node ...`.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Forget the node's pinned SSH host key; the next connection pins the key it presents.
    ForgetHostkey {
        /// Node name.
        node: String,
    },
}

/// `vmctl snapshot ...`.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Snapshot one droplet of a managed pool now; new droplets then start from it.
    Create {
        /// Pool name.
        pool: String,
    },
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    let d = vmctl_protocol::duration::parse(text)?;
    if d.is_zero() {
        return Err("the interval must be greater than zero".to_owned());
    }
    Ok(d)
}

/// The `vmctl` binary: parses arguments (exiting 2 on usage errors), runs the command, prints
/// any error and returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The one place the token variable is read; it is never printed.
    let env_token = std::env::var("VMCTL_TOKEN").ok();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&cli, env_token.as_deref())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            for line in e.lines() {
                eprintln!("error: {line}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Runs one parsed command line.
///
/// # Errors
/// Whatever the command failed with; see [`CliError`].
pub async fn run(cli: &Cli, env_token: Option<&str>) -> Result<(), CliError> {
    let format = cli.global.output;
    // apply/diff validate before connecting; building the client does no I/O except reading
    // the token file, so it is fine to do up front.
    let client = connect::client(&cli.global, env_token)?;
    match &cli.command {
        Command::Status { watch, interval } => {
            let watch = watch.then_some(status::Watch {
                interval: *interval,
            });
            status::run(&client, format, watch).await
        }
        Command::Get { kind, name } => get::run(&client, format, *kind, name.as_deref()).await,
        Command::Events { limit, follow } => events::run(&client, format, *limit, *follow).await,
        Command::Apply { file } => apply::run(&client, format, file, apply::Mode::Apply).await,
        Command::Diff { file } => apply::run(&client, format, file, apply::Mode::Diff).await,
        Command::Node(NodeCommand::ForgetHostkey { node }) => {
            node::forget_hostkey(&client, format, node).await
        }
        Command::Snapshot(SnapshotCommand::Create { pool }) => {
            snapshot::create(&client, format, pool).await
        }
        Command::Release(command) => release::run(&client, format, command).await,
        Command::Rollout(command) => rollout::run(&client, format, command).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "vmctl", "get", "nodes", "web-1", "-o", "json", "--socket", "/s",
        ])
        .unwrap();
        assert_eq!(cli.global.output, OutputFormat::Json);
        assert_eq!(cli.global.socket, PathBuf::from("/s"));
        assert!(
            matches!(cli.command, Command::Get { kind: Kind::Nodes, name: Some(ref n) } if n == "web-1")
        );
    }

    #[test]
    fn intervals_need_a_unit_and_must_be_positive() {
        assert_eq!(parse_interval("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_interval("2").is_err());
        assert!(parse_interval("0s").is_err());
    }
}
