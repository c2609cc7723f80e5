//! The value rules of cluster.toml, as pure functions from one value to `Ok` or the message
//! an operator reads. Cross-field rules (unique names, pool references, the one scheduler)
//! live in `validate.rs`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use vmctl_protocol::pool::PoolRole;

/// Sidekiq queues a pool may list. Mastodon's own queue names; a typo would otherwise leave a
/// queue with no worker and nothing to say so.
pub const KNOWN_QUEUES: [&str; 6] = ["default", "ingress", "push", "pull", "mailers", "scheduler"];

/// The queue exactly one Sidekiq process in the fleet may run (DESIGN.md, "exec").
pub const SCHEDULER_QUEUE: &str = "scheduler";

const ROLES: [PoolRole; 6] = [
    PoolRole::Proxy,
    PoolRole::Web,
    PoolRole::Streaming,
    PoolRole::Sidekiq,
    PoolRole::Exec,
    PoolRole::Search,
];

/// Cluster, pool and node names: DNS labels, because they end up in hostnames and droplet
/// names.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if is_dns_label(name) && !name.bytes().any(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid name: use 1-63 lowercase letters, digits and '-', \
             starting and ending with a letter or digit"
        ))
    }
}

fn is_dns_label(label: &str) -> bool {
    (1..=63).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// A node address: an IPv4 or IPv6 literal, or a DNS hostname.
pub(crate) fn check_address(address: &str) -> Result<(), String> {
    if address.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if address.parse::<SocketAddr>().is_ok() {
        return Err(format!(
            "{address:?} includes a port; give the bare address and set `port`"
        ));
    }
    let labels: Vec<&str> = address.split('.').collect();
    let last_is_numeric = labels
        .last()
        .is_some_and(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()));
    // A numeric last label means an attempted IPv4 literal (`10.0.0.999`), not a hostname.
    if address.len() <= 253 && labels.iter().all(|l| is_dns_label(l)) && !last_is_numeric {
        Ok(())
    } else {
        Err(format!(
            "{address:?} is neither an IP address nor a DNS hostname"
        ))
    }
}

/// SSH ports are 1-65535; the file holds a wider integer so the message can say so.
pub(crate) fn check_port(port: i64) -> Result<u16, String> {
    match u16::try_from(port) {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(format!("must be between 1 and 65535, got {port}")),
    }
}

/// The agent root. It is joined into paths on the droplet and passed on the `vmctl-agent`
/// command line, so anything a shell or a path join could reinterpret is refused.
pub(crate) fn check_root(root: &str) -> Result<(), String> {
    if !root.starts_with('/') {
        return Err(format!("{root:?} must be an absolute path"));
    }
    if root.split('/').any(|part| part == "..") {
        return Err(format!("{root:?} must not contain '..'"));
    }
    if let Some(c) = root.chars().find(|&c| !is_plain_path_char(c)) {
        return Err(format!(
            "{root:?} must not contain {c:?}: only letters, digits and / . _ - + @ , : = \
             are allowed (no whitespace, quotes or shell metacharacters)"
        ));
    }
    Ok(())
}

fn is_plain_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "/._-+@,:=".contains(c)
}

/// The SSH login user: a POSIX-portable user name.
pub(crate) fn check_user(user: &str) -> Result<(), String> {
    let mut bytes = user.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    let rest_ok =
        bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if first_ok && rest_ok && user.len() <= 32 {
        Ok(())
    } else {
        Err(format!(
            "{user:?} is not a valid user name: lowercase letters, digits, '_' and '-', \
             starting with a letter or '_'"
        ))
    }
}

/// The private key path is read by vmctld, whose working directory is not the operator's, so
/// only absolute paths mean the same thing on both sides.
pub(crate) fn check_private_key(path: &str) -> Result<(), String> {
    if path.starts_with('/') {
        Ok(())
    } else {
        Err(format!(
            "{path:?} must be an absolute path (vmctld reads it from its own working directory)"
        ))
    }
}

/// Probe and timeout settings: `500ms`, `5s`, `2m`, `1h`; zero would mean a hot loop or an
/// instant timeout.
pub(crate) fn check_duration(text: &str) -> Result<Duration, String> {
    let d = vmctl_protocol::duration::parse(text)?;
    if d.is_zero() {
        return Err(format!("{text:?} must be greater than zero"));
    }
    Ok(d)
}

/// A pool role by its config name.
pub(crate) fn parse_role(text: &str) -> Result<PoolRole, String> {
    ROLES
        .into_iter()
        .find(|r| r.as_str() == text)
        .ok_or_else(|| {
            let names: Vec<&str> = ROLES.iter().map(|r| r.as_str()).collect();
            format!(
                "unknown role {text:?}; expected one of {}",
                names.join(", ")
            )
        })
}

/// A Sidekiq queue name.
pub(crate) fn check_queue(queue: &str) -> Result<(), String> {
    if KNOWN_QUEUES.contains(&queue) {
        Ok(())
    } else {
        Err(format!(
            "unknown queue {queue:?}; expected one of {}",
            KNOWN_QUEUES.join(", ")
        ))
    }
}

/// Only these roles run Sidekiq, so only they may list queues.
pub(crate) fn role_takes_queues(role: PoolRole) -> bool {
    matches!(role, PoolRole::Sidekiq | PoolRole::Exec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercase_dns_labels() {
        for ok in ["web-1", "a", "vmst", &"x".repeat(63)] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-web", "web-", "Web", "web_1", "web.1", &"x".repeat(64)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses_are_ip_literals_or_hostnames() {
        for ok in [
            "10.0.0.5",
            "127.0.1.2",
            "::1",
            "fe80::1",
            "db.example.org",
            "host-1",
        ] {
            assert!(check_address(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "10.0.0.999",
            "10.0.0.5:22",
            "[::1]",
            "bad host",
            "-x.org",
            "a..b",
        ] {
            assert!(check_address(bad).is_err(), "{bad}");
        }
        assert!(check_address("10.0.0.5:22").unwrap_err().contains("port"));
    }

    #[test]
    fn ports_are_1_to_65535() {
        assert_eq!(check_port(22), Ok(22));
        assert_eq!(check_port(65535), Ok(65535));
        for bad in [0, -1, 65536, i64::MAX] {
            assert!(check_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn roots_are_absolute_plain_paths() {
        for ok in ["/", "/srv/droplets/web-1", "/tmp/x_y.z-1"] {
            assert!(check_root(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "srv",
            "/srv/../etc",
            "/a b",
            "/a'b",
            "/a;b",
            "/a$b",
            "/a`b",
            "/a\"b",
        ] {
            assert!(check_root(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn users_keys_durations_roles_and_queues() {
        assert!(check_user("root").is_ok());
        assert!(check_user("_svc-1").is_ok());
        assert!(check_user("Root").is_err());
        assert!(check_user("").is_err());
        assert!(check_private_key("/etc/vmctl/id").is_ok());
        assert!(check_private_key("id").is_err());
        assert_eq!(check_duration("5s"), Ok(Duration::from_secs(5)));
        assert!(check_duration("0s").is_err());
        assert!(check_duration("5").is_err());
        assert_eq!(parse_role("sidekiq"), Ok(PoolRole::Sidekiq));
        assert!(parse_role("db").unwrap_err().contains("proxy, web"));
        assert!(check_queue("mailers").is_ok());
        assert!(check_queue("mail").is_err());
        assert!(role_takes_queues(PoolRole::Exec));
        assert!(!role_takes_queues(PoolRole::Web));
    }
}
