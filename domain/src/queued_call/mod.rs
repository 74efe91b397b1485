//! A call in a queue: one stream per call (its id is the call's), which may visit several
//! queues in turn (an overflow into another queue is the next visit). The router records every
//! routing decision here, with its whole input (`RoutingDecided`), so that an auditor or a test
//! re-decides it from the event alone; the agent's reservation follows from the decision, and the
//! offer's end (accepted, rejected, missed, withdrawn) comes back as a command.
//!
//! The aggregate is what keeps a call from being offered twice at once: a decision is recorded
//! only while the call waits with no offer pending, and it names the offer it makes.

pub mod announce;
mod commands;
mod error;
mod events;
#[cfg(test)]
mod tests;

pub use commands::QueuedCallCommand;
pub use error::QueuedCallError;
pub use events::QueuedCallEvent;

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::routing::fields::{language_tag, skill_levels};
use crate::routing::{decide, CallToRoute, NoWinner, SkillStep};
use crate::values::InvalidValue;

/// A caller who leaves within this is a short abandon (DOMAIN.md: left out of the abandon rate).
pub const SHORT_ABANDON_MS: u64 = 5_000;

/// Caller priority bounds (higher is served first).
pub const PRIORITY_RANGE: std::ops::RangeInclusive<i32> = 0..=100;

/// Where a call stands in its current (or last) queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum QueueStatus {
    /// Waiting, no offer pending.
    Waiting,
    /// Offered to an agent, waiting for the answer.
    Offered,
    /// An agent took it.
    Assigned,
    /// The caller left.
    Abandoned,
    /// Sent to the overflow target.
    Overflowed,
}

impl QueueStatus {
    /// The stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Offered => "offered",
            Self::Assigned => "assigned",
            Self::Abandoned => "abandoned",
            Self::Overflowed => "overflowed",
        }
    }

    /// Still in the queue.
    pub fn in_queue(self) -> bool {
        matches!(self, Self::Waiting | Self::Offered)
    }
}

impl fmt::Display for QueueStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an offer ended without the agent taking the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OfferOutcome {
    /// The agent declined (the agent is not offered this call again).
    Rejected,
    /// The reservation timed out (a missed offer; not offered again).
    Expired,
    /// Withdrawn (the agent's offer was cancelled).
    Cancelled,
    /// The agent could not be reserved (the decision's view was stale).
    Unavailable,
}

impl OfferOutcome {
    /// Whether the agent turned the call down (never offered it again in this visit).
    pub fn turned_down(self) -> bool {
        matches!(self, Self::Rejected | Self::Expired)
    }
}

/// The offer waiting for an agent's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingOffer {
    /// The offer.
    pub offer_id: Uuid,
    /// Its agent.
    pub agent_id: Uuid,
    /// When the reservation ends.
    pub expires_at: DateTime<Utc>,
}

/// The queued call aggregate's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueuedCall {
    /// The current (or last) visit; 0: never queued.
    pub visit: u32,
    /// Where it stands in that visit.
    pub status: Option<QueueStatus>,
    /// The visit's queue.
    pub queue_id: Option<Uuid>,
    /// The call as routed (requirements, arrival).
    pub call: Option<CallToRoute>,
    /// Decisions recorded in this visit.
    pub decisions: u32,
    /// The offer pending.
    pub offer: Option<PendingOffer>,
    /// Agents who rejected or missed the call in this visit.
    pub turned_down: BTreeSet<Uuid>,
    /// What the last decision without a winner said (not recorded again while it holds).
    pub last_none: Option<(NoWinner, SkillStep)>,
}

/// The offer id of decision `number` of `visit`: derived, so a replayed decision names the same.
pub fn offer_id(call_id: Uuid, visit: u32, number: u32) -> Uuid {
    Uuid::new_v5(&call_id, format!("offer:{visit}:{number}").as_bytes())
}

/// The seed of decision `number` of `visit` (the custom strategy's weighted draw).
pub fn seed(call_id: Uuid, visit: u32, number: u32) -> u64 {
    let id = Uuid::new_v5(&call_id, format!("seed:{visit}:{number}").as_bytes());
    u64::from_le_bytes(id.as_bytes()[..8].try_into().expect("8 bytes"))
}

fn millis_between(from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    u64::try_from((to - from).num_milliseconds()).unwrap_or(0)
}

/// Checks and normalizes what a call requires (names as `call.<field>`).
pub fn validated_call(mut call: CallToRoute) -> Result<CallToRoute, Vec<InvalidValue>> {
    let mut problems = Vec::new();
    if call.call_id.is_nil() {
        problems.push(InvalidValue::new("call_id", "required", "the call's id"));
    }
    if !PRIORITY_RANGE.contains(&call.priority) {
        problems.push(InvalidValue::new("priority", "out_of_range", "a priority from 0 to 100"));
    }
    call.required_skills = skill_levels("required_skills", &call.required_skills, &mut problems);
    if let Some(lang) = call.required_language.take() {
        match language_tag("language", &lang) {
            Ok(tag) => call.required_language = Some(tag),
            Err(e) => problems.push(e),
        }
    }
    if problems.is_empty() {
        Ok(call)
    } else {
        Err(problems)
    }
}

impl QueuedCall {
    fn status_now(&self) -> Result<QueueStatus, QueuedCallError> {
        match self.status {
            Some(s) if s.in_queue() => Ok(s),
            _ => Err(QueuedCallError::NotQueued),
        }
    }

    fn waited_ms(&self, at: DateTime<Utc>) -> u64 {
        self.call.as_ref().map(|c| millis_between(c.arrived_at, at)).unwrap_or(0)
    }

    fn queue(&self) -> Uuid {
        self.queue_id.unwrap_or_default()
    }

    fn current_offer(&self, offer_id: Uuid, agent_id: Uuid) -> Result<PendingOffer, QueuedCallError> {
        self.status_now()?;
        self.offer
            .filter(|o| o.offer_id == offer_id && o.agent_id == agent_id)
            .ok_or(QueuedCallError::OfferNotCurrent { offer_id })
    }

    /// Decides a command: the events it leads to (none when it changes nothing), or why not.
    pub fn decide(&self, command: QueuedCallCommand) -> Result<Vec<QueuedCallEvent>, QueuedCallError> {
        let event = match command {
            QueuedCallCommand::Enqueue { queue_id, call, max_wait_seconds, at } => {
                if let (Some(status), Some(queue_id)) = (self.status, self.queue_id) {
                    if status.in_queue() {
                        return Err(QueuedCallError::AlreadyQueued { queue_id, status });
                    }
                }
                let mut call = validated_call(call).map_err(QueuedCallError::Invalid)?;
                if let Some(before) = &self.call {
                    if before.call_id != call.call_id {
                        return Err(QueuedCallError::Invalid(vec![InvalidValue::new(
                            "call_id",
                            "mismatch",
                            "a queued call keeps its call id",
                        )]));
                    }
                }
                (call.queue_id, call.arrived_at, call.waited_ms) = (Some(queue_id), at, 0);
                let overflow_at =
                    (max_wait_seconds > 0).then(|| at + Duration::seconds(i64::from(max_wait_seconds)));
                QueuedCallEvent::CallQueued { visit: self.visit + 1, queue_id, call, overflow_at, at }
            }
            QueuedCallCommand::Decide { mut input, offer_timeout_seconds, expected } => {
                let status = self.status_now()?;
                if status != QueueStatus::Waiting {
                    return Err(QueuedCallError::NotWaiting { status });
                }
                let mut call = self.call.clone().ok_or(QueuedCallError::NotQueued)?;
                call.waited_ms = millis_between(call.arrived_at, input.now);
                let number = self.decisions + 1;
                if expected.is_some_and(|e| e != (self.visit, number)) {
                    return Err(QueuedCallError::StaleDecision { visit: self.visit, number });
                }
                input.call = call;
                input.seed = seed(input.call.call_id, self.visit, number);
                for c in &mut input.candidates {
                    c.rejected_this_call |= self.turned_down.contains(&c.agent_id);
                }
                let decision = decide(&input);
                let (offer_id, offer_expires_at) = match decision.winner {
                    Some(_) => (
                        Some(offer_id(input.call.call_id, self.visit, number)),
                        Some(input.now + Duration::seconds(i64::from(offer_timeout_seconds.max(1)))),
                    ),
                    None => {
                        let said = decision.why_none.map(|w| (w, decision.skill_step));
                        if said.is_some() && said == self.last_none {
                            return Ok(Vec::new());
                        }
                        (None, None)
                    }
                };
                let at = input.now;
                QueuedCallEvent::RoutingDecided {
                    visit: self.visit,
                    number,
                    input: Box::new(input),
                    decision: Box::new(decision),
                    offer_id,
                    offer_expires_at,
                    at,
                }
            }
            QueuedCallCommand::EndOffer { offer_id, agent_id, outcome, at } => {
                let offer = self.current_offer(offer_id, agent_id)?;
                QueuedCallEvent::CallOfferEnded { offer_id, agent_id: offer.agent_id, outcome, at }
            }
            QueuedCallCommand::Assign { offer_id, agent_id, at } => {
                let offer = self.current_offer(offer_id, agent_id)?;
                QueuedCallEvent::CallAssigned {
                    visit: self.visit,
                    offer_id,
                    agent_id: offer.agent_id,
                    queue_id: self.queue(),
                    waited_ms: self.waited_ms(at),
                    at,
                }
            }
            QueuedCallCommand::Abandon { reason, at } => {
                self.status_now()?;
                let waited_ms = self.waited_ms(at);
                QueuedCallEvent::CallAbandoned {
                    visit: self.visit,
                    queue_id: self.queue(),
                    reason,
                    offer_id: self.offer.map(|o| o.offer_id),
                    agent_id: self.offer.map(|o| o.agent_id),
                    waited_ms,
                    short: waited_ms < SHORT_ABANDON_MS,
                    at,
                }
            }
            QueuedCallCommand::Overflow { target, at } => {
                let status = self.status_now()?;
                if status != QueueStatus::Waiting {
                    return Err(QueuedCallError::NotWaiting { status });
                }
                QueuedCallEvent::CallOverflowed {
                    visit: self.visit,
                    queue_id: self.queue(),
                    target,
                    waited_ms: self.waited_ms(at),
                    at,
                }
            }
        };
        Ok(vec![event])
    }
}

impl Aggregate for QueuedCall {
    const TYPE: &'static str = "QueuedCall";
    type Command = QueuedCallCommand;
    type Event = QueuedCallEvent;
    type Error = QueuedCallError;
    type Services = ();

    async fn handle(
        &mut self,
        command: QueuedCallCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), QueuedCallError> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: QueuedCallEvent) {
        match event {
            QueuedCallEvent::CallQueued { visit, queue_id, call, .. } => {
                *self = Self {
                    visit,
                    status: Some(QueueStatus::Waiting),
                    queue_id: Some(queue_id),
                    call: Some(call),
                    ..Self::default()
                };
            }
            QueuedCallEvent::RoutingDecided { number, decision, offer_id, offer_expires_at, .. } => {
                self.decisions = number;
                match (decision.winner, offer_id, offer_expires_at) {
                    (Some(agent_id), Some(offer_id), Some(expires_at)) => {
                        self.offer = Some(PendingOffer { offer_id, agent_id, expires_at });
                        self.status = Some(QueueStatus::Offered);
                        self.last_none = None;
                    }
                    _ => self.last_none = decision.why_none.map(|w| (w, decision.skill_step)),
                }
            }
            QueuedCallEvent::CallOfferEnded { agent_id, outcome, .. } => {
                self.offer = None;
                self.status = Some(QueueStatus::Waiting);
                self.last_none = None;
                if outcome.turned_down() {
                    self.turned_down.insert(agent_id);
                }
            }
            QueuedCallEvent::CallAssigned { .. } => {
                self.offer = None;
                self.status = Some(QueueStatus::Assigned);
            }
            QueuedCallEvent::CallAbandoned { .. } => {
                self.offer = None;
                self.status = Some(QueueStatus::Abandoned);
            }
            QueuedCallEvent::CallOverflowed { .. } => self.status = Some(QueueStatus::Overflowed),
        }
    }
}
