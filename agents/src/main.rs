//! The `vmctl-agent` binary: parses the command line and hands off to the library. The only
//! place that reads the environment (`VMCTL_ROOT`, `VMCTL_STEP_TIMEOUT_S`, `VMCTL_PROBE_HOST`) or
//! decides the exit code. Spawned programs inherit the environment (PATH) as it is.

use std::io::Write;
use std::process::ExitCode;
use vmctl_agent::cli::{self, Command, USAGE};
use vmctl_agent::ops::hello;
use vmctl_agent::{display_chain, self_install, serve, services, Agent, Root, Settings};

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args_os().skip(1), std::env::var_os("VMCTL_ROOT")) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vmctl-agent: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match command {
        Command::Help => {
            println!("{USAGE}");
            Ok(())
        }
        Command::Version => version(),
        Command::SelfInstall { final_path } => {
            self_install::self_install(&final_path).map_err(|e| display_chain(&e))
        }
        Command::Serve { root, services } => run_serve(&root, services),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("vmctl-agent: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn version() -> Result<(), String> {
    let h = hello::hello(&hello::BinaryHash::default()).map_err(|e| display_chain(&e))?;
    let json = serde_json::to_string(&h).map_err(|e| e.to_string())?;
    writeln!(std::io::stdout(), "{json}").map_err(|e| format!("write version: {e}"))
}

fn run_serve(root: &std::path::Path, selection: services::Selection) -> Result<(), String> {
    let settings = Settings::from_env_values(
        std::env::var_os("VMCTL_STEP_TIMEOUT_S"),
        std::env::var_os("VMCTL_PROBE_HOST"),
    )
    .map_err(|errs| {
        errs.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let root = Root::new(root).map_err(|e| format!("resolve root {}: {e}", root.display()))?;
    let backend = services::backend(selection, &root);
    let agent = Agent::with_settings(root, backend, settings);
    serve::serve(std::io::stdin().lock(), std::io::stdout(), &agent).map_err(|e| display_chain(&e))
}
