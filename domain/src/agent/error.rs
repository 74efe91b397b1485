use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::AgentState;
use crate::values::InvalidValue;

/// Why an agent command was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AgentError {
    /// No such agent (or deleted).
    #[error("agent not found")]
    NotFound,
    /// Created already.
    #[error("agent already exists")]
    AlreadyExists,
    /// Field problems, every one.
    #[error("invalid agent input")]
    Invalid(Vec<InvalidValue>),
    /// The state machine has no such transition.
    #[error("an agent cannot go from {from} to {to}")]
    InvalidTransition { from: AgentState, to: AgentState },
    /// reserved, on_call and wrap_up follow offers and calls; a person cannot set them.
    #[error("{to} is set by calls and offers, not by hand")]
    NotSettableByHand { to: AgentState },
    /// An agent with a live offer or a call cannot log out.
    #[error("an agent who is {state} cannot go offline; finish the offer or call first")]
    OfflineWhileBusy { state: AgentState },
    /// The agent holds a live reservation already.
    #[error("the agent is reserved for offer {offer_id} already")]
    AlreadyReserved { offer_id: Uuid },
    /// Only an available agent (or one on a call with free capacity) can be reserved.
    #[error("an agent who is {state} cannot be offered a call")]
    NotAvailable { state: AgentState },
    /// Every line is taken.
    #[error("the agent has no free capacity ({active_calls} of {capacity} calls)")]
    NoFreeCapacity { active_calls: u32, capacity: u32 },
    /// The offer named is not the agent's live offer (stale, unknown, expired or answered).
    #[error("offer {offer_id} is not the agent's current offer")]
    OfferNotCurrent { offer_id: Uuid },
    /// An expiry before the offer's time.
    #[error("the offer expires at {expires_at}, not yet")]
    OfferNotExpired { expires_at: DateTime<Utc> },
    /// The agent is on that call already.
    #[error("the agent is on call {call_id} already")]
    CallAlreadyAssigned { call_id: Uuid },
    /// The agent is not on that call.
    #[error("the agent is not on call {call_id}")]
    CallNotActive { call_id: Uuid },
    /// An end of wrap-up before its time.
    #[error("wrap-up lasts until {until}")]
    WrapUpNotOver { until: DateTime<Utc> },
    /// No such skill to remove.
    #[error("the agent has no skill {0:?}")]
    SkillNotFound(String),
    /// Cannot delete while reserved or on a call.
    #[error("an agent who is {state} cannot be deleted")]
    InUse { state: AgentState },
}
