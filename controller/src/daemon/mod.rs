//! `vmctld`'s process: opens the store, starts the API, the triggers and the work queue, and
//! shuts them down in order on SIGTERM or Ctrl-C.

pub mod dev;
pub mod fleet_events;
pub mod settings;
mod token;
mod triggers;

use std::{path::Path, sync::Arc};

use anyhow::Context as _;
use tokio::sync::{mpsc, watch};
use vmctl_state::Store;

pub use settings::Settings;

use crate::{
    api::{self, ApiState, BearerToken},
    fleet::AgentBinary,
    queue::{self, ObjectKey, QueueConfig},
    reconcilers::{self, cluster::FleetSlot, Ctx},
    retry::Backoff,
};

/// Reconcile retry backoff: quick first retry, capped so a broken object is retried every
/// couple of minutes at worst.
const RECONCILE_BACKOFF: Backoff = Backoff::new_unchecked(
    std::time::Duration::from_millis(500),
    std::time::Duration::from_secs(120),
    0.2,
);

/// A running controller, as returned by [`start`].
pub struct Controller {
    /// The store it uses.
    pub store: Store,
    /// The API socket path.
    pub socket: std::path::PathBuf,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    ctx: Arc<Ctx>,
}

/// Starts the controller: store, API listeners, triggers and the work queue.
///
/// # Errors
/// When the store cannot be opened, the socket is taken, or the agent binary is missing.
pub async fn start(settings: &Settings, data: &Path) -> anyhow::Result<Controller> {
    std::fs::create_dir_all(data)
        .with_context(|| format!("cannot create data folder {}", data.display()))?;
    restrict_dir(data)?;
    let store = Store::open(&data.join("store"))
        .with_context(|| format!("cannot open the store in {}", data.display()))?;
    let agent_path = match &settings.agent_binary {
        Some(p) => p.clone(),
        None => sibling_binary("vmctl-agent")?,
    };
    let agent = AgentBinary::load(&agent_path).map_err(|e| {
        anyhow::anyhow!("cannot read the agent binary {}: {e}", agent_path.display())
    })?;

    let (stop, stop_rx) = watch::channel(false);
    let (queue, queue_rx) = queue::channel();
    let (fleet_tx, fleet_rx) = mpsc::unbounded_channel();
    let cloud = cloud_client(settings)?;
    let ctx = Arc::new(Ctx {
        store: store.clone(),
        queue: queue.clone(),
        fleet: FleetSlot::new(fleet_tx),
        agent,
        cloud,
        droplets: Default::default(),
        upstream: reconcilers::release::UpstreamSlot::with_token(github_token(settings)?),
    });
    let mut tasks = Vec::new();

    let socket = settings.socket_path(data);
    let forget_ctx = ctx.clone();
    let wake_queue = queue.clone();
    let api_state = ApiState {
        store: store.clone(),
        on_wake: Arc::new(move |key| wake_queue.enqueue(key, "operator command")),
        on_forget_hostkey: Arc::new(move |node: &str| {
            if let Some(f) = forget_ctx.fleet.current() {
                f.reconnect(node);
            }
            forget_ctx
                .queue
                .enqueue(reconcilers::node::key(node), "host key forgotten");
        }),
        on_snapshot_request: {
            let ctx = ctx.clone();
            Arc::new(move |pool: &str| reconcilers::snapshot::request(&ctx, pool))
        },
    };
    let listener = api::bind_unix(&socket).await?;
    let router = api::router(api_state);
    tasks.push(tokio::spawn({
        let (router, shutdown) = (router.clone(), stopped(stop_rx.clone()));
        async move {
            if let Err(e) = api::serve_unix(listener, router, shutdown).await {
                tracing::error!(error = %e, "API server on the unix socket failed");
            }
        }
    }));
    if let Some(addr) = settings.listen {
        let token_path = settings
            .token_file
            .clone()
            .unwrap_or_else(|| data.join("api-token"));
        let token = BearerToken::new(&token::load_or_create(&token_path)?);
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        tracing::info!(%addr, token_file = %token_path.display(), "Serving the API on TCP behind a bearer token");
        let shutdown = stopped(stop_rx.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = api::serve_tcp(tcp, router, token, shutdown).await {
                tracing::error!(error = %e, "API server on TCP failed");
            }
        }));
    }

    tasks.extend(triggers::spawn(ctx.clone(), fleet_rx, stop_rx.clone()));

    let config = QueueConfig {
        concurrency: settings.concurrency,
        backoff: RECONCILE_BACKOFF,
        resync: Some(settings.resync),
        max_delay: std::time::Duration::from_secs(3600),
    };
    let run_ctx = ctx.clone();
    let list_store = store.clone();
    let shutdown = stopped(stop_rx.clone());
    tasks.push(tokio::spawn(async move {
        queue::run(
            queue_rx,
            config,
            move || reconcilers::all_keys(&list_store).unwrap_or_default(),
            move |key: ObjectKey, rc| reconcilers::reconcile(run_ctx.clone(), key, rc),
            shutdown,
        )
        .await;
    }));
    for key in reconcilers::all_keys(&store)? {
        queue.enqueue(key, "startup");
    }
    tracing::info!(socket = %socket.display(), data = %data.display(), "Controller started");
    Ok(Controller {
        store,
        socket,
        stop,
        tasks,
        ctx,
    })
}

impl Controller {
    /// Stops taking work, lets in-flight reconciles finish, closes every session and the API.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(30), t).await;
        }
        self.ctx.fleet.clear();
        // Let the background fleet shutdown close its sessions before the runtime goes away.
        tokio::task::yield_now().await;
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// The optional GitHub token: `--github-token-file`, else `GITHUB_TOKEN`.
fn github_token(settings: &Settings) -> anyhow::Result<Option<crate::upstream::GithubToken>> {
    let text = match &settings.github_token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the GitHub token file {}", path.display()))?,
        ),
        None => settings.github_token_env.clone(),
    };
    match text {
        None => Ok(None),
        Some(t) => crate::upstream::GithubToken::new(&t)
            .map(Some)
            .ok_or_else(|| anyhow::anyhow!("the GitHub token is empty or malformed")),
    }
}

/// The DigitalOcean client, when a token is configured. The token is never logged.
fn cloud_client(settings: &Settings) -> anyhow::Result<Option<Arc<dyn crate::cloud::Cloud>>> {
    use crate::cloud::{CloudConfig, CloudToken, DoClient, TokenError};
    let token = match CloudToken::load(
        settings.do_token_env.as_deref(),
        settings.do_token_file.as_deref(),
    ) {
        Ok(t) => t,
        Err(TokenError::Missing) => {
            tracing::info!("No DigitalOcean token (DIGITALOCEAN_TOKEN or --do-token-file): pools with [droplets] are not managed");
            return Ok(None);
        }
        Err(e) => return Err(anyhow::Error::from(e).context("cannot load the DigitalOcean token")),
    };
    let mut config = CloudConfig::new(token);
    config.base_url = settings.do_api_url.clone();
    let client = DoClient::new(config).context("cannot set up the DigitalOcean client")?;
    tracing::info!(api = %settings.do_api_url, "DigitalOcean API configured");
    Ok(Some(Arc::new(client)))
}

/// Resolves once `stop` turns true.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Resolves on SIGTERM or SIGINT.
///
/// # Errors
/// When the signal handlers cannot be installed.
pub async fn termination() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
        r = tokio::signal::ctrl_c() => { r?; tracing::info!("Interrupt received, shutting down") }
    }
    Ok(())
}

/// The path of a binary installed next to this one (as `cargo build` and packages lay them out).
///
/// # Errors
/// When it is not there.
pub fn sibling_binary(name: &str) -> anyhow::Result<std::path::PathBuf> {
    let exe = std::env::current_exe().context("cannot find this executable's path")?;
    let path = exe.with_file_name(name);
    if path.is_file() {
        Ok(path)
    } else {
        anyhow::bail!(
            "{name} not found at {} (build every binary with `cargo build --workspace --bins`)",
            path.display()
        )
    }
}

fn restrict_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot restrict permissions of {}", dir.display()))
}
