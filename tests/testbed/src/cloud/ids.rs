//! Hands out the simulator's identifiers: integer ids per resource family (in ranges that
//! look like DigitalOcean's and never collide across families), load-balancer UUIDs and
//! request ids.

use rand::Rng;

/// First droplet id; real ids are nine-digit numbers.
const FIRST_DROPLET: u64 = 300_000_001;
/// First action id.
const FIRST_ACTION: u64 = 2_000_000_001;
/// First snapshot (image) id; base images use small ids below this.
const FIRST_IMAGE: u64 = 150_000_001;
/// First SSH key id.
const FIRST_KEY: u64 = 40_000_001;

/// Counters for every integer id the simulator gives out.
#[derive(Debug, Clone)]
pub struct Ids {
    droplet: u64,
    action: u64,
    image: u64,
    key: u64,
}

impl Default for Ids {
    fn default() -> Self {
        Ids {
            droplet: FIRST_DROPLET,
            action: FIRST_ACTION,
            image: FIRST_IMAGE,
            key: FIRST_KEY,
        }
    }
}

impl Ids {
    /// The next droplet id.
    pub fn droplet(&mut self) -> u64 {
        bump(&mut self.droplet)
    }

    /// The next action id.
    pub fn action(&mut self) -> u64 {
        bump(&mut self.action)
    }

    /// The next image (snapshot) id.
    pub fn image(&mut self) -> u64 {
        bump(&mut self.image)
    }

    /// The next SSH key id.
    pub fn key(&mut self) -> u64 {
        bump(&mut self.key)
    }
}

fn bump(counter: &mut u64) -> u64 {
    let id = *counter;
    *counter += 1;
    id
}

/// A random version-4-shaped UUID, as DigitalOcean uses for load balancers and VPCs.
pub fn uuid() -> String {
    let bytes: [u8; 16] = rand::thread_rng().gen();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_rise_per_family_and_families_do_not_overlap() {
        let mut ids = Ids::default();
        assert_eq!(ids.droplet() + 1, ids.droplet());
        let image = ids.image();
        let droplet = ids.droplet();
        assert_ne!(image, droplet);
        assert!(ids.action() > droplet);
    }

    #[test]
    fn uuid_has_the_8_4_4_4_12_shape() {
        let id = uuid();
        let lengths: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(lengths, [8, 4, 4, 4, 12], "{id}");
    }
}
