//! OpenAI Realtime (GA) adapter over WebSocket.
//!
//! Telephony μ-law goes in and comes out untouched: the session asks for `audio/pcmu` both
//! ways, so there is no transcoding. Server VAD detects the caller; its `speech_started` is
//! the barge-in signal, after which the bridge clears the phone's buffer and calls
//! [`AgentSession::truncate`] with what was actually played.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};

use super::link::{self, Link, Parser};
use super::{codes, error_event, AgentEvent, AgentSession, AiError, Provider, SessionConfig, Speaker};

const PROVIDER: Provider = Provider::OpenAi;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Credentials and endpoint for OpenAI Realtime.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    pub api_key: SecretString,
    /// Realtime model, sent as `?model=` and in `session.update`.
    pub model: String,
    /// WebSocket endpoint without the query; tests point it at a local fake.
    pub base_url: String,
    /// Model transcribing the caller (`audio.input.transcription.model`).
    pub transcription_model: String,
    /// Voice used when [`SessionConfig::voice`] is not set.
    pub default_voice: String,
    pub connect_timeout: Duration,
}

impl OpenAiConfig {
    pub const DEFAULT_BASE_URL: &'static str = "wss://api.openai.com/v1/realtime";

    pub fn new(api_key: SecretString) -> Self {
        Self {
            api_key,
            model: "gpt-realtime".to_owned(),
            base_url: Self::DEFAULT_BASE_URL.to_owned(),
            transcription_model: "gpt-4o-transcribe".to_owned(),
            default_voice: "marin".to_owned(),
            connect_timeout: super::DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// The endpoint with `?model=…`.
    pub fn url(&self) -> Result<url::Url, AiError> {
        let mut url = url::Url::parse(&self.base_url)
            .map_err(|e| AiError::Config { provider: PROVIDER, message: format!("bad base_url: {e}") })?;
        url.query_pairs_mut().append_pair("model", &self.model);
        Ok(url)
    }
}

/// The `session.update` that configures a call: μ-law both ways, server VAD that interrupts
/// the agent when the caller speaks, caller transcription, and the tools.
pub fn session_update(cfg: &OpenAiConfig, session: &SessionConfig) -> Value {
    let mut transcription = json!({ "model": cfg.transcription_model });
    if let Some(language) = &session.language {
        // The transcription model wants ISO-639-1 (`cs`), not a full tag (`cs-CZ`).
        let primary = language.split(['-', '_']).next().unwrap_or(language);
        transcription["language"] = json!(primary.to_ascii_lowercase());
    }
    let tools: Vec<Value> = session
        .tools
        .iter()
        .map(|t| {
            json!({
                "type": "function",
                "name": t.name,
                "description": t.description,
                "parameters": t.parameters,
            })
        })
        .collect();
    json!({
        "type": "session.update",
        "session": {
            "type": "realtime",
            "model": cfg.model,
            "output_modalities": ["audio"],
            "instructions": session.instructions,
            "audio": {
                "input": {
                    "format": { "type": "audio/pcmu" },
                    "turn_detection": {
                        "type": "server_vad",
                        "threshold": 0.5,
                        "prefix_padding_ms": 300,
                        "silence_duration_ms": 500,
                        "create_response": true,
                        "interrupt_response": true,
                    },
                    "transcription": transcription,
                },
                "output": {
                    "format": { "type": "audio/pcmu" },
                    "voice": session.voice.as_deref().unwrap_or(&cfg.default_voice),
                },
            },
            "tools": tools,
            "tool_choice": "auto",
        }
    })
}

/// A live OpenAI Realtime conversation.
pub struct OpenAiSession {
    link: Link,
}

impl OpenAiSession {
    /// Connects, sends `session.update`, waits for `session.updated`, then starts the greeting.
    pub async fn connect(cfg: &OpenAiConfig, session: &SessionConfig) -> Result<Self, AiError> {
        let url = cfg.url()?;
        let auth = format!("Bearer {}", cfg.api_key.expose_secret());
        let mut ws =
            link::open(PROVIDER, url.as_str(), &[("authorization", &auth)], cfg.connect_timeout).await?;
        link::send_json_raw(PROVIDER, &mut ws, &session_update(cfg, session)).await?;
        let earlier = link::handshake(PROVIDER, &mut ws, cfg.connect_timeout, |frame| {
            let event: Value = serde_json::from_slice(frame).ok()?;
            match event.get("type").and_then(Value::as_str)? {
                "session.updated" => Some(Ok(())),
                "error" => {
                    Some(Err(event["error"]["message"].as_str().unwrap_or("unknown error").to_owned()))
                }
                _ => None, // session.created and anything else before our update lands
            }
        })
        .await?;
        let mut this = Self { link: Link::spawn(PROVIDER, ws, earlier, OpenAiParser, None) };
        if let Some(greeting) = &session.greeting {
            this.say(greeting).await?;
        }
        Ok(this)
    }
}

#[async_trait]
impl AgentSession for OpenAiSession {
    fn provider(&self) -> Provider {
        self.link.provider()
    }

    async fn send_audio(&mut self, ulaw_8k: &[u8]) -> Result<(), AiError> {
        if ulaw_8k.is_empty() {
            return Ok(());
        }
        self.link
            .send_json(&json!({ "type": "input_audio_buffer.append", "audio": B64.encode(ulaw_8k) }))
            .await
    }

    async fn say(&mut self, text: &str) -> Result<(), AiError> {
        let instructions = format!("Say exactly this to the caller, and nothing else: {text}");
        self.link
            .send_json(&json!({ "type": "response.create", "response": { "instructions": instructions } }))
            .await
    }

    async fn send_tool_result(&mut self, call_id: &str, result: Value) -> Result<(), AiError> {
        let output = match result {
            Value::String(s) => s,
            other => other.to_string(),
        };
        self.link
            .send_json(&json!({
                "type": "conversation.item.create",
                "item": { "type": "function_call_output", "call_id": call_id, "output": output },
            }))
            .await?;
        self.link.send_json(&json!({ "type": "response.create" })).await
    }

    async fn truncate(&mut self, item_id: &str, audio_end_ms: u32) -> Result<(), AiError> {
        self.link
            .send_json(&json!({
                "type": "conversation.item.truncate",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": audio_end_ms,
            }))
            .await
    }

    async fn next_event(&mut self) -> Option<AgentEvent> {
        self.link.next_event().await
    }

    async fn close(&mut self) -> Result<(), AiError> {
        self.link.close(Vec::new(), false).await;
        Ok(())
    }
}

/// The server events we act on; everything else is ignored.
#[derive(Deserialize)]
#[serde(tag = "type")]
enum ServerEvent {
    #[serde(rename = "response.output_audio.delta")]
    AudioDelta { item_id: Option<String>, delta: String },
    #[serde(rename = "input_audio_buffer.speech_started")]
    SpeechStarted {},
    #[serde(rename = "input_audio_buffer.speech_stopped")]
    SpeechStopped {},
    #[serde(rename = "response.output_audio_transcript.delta")]
    AgentTranscriptDelta { delta: String },
    #[serde(rename = "response.output_audio_transcript.done")]
    AgentTranscriptDone { transcript: String },
    #[serde(rename = "conversation.item.input_audio_transcription.delta")]
    CallerTranscriptDelta { delta: String },
    #[serde(rename = "conversation.item.input_audio_transcription.completed")]
    CallerTranscriptDone { transcript: String },
    #[serde(rename = "response.function_call_arguments.done")]
    FunctionCall { call_id: String, name: String, arguments: String },
    #[serde(rename = "response.done")]
    ResponseDone { response: Option<ResponseInfo> },
    #[serde(rename = "error")]
    Error { error: ErrorInfo },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct ResponseInfo {
    status: Option<String>,
    status_details: Option<Value>,
}

#[derive(Deserialize)]
struct ErrorInfo {
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<String>,
    message: Option<String>,
}

/// The event's type alone, read first so the most frequent event (audio) skips the general
/// (buffering) path of the tagged enum.
#[derive(Deserialize)]
struct TypeTag<'a> {
    #[serde(borrow, rename = "type")]
    kind: std::borrow::Cow<'a, str>,
}

#[derive(Deserialize)]
struct AudioDelta<'a> {
    item_id: Option<String>,
    #[serde(borrow)]
    delta: std::borrow::Cow<'a, str>,
}

struct OpenAiParser;

impl Parser for OpenAiParser {
    fn text(&mut self, text: &str, out: &mut Vec<AgentEvent>) {
        if serde_json::from_str::<TypeTag>(text).is_ok_and(|t| t.kind == "response.output_audio.delta") {
            match serde_json::from_str::<AudioDelta>(text) {
                Ok(AudioDelta { item_id, delta }) => match B64.decode(delta.as_bytes()) {
                    Ok(ulaw_8k) => out.push(AgentEvent::AudioOut { ulaw_8k, item_id }),
                    Err(e) => {
                        out.push(error_event(codes::BAD_AUDIO, format!("audio delta is not base64: {e}")))
                    }
                },
                Err(e) => {
                    out.push(error_event(codes::MALFORMED_FRAME, format!("unusable OpenAI event: {e}")))
                }
            }
            return;
        }
        let event: ServerEvent = match serde_json::from_str(text) {
            Ok(event) => event,
            Err(e) => {
                out.push(error_event(codes::MALFORMED_FRAME, format!("unusable OpenAI event: {e}")));
                return;
            }
        };
        match event {
            ServerEvent::AudioDelta { item_id, delta } => match B64.decode(delta.as_bytes()) {
                Ok(ulaw_8k) => out.push(AgentEvent::AudioOut { ulaw_8k, item_id }),
                Err(e) => out.push(error_event(codes::BAD_AUDIO, format!("audio delta is not base64: {e}"))),
            },
            ServerEvent::SpeechStarted {} => out.push(AgentEvent::SpeechStarted),
            ServerEvent::SpeechStopped {} => out.push(AgentEvent::SpeechStopped),
            ServerEvent::AgentTranscriptDelta { delta } => {
                out.push(AgentEvent::Transcript { speaker: Speaker::Agent, text: delta, is_final: false })
            }
            ServerEvent::AgentTranscriptDone { transcript } => {
                out.push(AgentEvent::Transcript { speaker: Speaker::Agent, text: transcript, is_final: true })
            }
            ServerEvent::CallerTranscriptDelta { delta } => {
                out.push(AgentEvent::Transcript { speaker: Speaker::Caller, text: delta, is_final: false })
            }
            ServerEvent::CallerTranscriptDone { transcript } => out.push(AgentEvent::Transcript {
                speaker: Speaker::Caller,
                text: transcript,
                is_final: true,
            }),
            ServerEvent::FunctionCall { call_id, name, arguments } => {
                match serde_json::from_str::<Value>(&arguments) {
                    Ok(arguments @ Value::Object(_)) => {
                        out.push(AgentEvent::ToolCall { call_id, name, arguments })
                    }
                    _ => out.push(error_event(
                        codes::BAD_TOOL_ARGUMENTS,
                        format!("call {call_id} to {name}: arguments are not a JSON object: {arguments}"),
                    )),
                }
            }
            ServerEvent::ResponseDone { response } => {
                if let Some(ResponseInfo { status: Some(status), status_details }) = response {
                    if status == "failed" || status == "incomplete" {
                        let details = status_details.map(|d| d.to_string()).unwrap_or_default();
                        out.push(AgentEvent::Error {
                            code: format!("response_{status}"),
                            message: format!("the response ended {status}: {details}"),
                        });
                    }
                }
                out.push(AgentEvent::ResponseDone);
            }
            ServerEvent::Error { error } => out.push(AgentEvent::Error {
                code: error.code.or(error.kind).unwrap_or_else(|| "error".to_owned()),
                message: error.message.unwrap_or_default(),
            }),
            ServerEvent::Other => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(frame: &str) -> Vec<AgentEvent> {
        let mut out = Vec::new();
        OpenAiParser.text(frame, &mut out);
        out
    }

    #[test]
    fn audio_delta_is_passed_through_as_ulaw() {
        let events = parse(
            r#"{"type":"response.output_audio.delta","response_id":"r","item_id":"i1","output_index":0,"content_index":0,"delta":"/wB/gA=="}"#,
        );
        assert_eq!(
            events,
            [AgentEvent::AudioOut { ulaw_8k: vec![0xFF, 0x00, 0x7F, 0x80], item_id: Some("i1".into()) }]
        );
    }

    #[test]
    fn bad_frames_become_error_events() {
        let code = |events: Vec<AgentEvent>| match events.as_slice() {
            [AgentEvent::Error { code, .. }] => code.clone(),
            other => panic!("expected one error, got {other:?}"),
        };
        assert_eq!(code(parse("{not json")), codes::MALFORMED_FRAME);
        assert_eq!(
            code(parse(r#"{"type":"response.output_audio.delta","item_id":"i"}"#)),
            codes::MALFORMED_FRAME
        );
        assert_eq!(code(parse(r#"{"type":"response.output_audio.delta","delta":"!!"}"#)), codes::BAD_AUDIO);
        assert_eq!(
            code(parse(
                r#"{"type":"response.function_call_arguments.done","call_id":"c","name":"f","arguments":"[1"}"#
            )),
            codes::BAD_TOOL_ARGUMENTS
        );
        assert!(parse(r#"{"type":"rate_limits.updated","rate_limits":[]}"#).is_empty());
    }

    #[test]
    fn failed_response_reports_an_error_then_done() {
        let events = parse(
            r#"{"type":"response.done","response":{"id":"r","status":"failed","status_details":{"error":{"code":"x"}}}}"#,
        );
        assert!(
            matches!(&events[..], [AgentEvent::Error { code, .. }, AgentEvent::ResponseDone] if code == "response_failed")
        );
    }
}
