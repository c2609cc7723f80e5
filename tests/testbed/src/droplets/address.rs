//! Picks loopback addresses for droplets. On Linux all of 127.0.0.0/8 routes to `lo`, so
//! each droplet can listen on port 22 of its own address with no setup. Many test processes
//! share the machine, so a pick is random and checked, and the caller retries on a clash.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};

use rand::Rng;

/// The SSH port every droplet listens on, as a real droplet does.
pub const SSH_PORT: u16 = 22;

/// How many addresses one droplet start tries before it gives up. A clash needs another
/// process to pick the same one of ~16 million addresses in the same instant, so a handful
/// is plenty; the cap only stops a broken host from looping forever.
pub const MAX_ADDRESS_TRIES: usize = 8;

/// Maps three random draws onto an allowed address: 127.X.Y.Z with X in 2..=250 (so the
/// 127.0.0.x and 127.0.1.x the host itself uses are never picked, nor 127.1.x.x which some
/// tools treat specially) and Z in 1..=254 (no network or broadcast-looking last byte).
pub fn candidate(x: u8, y: u8, z: u8) -> Ipv4Addr {
    let x = 2 + x % 249;
    let z = 1 + z % 254;
    Ipv4Addr::new(127, x, y, z)
}

/// True when `address` is one `candidate` can return.
pub fn is_allowed(address: Ipv4Addr) -> bool {
    let [a, x, _, z] = address.octets();
    a == 127 && (2..=250).contains(&x) && (1..=254).contains(&z)
}

/// Draws a random allowed address that is not in `taken` and whose port 22 can be bound now.
/// Returns `Ok(None)` when `tries` draws were all taken.
///
/// # Errors
/// A bind that failed for a reason other than the address being in use (most often: not
/// root, so port 22 is out of reach), since trying more addresses would not help.
pub fn pick_free(
    taken: &HashSet<Ipv4Addr>,
    tries: usize,
) -> Result<Option<Ipv4Addr>, std::io::Error> {
    let mut rng = rand::thread_rng();
    for _ in 0..tries {
        let address = candidate(rng.gen(), rng.gen(), rng.gen());
        if !taken.contains(&address) && port_is_free(address)? {
            return Ok(Some(address));
        }
    }
    Ok(None)
}

/// Binds and drops a listener. A `true` is only a hint: another process may take the
/// address before sshd binds it, which the launcher detects and retries.
pub fn port_is_free(address: Ipv4Addr) -> Result<bool, std::io::Error> {
    match TcpListener::bind(SocketAddrV4::new(address, SSH_PORT)) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_is_always_allowed() {
        for x in [0, 1, 2, 248, 249, 250, 255] {
            for z in [0, 1, 253, 254, 255] {
                let address = candidate(x, 7, z);
                assert!(is_allowed(address), "{address} from x={x} z={z}");
            }
        }
    }

    #[test]
    fn candidate_never_uses_host_loopback_ranges() {
        for x in 0..=255 {
            let [_, second, _, _] = candidate(x, 0, 0).octets();
            assert!(second >= 2, "x={x} gave 127.{second}.*");
        }
    }

    #[test]
    fn is_allowed_rejects_host_addresses() {
        assert!(!is_allowed(Ipv4Addr::new(127, 0, 0, 1)));
        assert!(!is_allowed(Ipv4Addr::new(127, 0, 1, 1)));
        assert!(!is_allowed(Ipv4Addr::new(127, 5, 5, 0)));
        assert!(!is_allowed(Ipv4Addr::new(127, 5, 5, 255)));
        assert!(!is_allowed(Ipv4Addr::new(10, 5, 5, 5)));
        assert!(is_allowed(Ipv4Addr::new(127, 5, 5, 5)));
    }
}
