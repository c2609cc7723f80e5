//! Helpers for the cloud simulator's tests: start a simulator in a temp folder, call the
//! API with every answer checked against the official spec, and wait on conditions with a
//! deadline.

#![allow(dead_code)]

use std::future::Future;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use vmctl_testbed::cloud::spec_check::{spec_path, Spec};
use vmctl_testbed::cloud::{CloudConfig, Simulator};
use vmctl_testbed::generate_client_key;

/// How long a droplet may take to turn active in tests (create_duration is 200 ms; the
/// rest is sshd start-up on a busy 2-core box).
pub const ACTIVE_DEADLINE: Duration = Duration::from_secs(30);

/// The spec, parsed once per test binary (it is 3 MB).
pub fn spec() -> Arc<Spec> {
    static SPEC: OnceLock<Arc<Spec>> = OnceLock::new();
    Arc::clone(
        SPEC.get_or_init(|| {
            Arc::new(Spec::load(&spec_path()).expect("loading the DigitalOcean spec"))
        }),
    )
}

/// A simulator in a temp folder and a client for it.
pub struct World {
    pub sim: Simulator,
    pub api: Api,
    pub dir: tempfile::TempDir,
}

impl World {
    /// Starts a simulator with short durations; `adjust` may change the config first.
    pub async fn start(adjust: impl FnOnce(&mut CloudConfig)) -> World {
        let dir = tempfile::tempdir().unwrap();
        let (_private, public) =
            tokio::task::block_in_place(|| generate_client_key(&dir.path().join("client")))
                .unwrap();
        let mut config = CloudConfig::new(dir.path().join("cloud"), &public, "test-token");
        config.create_duration = Duration::from_millis(200);
        config.action_duration = Duration::from_millis(200);
        adjust(&mut config);
        let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let sim = Simulator::start(config, listen).await.unwrap();
        let api = Api::new(&sim.base_url(), Some(sim.token()));
        World { sim, api, dir }
    }

    /// Creates a droplet and returns its id.
    pub async fn create(&self, name: &str, image: Value, tags: &[&str]) -> u64 {
        let (status, body) = self
            .api
            .post(
                "/v2/droplets",
                json!({"name": name, "region": "nyc3", "size": "s-1vcpu-1gb",
                       "image": image, "tags": tags}),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        body["droplet"]["id"].as_u64().unwrap()
    }

    /// Polls the droplet until it is active and returns it.
    pub async fn wait_active(&self, id: u64) -> Value {
        let path = format!("/v2/droplets/{id}");
        wait_for("the droplet to turn active", ACTIVE_DEADLINE, || async {
            let (status, body) = self.api.get(&path).await;
            assert_eq!(status, 200, "{body}");
            (body["droplet"]["status"] == "active").then(|| body["droplet"].clone())
        })
        .await
    }

    /// Polls an action until it is done and returns it.
    pub async fn wait_action(&self, action_id: u64) -> Value {
        let path = format!("/v2/actions/{action_id}");
        wait_for("the action to finish", ACTIVE_DEADLINE, || async {
            let (status, body) = self.api.get(&path).await;
            assert_eq!(status, 200, "{body}");
            (body["action"]["status"] != "in-progress").then(|| body["action"].clone())
        })
        .await
    }

    /// Stops the simulator and kills its droplets.
    pub async fn stop(self) {
        self.sim.shutdown().await;
    }
}

/// An API client that checks every answer against the spec.
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
    token: Option<String>,
    spec: Arc<Spec>,
}

/// One answer: status, header names and values, and the JSON body (null when empty).
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Api {
    pub fn new(base: &str, token: Option<&str>) -> Api {
        Api {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            base: base.to_owned(),
            token: token.map(str::to_owned),
            spec: spec(),
        }
    }

    /// The same client without a token.
    pub fn without_token(&self) -> Api {
        Api {
            token: None,
            ..self.clone()
        }
    }

    /// Sends a request, checks the answer against the spec, and returns it.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let mut request = self.client.request(method.clone(), &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        let path_only = url
            .strip_prefix(&self.base)
            .unwrap_or(&url)
            .split('?')
            .next()
            .unwrap()
            .to_owned();
        let names: Vec<String> = headers.keys().map(|k| k.as_str().to_owned()).collect();
        if let Err(errors) = self
            .spec
            .check(method.as_str(), &path_only, status, &names, &bytes)
        {
            panic!(
                "answer does not match the spec:\n{}\nbody: {}",
                errors.join("\n"),
                String::from_utf8_lossy(&bytes)
            );
        }
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let answer = self.call(Method::GET, path, None).await;
        (answer.status, answer.body)
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let answer = self.call(Method::POST, path, Some(body)).await;
        (answer.status, answer.body)
    }

    pub async fn delete(&self, path: &str, body: Option<Value>) -> (u16, Value) {
        let answer = self.call(Method::DELETE, path, body).await;
        (answer.status, answer.body)
    }
}

/// Polls `probe` every 50 ms until it returns `Some`, or panics naming `what` after
/// `deadline`.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            started.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// True when something accepts TCP on `address:22`.
pub fn ssh_port_open(address: &str) -> bool {
    let socket: SocketAddr = format!("{address}:22").parse().unwrap();
    TcpStream::connect_timeout(&socket, Duration::from_secs(2)).is_ok()
}

/// The droplet's first public IPv4, if any.
pub fn ipv4(droplet: &Value) -> Option<String> {
    droplet["networks"]["v4"]
        .as_array()?
        .iter()
        .find(|n| n["type"] == "public")
        .and_then(|n| n["ip_address"].as_str())
        .map(str::to_owned)
}
