//! Gemini Live adapter (`BidiGenerateContent` over WebSocket).
//!
//! Gemini speaks PCM16 little-endian: 16 kHz in, 24 kHz out. Caller μ-law is decoded and
//! upsampled 8 → 16 kHz; the model's audio is downsampled 24 → 8 kHz and μ-law encoded, each
//! direction through one streaming [`Resampler`] so 20 ms frames join without clicks. Gemini
//! detects the caller itself and reports `interrupted`, which becomes
//! [`AgentEvent::Interrupted`]. The server sends its JSON in binary frames as well as text.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};

use super::link::{self, Link, Parser};
use super::{codes, error_event, AgentEvent, AgentSession, AiError, Provider, SessionConfig, Speaker};
use crate::audio::{self, Resampler, GEMINI_INPUT_HZ, GEMINI_OUTPUT_HZ, TELEPHONY_HZ};

const PROVIDER: Provider = Provider::Gemini;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
/// MIME type of the audio we send.
pub const INPUT_MIME: &str = "audio/pcm;rate=16000";

/// Credentials and endpoint for Gemini Live.
#[derive(Debug, Clone)]
pub struct GeminiConfig {
    pub api_key: SecretString,
    /// Model resource name; `models/` is prefixed when missing.
    pub model: String,
    /// WebSocket endpoint; tests point it at a local fake.
    pub url: String,
    pub connect_timeout: Duration,
}

impl GeminiConfig {
    pub const DEFAULT_URL: &'static str = "wss://generativelanguage.googleapis.com/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent";

    pub fn new(api_key: SecretString) -> Self {
        Self {
            api_key,
            model: "models/gemini-2.5-flash-native-audio-preview-09-2025".to_owned(),
            url: Self::DEFAULT_URL.to_owned(),
            connect_timeout: super::DEFAULT_CONNECT_TIMEOUT,
        }
    }

    fn model_name(&self) -> String {
        if self.model.starts_with("models/") {
            self.model.clone()
        } else {
            format!("models/{}", self.model)
        }
    }
}

/// The first message: audio responses, the system prompt, tools and transcription both ways.
///
/// No `realtimeInputConfig`: its defaults are what a phone call needs (automatic activity
/// detection, and the caller's speech interrupts the model), and google-genai's own
/// `LiveClientSetup` type does not accept the field, so leaving it out keeps every message
/// valid to the SDK oracle.
pub fn setup_message(cfg: &GeminiConfig, session: &SessionConfig) -> Value {
    let mut generation = json!({ "responseModalities": ["AUDIO"] });
    let mut speech = serde_json::Map::new();
    if let Some(voice) = &session.voice {
        speech.insert("voiceConfig".into(), json!({ "prebuiltVoiceConfig": { "voiceName": voice } }));
    }
    if let Some(language) = &session.language {
        speech.insert("languageCode".into(), json!(language));
    }
    if !speech.is_empty() {
        generation["speechConfig"] = Value::Object(speech);
    }
    let mut setup = json!({
        "model": cfg.model_name(),
        "generationConfig": generation,
        "inputAudioTranscription": {},
        "outputAudioTranscription": {},
    });
    if !session.instructions.is_empty() {
        setup["systemInstruction"] = json!({ "parts": [{ "text": session.instructions }] });
    }
    if !session.tools.is_empty() {
        let declarations: Vec<Value> = session
            .tools
            .iter()
            .map(|t| {
                json!({ "name": t.name, "description": t.description, "parametersJsonSchema": t.parameters })
            })
            .collect();
        setup["tools"] = json!([{ "functionDeclarations": declarations }]);
    }
    json!({ "setup": setup })
}

/// Tool names by call id: Gemini's `toolResponse` repeats the function name.
type PendingCalls = Arc<Mutex<HashMap<String, String>>>;

/// A live Gemini Live conversation.
pub struct GeminiSession {
    link: Link,
    upsampler: Resampler,
    pcm: Vec<i16>,
    pcm16k: Vec<i16>,
    bytes: Vec<u8>,
    pending_calls: PendingCalls,
}

impl GeminiSession {
    /// Connects, sends `setup`, waits for `setupComplete` (no audio may go before it), then
    /// starts the greeting.
    pub async fn connect(cfg: &GeminiConfig, session: &SessionConfig) -> Result<Self, AiError> {
        let key = cfg.api_key.expose_secret();
        let mut ws = link::open(PROVIDER, &cfg.url, &[("x-goog-api-key", key)], cfg.connect_timeout).await?;
        link::send_json_raw(PROVIDER, &mut ws, &setup_message(cfg, session)).await?;
        let earlier = link::handshake(PROVIDER, &mut ws, cfg.connect_timeout, |frame| {
            let msg: Value = serde_json::from_slice(frame).ok()?;
            msg.get("setupComplete").map(|_| Ok(()))
        })
        .await?;
        let pending_calls = PendingCalls::default();
        let parser = GeminiParser {
            downsampler: None,
            pending_calls: pending_calls.clone(),
            caller_text: String::new(),
            agent_text: String::new(),
        };
        let upsampler = Resampler::new(TELEPHONY_HZ, GEMINI_INPUT_HZ)
            .map_err(|e| AiError::Config { provider: PROVIDER, message: e.to_string() })?;
        let mut this = Self {
            link: Link::spawn(PROVIDER, ws, earlier, parser, None),
            upsampler,
            pcm: Vec::new(),
            pcm16k: Vec::new(),
            bytes: Vec::new(),
            pending_calls,
        };
        if let Some(greeting) = &session.greeting {
            this.say(greeting).await?;
        }
        Ok(this)
    }
}

#[async_trait]
impl AgentSession for GeminiSession {
    fn provider(&self) -> Provider {
        self.link.provider()
    }

    async fn send_audio(&mut self, ulaw_8k: &[u8]) -> Result<(), AiError> {
        if ulaw_8k.is_empty() {
            return Ok(());
        }
        self.pcm.clear();
        self.pcm16k.clear();
        self.bytes.clear();
        audio::decode_ulaw_into(ulaw_8k, &mut self.pcm);
        self.upsampler.process(&self.pcm, &mut self.pcm16k);
        audio::pcm16_to_le_bytes(&self.pcm16k, &mut self.bytes);
        let msg = json!({ "realtimeInput": { "audio": { "data": B64.encode(&self.bytes), "mimeType": INPUT_MIME } } });
        self.link.send_json(&msg).await
    }

    async fn say(&mut self, text: &str) -> Result<(), AiError> {
        let prompt = format!("Say exactly this to the caller, and nothing else: {text}");
        let msg = json!({
            "clientContent": { "turns": [{ "role": "user", "parts": [{ "text": prompt }] }], "turnComplete": true }
        });
        self.link.send_json(&msg).await
    }

    async fn send_tool_result(&mut self, call_id: &str, result: Value) -> Result<(), AiError> {
        // `response` must be an object; Gemini reads a plain value from its `output` key.
        let response = match result {
            Value::Object(_) => result,
            other => json!({ "output": other }),
        };
        let name = self.pending_calls.lock().ok().and_then(|mut calls| calls.remove(call_id));
        let mut function_response = json!({ "id": call_id, "response": response });
        if let Some(name) = name {
            function_response["name"] = json!(name);
        }
        self.link.send_json(&json!({ "toolResponse": { "functionResponses": [function_response] } })).await
    }

    async fn truncate(&mut self, _item_id: &str, _audio_end_ms: u32) -> Result<(), AiError> {
        // Gemini drops the unplayed rest of its turn itself when it reports `interrupted`.
        Ok(())
    }

    async fn next_event(&mut self) -> Option<AgentEvent> {
        self.link.next_event().await
    }

    async fn close(&mut self) -> Result<(), AiError> {
        self.link.close(Vec::new(), false).await;
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServerMessage {
    server_content: Option<ServerContent>,
    tool_call: Option<ToolCall>,
    tool_call_cancellation: Option<ToolCallCancellation>,
    go_away: Option<GoAway>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServerContent {
    model_turn: Option<Content>,
    interrupted: Option<bool>,
    turn_complete: Option<bool>,
    generation_complete: Option<bool>,
    input_transcription: Option<Transcription>,
    output_transcription: Option<Transcription>,
}

#[derive(Deserialize)]
struct Content {
    #[serde(default)]
    parts: Vec<Part>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Part {
    inline_data: Option<Blob>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Blob {
    mime_type: Option<String>,
    data: String,
}

#[derive(Deserialize)]
struct Transcription {
    text: Option<String>,
    finished: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolCall {
    #[serde(default)]
    function_calls: Vec<FunctionCall>,
}

#[derive(Deserialize)]
struct FunctionCall {
    id: Option<String>,
    name: String,
    args: Option<Value>,
}

#[derive(Deserialize)]
struct ToolCallCancellation {
    #[serde(default)]
    ids: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GoAway {
    time_left: Option<String>,
}

struct GeminiParser {
    /// Output rate and its resampler to 8 kHz (`None` rate-wise means 8 kHz already).
    downsampler: Option<(u32, Option<Resampler>)>,
    pending_calls: PendingCalls,
    /// The caller's and the agent's transcription so far in their current turn. Gemini sends
    /// transcriptions in chunks and its native-audio models do not set `finished` (publicly
    /// reported: python-genai #1504, js-genai #1429): a segment is closed at the turn
    /// boundaries the server does send — `turnComplete`, `generationComplete`, `interrupted`,
    /// the other speaker starting — or at `finished` when it comes.
    caller_text: String,
    agent_text: String,
}

impl GeminiParser {
    fn audio(&mut self, blob: Blob, out: &mut Vec<AgentEvent>) {
        let mime = blob.mime_type.unwrap_or_default();
        if !mime.starts_with("audio/pcm") {
            out.push(error_event(codes::UNSUPPORTED_AUDIO, format!("cannot play {mime:?}")));
            return;
        }
        let rate = mime
            .split(';')
            .filter_map(|p| p.trim().strip_prefix("rate="))
            .find_map(|r| r.parse::<u32>().ok())
            .unwrap_or(GEMINI_OUTPUT_HZ);
        let bytes = match B64.decode(blob.data.as_bytes()) {
            Ok(bytes) => bytes,
            Err(e) => {
                out.push(error_event(codes::BAD_AUDIO, format!("audio is not base64: {e}")));
                return;
            }
        };
        if self.downsampler.as_ref().is_none_or(|(r, _)| *r != rate) {
            let resampler = if rate == TELEPHONY_HZ {
                None
            } else {
                match Resampler::new(rate, TELEPHONY_HZ) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        out.push(error_event(codes::UNSUPPORTED_AUDIO, e.to_string()));
                        return;
                    }
                }
            };
            self.downsampler = Some((rate, resampler));
        }
        let mut pcm = Vec::with_capacity(bytes.len() / 2);
        if !audio::pcm16_from_le_bytes(&bytes, &mut pcm) {
            out.push(error_event(codes::BAD_AUDIO, format!("PCM16 chunk of odd length {}", bytes.len())));
        }
        let pcm8k = match &mut self.downsampler {
            Some((_, Some(resampler))) => {
                let mut pcm8k = Vec::with_capacity(pcm.len() / resampler.ratio() + 1);
                resampler.process(&pcm, &mut pcm8k);
                pcm8k
            }
            _ => pcm,
        };
        if !pcm8k.is_empty() {
            out.push(AgentEvent::AudioOut { ulaw_8k: audio::encode_ulaw(&pcm8k), item_id: None });
        }
    }

    /// A new turn starts from silence: old filter history must not bleed into it.
    fn reset_output(&mut self) {
        if let Some((_, Some(resampler))) = &mut self.downsampler {
            resampler.reset();
        }
    }

    fn message(&mut self, frame: &[u8], out: &mut Vec<AgentEvent>) {
        let msg: ServerMessage = match serde_json::from_slice(frame) {
            Ok(msg) => msg,
            Err(e) => {
                out.push(error_event(codes::MALFORMED_FRAME, format!("unusable Gemini message: {e}")));
                return;
            }
        };
        if let Some(content) = msg.server_content {
            if content.interrupted == Some(true) {
                // The caller cut the agent short: what it said so far is its segment.
                self.close(Speaker::Agent, out);
                self.reset_output();
                out.push(AgentEvent::Interrupted);
            }
            if let Some(t) = content.input_transcription {
                self.chunk(Speaker::Caller, t, out);
            }
            let parts = content.model_turn.map(|t| t.parts).unwrap_or_default();
            if !parts.is_empty() {
                // The agent answers: the caller's turn is over.
                self.close(Speaker::Caller, out);
            }
            for part in parts {
                if let Some(blob) = part.inline_data {
                    self.audio(blob, out);
                }
            }
            if let Some(t) = content.output_transcription {
                self.chunk(Speaker::Agent, t, out);
            }
            if content.generation_complete == Some(true) {
                self.close(Speaker::Agent, out);
            }
            if content.turn_complete == Some(true) {
                self.close(Speaker::Caller, out);
                self.close(Speaker::Agent, out);
                self.reset_output();
                out.push(AgentEvent::ResponseDone);
            }
        }
        if let Some(tool_call) = msg.tool_call {
            // The agent acts on what the caller said: their turn is over.
            self.close(Speaker::Caller, out);
            for call in tool_call.function_calls {
                let call_id = call.id.unwrap_or_else(|| call.name.clone());
                let arguments = call.args.unwrap_or_else(|| json!({}));
                if !arguments.is_object() {
                    out.push(error_event(
                        codes::BAD_TOOL_ARGUMENTS,
                        format!("call {call_id} to {}: args are not an object: {arguments}", call.name),
                    ));
                    continue;
                }
                if let Ok(mut calls) = self.pending_calls.lock() {
                    calls.insert(call_id.clone(), call.name.clone());
                }
                out.push(AgentEvent::ToolCall { call_id, name: call.name, arguments });
            }
        }
        if let Some(cancel) = msg.tool_call_cancellation {
            if let Ok(mut calls) = self.pending_calls.lock() {
                for id in &cancel.ids {
                    calls.remove(id);
                }
            }
            out.push(AgentEvent::ToolCallsCancelled { call_ids: cancel.ids });
        }
        if let Some(go_away) = msg.go_away {
            let left = go_away.time_left.unwrap_or_else(|| "unknown".to_owned());
            out.push(error_event(
                codes::GOING_AWAY,
                format!("Gemini will close the session; time left {left}"),
            ));
        }
    }
}

impl GeminiParser {
    fn buffer(&mut self, speaker: Speaker) -> &mut String {
        match speaker {
            Speaker::Caller => &mut self.caller_text,
            Speaker::Agent => &mut self.agent_text,
        }
    }

    /// A transcription chunk: passed on as a partial, joined into the speaker's segment; one
    /// speaker starting closes the other's segment.
    fn chunk(&mut self, speaker: Speaker, t: Transcription, out: &mut Vec<AgentEvent>) {
        let text = t.text.unwrap_or_default();
        if !text.is_empty() {
            let other = match speaker {
                Speaker::Caller => Speaker::Agent,
                Speaker::Agent => Speaker::Caller,
            };
            self.close(other, out);
            // Chunks are deltas; a chunk that repeats everything so far (as some servers send
            // the closing one) replaces it instead.
            let buffer = self.buffer(speaker);
            if !buffer.is_empty() && text.starts_with(buffer.as_str()) {
                *buffer = text.clone();
            } else {
                buffer.push_str(&text);
            }
            out.push(AgentEvent::Transcript { speaker, text, is_final: false });
        }
        if t.finished == Some(true) {
            self.close(speaker, out);
        }
    }

    /// Ends the speaker's segment: the joined chunks as one final transcript.
    fn close(&mut self, speaker: Speaker, out: &mut Vec<AgentEvent>) {
        let text = std::mem::take(self.buffer(speaker));
        let text = text.trim();
        if !text.is_empty() {
            out.push(AgentEvent::Transcript { speaker, text: text.to_owned(), is_final: true });
        }
    }
}

impl Parser for GeminiParser {
    fn text(&mut self, text: &str, out: &mut Vec<AgentEvent>) {
        self.message(text.as_bytes(), out);
    }

    fn binary(&mut self, data: &[u8], out: &mut Vec<AgentEvent>) {
        self.message(data, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parser() -> GeminiParser {
        GeminiParser {
            downsampler: None,
            pending_calls: PendingCalls::default(),
            caller_text: String::new(),
            agent_text: String::new(),
        }
    }

    fn finals(frames: &[Value]) -> Vec<(Speaker, String)> {
        let mut p = parser();
        let mut out = Vec::new();
        for f in frames {
            p.message(f.to_string().as_bytes(), &mut out);
        }
        out.into_iter()
            .filter_map(|e| match e {
                AgentEvent::Transcript { speaker, text, is_final: true } => Some((speaker, text)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn transcription_chunks_become_segments_at_turn_boundaries_without_finished() {
        let caller = |t: &str| json!({"serverContent": {"inputTranscription": {"text": t}}});
        let agent = |t: &str| json!({"serverContent": {"outputTranscription": {"text": t}}});
        // No `finished` anywhere, as Gemini's native-audio models send it.
        let got = finals(&[
            caller("I'd like "),
            caller("to order."),
            agent("Sure, "),
            agent("which size?"),
            json!({"serverContent": {"generationComplete": true}}),
            json!({"serverContent": {"turnComplete": true}}),
            caller("Large."),
            agent("Great"),
            json!({"serverContent": {"interrupted": true}}),
            caller("Wait"),
            json!({"serverContent": {"turnComplete": true}}),
        ]);
        assert_eq!(
            got,
            [
                (Speaker::Caller, "I'd like to order.".to_owned()),
                (Speaker::Agent, "Sure, which size?".to_owned()),
                (Speaker::Caller, "Large.".to_owned()),
                (Speaker::Agent, "Great".to_owned()),
                (Speaker::Caller, "Wait".to_owned()),
            ]
        );
        // `finished`, where it is sent, closes a segment at once (and only once).
        let got = finals(&[
            json!({"serverContent": {"inputTranscription": {"text": "Hello", "finished": true}}}),
            json!({"serverContent": {"turnComplete": true}}),
        ]);
        assert_eq!(got, [(Speaker::Caller, "Hello".to_owned())]);
    }

    #[test]
    fn output_audio_is_downsampled_to_ulaw_8k() {
        let pcm24k = vec![0i16; 480 * 3];
        let mut bytes = Vec::new();
        audio::pcm16_to_le_bytes(&pcm24k, &mut bytes);
        let frame = json!({ "serverContent": { "modelTurn": { "parts": [
            { "inlineData": { "mimeType": "audio/pcm;rate=24000", "data": B64.encode(&bytes) } }
        ] } } });
        let mut out = Vec::new();
        parser().message(frame.to_string().as_bytes(), &mut out);
        assert_eq!(out, [AgentEvent::AudioOut { ulaw_8k: vec![0xFF; 480], item_id: None }]);
    }

    #[test]
    fn bad_messages_become_error_events() {
        for (frame, code) in [
            ("[1,2]", codes::MALFORMED_FRAME),
            (
                r#"{"serverContent":{"modelTurn":{"parts":[{"inlineData":{"mimeType":"audio/pcm;rate=24000","data":"%%"}}]}}}"#,
                codes::BAD_AUDIO,
            ),
            (
                r#"{"serverContent":{"modelTurn":{"parts":[{"inlineData":{"mimeType":"audio/pcm;rate=44100","data":""}}]}}}"#,
                codes::UNSUPPORTED_AUDIO,
            ),
            (
                r#"{"toolCall":{"functionCalls":[{"id":"1","name":"f","args":[1]}]}}"#,
                codes::BAD_TOOL_ARGUMENTS,
            ),
        ] {
            let mut out = Vec::new();
            parser().message(frame.as_bytes(), &mut out);
            assert!(matches!(&out[..], [AgentEvent::Error { code: c, .. }] if c == code), "{frame}: {out:?}");
        }
    }
}
