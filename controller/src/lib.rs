//! vmctl controller library.

pub mod retry;
pub mod config;
pub mod client;
pub mod cli;
pub mod queue;
pub mod fleet;
