//! What the engine reports of its work as it happens, for a host's metrics and traces: answers
//! given again from an idempotency key, appends decided again after losing a race, and
//! attempts to deliver an outbox message. A host's storage calls are reported by the bindings,
//! which time them.

use std::rc::Rc;

/// One event of the engine's work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A request was answered with what its idempotency key wrote the first time.
    Replayed {
        reseller: &'a str,
        key: &'a str,
        entries: usize,
    },
    /// An append to a reseller's wallet was not written (`reason`: `stale`, another writer
    /// appended first; `changed`, the reseller changed; `claimed`, a queued request's key was
    /// used already), and the requests are decided again.
    Retried {
        reseller: &'a str,
        reason: &'static str,
    },
    /// An outbox message was handed to the mailer: its `attempt`, and why it was not sent
    /// (`None`: it was).
    OutboxAttempt {
        id: &'a str,
        kind: &'a str,
        attempt: u64,
        failed: Option<&'a str>,
    },
}

/// Where events go: a host's listener. It must not fail (whatever it does is its own).
pub type Observer = Rc<dyn Fn(&Event<'_>)>;
