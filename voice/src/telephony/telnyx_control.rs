//! Telnyx Call Control v2: commands on a call (`POST /calls/{call_control_id}/actions/{action}`)
//! and outbound calls (`POST /calls`), authenticated with `Authorization: Bearer <API key>`.
//!
//! Every request carries a caller-supplied [`CommandId`]: Telnyx ignores a second command with
//! the same `command_id` on the same call, which makes retrying safe, so the client retries
//! timeouts, connection failures, 429 and 5xx answers with the same id (see [`RetryPolicy`]).

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

/// Where the real API lives; tests point the client at a local fake instead.
pub const DEFAULT_BASE_URL: &str = "https://api.telnyx.com/v2";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The idempotency key of one command: the same for every retry of that command, different for
/// every command. Typically derived from the event that caused the command.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct CommandId(String);

impl CommandId {
    /// Telnyx takes any non-empty string; we also refuse whitespace and overlong ids, which
    /// only a bug would produce.
    pub fn parse(id: impl Into<String>) -> Result<Self, TelnyxError> {
        let id = id.into();
        if id.is_empty() || id.len() > 256 || id.chars().any(char::is_whitespace) {
            return Err(TelnyxError::InvalidArgument("command_id must be 1-256 non-blank characters"));
        }
        Ok(Self(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// State Telnyx echoes in every later webhook of the call: base64 on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ClientState(String);

impl ClientState {
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self(super::wire::b64_encode(bytes))
    }

    /// The base64 text as sent.
    pub fn as_base64(&self) -> &str {
        &self.0
    }
}

/// One error of Telnyx's `{"errors": [{"code", "title", "detail"}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TelnyxApiError {
    /// e.g. `10009` authentication failed, `90018` call has already ended (a string on the wire).
    #[serde(deserialize_with = "code_string")]
    pub code: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub detail: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TelnyxError {
    #[error("Telnyx answered {status}: {}", summary(.errors))]
    Api { status: u16, errors: Vec<TelnyxApiError> },
    #[error("request to Telnyx failed: {0}")]
    Transport(#[source] reqwest::Error),
    #[error("unexpected Telnyx response (HTTP {status}): {source}")]
    Decode {
        status: u16,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid Telnyx base URL {0:?}")]
    InvalidBaseUrl(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
}

impl TelnyxError {
    /// Whether the same request may succeed if sent again.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Api { status, .. } => *status == 429 || *status >= 500,
            Self::Transport(e) => e.is_timeout() || e.is_connect() || e.is_request(),
            _ => false,
        }
    }

    /// Whether Telnyx said the call is already over (`90018`): commands on it are moot.
    pub fn is_call_ended(&self) -> bool {
        matches!(self, Self::Api { errors, .. } if errors.iter().any(|e| e.code == "90018"))
    }
}

fn summary(errors: &[TelnyxApiError]) -> String {
    let parts: Vec<String> = errors
        .iter()
        .map(|e| match &e.detail {
            Some(detail) => format!("{} {} ({detail})", e.code, e.title),
            None => format!("{} {}", e.code, e.title),
        })
        .collect();
    if parts.is_empty() {
        "no error details".to_owned()
    } else {
        parts.join("; ")
    }
}

fn code_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!("error code is neither string nor number: {other}"))),
    }
}

/// How often and how patiently to retry a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = never retry).
    pub max_attempts: u32,
    /// Wait before the first retry; doubles for each later one, up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
        }
    }
}

/// Which audio a media stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamTrack {
    InboundTrack,
    OutboundTrack,
    BothTracks,
}

/// How we send audio back on the stream: `rtp` frames (what the bridge does) or `mp3` files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BidirectionalMode {
    Rtp,
    Mp3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum StreamCodec {
    #[serde(rename = "PCMU")]
    Pcmu,
    #[serde(rename = "PCMA")]
    Pcma,
    #[serde(rename = "G722")]
    G722,
    #[serde(rename = "OPUS")]
    Opus,
    #[serde(rename = "AMR-WB")]
    AmrWb,
    #[serde(rename = "L16")]
    L16,
}

/// A media stream to our WebSocket, as `answer`, `dial` and `streaming_start` take it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamParams {
    pub stream_url: String,
    pub stream_track: StreamTrack,
    pub stream_bidirectional_mode: BidirectionalMode,
    pub stream_bidirectional_codec: StreamCodec,
}

impl StreamParams {
    /// The bridge's setting (PROTOCOLS.md): the caller's audio in, PCMU RTP frames back.
    pub fn bidirectional_pcmu(stream_url: impl Into<String>) -> Self {
        Self {
            stream_url: stream_url.into(),
            stream_track: StreamTrack::InboundTrack,
            stream_bidirectional_mode: BidirectionalMode::Rtp,
            stream_bidirectional_codec: StreamCodec::Pcmu,
        }
    }
}

/// `answer`: picks up an incoming call, optionally streaming its media to us.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Answer {
    #[serde(flatten)]
    pub stream: Option<StreamParams>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_state: Option<ClientState>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadType {
    Text,
    Ssml,
}

/// `speak`: text-to-speech on the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Speak {
    pub payload: String,
    /// e.g. `female`, `Polly.Joanna`, `Telnyx.KokoroTTS.af`.
    pub voice: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_type: Option<PayloadType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_state: Option<ClientState>,
}

impl Speak {
    pub fn new(payload: impl Into<String>, voice: impl Into<String>) -> Self {
        Self {
            payload: payload.into(),
            voice: voice.into(),
            language: None,
            payload_type: None,
            client_state: None,
        }
    }
}

/// Digit collection limits, shared by `gather` and `gather_using_speak`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DigitRules {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum_digits: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_digits: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_millis: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inter_digit_timeout_millis: Option<u32>,
    /// e.g. `#`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminating_digit: Option<String>,
    /// e.g. `0123456789*`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_digits: Option<String>,
}

/// `gather_using_speak`: speaks a prompt and collects digits (a `call.gather.ended` follows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatherUsingSpeak {
    pub payload: String,
    pub voice: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Spoken when the input is invalid, before trying again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalid_payload: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_tries: Option<u32>,
    #[serde(flatten)]
    pub digits: DigitRules,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_state: Option<ClientState>,
}

impl GatherUsingSpeak {
    pub fn new(payload: impl Into<String>, voice: impl Into<String>) -> Self {
        Self {
            payload: payload.into(),
            voice: voice.into(),
            language: None,
            invalid_payload: None,
            maximum_tries: None,
            digits: DigitRules::default(),
            client_state: None,
        }
    }
}

/// `gather`: collects digits silently.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Gather {
    #[serde(flatten)]
    pub digits: DigitRules,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_timeout_millis: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gather_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_state: Option<ClientState>,
}

/// Answering machine detection on an outbound call or transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnsweringMachineDetection {
    /// `call.machine.premium.detection.ended` (human_residence, human_business, machine, …).
    Premium,
    /// `call.machine.detection.ended` (human, machine, not_sure).
    Detect,
    /// Also `call.machine.greeting.ended` when a beep is heard.
    DetectBeep,
    DetectWords,
    /// Also `call.machine.greeting.ended` when a machine's greeting ends.
    GreetingEnd,
    Disabled,
}

/// `transfer`: calls `to` and bridges the caller to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transfer {
    pub to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answering_machine_detection: Option<AnsweringMachineDetection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_state: Option<ClientState>,
    /// State for the new leg's webhooks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_leg_client_state: Option<ClientState>,
}

impl Transfer {
    pub fn new(to: impl Into<String>) -> Self {
        Self {
            to: to.into(),
            from: None,
            timeout_secs: None,
            answering_machine_detection: None,
            client_state: None,
            target_leg_client_state: None,
        }
    }
}

/// `enqueue`: puts the call in a named queue (created on first use) until an agent's call is
/// bridged to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Enqueue {
    pub queue_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_wait_time_secs: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_state: Option<ClientState>,
}

impl Enqueue {
    pub fn new(queue_name: impl Into<String>) -> Self {
        Self { queue_name: queue_name.into(), max_wait_time_secs: None, max_size: None, client_state: None }
    }
}

/// `bridge`: connects this call with another call in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bridge {
    /// The other call's call control id.
    pub call_control_id: String,
    /// `self` parks this leg instead of hanging it up when the other leg leaves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub park_after_unbridge: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_state: Option<ClientState>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordingChannels {
    Single,
    Dual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordingFormat {
    Wav,
    Mp3,
}

/// `record_start`: records the call (a `call.recording.saved` follows when it stops).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordStart {
    pub channels: RecordingChannels,
    pub format: RecordingFormat,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub play_beep: Option<bool>,
    /// Seconds; 0 is unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
    /// Seconds of silence that stop the recording.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_state: Option<ClientState>,
}

/// `hangup`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Hangup {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_state: Option<ClientState>,
}

/// `POST /calls`: an outbound call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dial {
    /// The Call Control application.
    pub connection_id: String,
    pub to: String,
    pub from: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answering_machine_detection: Option<AnsweringMachineDetection>,
    #[serde(flatten)]
    pub stream: Option<StreamParams>,
    /// Seconds to ring before giving up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_state: Option<ClientState>,
}

impl Dial {
    pub fn new(connection_id: impl Into<String>, to: impl Into<String>, from: impl Into<String>) -> Self {
        Self {
            connection_id: connection_id.into(),
            to: to.into(),
            from: from.into(),
            from_display_name: None,
            answering_machine_detection: None,
            stream: None,
            timeout_secs: None,
            webhook_url: None,
            client_state: None,
        }
    }
}

/// Telnyx's answer to a command: `{"data": {"result": "ok"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CommandAck {
    pub result: String,
}

/// Telnyx's answer to a dial: the new call's ids (webhooks follow as it progresses).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DialedCall {
    pub call_control_id: String,
    pub call_leg_id: String,
    pub call_session_id: String,
    #[serde(default)]
    pub is_alive: bool,
}

#[derive(Deserialize)]
struct DataEnvelope<T> {
    data: T,
}

#[derive(Deserialize)]
struct ErrorsEnvelope {
    #[serde(default)]
    errors: Vec<TelnyxApiError>,
}

#[derive(Serialize)]
struct WithCommandId<'a, B: Serialize> {
    #[serde(flatten)]
    body: &'a B,
    command_id: &'a CommandId,
}

/// A Call Control client for one API key.
#[derive(Clone)]
pub struct TelnyxClient {
    http: reqwest::Client,
    base: Url,
    api_key: SecretString,
    retry: RetryPolicy,
}

impl std::fmt::Debug for TelnyxClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelnyxClient")
            .field("base", &self.base.as_str())
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl TelnyxClient {
    pub fn new(api_key: SecretString) -> Result<Self, TelnyxError> {
        if api_key.expose_secret().is_empty() {
            return Err(TelnyxError::InvalidArgument("API key is empty"));
        }
        let http =
            reqwest::Client::builder().timeout(DEFAULT_TIMEOUT).build().map_err(TelnyxError::Transport)?;
        Ok(Self { http, base: parse_base(DEFAULT_BASE_URL)?, api_key, retry: RetryPolicy::default() })
    }

    /// Sends requests to `base_url` (with its `/v2`) instead of [`DEFAULT_BASE_URL`].
    pub fn with_base_url(mut self, base_url: &str) -> Result<Self, TelnyxError> {
        self.base = parse_base(base_url)?;
        Ok(self)
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = RetryPolicy { max_attempts: retry.max_attempts.max(1), ..retry };
        self
    }

    pub fn with_http_client(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    pub async fn answer(
        &self,
        call_control_id: &str,
        params: &Answer,
        id: &CommandId,
    ) -> Result<CommandAck, TelnyxError> {
        self.command(call_control_id, "answer", params, id).await
    }

    pub async fn speak(
        &self,
        call_control_id: &str,
        params: &Speak,
        id: &CommandId,
    ) -> Result<CommandAck, TelnyxError> {
        self.command(call_control_id, "speak", params, id).await
    }

    pub async fn gather_using_speak(
        &self,
        call_control_id: &str,
        params: &GatherUsingSpeak,
        id: &CommandId,
    ) -> Result<CommandAck, TelnyxError> {
        self.command(call_control_id, "gather_using_speak", params, id).await
    }

    pub async fn gather(
        &self,
        call_control_id: &str,
        params: &Gather,
        id: &CommandId,
    ) -> Result<CommandAck, TelnyxError> {
        self.command(call_control_id, "gather", params, id).await
    }

    pub async fn transfer(
        &self,
        call_control_id: &str,
        params: &Transfer,
        id: &CommandId,
    ) -> Result<CommandAck, TelnyxError> {
        self.command(call_control_id, "transfer", params, id).await
    }

    pub async fn enqueue(
        &self,
        call_control_id: &str,
        params: &Enqueue,
        id: &CommandId,
    ) -> Result<CommandAck, TelnyxError> {
        self.command(call_control_id, "enqueue", params, id).await
    }

    pub async fn bridge(
        &self,
        call_control_id: &str,
        params: &Bridge,
        id: &CommandId,
    ) -> Result<CommandAck, TelnyxError> {
        self.command(call_control_id, "bridge", params, id).await
    }

    pub async fn record_start(
        &self,
        call_control_id: &str,
        params: &RecordStart,
        id: &CommandId,
    ) -> Result<CommandAck, TelnyxError> {
        self.command(call_control_id, "record_start", params, id).await
    }

    /// Starts streaming a call's media to us after it was answered without a stream.
    pub async fn streaming_start(
        &self,
        call_control_id: &str,
        params: &StreamParams,
        id: &CommandId,
    ) -> Result<CommandAck, TelnyxError> {
        self.command(call_control_id, "streaming_start", params, id).await
    }

    pub async fn hangup(
        &self,
        call_control_id: &str,
        params: &Hangup,
        id: &CommandId,
    ) -> Result<CommandAck, TelnyxError> {
        self.command(call_control_id, "hangup", params, id).await
    }

    /// Places an outbound call.
    pub async fn dial(&self, params: &Dial, id: &CommandId) -> Result<DialedCall, TelnyxError> {
        if params.connection_id.is_empty() || params.to.is_empty() || params.from.is_empty() {
            return Err(TelnyxError::InvalidArgument("connection_id, to and from are required"));
        }
        let url = self.url(&["calls"]);
        self.post(url, &WithCommandId { body: params, command_id: id }).await
    }

    /// Any other action (`actions/{action}`) with a JSON body of its parameters.
    pub async fn command<B: Serialize>(
        &self,
        call_control_id: &str,
        action: &str,
        params: &B,
        id: &CommandId,
    ) -> Result<CommandAck, TelnyxError> {
        if call_control_id.is_empty() {
            return Err(TelnyxError::InvalidArgument("call_control_id is empty"));
        }
        if action.is_empty() || !action.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            return Err(TelnyxError::InvalidArgument("action must be lower-case letters and '_'"));
        }
        let url = self.url(&["calls", call_control_id, "actions", action]);
        self.post(url, &WithCommandId { body: params, command_id: id }).await
    }

    fn url(&self, tail: &[&str]) -> Url {
        let mut url = self.base.clone();
        // `parse_base` only accepts URLs that can have paths, so this is always `Ok`; each
        // segment is percent-encoded, so an id cannot change the path.
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(tail);
        }
        url
    }

    async fn post<B: Serialize, T: serde::de::DeserializeOwned>(
        &self,
        url: Url,
        body: &B,
    ) -> Result<T, TelnyxError> {
        let mut backoff = self.retry.initial_backoff;
        let mut attempt = 1;
        loop {
            match self.post_once(url.clone(), body).await {
                Err(e) if e.is_retryable() && attempt < self.retry.max_attempts => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.retry.max_backoff);
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn post_once<B: Serialize, T: serde::de::DeserializeOwned>(
        &self,
        url: Url,
        body: &B,
    ) -> Result<T, TelnyxError> {
        let response = self
            .http
            .post(url)
            .bearer_auth(self.api_key.expose_secret())
            .header(reqwest::header::ACCEPT, "application/json")
            .json(body)
            .send()
            .await
            .map_err(TelnyxError::Transport)?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(TelnyxError::Transport)?;
        if (200..300).contains(&status) {
            return serde_json::from_slice::<DataEnvelope<T>>(&bytes)
                .map(|envelope| envelope.data)
                .map_err(|source| TelnyxError::Decode { status, source });
        }
        let errors =
            serde_json::from_slice::<ErrorsEnvelope>(&bytes).map(|e| e.errors).unwrap_or_else(|_| {
                vec![TelnyxApiError {
                    code: String::new(),
                    title: String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned(),
                    detail: None,
                }]
            });
        Err(TelnyxError::Api { status, errors })
    }
}

fn parse_base(base: &str) -> Result<Url, TelnyxError> {
    match Url::parse(base) {
        Ok(url) if matches!(url.scheme(), "https" | "http") && !url.cannot_be_a_base() => Ok(url),
        _ => Err(TelnyxError::InvalidBaseUrl(base.to_owned())),
    }
}
