//! A call, inbound or outbound: one bounded stream from initiation to its end, holding every
//! step (ringing, answer, media, DTMF, transcript, AI function calls, transfer, recording).

#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::CommandPolicy;

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

#[derive(Debug, Clone, PartialEq)]
pub enum CallCommand {
    InitiateCall {
        direction: CallDirection,
        provider: String,
        provider_call_id: Option<String>,
        from: String,
        to: String,
        campaign_id: Option<Uuid>,
        contact_id: Option<Uuid>,
        at: DateTime<Utc>,
    },
    MarkRinging {
        at: DateTime<Utc>,
    },
    AnswerCall {
        answered_by: Option<String>,
        at: DateTime<Utc>,
    },
    StartMediaStream {
        stream_id: String,
        codec: String,
        sample_rate: u32,
        at: DateTime<Utc>,
    },
    StopMediaStream {
        stream_id: String,
        at: DateTime<Utc>,
    },
    ReceiveDtmf {
        digits: String,
        at: DateTime<Utc>,
    },
    AddTranscriptSegment {
        speaker: Speaker,
        text: String,
        start_ms: u64,
        end_ms: u64,
        at: DateTime<Utc>,
    },
    RecordFunctionCall {
        name: String,
        call_id: String,
        arguments: Value,
        result: Value,
        at: DateTime<Utc>,
    },
    RequestTransfer {
        target: String,
        reason: Option<String>,
        at: DateTime<Utc>,
    },
    AttachRecording {
        url: String,
        duration_seconds: Option<u64>,
        at: DateTime<Utc>,
    },
    /// What the call was about, in a few sentences (the AI agent's summary at the end of the
    /// call, or for the human agent it hands the caller to).
    SummarizeCall {
        summary: String,
        at: DateTime<Utc>,
    },
    /// The person asked to be called back at `callback_at`: the campaign dials the contact
    /// again then (inside its calling window).
    ScheduleCallback {
        callback_at: DateTime<Utc>,
        note: Option<String>,
        at: DateTime<Utc>,
    },
    CompleteCall {
        outcome: CallOutcome,
        disposition: Option<String>,
        hangup_cause: Option<String>,
        at: DateTime<Utc>,
    },
    FailCall {
        reason: String,
        at: DateTime<Utc>,
    },
}

impl CommandPolicy for CallCommand {
    fn name(&self) -> &'static str {
        match self {
            Self::InitiateCall { .. } => "InitiateCall",
            Self::MarkRinging { .. } => "MarkRinging",
            Self::AnswerCall { .. } => "AnswerCall",
            Self::StartMediaStream { .. } => "StartMediaStream",
            Self::StopMediaStream { .. } => "StopMediaStream",
            Self::ReceiveDtmf { .. } => "ReceiveDtmf",
            Self::AddTranscriptSegment { .. } => "AddTranscriptSegment",
            Self::RecordFunctionCall { .. } => "RecordFunctionCall",
            Self::RequestTransfer { .. } => "RequestTransfer",
            Self::AttachRecording { .. } => "AttachRecording",
            Self::SummarizeCall { .. } => "SummarizeCall",
            Self::ScheduleCallback { .. } => "ScheduleCallback",
            Self::CompleteCall { .. } => "CompleteCall",
            Self::FailCall { .. } => "FailCall",
        }
    }
}

/// Stored forever: never rename a variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CallEvent {
    CallInitiated {
        direction: CallDirection,
        provider: String,
        provider_call_id: Option<String>,
        from: String,
        to: String,
        campaign_id: Option<Uuid>,
        contact_id: Option<Uuid>,
        at: DateTime<Utc>,
    },
    CallRinging {
        at: DateTime<Utc>,
    },
    CallAnswered {
        answered_by: Option<String>,
        at: DateTime<Utc>,
    },
    MediaStreamStarted {
        stream_id: String,
        codec: String,
        sample_rate: u32,
        at: DateTime<Utc>,
    },
    MediaStreamStopped {
        stream_id: String,
        at: DateTime<Utc>,
    },
    DtmfReceived {
        digits: String,
        at: DateTime<Utc>,
    },
    TranscriptSegmentAdded {
        speaker: Speaker,
        text: String,
        start_ms: u64,
        end_ms: u64,
        at: DateTime<Utc>,
    },
    AiFunctionCalled {
        name: String,
        call_id: String,
        arguments: Value,
        result: Value,
        at: DateTime<Utc>,
    },
    TransferRequested {
        target: String,
        reason: Option<String>,
        at: DateTime<Utc>,
    },
    RecordingAvailable {
        url: String,
        duration_seconds: Option<u64>,
        at: DateTime<Utc>,
    },
    CallSummarized {
        summary: String,
        at: DateTime<Utc>,
    },
    CallbackScheduled {
        callback_at: DateTime<Utc>,
        note: Option<String>,
        campaign_id: Uuid,
        contact_id: Uuid,
        at: DateTime<Utc>,
    },
    CallCompleted {
        outcome: CallOutcome,
        disposition: Option<String>,
        duration_seconds: u64,
        hangup_cause: Option<String>,
        campaign_id: Option<Uuid>,
        contact_id: Option<Uuid>,
        at: DateTime<Utc>,
    },
    CallFailed {
        reason: String,
        campaign_id: Option<Uuid>,
        contact_id: Option<Uuid>,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for CallEvent {
    fn event_type(&self) -> String {
        match self {
            Self::CallInitiated { .. } => "CallInitiated",
            Self::CallRinging { .. } => "CallRinging",
            Self::CallAnswered { .. } => "CallAnswered",
            Self::MediaStreamStarted { .. } => "MediaStreamStarted",
            Self::MediaStreamStopped { .. } => "MediaStreamStopped",
            Self::DtmfReceived { .. } => "DtmfReceived",
            Self::TranscriptSegmentAdded { .. } => "TranscriptSegmentAdded",
            Self::AiFunctionCalled { .. } => "AiFunctionCalled",
            Self::TransferRequested { .. } => "TransferRequested",
            Self::RecordingAvailable { .. } => "RecordingAvailable",
            Self::CallSummarized { .. } => "CallSummarized",
            Self::CallbackScheduled { .. } => "CallbackScheduled",
            Self::CallCompleted { .. } => "CallCompleted",
            Self::CallFailed { .. } => "CallFailed",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("call not found")]
    NotFound,
    #[error("call already exists")]
    AlreadyExists,
    #[error("the call has ended")]
    Ended,
    #[error("only a campaign's call to a known contact can be called back")]
    NoContactToCallBack,
    #[error("a callback must be in the future")]
    CallbackInThePast,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    #[default]
    None,
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
                if self.status != CallStatus::Initiated {
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
            C::CompleteCall { outcome, disposition, hangup_cause, at } => {
                if self.status == CallStatus::None {
                    return Err(CallError::NotFound);
                }
                if self.ended() {
                    return Ok(());
                }
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
            CallEvent::CallInitiated { direction, campaign_id, contact_id, .. } => {
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
            CallEvent::CallCompleted { .. } => self.status = CallStatus::Completed,
            CallEvent::CallFailed { .. } => self.status = CallStatus::Failed,
            CallEvent::DtmfReceived { .. }
            | CallEvent::TranscriptSegmentAdded { .. }
            | CallEvent::AiFunctionCalled { .. }
            | CallEvent::TransferRequested { .. }
            | CallEvent::CallbackScheduled { .. }
            | CallEvent::CallSummarized { .. }
            | CallEvent::RecordingAvailable { .. } => {}
        }
    }
}
