use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::OfferOutcome;
use crate::queue::OverflowTarget;
use crate::routing::{CallToRoute, RoutingInput};
use crate::CommandPolicy;

/// What can be asked of a call in a queue: by the API (enqueue, remove) and by the router.
#[derive(Debug, Clone, PartialEq)]
pub enum QueuedCallCommand {
    /// Puts the call in a queue. `call.call_id` must be the stream's id; `arrived_at` and
    /// `waited_ms` are set from `at`.
    Enqueue {
        /// The queue.
        queue_id: Uuid,
        /// What the call requires.
        call: CallToRoute,
        /// The queue's max wait (0: none).
        max_wait_seconds: u32,
        /// When.
        at: DateTime<Utc>,
    },
    /// Records a routing decision. The call part of `input` is the aggregate's own (its
    /// requirements, its wait at `input.now`, the agents who turned it down): the router gives
    /// the candidates, the strategy, the pointer and the seed. A decision without a winner that
    /// says what the last one said is not recorded again.
    Decide {
        /// The engine's input (its `call` is replaced).
        input: RoutingInput,
        /// How long the winner's reservation lasts.
        offer_timeout_seconds: u32,
        /// The (visit, decision number) the caller decided for: refused when the call is at
        /// another, so that the caller may act on the offer the decision names (its id follows
        /// from them) without reading the event back.
        expected: Option<(u32, u32)>,
    },
    /// The pending offer ended without the agent taking the call.
    EndOffer {
        /// Must be the pending offer.
        offer_id: Uuid,
        /// Must be the agent it was made to (another agent's answer under the same id — a
        /// reservation withdrawn as not the decision's — leaves the offer standing).
        agent_id: Uuid,
        /// How.
        outcome: OfferOutcome,
        /// When.
        at: DateTime<Utc>,
    },
    /// The agent of the pending offer took the call.
    Assign {
        /// Must be the pending offer.
        offer_id: Uuid,
        /// Must be the agent it was made to.
        agent_id: Uuid,
        /// When.
        at: DateTime<Utc>,
    },
    /// The caller left the queue.
    Abandon {
        /// Why (`caller_hung_up`, `removed`).
        reason: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The max wait is over: the call goes to `target` (only while waiting without an offer).
    Overflow {
        /// The queue's overflow target.
        target: OverflowTarget,
        /// When.
        at: DateTime<Utc>,
    },
}

impl CommandPolicy for QueuedCallCommand {
    /// A decision was made from a view that may be stale: its caller decides again.
    fn retry_on_conflict(&self) -> bool {
        !matches!(self, Self::Decide { .. })
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Enqueue { .. } => "EnqueueCall",
            Self::Decide { .. } => "DecideRouting",
            Self::EndOffer { .. } => "EndCallOffer",
            Self::Assign { .. } => "AssignCall",
            Self::Abandon { .. } => "AbandonQueuedCall",
            Self::Overflow { .. } => "OverflowCall",
        }
    }
}
