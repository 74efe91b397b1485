use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::profile::{AgentProfile, SkillLevel};
use super::AgentState;
use crate::CommandPolicy;

/// What can be asked of an agent: by admins (profile), by people (state) and by the router and
/// the telephony side (offers and calls). Times come in with the command.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentCommand {
    /// Creates the agent (state offline).
    CreateAgent {
        /// The profile, checked.
        profile: AgentProfile,
        /// When.
        at: DateTime<Utc>,
    },
    /// A JSON merge patch over the profile; `user_id` cannot change.
    UpdateAgent {
        /// RFC 7396 merge patch.
        patch: Map<String, Value>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Adds or changes skills (name + proficiency 1–5).
    SetSkills {
        /// The skills to add or change.
        skills: Vec<SkillLevel>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Removes one skill.
    RemoveSkill {
        /// Its name.
        name: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Deletes the agent (not while reserved or on a call).
    DeleteAgent {
        /// When.
        at: DateTime<Utc>,
    },
    /// A person (the agent or a supervisor) sets the state: available, offline, break,
    /// training, away or busy.
    ChangeState {
        /// The state wanted.
        to: AgentState,
        /// A reason code (break and away reasons), kept on the event.
        reason: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The router reserves the agent for an offer. Never retried on conflict: the offer was
    /// decided from an older view of the agent.
    ReserveAgent {
        /// The offer.
        offer_id: Uuid,
        /// The call offered.
        call_id: Uuid,
        /// The queue it comes from.
        queue_id: Option<Uuid>,
        /// When the reservation times out (then `ExpireOffer`).
        expires_at: DateTime<Utc>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The agent accepts the current offer (→ on_call).
    AcceptOffer {
        /// Must be the current offer.
        offer_id: Uuid,
        /// When.
        at: DateTime<Utc>,
    },
    /// The agent declines the current offer (counts as missed).
    RejectOffer {
        /// Must be the current offer.
        offer_id: Uuid,
        /// Why, if said.
        reason: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The reservation timed out (counts as missed).
    ExpireOffer {
        /// Must be the current offer.
        offer_id: Uuid,
        /// When (not before the offer's `expires_at`).
        at: DateTime<Utc>,
    },
    /// The offer is withdrawn (the caller hung up, the call went elsewhere); not a miss.
    CancelOffer {
        /// Must be the current offer.
        offer_id: Uuid,
        /// Why.
        reason: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The agent's leg is connected to the call: an accepted call, an offered one (answering
    /// accepts it) or a direct call of an available agent.
    ConnectCall {
        /// The call.
        call_id: Uuid,
        /// When.
        at: DateTime<Utc>,
    },
    /// The call ended for the agent (→ wrap_up, or available when wrap-up is 0).
    EndCall {
        /// The call.
        call_id: Uuid,
        /// When.
        at: DateTime<Utc>,
    },
    /// Wrap-up time is over (→ available).
    EndWrapUp {
        /// When (not before the wrap-up's end).
        at: DateTime<Utc>,
    },
}

impl CommandPolicy for AgentCommand {
    /// Every command but `ReserveAgent` names what it acts on (an offer id, a call id) or is a
    /// person's wish, and is re-checked against the newer state; a reservation was decided from
    /// a view that may be stale, so its caller decides again.
    fn retry_on_conflict(&self) -> bool {
        !matches!(self, Self::ReserveAgent { .. })
    }

    fn name(&self) -> &'static str {
        match self {
            Self::CreateAgent { .. } => "CreateAgent",
            Self::UpdateAgent { .. } => "UpdateAgent",
            Self::SetSkills { .. } => "SetSkills",
            Self::RemoveSkill { .. } => "RemoveSkill",
            Self::DeleteAgent { .. } => "DeleteAgent",
            Self::ChangeState { .. } => "ChangeAgentState",
            Self::ReserveAgent { .. } => "ReserveAgent",
            Self::AcceptOffer { .. } => "AcceptOffer",
            Self::RejectOffer { .. } => "RejectOffer",
            Self::ExpireOffer { .. } => "ExpireOffer",
            Self::CancelOffer { .. } => "CancelOffer",
            Self::ConnectCall { .. } => "ConnectAgentCall",
            Self::EndCall { .. } => "EndAgentCall",
            Self::EndWrapUp { .. } => "EndWrapUp",
        }
    }
}
