//! Call-progress webhooks from both providers, mapped to one [`TelephonyEvent`].
//!
//! Twilio posts form-encoded status callbacks (`CallSid`, `CallStatus`, `AnsweredBy`, …);
//! Telnyx posts JSON events (`data.event_type`, `data.id`, `data.payload`). Both retry
//! deliveries, so each webhook carries an idempotency key to handle it once: Twilio's is the
//! call, its status and `SequenceNumber`; Telnyx's is the event id. Answering-machine results
//! follow DOMAIN.md: human → agent, machine → voicemail drop or retry, fax, and unknown /
//! not_sure treated as human ([`AnsweredBy::outcome`]).
//!
//! Authenticate first ([`crate::twilio`], [`crate::telnyx`]); these types only read.

use chrono::DateTime;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Why a webhook could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook body is not valid JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("webhook body is not form-encoded UTF-8")]
    Form,
    #[error("webhook lacks {0}")]
    MissingField(&'static str),
    #[error("webhook field {field} has an unexpected value {value:?}")]
    InvalidValue { field: &'static str, value: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    Twilio,
    Telnyx,
}

/// A webhook, provider-neutral.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelephonyWebhook {
    pub provider: Provider,
    /// Handle a webhook once per key: the providers redeliver on timeouts and errors.
    pub idempotency_key: String,
    /// Twilio's `CallSid`, Telnyx's `call_control_id`.
    pub call_id: String,
    /// Telnyx's `call_session_id` (the legs of one call share it); Twilio's `ParentCallSid`.
    pub session_id: Option<String>,
    /// When the provider says it happened (Telnyx `occurred_at`, Twilio `Timestamp`), as sent.
    pub occurred_at: Option<String>,
    /// Telnyx `client_state` (base64, as our last command set it).
    pub client_state: Option<String>,
    pub event: TelephonyEvent,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TelephonyEvent {
    /// The call exists and is being set up (Twilio queued/initiated, Telnyx `call.initiated`).
    Initiated {
        direction: Option<CallDirection>,
        from: Option<String>,
        to: Option<String>,
    },
    Ringing,
    /// The callee (or a machine) picked up. `answered_by` when detection ran synchronously.
    Answered {
        answered_by: Option<AnsweredBy>,
    },
    /// The call ended; `disposition` says how, `hangup_cause` is the provider's own word.
    Completed {
        disposition: Disposition,
        duration_secs: Option<u64>,
        hangup_cause: Option<String>,
    },
    /// The call could not be placed.
    Failed {
        reason: String,
    },
    Dtmf {
        digits: String,
    },
    /// A `gather` finished (Telnyx `call.gather.ended`: valid, invalid, timeout, …).
    GatherEnded {
        digits: String,
        status: String,
    },
    RecordingAvailable {
        url: String,
    },
    /// A prompt has been said or played to its end (Telnyx `call.speak.ended`,
    /// `call.playback.ended`).
    PromptEnded,
    /// Answering machine detection, or the end of a machine's greeting.
    MachineDetection {
        answered_by: AnsweredBy,
    },
    StreamStarted,
    StreamStopped,
    StreamFailed {
        reason: Option<String>,
    },
    /// An event this layer does not map; acknowledge it and move on.
    Unhandled {
        event_type: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallDirection {
    Inbound,
    Outbound,
}

/// How a call that ended ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Hung up normally after it was answered (or by a time limit).
    Normal,
    Busy,
    NoAnswer,
    /// We (the caller) ended it before it was answered.
    Canceled,
    /// The callee declined it.
    Rejected,
    /// A cause neither mapped nor a failure (e.g. Telnyx `unspecified`).
    Other,
}

/// Who or what answered, as the providers tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnsweredBy {
    Human,
    Machine(MachinePhase),
    Fax,
    /// Detection could not tell (Twilio `unknown`, Telnyx `not_sure` / `silence`).
    Unknown,
}

impl AnsweredBy {
    /// The stable name recorded on the call (Twilio's vocabulary): `human`, `machine_start`,
    /// `machine_end_beep`, `machine_end_silence`, `machine_end_other`, `fax`, `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Human => "human",
            Self::Machine(MachinePhase::Detected) => "machine_start",
            Self::Machine(MachinePhase::GreetingEndedBeep) => "machine_end_beep",
            Self::Machine(MachinePhase::GreetingEndedSilence) => "machine_end_silence",
            Self::Machine(MachinePhase::GreetingEndedOther) => "machine_end_other",
            Self::Fax => "fax",
            Self::Unknown => "unknown",
        }
    }
}

/// How far into a machine's greeting the detection reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachinePhase {
    /// A machine answered (Twilio `machine_start`, Telnyx `machine`).
    Detected,
    /// Its greeting ended with a beep: the moment to leave a message.
    GreetingEndedBeep,
    GreetingEndedSilence,
    GreetingEndedOther,
}

/// What the dialer does with an answered call (DOMAIN.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmdOutcome {
    /// To an agent. Unknown results land here: dropping a live person is worse than an agent
    /// hearing a machine.
    Human,
    /// Voicemail drop or retry.
    Machine,
    Fax,
}

impl AnsweredBy {
    pub fn outcome(self) -> AmdOutcome {
        match self {
            Self::Human | Self::Unknown => AmdOutcome::Human,
            Self::Machine(_) => AmdOutcome::Machine,
            Self::Fax => AmdOutcome::Fax,
        }
    }

    /// Twilio's `AnsweredBy`: human, machine_start, machine_end_beep, machine_end_silence,
    /// machine_end_other, fax, unknown. Anything else is unknown.
    pub fn from_twilio(value: &str) -> Self {
        match value {
            "human" => Self::Human,
            "machine_start" => Self::Machine(MachinePhase::Detected),
            "machine_end_beep" => Self::Machine(MachinePhase::GreetingEndedBeep),
            "machine_end_silence" => Self::Machine(MachinePhase::GreetingEndedSilence),
            "machine_end_other" => Self::Machine(MachinePhase::GreetingEndedOther),
            "fax" => Self::Fax,
            _ => Self::Unknown,
        }
    }

    /// Telnyx's detection `result` (standard: human, machine, not_sure; premium:
    /// human_residence, human_business, machine, silence, fax_detected, not_sure).
    pub fn from_telnyx(result: &str) -> Self {
        match result {
            "human" | "human_residence" | "human_business" => Self::Human,
            "machine" => Self::Machine(MachinePhase::Detected),
            "fax_detected" => Self::Fax,
            _ => Self::Unknown,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Twilio
// ---------------------------------------------------------------------------------------------

/// Twilio's `CallStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TwilioCallStatus {
    Queued,
    Initiated,
    Ringing,
    InProgress,
    Completed,
    Busy,
    Failed,
    NoAnswer,
    Canceled,
}

impl TwilioCallStatus {
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "queued" => Self::Queued,
            "initiated" => Self::Initiated,
            "ringing" => Self::Ringing,
            "in-progress" => Self::InProgress,
            "completed" => Self::Completed,
            "busy" => Self::Busy,
            "failed" => Self::Failed,
            "no-answer" => Self::NoAnswer,
            "canceled" => Self::Canceled,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Initiated => "initiated",
            Self::Ringing => "ringing",
            Self::InProgress => "in-progress",
            Self::Completed => "completed",
            Self::Busy => "busy",
            Self::Failed => "failed",
            Self::NoAnswer => "no-answer",
            Self::Canceled => "canceled",
        }
    }
}

/// A Twilio voice webhook: a status callback, an asynchronous AMD callback (`AnsweredBy`
/// without `CallStatus`), a recording callback or a `<Gather>` result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioStatusCallback {
    pub call_sid: String,
    pub account_sid: Option<String>,
    pub call_status: Option<TwilioCallStatus>,
    /// Seconds, on `completed`.
    pub call_duration: Option<u64>,
    pub answered_by: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// inbound, outbound-api, outbound-dial.
    pub direction: Option<String>,
    pub parent_call_sid: Option<String>,
    /// Orders the callbacks of one call; part of the idempotency key.
    pub sequence_number: Option<u64>,
    pub timestamp: Option<String>,
    pub callback_source: Option<String>,
    pub digits: Option<String>,
    pub recording_url: Option<String>,
    pub recording_sid: Option<String>,
    pub recording_status: Option<String>,
    pub sip_response_code: Option<String>,
    pub error_code: Option<String>,
}

impl TwilioStatusCallback {
    /// From the raw `application/x-www-form-urlencoded` body.
    pub fn from_body(body: &[u8]) -> Result<Self, WebhookError> {
        if std::str::from_utf8(body).is_err() {
            return Err(WebhookError::Form);
        }
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
        Self::from_form(&pairs)
    }

    /// From decoded form fields (the first value of a repeated name wins).
    pub fn from_form<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Result<Self, WebhookError> {
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k.as_ref() == name)
                .map(|(_, v)| v.as_ref().to_owned())
                .filter(|v| !v.is_empty())
        };
        let number = |name: &'static str| -> Result<Option<u64>, WebhookError> {
            get(name)
                .map(|v| {
                    v.trim().parse().map_err(|_| WebhookError::InvalidValue { field: name, value: v.clone() })
                })
                .transpose()
        };
        let call_sid = get("CallSid").ok_or(WebhookError::MissingField("CallSid"))?;
        let call_status = get("CallStatus")
            .map(|v| {
                TwilioCallStatus::parse(&v)
                    .ok_or(WebhookError::InvalidValue { field: "CallStatus", value: v.clone() })
            })
            .transpose()?;
        Ok(Self {
            call_sid,
            account_sid: get("AccountSid"),
            call_status,
            call_duration: number("CallDuration")?,
            answered_by: get("AnsweredBy"),
            from: get("From"),
            to: get("To"),
            direction: get("Direction"),
            parent_call_sid: get("ParentCallSid"),
            sequence_number: number("SequenceNumber")?,
            timestamp: get("Timestamp"),
            callback_source: get("CallbackSource"),
            digits: get("Digits"),
            recording_url: get("RecordingUrl"),
            recording_sid: get("RecordingSid"),
            recording_status: get("RecordingStatus"),
            sip_response_code: get("SipResponseCode"),
            error_code: get("ErrorCode"),
        })
    }

    /// `twilio:{CallSid}:{CallStatus}[:{SequenceNumber}]`, or for callbacks without a status
    /// the AMD result, the recording or the digits they carry.
    pub fn idempotency_key(&self) -> String {
        let sid = &self.call_sid;
        match self.call_status {
            Some(status) if self.digits.is_none() => match self.sequence_number {
                Some(n) => format!("twilio:{sid}:{}:{n}", status.as_str()),
                None => format!("twilio:{sid}:{}", status.as_str()),
            },
            _ => {
                if let Some(digits) = &self.digits {
                    format!("twilio:{sid}:digits:{digits}")
                } else if let Some(recording) = &self.recording_sid {
                    let status = self.recording_status.as_deref().unwrap_or("completed");
                    format!("twilio:{sid}:recording:{recording}:{status}")
                } else {
                    format!("twilio:{sid}:amd:{}", self.answered_by.as_deref().unwrap_or(""))
                }
            }
        }
    }

    pub fn to_event(&self) -> Result<TelephonyWebhook, WebhookError> {
        let answered_by = self.answered_by.as_deref().map(AnsweredBy::from_twilio);
        let event = if let Some(digits) = &self.digits {
            TelephonyEvent::Dtmf { digits: digits.clone() }
        } else {
            match self.call_status {
                Some(TwilioCallStatus::Queued | TwilioCallStatus::Initiated) => TelephonyEvent::Initiated {
                    direction: self.direction.as_deref().map(|d| {
                        if d == "inbound" {
                            CallDirection::Inbound
                        } else {
                            CallDirection::Outbound
                        }
                    }),
                    from: self.from.clone(),
                    to: self.to.clone(),
                },
                Some(TwilioCallStatus::Ringing) => TelephonyEvent::Ringing,
                Some(TwilioCallStatus::InProgress) => TelephonyEvent::Answered { answered_by },
                Some(TwilioCallStatus::Completed) => self.completed(Disposition::Normal),
                Some(TwilioCallStatus::Busy) => self.completed(Disposition::Busy),
                Some(TwilioCallStatus::NoAnswer) => self.completed(Disposition::NoAnswer),
                Some(TwilioCallStatus::Canceled) => self.completed(Disposition::Canceled),
                Some(TwilioCallStatus::Failed) => {
                    let mut reason = "failed".to_owned();
                    if let Some(code) = &self.error_code {
                        reason.push_str(&format!(" (error {code})"));
                    }
                    if let Some(sip) = &self.sip_response_code {
                        reason.push_str(&format!(" (SIP {sip})"));
                    }
                    TelephonyEvent::Failed { reason }
                }
                None => match (&self.recording_url, answered_by) {
                    (Some(url), _) => TelephonyEvent::RecordingAvailable { url: url.clone() },
                    (None, Some(answered_by)) => TelephonyEvent::MachineDetection { answered_by },
                    (None, None) => return Err(WebhookError::MissingField("CallStatus")),
                },
            }
        };
        Ok(TelephonyWebhook {
            provider: Provider::Twilio,
            idempotency_key: self.idempotency_key(),
            call_id: self.call_sid.clone(),
            session_id: self.parent_call_sid.clone(),
            occurred_at: self.timestamp.clone(),
            client_state: None,
            event,
        })
    }

    fn completed(&self, disposition: Disposition) -> TelephonyEvent {
        TelephonyEvent::Completed {
            disposition,
            duration_secs: self.call_duration,
            hangup_cause: self.call_status.map(|s| s.as_str().to_owned()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Telnyx
// ---------------------------------------------------------------------------------------------

/// A Telnyx Call Control webhook: `{"data": {"id", "event_type", "occurred_at", "payload"},
/// "meta": {"attempt", "delivered_to"}}`. The payload differs by event, so it is kept as JSON
/// and read by the accessors; an event with an odd payload still parses.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TelnyxWebhook {
    pub data: TelnyxEventData,
    #[serde(default)]
    pub meta: Option<TelnyxMeta>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TelnyxEventData {
    #[serde(default)]
    pub id: Option<String>,
    pub event_type: String,
    #[serde(default)]
    pub occurred_at: Option<String>,
    #[serde(default)]
    pub record_type: Option<String>,
    #[serde(default)]
    pub payload: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TelnyxMeta {
    #[serde(default)]
    pub attempt: Option<u32>,
    #[serde(default)]
    pub delivered_to: Option<String>,
}

impl TelnyxWebhook {
    /// From the raw JSON body (the bytes that were signed).
    pub fn parse(body: &[u8]) -> Result<Self, WebhookError> {
        serde_json::from_slice(body).map_err(WebhookError::Json)
    }

    /// A string field of the payload (absent, null or not a string → `None`).
    pub fn payload_str(&self, name: &str) -> Option<&str> {
        self.data.payload.get(name).and_then(Value::as_str).filter(|s| !s.is_empty())
    }

    pub fn call_control_id(&self) -> Option<&str> {
        self.payload_str("call_control_id")
    }

    /// `telnyx:{data.id}`. Events without an id (never seen from Telnyx, but possible in
    /// hand-made requests) fall back to what stays the same across redeliveries: the event
    /// type, the call and `occurred_at` (`meta.attempt` changes, so a body hash would not do).
    pub fn idempotency_key(&self) -> String {
        match &self.data.id {
            Some(id) if !id.is_empty() => format!("telnyx:{id}"),
            _ => format!(
                "telnyx:{}:{}:{}",
                self.data.event_type,
                self.call_control_id().unwrap_or(""),
                self.data.occurred_at.as_deref().unwrap_or("")
            ),
        }
    }

    pub fn to_event(&self) -> Result<TelephonyWebhook, WebhookError> {
        let call_id = self
            .call_control_id()
            .ok_or(WebhookError::MissingField("data.payload.call_control_id"))?
            .to_owned();
        let s = |name: &str| self.payload_str(name).map(str::to_owned);
        let event = match self.data.event_type.as_str() {
            "call.initiated" => TelephonyEvent::Initiated {
                direction: match self.payload_str("direction") {
                    Some("incoming") => Some(CallDirection::Inbound),
                    Some("outgoing") => Some(CallDirection::Outbound),
                    _ => None,
                },
                from: s("from"),
                to: s("to"),
            },
            "call.answered" => TelephonyEvent::Answered { answered_by: None },
            "call.hangup" => self.hangup(),
            "call.machine.detection.ended" | "call.machine.premium.detection.ended" => {
                TelephonyEvent::MachineDetection {
                    answered_by: AnsweredBy::from_telnyx(self.payload_str("result").unwrap_or("not_sure")),
                }
            }
            "call.machine.greeting.ended" | "call.machine.premium.greeting.ended" => {
                let phase = match self.payload_str("result") {
                    Some("beep_detected") => MachinePhase::GreetingEndedBeep,
                    _ => MachinePhase::GreetingEndedOther,
                };
                TelephonyEvent::MachineDetection { answered_by: AnsweredBy::Machine(phase) }
            }
            "call.dtmf.received" => TelephonyEvent::Dtmf {
                digits: s("digit").ok_or(WebhookError::MissingField("data.payload.digit"))?,
            },
            "call.gather.ended" => TelephonyEvent::GatherEnded {
                digits: s("digits").unwrap_or_default(),
                status: s("status").unwrap_or_default(),
            },
            "call.recording.saved" => TelephonyEvent::RecordingAvailable {
                url: self.recording_url().ok_or(WebhookError::MissingField("data.payload.recording_urls"))?,
            },
            "call.speak.ended" | "call.playback.ended" => TelephonyEvent::PromptEnded,
            "streaming.started" => TelephonyEvent::StreamStarted,
            "streaming.stopped" => TelephonyEvent::StreamStopped,
            "streaming.failed" => TelephonyEvent::StreamFailed { reason: s("failure_reason") },
            other => TelephonyEvent::Unhandled { event_type: other.to_owned() },
        };
        Ok(TelephonyWebhook {
            provider: Provider::Telnyx,
            idempotency_key: self.idempotency_key(),
            call_id,
            session_id: s("call_session_id"),
            occurred_at: self.data.occurred_at.clone(),
            client_state: s("client_state"),
            event,
        })
    }

    fn hangup(&self) -> TelephonyEvent {
        let cause = self.payload_str("hangup_cause");
        let disposition = match cause {
            None | Some("normal_clearing" | "time_limit") => Disposition::Normal,
            Some("user_busy") => Disposition::Busy,
            Some("no_answer" | "timeout") => Disposition::NoAnswer,
            Some("originator_cancel") => Disposition::Canceled,
            Some("call_rejected") => Disposition::Rejected,
            Some("not_found") => return TelephonyEvent::Failed { reason: "not_found".to_owned() },
            Some(_) => Disposition::Other,
        };
        TelephonyEvent::Completed {
            disposition,
            duration_secs: self.duration_secs(),
            hangup_cause: cause.map(str::to_owned),
        }
    }

    /// From `start_time` to the hangup's `occurred_at` (Telnyx sends no duration).
    fn duration_secs(&self) -> Option<u64> {
        let start = DateTime::parse_from_rfc3339(self.payload_str("start_time")?).ok()?;
        let end = DateTime::parse_from_rfc3339(self.data.occurred_at.as_deref()?).ok()?;
        u64::try_from((end - start).num_seconds()).ok()
    }

    /// `recording_urls` (authenticated, short-lived) before `public_recording_urls`; mp3 before wav.
    fn recording_url(&self) -> Option<String> {
        ["recording_urls", "public_recording_urls"].iter().find_map(|field| {
            let urls = self.data.payload.get(*field)?.as_object()?;
            ["mp3", "wav"]
                .iter()
                .find_map(|f| urls.get(*f)?.as_str().filter(|u| !u.is_empty()).map(str::to_owned))
        })
    }
}
