//! The DigitalOcean API v2 client: droplets, droplet actions, snapshots and load-balancer
//! membership, behind the narrow [`Cloud`] trait so executors can be tested with fakes.
//!
//! Files: `client.rs` (the calls), `http.rs` (the tower stack and the one send/retry path),
//! `rate_limit.rs` (client budget and server headers, as a tower layer), `retry_policy.rs`
//! (what may be re-sent; create idempotency), `pagination.rs`, `types.rs` (wire shapes),
//! `error.rs`, `token.rs` (the secret). The contract for shapes and statuses is the official
//! spec in `shared/reference/digitalocean-openapi.v2.json`; the tests check bodies against it.

mod client;
mod error;
mod http;
mod pagination;
mod rate_limit;
mod retry_policy;
mod token;
mod types;

use std::time::Duration;

use futures::future::BoxFuture;

pub use client::{CloudConfig, DoClient, DEFAULT_BASE_URL};
pub use error::{ApiErrorBody, CloudError, RetryHint, DEFAULT_RETRY_AFTER};
pub use pagination::{next_url, parse_page, Page, PageCursor, MAX_PAGES, PER_PAGE};
pub use rate_limit::{
    retry_after, Budget, RateLimitLayer, RateLimitService, RateLimitSnapshot, RateLimiter,
    ServerLimits,
};
pub use retry_policy::{classify, plan_create, CallKind, CreateStep};
pub use token::{CloudToken, TokenError};
pub use types::{
    Account, Action, ActionStatus, CreateDroplet, Droplet, DropletAction, DropletStatus, ImageRef,
    LoadBalancer, Snapshot,
};

use crate::retry::Deadline;

/// The cloud operations reconcilers use. [`DoClient`] is the real one; tests pass fakes.
pub trait Cloud: Send + Sync {
    /// See [`DoClient::create_droplet`].
    fn create_droplet<'a>(
        &'a self,
        req: &'a CreateDroplet,
    ) -> BoxFuture<'a, Result<Droplet, CloudError>>;
    /// See [`DoClient::get_droplet`].
    fn get_droplet(&self, id: u64) -> BoxFuture<'_, Result<Option<Droplet>, CloudError>>;
    /// See [`DoClient::list_droplets_by_tag`].
    fn list_droplets_by_tag<'a>(
        &'a self,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Droplet>, CloudError>>;
    /// See [`DoClient::delete_droplet`].
    fn delete_droplet(&self, id: u64) -> BoxFuture<'_, Result<(), CloudError>>;
    /// See [`DoClient::droplet_action`].
    fn droplet_action(
        &self,
        id: u64,
        action: DropletAction,
    ) -> BoxFuture<'_, Result<Action, CloudError>>;
    /// See [`DoClient::get_action`].
    fn get_action(&self, id: u64) -> BoxFuture<'_, Result<Action, CloudError>>;
    /// See [`DoClient::wait_action`].
    fn wait_action<'a>(
        &'a self,
        id: u64,
        deadline: &'a Deadline,
        poll: Duration,
    ) -> BoxFuture<'a, Result<Action, CloudError>>;
    /// See [`DoClient::list_snapshots`].
    fn list_snapshots(&self) -> BoxFuture<'_, Result<Vec<Snapshot>, CloudError>>;
    /// See [`DoClient::find_snapshot_by_name`].
    fn find_snapshot_by_name<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Snapshot>, CloudError>>;
    /// See [`DoClient::delete_snapshot`].
    fn delete_snapshot<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), CloudError>>;
    /// See [`DoClient::get_load_balancer`].
    fn get_load_balancer<'a>(
        &'a self,
        lb: &'a str,
    ) -> BoxFuture<'a, Result<LoadBalancer, CloudError>>;
    /// See [`DoClient::lb_add_droplets`].
    fn lb_add_droplets<'a>(
        &'a self,
        lb: &'a str,
        ids: &'a [u64],
    ) -> BoxFuture<'a, Result<(), CloudError>>;
    /// See [`DoClient::lb_remove_droplets`].
    fn lb_remove_droplets<'a>(
        &'a self,
        lb: &'a str,
        ids: &'a [u64],
    ) -> BoxFuture<'a, Result<(), CloudError>>;
}

impl Cloud for DoClient {
    fn create_droplet<'a>(
        &'a self,
        req: &'a CreateDroplet,
    ) -> BoxFuture<'a, Result<Droplet, CloudError>> {
        Box::pin(DoClient::create_droplet(self, req))
    }
    fn get_droplet(&self, id: u64) -> BoxFuture<'_, Result<Option<Droplet>, CloudError>> {
        Box::pin(DoClient::get_droplet(self, id))
    }
    fn list_droplets_by_tag<'a>(
        &'a self,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Droplet>, CloudError>> {
        Box::pin(DoClient::list_droplets_by_tag(self, tag))
    }
    fn delete_droplet(&self, id: u64) -> BoxFuture<'_, Result<(), CloudError>> {
        Box::pin(DoClient::delete_droplet(self, id))
    }
    fn droplet_action(
        &self,
        id: u64,
        action: DropletAction,
    ) -> BoxFuture<'_, Result<Action, CloudError>> {
        Box::pin(DoClient::droplet_action(self, id, action))
    }
    fn get_action(&self, id: u64) -> BoxFuture<'_, Result<Action, CloudError>> {
        Box::pin(DoClient::get_action(self, id))
    }
    fn wait_action<'a>(
        &'a self,
        id: u64,
        deadline: &'a Deadline,
        poll: Duration,
    ) -> BoxFuture<'a, Result<Action, CloudError>> {
        Box::pin(DoClient::wait_action(self, id, deadline, poll))
    }
    fn list_snapshots(&self) -> BoxFuture<'_, Result<Vec<Snapshot>, CloudError>> {
        Box::pin(DoClient::list_snapshots(self))
    }
    fn find_snapshot_by_name<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Snapshot>, CloudError>> {
        Box::pin(DoClient::find_snapshot_by_name(self, name))
    }
    fn delete_snapshot<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), CloudError>> {
        Box::pin(DoClient::delete_snapshot(self, id))
    }
    fn get_load_balancer<'a>(
        &'a self,
        lb: &'a str,
    ) -> BoxFuture<'a, Result<LoadBalancer, CloudError>> {
        Box::pin(DoClient::get_load_balancer(self, lb))
    }
    fn lb_add_droplets<'a>(
        &'a self,
        lb: &'a str,
        ids: &'a [u64],
    ) -> BoxFuture<'a, Result<(), CloudError>> {
        Box::pin(DoClient::lb_add_droplets(self, lb, ids))
    }
    fn lb_remove_droplets<'a>(
        &'a self,
        lb: &'a str,
        ids: &'a [u64],
    ) -> BoxFuture<'a, Result<(), CloudError>> {
        Box::pin(DoClient::lb_remove_droplets(self, lb, ids))
    }
}
