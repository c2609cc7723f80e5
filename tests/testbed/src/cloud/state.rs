//! The simulator's in-memory world: droplets, actions, images, load balancers and SSH keys,
//! and the rules that only read or change these records (no I/O, no clock: times are
//! passed in). The HTTP routes and the life-cycle tasks hold the lock around these calls.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use chrono::{DateTime, Utc};

use super::ids::Ids;

/// A droplet's power state as the API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropletStatus {
    /// Created, not yet running (no addresses yet).
    New,
    /// Running (as far as the API knows: a hung droplet still says active).
    Active,
    /// Powered off.
    Off,
}

impl DropletStatus {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DropletStatus::New => "new",
            DropletStatus::Active => "active",
            DropletStatus::Off => "off",
        }
    }
}

/// An action's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionStatus {
    /// Running.
    InProgress,
    /// Done.
    Completed,
    /// Failed (e.g. the droplet was deleted under it).
    Errored,
}

impl ActionStatus {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionStatus::InProgress => "in-progress",
            ActionStatus::Completed => "completed",
            ActionStatus::Errored => "errored",
        }
    }
}

/// What kind of image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// A public distribution image, addressed by slug.
    Base,
    /// A snapshot of a droplet (or one seeded from a folder).
    Snapshot,
}

/// An image a droplet can be created from.
#[derive(Debug, Clone)]
pub struct ImageRecord {
    /// Its id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Base or snapshot.
    pub kind: ImageKind,
    /// Base images only.
    pub slug: Option<String>,
    /// E.g. "Debian".
    pub distribution: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// The droplet a snapshot was taken of.
    pub resource_id: Option<u64>,
    /// A snapshot's stored root folder; base images start from a fresh root.
    pub root: Option<PathBuf>,
    /// Regions it is available in.
    pub regions: Vec<String>,
    /// Tags.
    pub tags: Vec<String>,
}

/// One droplet.
#[derive(Debug, Clone)]
pub struct DropletRecord {
    /// Its id.
    pub id: u64,
    /// Its name (a hostname).
    pub name: String,
    /// Its folder name in the droplet farm (the name, unless another live droplet has it).
    pub farm_name: String,
    /// Power state.
    pub status: DropletStatus,
    /// E.g. "s-1vcpu-1gb".
    pub size_slug: String,
    /// E.g. "nyc3".
    pub region: String,
    /// The image it was created from, as it was then.
    pub image: ImageRecord,
    /// Tags.
    pub tags: Vec<String>,
    /// The VPC it was put in.
    pub vpc_uuid: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Its sshd's address, once active.
    pub address: Option<Ipv4Addr>,
    /// Its root folder, once provisioned.
    pub root: Option<PathBuf>,
    /// Its sshd's host key, once provisioned.
    pub host_key_public: Option<String>,
    /// True once the farm holds it (so deleting it must kill it).
    pub provisioned: bool,
    /// Snapshots taken of it.
    pub snapshot_ids: Vec<u64>,
    /// The action in progress, if any (DigitalOcean allows one at a time).
    pub pending_action: Option<u64>,
    /// Why provisioning failed, if it did (it then stays "new").
    pub error: Option<String>,
}

/// One action on a droplet.
#[derive(Debug, Clone)]
pub struct ActionRecord {
    /// Its id.
    pub id: u64,
    /// "create", "snapshot", "power_cycle", ...
    pub kind: String,
    /// Progress.
    pub status: ActionStatus,
    /// Start time.
    pub started_at: DateTime<Utc>,
    /// End time, once done.
    pub completed_at: Option<DateTime<Utc>>,
    /// The droplet.
    pub droplet_id: u64,
    /// The droplet's region.
    pub region: String,
    /// For snapshot actions: the snapshot's name.
    pub snapshot_name: Option<String>,
}

/// One load balancer.
#[derive(Debug, Clone)]
pub struct LoadBalancerRecord {
    /// Its UUID.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its region slug.
    pub region: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// As posted (validated to be an array).
    pub forwarding_rules: serde_json::Value,
    /// As posted, or the default.
    pub health_check: serde_json::Value,
    /// Explicit members (empty for tag-based balancers).
    pub droplet_ids: Vec<u64>,
    /// Members are the droplets with this tag, when set.
    pub tag: Option<String>,
    /// Its (made-up, unbound) address.
    pub ip: String,
}

/// One SSH key of the account.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    /// Its id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// The public key line.
    pub public_key: String,
    /// Colon-separated hex, shaped like DigitalOcean's.
    pub fingerprint: String,
}

/// Everything the API knows.
#[derive(Debug, Default)]
pub struct World {
    /// Droplets by id (deleted ones are removed).
    pub droplets: BTreeMap<u64, DropletRecord>,
    /// Actions by id (kept after their droplet is deleted).
    pub actions: BTreeMap<u64, ActionRecord>,
    /// Base images and snapshots by id.
    pub images: BTreeMap<u64, ImageRecord>,
    /// Load balancers by id.
    pub load_balancers: BTreeMap<String, LoadBalancerRecord>,
    /// SSH keys by id.
    pub keys: BTreeMap<u64, KeyRecord>,
    /// Id counters.
    pub ids: Ids,
}

/// Base images every simulated account can use: (id, slug, distribution, name).
pub const BASE_IMAGES: &[(u64, &str, &str, &str)] = &[
    (1001, "debian-12-x64", "Debian", "12 x64"),
    (1002, "ubuntu-22-04-x64", "Ubuntu", "22.04 (LTS) x64"),
    (1003, "ubuntu-24-04-x64", "Ubuntu", "24.04 (LTS) x64"),
];

impl World {
    /// A world holding the base images, in `region`.
    pub fn new(region: &str, now: DateTime<Utc>) -> World {
        let mut world = World::default();
        for &(id, slug, distribution, name) in BASE_IMAGES {
            world.images.insert(
                id,
                ImageRecord {
                    id,
                    name: name.to_owned(),
                    kind: ImageKind::Base,
                    slug: Some(slug.to_owned()),
                    distribution: distribution.to_owned(),
                    created_at: now,
                    resource_id: None,
                    root: None,
                    regions: vec![region.to_owned()],
                    tags: Vec::new(),
                },
            );
        }
        world
    }

    /// The image a create request names: an integer id, or a base image's slug (a
    /// numeric string counts as an id, as the real API accepts).
    pub fn find_image(&self, image: &serde_json::Value) -> Option<&ImageRecord> {
        match image {
            serde_json::Value::Number(n) => n.as_u64().and_then(|id| self.images.get(&id)),
            serde_json::Value::String(s) => match s.parse::<u64>() {
                Ok(id) => self.images.get(&id),
                Err(_) => self
                    .images
                    .values()
                    .find(|i| i.slug.as_deref() == Some(s.as_str())),
            },
            _ => None,
        }
    }

    /// The farm folder name for a new droplet called `name`: the name itself unless a
    /// live droplet already uses it (DigitalOcean allows duplicate names; folders can't).
    pub fn farm_name_for(&self, name: &str, id: u64) -> String {
        let taken = self.droplets.values().any(|d| d.farm_name == name);
        if taken || name.len() > 63 {
            format!("droplet-{id}")
        } else {
            name.to_owned()
        }
    }

    /// The members of a balancer: its tag's droplets, or its explicit list.
    pub fn members(&self, lb: &LoadBalancerRecord) -> Vec<u64> {
        match &lb.tag {
            Some(tag) => self
                .droplets
                .values()
                .filter(|d| d.tags.iter().any(|t| t == tag))
                .map(|d| d.id)
                .collect(),
            None => lb.droplet_ids.clone(),
        }
    }

    /// Removes a droplet and its memberships; returns it.
    pub fn remove_droplet(&mut self, id: u64) -> Option<DropletRecord> {
        let droplet = self.droplets.remove(&id)?;
        for lb in self.load_balancers.values_mut() {
            lb.droplet_ids.retain(|&member| member != id);
        }
        Some(droplet)
    }

    /// Marks an action finished and frees its droplet for the next one.
    pub fn finish_action(&mut self, action_id: u64, status: ActionStatus, now: DateTime<Utc>) {
        let Some(action) = self.actions.get_mut(&action_id) else {
            return;
        };
        action.status = status;
        action.completed_at = Some(now);
        if let Some(droplet) = self.droplets.get_mut(&action.droplet_id) {
            if droplet.pending_action == Some(action_id) {
                droplet.pending_action = None;
            }
        }
    }
}

/// True for a valid hostname, as DigitalOcean requires of droplet names: dot-separated
/// labels of 1-63 letters, digits and hyphens, not starting or ending with a hyphen,
/// 253 characters at most.
pub fn is_valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// True for a tag DigitalOcean accepts: letters, digits, `:`, `-` and `_`, 1-255 long.
pub fn is_valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 255
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_follow_the_label_rules() {
        for good in ["web-1", "a", "web-1.example", "X9"] {
            assert!(is_valid_hostname(good), "{good}");
        }
        for bad in ["", "-web", "web-", "a..b", "web_1", "a b", &"x".repeat(64)] {
            assert!(!is_valid_hostname(bad), "{bad}");
        }
    }

    #[test]
    fn tags_allow_colons_and_underscores() {
        assert!(is_valid_tag("vmctl:pool_web-1"));
        assert!(!is_valid_tag("a b"));
        assert!(!is_valid_tag(""));
    }

    #[test]
    fn images_are_found_by_id_slug_or_numeric_string() {
        let world = World::new("nyc3", Utc::now());
        assert_eq!(world.find_image(&serde_json::json!(1001)).unwrap().id, 1001);
        assert_eq!(
            world.find_image(&serde_json::json!("1002")).unwrap().id,
            1002
        );
        assert_eq!(
            world
                .find_image(&serde_json::json!("debian-12-x64"))
                .unwrap()
                .id,
            1001
        );
        assert!(world.find_image(&serde_json::json!("nope")).is_none());
        assert!(world.find_image(&serde_json::json!(true)).is_none());
    }
}
