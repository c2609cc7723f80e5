//! The generic stored object: metadata, a spec users write and a status controllers write.

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::meta::ObjectMeta;

/// A kind of object the store holds. Implemented on the spec type.
pub trait Resource:
    Serialize + DeserializeOwned + Clone + PartialEq + Send + Sync + 'static
{
    /// The kind's name, used as the store's key prefix and in the API (`node`, `pool`, ...).
    const KIND: &'static str;
    /// What controllers observe and write. `Default` is the status of a fresh object.
    type Status: Serialize + DeserializeOwned + Clone + PartialEq + Default + Send + Sync + 'static;
}

/// A stored object. The spec has one writer (the user, through `apply`) and the status has one
/// writer (the controller); the store writes them separately.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "S: Serialize, T: Serialize",
    deserialize = "S: DeserializeOwned, T: DeserializeOwned + Default"
))]
pub struct Object<S, T> {
    /// Name and versions.
    pub metadata: ObjectMeta,
    /// Desired state.
    pub spec: S,
    /// Observed state.
    #[serde(default)]
    pub status: T,
}

/// The stored object of a resource kind.
pub type Stored<R> = Object<R, <R as Resource>::Status>;
