//! Request and response shapes of the DigitalOcean API v2 calls vmctld makes, as the
//! official spec (`shared/reference/digitalocean-openapi.v2.json`) defines them.
//!
//! Wire shapes (`*Wire`, private) are parsed into the small public types the reconcilers
//! use: a droplet's public IPv4 is picked out of `networks.v4`, statuses become enums.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

// === requests ===

/// The image a droplet starts from: a numeric id (snapshots, backups) or a public slug.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ImageRef {
    /// A snapshot's or custom image's id.
    Id(u64),
    /// A public image slug such as `ubuntu-24-04-x64`.
    Slug(String),
}

impl ImageRef {
    /// A snapshot id as the snapshots API returns it (a string of digits) becomes the numeric
    /// id the create call wants; anything else is taken as a slug.
    #[must_use]
    pub fn from_snapshot_id(id: &str) -> Self {
        id.parse()
            .map_or_else(|_| Self::Slug(id.to_owned()), Self::Id)
    }
}

/// `POST /v2/droplets` for a single droplet.
///
/// `name` must be unique within vmctl's tags: the client uses it to find a droplet whose
/// create call failed after DigitalOcean had already made it.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct CreateDroplet {
    /// Unique name, e.g. `web-7f3a`.
    pub name: String,
    /// Region slug, e.g. `fra1`.
    pub region: String,
    /// Size slug, e.g. `s-2vcpu-4gb`.
    pub size: String,
    /// The snapshot (or image) to boot from.
    pub image: ImageRef,
    /// The VPC to join.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vpc_uuid: Option<String>,
    /// Tags; the first is the one the client lists by to find an earlier create.
    pub tags: Vec<String>,
    /// SSH key ids or fingerprints.
    pub ssh_keys: Vec<String>,
    /// cloud-init user data. Secret-bearing: never logged (see the `Debug` impl).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
}

impl fmt::Debug for CreateDroplet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateDroplet")
            .field("name", &self.name)
            .field("region", &self.region)
            .field("size", &self.size)
            .field("image", &self.image)
            .field("vpc_uuid", &self.vpc_uuid)
            .field("tags", &self.tags)
            .field("ssh_keys", &self.ssh_keys)
            .field("user_data", &self.user_data.as_ref().map(|_| "***"))
            .finish()
    }
}

/// A droplet action vmctld uses (`POST /v2/droplets/{id}/actions`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DropletAction {
    /// Take a snapshot named `name`. The action does not say which snapshot it made: find it
    /// by name once the action completes.
    Snapshot {
        /// The snapshot's name; make it unique.
        name: String,
    },
    /// Hard reset.
    PowerCycle,
    /// Hard power off.
    PowerOff,
    /// Power on.
    PowerOn,
}

#[derive(Serialize)]
pub(crate) struct LbDropletsBody<'a> {
    pub droplet_ids: &'a [u64],
}

// === responses ===

/// A droplet's lifecycle status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DropletStatus {
    /// Being created; no IP address yet.
    New,
    /// Running.
    Active,
    /// Powered off.
    Off,
    /// Destroyed but kept for a while.
    Archive,
    /// A status this client does not know.
    Other(String),
}

impl From<String> for DropletStatus {
    fn from(s: String) -> Self {
        match s.as_str() {
            "new" => Self::New,
            "active" => Self::Active,
            "off" => Self::Off,
            "archive" => Self::Archive,
            _ => Self::Other(s),
        }
    }
}

/// A droplet, as far as vmctld cares.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(from = "DropletWire")]
pub struct Droplet {
    /// DigitalOcean's id.
    pub id: u64,
    /// The unique name vmctld gave it.
    pub name: String,
    /// Lifecycle status.
    pub status: DropletStatus,
    /// Tags.
    pub tags: Vec<String>,
    /// `networks.v4[type=public].ip_address`; present only once the droplet is active.
    pub public_ipv4: Option<String>,
    /// `networks.v4[type=private].ip_address` (the VPC address).
    pub private_ipv4: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// The image (snapshot) it was built from.
    pub image_id: Option<u64>,
    /// Region slug.
    pub region: Option<String>,
    /// Size slug.
    pub size_slug: Option<String>,
    /// The VPC it is in.
    pub vpc_uuid: Option<String>,
    /// Whether DigitalOcean has locked it (an action is running).
    pub locked: bool,
}

#[derive(Deserialize)]
struct DropletWire {
    id: u64,
    name: String,
    status: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    networks: NetworksWire,
    created_at: DateTime<Utc>,
    #[serde(default)]
    image: Option<IdWire>,
    #[serde(default)]
    region: Option<SlugWire>,
    #[serde(default)]
    size_slug: Option<String>,
    #[serde(default)]
    vpc_uuid: Option<String>,
    #[serde(default)]
    locked: bool,
}

#[derive(Default, Deserialize)]
struct NetworksWire {
    #[serde(default)]
    v4: Vec<NetworkV4Wire>,
}

#[derive(Deserialize)]
struct NetworkV4Wire {
    ip_address: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct IdWire {
    #[serde(default)]
    id: Option<u64>,
}

#[derive(Deserialize)]
struct SlugWire {
    #[serde(default)]
    slug: Option<String>,
}

impl From<DropletWire> for Droplet {
    fn from(w: DropletWire) -> Self {
        let ip = |kind: &str| {
            w.networks
                .v4
                .iter()
                .find(|n| n.kind == kind)
                .map(|n| n.ip_address.clone())
        };
        Self {
            public_ipv4: ip("public"),
            private_ipv4: ip("private"),
            id: w.id,
            name: w.name,
            status: w.status.into(),
            tags: w.tags,
            created_at: w.created_at,
            image_id: w.image.and_then(|i| i.id),
            region: w.region.and_then(|r| r.slug),
            size_slug: w.size_slug,
            vpc_uuid: w.vpc_uuid,
            locked: w.locked,
        }
    }
}

/// An action's status.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub enum ActionStatus {
    /// Still running.
    InProgress,
    /// Done.
    Completed,
    /// Failed.
    Errored,
    /// A status this client does not know.
    Other(String),
}

impl From<String> for ActionStatus {
    fn from(s: String) -> Self {
        match s.as_str() {
            "in-progress" => Self::InProgress,
            "completed" => Self::Completed,
            "errored" => Self::Errored,
            _ => Self::Other(s),
        }
    }
}

/// An asynchronous DigitalOcean action (`GET /v2/actions/{id}`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Action {
    /// The action's id.
    pub id: u64,
    /// Where it is.
    pub status: ActionStatus,
    /// E.g. `snapshot`, `power_cycle`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The droplet (or other resource) it acts on.
    #[serde(default)]
    pub resource_id: Option<u64>,
    /// E.g. `droplet`.
    #[serde(default)]
    pub resource_type: Option<String>,
    /// When it started.
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    #[serde(default)]
    pub completed_at: Option<DateTime<Utc>>,
}

/// A droplet snapshot (`GET /v2/snapshots?resource_type=droplet`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Snapshot {
    /// The id, a string of digits; see [`ImageRef::from_snapshot_id`].
    pub id: String,
    /// The name given in the snapshot action.
    pub name: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// The droplet it was taken from.
    #[serde(default)]
    pub resource_id: Option<String>,
    /// `droplet` or `volume`.
    #[serde(default)]
    pub resource_type: Option<String>,
    /// Regions it is available in.
    #[serde(default)]
    pub regions: Vec<String>,
    /// Minimum disk size (GB) to boot it.
    #[serde(default)]
    pub min_disk_size: Option<u64>,
    /// Billable size.
    #[serde(default)]
    pub size_gigabytes: Option<f64>,
    /// Tags (`null` becomes empty).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub tags: Vec<String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// A load balancer's membership (`GET /v2/load_balancers/{id}`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(from = "LoadBalancerWire")]
pub struct LoadBalancer {
    /// Its id (a UUID).
    pub id: String,
    /// Its name.
    pub name: String,
    /// `new`, `active` or `errored`.
    pub status: String,
    /// Members chosen by id; empty for a tag-based balancer.
    pub droplet_ids: Vec<u64>,
    /// The tag that selects members, if it is tag-based.
    pub tag: Option<String>,
}

#[derive(Deserialize)]
struct LoadBalancerWire {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    droplet_ids: Vec<u64>,
    #[serde(default)]
    tag: Option<String>,
}

impl From<LoadBalancerWire> for LoadBalancer {
    fn from(w: LoadBalancerWire) -> Self {
        Self {
            id: w.id,
            name: w.name,
            status: w.status,
            droplet_ids: w.droplet_ids,
            // DigitalOcean sends `"tag": ""` for a balancer with id-based members.
            tag: w.tag.filter(|t| !t.is_empty()),
        }
    }
}

/// The token's account (`GET /v2/account`), used to check a token at startup.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Account {
    /// The account's UUID.
    #[serde(default)]
    pub uuid: String,
    /// `active`, `warning` or `locked`.
    #[serde(default)]
    pub status: String,
    /// Why the status is what it is.
    #[serde(default)]
    pub status_message: String,
    /// How many droplets the account may have.
    #[serde(default)]
    pub droplet_limit: Option<u64>,
}

// Envelopes: DigitalOcean wraps every object in a key named after it.
#[derive(Deserialize)]
pub(crate) struct DropletEnvelope {
    pub droplet: Droplet,
}
#[derive(Deserialize)]
pub(crate) struct ActionEnvelope {
    pub action: Action,
}
#[derive(Deserialize)]
pub(crate) struct AccountEnvelope {
    pub account: Account,
}
#[derive(Deserialize)]
pub(crate) struct LoadBalancerEnvelope {
    pub load_balancer: LoadBalancer,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_droplet_is_parsed_from_the_spec_shape_with_its_public_ipv4() {
        let d: Droplet = serde_json::from_value(json!({
            "id": 3164444, "name": "web-1", "status": "active", "locked": false,
            "created_at": "2020-07-21T18:37:44Z", "tags": ["vmctl", "web"],
            "image": {"id": 7555620, "name": "snap"}, "size_slug": "s-1vcpu-1gb",
            "region": {"slug": "fra1", "name": "Frankfurt 1"}, "vpc_uuid": "v-1",
            "networks": {"v4": [
                {"ip_address": "10.10.0.2", "type": "private", "netmask": "255.255.0.0", "gateway": ""},
                {"ip_address": "203.0.113.4", "type": "public", "netmask": "255.255.240.0", "gateway": "x"}
            ], "v6": []}
        }))
        .unwrap();
        assert_eq!(d.public_ipv4.as_deref(), Some("203.0.113.4"));
        assert_eq!(d.private_ipv4.as_deref(), Some("10.10.0.2"));
        assert_eq!(d.status, DropletStatus::Active);
        assert_eq!(d.image_id, Some(7_555_620));
        assert_eq!(d.region.as_deref(), Some("fra1"));
    }

    #[test]
    fn a_new_droplet_has_no_ip_and_unknown_statuses_are_kept() {
        let d: Droplet = serde_json::from_value(json!({
            "id": 1, "name": "n", "status": "rebooting", "created_at": "2020-07-21T18:37:44Z",
            "networks": {"v4": []}
        }))
        .unwrap();
        assert_eq!(d.public_ipv4, None);
        assert_eq!(d.status, DropletStatus::Other("rebooting".into()));
    }

    #[test]
    fn actions_serialize_as_the_spec_expects() {
        let snap = DropletAction::Snapshot {
            name: "web-2024".into(),
        };
        assert_eq!(
            serde_json::to_value(&snap).unwrap(),
            json!({"type": "snapshot", "name": "web-2024"})
        );
        assert_eq!(
            serde_json::to_value(DropletAction::PowerCycle).unwrap(),
            json!({"type": "power_cycle"})
        );
    }

    #[test]
    fn snapshot_ids_become_numeric_images_and_user_data_is_not_debug_printed() {
        assert_eq!(
            ImageRef::from_snapshot_id("6372321"),
            ImageRef::Id(6_372_321)
        );
        assert_eq!(
            ImageRef::from_snapshot_id("ubuntu"),
            ImageRef::Slug("ubuntu".into())
        );
        let req = CreateDroplet {
            name: "web-1".into(),
            region: "fra1".into(),
            size: "s-1vcpu-1gb".into(),
            image: ImageRef::Id(1),
            vpc_uuid: None,
            tags: vec!["vmctl".into()],
            ssh_keys: vec![],
            user_data: Some("SECRET_KEY_BASE=abc".into()),
        };
        assert!(!format!("{req:?}").contains("SECRET"));
        let body = serde_json::to_value(&req).unwrap();
        assert_eq!(body["image"], json!(1));
        assert!(body.get("vpc_uuid").is_none());
    }

    #[test]
    fn an_empty_balancer_tag_means_id_based_membership() {
        let lb: LoadBalancer =
            serde_json::from_value(json!({"id": "lb-1", "tag": "", "droplet_ids": [1, 2]}))
                .unwrap();
        assert_eq!(lb.tag, None);
        assert_eq!(lb.droplet_ids, vec![1, 2]);
    }
}
