//! IVR flows on live calls. A call whose campaign points at a published flow (the campaign's
//! `configuration.ivr_flow_id`, else the newest live flow attached to the campaign) runs it
//! instead of going straight to the AI agent: the carrier's webhooks are the flow's inputs,
//! `CallCommand::StepIvr` decides (the pure interpreter; every step an event on the call), and
//! what the interpreter asks for is carried out here:
//!
//! - prompts and input: TwiML `<Say>`/`<Play>`, `<Gather>` (digits and speech) whose action
//!   posts back to `/api/telephony/twilio/ivr` with the call, the input's number (`seq`) and
//!   what it answers (`kind`), signed like every webhook;
//! - `webhook` nodes: called from here, the host checked against the allow-list and every
//!   address it resolves to (private ones only when allowed) on the first request and on each
//!   redirect, the node's deadline (at most 5 s), the answer fed back into the flow at once;
//! - transfers: a queue of the company (the router offers the caller to an agent; the caller
//!   waits at the carrier with position announcements), the AI agent (the media stream, the
//!   flow's variables in its instructions), a number (`<Dial>`, its outcome back to the flow),
//!   voicemail (`<Record>`);
//! - voicemail nodes: `<Record>`, the recording back to the flow; `end_call`: the disposition
//!   on the call, then `<Hangup/>`.
//!
//! A webhook Twilio repeats carries the same `seq`: the call records nothing new and the answer
//! is what the flow asks for now. Published versions never change, so each is read once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use kraliki_commands::{CommandContext, DispatchError};
use kraliki_domain::call::{Call, CallCommand, CallIvr, TransferTarget};
use kraliki_domain::ivr::flow::HttpMethod;
use kraliki_domain::ivr::{
    CallStart, Effect, Flow, Input, InputType, Prompt, TransferOutcome, TransferRequest, WebhookPolicy,
};
use serde_json::Value;
use uuid::Uuid;

use super::agent_legs::carrier_queue;
use super::functions::Entering;
use super::webhooks::{query_map, refused};
use super::{ws_url, CallService, CallsError, Target, TwilioRequest, WebhookAnswer};
use crate::telephony::telnyx_control::CommandId;
use crate::telephony::twiml::{self, Connect, Dial, DialTarget, Gather, Record, Say, Stream, VoiceResponse};

/// The most bytes of a webhook's answer read.
const WEBHOOK_BODY_MAX: usize = 256 * 1024;
/// Redirects a webhook may take (each one checked).
const WEBHOOK_REDIRECTS_MAX: usize = 3;

/// A published version of a flow.
#[derive(Clone)]
pub(super) struct FlowRef {
    pub id: Uuid,
    pub version: u32,
    pub flow: Arc<Flow>,
}

/// Published versions read so far (they never change).
#[derive(Default)]
pub(super) struct FlowCache {
    versions: Mutex<HashMap<(Uuid, u32), Arc<Flow>>>,
}

/// Telnyx's default text-to-speech voice.
const TELNYX_VOICE: &str = "female";

/// What an IVR command's `client_state` carries back: the call, the flow input its events
/// answer, and the action's place in the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IvrClientState {
    pub call: Uuid,
    pub seq: u32,
    pub index: usize,
}

impl IvrClientState {
    fn encode(&self) -> String {
        format!("ivr:{}:{}:{}", self.call, self.seq, self.index)
    }

    /// The state in a Telnyx `client_state` (base64), if it is one of the IVR's.
    pub(crate) fn decode(raw: &str) -> Option<Self> {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD.decode(raw.trim()).ok()?;
        let mut parts = std::str::from_utf8(&bytes).ok()?.strip_prefix("ivr:")?.split(':');
        let call = parts.next()?.parse().ok()?;
        let seq = parts.next()?.parse().ok()?;
        let index = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some(Self { call, seq, index })
    }
}

/// Where to start sending from `from`: text prompts followed by a gather are folded into it
/// (the gather's index, and their texts); anything else starts at `from`.
fn gather_lead(actions: &[Action], from: usize) -> (usize, Vec<String>) {
    if from >= actions.len() {
        return (from, Vec::new());
    }
    let says = actions[from..].iter().take_while(|a| matches!(a, Action::Say(_))).count();
    let spoken = actions[from..from + says].iter().all(|a| {
        matches!(a, Action::Say(p) if p.audio_url.is_none() && p.text.as_deref().is_some_and(|t| !t.trim().is_empty()))
    });
    match actions.get(from + says) {
        Some(Action::Gather(Effect::Gather { prompt, .. }))
            if says > 0 && spoken && prompt.as_ref().is_none_or(|p| p.audio_url.is_none()) =>
        {
            let texts = actions[from..from + says]
                .iter()
                .filter_map(|a| match a {
                    Action::Say(p) => p.text.clone(),
                    _ => None,
                })
                .collect();
            (from + says, texts)
        }
        _ => (from, Vec::new()),
    }
}

fn prompt_text(prompt: &Prompt) -> String {
    prompt.text.clone().filter(|t| !t.trim().is_empty()).unwrap_or_else(|| " ".into())
}

/// What a webhook callback answers (the `kind` in its URL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answers {
    Gather,
    Record,
    Dial,
    Voicemail,
}

impl Answers {
    fn as_str(self) -> &'static str {
        match self {
            Self::Gather => "gather",
            Self::Record => "record",
            Self::Dial => "dial",
            Self::Voicemail => "voicemail",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::Gather, Self::Record, Self::Dial, Self::Voicemail].into_iter().find(|a| a.as_str() == s)
    }
}

/// Twilio's `<Say>` language for a flow language (`cs` → `cs-CZ`).
fn say_language(lang: &str) -> String {
    match lang {
        "en" => "en-US".into(),
        "es" => "es-ES".into(),
        "cs" => "cs-CZ".into(),
        other => other.into(),
    }
}

fn uuid_field(map: &serde_json::Map<String, Value>, key: &str) -> Option<Uuid> {
    map.get(key).and_then(Value::as_str).and_then(|s| s.parse().ok())
}

fn store(e: impl std::fmt::Display) -> CallsError {
    CallsError::Store(anyhow::anyhow!("{e}"))
}

impl CallService {
    /// The published flow a call of `target` runs, if any.
    pub(super) async fn flow_for(&self, target: &Target) -> Result<Option<FlowRef>, CallsError> {
        let Some(campaign) = target.campaign else { return Ok(None) };
        let pool = self.pool();
        let Some(row) = kraliki_projections::campaign::get(pool, target.tenant, campaign).await? else {
            return Ok(None);
        };
        let settings = row.settings().map_err(CallsError::Store)?;
        let chosen = match uuid_field(&settings.configuration, "ivr_flow_id") {
            Some(id) => kraliki_projections::ivr_flow::get(pool, target.tenant, id)
                .await?
                .and_then(|f| f.live_version.map(|v| (f.id, v))),
            None => kraliki_projections::ivr_flow::live_for_campaign(pool, target.tenant, campaign).await?,
        };
        let Some((id, version)) = chosen else { return Ok(None) };
        let version = u32::try_from(version).map_err(store)?;
        let flow = self.flow_version(target.tenant, id, version).await?;
        Ok(flow.is_active.then_some(FlowRef { id, version, flow }))
    }

    async fn flow_version(&self, tenant: Uuid, id: Uuid, version: u32) -> Result<Arc<Flow>, CallsError> {
        if let Some(flow) = self.inner.flows.versions.lock().expect("flow cache").get(&(id, version)) {
            return Ok(flow.clone());
        }
        let n = i32::try_from(version).map_err(store)?;
        let row = kraliki_projections::ivr_flow::get_version(self.pool(), tenant, id, n)
            .await?
            .ok_or_else(|| store(format!("IVR flow {id} has no version {version}")))?;
        let flow = Arc::new(row.flow().map_err(CallsError::Store)?);
        self.inner.flows.versions.lock().expect("flow cache").insert((id, version), flow.clone());
        Ok(flow)
    }

    /// A call in its flow as a carrier callback finds it: the run and the call's IVR state
    /// (none: the call never entered a flow, or is not ours).
    async fn ivr_run(
        &self,
        call_id: Uuid,
        carrier: IvrCarrier,
        carrier_call: String,
    ) -> Result<Option<(IvrRun, CallIvr)>, CallsError> {
        let (call, _) = self.dispatcher().current::<Call>(&call_id.to_string()).await?;
        let (Some(ivr), Some(tenant)) = (call.ivr, self.call_tenant(call_id).await?) else {
            return Ok(None);
        };
        let tenant: Uuid = tenant.parse().map_err(store)?;
        let flow = FlowRef {
            id: ivr.flow_id,
            version: ivr.version,
            flow: self.flow_version(tenant, ivr.flow_id, ivr.version).await?,
        };
        let target = Target { tenant, campaign: call.campaign_id, contact: call.contact_id };
        Ok(Some((IvrRun { call_id, target, carrier, carrier_call, flow }, ivr)))
    }

    /// The first answer to a Twilio call that runs a flow: it enters the flow.
    pub(super) async fn twilio_ivr_enter(
        &self,
        call_id: Uuid,
        target: &Target,
        flow: &FlowRef,
        numbers: (&str, &str),
        call_sid: &str,
    ) -> Result<String, CallsError> {
        let run = IvrRun {
            call_id,
            target: target.clone(),
            carrier: IvrCarrier::Twilio,
            carrier_call: call_sid.to_owned(),
            flow: flow.clone(),
        };
        let program = self.ivr_enter(&run, numbers).await?;
        Ok(self.twiml(&run, &program)?.to_xml())
    }

    async fn ivr_enter(&self, run: &IvrRun, (from, to): (&str, &str)) -> Result<Program, CallsError> {
        let start = CallStart {
            call_id: Some(run.call_id.to_string()),
            caller_number: Some(from.to_owned()),
            called_number: Some(to.to_owned()),
            language: None,
            campaign_id: run.target.campaign,
            variables: Default::default(),
        };
        self.drive(run, None, Input::CallStarted(start)).await
    }

    /// Twilio's IVR callbacks (`<Gather>`, `<Record>`, `<Dial>` actions): the input to the flow,
    /// answered with what the flow asks for next.
    pub async fn twilio_ivr(&self, req: TwilioRequest<'_>) -> Result<WebhookAnswer, CallsError> {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(req.body).into_owned().collect();
        self.check_twilio(&req, &pairs)?;
        let get =
            |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.trim()).filter(|v| !v.is_empty());
        let query = query_map(req.query);
        let bad = |what: &str| CallsError::InvalidWebhook(format!("{what} is missing or invalid"));
        let call_id: Uuid =
            query.get("call_id").and_then(|c| c.parse().ok()).ok_or_else(|| bad("call_id"))?;
        let seq: u32 = query.get("seq").and_then(|c| c.parse().ok()).ok_or_else(|| bad("seq"))?;
        let kind = query.get("kind").and_then(|k| Answers::parse(k)).ok_or_else(|| bad("kind"))?;
        let call_sid = get("CallSid").ok_or_else(|| bad("CallSid"))?.to_owned();
        let Some((run, _)) = self.ivr_run(call_id, IvrCarrier::Twilio, call_sid).await? else {
            return Ok(WebhookAnswer::Twiml(VoiceResponse::new().hangup().to_xml()));
        };
        let input = match kind {
            Answers::Gather => match (get("Digits"), get("SpeechResult")) {
                (Some(digits), _) => Input::Digits { digits: digits.to_owned() },
                (None, Some(text)) => Input::Speech {
                    text: text.to_owned(),
                    confidence: get("Confidence").and_then(|c| c.parse().ok()),
                },
                (None, None) => Input::Timeout,
            },
            Answers::Record => match get("RecordingUrl") {
                Some(url) => Input::VoicemailRecorded {
                    recording_url: Some(url.to_owned()),
                    duration_seconds: get("RecordingDuration").and_then(|d| d.parse().ok()),
                },
                None => Input::VoicemailFailed { reason: "Twilio recorded nothing".into() },
            },
            Answers::Dial => Input::TransferEnded {
                outcome: match get("DialCallStatus") {
                    Some("completed" | "answered") => TransferOutcome::Connected,
                    Some("no-answer") => TransferOutcome::Timeout,
                    _ => TransferOutcome::Failed,
                },
            },
            Answers::Voicemail => Input::TransferEnded {
                outcome: if get("RecordingUrl").is_some() {
                    TransferOutcome::Connected
                } else {
                    TransferOutcome::Failed
                },
            },
        };
        let program = self.drive(&run, Some(seq), input).await?;
        Ok(WebhookAnswer::Twiml(self.twiml(&run, &program)?.to_xml()))
    }

    /// The caller hung up: a call still in its flow leaves it (the flow's last step).
    pub(super) async fn ivr_hung_up(
        &self,
        tenant: &str,
        call_id: Uuid,
        ivr: &CallIvr,
    ) -> Result<(), CallsError> {
        if !ivr.running() {
            return Ok(());
        }
        let tenant_id: Uuid = tenant.parse().map_err(store)?;
        let flow = self.flow_version(tenant_id, ivr.flow_id, ivr.version).await?;
        let command = CallCommand::StepIvr {
            flow_id: ivr.flow_id,
            version: ivr.version,
            flow,
            seq: None,
            input: Input::Hangup,
            chained: false,
            at: Utc::now(),
        };
        let ctx = CommandContext::new(tenant, "system:ivr");
        match self.dispatcher().execute::<Call>(&call_id.to_string(), command, &ctx).await {
            Ok(_) => Ok(()),
            Err(DispatchError::Rejected(rule)) => {
                refused("ivr", "StepIvr", &call_id, &rule);
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Feeds one input to the flow and carries out what it asks for, feeding webhook answers
    /// and immediate transfer outcomes back in, until the flow waits for the caller or the
    /// carrier (or has ended): what the carrier must do now, and the input number it answers.
    async fn drive(&self, run: &IvrRun, seq: Option<u32>, input: Input) -> Result<Program, CallsError> {
        let (mut seq, mut input, mut chained) = (seq, input, false);
        // Each round enters at least one node; the flow stops itself at MAX_VISITS.
        let mut rounds = 0;
        loop {
            rounds += 1;
            let (ivr, recorded) = self.step_ivr(run, seq, input, chained).await?;
            // What the carrier is told is everything since its request came (the call keeps
            // it), so a repeated request is answered the same; only new effects are carried
            // out (a webhook called, a transfer's outcome fed back).
            let (actions, fed) = self.carry_out(run, &ivr, recorded).await?;
            match fed {
                Some(next) if recorded && rounds <= kraliki_domain::ivr::MAX_VISITS => {
                    (seq, input, chained) = (Some(ivr.seq + 1), next, true);
                }
                _ => return Ok(Program { next_seq: ivr.seq + 1, actions }),
            }
        }
    }

    /// What the call's effects so far ask of the carrier, carrying out the last round's webhook
    /// or immediate transfer (when `fresh`): that round's answer, to feed back.
    async fn carry_out(
        &self,
        run: &IvrRun,
        ivr: &CallIvr,
        fresh: bool,
    ) -> Result<(Vec<Action>, Option<Input>), CallsError> {
        let mut actions = Vec::new();
        let mut fed = None;
        let last = ivr.effects.len().saturating_sub(1);
        for (i, effect) in ivr.effects.iter().enumerate() {
            // Only the newest effect may still need doing; earlier webhooks and transfers were
            // carried out in earlier rounds.
            let new = fresh && i == last;
            match effect {
                Effect::Play { prompt, .. } => actions.push(Action::Say(prompt.clone())),
                Effect::Gather { .. } => actions.push(Action::Gather(effect.clone())),
                Effect::RecordVoicemail { prompt, max_length_seconds, silence_timeout_seconds, .. } => {
                    actions.extend(prompt.clone().map(Action::Say));
                    actions.push(Action::Record {
                        max_length_seconds: *max_length_seconds,
                        silence_timeout_seconds: *silence_timeout_seconds,
                        answers: Answers::Record,
                    });
                }
                Effect::CallWebhook { url, method, headers, body, timeout_ms, .. } => {
                    if new {
                        fed =
                            Some(self.call_webhook(url, *method, headers, body.as_ref(), *timeout_ms).await);
                    }
                }
                Effect::Transfer { request, .. } => {
                    let (action, outcome) = self.transfer(run, ivr, request).await?;
                    actions.extend(action);
                    if let (true, Some(outcome)) = (new, outcome) {
                        fed = Some(Input::TransferEnded { outcome });
                    }
                }
                Effect::Hangup { disposition, .. } => {
                    if let Some(d) = disposition {
                        self.ivr_disposition(run, d).await?;
                    }
                    actions.push(Action::Hangup);
                }
            }
        }
        Ok((actions, fed))
    }

    /// A Telnyx call answered: a call whose campaign runs a flow enters it (once; a repeated
    /// `call.answered` finds it in the flow already and carries on where it is).
    pub(super) async fn telnyx_ivr_enter(
        &self,
        call_id: Uuid,
        target: &Target,
        flow: &FlowRef,
        numbers: (&str, &str),
        call_control_id: &str,
    ) -> Result<(), CallsError> {
        let run = IvrRun {
            call_id,
            target: target.clone(),
            carrier: IvrCarrier::Telnyx,
            carrier_call: call_control_id.to_owned(),
            flow: flow.clone(),
        };
        let program = self.ivr_enter(&run, numbers).await?;
        self.telnyx_run(&run, &program, 0).await
    }

    /// A Telnyx event for a command the flow sent (its `client_state` names the call, the
    /// input it answers and the action): a prompt has been said (the next action), input was
    /// gathered or a recording saved (the flow's input). `Ok(false)`: not one of those events.
    pub(super) async fn telnyx_ivr_event(
        &self,
        state: IvrClientState,
        hook: &crate::telephony::webhooks::TelephonyWebhook,
    ) -> Result<bool, CallsError> {
        use crate::telephony::webhooks::TelephonyEvent as T;
        if !matches!(hook.event, T::PromptEnded | T::GatherEnded { .. } | T::RecordingAvailable { .. }) {
            return Ok(false);
        }
        let Some((run, ivr)) = self.ivr_run(state.call, IvrCarrier::Telnyx, hook.call_id.clone()).await?
        else {
            return Ok(true);
        };
        let ivr = &ivr;
        let input = match &hook.event {
            // The prompt was said: on to the next action, if the flow has not moved on since
            // (an ended flow still has its last actions to finish: the goodbye, the hang-up).
            T::PromptEnded => {
                if ivr.seq + 1 == state.seq {
                    let (actions, _) = self.carry_out(&run, ivr, false).await?;
                    let program = Program { next_seq: state.seq, actions };
                    self.telnyx_run(&run, &program, state.index + 1).await?;
                }
                return Ok(true);
            }
            T::GatherEnded { digits, status } => match status.as_str() {
                // The caller hung up: `call.hangup` closes the flow.
                "call_hangup" | "cancelled" => return Ok(true),
                _ if digits.is_empty() => Input::Timeout,
                _ => Input::Digits { digits: digits.clone() },
            },
            T::RecordingAvailable { url } => match self.telnyx_action_at(&run, ivr, state.index).await? {
                Some(Action::Record { answers: Answers::Voicemail, .. }) => {
                    Input::TransferEnded { outcome: TransferOutcome::Connected }
                }
                _ => Input::VoicemailRecorded { recording_url: Some(url.clone()), duration_seconds: None },
            },
            _ => return Ok(false),
        };
        let program = self.drive(&run, Some(state.seq), input).await?;
        self.telnyx_run(&run, &program, 0).await?;
        Ok(true)
    }

    async fn telnyx_action_at(
        &self,
        run: &IvrRun,
        ivr: &CallIvr,
        index: usize,
    ) -> Result<Option<Action>, CallsError> {
        let (actions, _) = self.carry_out(run, ivr, false).await?;
        Ok(actions.into_iter().nth(index))
    }

    /// Sends the program's action `from` to Telnyx. Each command's id is the call, the input
    /// and the action, so a redelivered webhook sends nothing twice.
    async fn telnyx_run(&self, run: &IvrRun, program: &Program, from: usize) -> Result<(), CallsError> {
        use crate::telephony::telnyx_control::{
            ClientState, DigitRules, GatherUsingSpeak, Hangup, RecordStart, RecordingChannels,
            RecordingFormat, Speak, Transfer,
        };
        let client = self.telnyx()?;
        let ccid = run.carrier_call.as_str();
        let refused = |what: &str, e: crate::telephony::telnyx_control::TelnyxError| {
            CallsError::CarrierRefused(format!("Telnyx refused the IVR's {what}: {e}"))
        };
        // One action at a time: Telnyx reports each prompt's end (the next action follows
        // then), the input gathered, the recording saved.
        let (index, lead) = gather_lead(&program.actions, from);
        let Some(action) = program.actions.get(index) else { return Ok(()) };
        let state = IvrClientState { call: run.call_id, seq: program.next_seq, index };
        let client_state = Some(ClientState::from_bytes(state.encode().as_bytes()));
        let id =
            CommandId::parse(format!("ivr-{}-{}-{index}", run.call_id, program.next_seq)).map_err(store)?;
        match action {
            Action::Say(prompt) => match &prompt.audio_url {
                Some(url) => {
                    let body = serde_json::json!({"audio_url": url, "client_state": client_state.as_ref().map(|c| c.as_base64())});
                    client
                        .command(ccid, "playback_start", &body, &id)
                        .await
                        .map_err(|e| refused("playback", e))?;
                }
                None => {
                    let mut speak = Speak::new(prompt_text(prompt), TELNYX_VOICE);
                    speak.language = Some(say_language(&prompt.language));
                    speak.client_state = client_state;
                    client.speak(ccid, &speak, &id).await.map_err(|e| refused("speak", e))?;
                }
            },
            Action::Gather(Effect::Gather {
                prompt,
                num_digits,
                finish_on_key,
                timeout_seconds,
                inter_digit_timeout,
                language,
                ..
            }) => {
                let digits = DigitRules {
                    minimum_digits: Some(1),
                    maximum_digits: num_digits.map(|n| n.clamp(1, 128)),
                    timeout_millis: Some(timeout_seconds.saturating_mul(1000)),
                    inter_digit_timeout_millis: Some(inter_digit_timeout.saturating_mul(1000)),
                    terminating_digit: Some(finish_on_key.clone()).filter(|k| !k.is_empty()),
                    valid_digits: Some("0123456789*#".into()),
                };
                // Telnyx gathers keys: a flow's speech input is not recognised on Telnyx.
                // The prompts just before it are said by the gather itself: one command, no
                // pause between them.
                let own = prompt.as_ref().map(prompt_text).filter(|t| !t.trim().is_empty());
                let text = lead.into_iter().chain(own).collect::<Vec<_>>().join(" ");
                let text = if text.trim().is_empty() { " ".to_owned() } else { text };
                let mut gather = GatherUsingSpeak::new(text, TELNYX_VOICE);
                gather.language = Some(say_language(language));
                gather.maximum_tries = Some(1);
                gather.digits = digits;
                gather.client_state = client_state;
                client.gather_using_speak(ccid, &gather, &id).await.map_err(|e| refused("gather", e))?;
            }
            Action::Gather(_) => {}
            Action::Record { max_length_seconds, silence_timeout_seconds, .. } => {
                let record = RecordStart {
                    channels: RecordingChannels::Single,
                    format: RecordingFormat::Mp3,
                    play_beep: Some(true),
                    max_length: Some(*max_length_seconds),
                    timeout_secs: Some(*silence_timeout_seconds),
                    client_state,
                };
                client.record_start(ccid, &record, &id).await.map_err(|e| refused("recording", e))?;
            }
            Action::Hangup => {
                client
                    .hangup(ccid, &Hangup { client_state }, &id)
                    .await
                    .map_err(|e| refused("hang-up", e))?;
            }
            Action::HoldInQueue => self.hold_caller_telnyx(run.call_id, ccid).await?,
            Action::ToAiAgent => self.stream_telnyx(run.call_id, &run.target, ccid).await?,
            Action::Dial { number, timeout_seconds } => {
                let transfer = Transfer {
                    to: number.clone(),
                    from: None,
                    timeout_secs: *timeout_seconds,
                    answering_machine_detection: None,
                    client_state,
                    target_leg_client_state: None,
                };
                client.transfer(ccid, &transfer, &id).await.map_err(|e| refused("transfer", e))?;
            }
        }
        Ok(())
    }

    /// The program as TwiML.
    fn twiml(&self, run: &IvrRun, program: &Program) -> Result<VoiceResponse, CallsError> {
        let mut response = VoiceResponse::new();
        let call_id = run.call_id;
        for action in &program.actions {
            response = match action {
                Action::Say(prompt) => play(response, prompt)?,
                Action::Gather(Effect::Gather {
                    prompt,
                    input_type,
                    num_digits,
                    finish_on_key,
                    timeout_seconds,
                    speech_hints,
                    language,
                    ..
                }) => {
                    let action = self.ivr_action(call_id, program.next_seq, Answers::Gather)?;
                    let input = match input_type {
                        InputType::Dtmf => "dtmf",
                        InputType::Speech => "speech",
                        InputType::Both => "dtmf speech",
                    };
                    let mut gather = Gather::new(&action, input)
                        .map_err(store)?
                        .finish_on_key(finish_on_key.clone())
                        .timeout(*timeout_seconds)
                        .language(say_language(language))
                        .hints(speech_hints);
                    if *input_type != InputType::Speech {
                        if let Some(n) = num_digits {
                            gather = gather.num_digits(*n);
                        }
                    }
                    if *input_type != InputType::Dtmf {
                        gather = gather.speech_timeout("auto");
                    }
                    if let Some(p) = prompt {
                        gather = gather.prompt(gather_prompt(p));
                    }
                    response.gather(gather)
                }
                Action::Gather(_) => response,
                Action::Record { max_length_seconds, silence_timeout_seconds, answers } => {
                    let action = self.ivr_action(call_id, program.next_seq, *answers)?;
                    let record = Record::new(&action)
                        .map_err(store)?
                        .max_length(*max_length_seconds)
                        .timeout(*silence_timeout_seconds)
                        .finish_on_key("#");
                    response.record(record)
                }
                Action::Hangup => response.hangup(),
                Action::HoldInQueue => {
                    let wait =
                        self.public_url(&format!("/api/telephony/twilio/queue/wait?call_id={call_id}"))?;
                    response.enqueue_waiting(carrier_queue(call_id), &wait).map_err(store)?
                }
                Action::ToAiAgent => {
                    let media = ws_url(&self.public_url("/api/telephony/twilio/media")?);
                    let mut stream = Stream::new(&media).map_err(store)?;
                    for (name, value) in self.stream_parameters(call_id, &run.target) {
                        stream = stream.parameter(name, value);
                    }
                    response.connect(Connect::stream(stream))
                }
                Action::Dial { number, timeout_seconds } => {
                    let action = self.ivr_action(call_id, program.next_seq, Answers::Dial)?;
                    let mut dial =
                        Dial::new(DialTarget::Number(number.clone())).action(&action, None).map_err(store)?;
                    if let Some(t) = timeout_seconds {
                        dial = dial.timeout(*t);
                    }
                    response.dial(dial)
                }
            };
        }
        Ok(response)
    }

    /// Dispatches one input; the call's IVR state after it (the same as before for a repeat).
    /// Dispatches one input: the call's IVR state after it, and whether it recorded anything
    /// (a repeat does not).
    async fn step_ivr(
        &self,
        run: &IvrRun,
        seq: Option<u32>,
        input: Input,
        chained: bool,
    ) -> Result<(CallIvr, bool), CallsError> {
        let command = CallCommand::StepIvr {
            flow_id: run.flow.id,
            version: run.flow.version,
            flow: run.flow.flow.clone(),
            seq,
            input,
            chained,
            at: Utc::now(),
        };
        let ctx = CommandContext::new(run.target.tenant.to_string(), "system:ivr");
        let outcome = self.dispatcher().execute::<Call>(&run.call_id.to_string(), command, &ctx).await?;
        let (call, _) = self.dispatcher().current::<Call>(&run.call_id.to_string()).await?;
        let ivr = call.ivr.ok_or_else(|| store("the call recorded no IVR state"))?;
        Ok((ivr, outcome.events > 0))
    }

    fn ivr_action(&self, call_id: Uuid, seq: u32, kind: Answers) -> Result<String, CallsError> {
        self.public_url(&format!(
            "/api/telephony/twilio/ivr?call_id={call_id}&seq={seq}&kind={}",
            kind.as_str()
        ))
    }

    async fn ivr_disposition(&self, run: &IvrRun, disposition: &str) -> Result<(), CallsError> {
        let command = CallCommand::SetDisposition {
            disposition: disposition.to_owned(),
            notes: None,
            agent_id: None,
            at: Utc::now(),
        };
        let ctx = CommandContext::new(run.target.tenant.to_string(), "system:ivr");
        match self.dispatcher().execute::<Call>(&run.call_id.to_string(), command, &ctx).await {
            Ok(_) => Ok(()),
            // A flow's disposition that is not a valid code is logged, not fatal to the call.
            Err(DispatchError::Rejected(rule)) => {
                refused("ivr", "SetDisposition", &run.call_id, &rule);
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Carries out a transfer: what the carrier must do, and its outcome when known at once (a
    /// Twilio `<Dial>` or a voicemail reports later, through its callback).
    async fn transfer(
        &self,
        run: &IvrRun,
        ivr: &CallIvr,
        request: &TransferRequest,
    ) -> Result<(Option<Action>, Option<TransferOutcome>), CallsError> {
        let call_id = run.call_id;
        Ok(match &request.target {
            TransferTarget::Queue { queue } => {
                let entering = Entering {
                    priority: request.priority.unwrap_or(0),
                    skills: request.required_skills.clone(),
                    language: ivr
                        .session
                        .variables
                        .get("language")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    max_wait_seconds: request.max_wait_seconds,
                    attributes: ivr.session.variables.clone().into_iter().collect(),
                };
                match self.enter_queue(run.target.tenant, call_id, queue, entering, "system:ivr").await {
                    Ok(Some(_)) => (Some(Action::HoldInQueue), Some(TransferOutcome::Connected)),
                    Ok(None) => {
                        tracing::warn!(call = %call_id, queue, "IVR transfer to a queue the company does not have");
                        (None, Some(TransferOutcome::Failed))
                    }
                    Err(why) => {
                        tracing::warn!(call = %call_id, queue, %why, "IVR transfer into the queue refused");
                        (None, Some(TransferOutcome::NoAgents))
                    }
                }
            }
            TransferTarget::AiAgent => (Some(Action::ToAiAgent), Some(TransferOutcome::Connected)),
            TransferTarget::Number { number } => {
                let dial = Action::Dial { number: number.clone(), timeout_seconds: request.timeout_seconds };
                // Telnyx takes the transfer or refuses the command; Twilio reports the dial's end.
                let outcome = (run.carrier == IvrCarrier::Telnyx).then_some(TransferOutcome::Connected);
                (Some(dial), outcome)
            }
            TransferTarget::Voicemail => {
                use kraliki_domain::ivr::interpreter::{
                    DEFAULT_VOICEMAIL_SECONDS, DEFAULT_VOICEMAIL_SILENCE_SECONDS,
                };
                let record = Action::Record {
                    max_length_seconds: DEFAULT_VOICEMAIL_SECONDS,
                    silence_timeout_seconds: DEFAULT_VOICEMAIL_SILENCE_SECONDS,
                    answers: Answers::Voicemail,
                };
                (Some(record), None)
            }
            TransferTarget::Agent { agent_id } => {
                // Agents are reached through queues (the router offers, the agent accepts); a
                // flow naming one agent sends the caller down its failure path.
                tracing::warn!(call = %call_id, agent = %agent_id,
                    "IVR transfer straight to an agent is not carried out: route through a queue");
                (None, Some(TransferOutcome::Failed))
            }
        })
    }

    /// Calls a flow's webhook: the answer as the flow's input (a failure is an input too).
    async fn call_webhook(
        &self,
        url: &str,
        method: HttpMethod,
        headers: &std::collections::BTreeMap<String, String>,
        body: Option<&Value>,
        timeout_ms: u32,
    ) -> Input {
        let deadline = timeout_ms.clamp(1, kraliki_domain::ivr::interpreter::DEFAULT_WEBHOOK_TIMEOUT_MS);
        let request = webhook_request(&self.inner.webhook_policy, url, method, headers, body);
        match tokio::time::timeout(Duration::from_millis(u64::from(deadline)), request).await {
            Ok(Ok((status, body))) => Input::WebhookResult { status, body },
            Ok(Err(reason)) => Input::WebhookFailed { reason },
            Err(_) => Input::WebhookFailed { reason: format!("no answer within {deadline} ms") },
        }
    }
}

/// The carrier a call in a flow is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IvrCarrier {
    Twilio,
    Telnyx,
}

/// One call in its flow, as the carrier knows it.
struct IvrRun {
    call_id: Uuid,
    target: Target,
    carrier: IvrCarrier,
    /// Twilio's CallSid or Telnyx's call control id.
    carrier_call: String,
    flow: FlowRef,
}

/// What the carrier must do, in order, and the flow input its callbacks answer.
struct Program {
    next_seq: u32,
    actions: Vec<Action>,
}

/// One thing the carrier must do for the flow.
#[derive(Debug, Clone, PartialEq)]
enum Action {
    Say(Prompt),
    /// An [`Effect::Gather`].
    Gather(Effect),
    Record {
        max_length_seconds: u32,
        silence_timeout_seconds: u32,
        answers: Answers,
    },
    Hangup,
    /// Hold the caller for the company's queue (the router offers them to an agent).
    HoldInQueue,
    /// The AI agent's media stream.
    ToAiAgent,
    Dial {
        number: String,
        timeout_seconds: Option<u32>,
    },
}

fn play(response: VoiceResponse, prompt: &Prompt) -> Result<VoiceResponse, CallsError> {
    match (&prompt.audio_url, &prompt.text) {
        (Some(url), _) => response.play(url).map_err(store),
        (None, Some(text)) => {
            Ok(response.say(Say::new(text.clone()).language(say_language(&prompt.language))))
        }
        (None, None) => Ok(response),
    }
}

fn gather_prompt(prompt: &Prompt) -> twiml::Prompt {
    match (&prompt.audio_url, &prompt.text) {
        (Some(url), _) => twiml::Prompt::Play(url.clone()),
        (None, text) => twiml::Prompt::Say(
            Say::new(text.clone().unwrap_or_default()).language(say_language(&prompt.language)),
        ),
    }
}

/// The request, made only to a host on the allow-list at an address the policy allows (each
/// name resolved here and the connection pinned to what was checked); redirects followed by
/// hand, each checked the same way.
async fn webhook_request(
    policy: &WebhookPolicy,
    url: &str,
    method: HttpMethod,
    headers: &std::collections::BTreeMap<String, String>,
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    let mut url = policy.check(url).map_err(|e| e.to_string())?;
    for _ in 0..=WEBHOOK_REDIRECTS_MAX {
        let host = url.host_str().ok_or("the URL has no host")?.trim_matches(['[', ']']).to_owned();
        let port = url.port_or_known_default().ok_or("the URL has no port")?;
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| format!("{host} does not resolve: {e}"))?
            .collect();
        if addrs.is_empty() {
            return Err(format!("{host} does not resolve"));
        }
        if let Some(bad) = addrs.iter().find(|a| !policy.address_allowed(a.ip())) {
            return Err(format!("{host} resolves to {}, a private address", bad.ip()));
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .resolve_to_addrs(&host, &addrs)
            .build()
            .map_err(|e| e.to_string())?;
        let method = match method {
            HttpMethod::Get => reqwest::Method::GET,
            HttpMethod::Post => reqwest::Method::POST,
            HttpMethod::Put => reqwest::Method::PUT,
            HttpMethod::Patch => reqwest::Method::PATCH,
            HttpMethod::Delete => reqwest::Method::DELETE,
        };
        let mut request = client.request(method.clone(), url.clone());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        if let (Some(body), false) = (body, method == reqwest::Method::GET) {
            request = request.json(body);
        }
        let mut response = request.send().await.map_err(|e| format!("{host}: {e}"))?;
        if response.status().is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .ok_or("a redirect without a Location")?;
            let next = url.join(location).map_err(|e| format!("redirect to {location}: {e}"))?;
            url = policy.check(next.as_str()).map_err(|e| format!("redirect refused: {e}"))?;
            continue;
        }
        let status = response.status().as_u16();
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| format!("{host}: {e}"))? {
            if bytes.len() + chunk.len() > WEBHOOK_BODY_MAX {
                return Err(format!("the answer is larger than {WEBHOOK_BODY_MAX} bytes"));
            }
            bytes.extend_from_slice(&chunk);
        }
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        return Ok((status, body));
    }
    Err(format!("more than {WEBHOOK_REDIRECTS_MAX} redirects"))
}
