//! The JSON the API answers with, built from the world's records in the shapes the official
//! spec gives (`components/schemas/droplet`, `action`, `snapshots`, `image`,
//! `load_balancer`, `sshKeys`, `account`, `error`). Pure functions of records.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::state::{
    ActionRecord, DropletRecord, ImageKind, ImageRecord, KeyRecord, LoadBalancerRecord,
};

/// Netmask of the loopback /8 the droplets' addresses come from.
const NETMASK: &str = "255.0.0.0";
/// Gateway reported for droplet addresses.
const GATEWAY: &str = "127.0.0.1";

/// `2020-07-21T18:37:44Z`, the API's timestamp form.
pub fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A region object.
pub fn region(slug: &str) -> Value {
    json!({
        "name": region_name(slug),
        "slug": slug,
        "features": ["backups", "ipv6", "metadata", "install_agent", "image_transfer"],
        "available": true,
        "sizes": ["s-1vcpu-1gb", "s-1vcpu-2gb", "s-2vcpu-2gb", "s-2vcpu-4gb", "s-4vcpu-8gb"],
    })
}

fn region_name(slug: &str) -> String {
    let city = match slug.trim_end_matches(|c: char| c.is_ascii_digit()) {
        "nyc" => "New York",
        "sfo" => "San Francisco",
        "ams" => "Amsterdam",
        "fra" => "Frankfurt",
        "lon" => "London",
        "sgp" => "Singapore",
        "tor" => "Toronto",
        "blr" => "Bangalore",
        "syd" => "Sydney",
        _ => "Region",
    };
    let number = slug.trim_start_matches(|c: char| c.is_ascii_alphabetic());
    format!("{city} {number}")
}

/// (vcpus, memory MiB, disk GB) for a size slug such as `s-2vcpu-4gb`; unknown parts get
/// the smallest droplet's values.
pub fn size_numbers(slug: &str) -> (u64, u64, u64) {
    let mut vcpus = 1;
    let mut memory = 1024;
    for part in slug.split('-') {
        if let Some(n) = part.strip_suffix("vcpu").and_then(|n| n.parse().ok()) {
            vcpus = n;
        } else if let Some(n) = part.strip_suffix("gb").and_then(|n| n.parse::<u64>().ok()) {
            memory = n * 1024;
        }
    }
    let disk = 25 * (memory / 1024).max(1);
    (vcpus, memory, disk)
}

/// A size object.
pub fn size(slug: &str, region: &str) -> Value {
    let (vcpus, memory, disk) = size_numbers(slug);
    #[allow(clippy::cast_precision_loss)] // small numbers
    let monthly = (memory / 1024 * 6) as f64;
    json!({
        "slug": slug,
        "memory": memory,
        "vcpus": vcpus,
        "disk": disk,
        "transfer": 1.0,
        "price_monthly": monthly,
        "price_hourly": monthly / 730.0,
        "regions": [region],
        "available": true,
        "description": "Basic",
    })
}

/// An image object.
pub fn image(image: &ImageRecord) -> Value {
    let kind = match image.kind {
        ImageKind::Base => "base",
        ImageKind::Snapshot => "snapshot",
    };
    json!({
        "id": image.id,
        "name": image.name,
        "type": kind,
        "distribution": image.distribution,
        "slug": image.slug,
        "public": image.kind == ImageKind::Base,
        "regions": image.regions,
        "created_at": time(image.created_at),
        "min_disk_size": 25,
        "size_gigabytes": 2.36,
        "description": "",
        "tags": image.tags,
        "status": "available",
        "error_message": "",
    })
}

/// A droplet object.
pub fn droplet(d: &DropletRecord) -> Value {
    let (vcpus, memory, disk) = size_numbers(&d.size_slug);
    let v4: Vec<Value> = d
        .address
        .filter(|_| d.status != super::state::DropletStatus::New)
        .map(|address| {
            json!({
                "ip_address": address.to_string(),
                "netmask": NETMASK,
                "gateway": GATEWAY,
                "type": "public",
            })
        })
        .into_iter()
        .collect();
    json!({
        "id": d.id,
        "name": d.name,
        "memory": memory,
        "vcpus": vcpus,
        "disk": disk,
        "locked": false,
        "status": d.status.as_str(),
        "kernel": null,
        "created_at": time(d.created_at),
        "features": ["private_networking"],
        "backup_ids": [],
        "next_backup_window": null,
        "snapshot_ids": d.snapshot_ids,
        "image": image(&d.image),
        "volume_ids": [],
        "size": size(&d.size_slug, &d.region),
        "size_slug": d.size_slug,
        "networks": { "v4": v4, "v6": [] },
        "region": region(&d.region),
        "tags": d.tags,
        "vpc_uuid": d.vpc_uuid,
    })
}

/// An action object.
pub fn action(a: &ActionRecord) -> Value {
    json!({
        "id": a.id,
        "status": a.status.as_str(),
        "type": a.kind,
        "started_at": time(a.started_at),
        "completed_at": a.completed_at.map(time),
        "resource_id": a.droplet_id,
        "resource_type": "droplet",
        "region": region(&a.region),
        "region_slug": a.region,
    })
}

/// A snapshot object (`GET /v2/snapshots`): note the id is a string there.
pub fn snapshot(image: &ImageRecord) -> Value {
    json!({
        "id": image.id.to_string(),
        "name": image.name,
        "created_at": time(image.created_at),
        "regions": image.regions,
        "resource_id": image.resource_id.map(|id| id.to_string()).unwrap_or_default(),
        "resource_type": "droplet",
        "min_disk_size": 25,
        "size_gigabytes": 2.36,
        "tags": image.tags,
    })
}

/// A load balancer object with its current members.
pub fn load_balancer(lb: &LoadBalancerRecord, members: &[u64]) -> Value {
    let mut value = json!({
        "id": lb.id,
        "name": lb.name,
        "ip": lb.ip,
        "size_unit": 1,
        "size": "lb-small",
        "algorithm": "round_robin",
        "status": "active",
        "created_at": time(lb.created_at),
        "forwarding_rules": lb.forwarding_rules,
        "health_check": lb.health_check,
        "sticky_sessions": { "type": "none" },
        "redirect_http_to_https": false,
        "enable_proxy_protocol": false,
        "enable_backend_keepalive": false,
        "http_idle_timeout_seconds": 60,
        "vpc_uuid": "",
        "region": region(&lb.region),
        "droplet_ids": members,
    });
    if let Some(tag) = &lb.tag {
        value["tag"] = json!(tag);
    }
    value
}

/// The default health check of a new balancer.
pub fn default_health_check() -> Value {
    json!({
        "protocol": "http",
        "port": 80,
        "path": "/",
        "check_interval_seconds": 10,
        "response_timeout_seconds": 5,
        "healthy_threshold": 5,
        "unhealthy_threshold": 3,
    })
}

/// An SSH key object.
pub fn key(k: &KeyRecord) -> Value {
    json!({
        "id": k.id,
        "fingerprint": k.fingerprint,
        "public_key": k.public_key,
        "name": k.name,
    })
}

/// The account object.
pub fn account() -> Value {
    json!({
        "droplet_limit": 250,
        "floating_ip_limit": 3,
        "volume_limit": 100,
        "email": "operator@example.com",
        "name": "vmctl testbed",
        "uuid": "b6fc48a1-5c53-4e5b-8b5d-5e1b2c9a0001",
        "email_verified": true,
        "status": "active",
        "status_message": "",
    })
}

/// An error body.
pub fn error(id: &str, message: &str, request_id: &str) -> Value {
    json!({ "id": id, "message": message, "request_id": request_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_numbers_read_the_slug() {
        assert_eq!(size_numbers("s-2vcpu-4gb"), (2, 4096, 100));
        assert_eq!(size_numbers("s-1vcpu-1gb"), (1, 1024, 25));
        assert_eq!(size_numbers("weird"), (1, 1024, 25));
    }

    #[test]
    fn region_names_read_like_digitalocean() {
        assert_eq!(region("nyc3")["name"], "New York 3");
        assert_eq!(region("zzz1")["name"], "Region 1");
    }

    #[test]
    fn time_is_seconds_with_z() {
        let at = DateTime::parse_from_rfc3339("2020-07-21T18:37:44.5+00:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(time(at), "2020-07-21T18:37:44Z");
    }
}
