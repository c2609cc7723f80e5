//! The provision state machine's decisions. Pure: the executor passes in what it observed for
//! the current step and the time; the plan says what to do next.

use std::time::Duration;

use vmctl_protocol::{
    meta::Timestamp,
    provision::{ProvisionReason, ProvisionSpec, ProvisionStatus, ProvisionStep},
};

/// Deadlines per step, counted from the step's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// From create to `active` with an address.
    pub active: Duration,
    /// From `active` to an agent answering `facts`.
    pub bootstrap: Duration,
}

/// The droplet as the cloud reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropletSeen {
    /// `active` (else still booting or broken).
    pub active: bool,
    /// Public address once active.
    pub address: Option<String>,
}

/// What the executor observed for the current step.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    /// WaitActive: the new droplet; `None` when the cloud says it does not exist.
    pub droplet: Option<DropletSeen>,
    /// Bootstrap: the new node answers its agent.
    pub node_ready: bool,
    /// The pool's load balancer, if it has one.
    pub load_balancer: Option<String>,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Send the (idempotent-by-name) create.
    Create,
    /// Nothing to do yet; look again after this long.
    Wait(Duration),
    /// The droplet is up: register it as a node at this address, then bootstrap.
    RegisterNode {
        /// Its address.
        address: String,
    },
    /// The agent answers: move on to this step.
    Advance(ProvisionStep),
    /// Add the new droplet to this balancer.
    AddToLoadBalancer(String),
    /// Drain and delete the failed droplet and forget its node.
    DeleteOld {
        /// Its node.
        node: String,
        /// Its droplet.
        droplet_id: u64,
        /// The balancer to drain it from.
        load_balancer: Option<String>,
    },
    /// Give up: delete the new droplet and its node (make-before-break keeps the old one).
    Fail(String),
    /// Nothing left to do.
    Finished,
}

/// How often a booting droplet is polled: a few calls per create, well inside the API budget.
pub const POLL_ACTIVE: Duration = Duration::from_secs(1);
/// How often a bootstrapping node is checked; this reads the store, not the API.
pub const POLL_BOOTSTRAP: Duration = Duration::from_millis(250);

fn expired(status: &ProvisionStatus, limit: Duration, now: Timestamp) -> bool {
    status
        .step_started_at
        .is_some_and(|t| now.signed_duration_since(t).to_std().unwrap_or_default() > limit)
}

/// Decides the next move of a provision.
pub fn plan(
    spec: &ProvisionSpec,
    status: &ProvisionStatus,
    obs: &Observed,
    deadlines: Deadlines,
    now: Timestamp,
) -> Next {
    match status.step {
        ProvisionStep::Create => Next::Create,
        ProvisionStep::WaitActive => match &obs.droplet {
            None => Next::Fail(format!(
                "droplet {} disappeared while booting",
                spec.droplet_name
            )),
            Some(DropletSeen {
                active: true,
                address: Some(a),
            }) => Next::RegisterNode { address: a.clone() },
            Some(_) if expired(status, deadlines.active, now) => Next::Fail(format!(
                "droplet {} was not active with an address within {:?}",
                spec.droplet_name, deadlines.active
            )),
            Some(_) => Next::Wait(POLL_ACTIVE),
        },
        ProvisionStep::Bootstrap if obs.node_ready => match &obs.load_balancer {
            Some(_) => Next::Advance(ProvisionStep::AddToLoadBalancer),
            None => Next::Advance(after_load_balancer(spec)),
        },
        ProvisionStep::Bootstrap if expired(status, deadlines.bootstrap, now) => {
            Next::Fail(format!(
                "the agent on {} did not answer within {:?} of the droplet becoming active",
                spec.droplet_name, deadlines.bootstrap
            ))
        }
        ProvisionStep::Bootstrap => Next::Wait(POLL_BOOTSTRAP),
        ProvisionStep::AddToLoadBalancer => match &obs.load_balancer {
            Some(lb) => Next::AddToLoadBalancer(lb.clone()),
            None => Next::Advance(after_load_balancer(spec)),
        },
        ProvisionStep::DeleteOld => match &spec.reason {
            ProvisionReason::Replace {
                node, droplet_id, ..
            } => Next::DeleteOld {
                node: node.clone(),
                droplet_id: *droplet_id,
                load_balancer: obs.load_balancer.clone(),
            },
            ProvisionReason::ScaleUp => Next::Advance(ProvisionStep::Done),
        },
        ProvisionStep::Done | ProvisionStep::Failed => Next::Finished,
    }
}

/// The step after the balancer: replacements still have the old droplet to delete.
pub fn after_load_balancer(spec: &ProvisionSpec) -> ProvisionStep {
    match spec.reason {
        ProvisionReason::Replace { .. } => ProvisionStep::DeleteOld,
        ProvisionReason::ScaleUp => ProvisionStep::Done,
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;

    fn at(s: i64) -> Timestamp {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    fn spec(replace: bool) -> ProvisionSpec {
        ProvisionSpec {
            pool: "web".into(),
            droplet_name: "dev-web-abc".into(),
            image_id: 7,
            reason: if replace {
                ProvisionReason::Replace {
                    node: "dev-web-old".into(),
                    droplet_id: 3,
                    cause: "unreachable".into(),
                }
            } else {
                ProvisionReason::ScaleUp
            },
        }
    }

    fn status(step: ProvisionStep, started: i64) -> ProvisionStatus {
        ProvisionStatus {
            step,
            step_started_at: Some(at(started)),
            droplet_id: Some(9),
            ..Default::default()
        }
    }

    const D: Deadlines = Deadlines {
        active: Duration::from_secs(60),
        bootstrap: Duration::from_secs(120),
    };

    #[test]
    fn a_replacement_walks_every_step_in_order() {
        let s = spec(true);
        let lb = Observed {
            load_balancer: Some("lb".into()),
            ..Default::default()
        };
        assert_eq!(
            plan(&s, &status(ProvisionStep::Create, 0), &lb, D, at(1)),
            Next::Create
        );
        let booting = Observed {
            droplet: Some(DropletSeen {
                active: false,
                address: None,
            }),
            ..lb.clone()
        };
        assert_eq!(
            plan(
                &s,
                &status(ProvisionStep::WaitActive, 0),
                &booting,
                D,
                at(5)
            ),
            Next::Wait(POLL_ACTIVE)
        );
        let up = Observed {
            droplet: Some(DropletSeen {
                active: true,
                address: Some("127.9.0.1".into()),
            }),
            ..lb.clone()
        };
        assert_eq!(
            plan(&s, &status(ProvisionStep::WaitActive, 0), &up, D, at(5)),
            Next::RegisterNode {
                address: "127.9.0.1".into()
            }
        );
        assert_eq!(
            plan(&s, &status(ProvisionStep::Bootstrap, 0), &lb, D, at(5)),
            Next::Wait(POLL_BOOTSTRAP)
        );
        let ready = Observed {
            node_ready: true,
            ..lb.clone()
        };
        assert_eq!(
            plan(&s, &status(ProvisionStep::Bootstrap, 0), &ready, D, at(5)),
            Next::Advance(ProvisionStep::AddToLoadBalancer)
        );
        assert_eq!(
            plan(
                &s,
                &status(ProvisionStep::AddToLoadBalancer, 0),
                &lb,
                D,
                at(5)
            ),
            Next::AddToLoadBalancer("lb".into())
        );
        assert_eq!(
            plan(&s, &status(ProvisionStep::DeleteOld, 0), &lb, D, at(5)),
            Next::DeleteOld {
                node: "dev-web-old".into(),
                droplet_id: 3,
                load_balancer: Some("lb".into())
            }
        );
        assert_eq!(
            plan(&s, &status(ProvisionStep::Done, 0), &lb, D, at(5)),
            Next::Finished
        );
    }

    #[test]
    fn a_scale_up_without_a_balancer_skips_to_done() {
        let s = spec(false);
        let ready = Observed {
            node_ready: true,
            ..Default::default()
        };
        assert_eq!(
            plan(&s, &status(ProvisionStep::Bootstrap, 0), &ready, D, at(5)),
            Next::Advance(ProvisionStep::Done)
        );
        assert_eq!(after_load_balancer(&spec(true)), ProvisionStep::DeleteOld);
    }

    #[test]
    fn each_wait_has_a_deadline() {
        let s = spec(true);
        let booting = Observed {
            droplet: Some(DropletSeen {
                active: false,
                address: None,
            }),
            ..Default::default()
        };
        assert!(matches!(
            plan(
                &s,
                &status(ProvisionStep::WaitActive, 0),
                &booting,
                D,
                at(61)
            ),
            Next::Fail(_)
        ));
        assert!(matches!(
            plan(
                &s,
                &status(ProvisionStep::Bootstrap, 0),
                &Observed::default(),
                D,
                at(121)
            ),
            Next::Fail(_)
        ));
        assert!(
            matches!(plan(&s, &status(ProvisionStep::WaitActive, 0), &Observed::default(), D, at(1)), Next::Fail(m) if m.contains("disappeared"))
        );
    }
}
