//! The one error type of the droplet farm: each variant names the step that failed and
//! the droplet or path it failed for.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

/// Why a droplet-farm operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    /// A folder could not be created.
    #[error("creating folder {path}")]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("writing {path}")]
    WriteFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be read.
    #[error("reading {path}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A folder could not be deleted.
    #[error("removing folder {path}")]
    RemoveDir {
        /// The folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `ssh-keygen` could not be run or failed.
    #[error("generating key {path} with ssh-keygen: {detail}")]
    Keygen {
        /// The private key path asked for.
        path: PathBuf,
        /// Exit status and stderr, or the spawn error.
        detail: String,
    },
    /// A public key file did not hold `<type> <base64>`.
    #[error("public key {path} is malformed")]
    MalformedPublicKey {
        /// The `.pub` file.
        path: PathBuf,
    },
    /// The authorised key given to the farm is not one OpenSSH public key line.
    #[error("authorized key must be one OpenSSH public key line, got {line_count} lines")]
    InvalidAuthorizedKey {
        /// How many non-empty lines it had.
        line_count: usize,
    },
    /// `sshd` could not be spawned.
    #[error("spawning sshd for droplet {name}")]
    SpawnSshd {
        /// The droplet.
        name: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `sshd` exited before it accepted connections, for a reason other than a taken address.
    #[error("sshd for droplet {name} on {address}:22 exited with {status}; sshd.log ends with:\n{log_tail}")]
    SshdExited {
        /// The droplet.
        name: String,
        /// Its address.
        address: Ipv4Addr,
        /// The exit status.
        status: String,
        /// The last lines of its sshd.log.
        log_tail: String,
    },
    /// `sshd` did not listen within the deadline.
    #[error("sshd for droplet {name} on {address}:22 not listening after {waited:?}; sshd.log ends with:\n{log_tail}")]
    SshdNotReady {
        /// The droplet.
        name: String,
        /// Its address.
        address: Ipv4Addr,
        /// How long we waited.
        waited: Duration,
        /// The last lines of its sshd.log.
        log_tail: String,
    },
    /// Binding port 22 to test an address failed for a reason other than it being taken
    /// (most often: not running as root).
    #[error("probing a loopback address on port 22 for droplet {name}")]
    ProbeAddress {
        /// The droplet.
        name: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Every address tried was taken (by another test process, most likely).
    #[error("no free loopback address for droplet {name} after {tries} tries")]
    AddressesExhausted {
        /// The droplet.
        name: String,
        /// How many addresses were tried.
        tries: usize,
    },
    /// A droplet's sshd must be stopped for this, and it is running.
    #[error("sshd of droplet {name} is already running")]
    SshdAlreadyRunning {
        /// The droplet.
        name: String,
    },
    /// The address a stopped droplet owns is now taken by someone else.
    #[error("address {address}:22 of droplet {name} is taken by another process")]
    AddressTaken {
        /// The droplet.
        name: String,
        /// Its address.
        address: Ipv4Addr,
    },
    /// No droplet of that name is in the farm.
    #[error("no droplet named {name}")]
    UnknownDroplet {
        /// The name asked for.
        name: String,
    },
    /// A droplet of that name is already in the farm.
    #[error("droplet {name} already exists")]
    DuplicateDroplet {
        /// The name.
        name: String,
    },
    /// A droplet name that cannot be a folder name.
    #[error("invalid droplet name {name:?}: use letters, digits, '-', '_' and '.'")]
    InvalidName {
        /// The name.
        name: String,
    },
    /// A signal could not be sent.
    #[error("sending {signal} to pid {pid}")]
    Kill {
        /// The process.
        pid: i32,
        /// The signal's name.
        signal: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Reaping the sshd we spawned failed.
    #[error("waiting for sshd pid {pid} to exit")]
    Reap {
        /// The sshd.
        pid: u32,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A worker thread of the parallel start panicked.
    #[error("a droplet start thread panicked")]
    StartThreadPanicked,
    /// A manifest could not be encoded as JSON.
    #[error("encoding manifest {path}")]
    EncodeManifest {
        /// The file it was for.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A manifest could not be parsed.
    #[error("parsing manifest {path}")]
    ParseManifest {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}
