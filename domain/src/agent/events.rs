use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::profile::AgentProfile;
use super::AgentState;

/// Stored forever: never rename a variant. Every event carries the state before it (`from`),
/// the state after it (`state`) and its time (`at`), so time in each state and logged-in time
/// follow from the events alone ([`super::state_durations`]). Who acted is metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AgentEvent {
    /// Created (offline).
    AgentCreated { profile: AgentProfile, state: AgentState, from: AgentState, at: DateTime<Utc> },
    /// The whole profile after the change and the names of the fields that changed.
    AgentUpdated {
        profile: AgentProfile,
        changed: Vec<String>,
        state: AgentState,
        from: AgentState,
        at: DateTime<Utc>,
    },
    /// Skills added or changed: those (`changed`) and the whole map after (`skills`).
    AgentSkillsSet {
        skills: BTreeMap<String, u8>,
        changed: BTreeMap<String, u8>,
        state: AgentState,
        from: AgentState,
        at: DateTime<Utc>,
    },
    /// One skill removed.
    AgentSkillRemoved { skill: String, state: AgentState, from: AgentState, at: DateTime<Utc> },
    /// Deleted (and so logged out).
    AgentDeleted { state: AgentState, from: AgentState, at: DateTime<Utc> },
    /// A person set the state.
    AgentStateChanged { reason: Option<String>, state: AgentState, from: AgentState, at: DateTime<Utc> },
    /// Reserved for an offer until `expires_at`.
    AgentReserved {
        offer_id: Uuid,
        call_id: Uuid,
        queue_id: Option<Uuid>,
        expires_at: DateTime<Utc>,
        state: AgentState,
        from: AgentState,
        at: DateTime<Utc>,
    },
    /// The offer accepted: the agent takes the call (on_call); the missed count resets.
    AgentOfferAccepted {
        offer_id: Uuid,
        call_id: Uuid,
        queue_id: Option<Uuid>,
        state: AgentState,
        from: AgentState,
        at: DateTime<Utc>,
    },
    /// The offer declined: a miss (`missed_in_a_row` after it).
    AgentOfferRejected {
        offer_id: Uuid,
        call_id: Uuid,
        queue_id: Option<Uuid>,
        reason: Option<String>,
        missed_in_a_row: u32,
        state: AgentState,
        from: AgentState,
        at: DateTime<Utc>,
    },
    /// The reservation timed out: a miss.
    AgentOfferExpired {
        offer_id: Uuid,
        call_id: Uuid,
        queue_id: Option<Uuid>,
        missed_in_a_row: u32,
        state: AgentState,
        from: AgentState,
        at: DateTime<Utc>,
    },
    /// The offer withdrawn (caller gone, call routed elsewhere): not a miss.
    AgentOfferCancelled {
        offer_id: Uuid,
        call_id: Uuid,
        queue_id: Option<Uuid>,
        reason: Option<String>,
        state: AgentState,
        from: AgentState,
        at: DateTime<Utc>,
    },
    /// Paused after `missed_offers` misses in a row: state away, reason `missed_offers`.
    AgentAutoPaused {
        reason: String,
        missed_offers: u32,
        state: AgentState,
        from: AgentState,
        at: DateTime<Utc>,
    },
    /// The agent's leg is connected (talk time starts); `offer_id` when it came from an offer.
    AgentCallConnected {
        call_id: Uuid,
        offer_id: Option<Uuid>,
        active_calls: u32,
        state: AgentState,
        from: AgentState,
        at: DateTime<Utc>,
    },
    /// The call ended for the agent; wrap-up until `wrap_up_until` when there is one.
    AgentCallEnded {
        call_id: Uuid,
        offer_id: Option<Uuid>,
        connected_at: Option<DateTime<Utc>>,
        active_calls: u32,
        wrap_up_until: Option<DateTime<Utc>>,
        state: AgentState,
        from: AgentState,
        at: DateTime<Utc>,
    },
    /// After-call work over.
    AgentWrapUpEnded { call_id: Option<Uuid>, state: AgentState, from: AgentState, at: DateTime<Utc> },
}

impl AgentEvent {
    /// The state after the event.
    pub fn state(&self) -> AgentState {
        self.parts().0
    }

    /// The state before the event.
    pub fn from(&self) -> AgentState {
        self.parts().1
    }

    /// When it happened.
    pub fn at(&self) -> DateTime<Utc> {
        self.parts().2
    }

    fn parts(&self) -> (AgentState, AgentState, DateTime<Utc>) {
        match self {
            Self::AgentCreated { state, from, at, .. }
            | Self::AgentUpdated { state, from, at, .. }
            | Self::AgentSkillsSet { state, from, at, .. }
            | Self::AgentSkillRemoved { state, from, at, .. }
            | Self::AgentDeleted { state, from, at }
            | Self::AgentStateChanged { state, from, at, .. }
            | Self::AgentReserved { state, from, at, .. }
            | Self::AgentOfferAccepted { state, from, at, .. }
            | Self::AgentOfferRejected { state, from, at, .. }
            | Self::AgentOfferExpired { state, from, at, .. }
            | Self::AgentOfferCancelled { state, from, at, .. }
            | Self::AgentAutoPaused { state, from, at, .. }
            | Self::AgentCallConnected { state, from, at, .. }
            | Self::AgentCallEnded { state, from, at, .. }
            | Self::AgentWrapUpEnded { state, from, at, .. } => (*state, *from, *at),
        }
    }
}

impl DomainEvent for AgentEvent {
    fn event_type(&self) -> String {
        match self {
            Self::AgentCreated { .. } => "AgentCreated",
            Self::AgentUpdated { .. } => "AgentUpdated",
            Self::AgentSkillsSet { .. } => "AgentSkillsSet",
            Self::AgentSkillRemoved { .. } => "AgentSkillRemoved",
            Self::AgentDeleted { .. } => "AgentDeleted",
            Self::AgentStateChanged { .. } => "AgentStateChanged",
            Self::AgentReserved { .. } => "AgentReserved",
            Self::AgentOfferAccepted { .. } => "AgentOfferAccepted",
            Self::AgentOfferRejected { .. } => "AgentOfferRejected",
            Self::AgentOfferExpired { .. } => "AgentOfferExpired",
            Self::AgentOfferCancelled { .. } => "AgentOfferCancelled",
            Self::AgentAutoPaused { .. } => "AgentAutoPaused",
            Self::AgentCallConnected { .. } => "AgentCallConnected",
            Self::AgentCallEnded { .. } => "AgentCallEnded",
            Self::AgentWrapUpEnded { .. } => "AgentWrapUpEnded",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
