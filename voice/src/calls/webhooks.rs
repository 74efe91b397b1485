//! The carriers' webhooks as call commands. Each is authenticated by the carrier's signature
//! (X-Twilio-Signature over `PUBLIC_BASE_URL` + path + query; Telnyx Ed25519 with a 300 s
//! window), never by tokens, and each is applied once (its idempotency key: Twilio CallSid +
//! status + sequence, Telnyx event id). A command the call refuses (a late callback on an ended
//! call, say) changes nothing, but is logged with the rule it broke and counted.

use std::collections::HashMap;

use chrono::Utc;
use kraliki_commands::{CommandContext, DispatchError};
use kraliki_domain::call::{Call, CallCommand, CallDirection, CallError, CallOutcome, CallStatus};
use uuid::Uuid;

use super::placement::call_from_client_state;
use super::{call_uuid, ws_url, CallService, CallsError, Target};
use crate::telephony::telnyx_control::{Answer, CommandId, StreamParams};
use crate::telephony::twiml::{Connect, Say, Stream, VoiceResponse};
use crate::telephony::webhooks::{
    self as hooks, AmdOutcome, Disposition, TelephonyEvent, TelephonyWebhook, TelnyxWebhook,
    TwilioStatusCallback,
};

/// A Twilio webhook as it arrived.
pub struct TwilioRequest<'a> {
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub body: &'a [u8],
}

/// A Telnyx webhook as it arrived.
pub struct TelnyxRequest<'a> {
    pub signature: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub body: &'a [u8],
}

/// What to answer a webhook with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookAnswer {
    Twiml(String),
    NoContent,
}

pub(super) fn query_map(raw: Option<&str>) -> HashMap<String, String> {
    raw.map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}

/// A provider's call, as its first webhook describes it.
struct ProviderCall<'a> {
    provider: &'a str,
    id: &'a str,
    direction: CallDirection,
    from: &'a str,
    to: &'a str,
}

/// A webhook command the call refused: logged with the cause and counted
/// (`kraliki_webhook_commands_refused_total`), never silently dropped.
pub(super) fn refused(provider: &'static str, command: &'static str, call_id: &Uuid, rule: &CallError) {
    tracing::info!(provider, command, call = %call_id, reason = %rule, "webhook command refused by the call");
    metrics::counter!(kraliki_projections::metrics_catalog::WEBHOOK_COMMANDS_REFUSED.name, "provider" => provider, "command" => command)
        .increment(1);
}

impl CallService {
    pub(super) fn check_twilio(
        &self,
        req: &TwilioRequest<'_>,
        pairs: &[(String, String)],
    ) -> Result<(), CallsError> {
        let validator = self
            .inner
            .twilio_validator
            .as_ref()
            .ok_or_else(|| CallsError::NotConfigured("TWILIO_AUTH_TOKEN is not configured".into()))?;
        let path_and_query = match req.query {
            Some(q) if !q.is_empty() => format!("{}?{q}", req.path),
            _ => req.path.to_owned(),
        };
        let url = self.public_url(&path_and_query)?;
        let signature =
            req.signature.ok_or_else(|| CallsError::Forbidden("missing X-Twilio-Signature".into()))?;
        if !validator.validate_form(&url, pairs, signature) {
            return Err(CallsError::Forbidden("X-Twilio-Signature does not match this request".into()));
        }
        Ok(())
    }

    /// An outbound call carries its target in the webhook URL we gave the provider (signed with
    /// it); an inbound call goes to the active inbound campaign answering the dialed number.
    async fn resolve_target(
        &self,
        query: &HashMap<String, String>,
        to: Option<&str>,
    ) -> Result<Option<Target>, CallsError> {
        let id = |k: &str| query.get(k).and_then(|v| v.parse::<Uuid>().ok());
        if let Some(tenant) = id("tenant") {
            return Ok(Some(Target { tenant, campaign: id("campaign_id"), contact: id("contact_id") }));
        }
        let Some(to) = to else { return Ok(None) };
        Ok(kraliki_projections::campaign::inbound_for_number(&self.inner.pool, to)
            .await?
            .map(|(campaign, tenant)| Target { tenant, campaign: Some(campaign), contact: None }))
    }

    /// Makes sure the call exists: a call we requested learns its carrier id; one that started
    /// at the carrier is initiated. Returns the position of what was appended (0 if nothing).
    async fn ensure_call(
        &self,
        call_id: Uuid,
        target: &Target,
        call: ProviderCall<'_>,
    ) -> Result<i64, CallsError> {
        let ctx = CommandContext::new(target.tenant.to_string(), format!("system:{}", call.provider));
        let (existing, _) = self.inner.dispatcher.load::<Call>(&call_id.to_string()).await?;
        let command = if existing.status == CallStatus::None {
            CallCommand::InitiateCall {
                direction: call.direction,
                provider: call.provider.to_owned(),
                provider_call_id: Some(call.id.to_owned()),
                from: call.from.to_owned(),
                to: call.to.to_owned(),
                campaign_id: target.campaign,
                contact_id: target.contact,
                at: Utc::now(),
            }
        } else {
            CallCommand::RecordPlacement { provider_call_id: call.id.to_owned(), at: Utc::now() }
        };
        match self.inner.dispatcher.execute::<Call>(&call_id.to_string(), command, &ctx).await {
            Ok(outcome) => Ok(outcome.position.unwrap_or(0)),
            Err(DispatchError::Rejected(CallError::AlreadyExists)) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// The tenant of a call we know (from its first event), for commands on it.
    pub(super) async fn call_tenant(&self, call_id: Uuid) -> Result<Option<String>, CallsError> {
        Ok(sqlx::query_scalar(
            "SELECT metadata->>'tenant_id' FROM events WHERE aggregate_type = 'Call' AND aggregate_id = $1 AND sequence = 1",
        )
        .bind(call_id.to_string())
        .fetch_optional(&self.inner.pool)
        .await?
        .flatten())
    }

    /// Twilio's voice webhook: a call (inbound, or one we placed, fetching its instructions)
    /// gets `<Connect><Stream>` to our media socket, with the token tying the stream to it.
    pub async fn twilio_voice(&self, req: TwilioRequest<'_>) -> Result<WebhookAnswer, CallsError> {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(req.body).into_owned().collect();
        self.check_twilio(&req, &pairs)?;
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let call_sid =
            get("CallSid").ok_or_else(|| CallsError::InvalidWebhook("CallSid is missing".into()))?;
        let (from, to) = (get("From").unwrap_or_default(), get("To").unwrap_or_default());
        let direction = if get("Direction").is_some_and(|d| d.starts_with("outbound")) {
            CallDirection::Outbound
        } else {
            CallDirection::Inbound
        };
        let query = query_map(req.query);
        let Some(target) = self.resolve_target(&query, Some(to)).await? else {
            let xml = VoiceResponse::new().say(Say::new("This number is not in service.")).hangup().to_xml();
            return Ok(WebhookAnswer::Twiml(xml));
        };
        let call_id = query
            .get("call_id")
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| call_uuid("twilio", call_sid));
        // The answer is built before anything is recorded: a call is never written down that we
        // then cannot answer.
        let media = ws_url(&self.public_url("/api/telephony/twilio/media")?);
        let mut stream = Stream::new(&media).map_err(|e| CallsError::Store(anyhow::anyhow!("{e}")))?;
        for (name, value) in self.stream_parameters(call_id, &target) {
            stream = stream.parameter(name, value);
        }
        let xml = VoiceResponse::new().connect(Connect::stream(stream)).to_xml();
        let flow = self.flow_for(&target).await?;
        self.ensure_call(
            call_id,
            &target,
            ProviderCall { provider: "twilio", id: call_sid, direction, from, to },
        )
        .await?;
        let ctx = CommandContext::new(target.tenant.to_string(), "system:twilio");
        let answered_by = get("AnsweredBy").map(|a| hooks::AnsweredBy::from_twilio(a).as_str().to_owned());
        let answer = CallCommand::AnswerCall { answered_by, at: Utc::now() };
        match self.inner.dispatcher.execute::<Call>(&call_id.to_string(), answer, &ctx).await {
            Ok(_) => {}
            Err(DispatchError::Rejected(rule)) => refused("twilio", "AnswerCall", &call_id, &rule),
            Err(e) => return Err(e.into()),
        }
        // A call whose campaign runs an IVR flow enters it; the flow decides where it goes.
        if let Some(flow) = flow {
            let xml = self.twilio_ivr_enter(call_id, &target, &flow, (from, to), call_sid).await?;
            return Ok(WebhookAnswer::Twiml(xml));
        }
        Ok(WebhookAnswer::Twiml(xml))
    }

    /// Twilio's status callback, applied once per CallSid + status + sequence.
    pub async fn twilio_status(&self, req: TwilioRequest<'_>) -> Result<WebhookAnswer, CallsError> {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(req.body).into_owned().collect();
        self.check_twilio(&req, &pairs)?;
        let callback =
            TwilioStatusCallback::from_form(&pairs).map_err(|e| CallsError::InvalidWebhook(e.to_string()))?;
        let hook = callback.to_event().map_err(|e| CallsError::InvalidWebhook(e.to_string()))?;
        let query = query_map(req.query);
        let call_id = query
            .get("call_id")
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| call_uuid("twilio", &callback.call_sid));
        self.apply_webhook(call_id, &hook).await?;
        Ok(WebhookAnswer::NoContent)
    }

    /// A Telnyx Call Control webhook: inbound calls are answered with streaming; everything else
    /// moves the call.
    pub async fn telnyx_webhook(&self, req: TelnyxRequest<'_>) -> Result<WebhookAnswer, CallsError> {
        let verifier = self
            .inner
            .telnyx_verifier
            .as_ref()
            .ok_or_else(|| CallsError::NotConfigured("TELNYX_PUBLIC_KEY is not configured".into()))?;
        let (Some(signature), Some(timestamp)) = (req.signature, req.timestamp) else {
            return Err(CallsError::Forbidden("missing telnyx-signature-ed25519 / telnyx-timestamp".into()));
        };
        verifier
            .verify(signature, timestamp, req.body, Utc::now().timestamp())
            .map_err(|e| CallsError::Forbidden(format!("Telnyx signature refused: {e:?}")))?;
        let webhook =
            TelnyxWebhook::parse(req.body).map_err(|e| CallsError::InvalidWebhook(e.to_string()))?;
        let hook = webhook.to_event().map_err(|e| CallsError::InvalidWebhook(e.to_string()))?;
        // An agent's leg, dialed for an offer: its own handling.
        if let Some(leg) = hook.client_state.as_deref().and_then(super::agent_legs::leg_from_client_state) {
            self.telnyx_agent_leg(leg, &hook).await?;
            return Ok(WebhookAnswer::NoContent);
        }
        // A command the IVR sent: its prompt said, input gathered, recording saved.
        let ivr = hook.client_state.as_deref().and_then(super::ivr::IvrClientState::decode);
        if let Some(state) = ivr {
            if self.telnyx_ivr_event(state, &hook).await? {
                return Ok(WebhookAnswer::NoContent);
            }
        }
        let call_id = match ivr {
            Some(state) => state.call,
            None => hook
                .client_state
                .as_deref()
                .and_then(call_from_client_state)
                .unwrap_or_else(|| call_uuid("telnyx", &hook.call_id)),
        };
        if let TelephonyEvent::Initiated { direction: Some(hooks::CallDirection::Inbound), from, to } =
            &hook.event
        {
            let Some(target) = self.resolve_target(&HashMap::new(), to.as_deref()).await? else {
                tracing::info!(to = ?to, "inbound Telnyx call to a number no campaign answers; ignored");
                return Ok(WebhookAnswer::NoContent);
            };
            let (from, to) = (from.clone().unwrap_or_default(), to.clone().unwrap_or_default());
            let call = ProviderCall {
                provider: "telnyx",
                id: &hook.call_id,
                direction: CallDirection::Inbound,
                from: &from,
                to: &to,
            };
            // Answered at the carrier first: a call is not recorded that we could not answer. A
            // call whose campaign runs a flow is answered without a stream: it enters the flow
            // once Telnyx says it is answered.
            let streams = self.flow_for(&target).await?.is_none();
            self.answer_telnyx(call_id, &target, &hook, streams).await?;
            self.ensure_call(call_id, &target, call).await?;
            return Ok(WebhookAnswer::NoContent);
        }
        self.apply_webhook(call_id, &hook).await?;
        Ok(WebhookAnswer::NoContent)
    }

    /// Applies a provider's webhook to the call, once per idempotency key.
    async fn apply_webhook(&self, call_id: Uuid, hook: &TelephonyWebhook) -> Result<(), CallsError> {
        let (call, _) = self.inner.dispatcher.load::<Call>(&call_id.to_string()).await?;
        if call.status == CallStatus::None {
            tracing::info!(call = %hook.call_id, "webhook for a call we never set up; ignored");
            return Ok(());
        }
        let Some(tenant) = self.call_tenant(call_id).await? else { return Ok(()) };
        let scope = match hook.provider {
            hooks::Provider::Twilio => "twilio",
            hooks::Provider::Telnyx => "telnyx",
        };
        let ctx = CommandContext::new(tenant, format!("system:{scope}")).with_idempotency(
            format!("webhook:{scope}"),
            hook.idempotency_key.clone(),
            None,
        );
        let at = Utc::now();
        let command = match &hook.event {
            TelephonyEvent::Ringing => CallCommand::MarkRinging { at },
            TelephonyEvent::Answered { answered_by } => {
                CallCommand::AnswerCall { answered_by: answered_by.map(|a| a.as_str().to_owned()), at }
            }
            TelephonyEvent::Completed { disposition, hangup_cause, .. } => {
                let machine = call.answered_by.as_deref().is_some_and(|a| a.starts_with("machine"));
                let outcome = match disposition {
                    Disposition::Normal if machine => CallOutcome::Voicemail,
                    Disposition::Normal => CallOutcome::Connected,
                    Disposition::Busy | Disposition::Rejected => CallOutcome::Busy,
                    Disposition::NoAnswer | Disposition::Canceled => CallOutcome::NoAnswer,
                    Disposition::Other => CallOutcome::Failed,
                };
                CallCommand::CompleteCall {
                    outcome,
                    disposition: None,
                    hangup_cause: hangup_cause.clone(),
                    at,
                }
            }
            TelephonyEvent::Failed { reason } => CallCommand::FailCall { reason: reason.clone(), at },
            TelephonyEvent::Dtmf { digits } | TelephonyEvent::GatherEnded { digits, .. } => {
                CallCommand::ReceiveDtmf { digits: digits.clone(), at }
            }
            TelephonyEvent::RecordingAvailable { url } => {
                CallCommand::AttachRecording { url: url.clone(), duration_seconds: None, at }
            }
            TelephonyEvent::MachineDetection { answered_by } => match answered_by.outcome() {
                // A machine: the call ends as voicemail when it hangs up; note who answered.
                AmdOutcome::Machine => {
                    CallCommand::AnswerCall { answered_by: Some(answered_by.as_str().into()), at }
                }
                _ => return Ok(()),
            },
            TelephonyEvent::Initiated { .. }
            | TelephonyEvent::PromptEnded
            | TelephonyEvent::StreamStarted
            | TelephonyEvent::StreamStopped
            | TelephonyEvent::StreamFailed { .. }
            | TelephonyEvent::Unhandled { .. } => return Ok(()),
        };
        let name = kraliki_domain::CommandPolicy::name(&command);
        match self.inner.dispatcher.execute::<Call>(&call_id.to_string(), command, &ctx).await {
            Ok(_) => {}
            // A late or repeated callback the call refuses (it has ended, say) changes nothing, but
            // it is never dropped silently: logged with the rule it broke, and counted.
            Err(DispatchError::Rejected(rule)) => refused(scope, name, &call_id, &rule),
            Err(e) => return Err(e.into()),
        }
        // The caller hung up: a call waiting in one of our queues (handed over by the AI, whose
        // part of the call had ended) leaves it.
        if matches!(hook.event, TelephonyEvent::Completed { .. } | TelephonyEvent::Failed { .. }) {
            self.leave_queue(&ctx, call_id).await?;
            if let Some(ivr) = &call.ivr {
                self.ivr_hung_up(&ctx.tenant_id, call_id, ivr).await?;
            }
        }
        // An inbound Telnyx call answered without a stream runs its campaign's flow.
        let inbound = call.direction == Some(CallDirection::Inbound) && call.ivr.is_none();
        if matches!(hook.event, TelephonyEvent::Answered { .. })
            && hook.provider == hooks::Provider::Telnyx
            && inbound
        {
            let tenant =
                ctx.tenant_id.parse().map_err(|_| CallsError::Store(anyhow::anyhow!("bad tenant id")))?;
            let target = Target { tenant, campaign: call.campaign_id, contact: call.contact_id };
            if let Some(flow) = self.flow_for(&target).await? {
                let numbers =
                    (call.from.as_deref().unwrap_or_default(), call.to.as_deref().unwrap_or_default());
                self.telnyx_ivr_enter(call_id, &target, &flow, numbers, &hook.call_id).await?;
            }
        }
        // An outbound Telnyx call that was answered gets its stream to the AI agent now.
        let outbound = call.direction == Some(CallDirection::Outbound) && call.streams.is_empty();
        if matches!(hook.event, TelephonyEvent::Answered { .. })
            && hook.provider == hooks::Provider::Telnyx
            && outbound
        {
            let tenant =
                ctx.tenant_id.parse().map_err(|_| CallsError::Store(anyhow::anyhow!("bad tenant id")))?;
            let target = Target { tenant, campaign: call.campaign_id, contact: call.contact_id };
            self.stream_telnyx(call_id, &target, &hook.call_id).await?;
        }
        Ok(())
    }

    /// Takes the call out of its queue (the caller hung up), if it waits in one.
    async fn leave_queue(&self, ctx: &CommandContext, call_id: Uuid) -> Result<(), CallsError> {
        use kraliki_domain::queued_call::{QueuedCall, QueuedCallCommand};
        let (queued, _) = self.inner.dispatcher.load::<QueuedCall>(&call_id.to_string()).await?;
        if !queued.status.is_some_and(|s| s.in_queue()) {
            return Ok(());
        }
        let command = QueuedCallCommand::Abandon { reason: "caller_hung_up".into(), at: Utc::now() };
        // Its own context: the webhook's idempotency key belongs to the call's command.
        let ctx = CommandContext::new(ctx.tenant_id.clone(), "system:telephony");
        match self.inner.dispatcher.execute::<QueuedCall>(&call_id.to_string(), command, &ctx).await {
            Ok(_) | Err(DispatchError::Rejected(_)) => Ok(()),
            Err(e) => Err(CallsError::Store(anyhow::anyhow!("{e}"))),
        }
    }

    /// Our Telnyx media socket for this call, its token in the query.
    fn telnyx_stream_url(&self, call_id: Uuid, target: &Target) -> Result<String, CallsError> {
        let query: Vec<String> =
            self.stream_parameters(call_id, target).into_iter().map(|(k, v)| format!("{k}={v}")).collect();
        Ok(format!("{}?{}", ws_url(&self.public_url("/api/telephony/telnyx/media")?), query.join("&")))
    }

    /// Starts the bidirectional stream of an outbound Telnyx call once it is answered; the
    /// command id makes a redelivered `call.answered` start it once.
    pub(super) async fn stream_telnyx(
        &self,
        call_id: Uuid,
        target: &Target,
        call_control_id: &str,
    ) -> Result<(), CallsError> {
        let client = self.telnyx()?;
        let stream = StreamParams::bidirectional_pcmu(self.telnyx_stream_url(call_id, target)?);
        let id = CommandId::parse(format!("stream-{call_id}"))
            .map_err(|e| CallsError::Store(anyhow::anyhow!("{e}")))?;
        client
            .streaming_start(call_control_id, &stream, &id)
            .await
            .map_err(|e| CallsError::CarrierRefused(format!("Telnyx streaming_start failed: {e}")))?;
        Ok(())
    }

    /// Answers an inbound Telnyx call with a bidirectional PCMU stream to our media socket; the
    /// event id is the command id, so a redelivered webhook answers once.
    async fn answer_telnyx(
        &self,
        call_id: Uuid,
        target: &Target,
        hook: &TelephonyWebhook,
        streams: bool,
    ) -> Result<(), CallsError> {
        let client = self.telnyx()?;
        let stream = match streams {
            true => Some(StreamParams::bidirectional_pcmu(self.telnyx_stream_url(call_id, target)?)),
            false => None,
        };
        let answer = Answer { stream, client_state: None };
        let id = CommandId::parse(format!("answer-{}", hook.idempotency_key))
            .map_err(|e| CallsError::Store(anyhow::anyhow!("{e}")))?;
        client
            .answer(&hook.call_id, &answer, &id)
            .await
            .map_err(|e| CallsError::CarrierRefused(format!("Telnyx answer failed: {e}")))?;
        Ok(())
    }
}
