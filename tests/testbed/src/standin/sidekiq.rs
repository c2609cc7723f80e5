//! The Sidekiq stand-in (what `bundle exec sidekiq ...` becomes): writes a heartbeat JSON
//! file, `$VMCTL_ROOT/run/vmctl/sidekiq-heartbeat`, every 500 ms; SIGTSTP quiets it (as it
//! quiets Sidekiq), SIGTERM or SIGINT stops it.

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use signal_hook::consts::{SIGINT, SIGTERM, SIGTSTP};
use signal_hook::iterator::Signals;

use super::web::release_info;

/// The heartbeat file, under the droplet root.
pub const HEARTBEAT_FILE: &str = "run/vmctl/sidekiq-heartbeat";
/// How often the heartbeat is written.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(500);

/// Sidekiq's command line, as far as the stand-in cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidekiqArgs {
    /// `-c`.
    pub concurrency: u32,
    /// `-q` in order, weights dropped; `default` when none.
    pub queues: Vec<String>,
}

/// Reads `-c N`, `-q name[,weight]` (also `--concurrency`, `--queue`); ignores the rest.
///
/// # Errors
/// A flag without its value, or a concurrency that is not a number.
pub fn parse_args(args: &[String]) -> Result<SidekiqArgs, String> {
    let mut parsed = SidekiqArgs {
        concurrency: 5,
        queues: Vec::new(),
    };
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "-c" | "--concurrency" => {
                let value = iter.next().ok_or("-c needs a number")?;
                parsed.concurrency = value
                    .parse()
                    .map_err(|_| format!("-c {value:?} is not a number"))?;
            }
            "-q" | "--queue" => {
                let value = iter.next().ok_or("-q needs a queue name")?;
                let name = value.split(',').next().unwrap_or(value);
                parsed.queues.push(name.to_owned());
            }
            _ => {}
        }
    }
    if parsed.queues.is_empty() {
        parsed.queues.push("default".to_owned());
    }
    Ok(parsed)
}

/// The heartbeat file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The release's `VERSION`.
    pub version: String,
    /// The queues it works.
    pub queues: Vec<String>,
    /// Its process id.
    pub pid: u32,
    /// True after SIGTSTP: it takes no new jobs.
    pub quiet: bool,
    /// Its thread count.
    pub concurrency: u32,
    /// When this beat was written (ms since the epoch).
    pub at_ms: u64,
}

/// Reads a droplet's heartbeat, if there is a readable one.
pub fn read_heartbeat(root: &Path) -> Option<Heartbeat> {
    let text = std::fs::read_to_string(root.join(HEARTBEAT_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

fn write_heartbeat(root: &Path, beat: &Heartbeat) -> std::io::Result<()> {
    let path = root.join(HEARTBEAT_FILE);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    // Renamed into place, so a reader never sees half a beat.
    let temp = path.with_extension(format!("tmp.{}", beat.pid));
    std::fs::write(&temp, serde_json::to_vec(beat)?)?;
    std::fs::rename(&temp, &path)
}

/// Beats until SIGTERM; returns the exit code.
pub fn run(root: &Path, args: &[String]) -> i32 {
    let parsed = match parse_args(args) {
        Ok(parsed) => parsed,
        Err(error) => {
            eprintln!("sidekiq (vmctl-testbed stand-in): {error}");
            return 1;
        }
    };
    let mut signals = match Signals::new([SIGTERM, SIGINT, SIGTSTP]) {
        Ok(signals) => signals,
        Err(error) => {
            eprintln!("sidekiq (vmctl-testbed stand-in): installing signal handlers: {error}");
            return 1;
        }
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for signal in signals.forever() {
            if tx.send(signal).is_err() {
                break;
            }
        }
    });
    let cwd = std::env::current_dir().unwrap_or_default();
    let mut beat = Heartbeat {
        version: release_info(&cwd).version,
        queues: parsed.queues,
        pid: std::process::id(),
        quiet: false,
        concurrency: parsed.concurrency,
        at_ms: 0,
    };
    println!(
        "Booting Sidekiq (stand-in) {} with queues {:?}",
        beat.version, beat.queues
    );
    loop {
        beat.at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        if let Err(error) = write_heartbeat(root, &beat) {
            eprintln!("sidekiq (vmctl-testbed stand-in): writing the heartbeat: {error}");
        }
        match rx.recv_timeout(HEARTBEAT_INTERVAL) {
            Ok(SIGTSTP) => {
                println!("Received TSTP, no longer accepting new work");
                beat.quiet = true;
            }
            Ok(_) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                println!("Shutting down");
                return 0;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn queues_and_concurrency_are_read() {
        assert_eq!(
            parse_args(&args("-c 5 -q default -q push,2 --queue pull")).unwrap(),
            SidekiqArgs {
                concurrency: 5,
                queues: vec!["default".into(), "push".into(), "pull".into()]
            }
        );
        assert_eq!(parse_args(&[]).unwrap().queues, ["default"]);
        assert!(parse_args(&args("-c x")).is_err());
        assert!(parse_args(&args("-q")).is_err());
    }
}
