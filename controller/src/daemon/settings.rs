//! `vmctld`'s command line. Parsed once in `main`; nothing below it reads the environment.

use std::{net::SocketAddr, num::NonZeroUsize, path::PathBuf, time::Duration};

use clap::Parser;

/// vmctld: keeps a Mastodon fleet on DigitalOcean running, current and healthy.
#[derive(Debug, Clone, Parser)]
#[command(name = "vmctld", version, about)]
pub struct Settings {
    /// Folder for the store, the API socket and the API token.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Unix socket for the API (mode 0600). Default: DATA/vmctld.sock.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Also serve the API on this TCP address, behind a bearer token.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// File holding the bearer token for --listen. Default: DATA/api-token, created (0600) if
    /// missing.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// The vmctl-agent binary to install on droplets. Default: next to this vmctld.
    #[arg(long, value_name = "PATH")]
    pub agent_binary: Option<PathBuf>,
    /// Most reconciles running at once.
    #[arg(long, default_value = "16")]
    pub concurrency: NonZeroUsize,
    /// Period of the full resync that visits every object.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub resync: Duration,
    /// DigitalOcean API base URL; any DigitalOcean-compatible endpoint works.
    #[arg(long, value_name = "URL", default_value = crate::cloud::DEFAULT_BASE_URL)]
    pub do_api_url: String,
    /// File holding the DigitalOcean API token (else the DIGITALOCEAN_TOKEN environment
    /// variable). Without a token, pools with [droplets] are not managed.
    #[arg(long, value_name = "FILE")]
    pub do_token_file: Option<PathBuf>,
    /// The DigitalOcean token from the environment; set by `main`, never a flag.
    #[arg(skip)]
    pub do_token_env: Option<String>,
    /// File holding a GitHub token for the releases feed (else GITHUB_TOKEN); optional, it only
    /// raises GitHub's rate limit.
    #[arg(long, value_name = "FILE")]
    pub github_token_file: Option<PathBuf>,
    /// The GitHub token from the environment; set by `main`, never a flag.
    #[arg(skip)]
    pub github_token_env: Option<String>,
    /// Dev mode: start the simulated world (vmctl-testbed) with a default fleet and run
    /// against it.
    #[arg(long)]
    pub dev: bool,
    /// Dev mode fleet, as pool=count pairs.
    #[arg(
        long,
        default_value = "web=2,streaming=1,sidekiq=2,exec=1",
        requires = "dev"
    )]
    pub dev_pools: String,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    vmctl_protocol::duration::parse(text)
}

/// Default data folder outside dev mode.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/vmctl";

impl Settings {
    /// The data folder: `--data`, else the default.
    pub fn data_dir(&self) -> PathBuf {
        self.data
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
    }

    /// The API socket path.
    pub fn socket_path(&self, data: &std::path::Path) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| data.join("vmctld.sock"))
    }
}
