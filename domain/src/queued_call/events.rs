use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::OfferOutcome;
use crate::queue::OverflowTarget;
use crate::routing::{CallToRoute, RoutingDecision, RoutingInput};

/// Stored forever: never rename a variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum QueuedCallEvent {
    /// The call joined `queue_id` (its `visit`-th time in a queue); what it requires.
    CallQueued {
        /// 1 for the first queue, 2 after an overflow into another, …
        visit: u32,
        /// The queue.
        queue_id: Uuid,
        /// The call as the router sees it (`arrived_at` = `at`, `waited_ms` = 0).
        call: CallToRoute,
        /// Waiting ends here with an overflow (the queue's max wait), if the queue has one.
        overflow_at: Option<DateTime<Utc>>,
        /// When.
        at: DateTime<Utc>,
    },
    /// One routing decision, with every input it used: [`crate::routing::decide`] of `input` is
    /// `decision`, always. A winner gets the offer `offer_id`, reserved until `offer_expires_at`.
    RoutingDecided {
        /// The visit decided for.
        visit: u32,
        /// 1, 2, … within the visit.
        number: u32,
        /// Everything the engine read.
        input: Box<RoutingInput>,
        /// What it answered.
        decision: Box<RoutingDecision>,
        /// The offer to the winner.
        offer_id: Option<Uuid>,
        /// The winner's reservation ends then.
        offer_expires_at: Option<DateTime<Utc>>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The offer ended without the agent taking the call: the call waits again.
    CallOfferEnded {
        /// The offer.
        offer_id: Uuid,
        /// Its agent.
        agent_id: Uuid,
        /// How it ended.
        outcome: OfferOutcome,
        /// When.
        at: DateTime<Utc>,
    },
    /// An agent took the call: it leaves the queue.
    CallAssigned {
        /// The visit that ended.
        visit: u32,
        /// The offer accepted.
        offer_id: Uuid,
        /// The agent.
        agent_id: Uuid,
        /// The queue left.
        queue_id: Uuid,
        /// Time in the queue.
        waited_ms: u64,
        /// When.
        at: DateTime<Utc>,
    },
    /// The caller left (hung up, or the call was taken out of the queue).
    CallAbandoned {
        /// The visit that ended.
        visit: u32,
        /// The queue left.
        queue_id: Uuid,
        /// Why (`caller_hung_up`, `removed`, …).
        reason: String,
        /// The offer pending then, to withdraw from its agent.
        offer_id: Option<Uuid>,
        /// Its agent.
        agent_id: Option<Uuid>,
        /// Time in the queue.
        waited_ms: u64,
        /// A short abandon: the caller left within [`super::SHORT_ABANDON_MS`] (the KPIs count
        /// these apart).
        #[serde(default)]
        short: bool,
        /// When.
        at: DateTime<Utc>,
    },
    /// The call waited the queue's max wait and goes to the overflow target.
    CallOverflowed {
        /// The visit that ended.
        visit: u32,
        /// The queue left.
        queue_id: Uuid,
        /// Where it goes.
        target: OverflowTarget,
        /// Time in the queue.
        waited_ms: u64,
        /// When.
        at: DateTime<Utc>,
    },
}

impl QueuedCallEvent {
    /// When it happened.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Self::CallQueued { at, .. }
            | Self::RoutingDecided { at, .. }
            | Self::CallOfferEnded { at, .. }
            | Self::CallAssigned { at, .. }
            | Self::CallAbandoned { at, .. }
            | Self::CallOverflowed { at, .. } => *at,
        }
    }
}

impl DomainEvent for QueuedCallEvent {
    fn event_type(&self) -> String {
        match self {
            Self::CallQueued { .. } => "CallQueued",
            Self::RoutingDecided { .. } => "RoutingDecided",
            Self::CallOfferEnded { .. } => "CallOfferEnded",
            Self::CallAssigned { .. } => "CallAssigned",
            Self::CallAbandoned { .. } => "CallAbandoned",
            Self::CallOverflowed { .. } => "CallOverflowed",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
