//! A simulated DigitalOcean for end-to-end tests: the testbed's simulator in this process,
//! with a seed image carrying a marker file and a load balancer, and a cluster file whose pools
//! are managed by the controller.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use vmctl_testbed::cloud::{CloudConfig, Simulator, SimulatorThread};

/// The marker file every droplet built from the seed image carries.
pub const MARKER: &str = "etc/vmctl-e2e-marker";
/// Its content.
pub const MARKER_TEXT: &str = "from-the-seed-snapshot\n";

/// The simulator plus what the tests need to drive vmctld against it.
pub struct CloudWorld {
    /// The running simulator.
    pub sim: SimulatorThread,
    /// Its folder.
    pub dir: PathBuf,
    /// File with the API token (mode 0600), for `--do-token-file`.
    pub token_file: PathBuf,
    /// The seed image's id.
    pub image_id: u64,
    /// The load balancer's id.
    pub lb: String,
}

impl CloudWorld {
    /// Starts the simulator under `dir` with short action times.
    pub fn start(dir: &Path, authorized_key: &str) -> CloudWorld {
        Self::start_with_stubs(dir, authorized_key, None)
    }

    /// As [`CloudWorld::start`], with droplets whose sessions find the Mastodon stubs (bundle,
    /// yarn, rails, ...) in `stub_dir`.
    pub fn start_with_stubs(
        dir: &Path,
        authorized_key: &str,
        stub_dir: Option<PathBuf>,
    ) -> CloudWorld {
        use std::os::unix::fs::OpenOptionsExt;
        let token = format!("e2e-{}", std::process::id());
        let mut config = CloudConfig::new(dir.join("cloud"), authorized_key, &token);
        config.stub_dir = stub_dir;
        config.create_duration = Duration::from_millis(800);
        config.action_duration = Duration::from_millis(500);
        let sim = Simulator::start_blocking(config, "127.0.0.1:0".parse().unwrap())
            .expect("start the simulator");
        let token_file = dir.join("do-token");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&token_file)
            .unwrap();
        std::io::Write::write_all(&mut f, token.as_bytes()).unwrap();
        let seed = dir.join("seed/root");
        for sub in [
            "etc",
            "home/mastodon",
            "var/lib/vmctl/bin",
            "run/vmctl/services",
        ] {
            std::fs::create_dir_all(seed.join(sub)).unwrap();
        }
        std::fs::write(seed.join(MARKER), MARKER_TEXT).unwrap();
        std::fs::copy("/etc/os-release", seed.join("etc/os-release")).ok();
        let image_id = sim
            .register_snapshot_from_dir("e2e-base", &seed)
            .expect("seed image");
        let lb = sim.create_load_balancer("e2e-web", None);
        CloudWorld {
            sim,
            dir: dir.to_path_buf(),
            token_file,
            image_id,
            lb,
        }
    }

    /// The root-folder template of the simulator's droplets.
    pub fn root_template(&self) -> String {
        format!("{}/cloud/droplets/{{name}}/root", self.dir.display())
    }

    /// vmctld flags pointing it at this simulator.
    pub fn vmctld_args(&self) -> Vec<String> {
        vec![
            "--do-api-url".into(),
            self.sim.base_url(),
            "--do-token-file".into(),
            self.token_file.display().to_string(),
            "--resync".into(),
            "5s".into(),
        ]
    }

    /// Writes a cluster file with one managed pool `web` of `count` droplets behind the balancer.
    pub fn cluster_toml(&self, private_key: &Path, count: u32, extra_healing: &str) -> PathBuf {
        let text = format!(
            "name = \"e2e\"\nprobe_interval = \"1s\"\ncall_timeout = \"5s\"\nconnect_timeout = \"3s\"\n\n\
             [ssh]\nprivate_key = \"{key}\"\n\n[healing]\nretry_backoff = \"2s\"\n{extra_healing}\n\
             [pools.web]\nrole = \"web\"\n\n[pools.web.droplets]\ncount = {count}\nregion = \"nyc3\"\n\
             size = \"s-1vcpu-1gb\"\nimage = \"e2e-base\"\nload_balancer = \"{lb}\"\nstartup_grace = \"3s\"\n\
             failure_grace = \"5s\"\nroot = \"{root}\"\n",
            key = private_key.display(),
            lb = self.lb,
            root = self.root_template(),
        );
        let path = self.dir.join("cluster.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Live droplets (by the simulator's own account).
    pub fn droplet_ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.sim.droplets().into_iter().map(|d| d.id).collect();
        ids.sort_unstable();
        ids
    }

    /// The balancer's members, sorted.
    pub fn lb_members(&self) -> Vec<u64> {
        let mut m = self.sim.load_balancer_members(&self.lb);
        m.sort_unstable();
        m
    }

    /// How many droplet creates reached the simulator.
    pub fn creates(&self) -> usize {
        self.sim
            .request_log()
            .iter()
            .filter(|r| r.method == "POST" && r.path == "/v2/droplets" && r.status < 300)
            .count()
    }
}
