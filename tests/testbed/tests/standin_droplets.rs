//! The Mastodon stubs and service stand-ins on real droplets, over real ssh: sessions find
//! the stubs on PATH, every call is logged, fail files fail calls, and Puma, streaming and
//! Sidekiq stand-ins started in a checked-out release serve its version and health.
//! Needs root, /usr/sbin/sshd, the ssh client and git.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use rustix::process::{kill_process, Pid, Signal};
use support::{ssh, wait_until};
use vmctl_testbed::droplets::process_tree::is_alive;
use vmctl_testbed::standin::sidekiq::read_heartbeat;
use vmctl_testbed::standin::stubs::read_log;
use vmctl_testbed::upstream::Upstream;
use vmctl_testbed::{generate_client_key, stub_dir, Droplet, DropletFarm, FarmOptions};

const DEADLINE: Duration = Duration::from_secs(20);

struct World {
    key: std::path::PathBuf,
    farm: DropletFarm,
    upstream: Upstream,
    _dir: tempfile::TempDir,
}

fn start() -> World {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = generate_client_key(&dir.path().join("client")).unwrap();
    let stubs = stub_dir(
        &dir.path().join("stubs"),
        Path::new(env!("CARGO_BIN_EXE_vmctl-testbed")),
    )
    .unwrap();
    let upstream = Upstream::create(&dir.path().join("upstream")).unwrap();
    let farm = DropletFarm::start_with(
        &dir.path().join("farm"),
        &["web-1".to_owned()],
        &public,
        FarmOptions {
            stub_dir: Some(stubs),
        },
    )
    .unwrap();
    World {
        key,
        farm,
        upstream,
        _dir: dir,
    }
}

impl World {
    fn droplet(&self) -> &Droplet {
        self.farm.get("web-1").unwrap()
    }

    /// Runs `remote` on the droplet; returns (exit code, stdout, stderr).
    fn run(&self, remote: &str) -> (i32, String, String) {
        let output = ssh(&self.key, self.droplet(), None, remote)
            .output()
            .unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).trim().to_owned(),
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        )
    }

    fn run_ok(&self, remote: &str) -> String {
        let (code, out, err) = self.run(remote);
        assert_eq!(code, 0, "{remote}: {err}");
        out
    }

    /// Clones `tag` into `$VMCTL_ROOT/home/mastodon/releases/<tag>` with the real git.
    fn checkout(&self, tag: &str) {
        self.run_ok(&format!(
            "git -c advice.detachedHead=false clone --quiet --branch {tag} {} \
             \"$VMCTL_ROOT/home/mastodon/releases/{tag}\"",
            self.upstream.path().display()
        ));
    }

    /// Starts `command` detached in release `tag`; returns its PID.
    fn spawn_in(&self, tag: &str, env: &str, command: &str) -> i32 {
        let out = self.run_ok(&format!(
            "cd \"$VMCTL_ROOT/home/mastodon/releases/{tag}\" || exit 1; \
             {env} setsid {command} >>service.log 2>&1 </dev/null & echo $!"
        ));
        out.parse().unwrap()
    }
}

/// `GET path` with a bare HTTP/1.1 request; returns (status, headers and body text).
fn http_get(address: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    Some((status, text))
}

fn wait_for_http(address: SocketAddr, path: &str) -> (u16, String) {
    let mut answer = None;
    wait_until(&format!("{address}{path} answers"), DEADLINE, || {
        answer = http_get(address, path);
        answer.is_some()
    });
    answer.unwrap()
}

fn signal(pid: i32, signal: Signal) {
    kill_process(Pid::from_raw(pid).unwrap(), signal).unwrap();
}

fn stop(pid: i32) {
    signal(pid, Signal::Term);
    wait_until(&format!("{pid} exits"), DEADLINE, || !is_alive(pid));
}

#[test]
fn sessions_find_the_stubs_and_every_call_is_logged() {
    let world = start();
    let droplet = world.droplet();
    let env = world.run_ok(
        "echo $PATH; echo $VMCTL_TESTBED_ADDRESS; echo $VMCTL_PROBE_HOST; command -v git bundle",
    );
    let lines: Vec<&str> = env.lines().collect();
    assert!(
        lines[0].ends_with("/stubs:/usr/local/bin:/usr/bin:/bin"),
        "{env}"
    );
    assert_eq!(lines[1], droplet.address.to_string());
    assert_eq!(lines[2], droplet.address.to_string());
    assert!(
        !lines[3].contains("stubs"),
        "git must stay the real one: {env}"
    );
    assert!(lines[4].ends_with("/stubs/bundle"));

    world.run_ok("mkdir -p \"$VMCTL_ROOT/home/mastodon/r\" && cd \"$VMCTL_ROOT/home/mastodon/r\" && RAILS_ENV=production bundle install");
    let log = read_log(&droplet.root).unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].cmd, "bundle");
    assert_eq!(log[0].args, ["install"]);
    assert_eq!(Path::new(&log[0].cwd), droplet.root.join("home/mastodon/r"));
    assert_eq!(log[0].env["RAILS_ENV"].as_deref(), Some("production"));
    assert_eq!(log[0].env["SKIP_POST_DEPLOYMENT_MIGRATIONS"], None);

    let config = droplet.root.join("etc/vmctl-testbed");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("fail-bundle-install"),
        "Could not find gem 'x'\n",
    )
    .unwrap();
    let (code, _, stderr) = world.run("bundle install");
    assert_eq!(code, 1);
    assert!(stderr.contains("Could not find gem 'x'"), "{stderr}");
    // Only installs fail; other bundle calls still work, and the failed one is logged.
    world.run_ok("SKIP_POST_DEPLOYMENT_MIGRATIONS=true bundle exec rails db:migrate");
    std::fs::remove_file(config.join("fail-bundle-install")).unwrap();
    world.run_ok("rbenv install --skip-existing 3.4.1 && rbenv versions --bare | grep -qx 3.4.1");
    let log = read_log(&droplet.root).unwrap();
    let calls: Vec<(String, Vec<String>)> = log
        .iter()
        .map(|c| (c.cmd.clone(), c.args.clone()))
        .collect();
    let expected: Vec<(String, Vec<String>)> = [
        ("bundle", vec!["install"]),
        ("bundle", vec!["install"]),
        ("bundle", vec!["exec", "rails", "db:migrate"]),
        ("rbenv", vec!["install", "--skip-existing", "3.4.1"]),
        ("rbenv", vec!["versions", "--bare"]),
    ]
    .into_iter()
    .map(|(c, a)| (c.to_owned(), a.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(calls, expected);
    assert_eq!(
        log[2].env["SKIP_POST_DEPLOYMENT_MIGRATIONS"].as_deref(),
        Some("true")
    );
    assert!(log.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
}

#[test]
fn puma_and_streaming_stand_ins_serve_the_release_version_and_health() {
    let world = start();
    let address = world.droplet().address;
    world.checkout("v4.3.0");
    world.checkout("v4.4.1");

    world.run_ok("cd \"$VMCTL_ROOT/home/mastodon/releases/v4.3.0\" && bin/tootctl cache clear");
    let last = read_log(&world.droplet().root).unwrap().pop().unwrap();
    assert_eq!(
        (last.cmd.as_str(), last.args.clone()),
        ("tootctl", vec!["cache".to_owned(), "clear".to_owned()])
    );

    let good = world.spawn_in(
        "v4.3.0",
        "PORT=3000 RAILS_ENV=production",
        "bundle exec puma -C config/puma.rb",
    );
    let (status, text) = wait_for_http(SocketAddr::new(address.into(), 3000), "/health");
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("x-vmctl-standin-version: v4.3.0\r\n"),
        "{text}"
    );
    assert!(text.ends_with("\r\n\r\nOK"), "{text}");

    let broken = world.spawn_in("v4.4.1", "PORT=3001", "bundle exec puma -C config/puma.rb");
    let (status, text) = wait_for_http(SocketAddr::new(address.into(), 3001), "/health");
    assert_eq!(status, 503, "{text}");
    assert!(
        text.contains("x-vmctl-standin-version: v4.4.1\r\n"),
        "{text}"
    );

    let streaming = world.spawn_in("v4.3.0", "PORT=4000", "node ./streaming");
    let (status, text) = wait_for_http(
        SocketAddr::new(address.into(), 4000),
        "/api/v1/streaming/health",
    );
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("x-vmctl-standin-version: v4.3.0\r\n"));

    for pid in [good, broken, streaming] {
        stop(pid);
    }
}

#[test]
fn sidekiq_stand_in_beats_and_quiets_on_tstp() {
    let world = start();
    let root = world.droplet().root.clone();
    world.checkout("v4.3.0");
    let pid = world.spawn_in(
        "v4.3.0",
        "RAILS_ENV=production",
        "bundle exec sidekiq -c 5 -q default -q push,2",
    );
    let mut beat = None;
    wait_until("a heartbeat appears", DEADLINE, || {
        beat = read_heartbeat(&root);
        beat.is_some()
    });
    let beat = beat.unwrap();
    assert_eq!(beat.version, "v4.3.0");
    assert_eq!(beat.queues, ["default", "push"]);
    assert_eq!(i32::try_from(beat.pid).unwrap(), pid);
    assert!(!beat.quiet);
    wait_until("the heartbeat is refreshed", DEADLINE, || {
        read_heartbeat(&root).is_some_and(|b| b.at_ms > beat.at_ms)
    });

    signal(pid, Signal::Tstp);
    wait_until("the heartbeat turns quiet", DEADLINE, || {
        read_heartbeat(&root).is_some_and(|b| b.quiet)
    });
    assert!(is_alive(pid), "TSTP quiets, it does not stop");
    stop(pid);
}

#[test]
fn farm_teardown_kills_detached_stand_ins() {
    let mut world = start();
    world.checkout("v4.3.0");
    let pid = world.spawn_in("v4.3.0", "PORT=3002", "bundle exec puma");
    wait_for_http(
        SocketAddr::new(world.droplet().address.into(), 3002),
        "/health",
    );
    world.farm.teardown();
    wait_until("the stand-in dies with its droplet", DEADLINE, || {
        !is_alive(pid)
    });
}
