//! What happened on a call. Stored forever: never rename a variant or a field.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{CallDirection, CallOutcome, Speaker, TransferTarget};
use crate::ivr::{Effect, Input, IvrStep, Session};

/// Stored forever: never rename a variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CallEvent {
    /// An outbound call we decided to place (the attempt starts here).
    CallRequested {
        direction: CallDirection,
        provider: String,
        from: String,
        to: String,
        campaign_id: Option<Uuid>,
        contact_id: Option<Uuid>,
        detect_machine: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metadata: Option<Value>,
        at: DateTime<Utc>,
    },
    /// The carrier took the requested call.
    CallPlaced {
        provider_call_id: String,
        at: DateTime<Utc>,
    },
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
    /// The voice agent (an AI session) joined the call.
    AgentConnected {
        provider: String,
        model: Option<String>,
        voice: Option<String>,
        connect_ms: u64,
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
        target: TransferTarget,
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
    /// The call's disposition, set by hand. `previous` and `outcome` (the call's, once it ended)
    /// let a read model move a count from the old disposition to the new one.
    CallDispositionSet {
        disposition: String,
        notes: Option<String>,
        agent_id: Option<Uuid>,
        previous: Option<String>,
        outcome: Option<CallOutcome>,
        campaign_id: Option<Uuid>,
        contact_id: Option<Uuid>,
        /// When the call started (the contact's attempt it belongs to).
        started_at: Option<DateTime<Utc>>,
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
    /// The call entered a published version of an IVR flow.
    IvrFlowEntered {
        flow_id: Uuid,
        version: u32,
        at: DateTime<Utc>,
    },
    /// One IVR step (node entered, prompt played, input received or timed out, branch taken,
    /// variable set, webhook result, …): what flow analytics count.
    IvrStepTaken {
        flow_id: Uuid,
        version: u32,
        step: IvrStep,
        at: DateTime<Utc>,
    },
    /// The IVR took one input (`seq` counts them from 1): the session after it and what the
    /// carrier must do, so a repeated webhook is answered the same. `chained`: the input came
    /// within the same carrier request as the last (a webhook's result), its effects follow
    /// the last ones in the answer.
    IvrAdvanced {
        flow_id: Uuid,
        version: u32,
        seq: u32,
        input: Input,
        session: Session,
        effects: Vec<Effect>,
        #[serde(default)]
        chained: bool,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for CallEvent {
    fn event_type(&self) -> String {
        match self {
            Self::CallRequested { .. } => "CallRequested",
            Self::CallPlaced { .. } => "CallPlaced",
            Self::CallInitiated { .. } => "CallInitiated",
            Self::CallRinging { .. } => "CallRinging",
            Self::CallAnswered { .. } => "CallAnswered",
            Self::MediaStreamStarted { .. } => "MediaStreamStarted",
            Self::MediaStreamStopped { .. } => "MediaStreamStopped",
            Self::AgentConnected { .. } => "AgentConnected",
            Self::DtmfReceived { .. } => "DtmfReceived",
            Self::TranscriptSegmentAdded { .. } => "TranscriptSegmentAdded",
            Self::AiFunctionCalled { .. } => "AiFunctionCalled",
            Self::TransferRequested { .. } => "TransferRequested",
            Self::RecordingAvailable { .. } => "RecordingAvailable",
            Self::CallSummarized { .. } => "CallSummarized",
            Self::CallbackScheduled { .. } => "CallbackScheduled",
            Self::CallDispositionSet { .. } => "CallDispositionSet",
            Self::CallCompleted { .. } => "CallCompleted",
            Self::CallFailed { .. } => "CallFailed",
            Self::IvrFlowEntered { .. } => "IvrFlowEntered",
            Self::IvrStepTaken { .. } => "IvrStepTaken",
            Self::IvrAdvanced { .. } => "IvrAdvanced",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

impl CallEvent {
    /// When it happened (every call event says).
    pub fn at(&self) -> DateTime<Utc> {
        use CallEvent as E;
        match self {
            E::CallRequested { at, .. }
            | E::CallPlaced { at, .. }
            | E::CallInitiated { at, .. }
            | E::CallRinging { at }
            | E::CallAnswered { at, .. }
            | E::MediaStreamStarted { at, .. }
            | E::MediaStreamStopped { at, .. }
            | E::AgentConnected { at, .. }
            | E::DtmfReceived { at, .. }
            | E::TranscriptSegmentAdded { at, .. }
            | E::AiFunctionCalled { at, .. }
            | E::TransferRequested { at, .. }
            | E::RecordingAvailable { at, .. }
            | E::CallbackScheduled { at, .. }
            | E::CallSummarized { at, .. }
            | E::CallDispositionSet { at, .. }
            | E::CallCompleted { at, .. }
            | E::CallFailed { at, .. }
            | E::IvrFlowEntered { at, .. }
            | E::IvrStepTaken { at, .. }
            | E::IvrAdvanced { at, .. } => *at,
        }
    }
}
