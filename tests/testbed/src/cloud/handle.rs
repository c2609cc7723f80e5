//! The Rust-side handles: [`Simulator`] starts the server and lets tests and dev mode
//! inject faults, kill droplets and read what happened; [`SimulatorThread`] runs one on a
//! runtime thread of its own for sync callers and the binary.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::Utc;

use super::faults::{FaultState, Faults};
use super::rate_limit::RateLimiter;
use super::state::{DropletStatus, ImageKind, ImageRecord, KeyRecord, LoadBalancerRecord, World};
use super::{disk, ids, lock, routes, shapes};
use super::{CloudConfig, CloudError, LoggedRequest, Shared, SimDroplet};
use crate::droplets::{DropletFarm, FarmOptions, TestbedError};

/// A running simulator; a cheap handle (clones share it).
#[derive(Debug, Clone)]
pub struct Simulator {
    pub(crate) shared: Arc<Shared>,
}

impl Simulator {
    /// Starts the droplet farm and the HTTP server on `listen` (e.g. `127.0.0.1:0`), as a
    /// task on the current tokio runtime. Call [`Simulator::shutdown`] to stop it and kill
    /// its droplets (dropping the runtime also kills them, when the farm is dropped).
    ///
    /// # Errors
    /// The farm could not start (bad key, not root) or the address could not be bound.
    pub async fn start(config: CloudConfig, listen: SocketAddr) -> Result<Simulator, CloudError> {
        let farm_dir = config.dir.join("droplets");
        let key = config.authorized_key.clone();
        let dir = farm_dir.clone();
        let options = FarmOptions {
            stub_dir: config.stub_dir.clone(),
        };
        let farm =
            tokio::task::spawn_blocking(move || DropletFarm::start_with(&dir, &[], &key, options))
                .await
                .map_err(|_| CloudError::RuntimeGone)?
                .map_err(|source| CloudError::StartFarm {
                    dir: farm_dir,
                    source,
                })?;
        let snapshots = config.dir.join("snapshots");
        std::fs::create_dir_all(&snapshots).map_err(|source| CloudError::StartFarm {
            dir: snapshots,
            source: TestbedError::CreateDir {
                path: config.dir.join("snapshots"),
                source,
            },
        })?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| CloudError::Bind { listen, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| CloudError::Bind { listen, source })?;
        let mut world = World::new(&config.region, Utc::now());
        let key_id = world.ids.key();
        world.keys.insert(
            key_id,
            KeyRecord {
                id: key_id,
                name: "vmctl-testbed".into(),
                public_key: config.authorized_key.trim().to_owned(),
                fingerprint: routes::account::fingerprint(&config.authorized_key),
            },
        );
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let shared = Arc::new(Shared {
            base_url: format!("http://{local}"),
            world: Mutex::new(world),
            farm: Arc::new(Mutex::new(farm)),
            faults: Mutex::new(FaultState::default()),
            limiter: Mutex::new(RateLimiter::new(
                config.rate_limit_per_minute,
                config.rate_limit_per_hour,
            )),
            log: Mutex::new(Vec::new()),
            stop,
            config,
        });
        let app = routes::router(Arc::clone(&shared));
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            if let Err(error) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::warn!(%error, "The cloud simulator's server failed.");
            }
        });
        tracing::info!(address = %local, "Cloud simulator listening.");
        Ok(Simulator { shared })
    }

    /// Starts a simulator on a runtime thread of its own; dropping the returned handle
    /// stops it and kills its droplets.
    ///
    /// # Errors
    /// As [`Simulator::start`], or the thread could not start.
    pub fn start_blocking(
        config: CloudConfig,
        listen: SocketAddr,
    ) -> Result<SimulatorThread, CloudError> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("cloud-simulator".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(CloudError::Runtime(e)));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match Simulator::start(config, listen).await {
                        Ok(simulator) => {
                            let _ = ready_tx.send(Ok(simulator.clone()));
                            // A dropped sender (the handle's Drop) also stops us.
                            let _ = stop_rx.await;
                            simulator.shutdown().await;
                        }
                        Err(error) => {
                            let _ = ready_tx.send(Err(error));
                        }
                    }
                });
            })
            .map_err(CloudError::Runtime)?;
        let simulator = ready_rx.recv().map_err(|_| CloudError::RuntimeGone)??;
        Ok(SimulatorThread {
            simulator,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// Stops the server and kills every droplet. Safe to call more than once.
    pub async fn shutdown(&self) {
        let _ = self.shared.stop.send(true);
        let farm = Arc::clone(&self.shared.farm);
        let _ = tokio::task::spawn_blocking(move || lock(&farm).teardown()).await;
    }

    /// `http://127.0.0.1:PORT`; the API lives under `/v2`.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The bearer token the API expects.
    pub fn token(&self) -> &str {
        &self.shared.config.token
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &CloudConfig {
        &self.shared.config
    }

    /// Replaces the fault knobs (and reseeds their RNG).
    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.shared.faults) = FaultState::new(faults);
    }

    /// The current fault knobs.
    pub fn faults(&self) -> Faults {
        lock(&self.shared.faults).faults().clone()
    }

    /// Kills the droplet's sshd and every process under it while the API still says
    /// "active": a hung droplet. Blocks while the farm works.
    ///
    /// # Errors
    /// Unknown or not yet provisioned droplet, or the kill failed.
    pub fn hang_droplet(&self, id: u64) -> Result<(), CloudError> {
        let name = self.farm_name(id)?;
        lock(&self.shared.farm)
            .kill_sshd(&name)
            .map_err(|source| CloudError::Farm {
                op: "killing sshd",
                id,
                source,
            })
    }

    /// Starts a hung droplet's sshd again (same address and host key).
    ///
    /// # Errors
    /// Unknown or not provisioned droplet, or sshd did not start.
    pub fn revive_droplet(&self, id: u64) -> Result<(), CloudError> {
        let name = self.farm_name(id)?;
        let mut farm = lock(&self.shared.farm);
        if farm.get(&name).is_some_and(crate::Droplet::is_running) {
            return Ok(());
        }
        farm.start_sshd(&name).map_err(|source| CloudError::Farm {
            op: "starting sshd",
            id,
            source,
        })
    }

    /// Powers the droplet off behind the API's back: status "off", processes killed.
    ///
    /// # Errors
    /// Unknown or not provisioned droplet, or the kill failed.
    pub fn power_off(&self, id: u64) -> Result<(), CloudError> {
        self.hang_droplet(id)?;
        if let Some(droplet) = lock(&self.shared.world).droplets.get_mut(&id) {
            droplet.status = DropletStatus::Off;
        }
        Ok(())
    }

    fn farm_name(&self, id: u64) -> Result<String, CloudError> {
        let world = lock(&self.shared.world);
        let droplet = world
            .droplets
            .get(&id)
            .ok_or(CloudError::UnknownDroplet { id })?;
        if !droplet.provisioned {
            return Err(CloudError::NotProvisioned { id });
        }
        Ok(droplet.farm_name.clone())
    }

    /// Every live droplet, by id.
    pub fn droplets(&self) -> Vec<SimDroplet> {
        lock(&self.shared.world)
            .droplets
            .values()
            .map(|d| SimDroplet {
                id: d.id,
                name: d.name.clone(),
                status: d.status.as_str().to_owned(),
                tags: d.tags.clone(),
                address: d.address,
                root: d.root.clone(),
                host_key_public: d.host_key_public.clone(),
                image_id: d.image.id,
                created_at: d.created_at,
                error: d.error.clone(),
            })
            .collect()
    }

    /// The droplet ids a balancer sends traffic to (empty for an unknown balancer).
    pub fn load_balancer_members(&self, lb_id: &str) -> Vec<u64> {
        let world = lock(&self.shared.world);
        world
            .load_balancers
            .get(lb_id)
            .map(|lb| world.members(lb))
            .unwrap_or_default()
    }

    /// Every `/v2` request answered so far, oldest first.
    pub fn request_log(&self) -> Vec<LoggedRequest> {
        lock(&self.shared.log).clone()
    }

    /// Creates a balancer (HTTP on port 80 to 80) with members chosen by `tag`, or none;
    /// returns its id.
    pub fn create_load_balancer(&self, name: &str, tag: Option<&str>) -> String {
        let id = ids::uuid();
        let record = LoadBalancerRecord {
            id: id.clone(),
            name: name.to_owned(),
            region: self.shared.config.region.clone(),
            created_at: Utc::now(),
            forwarding_rules: serde_json::json!([{
                "entry_protocol": "http", "entry_port": 80,
                "target_protocol": "http", "target_port": 80,
            }]),
            health_check: shapes::default_health_check(),
            droplet_ids: Vec::new(),
            tag: tag.map(str::to_owned),
            ip: routes::load_balancers::made_up_ip(),
        };
        lock(&self.shared.world)
            .load_balancers
            .insert(id.clone(), record);
        id
    }

    /// Stores a copy of `dir` as a snapshot named `name` (as if taken of a droplet) and
    /// returns its id, so droplets can be created from a prepared root. Blocks while copying.
    ///
    /// # Errors
    /// The copy failed.
    pub fn register_snapshot_from_dir(&self, name: &str, dir: &Path) -> Result<u64, CloudError> {
        let id = lock(&self.shared.world).ids.image();
        let root = self.shared.snapshot_dir(id).join("root");
        disk::copy_tree(dir, &root).map_err(|source| CloudError::Copy {
            from: dir.to_path_buf(),
            to: root.clone(),
            source,
        })?;
        let record = ImageRecord {
            id,
            name: name.to_owned(),
            kind: ImageKind::Snapshot,
            slug: None,
            distribution: "Debian".into(),
            created_at: Utc::now(),
            resource_id: None,
            root: Some(root),
            regions: vec![self.shared.config.region.clone()],
            tags: Vec::new(),
        };
        lock(&self.shared.world).images.insert(id, record);
        Ok(id)
    }
}

/// A simulator on its own runtime thread. Derefs to [`Simulator`]; dropping it stops the
/// server and kills every droplet.
#[derive(Debug)]
pub struct SimulatorThread {
    simulator: Simulator,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::ops::Deref for SimulatorThread {
    type Target = Simulator;

    fn deref(&self) -> &Simulator {
        &self.simulator
    }
}

impl Drop for SimulatorThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // In case the runtime went away before its shutdown ran.
        lock(&self.simulator.shared.farm).teardown();
    }
}
