//! vmctl state store (sled).
