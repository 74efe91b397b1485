//! A call, inbound or outbound: one bounded stream from initiation to its end, holding every
//! step (ringing, answer, media, DTMF, transcript, AI function calls, transfer, recording).

#[cfg(test)]
mod tests;

mod commands;
mod error;
mod events;

pub use commands::CallCommand;
pub use error::CallError;
pub use events::CallEvent;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ivr::{Effect, Flow, Input, Session, SessionStatus};

/// Where a transfer takes the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TransferTarget {
    /// One of the tenant's queues, by name or id.
    Queue {
        queue: String,
    },
    /// A human agent, directly.
    Agent {
        agent_id: Uuid,
    },
    /// An outside number (E.164).
    Number {
        number: String,
    },
    /// The campaign's AI voice agent.
    AiAgent,
    Voicemail,
}

impl TransferTarget {
    /// A compact, stable notation for read models: `queue:billing`, `agent:<id>`,
    /// `number:+1…`, `ai_agent`, `voicemail` (the first is what untyped events stored).
    pub fn code(&self) -> String {
        match self {
            Self::Queue { queue } => format!("queue:{queue}"),
            Self::Agent { agent_id } => format!("agent:{agent_id}"),
            Self::Number { number } => format!("number:{number}"),
            Self::AiAgent => "ai_agent".into(),
            Self::Voicemail => "voicemail".into(),
        }
    }

    /// Said in words, for people and logs (`queue billing`).
    pub fn describe(&self) -> String {
        match self {
            Self::Queue { queue } => format!("queue {queue}"),
            Self::Agent { agent_id } => format!("agent {agent_id}"),
            Self::Number { number } => format!("number {number}"),
            Self::AiAgent => "the AI agent".into(),
            Self::Voicemail => "voicemail".into(),
        }
    }
}

/// Events before the target was typed stored it as `"queue:<name>"`: both shapes read back.
impl<'de> Deserialize<'de> for TransferTarget {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        enum Typed {
            Queue { queue: String },
            Agent { agent_id: Uuid },
            Number { number: String },
            AiAgent,
            Voicemail,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Legacy(String),
            Typed(Typed),
        }
        Ok(match Repr::deserialize(d)? {
            Repr::Legacy(s) => match s.split_once(':') {
                Some(("queue", q)) => Self::Queue { queue: q.to_owned() },
                Some(("number", n)) => Self::Number { number: n.to_owned() },
                _ => Self::Queue { queue: s },
            },
            Repr::Typed(Typed::Queue { queue }) => Self::Queue { queue },
            Repr::Typed(Typed::Agent { agent_id }) => Self::Agent { agent_id },
            Repr::Typed(Typed::Number { number }) => Self::Number { number },
            Repr::Typed(Typed::AiAgent) => Self::AiAgent,
            Repr::Typed(Typed::Voicemail) => Self::Voicemail,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallDirection {
    Inbound,
    Outbound,
}

/// What an attempt led to, for retry rules and campaign analytics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    Connected,
    NoAnswer,
    Busy,
    Failed,
    Voicemail,
    /// Answered by a person but dropped before an agent (human or AI) took it.
    Abandoned,
}

impl CallOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connected => "connected",
            Self::NoAnswer => "no_answer",
            Self::Busy => "busy",
            Self::Failed => "failed",
            Self::Voicemail => "voicemail",
            Self::Abandoned => "abandoned",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Speaker {
    Caller,
    Agent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    #[default]
    None,
    /// We decided to place it; the carrier has not taken it yet.
    Requested,
    Initiated,
    Ringing,
    Answered,
    Completed,
    Failed,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Call {
    pub status: CallStatus,
    pub direction: Option<CallDirection>,
    pub campaign_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    pub answered_at: Option<DateTime<Utc>>,
    pub answered_by: Option<String>,
    pub streams: Vec<String>,
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub outcome: Option<CallOutcome>,
    #[serde(default)]
    pub disposition: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
    /// The IVR flow the call runs or ran.
    #[serde(default)]
    pub ivr: Option<CallIvr>,
    /// Who calls, and the number called.
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
}

/// A call's place in an IVR flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallIvr {
    pub flow_id: Uuid,
    pub version: u32,
    /// Inputs taken so far.
    pub seq: u32,
    pub session: Session,
    /// What the carrier is told after the last input (with those before it in the same
    /// carrier request).
    pub effects: Vec<Effect>,
}

impl CallIvr {
    /// Whether the call is in the flow still.
    pub fn running(&self) -> bool {
        self.session.status != SessionStatus::Ended
    }
}

/// Longest disposition code and notes.
pub const DISPOSITION_MAX: usize = 64;
pub const NOTES_MAX: usize = 2000;

/// A disposition code as stored: trimmed, lower case, letters, digits, `_` and `-` (each run
/// of spaces becomes `_`), at most [`DISPOSITION_MAX`] characters.
pub fn disposition_code(raw: &str) -> Result<String, crate::values::InvalidValue> {
    let code = raw.to_lowercase().split_whitespace().collect::<Vec<_>>().join("_");
    if code.is_empty() {
        return Err(crate::values::InvalidValue::new("disposition", "required", "a disposition code"));
    }
    if code.chars().count() > DISPOSITION_MAX
        || !code.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    {
        return Err(crate::values::InvalidValue::new(
            "disposition",
            "invalid",
            "at most 64 letters, digits, `_` or `-`",
        ));
    }
    Ok(code)
}

impl Call {
    fn live(&self) -> Result<(), CallError> {
        match self.status {
            CallStatus::None => Err(CallError::NotFound),
            CallStatus::Completed | CallStatus::Failed => Err(CallError::Ended),
            _ => Ok(()),
        }
    }

    fn ended(&self) -> bool {
        matches!(self.status, CallStatus::Completed | CallStatus::Failed)
    }

    /// One input to the IVR: the interpreter decides, every step an event, then the session.
    async fn step_ivr(
        &mut self,
        (flow_id, version, flow): (Uuid, u32, &Flow),
        (seq, chained): (Option<u32>, bool),
        input: Input,
        at: DateTime<Utc>,
        sink: &EventSink<Self>,
    ) -> Result<(), CallError> {
        if self.status == CallStatus::None {
            return Err(CallError::NotFound);
        }
        // The caller hanging up closes the flow after the call has ended; nothing else does.
        if !matches!(input, Input::Hangup) {
            self.live()?;
        }
        let entering = matches!(input, Input::CallStarted(_));
        let (session, taken) = match &self.ivr {
            Some(ivr) if entering && ivr.running() => {
                // A repeat of the first webhook; another flow while one runs is refused.
                return if ivr.flow_id == flow_id { Ok(()) } else { Err(CallError::IvrFlowMismatch) };
            }
            _ if entering => (Session::default(), self.ivr.as_ref().map_or(0, |i| i.seq)),
            None => return Err(CallError::NotInIvr),
            Some(ivr) => {
                if ivr.flow_id != flow_id || ivr.version != version {
                    return Err(CallError::IvrFlowMismatch);
                }
                // A repeated webhook, or one for a step already answered; or a flow that has
                // ended (its last step said so).
                if seq.is_some_and(|s| s != ivr.seq + 1) || !ivr.running() {
                    return Ok(());
                }
                (ivr.session.clone(), ivr.seq)
            }
        };
        let out = crate::ivr::step(flow, &session, input.clone(), at);
        if entering {
            sink.write(CallEvent::IvrFlowEntered { flow_id, version, at }, self).await;
        }
        for step in out.steps {
            sink.write(CallEvent::IvrStepTaken { flow_id, version, step, at }, self).await;
        }
        let advanced = CallEvent::IvrAdvanced {
            flow_id,
            version,
            seq: taken + 1,
            input,
            session: out.session,
            effects: out.effects,
            chained: chained && !entering,
            at,
        };
        sink.write(advanced, self).await;
        Ok(())
    }
}

impl Aggregate for Call {
    const TYPE: &'static str = "Call";
    type Command = CallCommand;
    type Event = CallEvent;
    type Error = CallError;
    type Services = ();

    async fn handle(
        &mut self,
        command: CallCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), CallError> {
        use CallCommand as C;
        use CallEvent as E;
        let event = match command {
            C::StepIvr { flow_id, version, flow, seq, input, chained, at } => {
                return self.step_ivr((flow_id, version, &flow), (seq, chained), input, at, sink).await;
            }
            C::RequestCall { provider, from, to, campaign_id, contact_id, detect_machine, metadata, at } => {
                if self.status != CallStatus::None {
                    return Err(CallError::AlreadyExists);
                }
                E::CallRequested {
                    direction: CallDirection::Outbound,
                    provider,
                    from,
                    to,
                    campaign_id,
                    contact_id,
                    detect_machine,
                    metadata,
                    at,
                }
            }
            C::RecordPlacement { provider_call_id, at } => match self.status {
                CallStatus::None => return Err(CallError::NotFound),
                CallStatus::Requested => E::CallPlaced { provider_call_id, at },
                // Placed already (a repeat), or its webhooks overtook the placement's answer.
                _ => return Ok(()),
            },
            C::InitiateCall {
                direction,
                provider,
                provider_call_id,
                from,
                to,
                campaign_id,
                contact_id,
                at,
            } => {
                if self.status != CallStatus::None {
                    return Err(CallError::AlreadyExists);
                }
                E::CallInitiated {
                    direction,
                    provider,
                    provider_call_id,
                    from,
                    to,
                    campaign_id,
                    contact_id,
                    at,
                }
            }
            // Provider callbacks arrive late and twice: a step already passed records nothing.
            C::MarkRinging { at } => {
                if self.status == CallStatus::None {
                    return Err(CallError::NotFound);
                }
                if !matches!(self.status, CallStatus::Initiated | CallStatus::Requested) {
                    return Ok(());
                }
                E::CallRinging { at }
            }
            C::AnswerCall { answered_by, at } => {
                if self.status == CallStatus::None {
                    return Err(CallError::NotFound);
                }
                if self.answered_at.is_some() || self.ended() {
                    return Ok(());
                }
                E::CallAnswered { answered_by, at }
            }
            C::StartMediaStream { stream_id, codec, sample_rate, at } => {
                self.live()?;
                if self.streams.contains(&stream_id) {
                    return Ok(());
                }
                E::MediaStreamStarted { stream_id, codec, sample_rate, at }
            }
            C::StopMediaStream { stream_id, at } => {
                if self.status == CallStatus::None {
                    return Err(CallError::NotFound);
                }
                if !self.streams.contains(&stream_id) {
                    return Ok(());
                }
                E::MediaStreamStopped { stream_id, at }
            }
            C::ConnectAgent { provider, model, voice, connect_ms, at } => {
                self.live()?;
                E::AgentConnected { provider, model, voice, connect_ms, at }
            }
            C::ReceiveDtmf { digits, at } => {
                self.live()?;
                E::DtmfReceived { digits, at }
            }
            C::AddTranscriptSegment { speaker, text, start_ms, end_ms, at } => {
                self.live()?;
                E::TranscriptSegmentAdded { speaker, text, start_ms, end_ms, at }
            }
            C::RecordFunctionCall { name, call_id, arguments, result, at } => {
                self.live()?;
                E::AiFunctionCalled { name, call_id, arguments, result, at }
            }
            C::RequestTransfer { target, reason, at } => {
                self.live()?;
                E::TransferRequested { target, reason, at }
            }
            C::SummarizeCall { summary, at } => {
                self.live()?;
                let summary = summary.trim().to_owned();
                if summary.is_empty() {
                    return Ok(());
                }
                E::CallSummarized { summary, at }
            }
            C::ScheduleCallback { callback_at, note, at } => {
                self.live()?;
                let (Some(campaign_id), Some(contact_id)) = (self.campaign_id, self.contact_id) else {
                    return Err(CallError::NoContactToCallBack);
                };
                if callback_at <= at {
                    return Err(CallError::CallbackInThePast);
                }
                E::CallbackScheduled { callback_at, note, campaign_id, contact_id, at }
            }
            C::AttachRecording { url, duration_seconds, at } => {
                if self.status == CallStatus::None {
                    return Err(CallError::NotFound);
                }
                E::RecordingAvailable { url, duration_seconds, at }
            }
            C::SetDisposition { disposition, notes, agent_id, at } => {
                if self.status == CallStatus::None {
                    return Err(CallError::NotFound);
                }
                let disposition = disposition_code(&disposition).map_err(CallError::InvalidDisposition)?;
                let notes = notes.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
                if notes.as_ref().is_some_and(|n| n.chars().count() > NOTES_MAX) {
                    return Err(CallError::InvalidDisposition(crate::values::InvalidValue::new(
                        "notes",
                        "too_long",
                        "at most 2000 characters",
                    )));
                }
                if self.disposition.as_deref() == Some(disposition.as_str()) && self.notes == notes {
                    return Ok(());
                }
                E::CallDispositionSet {
                    disposition,
                    notes,
                    agent_id,
                    previous: self.disposition.clone(),
                    outcome: self.outcome,
                    campaign_id: self.campaign_id,
                    contact_id: self.contact_id,
                    started_at: self.started_at,
                    at,
                }
            }
            C::CompleteCall { outcome, disposition, hangup_cause, at } => {
                if self.status == CallStatus::None {
                    return Err(CallError::NotFound);
                }
                if self.ended() {
                    return Ok(());
                }
                // A disposition set by hand during the call stands unless the end names one.
                let disposition = disposition.or_else(|| self.disposition.clone());
                let duration_seconds =
                    self.answered_at.map(|a| (at - a).num_seconds().max(0) as u64).unwrap_or_default();
                E::CallCompleted {
                    outcome,
                    disposition,
                    duration_seconds,
                    hangup_cause,
                    campaign_id: self.campaign_id,
                    contact_id: self.contact_id,
                    at,
                }
            }
            C::FailCall { reason, at } => {
                if self.status == CallStatus::None {
                    return Err(CallError::NotFound);
                }
                if self.ended() {
                    return Ok(());
                }
                E::CallFailed { reason, campaign_id: self.campaign_id, contact_id: self.contact_id, at }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: CallEvent) {
        match event {
            CallEvent::CallRequested { direction, campaign_id, contact_id, at, from, to, .. } => {
                (self.from, self.to) = (Some(from), Some(to));
                self.started_at = Some(at);
                self.status = CallStatus::Requested;
                self.direction = Some(direction);
                self.campaign_id = campaign_id;
                self.contact_id = contact_id;
            }
            CallEvent::CallPlaced { .. } => self.status = CallStatus::Initiated,
            CallEvent::CallInitiated { direction, campaign_id, contact_id, at, from, to, .. } => {
                (self.from, self.to) = (Some(from), Some(to));
                self.started_at = Some(at);
                self.status = CallStatus::Initiated;
                self.direction = Some(direction);
                self.campaign_id = campaign_id;
                self.contact_id = contact_id;
            }
            CallEvent::CallRinging { .. } => self.status = CallStatus::Ringing,
            CallEvent::CallAnswered { at, answered_by } => {
                self.status = CallStatus::Answered;
                self.answered_at = Some(at);
                self.answered_by = answered_by;
            }
            CallEvent::MediaStreamStarted { stream_id, .. } => self.streams.push(stream_id),
            CallEvent::MediaStreamStopped { stream_id, .. } => self.streams.retain(|s| *s != stream_id),
            CallEvent::CallCompleted { outcome, disposition, .. } => {
                self.status = CallStatus::Completed;
                self.outcome = Some(outcome);
                if disposition.is_some() {
                    self.disposition = disposition;
                }
            }
            CallEvent::CallFailed { .. } => {
                self.status = CallStatus::Failed;
                self.outcome = Some(CallOutcome::Failed);
            }
            CallEvent::CallDispositionSet { disposition, notes, .. } => {
                self.disposition = Some(disposition);
                self.notes = notes;
            }
            CallEvent::IvrFlowEntered { flow_id, version, .. } => {
                let seq = self.ivr.as_ref().map_or(0, |i| i.seq);
                self.ivr =
                    Some(CallIvr { flow_id, version, seq, session: Session::default(), effects: Vec::new() });
            }
            CallEvent::IvrAdvanced { flow_id, version, seq, session, mut effects, chained, .. } => {
                if let (true, Some(before)) = (chained, self.ivr.take()) {
                    effects = before.effects.into_iter().chain(effects).collect();
                }
                self.ivr = Some(CallIvr { flow_id, version, seq, session, effects });
            }
            CallEvent::IvrStepTaken { .. }
            | CallEvent::DtmfReceived { .. }
            | CallEvent::AgentConnected { .. }
            | CallEvent::TranscriptSegmentAdded { .. }
            | CallEvent::AiFunctionCalled { .. }
            | CallEvent::TransferRequested { .. }
            | CallEvent::CallbackScheduled { .. }
            | CallEvent::CallSummarized { .. }
            | CallEvent::RecordingAvailable { .. } => {}
        }
    }
}
