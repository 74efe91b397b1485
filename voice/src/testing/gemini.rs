//! Fake Gemini Live server and builders for its server messages.

use std::ops::Deref;

use base64::Engine as _;
use secrecy::SecretString;
use serde_json::{json, Value};

use super::{ClientFrame, FakeServer, Protocol, RequestInfo, Step};
use crate::ai::GeminiConfig;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
/// Audio chunks the fake streams: 40 ms of 24 kHz PCM each.
const CHUNK_SAMPLES: usize = 960;

/// A fake `BidiGenerateContent` endpoint: answers `setup` with `setupComplete` and, like the
/// real service, sends its JSON in binary frames; the rest comes from the script.
pub struct FakeGemini {
    server: FakeServer,
}

impl Deref for FakeGemini {
    type Target = FakeServer;

    fn deref(&self) -> &FakeServer {
        &self.server
    }
}

struct GeminiProtocol {
    answer_setup: bool,
}

impl Protocol for GeminiProtocol {
    fn authorized(&self, request: &RequestInfo) -> bool {
        request.header("x-goog-api-key") == Some(FakeGemini::API_KEY)
    }

    fn reply(&self, frame: &ClientFrame) -> Vec<Step> {
        match frame.json() {
            Some(v) if self.answer_setup && v.get("setup").is_some() => {
                vec![Step::Json(FakeGemini::setup_complete())]
            }
            _ => Vec::new(),
        }
    }

    fn awaits_handshake(&self) -> bool {
        self.answer_setup
    }

    fn completes_handshake(&self, frame: &ClientFrame) -> bool {
        frame.json().is_some_and(|v| v.get("setup").is_some())
    }

    fn json_as_binary(&self) -> bool {
        true
    }

    fn unauthorized_body(&self) -> String {
        json!({ "error": { "code": 401, "message": "API key not valid.", "status": "UNAUTHENTICATED" } })
            .to_string()
    }
}

impl FakeGemini {
    /// The key the fake accepts.
    pub const API_KEY: &'static str = "test-fake-gemini-key";
    /// The path it serves.
    pub const PATH: &'static str =
        "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent";

    /// Listens on a free local port.
    pub async fn start() -> std::io::Result<FakeGemini> {
        Ok(FakeGemini { server: FakeServer::start(GeminiProtocol { answer_setup: true }).await? })
    }

    /// Like [`start`](Self::start), but `setupComplete` (or a rejection) must be scripted.
    pub async fn start_without_setup_reply() -> std::io::Result<FakeGemini> {
        Ok(FakeGemini { server: FakeServer::start(GeminiProtocol { answer_setup: false }).await? })
    }

    pub fn setup_complete() -> Value {
        json!({ "setupComplete": {} })
    }

    /// A client configuration pointing at this fake.
    pub fn config(&self) -> GeminiConfig {
        let mut cfg = GeminiConfig::new(SecretString::from(Self::API_KEY));
        cfg.url = self.ws_url(Self::PATH);
        cfg
    }

    /// Model audio: `pcm` at `rate_hz` as one `inlineData` part.
    pub fn audio(pcm: &[i16], rate_hz: u32) -> Value {
        let mut bytes = Vec::with_capacity(pcm.len() * 2);
        crate::audio::pcm16_to_le_bytes(pcm, &mut bytes);
        json!({ "serverContent": { "modelTurn": { "parts": [
            { "inlineData": { "mimeType": format!("audio/pcm;rate={rate_hz}"), "data": B64.encode(&bytes) } }
        ] } } })
    }

    pub fn interrupted() -> Value {
        json!({ "serverContent": { "interrupted": true } })
    }

    pub fn turn_complete() -> Value {
        json!({ "serverContent": { "turnComplete": true } })
    }

    pub fn input_transcription(text: &str, finished: bool) -> Value {
        json!({ "serverContent": { "inputTranscription": { "text": text, "finished": finished } } })
    }

    pub fn output_transcription(text: &str, finished: bool) -> Value {
        json!({ "serverContent": { "outputTranscription": { "text": text, "finished": finished } } })
    }

    pub fn tool_call(id: &str, name: &str, args: &Value) -> Value {
        json!({ "toolCall": { "functionCalls": [{ "id": id, "name": name, "args": args }] } })
    }

    pub fn tool_call_cancellation(ids: &[&str]) -> Value {
        json!({ "toolCallCancellation": { "ids": ids } })
    }

    pub fn go_away(time_left: &str) -> Value {
        json!({ "goAway": { "timeLeft": time_left } })
    }

    /// Answers the greeting prompt (`clientContent`) with 24 kHz `pcm` in 40 ms chunks, its
    /// transcription and `turnComplete`.
    pub fn greeting_script(pcm24k: &[i16], transcript: &str) -> Vec<Step> {
        let mut steps = vec![Step::wait_for_key("clientContent")];
        steps.extend(pcm24k.chunks(CHUNK_SAMPLES).map(|c| Step::Json(Self::audio(c, 24_000))));
        steps.push(Step::Json(Self::output_transcription(transcript, true)));
        steps.push(Step::Json(Self::turn_complete()));
        steps
    }
}
