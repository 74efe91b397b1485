//! The agent: a company user who takes calls, with skills, languages and a state machine that
//! every offer and call goes through. One stream per agent, so the aggregate is the lock: an
//! agent is never reserved twice and never stays reserved after an offer is answered, withdrawn
//! or timed out.
//!
//! ```text
//! person:  offline | available | break | training | away | busy  ⇄ each other (and from wrap_up)
//! router:  available ─Reserve→ reserved ─Accept→ on_call ─EndCall→ wrap_up ─EndWrapUp→ available
//!                                 │ Reject / Expire (a miss) / Cancel → available
//!                                 └ N misses in a row → away (reason missed_offers)
//! ```
//! An agent with capacity > 1 on a call can hold one offer at a time while staying on_call.

mod commands;
mod error;
mod events;
pub mod profile;
#[cfg(test)]
mod tests;

pub use commands::AgentCommand;
pub use error::AgentError;
pub use events::AgentEvent;
pub use profile::{AgentEndpoint, AgentProfile, SkillLevel};

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::routing::fields::skill_name;
use crate::routing::Candidate;
use crate::values::InvalidValue;

/// The reason code of an automatic pause.
pub const MISSED_OFFERS: &str = "missed_offers";

/// Agent states (the seed's names plus reserved and wrap_up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    /// Logged out.
    #[default]
    Offline,
    /// Ready for calls.
    Available,
    /// Offered a call, not answered yet.
    Reserved,
    /// On a call.
    OnCall,
    /// After-call work.
    WrapUp,
    /// On a break.
    Break,
    /// In training.
    Training,
    /// Away (also: paused after missed offers).
    Away,
    /// Busy with something else.
    Busy,
}

impl AgentState {
    /// Every state.
    pub const ALL: [AgentState; 9] = [
        Self::Offline,
        Self::Available,
        Self::Reserved,
        Self::OnCall,
        Self::WrapUp,
        Self::Break,
        Self::Training,
        Self::Away,
        Self::Busy,
    ];

    /// The stable wire name (`on_call`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Offline => "offline",
            Self::Available => "available",
            Self::Reserved => "reserved",
            Self::OnCall => "on_call",
            Self::WrapUp => "wrap_up",
            Self::Break => "break",
            Self::Training => "training",
            Self::Away => "away",
            Self::Busy => "busy",
        }
    }

    /// The state with this wire name, if any.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw.trim())
    }

    /// Whether a person may set this state (reserved, on_call and wrap_up follow calls).
    pub fn settable_by_hand(self) -> bool {
        !matches!(self, Self::Reserved | Self::OnCall | Self::WrapUp)
    }
}

impl fmt::Display for AgentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The live reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// The offer.
    pub offer_id: Uuid,
    /// The call offered.
    pub call_id: Uuid,
    /// Its queue.
    pub queue_id: Option<Uuid>,
    /// When it was made.
    pub offered_at: DateTime<Utc>,
    /// When it times out.
    pub expires_at: DateTime<Utc>,
}

/// A call the agent has taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignedCall {
    /// The call.
    pub call_id: Uuid,
    /// The offer it came from (none for a direct call).
    pub offer_id: Option<Uuid>,
    /// When the agent's leg was connected.
    pub connected_at: Option<DateTime<Utc>>,
}

/// After-call work in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrapUp {
    /// The call it follows.
    pub call_id: Uuid,
    /// When it ends.
    pub until: DateTime<Utc>,
}

/// How an offer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferOutcome {
    /// Accepted (or answered).
    Accepted,
    /// Declined.
    Rejected,
    /// Timed out.
    Expired,
    /// Withdrawn.
    Cancelled,
}

/// The last offer that ended, so a repeated answer to it is recognised (idempotent) and a
/// stale one refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedOffer {
    /// The offer.
    pub offer_id: Uuid,
    /// How it ended.
    pub outcome: OfferOutcome,
}

/// The agent aggregate's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    /// Created.
    pub created: bool,
    /// Deleted.
    pub deleted: bool,
    /// The profile.
    pub profile: AgentProfile,
    /// The current state.
    pub state: AgentState,
    /// The reason code of the current state, if any.
    pub reason: Option<String>,
    /// Since when the agent is in `state`.
    pub state_since: Option<DateTime<Utc>>,
    /// Since when the agent is available (none when not available).
    pub available_since: Option<DateTime<Utc>>,
    /// The live reservation.
    pub offer: Option<Offer>,
    /// Calls the agent is on.
    pub calls: Vec<AssignedCall>,
    /// After-call work in progress.
    pub wrap_up: Option<WrapUp>,
    /// Missed (rejected or expired) offers in a row.
    pub missed_in_a_row: u32,
    /// The last offer that ended.
    pub last_offer: Option<ResolvedOffer>,
    /// When the last call ended.
    pub last_call_ended_at: Option<DateTime<Utc>>,
    /// The last call that ended (a repeated end of it is a no-op).
    pub last_ended_call: Option<Uuid>,
}

fn invalid(field: &'static str, code: &'static str, message: &str) -> AgentError {
    AgentError::Invalid(vec![InvalidValue::new(field, code, message.to_owned())])
}

fn reason_code(raw: Option<String>) -> Result<Option<String>, AgentError> {
    match raw.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(r) if r.chars().count() > 100 || r.chars().any(char::is_control) => {
            Err(invalid("reason", "invalid_reason", "a reason code of at most 100 characters"))
        }
        Some(r) => Ok(Some(r.to_owned())),
    }
}

impl Agent {
    fn require_exists(&self) -> Result<(), AgentError> {
        if !self.created || self.deleted {
            return Err(AgentError::NotFound);
        }
        Ok(())
    }

    fn busy(&self) -> bool {
        self.offer.is_some() || !self.calls.is_empty()
    }

    fn active_calls(&self) -> u32 {
        u32::try_from(self.calls.len()).unwrap_or(u32::MAX)
    }

    /// The state once an offer ends without being taken.
    fn free_state(&self) -> AgentState {
        if self.calls.is_empty() {
            AgentState::Available
        } else {
            AgentState::OnCall
        }
    }

    fn current_offer(&self, offer_id: Uuid) -> Result<Offer, AgentError> {
        match self.offer {
            Some(o) if o.offer_id == offer_id => Ok(o),
            _ => Err(AgentError::OfferNotCurrent { offer_id }),
        }
    }

    fn resolved_as(&self, offer_id: Uuid, outcome: OfferOutcome) -> bool {
        self.last_offer == Some(ResolvedOffer { offer_id, outcome })
    }

    fn auto_pause(&self, missed: u32, state: AgentState, at: DateTime<Utc>) -> Option<AgentEvent> {
        let max = self.profile.max_missed_offers;
        (max > 0 && missed >= max && state == AgentState::Available).then(|| AgentEvent::AgentAutoPaused {
            reason: MISSED_OFFERS.to_owned(),
            missed_offers: missed,
            state: AgentState::Away,
            from: state,
            at,
        })
    }

    /// A miss (reject or expiry) and, at the N-th in a row, the pause.
    fn missed(
        &self,
        offer: Offer,
        reason: Option<String>,
        expired: bool,
        at: DateTime<Utc>,
    ) -> Vec<AgentEvent> {
        let missed_in_a_row = self.missed_in_a_row + 1;
        let state = self.free_state();
        let (offer_id, call_id, queue_id, from) = (offer.offer_id, offer.call_id, offer.queue_id, self.state);
        let miss = if expired {
            AgentEvent::AgentOfferExpired { offer_id, call_id, queue_id, missed_in_a_row, state, from, at }
        } else {
            AgentEvent::AgentOfferRejected {
                offer_id,
                call_id,
                queue_id,
                reason,
                missed_in_a_row,
                state,
                from,
                at,
            }
        };
        let mut events = vec![miss];
        events.extend(self.auto_pause(missed_in_a_row, state, at));
        events
    }

    /// Decides a command: the events it leads to (none when it changes nothing), or why not.
    /// `handle` writes exactly these; exposed for callers that decide synchronously.
    pub fn decide(&self, command: AgentCommand) -> Result<Vec<AgentEvent>, AgentError> {
        use AgentState::*;
        let from = self.state;
        let events = match command {
            AgentCommand::CreateAgent { profile, at } => {
                if self.created {
                    return Err(AgentError::AlreadyExists);
                }
                let profile = profile.validated().map_err(AgentError::Invalid)?;
                vec![AgentEvent::AgentCreated { profile, state: Offline, from: Offline, at }]
            }
            AgentCommand::UpdateAgent { patch, at } => {
                self.require_exists()?;
                let profile = self.profile.patched(&patch).map_err(AgentError::Invalid)?;
                if profile.user_id != self.profile.user_id {
                    return Err(invalid("user_id", "immutable", "an agent's user cannot change"));
                }
                let changed = self.profile.changed_fields(&profile);
                if changed.is_empty() {
                    return Ok(Vec::new());
                }
                vec![AgentEvent::AgentUpdated { profile, changed, state: from, from, at }]
            }
            AgentCommand::SetSkills { skills, at } => {
                self.require_exists()?;
                if skills.is_empty() {
                    return Err(invalid("skills", "required", "at least one skill"));
                }
                let mut problems = Vec::new();
                let mut after = self.profile.skills.clone();
                for (i, s) in skills.iter().enumerate() {
                    let name = skill_name(&format!("skills[{i}].name"), &s.name);
                    if !crate::routing::fields::is_level(s.proficiency) {
                        problems.push(InvalidValue::new(
                            format!("skills[{i}].proficiency"),
                            "out_of_range",
                            "a proficiency from 1 to 5",
                        ));
                    }
                    match name {
                        Ok(name) => {
                            after.insert(name, s.proficiency);
                        }
                        Err(e) => problems.push(e),
                    }
                }
                if !problems.is_empty() {
                    return Err(AgentError::Invalid(problems));
                }
                let changed: BTreeMap<String, u8> = after
                    .iter()
                    .filter(|(k, v)| self.profile.skills.get(*k) != Some(*v))
                    .map(|(k, v)| (k.clone(), *v))
                    .collect();
                if changed.is_empty() {
                    return Ok(Vec::new());
                }
                vec![AgentEvent::AgentSkillsSet { skills: after, changed, state: from, from, at }]
            }
            AgentCommand::RemoveSkill { name, at } => {
                self.require_exists()?;
                let skill = skill_name("name", &name).map_err(|e| AgentError::Invalid(vec![e]))?;
                if !self.profile.skills.contains_key(&skill) {
                    return Err(AgentError::SkillNotFound(skill));
                }
                vec![AgentEvent::AgentSkillRemoved { skill, state: from, from, at }]
            }
            AgentCommand::DeleteAgent { at } => {
                self.require_exists()?;
                if self.busy() {
                    return Err(AgentError::InUse { state: from });
                }
                vec![AgentEvent::AgentDeleted { state: Offline, from, at }]
            }
            AgentCommand::ChangeState { to, reason, at } => {
                self.require_exists()?;
                if !to.settable_by_hand() {
                    return Err(AgentError::NotSettableByHand { to });
                }
                let reason = reason_code(reason)?;
                if self.busy() || matches!(from, Reserved | OnCall) {
                    if to == Offline {
                        return Err(AgentError::OfflineWhileBusy { state: from });
                    }
                    return Err(AgentError::InvalidTransition { from, to });
                }
                if to == from && reason == self.reason {
                    return Ok(Vec::new());
                }
                vec![AgentEvent::AgentStateChanged { reason, state: to, from, at }]
            }
            AgentCommand::ReserveAgent { offer_id, call_id, queue_id, expires_at, at } => {
                self.require_exists()?;
                if let Some(o) = self.offer {
                    if o.offer_id == offer_id && o.call_id == call_id {
                        return Ok(Vec::new());
                    }
                    return Err(AgentError::AlreadyReserved { offer_id: o.offer_id });
                }
                if self.last_offer.is_some_and(|l| l.offer_id == offer_id) {
                    return Err(AgentError::OfferNotCurrent { offer_id });
                }
                if !matches!(from, Available | OnCall) {
                    return Err(AgentError::NotAvailable { state: from });
                }
                if self.active_calls() >= self.profile.capacity {
                    return Err(AgentError::NoFreeCapacity {
                        active_calls: self.active_calls(),
                        capacity: self.profile.capacity,
                    });
                }
                if self.calls.iter().any(|c| c.call_id == call_id) {
                    return Err(AgentError::CallAlreadyAssigned { call_id });
                }
                if expires_at <= at {
                    return Err(invalid("expires_at", "in_the_past", "must be after the reservation"));
                }
                let state = if from == Available { Reserved } else { OnCall };
                vec![AgentEvent::AgentReserved { offer_id, call_id, queue_id, expires_at, state, from, at }]
            }
            AgentCommand::AcceptOffer { offer_id, at } => {
                self.require_exists()?;
                if self.resolved_as(offer_id, OfferOutcome::Accepted) {
                    return Ok(Vec::new());
                }
                let o = self.current_offer(offer_id)?;
                if at >= o.expires_at {
                    return Err(AgentError::OfferNotCurrent { offer_id });
                }
                vec![AgentEvent::AgentOfferAccepted {
                    offer_id,
                    call_id: o.call_id,
                    queue_id: o.queue_id,
                    state: OnCall,
                    from,
                    at,
                }]
            }
            AgentCommand::RejectOffer { offer_id, reason, at } => {
                self.require_exists()?;
                if self.resolved_as(offer_id, OfferOutcome::Rejected) {
                    return Ok(Vec::new());
                }
                let o = self.current_offer(offer_id)?;
                let reason = reason_code(reason)?;
                self.missed(o, reason, false, at)
            }
            AgentCommand::ExpireOffer { offer_id, at } => {
                self.require_exists()?;
                if self.resolved_as(offer_id, OfferOutcome::Expired) {
                    return Ok(Vec::new());
                }
                let o = self.current_offer(offer_id)?;
                if at < o.expires_at {
                    return Err(AgentError::OfferNotExpired { expires_at: o.expires_at });
                }
                self.missed(o, None, true, at)
            }
            AgentCommand::CancelOffer { offer_id, reason, at } => {
                self.require_exists()?;
                if self.resolved_as(offer_id, OfferOutcome::Cancelled) {
                    return Ok(Vec::new());
                }
                let o = self.current_offer(offer_id)?;
                let reason = reason_code(reason)?;
                vec![AgentEvent::AgentOfferCancelled {
                    offer_id,
                    call_id: o.call_id,
                    queue_id: o.queue_id,
                    reason,
                    state: self.free_state(),
                    from,
                    at,
                }]
            }
            AgentCommand::ConnectCall { call_id, at } => {
                self.require_exists()?;
                if let Some(c) = self.calls.iter().find(|c| c.call_id == call_id) {
                    if c.connected_at.is_some() {
                        return Ok(Vec::new());
                    }
                    let active_calls = self.active_calls();
                    return Ok(vec![AgentEvent::AgentCallConnected {
                        call_id,
                        offer_id: c.offer_id,
                        active_calls,
                        state: OnCall,
                        from,
                        at,
                    }]);
                }
                if let Some(o) = self.offer {
                    if o.call_id != call_id {
                        return Err(AgentError::AlreadyReserved { offer_id: o.offer_id });
                    }
                    if at >= o.expires_at {
                        return Err(AgentError::OfferNotCurrent { offer_id: o.offer_id });
                    }
                    // Answering the offered call accepts it.
                    return Ok(vec![
                        AgentEvent::AgentOfferAccepted {
                            offer_id: o.offer_id,
                            call_id,
                            queue_id: o.queue_id,
                            state: OnCall,
                            from,
                            at,
                        },
                        AgentEvent::AgentCallConnected {
                            call_id,
                            offer_id: Some(o.offer_id),
                            active_calls: self.active_calls() + 1,
                            state: OnCall,
                            from: OnCall,
                            at,
                        },
                    ]);
                }
                if !matches!(from, Available | OnCall) {
                    return Err(AgentError::InvalidTransition { from, to: OnCall });
                }
                if self.active_calls() >= self.profile.capacity {
                    return Err(AgentError::NoFreeCapacity {
                        active_calls: self.active_calls(),
                        capacity: self.profile.capacity,
                    });
                }
                vec![AgentEvent::AgentCallConnected {
                    call_id,
                    offer_id: None,
                    active_calls: self.active_calls() + 1,
                    state: OnCall,
                    from,
                    at,
                }]
            }
            AgentCommand::EndCall { call_id, at } => {
                self.require_exists()?;
                let Some(call) = self.calls.iter().find(|c| c.call_id == call_id) else {
                    if self.last_ended_call == Some(call_id) {
                        return Ok(Vec::new());
                    }
                    return Err(AgentError::CallNotActive { call_id });
                };
                let active_calls = self.active_calls() - 1;
                let wrap = i64::from(self.profile.wrap_up_seconds);
                let (state, wrap_up_until) = if active_calls > 0 {
                    (OnCall, None)
                } else if self.offer.is_some() {
                    (Reserved, None)
                } else if wrap > 0 {
                    (WrapUp, Some(at + Duration::seconds(wrap)))
                } else {
                    (Available, None)
                };
                let mut events = vec![AgentEvent::AgentCallEnded {
                    call_id,
                    offer_id: call.offer_id,
                    connected_at: call.connected_at,
                    active_calls,
                    wrap_up_until,
                    state,
                    from,
                    at,
                }];
                // Misses while on another call (capacity > 1) pause the agent once they are free.
                let max = self.profile.max_missed_offers;
                if active_calls == 0 && self.offer.is_none() && max > 0 && self.missed_in_a_row >= max {
                    events.push(AgentEvent::AgentAutoPaused {
                        reason: MISSED_OFFERS.to_owned(),
                        missed_offers: self.missed_in_a_row,
                        state: Away,
                        from: state,
                        at,
                    });
                }
                events
            }
            AgentCommand::EndWrapUp { at } => {
                self.require_exists()?;
                if from != WrapUp {
                    return Err(AgentError::InvalidTransition { from, to: Available });
                }
                if let Some(w) = self.wrap_up {
                    if at < w.until {
                        return Err(AgentError::WrapUpNotOver { until: w.until });
                    }
                }
                vec![AgentEvent::AgentWrapUpEnded {
                    call_id: self.wrap_up.map(|w| w.call_id),
                    state: Available,
                    from,
                    at,
                }]
            }
        };
        Ok(events)
    }

    /// The agent as a routing candidate, with the figures only the read side knows.
    pub fn candidate(
        &self,
        agent_id: Uuid,
        member_index: usize,
        rejected_this_call: bool,
        calls_answered_today: u32,
        occupancy: f64,
    ) -> Candidate {
        Candidate {
            agent_id,
            state: self.state,
            capacity: self.profile.capacity,
            active_calls: self.active_calls(),
            has_offer: self.offer.is_some(),
            rejected_this_call,
            skills: self.profile.skills.clone(),
            languages: self.profile.languages.clone(),
            last_call_ended_at: self.last_call_ended_at,
            available_since: self.available_since,
            calls_answered_today,
            occupancy,
            rating: self.profile.rating,
            attributes: self.profile.attributes.clone(),
            member_index,
        }
    }
}

impl Aggregate for Agent {
    const TYPE: &'static str = "Agent";
    type Command = AgentCommand;
    type Event = AgentEvent;
    type Error = AgentError;
    type Services = ();

    async fn handle(
        &mut self,
        command: AgentCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), AgentError> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: AgentEvent) {
        let (before, state, at) = (self.state, event.state(), event.at());
        // Some(r): the event sets the reason; None: it keeps it unless the state changes.
        let mut reason: Option<Option<String>> = None;
        match event {
            AgentEvent::AgentCreated { profile, .. } => {
                self.created = true;
                self.profile = profile;
            }
            AgentEvent::AgentUpdated { profile, .. } => self.profile = profile,
            AgentEvent::AgentSkillsSet { skills, .. } => self.profile.skills = skills,
            AgentEvent::AgentSkillRemoved { skill, .. } => {
                self.profile.skills.remove(&skill);
            }
            AgentEvent::AgentDeleted { .. } => self.deleted = true,
            AgentEvent::AgentStateChanged { reason: r, .. } => {
                reason = Some(r);
                self.wrap_up = None;
            }
            AgentEvent::AgentReserved { offer_id, call_id, queue_id, expires_at, at, .. } => {
                self.offer = Some(Offer { offer_id, call_id, queue_id, offered_at: at, expires_at });
            }
            AgentEvent::AgentOfferAccepted { offer_id, call_id, .. } => {
                self.offer = None;
                self.calls.push(AssignedCall { call_id, offer_id: Some(offer_id), connected_at: None });
                self.missed_in_a_row = 0;
                self.last_offer = Some(ResolvedOffer { offer_id, outcome: OfferOutcome::Accepted });
            }
            AgentEvent::AgentOfferRejected { offer_id, missed_in_a_row, .. } => {
                self.offer = None;
                self.missed_in_a_row = missed_in_a_row;
                self.last_offer = Some(ResolvedOffer { offer_id, outcome: OfferOutcome::Rejected });
            }
            AgentEvent::AgentOfferExpired { offer_id, missed_in_a_row, .. } => {
                self.offer = None;
                self.missed_in_a_row = missed_in_a_row;
                self.last_offer = Some(ResolvedOffer { offer_id, outcome: OfferOutcome::Expired });
            }
            AgentEvent::AgentOfferCancelled { offer_id, .. } => {
                self.offer = None;
                self.last_offer = Some(ResolvedOffer { offer_id, outcome: OfferOutcome::Cancelled });
            }
            AgentEvent::AgentAutoPaused { reason: r, .. } => {
                reason = Some(Some(r));
                self.missed_in_a_row = 0;
            }
            AgentEvent::AgentCallConnected { call_id, offer_id, at, .. } => {
                match self.calls.iter_mut().find(|c| c.call_id == call_id) {
                    Some(c) => c.connected_at = Some(at),
                    None => self.calls.push(AssignedCall { call_id, offer_id, connected_at: Some(at) }),
                }
                self.wrap_up = None;
            }
            AgentEvent::AgentCallEnded { call_id, wrap_up_until, at, .. } => {
                self.calls.retain(|c| c.call_id != call_id);
                self.last_call_ended_at = Some(at);
                self.last_ended_call = Some(call_id);
                self.wrap_up = wrap_up_until.map(|until| WrapUp { call_id, until });
            }
            AgentEvent::AgentWrapUpEnded { .. } => self.wrap_up = None,
        }
        match reason {
            Some(r) => self.reason = r,
            None if state != before => self.reason = None,
            None => {}
        }
        if state != before {
            self.state_since = Some(at);
        }
        self.available_since = match (state, before) {
            (AgentState::Available, AgentState::Available) => self.available_since.or(Some(at)),
            (AgentState::Available, _) => Some(at),
            _ => None,
        };
        self.state = state;
    }
}

/// Milliseconds spent in each state from `events` (one agent's stream, in order) until
/// `until`: each event's `state` lasts until the next event's `at`.
pub fn state_durations(events: &[AgentEvent], until: DateTime<Utc>) -> BTreeMap<AgentState, i64> {
    let mut out = BTreeMap::new();
    for (i, e) in events.iter().enumerate() {
        let end = events.get(i + 1).map_or(until, AgentEvent::at);
        let ms = (end - e.at()).num_milliseconds().max(0);
        *out.entry(e.state()).or_insert(0) += ms;
    }
    out
}

/// Milliseconds logged in (any state but offline) from `events` until `until`.
pub fn logged_in_ms(events: &[AgentEvent], until: DateTime<Utc>) -> i64 {
    state_durations(events, until)
        .into_iter()
        .filter(|(s, _)| *s != AgentState::Offline)
        .map(|(_, ms)| ms)
        .sum()
}
