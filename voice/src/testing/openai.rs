//! Fake OpenAI Realtime (GA) server and builders for its server events.

use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use secrecy::SecretString;
use serde_json::{json, Value};

use super::{ClientFrame, FakeServer, Protocol, RequestInfo, Step};
use crate::ai::OpenAiConfig;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
/// Audio deltas the fake streams: 100 ms of μ-law each.
const DELTA_BYTES: usize = 800;

/// A fake `wss://api.openai.com/v1/realtime`: sends `session.created` on connect and answers
/// `session.update` with `session.updated`; the rest comes from the script.
pub struct FakeOpenAi {
    server: FakeServer,
}

impl Deref for FakeOpenAi {
    type Target = FakeServer;

    fn deref(&self) -> &FakeServer {
        &self.server
    }
}

struct OpenAiProtocol;

impl Protocol for OpenAiProtocol {
    fn authorized(&self, request: &RequestInfo) -> bool {
        request.header("authorization") == Some(&format!("Bearer {}", FakeOpenAi::API_KEY))
    }

    fn on_connect(&self) -> Vec<Value> {
        vec![json!({
            "type": "session.created",
            "event_id": FakeOpenAi::event_id(),
            "session": { "type": "realtime", "model": "gpt-realtime", "output_modalities": ["audio"] },
        })]
    }

    fn reply(&self, frame: &ClientFrame) -> Vec<Step> {
        match frame.json_type() {
            Some("session.update") => {
                let session = frame.json().map(|v| v["session"].clone()).unwrap_or_default();
                vec![Step::Json(
                    json!({ "type": "session.updated", "event_id": FakeOpenAi::event_id(), "session": session }),
                )]
            }
            _ => Vec::new(),
        }
    }

    fn awaits_handshake(&self) -> bool {
        true
    }

    fn completes_handshake(&self, frame: &ClientFrame) -> bool {
        frame.json_type() == Some("session.update")
    }

    fn unauthorized_body(&self) -> String {
        json!({ "error": { "type": "invalid_request_error", "code": "invalid_api_key", "message": "Incorrect API key provided." } })
            .to_string()
    }
}

impl FakeOpenAi {
    /// The key the fake accepts.
    pub const API_KEY: &'static str = "sk-test-fake-openai";
    /// The path it serves.
    pub const PATH: &'static str = "/v1/realtime";

    /// Listens on a free local port.
    pub async fn start() -> std::io::Result<FakeOpenAi> {
        Ok(FakeOpenAi { server: FakeServer::start(OpenAiProtocol).await? })
    }

    /// A client configuration pointing at this fake.
    pub fn config(&self) -> OpenAiConfig {
        let mut cfg = OpenAiConfig::new(SecretString::from(Self::API_KEY));
        cfg.base_url = self.ws_url(Self::PATH);
        cfg
    }

    fn event_id() -> String {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        format!("event_{}", NEXT.fetch_add(1, Ordering::Relaxed))
    }

    pub fn response_created(response_id: &str) -> Value {
        json!({
            "type": "response.created",
            "event_id": Self::event_id(),
            "response": { "id": response_id, "object": "realtime.response", "status": "in_progress", "output": [] },
        })
    }

    pub fn audio_delta(response_id: &str, item_id: &str, ulaw: &[u8]) -> Value {
        json!({
            "type": "response.output_audio.delta",
            "event_id": Self::event_id(),
            "response_id": response_id,
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
            "delta": B64.encode(ulaw),
        })
    }

    pub fn audio_transcript_done(response_id: &str, item_id: &str, transcript: &str) -> Value {
        json!({
            "type": "response.output_audio_transcript.done",
            "event_id": Self::event_id(),
            "response_id": response_id,
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
            "transcript": transcript,
        })
    }

    /// `status`: `completed`, `cancelled`, `failed` or `incomplete`.
    pub fn response_done(response_id: &str, status: &str) -> Value {
        json!({
            "type": "response.done",
            "event_id": Self::event_id(),
            "response": { "id": response_id, "object": "realtime.response", "status": status, "output": [] },
        })
    }

    pub fn speech_started(item_id: &str, audio_start_ms: u32) -> Value {
        json!({
            "type": "input_audio_buffer.speech_started",
            "event_id": Self::event_id(),
            "audio_start_ms": audio_start_ms,
            "item_id": item_id,
        })
    }

    pub fn speech_stopped(item_id: &str, audio_end_ms: u32) -> Value {
        json!({
            "type": "input_audio_buffer.speech_stopped",
            "event_id": Self::event_id(),
            "audio_end_ms": audio_end_ms,
            "item_id": item_id,
        })
    }

    pub fn input_transcription_completed(item_id: &str, transcript: &str) -> Value {
        json!({
            "type": "conversation.item.input_audio_transcription.completed",
            "event_id": Self::event_id(),
            "item_id": item_id,
            "content_index": 0,
            "transcript": transcript,
            "usage": { "type": "duration", "seconds": 1 },
        })
    }

    pub fn function_call_arguments_done(
        response_id: &str,
        item_id: &str,
        call_id: &str,
        name: &str,
        arguments: &Value,
    ) -> Value {
        json!({
            "type": "response.function_call_arguments.done",
            "event_id": Self::event_id(),
            "response_id": response_id,
            "item_id": item_id,
            "output_index": 0,
            "call_id": call_id,
            "name": name,
            "arguments": arguments.to_string(),
        })
    }

    pub fn error(kind: &str, code: &str, message: &str) -> Value {
        json!({
            "type": "error",
            "event_id": Self::event_id(),
            "error": { "type": kind, "code": code, "message": message, "param": null, "event_id": null },
        })
    }

    /// Answers the next `response.create` (the greeting) with `ulaw` in 100 ms deltas, its
    /// transcript and `response.done`.
    pub fn greeting_script(response_id: &str, item_id: &str, ulaw: &[u8], transcript: &str) -> Vec<Step> {
        let mut steps =
            vec![Step::wait_for_type("response.create"), Step::Json(Self::response_created(response_id))];
        steps
            .extend(ulaw.chunks(DELTA_BYTES).map(|c| Step::Json(Self::audio_delta(response_id, item_id, c))));
        steps.push(Step::Json(Self::audio_transcript_done(response_id, item_id, transcript)));
        steps.push(Step::Json(Self::response_done(response_id, "completed")));
        steps
    }
}
