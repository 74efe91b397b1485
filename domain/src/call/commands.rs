//! What can be asked of a call.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use std::sync::Arc;

use super::{CallDirection, CallOutcome, Speaker, TransferTarget};
use crate::ivr::{Flow, Input};
use crate::CommandPolicy;

#[derive(Debug, Clone, PartialEq)]
pub enum CallCommand {
    /// We place an outbound call: recorded before the carrier is asked, so that a repeat (a
    /// process manager replaying) never dials twice.
    RequestCall {
        provider: String,
        from: String,
        to: String,
        campaign_id: Option<Uuid>,
        contact_id: Option<Uuid>,
        detect_machine: bool,
        /// What the requester wants kept with the call (the seed's `metadata`).
        metadata: Option<Value>,
        at: DateTime<Utc>,
    },
    /// The carrier took the requested call: its call id.
    RecordPlacement {
        provider_call_id: String,
        at: DateTime<Utc>,
    },
    /// A call that starts at the carrier (inbound, or placed before requests were recorded).
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
    /// The call's voice agent is connected: which provider, model and voice it talks with,
    /// and how long the connect took.
    ConnectAgent {
        provider: String,
        model: Option<String>,
        voice: Option<String>,
        connect_ms: u64,
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
        target: TransferTarget,
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
    /// What the call came to, as the agent who handled it (or a supervisor) says: while the
    /// call goes on, during wrap-up or later (a correction is a new disposition).
    SetDisposition {
        disposition: String,
        notes: Option<String>,
        /// The human agent who says it (none: a supervisor or an integration).
        agent_id: Option<Uuid>,
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
    /// One input to the call's IVR flow (`CallStarted` enters it): the flow's published version
    /// decides. `seq` is the input's number as the carrier's webhook carries it (the next is
    /// the IVR's count + 1); a repeated or stale one changes nothing. `chained`: the input
    /// answers what the last one asked for within the same carrier request (a webhook's
    /// result, a transfer carried out at once), so what the carrier is told adds up.
    StepIvr {
        flow_id: Uuid,
        version: u32,
        flow: Arc<Flow>,
        seq: Option<u32>,
        input: Input,
        chained: bool,
        at: DateTime<Utc>,
    },
}

impl CommandPolicy for CallCommand {
    fn name(&self) -> &'static str {
        match self {
            Self::RequestCall { .. } => "RequestCall",
            Self::RecordPlacement { .. } => "RecordPlacement",
            Self::InitiateCall { .. } => "InitiateCall",
            Self::MarkRinging { .. } => "MarkRinging",
            Self::AnswerCall { .. } => "AnswerCall",
            Self::StartMediaStream { .. } => "StartMediaStream",
            Self::StopMediaStream { .. } => "StopMediaStream",
            Self::ConnectAgent { .. } => "ConnectAgent",
            Self::ReceiveDtmf { .. } => "ReceiveDtmf",
            Self::AddTranscriptSegment { .. } => "AddTranscriptSegment",
            Self::RecordFunctionCall { .. } => "RecordFunctionCall",
            Self::RequestTransfer { .. } => "RequestTransfer",
            Self::AttachRecording { .. } => "AttachRecording",
            Self::SummarizeCall { .. } => "SummarizeCall",
            Self::ScheduleCallback { .. } => "ScheduleCallback",
            Self::SetDisposition { .. } => "SetDisposition",
            Self::CompleteCall { .. } => "CompleteCall",
            Self::FailCall { .. } => "FailCall",
            Self::StepIvr { .. } => "StepIvr",
        }
    }
}
