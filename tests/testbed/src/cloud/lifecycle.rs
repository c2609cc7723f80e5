//! The timed transitions behind the API: a new droplet becomes a real testbed droplet and
//! turns active after `create_duration`; an action takes effect and completes after
//! `action_duration`. Each runs as a task; farm work runs on blocking threads; the world
//! is re-read after every wait, since the droplet may have been deleted meanwhile.

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::Utc;

use super::disk;
use super::state::{ActionStatus, DropletStatus, ImageKind, ImageRecord};
use super::{error_chain, lock, Shared};
use crate::droplets::DropletFarm;

/// What a started droplet reports back.
struct Started {
    address: Ipv4Addr,
    root: PathBuf,
    host_key_public: String,
}

/// Waits `create_duration`, starts the droplet's sshd (from its image's root when the image
/// is a snapshot) and marks it active, completing `create_action`.
pub async fn provision(shared: Arc<Shared>, droplet_id: u64, create_action: u64) {
    tokio::time::sleep(shared.config.create_duration).await;
    let plan = {
        let world = lock(&shared.world);
        world
            .droplets
            .get(&droplet_id)
            .map(|d| (d.farm_name.clone(), d.name.clone(), d.image.root.clone()))
    };
    let Some((farm_name, hostname, image_root)) = plan else {
        // Deleted while new.
        lock(&shared.world).finish_action(create_action, ActionStatus::Errored, Utc::now());
        return;
    };
    let farm = Arc::clone(&shared.farm);
    let name = farm_name.clone();
    let result = tokio::task::spawn_blocking(move || {
        start_droplet(&farm, &name, &hostname, image_root.as_deref())
    })
    .await
    .unwrap_or_else(|e| Err(format!("the provisioning thread failed: {e}")));
    let started = result.is_ok();
    let deleted_meanwhile = record_provisioning(&shared, droplet_id, create_action, result);
    if deleted_meanwhile {
        if started {
            remove_from_farm(&shared, farm_name).await;
        }
        // Only now, so whoever waits on the action finds the droplet's processes gone.
        lock(&shared.world).finish_action(create_action, ActionStatus::Errored, Utc::now());
    }
}

/// Stores the provisioning outcome; true when the droplet was deleted meanwhile (a
/// started sshd must then be removed from the farm).
fn record_provisioning(
    shared: &Shared,
    droplet_id: u64,
    create_action: u64,
    result: Result<Started, String>,
) -> bool {
    let now = Utc::now();
    let mut world = lock(&shared.world);
    let Some(droplet) = world.droplets.get_mut(&droplet_id) else {
        return true;
    };
    match result {
        Ok(started) => {
            droplet.address = Some(started.address);
            droplet.root = Some(started.root);
            droplet.host_key_public = Some(started.host_key_public);
            droplet.provisioned = true;
            droplet.status = DropletStatus::Active;
            world.finish_action(create_action, ActionStatus::Completed, now);
        }
        Err(error) => {
            tracing::warn!(droplet = droplet_id, %error, "Provisioning a droplet failed.");
            droplet.error = Some(error);
            world.finish_action(create_action, ActionStatus::Errored, now);
        }
    }
    false
}

fn start_droplet(
    farm: &Mutex<DropletFarm>,
    farm_name: &str,
    hostname: &str,
    image_root: Option<&Path>,
) -> Result<Started, String> {
    let mut farm = lock(farm);
    let droplet = farm.add(farm_name).map_err(|e| error_chain(&e))?;
    let started = Started {
        address: droplet.address,
        root: droplet.root.clone(),
        host_key_public: droplet.host_key_public.clone(),
    };
    if let Some(image_root) = image_root {
        // cloud-init would set the new hostname on a real droplet.
        let copied = disk::replace_tree(image_root, &started.root)
            .and_then(|()| fs::write(started.root.join("etc/hostname"), format!("{hostname}\n")));
        if let Err(error) = copied {
            let _ = farm.remove(farm_name);
            return Err(format!(
                "copying snapshot {} into {}: {error}",
                image_root.display(),
                started.root.display()
            ));
        }
    }
    Ok(started)
}

/// Kills a droplet and deletes its folder, logging a failure (nobody is left to tell).
pub async fn remove_from_farm(shared: &Shared, farm_name: String) {
    let farm = Arc::clone(&shared.farm);
    let result = tokio::task::spawn_blocking(move || {
        lock(&farm)
            .remove(&farm_name)
            .map_err(|e| (farm_name, error_chain(&e)))
    })
    .await;
    match result {
        Ok(Ok(())) => {}
        Ok(Err((droplet, error))) => {
            tracing::warn!(%droplet, %error, "Removing a deleted droplet failed.");
        }
        Err(error) => tracing::warn!(%error, "The droplet removal thread failed."),
    }
}

/// What an action does to the droplet once its time is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Copy the root into a new snapshot.
    Snapshot,
    /// Kill its processes; status off.
    PowerOff,
    /// Start sshd if stopped; status active.
    PowerOn,
    /// Kill and restart; status active.
    PowerCycle,
}

/// The effect of an action type the simulator supports.
pub fn effect_of(kind: &str) -> Option<Effect> {
    match kind {
        "snapshot" => Some(Effect::Snapshot),
        "power_off" | "shutdown" => Some(Effect::PowerOff),
        "power_on" => Some(Effect::PowerOn),
        "power_cycle" | "reboot" => Some(Effect::PowerCycle),
        _ => None,
    }
}

/// Waits `action_duration`, applies the action and completes it.
pub async fn run_action(shared: Arc<Shared>, action_id: u64) {
    tokio::time::sleep(shared.config.action_duration).await;
    let plan = {
        let world = lock(&shared.world);
        world.actions.get(&action_id).and_then(|action| {
            let droplet = world.droplets.get(&action.droplet_id)?;
            Some((
                effect_of(&action.kind)?,
                droplet.id,
                droplet.farm_name.clone(),
                droplet.name.clone(),
                droplet.root.clone()?,
                action.snapshot_name.clone(),
            ))
        })
    };
    let Some((effect, droplet_id, farm_name, name, root, snapshot_name)) = plan else {
        lock(&shared.world).finish_action(action_id, ActionStatus::Errored, Utc::now());
        return;
    };
    let outcome = match effect {
        Effect::Snapshot => take_snapshot(&shared, droplet_id, &name, &root, snapshot_name).await,
        Effect::PowerOff | Effect::PowerOn | Effect::PowerCycle => {
            let farm = Arc::clone(&shared.farm);
            tokio::task::spawn_blocking(move || power(&farm, &farm_name, effect))
                .await
                .unwrap_or_else(|e| Err(format!("the power thread failed: {e}")))
        }
    };
    let now = Utc::now();
    let mut world = lock(&shared.world);
    let status = match outcome {
        Ok(()) => {
            if let Some(droplet) = world.droplets.get_mut(&droplet_id) {
                match effect {
                    Effect::PowerOff => droplet.status = DropletStatus::Off,
                    Effect::PowerOn | Effect::PowerCycle => droplet.status = DropletStatus::Active,
                    Effect::Snapshot => {}
                }
            }
            ActionStatus::Completed
        }
        Err(error) => {
            tracing::warn!(action = action_id, droplet = droplet_id, %error, "An action failed.");
            ActionStatus::Errored
        }
    };
    world.finish_action(action_id, status, now);
}

fn power(farm: &Mutex<DropletFarm>, name: &str, effect: Effect) -> Result<(), String> {
    let mut farm = lock(farm);
    let running = farm
        .get(name)
        .ok_or_else(|| format!("droplet {name} is gone"))?
        .is_running();
    let result = match effect {
        Effect::PowerOff => farm.kill_sshd(name),
        Effect::PowerOn if running => Ok(()),
        Effect::PowerOn => farm.start_sshd(name),
        Effect::PowerCycle => farm.kill_sshd(name).and_then(|()| farm.start_sshd(name)),
        Effect::Snapshot => Ok(()),
    };
    result.map_err(|e| error_chain(&e))
}

async fn take_snapshot(
    shared: &Arc<Shared>,
    droplet_id: u64,
    droplet_name: &str,
    root: &Path,
    name: Option<String>,
) -> Result<(), String> {
    let id = lock(&shared.world).ids.image();
    let target = shared.snapshot_dir(id).join("root");
    let (from, to) = (root.to_path_buf(), target.clone());
    tokio::task::spawn_blocking(move || disk::copy_tree(&from, &to))
        .await
        .map_err(|e| format!("the snapshot thread failed: {e}"))?
        .map_err(|e| format!("copying {} to {}: {e}", root.display(), target.display()))?;
    let now = Utc::now();
    let mut world = lock(&shared.world);
    let Some(droplet) = world.droplets.get_mut(&droplet_id) else {
        return Err(format!(
            "droplet {droplet_id} was deleted during its snapshot"
        ));
    };
    droplet.snapshot_ids.push(id);
    let record = ImageRecord {
        id,
        name: name.unwrap_or_else(|| format!("{droplet_name}-{}", now.timestamp())),
        kind: ImageKind::Snapshot,
        slug: None,
        distribution: droplet.image.distribution.clone(),
        created_at: now,
        resource_id: Some(droplet_id),
        root: Some(target),
        regions: vec![droplet.region.clone()],
        tags: Vec::new(),
    };
    world.images.insert(id, record);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_action_types_map_to_effects() {
        assert_eq!(effect_of("snapshot"), Some(Effect::Snapshot));
        assert_eq!(effect_of("shutdown"), Some(Effect::PowerOff));
        assert_eq!(effect_of("reboot"), Some(Effect::PowerCycle));
        assert_eq!(effect_of("power_on"), Some(Effect::PowerOn));
        assert_eq!(effect_of("resize"), None);
    }
}
