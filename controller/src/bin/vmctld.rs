//! `vmctld`: the controller process.

use anyhow::Context as _;
use clap::Parser;
use vmctl_controller::daemon::{self, dev::DevWorld, Settings};

fn main() -> std::process::ExitCode {
    let mut settings = Settings::parse();
    // The only environment read besides RUST_LOG: the token, so it never sits in argv.
    settings.do_token_env = std::env::var("DIGITALOCEAN_TOKEN").ok();
    settings.github_token_env = std::env::var("GITHUB_TOKEN").ok();
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

async fn run(mut settings: Settings) -> anyhow::Result<()> {
    let (data, temporary) = match (&settings.data, settings.dev) {
        (Some(d), _) => (d.clone(), false),
        (None, true) => (
            std::env::temp_dir().join(format!("vmctl-dev-{}", std::process::id())),
            true,
        ),
        (None, false) => (settings.data_dir(), false),
    };
    // Dev mode: the simulated cloud comes first, so the controller starts pointed at it exactly
    // as it would be at DigitalOcean.
    let world = if settings.dev {
        let (data2, pools) = (data.clone(), settings.dev_pools.clone());
        let w = tokio::task::spawn_blocking(move || DevWorld::start(&data2, &pools))
            .await?
            .context("dev mode could not start the simulated world")?;
        settings.do_api_url = w.api_url.clone();
        settings.do_token_file = Some(w.token_file.clone());
        Some(w)
    } else {
        None
    };
    let controller = match daemon::start(&settings, &data).await {
        Ok(c) => c,
        Err(e) => {
            if let Some(w) = world {
                tokio::task::spawn_blocking(move || w.stop()).await?;
            }
            return Err(e);
        }
    };
    if let Some(w) = &world {
        w.apply(&controller.store)?;
        let socket = controller.socket.display();
        let droplets: u32 = w
            .document
            .pools
            .iter()
            .filter_map(|p| p.spec.droplets.as_ref())
            .map(|t| t.count)
            .sum();
        println!(
            "vmctld --dev: creating {droplets} droplets in the simulated DigitalOcean at {}.",
            w.api_url
        );
        println!("  socket: {socket}");
        println!("  watch:  vmctl --socket {socket} status --watch");
        println!("          vmctl --socket {socket} events --follow");
        println!("  break a droplet (its processes die, the API still says active):");
        println!(
            "          curl -X POST {}/_sim/droplets/<DROPLET id from status>/hang",
            w.api_url
        );
        if let Some(dir) = &w.upstream_dir {
            println!("  publish a Mastodon release and watch the fleet roll to it:");
            println!(
                "          vmctl-testbed publish --dir {} v4.4.2 [--security] [--broken]",
                dir.display()
            );
            println!("          vmctl --socket {socket} release plan; vmctl --socket {socket} rollout status");
        }
        println!("  Ctrl-C tears everything down.");
    }
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
