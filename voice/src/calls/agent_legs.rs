//! Calls reach people, on Twilio: a caller waiting in one of our queues is held at the carrier,
//! hears their position, and is bridged to the agent the router reserved.
//!
//! - Hold: the caller's leg runs `<Enqueue waitUrl=…>q:<call id></Enqueue>` — a carrier queue of
//!   its own per call, so that dialing it (`<Dial><Queue>`) bridges exactly that caller (a
//!   shared carrier queue would hand over whoever waited longest there, not whom our router
//!   chose). Twilio fetches the wait URL each time its TwiML has played: we answer the position
//!   and estimated wait in the caller's language, then a pause of the announcement interval.
//! - Offer: when the router reserves an agent who has an endpoint (phone, SIP, client), the
//!   [`CarrierLegs`] manager places the agent's leg once (the leg is written down before the
//!   carrier is asked) with the offer's remaining time as the ring timeout. The agent answering
//!   is the offer accepted (`ConnectCall`), and the leg's TwiML dials the caller's queue: Twilio
//!   bridges them. No answer, busy, failed: the offer is rejected with that reason (a miss) and
//!   the router tries the next agent; an offer withdrawn or expired cancels the ringing leg.
//! - The agent's leg completing ends the agent's call (wrap-up follows).
//! - On Telnyx the caller is held with `enqueue` into a Telnyx queue of their own and nothing
//!   asks for the announcements: a timer per waiting caller (`announce:<call>:<visit>`) sends a
//!   `speak` with the same text at the queue's interval, until the caller no longer waits.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use kraliki_commands::{CommandContext, DispatchError};
use kraliki_commands::{Effects, ProcessManager, Timer};
use kraliki_domain::agent::{Agent, AgentCommand, AgentEndpoint, AgentEvent};
use kraliki_domain::queued_call::announce::{estimated_wait_seconds, position_announcement};
use kraliki_domain::queued_call::{QueuedCall, QueuedCallEvent};
use kraliki_domain::routing::order_waiting_for;
use kraliki_projections::call::CallRow;
use kraliki_projections::{
    agent as agents, call as calls, queue as queues, queued_call as entries, EventFilter, StoredEvent,
};
use uuid::Uuid;

use super::webhooks::query_map;
use super::{CallService, CallsError, TwilioRequest, WebhookAnswer};
use crate::telephony::telnyx_control::{
    Bridge, ClientState, CommandId, Dial as TelnyxDial, Enqueue as TelnyxEnqueue, Hangup as TelnyxHangup,
    Speak,
};
use crate::telephony::twilio_rest::{CallInstructions, CallProgressEvent, CreateCall, EndCall, UpdateCall};
use crate::telephony::twiml::{Dial, DialTarget, Say, VoiceResponse};
use crate::telephony::webhooks::{Disposition, TelephonyEvent, TelephonyWebhook};

/// The carrier queue holding one caller.
pub fn carrier_queue(call: Uuid) -> String {
    format!("q:{call}")
}

fn bad(what: &str) -> CallsError {
    CallsError::InvalidWebhook(what.to_owned())
}

fn uuid_of(query: &std::collections::HashMap<String, String>, key: &str) -> Result<Uuid, CallsError> {
    query.get(key).and_then(|v| v.parse().ok()).ok_or_else(|| bad(&format!("{key} is missing")))
}

/// What a waiting caller hears now (see [`CallService::announcement`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// The visit the caller waits in.
    pub visit: u32,
    /// The language tag and text, when the queue announces.
    pub say: Option<(&'static str, String)>,
    /// Seconds until the next one (the queue's interval, at least 5).
    pub interval: u32,
    pub announces: bool,
}

/// The timer of a Telnyx caller's next position announcement.
fn announce_key(call: Uuid, visit: u32) -> String {
    format!("announce:{call}:{visit}")
}

/// An agent's leg as its Telnyx `client_state` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegState {
    pub tenant: Uuid,
    pub agent: Uuid,
    pub call: Uuid,
    pub offer: Uuid,
}

fn leg_state(tenant: Uuid, agent: Uuid, call: Uuid, offer: Uuid) -> ClientState {
    ClientState::from_bytes(format!("leg:{tenant}:{agent}:{call}:{offer}").as_bytes())
}

/// The agent's leg a Telnyx `client_state` names, if it names one.
pub(crate) fn leg_from_client_state(raw: &str) -> Option<LegState> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(raw.trim()).ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    let mut parts = text.strip_prefix("leg:")?.split(':').map(|p| p.parse::<Uuid>().ok());
    let (tenant, agent, call, offer) = (parts.next()??, parts.next()??, parts.next()??, parts.next()??);
    Some(LegState { tenant, agent, call, offer })
}

/// What the carrier dials for an agent's endpoint.
fn dial_string(endpoint: &AgentEndpoint) -> String {
    match endpoint {
        AgentEndpoint::Phone { number } => number.clone(),
        AgentEndpoint::Sip { uri } => uri.clone(),
        AgentEndpoint::Client { identity } => format!("client:{identity}"),
    }
}

impl CallService {
    /// Puts the caller's live Twilio leg (`sid`) on hold in its own carrier queue.
    pub async fn hold_caller(&self, call: Uuid, sid: &str) -> Result<(), CallsError> {
        let wait = self.public_url(&format!("/api/telephony/twilio/queue/wait?call_id={call}"))?;
        let twiml = VoiceResponse::new()
            .enqueue_waiting(carrier_queue(call), &wait)
            .map_err(|e| CallsError::Store(anyhow::anyhow!("{e}")))?
            .to_xml();
        self.twilio()?
            .redirect_call(sid, CallInstructions::Twiml(twiml))
            .await
            .map(|_| ())
            .map_err(|e| CallsError::CarrierRefused(format!("Twilio refused the hold: {e}")))
    }

    /// Puts the caller's live Telnyx leg on hold in its own Telnyx queue (its hold audio); the
    /// agent's leg is bridged to the caller's call control id when answered.
    pub async fn hold_caller_telnyx(&self, call: Uuid, call_control_id: &str) -> Result<(), CallsError> {
        let id = CommandId::parse(format!("hold-{call}"))
            .map_err(|e| CallsError::Store(anyhow::anyhow!("{e}")))?;
        self.telnyx()?
            .enqueue(call_control_id, &TelnyxEnqueue::new(carrier_queue(call)), &id)
            .await
            .map(|_| ())
            .map_err(|e| CallsError::CarrierRefused(format!("Telnyx refused the hold: {e}")))
    }

    /// Twilio's wait URL: the caller's position and estimated wait, then a pause of the queue's
    /// announcement interval (Twilio asks again when it has played).
    pub async fn twilio_queue_wait(&self, req: TwilioRequest<'_>) -> Result<WebhookAnswer, CallsError> {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(req.body).into_owned().collect();
        self.check_twilio(&req, &pairs)?;
        let call = uuid_of(&query_map(req.query), "call_id")?;
        let Some(tenant) = self.call_tenant(call).await?.and_then(|t| t.parse::<Uuid>().ok()) else {
            return Ok(WebhookAnswer::Twiml(VoiceResponse::new().pause(5).to_xml()));
        };
        let Some(now) = self.announcement(tenant, call).await? else {
            return Ok(WebhookAnswer::Twiml(VoiceResponse::new().pause(5).to_xml()));
        };
        let mut response = VoiceResponse::new();
        if let Some((tag, text)) = now.say {
            response = response.say(Say::new(text).language(tag));
        }
        Ok(WebhookAnswer::Twiml(response.pause(now.interval.min(600)).to_xml()))
    }

    /// What a waiting caller hears now: their position and estimated wait in their language
    /// (none when the queue does not announce), and the seconds until the next time. `None`
    /// when the call does not wait in a queue.
    pub async fn announcement(&self, tenant: Uuid, call: Uuid) -> Result<Option<Announcement>, CallsError> {
        let pool = self.pool();
        // The call's own stream says whether it waits (the read model may not have it yet,
        // when Twilio asks the moment the caller is put on hold).
        let (queued, _) =
            self.dispatcher().load::<QueuedCall>(&call.to_string()).await.map_err(CallsError::Store)?;
        let (Some(queue_id), Some(routed)) = (queued.queue_id, queued.call.as_ref()) else { return Ok(None) };
        if !queued.status.is_some_and(|s| s.in_queue()) {
            return Ok(None);
        }
        let settings = match queues::get(pool, tenant, queue_id).await? {
            Some(q) => q.settings().map_err(CallsError::Store)?,
            None => return Ok(None),
        };
        let now = Utc::now();
        let waiting = entries::in_queue(pool, tenant, queue_id).await?;
        let mut list = Vec::with_capacity(waiting.len() + 1);
        for e in waiting.iter().filter(|e| e.call_id != call) {
            let mut c = e.call().map_err(CallsError::Store)?;
            c.waited_ms = u64::try_from((now - e.arrived_at).num_milliseconds()).unwrap_or(0);
            list.push(c);
        }
        let mut own = routed.clone();
        own.waited_ms = u64::try_from((now - own.arrived_at).num_milliseconds()).unwrap_or(0);
        list.push(own);
        let order = order_waiting_for(settings.strategy, &list);
        let position = order.iter().position(|c| *c == call).map_or(1, |p| p + 1) as u32;
        let (served, over) = entries::recent_assignments(pool, queue_id, now - Duration::minutes(30)).await?;
        let wait = estimated_wait_seconds(position, u32::try_from(served).unwrap_or(u32::MAX), over);
        let language = routed.required_language.clone();
        let say = (settings.announcement_interval_seconds > 0)
            .then(|| position_announcement(language.as_deref(), position, wait));
        Ok(Some(Announcement {
            visit: queued.visit,
            say,
            interval: settings.announcement_interval_seconds.max(5),
            announces: settings.announcement_interval_seconds > 0,
        }))
    }

    /// Tells a caller held at Telnyx their position (`speak`, command id per announcement);
    /// the seconds until the next one, or `None` when the caller no longer waits in `visit` or
    /// the queue stopped announcing.
    pub async fn announce_telnyx(
        &self,
        tenant: Uuid,
        call: Uuid,
        visit: u32,
        call_control_id: &str,
        n: u32,
    ) -> Result<Option<u32>, CallsError> {
        let Some(now) = self.announcement(tenant, call).await? else { return Ok(None) };
        if now.visit != visit || !now.announces {
            return Ok(None);
        }
        if let Some((tag, text)) = now.say {
            let id = CommandId::parse(format!("announce-{call}-{visit}-{n}"))
                .map_err(|e| CallsError::Store(anyhow::anyhow!("{e}")))?;
            let speak = Speak { language: Some(tag.to_owned()), ..Speak::new(text, "female") };
            if let Err(e) = self.telnyx()?.speak(call_control_id, &speak, &id).await {
                // The caller may have hung up meanwhile: the next announcement finds out.
                tracing::info!(%call, error = %e, "Telnyx refused the position announcement");
            }
        }
        Ok(Some(now.interval))
    }

    /// A signed Twilio request about an agent's leg: its form and the leg its query names.
    fn twilio_leg(&self, req: &TwilioRequest<'_>) -> Result<(Vec<(String, String)>, LegState), CallsError> {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(req.body).into_owned().collect();
        self.check_twilio(req, &pairs)?;
        let q = query_map(req.query);
        let leg = LegState {
            tenant: uuid_of(&q, "tenant")?,
            agent: uuid_of(&q, "agent_id")?,
            call: uuid_of(&q, "call_id")?,
            offer: uuid_of(&q, "offer_id")?,
        };
        Ok((pairs, leg))
    }

    /// The agent answered their leg: the offer is accepted and the leg dials the caller's queue
    /// (Twilio bridges them); an offer that is over meanwhile hangs the leg up.
    pub async fn twilio_agent_answer(&self, req: TwilioRequest<'_>) -> Result<WebhookAnswer, CallsError> {
        let (_, LegState { tenant, agent, call, offer }) = self.twilio_leg(&req)?;
        let ctx = CommandContext::new(tenant.to_string(), "system:twilio");
        let command = AgentCommand::ConnectCall { call_id: call, at: Utc::now() };
        match self.dispatcher().execute::<Agent>(&agent.to_string(), command, &ctx).await {
            Ok(_) => {
                self.leg_status(offer, "answered", None).await?;
                let dial = Dial::new(DialTarget::Queue(carrier_queue(call)));
                Ok(WebhookAnswer::Twiml(VoiceResponse::new().dial(dial).to_xml()))
            }
            Err(DispatchError::Rejected(why)) => {
                tracing::info!(%agent, %call, %why, "an agent answered an offer that is over");
                self.leg_status(offer, "refused", Some(&why.to_string())).await?;
                let say = Say::new("This call is no longer waiting. Thank you.");
                Ok(WebhookAnswer::Twiml(VoiceResponse::new().say(say).hangup().to_xml()))
            }
            Err(e) => Err(CallsError::Store(anyhow::anyhow!("{e}"))),
        }
    }

    /// Status callbacks of an agent's leg: not answered → the offer is missed with the carrier's
    /// reason; answered and completed → the agent's call ended.
    pub async fn twilio_agent_status(&self, req: TwilioRequest<'_>) -> Result<WebhookAnswer, CallsError> {
        let (pairs, LegState { tenant, agent, call, offer }) = self.twilio_leg(&req)?;
        let status =
            pairs.iter().find(|(k, _)| k == "CallStatus").map(|(_, v)| v.clone()).unwrap_or_default();
        let ctx = CommandContext::new(tenant.to_string(), "system:twilio");
        let answered = self.leg(offer).await?.is_some_and(|(s, _)| s == "answered" || s == "completed");
        let command = match status.as_str() {
            "no-answer" | "busy" | "failed" | "canceled" if !answered => Some(AgentCommand::RejectOffer {
                offer_id: offer,
                reason: Some(format!("carrier_{}", status.replace('-', "_"))),
                at: Utc::now(),
            }),
            "completed" if answered => Some(AgentCommand::EndCall { call_id: call, at: Utc::now() }),
            "completed" => Some(AgentCommand::RejectOffer {
                offer_id: offer,
                reason: Some("carrier_no_answer".into()),
                at: Utc::now(),
            }),
            _ => None,
        };
        if status == "completed" && answered {
            self.leg_status(offer, "completed", None).await?;
        } else if !answered && !status.is_empty() {
            self.leg_status(offer, &status, None).await?;
        }
        if let Some(command) = command {
            match self.dispatcher().execute::<Agent>(&agent.to_string(), command, &ctx).await {
                Ok(_) | Err(DispatchError::Rejected(_)) => {}
                Err(e) => return Err(CallsError::Store(anyhow::anyhow!("{e}"))),
            }
        }
        Ok(WebhookAnswer::NoContent)
    }

    async fn leg(&self, offer: Uuid) -> Result<Option<(String, Option<String>)>, CallsError> {
        Ok(sqlx::query_as("SELECT status, leg_id FROM agent_legs WHERE offer_id = $1")
            .bind(offer)
            .fetch_optional(self.pool())
            .await?)
    }

    async fn leg_status(&self, offer: Uuid, status: &str, reason: Option<&str>) -> Result<(), CallsError> {
        sqlx::query("UPDATE agent_legs SET status = $2, reason = COALESCE($3, reason), updated_at = now() WHERE offer_id = $1")
            .bind(offer)
            .bind(status)
            .bind(reason)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Places the agent's leg for an offer, once: the leg is written down first, so a replay
    /// finds it and dials nobody.
    async fn dial_agent(
        &self,
        tenant: Uuid,
        agent: Uuid,
        offer: Uuid,
        call: &CallRow,
        endpoint: &AgentEndpoint,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, CallsError> {
        let inserted = sqlx::query(
            "INSERT INTO agent_legs (offer_id, tenant_id, agent_id, call_id, provider, status) \
             VALUES ($1, $2, $3, $4, 'twilio', 'dialing') ON CONFLICT (offer_id) DO NOTHING",
        )
        .bind(offer)
        .bind(tenant)
        .bind(agent)
        .bind(call.id)
        .execute(self.pool())
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(false);
        }
        let remaining = (expires_at - Utc::now()).num_seconds().clamp(5, 600);
        let timeout = u32::try_from(remaining).unwrap_or(15);
        let placed = match call.provider.as_str() {
            "telnyx" => self.dial_agent_telnyx(tenant, agent, offer, call, endpoint, timeout).await,
            _ => self.dial_agent_twilio(tenant, agent, offer, call, endpoint, timeout).await,
        };
        match placed {
            Ok(leg) => {
                sqlx::query("UPDATE agent_legs SET leg_id = $2, provider = $3, updated_at = now() WHERE offer_id = $1")
                    .bind(offer)
                    .bind(&leg)
                    .bind(&call.provider)
                    .execute(self.pool())
                    .await?;
                Ok(true)
            }
            Err(reason) => {
                self.leg_status(offer, "refused", Some(&reason)).await?;
                Err(CallsError::CarrierRefused(reason))
            }
        }
    }

    async fn dial_agent_twilio(
        &self,
        tenant: Uuid,
        agent: Uuid,
        offer: Uuid,
        call: &CallRow,
        endpoint: &AgentEndpoint,
        timeout: u32,
    ) -> Result<String, String> {
        let query = format!("tenant={tenant}&agent_id={agent}&call_id={}&offer_id={offer}", call.id);
        let answer = self
            .public_url(&format!("/api/telephony/twilio/agent/answer?{query}"))
            .map_err(|e| e.to_string())?;
        let status = self
            .public_url(&format!("/api/telephony/twilio/agent/status?{query}"))
            .map_err(|e| e.to_string())?;
        let mut create =
            CreateCall::new(dial_string(endpoint), call.to_number.clone(), CallInstructions::Url(answer));
        create.status_callback = Some(status);
        create.status_callback_events = CallProgressEvent::ALL.to_vec();
        create.timeout_secs = Some(timeout);
        let client = self.twilio().map_err(|e| e.to_string())?;
        let placed =
            client.create_call(&create).await.map_err(|e| format!("Twilio refused the agent's leg: {e}"))?;
        Ok(placed.sid)
    }

    /// Telnyx: the leg carries the offer in its `client_state`; its webhooks come to our Call
    /// Control webhook like every other ([`CallService::telnyx_agent_leg`]).
    async fn dial_agent_telnyx(
        &self,
        tenant: Uuid,
        agent: Uuid,
        offer: Uuid,
        call: &CallRow,
        endpoint: &AgentEndpoint,
        timeout: u32,
    ) -> Result<String, String> {
        let connection = self
            .settings()
            .telnyx_connection_id
            .clone()
            .ok_or_else(|| "TELNYX_CONNECTION_ID is not configured".to_owned())?;
        let to = match endpoint {
            AgentEndpoint::Client { identity } => format!("sip:{identity}@sip.telnyx.com"),
            other => dial_string(other),
        };
        let mut dial = TelnyxDial::new(connection, to, call.to_number.clone());
        dial.timeout_secs = Some(timeout);
        dial.client_state = Some(leg_state(tenant, agent, call.id, offer));
        let id = CommandId::parse(format!("agent-leg-{offer}")).map_err(|e| e.to_string())?;
        let client = self.telnyx().map_err(|e| e.to_string())?;
        let dialed =
            client.dial(&dial, &id).await.map_err(|e| format!("Telnyx refused the agent's leg: {e}"))?;
        Ok(dialed.call_control_id)
    }

    /// A Telnyx webhook of an agent's leg: answered → the offer accepted and the leg bridged to
    /// the caller; hung up unanswered → a missed offer with the cause; hung up after → the
    /// agent's call ended.
    pub(crate) async fn telnyx_agent_leg(
        &self,
        leg: LegState,
        hook: &TelephonyWebhook,
    ) -> Result<(), CallsError> {
        let ctx = CommandContext::new(leg.tenant.to_string(), "system:telnyx");
        let agent = leg.agent.to_string();
        let answered = self.leg(leg.offer).await?.is_some_and(|(s, _)| s == "answered" || s == "completed");
        let command = match &hook.event {
            TelephonyEvent::Answered { .. } => {
                let connect = AgentCommand::ConnectCall { call_id: leg.call, at: Utc::now() };
                let client = self.telnyx()?;
                let id = |what: &str| {
                    CommandId::parse(format!("{what}-{}", leg.offer))
                        .map_err(|e| CallsError::Store(anyhow::anyhow!("{e}")))
                };
                match self.dispatcher().execute::<Agent>(&agent, connect, &ctx).await {
                    Ok(_) => {
                        self.leg_status(leg.offer, "answered", None).await?;
                        let caller = calls::get(self.pool(), leg.tenant, leg.call)
                            .await?
                            .and_then(|c| c.provider_call_id)
                            .ok_or_else(|| bad("the caller's leg is unknown"))?;
                        let bridge =
                            Bridge { call_control_id: caller, park_after_unbridge: None, client_state: None };
                        if let Err(e) = client.bridge(&hook.call_id, &bridge, &id("bridge")?).await {
                            tracing::warn!(offer = %leg.offer, error = %e, "the agent's leg could not be bridged to the caller");
                        }
                    }
                    Err(DispatchError::Rejected(why)) => {
                        self.leg_status(leg.offer, "refused", Some(&why.to_string())).await?;
                        let _ = client
                            .hangup(&hook.call_id, &TelnyxHangup { client_state: None }, &id("hangup")?)
                            .await;
                    }
                    Err(e) => return Err(CallsError::Store(anyhow::anyhow!("{e}"))),
                }
                return Ok(());
            }
            TelephonyEvent::Completed { .. } if answered => {
                self.leg_status(leg.offer, "completed", None).await?;
                AgentCommand::EndCall { call_id: leg.call, at: Utc::now() }
            }
            TelephonyEvent::Completed { disposition, .. } => {
                let cause = match disposition {
                    Disposition::Busy => "busy",
                    Disposition::NoAnswer | Disposition::Canceled => "no_answer",
                    Disposition::Rejected => "rejected",
                    Disposition::Normal | Disposition::Other => "hangup",
                };
                self.leg_status(leg.offer, cause, None).await?;
                AgentCommand::RejectOffer {
                    offer_id: leg.offer,
                    reason: Some(format!("carrier_{cause}")),
                    at: Utc::now(),
                }
            }
            TelephonyEvent::Failed { reason } => {
                self.leg_status(leg.offer, "failed", Some(reason)).await?;
                AgentCommand::RejectOffer {
                    offer_id: leg.offer,
                    reason: Some("carrier_failed".into()),
                    at: Utc::now(),
                }
            }
            _ => return Ok(()),
        };
        match self.dispatcher().execute::<Agent>(&agent, command, &ctx).await {
            Ok(_) | Err(DispatchError::Rejected(_)) => Ok(()),
            Err(e) => Err(CallsError::Store(anyhow::anyhow!("{e}"))),
        }
    }

    /// Cancels an agent's leg that is still ringing (the offer ended without it).
    async fn cancel_leg(&self, offer: Uuid) -> Result<(), CallsError> {
        let Some((status, Some(leg))) = self.leg(offer).await? else { return Ok(()) };
        if !matches!(status.as_str(), "dialing" | "queued" | "initiated" | "ringing") {
            return Ok(());
        }
        let provider: Option<String> =
            sqlx::query_scalar("SELECT provider FROM agent_legs WHERE offer_id = $1")
                .bind(offer)
                .fetch_optional(self.pool())
                .await?;
        let result = if provider.as_deref() == Some("telnyx") {
            let id = CommandId::parse(format!("cancel-{offer}"))
                .map_err(|e| CallsError::Store(anyhow::anyhow!("{e}")))?;
            self.telnyx()?
                .hangup(&leg, &TelnyxHangup { client_state: None }, &id)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        } else {
            let update = UpdateCall { instructions: None, status: Some(EndCall::Canceled) };
            self.twilio()?.update_call(&leg, &update).await.map(|_| ()).map_err(|e| e.to_string())
        };
        if let Err(e) = result {
            tracing::info!(%offer, %leg, error = %e, "the agent's leg could not be cancelled (it may have ended)");
        }
        self.leg_status(offer, "canceled", None).await
    }
}

pub const NAME: &str = "carrier_legs";

/// Holds queued Twilio callers, dials reserved agents, cancels legs of offers that ended.
pub struct CarrierLegs {
    calls: CallService,
}

impl CarrierLegs {
    pub fn new(calls: CallService) -> Self {
        Self { calls }
    }
}

#[async_trait]
impl ProcessManager for CarrierLegs {
    fn name(&self) -> &'static str {
        NAME
    }

    fn reads(&self) -> EventFilter {
        EventFilter::events("QueuedCall", &["CallQueued"]).and_events(
            "Agent",
            &["AgentReserved", "AgentOfferExpired", "AgentOfferCancelled", "AgentOfferRejected"],
        )
    }

    async fn handle(&self, e: &StoredEvent, fx: &mut Effects<'_>) -> anyhow::Result<()> {
        if self.calls.twilio().is_err() && self.calls.telnyx().is_err() {
            return Ok(());
        }
        let tenant = e.tenant()?;
        let pool = fx.pool().clone();
        match e.aggregate_type.as_str() {
            "QueuedCall" => {
                let QueuedCallEvent::CallQueued { visit, queue_id, .. } = e.decode::<QueuedCallEvent>()?
                else {
                    return Ok(());
                };
                let call: Uuid = e.aggregate_id.parse()?;
                fx.wait_for(calls::NAME).await?;
                fx.wait_for(entries::NAME).await?;
                let Some(row) = calls::get(&pool, tenant, call).await? else { return Ok(()) };
                // A call the AI transferred was put on hold by the transfer itself.
                let live = row.status == "in_progress" && row.transfer_target.is_none();
                let Some(sid) = row.provider_call_id.as_deref().filter(|_| live) else { return Ok(()) };
                // Still waiting (a replay long after must not pull a bridged caller back).
                let waiting = entries::current(&pool, tenant, call).await?.is_some_and(|e| e.in_queue());
                if waiting {
                    let held = match row.provider.as_str() {
                        "twilio" => self.calls.hold_caller(call, sid).await,
                        "telnyx" => self.calls.hold_caller_telnyx(call, sid).await,
                        _ => Ok(()),
                    };
                    match held {
                        Err(err) => {
                            tracing::warn!(%call, error = %err, "the caller could not be put on hold at the carrier")
                        }
                        // Twilio asks for the announcements (the wait URL); Telnyx is told them,
                        // on a timer per waiting caller.
                        Ok(()) if row.provider == "telnyx" => {
                            let interval = queues::get(&pool, tenant, queue_id)
                                .await?
                                .and_then(|q| q.settings().ok())
                                .map_or(0, |s| s.announcement_interval_seconds);
                            if interval > 0 {
                                let due = Utc::now() + Duration::seconds(i64::from(interval.max(5)));
                                let payload = serde_json::json!({"call": call, "visit": visit, "n": 1});
                                fx.set_timer(announce_key(call, visit), due, payload);
                            }
                        }
                        Ok(()) => {}
                    }
                }
            }
            _ => {
                let agent: Uuid = e.aggregate_id.parse()?;
                match e.decode::<AgentEvent>()? {
                    AgentEvent::AgentReserved {
                        offer_id, call_id, queue_id: Some(_), expires_at, ..
                    } => {
                        fx.wait_for(agents::NAME).await?;
                        let Some(profile) =
                            agents::get(&pool, tenant, agent).await?.and_then(|a| a.profile().ok())
                        else {
                            return Ok(());
                        };
                        // No endpoint: a softphone answers over the API.
                        let Some(endpoint) = profile.endpoint else { return Ok(()) };
                        let Some(row) = calls::get(&pool, tenant, call_id).await? else { return Ok(()) };
                        // A Twilio call (the AI handing it over ended the AI's part of it: the
                        // caller waits at the carrier, whatever the call's own status says).
                        if !matches!(row.provider.as_str(), "twilio" | "telnyx")
                            || row.provider_call_id.is_none()
                        {
                            return Ok(());
                        }
                        if let Err(err) =
                            self.calls.dial_agent(tenant, agent, offer_id, &row, &endpoint, expires_at).await
                        {
                            let reject = AgentCommand::RejectOffer {
                                offer_id,
                                reason: Some("carrier_refused".into()),
                                at: Utc::now(),
                            };
                            tracing::info!(%agent, error = %err, "the agent's leg was refused: the offer is missed");
                            match fx.execute::<Agent>(&agent.to_string(), reject).await {
                                Ok(_) | Err(DispatchError::Rejected(_)) => {}
                                Err(other) => anyhow::bail!("rejecting offer {offer_id}: {other}"),
                            }
                        }
                    }
                    AgentEvent::AgentOfferExpired { offer_id, .. }
                    | AgentEvent::AgentOfferCancelled { offer_id, .. }
                    | AgentEvent::AgentOfferRejected { offer_id, .. } => {
                        self.calls.cancel_leg(offer_id).await?
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// A Telnyx caller's next position announcement is due.
    async fn on_timer(&self, timer: &Timer, fx: &mut Effects<'_>) -> anyhow::Result<()> {
        if !timer.timer_key.starts_with("announce:") {
            return Ok(());
        }
        let tenant: Uuid = timer.tenant_id.parse()?;
        let field = |k: &str| timer.payload[k].as_u64().and_then(|v| u32::try_from(v).ok());
        let (Some(call), Some(visit), Some(n)) =
            (timer.payload["call"].as_str().and_then(|c| c.parse::<Uuid>().ok()), field("visit"), field("n"))
        else {
            return Ok(());
        };
        let Some(row) = calls::get(fx.pool(), tenant, call).await? else { return Ok(()) };
        let Some(ccid) = row.provider_call_id.as_deref().filter(|_| row.provider == "telnyx") else {
            return Ok(());
        };
        if let Some(interval) = self.calls.announce_telnyx(tenant, call, visit, ccid, n).await? {
            let due = Utc::now() + Duration::seconds(i64::from(interval));
            let payload = serde_json::json!({"call": call, "visit": visit, "n": n + 1});
            fx.set_timer(announce_key(call, visit), due, payload);
        }
        Ok(())
    }
}
