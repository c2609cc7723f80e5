//! Rollouts of a Mastodon release (issue 4). The decisions are in [`plan`]; the executor that
//! drives the agents through them is not built yet.

pub mod plan;
