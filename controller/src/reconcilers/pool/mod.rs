//! The pool reconciler: summarises a pool's nodes into its status. Decisions are in [`plan`].

pub mod managed;
pub mod managed_plan;
pub mod plan;

use vmctl_protocol::{node::NodeSpec, pool::PoolSpec};

use super::{store_err, Ctx};
use crate::queue::{Action, ReconcileError};

/// Reconciles one pool.
///
/// # Errors
/// Store failures.
pub async fn reconcile(ctx: &Ctx, name: &str) -> Result<Action, ReconcileError> {
    let Some(pool) = ctx.store.get::<PoolSpec>(name).map_err(store_err)? else {
        return Ok(Action::AwaitChange);
    };
    if let Some(template) = pool.spec.droplets.clone() {
        return managed::reconcile(ctx, &pool, &template).await;
    }
    let nodes = ctx.store.list::<NodeSpec>().map_err(store_err)?;
    let refs: Vec<_> = nodes
        .iter()
        .map(|n| (n.metadata.name.as_str(), &n.spec, &n.status))
        .collect();
    let status = plan::plan(
        name,
        pool.metadata.generation,
        &pool.status,
        &refs,
        chrono::Utc::now(),
    );
    if status != pool.status {
        match ctx
            .store
            .put_status::<PoolSpec>(name, status, vmctl_state::Precondition::None)
        {
            Ok(_) | Err(vmctl_state::StoreError::NotFound { .. }) => {}
            Err(e) => return Err(store_err(e)),
        }
    }
    Ok(Action::AwaitChange)
}
#[cfg(test)]
#[path = "managed_plan_tests.rs"]
mod managed_plan_tests;
