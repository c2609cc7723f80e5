//! Which failed DigitalOcean calls may be sent again, and how a create stays idempotent.
//!
//! The waiting itself is `crate::retry::retry`; this file only turns a [`CloudError`] into a
//! [`Retry`] for the kind of call that failed. Reads, deletes and load-balancer membership
//! changes are idempotent. A create is not: it is re-sent only after a lookup by its unique
//! name found nothing ([`plan_create`]). A droplet action is re-sent only when the request
//! provably never reached DigitalOcean (429, or a failed connect).

use crate::retry::Retry;

use super::error::{CloudError, RetryHint};
use super::types::Droplet;

/// How safe a call is to send twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallKind {
    /// GET, DELETE, and load-balancer add/remove: the same effect however often sent.
    Idempotent,
    /// `POST /v2/droplets`: each attempt first looks the droplet up by name.
    Create,
    /// `POST /v2/droplets/{id}/actions`: a second send would start a second action.
    Action,
}

/// What to do after attempt number `attempt` (1-based) of a `kind` call failed with `err`.
#[must_use]
pub fn classify(
    kind: CallKind,
    attempt: u32,
    max_attempts: u32,
    err: CloudError,
) -> Retry<CloudError> {
    if attempt >= max_attempts {
        return Retry::Permanent(err);
    }
    match (&err, err.retry_hint()) {
        // DigitalOcean refused a 429 before doing anything, so any call may be re-sent.
        (CloudError::RateLimited { retry_after, .. }, _) => {
            let d = *retry_after;
            Retry::After(err, d)
        }
        // These carry their delay for the work queue, not for a retry inside one call: the
        // budget's wait is already longer than the call may take, and a pending event
        // usually takes far longer than a call's backoff.
        (CloudError::BudgetExhausted { .. } | CloudError::PendingEvent { .. }, _) => {
            Retry::Permanent(err)
        }
        (_, RetryHint::Permanent) => Retry::Permanent(err),
        (_, RetryHint::Transient | RetryHint::After(_)) => match kind {
            CallKind::Idempotent | CallKind::Create => Retry::Transient(err),
            CallKind::Action if never_sent(&err) => Retry::Transient(err),
            CallKind::Action => Retry::Permanent(err),
        },
    }
}

/// A failed connect means the request never left this process.
fn never_sent(err: &CloudError) -> bool {
    matches!(err, CloudError::Transport { source, .. } if source.is_connect())
}

/// The idempotency decision for a create: use a droplet with the wanted name if one exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreateStep {
    /// An earlier attempt (or an earlier run of vmctld) already made it.
    UseExisting(Box<Droplet>),
    /// Nothing with that name exists: send the create.
    Send,
}

/// Decides a create from the droplets listed under the request's first tag.
#[must_use]
pub fn plan_create(name: &str, listed: Vec<Droplet>) -> CreateStep {
    listed
        .into_iter()
        .find(|d| d.name == name)
        .map_or(CreateStep::Send, |d| CreateStep::UseExisting(Box::new(d)))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn server() -> CloudError {
        CloudError::Server {
            op: "POST /v2/droplets".into(),
            status: 500,
            id: "server_error".into(),
            message: "boom".into(),
            request_id: None,
        }
    }

    fn droplet(id: u64, name: &str) -> Droplet {
        serde_json::from_value(serde_json::json!({
            "id": id, "name": name, "status": "new", "created_at": "2024-01-01T00:00:00Z"
        }))
        .unwrap()
    }

    #[test]
    fn idempotent_calls_and_creates_retry_server_errors_but_actions_do_not() {
        assert!(matches!(
            classify(CallKind::Idempotent, 1, 5, server()),
            Retry::Transient(_)
        ));
        assert!(matches!(
            classify(CallKind::Create, 1, 5, server()),
            Retry::Transient(_)
        ));
        assert!(matches!(
            classify(CallKind::Action, 1, 5, server()),
            Retry::Permanent(_)
        ));
    }

    #[test]
    fn any_call_retries_a_429_after_its_delay_until_attempts_run_out() {
        let limited = || CloudError::RateLimited {
            op: "POST /v2/droplets/1/actions".into(),
            retry_after: Duration::from_secs(3),
        };
        assert!(
            matches!(classify(CallKind::Action, 1, 5, limited()), Retry::After(_, d) if d == Duration::from_secs(3))
        );
        assert!(matches!(
            classify(CallKind::Idempotent, 5, 5, limited()),
            Retry::Permanent(_)
        ));
    }

    #[test]
    fn permanent_errors_pending_events_and_budget_waits_are_left_to_the_caller() {
        let nf = CloudError::NotFound {
            what: "droplet 1".into(),
            op: "GET".into(),
        };
        assert!(matches!(
            classify(CallKind::Idempotent, 1, 5, nf),
            Retry::Permanent(_)
        ));
        let pe = CloudError::PendingEvent { droplet: 1 };
        assert!(matches!(
            classify(CallKind::Action, 1, 5, pe),
            Retry::Permanent(_)
        ));
        let be = CloudError::BudgetExhausted {
            op: "GET".into(),
            wait: Duration::from_secs(30),
        };
        assert!(matches!(
            classify(CallKind::Idempotent, 1, 5, be),
            Retry::Permanent(_)
        ));
    }

    #[test]
    fn a_create_uses_a_droplet_with_the_same_name_instead_of_sending_again() {
        let listed = vec![droplet(1, "web-a"), droplet(2, "web-b")];
        assert_eq!(
            plan_create("web-b", listed.clone()),
            CreateStep::UseExisting(Box::new(droplet(2, "web-b")))
        );
        assert_eq!(plan_create("web-c", listed), CreateStep::Send);
        assert_eq!(plan_create("web-a", vec![]), CreateStep::Send);
    }
}
