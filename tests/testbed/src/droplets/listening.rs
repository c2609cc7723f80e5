//! Tells whether a given process owns the listening TCP socket on an address. A successful
//! connect alone is not enough: when two test processes pick the same address, the loser's
//! connect would reach the winner's sshd.

use std::collections::BTreeSet;
use std::fs;
use std::net::Ipv4Addr;

/// Kernel TCP state number for LISTEN in `/proc/net/tcp`.
const TCP_LISTEN: &str = "0A";

/// The socket inodes in a `/proc/net/tcp` table that listen on `address:port`.
pub fn listening_inodes(table: &str, address: Ipv4Addr, port: u16) -> BTreeSet<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
            let (hex_addr, hex_port) = local.split_once(':')?;
            // The kernel prints the network-order address as a native-endian integer.
            let raw = u32::from_str_radix(hex_addr, 16).ok()?;
            let local_address = Ipv4Addr::from(raw.to_ne_bytes());
            let local_port = u16::from_str_radix(hex_port, 16).ok()?;
            let matches = *state == TCP_LISTEN && local_address == address && local_port == port;
            matches.then(|| inode.parse().ok()).flatten()
        })
        .collect()
}

/// True when process `pid` holds an open file descriptor on a socket listening on
/// `address:port`.
pub fn owns_listener(pid: u32, address: Ipv4Addr, port: u16) -> bool {
    let Ok(table) = fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let inodes = listening_inodes(&table, address, port);
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(Result::ok)
        .filter_map(|fd| fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            target
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse::<u64>()
                .ok()
        })
        .any(|inode| inodes.contains(&inode))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(address: Ipv4Addr) -> String {
        format!("{:08X}", u32::from_ne_bytes(address.octets()))
    }

    #[test]
    fn finds_only_listening_sockets_on_the_address() {
        let a = Ipv4Addr::new(127, 9, 8, 7);
        let b = Ipv4Addr::new(127, 9, 8, 6);
        let table = format!(
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
             0: {a}:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1\n\
             1: {b}:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 222 1\n\
             2: {a}:0016 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 333 1\n\
             3: {a}:0017 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 444 1\n",
            a = hex(a),
            b = hex(b),
        );
        assert_eq!(listening_inodes(&table, a, 22), BTreeSet::from([111]));
        assert_eq!(listening_inodes(&table, b, 22), BTreeSet::from([222]));
        assert!(listening_inodes(&table, a, 80).is_empty());
    }
}
