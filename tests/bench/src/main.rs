//! `vmctl-bench`: vmctl's speed and memory targets, one subcommand per benchmark.
//!
//! Each benchmark prints progress to stderr and, as its last stdout line, one JSON object
//! with its figures, so scripts can `tail -n1`.

mod fanout;
mod heal;
mod rollout;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "vmctl-bench", about = "vmctl's benchmarks")]
struct Cli {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Cold connect to N droplets, then rounds of one facts call to every node at once.
    Fanout(fanout::Args),
    /// One droplet dies: time to notice it and to replace it from the snapshot.
    Heal(heal::Args),
    /// Roll a fleet to a new release: time beyond the stand-ins' unavoidable waits.
    Rollout(rollout::Args),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.bench {
        Bench::Fanout(args) => fanout::run(&args),
        Bench::Heal(args) => heal::run(&args),
        Bench::Rollout(args) => rollout::run(&args),
    };
    match result {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vmctl-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
