//! The managed-pool (`[pools.NAME.droplets]`) and `[healing]` parts of cluster.toml: raw serde
//! shapes with spans, and their validation into protocol types.

use serde::Deserialize;
use toml::Spanned;
use vmctl_protocol::{
    cluster::HealingPolicy,
    pool::{DropletTemplate, SnapshotPolicy, DEFAULT_FAILURE_GRACE, DEFAULT_STARTUP_GRACE},
};

use super::{rules, validate::Report};

/// `[pools.NAME.droplets]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDroplets {
    pub count: Option<Spanned<i64>>,
    pub region: Option<Spanned<String>>,
    pub size: Option<Spanned<String>>,
    pub image: Option<Spanned<String>>,
    pub tags: Option<Vec<Spanned<String>>>,
    pub vpc_uuid: Option<Spanned<String>>,
    pub ssh_keys: Option<Vec<Spanned<String>>>,
    pub load_balancer: Option<Spanned<String>>,
    pub startup_grace: Option<Spanned<String>>,
    pub failure_grace: Option<Spanned<String>>,
    pub root: Option<Spanned<String>>,
    pub snapshot: Option<RawSnapshotPolicy>,
}

/// `[pools.NAME.droplets.snapshot]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSnapshotPolicy {
    pub keep: Option<Spanned<i64>>,
    pub max_age: Option<Spanned<String>>,
}

/// `[healing]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHealing {
    pub max_replacements_per_hour: Option<Spanned<i64>>,
    pub max_unhealthy_pool_percent: Option<Spanned<i64>>,
    pub max_unhealthy_fleet_percent: Option<Spanned<i64>>,
    pub retry_backoff: Option<Spanned<String>>,
}

fn int_in(v: i64, min: i64, max: i64) -> Result<u32, String> {
    if (min..=max).contains(&v) {
        Ok(v as u32)
    } else {
        Err(format!("must be between {min} and {max}, got {v}"))
    }
}

fn slug(s: &str) -> Result<(), String> {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a DigitalOcean slug or id (letters, digits, '-', '_', '.')"
        ))
    }
}

/// Validates a droplet template; `at` is the offset of the pool's key for missing fields.
pub(crate) fn template(
    r: &mut Report<'_, '_>,
    field: &str,
    at: usize,
    raw: &RawDroplets,
) -> Option<DropletTemplate> {
    let f = |k: &str| format!("{field}.droplets.{k}");
    let count = r
        .required(&raw.count, at, &f("count"))
        .and_then(|c| r.check(c, &f("count"), |v| int_in(*v, 0, 1000)));
    let mut text = |k: &str, v: &Option<Spanned<String>>| {
        r.required(v, at, &f(k))
            .and_then(|s| r.check(s, &f(k), |s| slug(s).map(|()| s.clone())))
    };
    let region = text("region", &raw.region);
    let size = text("size", &raw.size);
    let image = text("image", &raw.image);
    let mut list = |k: &str, v: &Option<Vec<Spanned<String>>>| -> Vec<String> {
        v.iter()
            .flatten()
            .filter_map(|s| r.check(s, &f(k), |s| slug(s).map(|()| s.clone())))
            .collect()
    };
    let tags = list("tags", &raw.tags);
    let ssh_keys = list("ssh_keys", &raw.ssh_keys);
    let vpc_uuid = raw
        .vpc_uuid
        .as_ref()
        .and_then(|v| r.check(v, &f("vpc_uuid"), |s| slug(s).map(|()| s.clone())));
    let load_balancer = raw
        .load_balancer
        .as_ref()
        .and_then(|v| r.check(v, &f("load_balancer"), |s| slug(s).map(|()| s.clone())));
    let startup_grace = raw
        .startup_grace
        .as_ref()
        .map_or(Some(DEFAULT_STARTUP_GRACE), |v| {
            r.check(v, &f("startup_grace"), |s| rules::check_duration(s))
        });
    let failure_grace = raw
        .failure_grace
        .as_ref()
        .map_or(Some(DEFAULT_FAILURE_GRACE), |v| {
            r.check(v, &f("failure_grace"), |s| rules::check_duration(s))
        });
    let root = raw.root.as_ref().map_or(Some("/".to_string()), |v| {
        r.check(v, &f("root"), |s| {
            rules::check_root(&s.replace("{name}", "x")).map(|()| s.clone())
        })
    });
    let default = SnapshotPolicy::default();
    let snapshot = match &raw.snapshot {
        None => Some(default),
        Some(s) => {
            let keep = s.keep.as_ref().map_or(Some(default.keep), |k| {
                r.check(k, &f("snapshot.keep"), |v| int_in(*v, 1, 100))
            });
            let max_age = s.max_age.as_ref().map_or(Some(default.max_age), |v| {
                r.check(v, &f("snapshot.max_age"), |s| rules::check_duration(s))
            });
            Some(SnapshotPolicy {
                keep: keep?,
                max_age: max_age?,
            })
        }
    };
    Some(DropletTemplate {
        count: count?,
        region: region?,
        size: size?,
        image: image?,
        tags,
        vpc_uuid,
        ssh_keys,
        load_balancer,
        startup_grace: startup_grace?,
        failure_grace: failure_grace?,
        root: root?,
        snapshot: snapshot?,
    })
}

/// Validates `[healing]`; absent keys take their defaults.
pub(crate) fn healing(r: &mut Report<'_, '_>, raw: Option<&RawHealing>) -> HealingPolicy {
    let d = HealingPolicy::default();
    let Some(raw) = raw else { return d };
    let mut int = |k: &str, v: &Option<Spanned<i64>>, min: i64, max: i64, dflt: u32| {
        v.as_ref()
            .and_then(|v| r.check(v, &format!("healing.{k}"), |v| int_in(*v, min, max)))
            .unwrap_or(dflt)
    };
    let max_replacements_per_hour = int(
        "max_replacements_per_hour",
        &raw.max_replacements_per_hour,
        0,
        1000,
        d.max_replacements_per_hour,
    );
    let max_unhealthy_pool_percent = int(
        "max_unhealthy_pool_percent",
        &raw.max_unhealthy_pool_percent,
        0,
        100,
        d.max_unhealthy_pool_percent,
    );
    let max_unhealthy_fleet_percent = int(
        "max_unhealthy_fleet_percent",
        &raw.max_unhealthy_fleet_percent,
        0,
        100,
        d.max_unhealthy_fleet_percent,
    );
    let retry_backoff = raw
        .retry_backoff
        .as_ref()
        .and_then(|v| r.check(v, "healing.retry_backoff", |s| rules::check_duration(s)))
        .unwrap_or(d.retry_backoff);
    HealingPolicy {
        max_replacements_per_hour,
        max_unhealthy_pool_percent,
        max_unhealthy_fleet_percent,
        retry_backoff,
    }
}
