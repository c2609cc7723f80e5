//! `vmctld`: the controller process.

use clap::Parser;
use vmctl_controller::daemon::{self, dev::DevWorld, Settings};

fn main() -> std::process::ExitCode {
    let mut settings = Settings::parse();
    // The only environment read besides RUST_LOG: the token, so it never sits in argv.
    settings.do_token_env = std::env::var("DIGITALOCEAN_TOKEN").ok();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(settings)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    let (data, temporary) = match (&settings.data, settings.dev) {
        (Some(d), _) => (d.clone(), false),
        (None, true) => (
            std::env::temp_dir().join(format!("vmctl-dev-{}", std::process::id())),
            true,
        ),
        (None, false) => (settings.data_dir(), false),
    };
    let controller = daemon::start(&settings, &data).await?;
    let world = if settings.dev {
        let (store, data2, pools) = (
            controller.store.clone(),
            data.clone(),
            settings.dev_pools.clone(),
        );
        let started =
            tokio::task::spawn_blocking(move || DevWorld::start(&data2, &pools, &store)).await?;
        match started {
            Ok(w) => {
                let socket = controller.socket.display();
                println!(
                    "vmctld --dev: {} simulated droplets are up.",
                    w.document.nodes.len()
                );
                println!("  socket: {socket}");
                println!("  try:    vmctl --socket {socket} status --watch");
                println!("          vmctl --socket {socket} events --follow");
                println!(
                    "  break a droplet: vmctl-testbed ctl --dir {} kill-sshd {}   (start-sshd, rotate-host-key)",
                    data.join("dev/droplets").display(),
                    w.document.nodes.first().map_or("web-1", |n| n.name.as_str())
                );
                println!("  Ctrl-C tears everything down.");
                Some(w)
            }
            Err(e) => {
                controller.shutdown().await;
                return Err(e.context("dev mode could not start the simulated world"));
            }
        }
    } else {
        None
    };
    daemon::termination().await?;
    controller.shutdown().await;
    if let Some(w) = world {
        tokio::task::spawn_blocking(move || w.stop()).await?;
    }
    if temporary {
        let _ = std::fs::remove_dir_all(&data);
    }
    Ok(())
}
