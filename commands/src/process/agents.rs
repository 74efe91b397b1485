//! The agents' timers: a reservation times out (`ExpireOffer`, a miss, and at the N-th miss in
//! a row the aggregate pauses the agent) and after-call work ends (`EndWrapUp`). Both are
//! durable timers set from the events, never sleeping tasks: a restart, or another instance
//! taking over, fires them once it is due, and the aggregate refuses a stale one (the offer was
//! answered, the wrap-up cut short), so no agent stays reserved or in wrap-up.

use async_trait::async_trait;
use chrono::Utc;
use kraliki_domain::agent::{Agent, AgentCommand, AgentEvent};
use kraliki_projections::{EventFilter, StoredEvent};
use serde_json::json;
use uuid::Uuid;

use super::{Effects, ProcessManager, Timer};

pub const NAME: &str = "agent_timers";

pub struct AgentTimers;

fn offer_key(offer_id: Uuid) -> String {
    format!("offer:{offer_id}")
}

fn wrap_up_key(agent: &str) -> String {
    format!("wrap_up:{agent}")
}

#[async_trait]
impl ProcessManager for AgentTimers {
    fn name(&self) -> &'static str {
        NAME
    }

    fn reads(&self) -> EventFilter {
        EventFilter::events(
            "Agent",
            &[
                "AgentReserved",
                "AgentOfferAccepted",
                "AgentOfferRejected",
                "AgentOfferExpired",
                "AgentOfferCancelled",
                "AgentCallEnded",
                "AgentWrapUpEnded",
                "AgentStateChanged",
                "AgentCallConnected",
                "AgentDeleted",
            ],
        )
    }

    async fn handle(&self, e: &StoredEvent, effects: &mut Effects<'_>) -> anyhow::Result<()> {
        let agent = e.aggregate_id.clone();
        match e.decode::<AgentEvent>()? {
            AgentEvent::AgentReserved { offer_id, expires_at, .. } => {
                effects.set_timer(
                    offer_key(offer_id),
                    expires_at,
                    json!({"agent": agent, "offer_id": offer_id}),
                );
            }
            AgentEvent::AgentOfferAccepted { offer_id, .. }
            | AgentEvent::AgentOfferRejected { offer_id, .. }
            | AgentEvent::AgentOfferExpired { offer_id, .. }
            | AgentEvent::AgentOfferCancelled { offer_id, .. } => effects.cancel_timer(offer_key(offer_id)),
            AgentEvent::AgentCallEnded { wrap_up_until: Some(until), .. } => {
                effects.set_timer(wrap_up_key(&agent), until, json!({"agent": agent}));
            }
            AgentEvent::AgentWrapUpEnded { .. }
            | AgentEvent::AgentStateChanged { .. }
            | AgentEvent::AgentCallConnected { .. }
            | AgentEvent::AgentDeleted { .. } => effects.cancel_timer(wrap_up_key(&agent)),
            _ => {}
        }
        Ok(())
    }

    async fn on_timer(&self, timer: &Timer, effects: &mut Effects<'_>) -> anyhow::Result<()> {
        let agent = timer.payload["agent"].as_str().unwrap_or_default().to_owned();
        let at = Utc::now().max(timer.due_at);
        let command = if let Some(offer) = timer.timer_key.strip_prefix("offer:") {
            AgentCommand::ExpireOffer { offer_id: offer.parse()?, at }
        } else if timer.timer_key.starts_with("wrap_up:") {
            AgentCommand::EndWrapUp { at }
        } else {
            return Ok(());
        };
        match effects.execute::<Agent>(&agent, command).await {
            Ok(_) => Ok(()),
            // Answered, withdrawn or cut short meanwhile: nothing to do.
            Err(crate::DispatchError::Rejected(rule)) => {
                tracing::info!(%agent, timer = %timer.timer_key, %rule, "agent timer no longer applies");
                Ok(())
            }
            Err(other) => Err(anyhow::anyhow!("agent timer {}: {other}", timer.timer_key)),
        }
    }
}
