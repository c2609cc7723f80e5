//! The manifest of a running farm: a JSON file that tells other processes (`vmctld --dev`,
//! the CLI) where each droplet listens and which host key it presents.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::TestbedError;
use super::farm::DropletFarm;

/// Every droplet of a farm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// In the farm's order.
    pub droplets: Vec<ManifestDroplet>,
}

/// One droplet, as another process needs to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestDroplet {
    /// Its name and hostname.
    pub name: String,
    /// The pool it was started for, when started by pool.
    pub pool: Option<String>,
    /// Its IPv4 address, e.g. `"127.34.12.9"`.
    pub address: String,
    /// Its SSH port (22).
    pub port: u16,
    /// Absolute path of its root folder.
    pub root: String,
    /// `"ssh-ed25519 AAAA..."`.
    pub host_key_public: String,
}

impl Manifest {
    /// Describes `farm`; `pool_of` names each droplet's pool.
    pub fn from_farm(farm: &DropletFarm, pool_of: impl Fn(&str) -> Option<String>) -> Manifest {
        Manifest {
            droplets: farm
                .droplets()
                .iter()
                .map(|d| ManifestDroplet {
                    name: d.name.clone(),
                    pool: pool_of(&d.name),
                    address: d.address.to_string(),
                    port: d.port,
                    root: d.root.display().to_string(),
                    host_key_public: d.host_key_public.clone(),
                })
                .collect(),
        }
    }

    /// Writes the manifest so that a reader sees the old file or the whole new one, never
    /// a half-written one: a temp file in the same folder, then a rename.
    pub fn write_atomic(&self, path: &Path) -> Result<(), TestbedError> {
        let text =
            serde_json::to_string_pretty(self).map_err(|source| TestbedError::ParseManifest {
                path: path.to_path_buf(),
                source,
            })?;
        let mut temp_name = path.as_os_str().to_owned();
        temp_name.push(format!(".tmp{}", std::process::id()));
        let temp = Path::new(&temp_name);
        fs::write(temp, text + "\n").map_err(|source| TestbedError::WriteFile {
            path: temp.to_path_buf(),
            source,
        })?;
        fs::rename(temp, path).map_err(|source| TestbedError::WriteFile {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads a manifest written by [`Manifest::write_atomic`].
    pub fn read(path: &Path) -> Result<Manifest, TestbedError> {
        let text = fs::read_to_string(path).map_err(|source| TestbedError::ReadFile {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| TestbedError::ParseManifest {
            path: path.to_path_buf(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_json_shape_is_stable() {
        let manifest = Manifest {
            droplets: vec![ManifestDroplet {
                name: "web-1".into(),
                pool: Some("web".into()),
                address: "127.34.12.9".into(),
                port: 22,
                root: "/tmp/farm/web-1/root".into(),
                host_key_public: "ssh-ed25519 AAAAC3Nz".into(),
            }],
        };
        let json = serde_json::to_value(&manifest).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"droplets": [{
                "name": "web-1", "pool": "web", "address": "127.34.12.9", "port": 22,
                "root": "/tmp/farm/web-1/root", "host_key_public": "ssh-ed25519 AAAAC3Nz"
            }]})
        );
        let back: Manifest = serde_json::from_value(json).unwrap();
        assert_eq!(back, manifest);
    }

    #[test]
    fn write_atomic_then_read_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        let manifest = Manifest { droplets: vec![] };
        manifest.write_atomic(&path).unwrap();
        assert_eq!(Manifest::read(&path).unwrap(), manifest);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "temp file left behind"
        );
    }
}
