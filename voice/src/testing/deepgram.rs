//! Fake Deepgram: streaming STT (`/v1/listen`) and REST TTS (`POST /v1/speak`), with builders
//! for the STT server messages.

use std::ops::Deref;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use secrecy::SecretString;
use serde_json::{json, Value};

use super::{ClientFrame, FakeServer, HttpRequest, Protocol, RequestInfo, Step};
use crate::ai::DeepgramConfig;

/// What `POST /v1/speak` answers.
#[derive(Debug, Clone, PartialEq)]
pub enum TtsReply {
    /// 200 with this audio as the body (`audio/basic`: headerless μ-law).
    Audio(Vec<u8>),
    /// This status with a Deepgram-style JSON error body.
    Error { status: u16, err_code: String, err_msg: String },
}

/// A fake Deepgram: on `CloseStream` it sends `Metadata` and closes, as Deepgram does; STT
/// results come from the script; TTS answers with the configured [`TtsReply`].
pub struct FakeDeepgram {
    server: FakeServer,
    tts: Arc<Mutex<TtsReply>>,
}

impl Deref for FakeDeepgram {
    type Target = FakeServer;

    fn deref(&self) -> &FakeServer {
        &self.server
    }
}

struct DeepgramProtocol {
    tts: Arc<Mutex<TtsReply>>,
}

impl Protocol for DeepgramProtocol {
    fn authorized(&self, request: &RequestInfo) -> bool {
        request.header("authorization") == Some(&format!("Token {}", FakeDeepgram::API_KEY))
    }

    fn reply(&self, frame: &ClientFrame) -> Vec<Step> {
        match frame.json_type() {
            Some("CloseStream") => vec![Step::Json(FakeDeepgram::metadata()), Step::close(1000, "")],
            _ => Vec::new(),
        }
    }

    fn http(&self, request: &HttpRequest) -> (StatusCode, &'static str, Vec<u8>) {
        if request.info.method != "POST" || request.info.path != FakeDeepgram::SPEAK_PATH {
            return (StatusCode::NOT_FOUND, "text/plain", b"not found".to_vec());
        }
        if request.json().and_then(|v| v.get("text")?.as_str().map(str::to_owned)).is_none() {
            let body = json!({ "err_code": "INVALID_QUERY_PARAMETER", "err_msg": "text is required" });
            return (StatusCode::BAD_REQUEST, "application/json", body.to_string().into_bytes());
        }
        let reply = self.tts.lock().map(|r| r.clone()).unwrap_or_else(|p| p.into_inner().clone());
        match reply {
            TtsReply::Audio(audio) => (StatusCode::OK, "audio/basic", audio),
            TtsReply::Error { status, err_code, err_msg } => {
                let body = json!({ "err_code": err_code, "err_msg": err_msg, "request_id": "fake-request" });
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                (status, "application/json", body.to_string().into_bytes())
            }
        }
    }

    fn unauthorized_body(&self) -> String {
        json!({ "err_code": "INVALID_AUTH", "err_msg": "Invalid credentials.", "request_id": "fake-request" })
            .to_string()
    }
}

impl FakeDeepgram {
    /// The key the fake accepts.
    pub const API_KEY: &'static str = "test-fake-deepgram-key";
    pub const LISTEN_PATH: &'static str = "/v1/listen";
    pub const SPEAK_PATH: &'static str = "/v1/speak";

    /// Listens on a free local port; TTS answers 200 ms of silence until told otherwise.
    pub async fn start() -> std::io::Result<FakeDeepgram> {
        let tts = Arc::new(Mutex::new(TtsReply::Audio(vec![0xFF; 1600])));
        let server = FakeServer::start(DeepgramProtocol { tts: tts.clone() }).await?;
        Ok(FakeDeepgram { server, tts })
    }

    /// A client configuration pointing at this fake.
    pub fn config(&self) -> DeepgramConfig {
        let mut cfg = DeepgramConfig::new(SecretString::from(Self::API_KEY));
        cfg.listen_url = self.ws_url(Self::LISTEN_PATH);
        cfg.speak_url = self.http_url(Self::SPEAK_PATH);
        cfg
    }

    /// Sets what `POST /v1/speak` answers from now on.
    pub fn set_tts_reply(&self, reply: TtsReply) {
        match self.tts.lock() {
            Ok(mut r) => *r = reply,
            Err(p) => *p.into_inner() = reply,
        }
    }

    pub fn results(transcript: &str, is_final: bool, speech_final: bool) -> Value {
        let words: Vec<Value> = transcript
            .split_whitespace()
            .enumerate()
            .map(|(i, w)| {
                let start = i as f64 * 0.4;
                json!({ "word": w, "start": start, "end": start + 0.35, "confidence": 0.98, "punctuated_word": w })
            })
            .collect();
        json!({
            "type": "Results",
            "channel_index": [0, 1],
            "duration": 1.5,
            "start": 0.0,
            "is_final": is_final,
            "speech_final": speech_final,
            "channel": { "alternatives": [{ "transcript": transcript, "confidence": 0.98, "words": words }] },
            "metadata": {
                "request_id": "fake-request",
                "model_info": { "name": "general-nova-3", "version": "2025-01-01.0", "arch": "nova-3" },
                "model_uuid": "00000000-0000-0000-0000-000000000000",
            },
            "from_finalize": false,
        })
    }

    pub fn speech_started(timestamp: f64) -> Value {
        json!({ "type": "SpeechStarted", "channel": [0], "timestamp": timestamp })
    }

    pub fn utterance_end(last_word_end: f64) -> Value {
        json!({ "type": "UtteranceEnd", "channel": [0, 1], "last_word_end": last_word_end })
    }

    pub fn metadata() -> Value {
        json!({
            "type": "Metadata",
            "transaction_key": "deprecated",
            "request_id": "fake-request",
            "sha256": "0000000000000000000000000000000000000000000000000000000000000000",
            "created": "2026-01-01T00:00:00.000Z",
            "duration": 1.5,
            "channels": 1,
        })
    }

    pub fn error(variant: &str, description: &str) -> Value {
        json!({ "type": "Error", "variant": variant, "description": description })
    }
}
