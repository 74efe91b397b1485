//! Deepgram adapter: streaming speech-to-text plus text-to-speech, with no LLM in between.
//!
//! What it does:
//! - caller audio goes as binary 8 kHz μ-law frames to `/v1/listen`; `Results` become caller
//!   [`AgentEvent::Transcript`]s (interim and final), `SpeechStarted` becomes
//!   [`AgentEvent::SpeechStarted`] and `UtteranceEnd` [`AgentEvent::SpeechStopped`];
//!   a `KeepAlive` goes out whenever no audio was sent for a while (Deepgram closes idle
//!   streams after about 10 s) and `CloseStream` on [`close`](AgentSession::close);
//! - [`say`](AgentSession::say) (and the greeting) synthesize with `POST /v1/speak` as 8 kHz
//!   μ-law, streamed out as [`AgentEvent::AudioOut`] chunks and ended by
//!   [`AgentEvent::ResponseDone`]; utterances play one after another, and
//!   [`truncate`](AgentSession::truncate) drops what has not been played yet (barge-in).
//!
//! What it does not do: decide what to say. There are no tool calls, `instructions` and
//! `tools` are ignored and [`send_tool_result`](AgentSession::send_tool_result) is
//! unsupported; whoever drives the call (a script or another model) reads the transcripts
//! and calls `say`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use super::link::{self, Link, Parser};
use super::{codes, error_event, AgentEvent, AgentSession, AiError, Provider, SessionConfig, Speaker};

const PROVIDER: Provider = Provider::Deepgram;

/// Credentials, endpoints and models for Deepgram.
#[derive(Debug, Clone)]
pub struct DeepgramConfig {
    pub api_key: SecretString,
    /// Streaming STT endpoint, without the query; tests point it at a local fake.
    pub listen_url: String,
    /// TTS REST endpoint, without the query.
    pub speak_url: String,
    pub stt_model: String,
    /// TTS model (the voice) used when [`SessionConfig::voice`] is not set.
    pub tts_model: String,
    /// Send `KeepAlive` when no audio went out for this long.
    pub keepalive_every: Duration,
    pub connect_timeout: Duration,
}

impl DeepgramConfig {
    pub const DEFAULT_LISTEN_URL: &'static str = "wss://api.deepgram.com/v1/listen";
    pub const DEFAULT_SPEAK_URL: &'static str = "https://api.deepgram.com/v1/speak";

    pub fn new(api_key: SecretString) -> Self {
        Self {
            api_key,
            listen_url: Self::DEFAULT_LISTEN_URL.to_owned(),
            speak_url: Self::DEFAULT_SPEAK_URL.to_owned(),
            stt_model: "nova-3".to_owned(),
            tts_model: "aura-2-thalia-en".to_owned(),
            keepalive_every: Duration::from_secs(5),
            connect_timeout: super::DEFAULT_CONNECT_TIMEOUT,
        }
    }

    fn bad_url(e: url::ParseError) -> AiError {
        AiError::Config { provider: PROVIDER, message: format!("bad URL: {e}") }
    }

    /// The streaming STT URL for telephony audio, with interim results and VAD events.
    pub fn listen_url(&self, session: &SessionConfig) -> Result<url::Url, AiError> {
        let mut url = url::Url::parse(&self.listen_url).map_err(Self::bad_url)?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("model", &self.stt_model)
                .append_pair("encoding", "mulaw")
                .append_pair("sample_rate", "8000")
                .append_pair("channels", "1")
                .append_pair("interim_results", "true")
                .append_pair("utterance_end_ms", "1000")
                .append_pair("vad_events", "true")
                .append_pair("endpointing", "300");
            if let Some(language) = &session.language {
                q.append_pair("language", language);
            }
        }
        Ok(url)
    }

    /// The TTS URL asking for headerless 8 kHz μ-law in `voice` (a TTS model name).
    pub fn speak_url(&self, voice: &str) -> Result<url::Url, AiError> {
        let mut url = url::Url::parse(&self.speak_url).map_err(Self::bad_url)?;
        url.query_pairs_mut()
            .append_pair("model", voice)
            .append_pair("encoding", "mulaw")
            .append_pair("sample_rate", "8000")
            .append_pair("container", "none");
        Ok(url)
    }
}

/// Text queued for synthesis, tagged with the barge-in generation it belongs to.
struct Utterance {
    text: String,
    generation: u64,
}

/// A live Deepgram STT stream plus its TTS queue.
pub struct DeepgramSession {
    link: Link,
    tts: mpsc::UnboundedSender<Utterance>,
    tts_worker: JoinHandle<()>,
    /// Bumped by `truncate`; queued or playing speech from an older generation is dropped.
    generation: Arc<AtomicU64>,
}

impl DeepgramSession {
    /// Opens the STT stream and the TTS queue, then queues the greeting.
    pub async fn connect(cfg: &DeepgramConfig, session: &SessionConfig) -> Result<Self, AiError> {
        let auth = format!("Token {}", cfg.api_key.expose_secret());
        let listen = cfg.listen_url(session)?;
        let speak = cfg.speak_url(session.voice.as_deref().unwrap_or(&cfg.tts_model))?;
        let http = reqwest::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            .build()
            .map_err(|e| AiError::Config { provider: PROVIDER, message: format!("HTTP client: {e}") })?;
        let ws =
            link::open(PROVIDER, listen.as_str(), &[("authorization", &auth)], cfg.connect_timeout).await?;
        let keepalive = Message::text(json!({ "type": "KeepAlive" }).to_string());
        let mut link =
            Link::spawn(PROVIDER, ws, Vec::new(), DeepgramParser, Some((cfg.keepalive_every, keepalive)));
        let events = link.event_sender().ok_or(AiError::Closed { provider: PROVIDER })?;
        let generation = Arc::new(AtomicU64::new(0));
        let (tts, queue) = mpsc::unbounded_channel();
        let worker =
            TtsWorker { http, url: speak, auth: auth.into(), events, generation: generation.clone() };
        let tts_worker = tokio::spawn(worker.run(queue));
        let mut this = Self { link, tts, tts_worker, generation };
        if let Some(greeting) = &session.greeting {
            this.say(greeting).await?;
        }
        Ok(this)
    }
}

impl Drop for DeepgramSession {
    fn drop(&mut self) {
        self.tts_worker.abort();
    }
}

#[async_trait]
impl AgentSession for DeepgramSession {
    fn provider(&self) -> Provider {
        self.link.provider()
    }

    async fn send_audio(&mut self, ulaw_8k: &[u8]) -> Result<(), AiError> {
        if ulaw_8k.is_empty() {
            // An empty binary frame would tell Deepgram to close the stream.
            return Ok(());
        }
        self.link.send(Message::binary(ulaw_8k.to_vec())).await
    }

    async fn say(&mut self, text: &str) -> Result<(), AiError> {
        let utterance =
            Utterance { text: text.to_owned(), generation: self.generation.load(Ordering::SeqCst) };
        self.tts.send(utterance).map_err(|_| AiError::Closed { provider: PROVIDER })
    }

    async fn send_tool_result(&mut self, _call_id: &str, _result: Value) -> Result<(), AiError> {
        Err(AiError::Unsupported { provider: PROVIDER, what: "run tools (there is no LLM)" })
    }

    async fn truncate(&mut self, _item_id: &str, _audio_end_ms: u32) -> Result<(), AiError> {
        self.generation.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn next_event(&mut self) -> Option<AgentEvent> {
        self.link.next_event().await
    }

    /// Sends `CloseStream` so Deepgram flushes its last results, and waits for it to close.
    async fn close(&mut self) -> Result<(), AiError> {
        self.tts_worker.abort();
        let close_stream = Message::text(json!({ "type": "CloseStream" }).to_string());
        self.link.close(vec![close_stream], true).await;
        Ok(())
    }
}

struct TtsWorker {
    http: reqwest::Client,
    url: url::Url,
    auth: SecretString,
    events: mpsc::Sender<AgentEvent>,
    generation: Arc<AtomicU64>,
}

impl TtsWorker {
    async fn run(self, mut queue: mpsc::UnboundedReceiver<Utterance>) {
        while let Some(utterance) = queue.recv().await {
            if utterance.generation != self.generation.load(Ordering::SeqCst) {
                continue;
            }
            let event = match self.speak(&utterance).await {
                Ok(true) => AgentEvent::ResponseDone,
                Ok(false) => continue, // cut off by a barge-in
                Err(message) => error_event(codes::TTS_FAILED, message),
            };
            if self.events.send(event).await.is_err() {
                return;
            }
        }
    }

    /// Streams one utterance out; `Ok(false)` if a barge-in cut it off.
    async fn speak(&self, utterance: &Utterance) -> Result<bool, String> {
        let mut auth = reqwest::header::HeaderValue::from_str(self.auth.expose_secret())
            .map_err(|_| "the API key is not a valid header value".to_owned())?;
        auth.set_sensitive(true);
        let response = self
            .http
            .post(self.url.clone())
            .header(reqwest::header::AUTHORIZATION, auth)
            .json(&json!({ "text": utterance.text }))
            .send()
            .await
            .map_err(|e| format!("TTS request failed: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(format!(
                "TTS answered HTTP {status}: {}",
                body.chars().take(500).collect::<String>()
            ));
        }
        let mut response = response;
        loop {
            let chunk = response.chunk().await.map_err(|e| format!("TTS audio stream broke: {e}"))?;
            if utterance.generation != self.generation.load(Ordering::SeqCst) {
                return Ok(false);
            }
            let Some(chunk) = chunk else { return Ok(true) };
            if chunk.is_empty() {
                continue;
            }
            let event = AgentEvent::AudioOut { ulaw_8k: chunk.to_vec(), item_id: None };
            if self.events.send(event).await.is_err() {
                return Ok(false);
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(tag = "type")]
enum ServerMessage {
    Results {
        is_final: Option<bool>,
        channel: Channel,
    },
    SpeechStarted {},
    UtteranceEnd {},
    Error {
        variant: Option<String>,
        description: Option<String>,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct Channel {
    alternatives: Vec<Alternative>,
}

#[derive(Deserialize)]
struct Alternative {
    transcript: String,
}

struct DeepgramParser;

impl Parser for DeepgramParser {
    fn text(&mut self, text: &str, out: &mut Vec<AgentEvent>) {
        let msg: ServerMessage = match serde_json::from_str(text) {
            Ok(msg) => msg,
            Err(e) => {
                out.push(error_event(codes::MALFORMED_FRAME, format!("unusable Deepgram message: {e}")));
                return;
            }
        };
        match msg {
            ServerMessage::Results { is_final, channel } => {
                let Some(best) = channel.alternatives.into_iter().next() else {
                    out.push(error_event(codes::MALFORMED_FRAME, "Results without alternatives"));
                    return;
                };
                if !best.transcript.is_empty() {
                    out.push(AgentEvent::Transcript {
                        speaker: Speaker::Caller,
                        text: best.transcript,
                        is_final: is_final.unwrap_or(false),
                    });
                }
            }
            ServerMessage::SpeechStarted {} => out.push(AgentEvent::SpeechStarted),
            ServerMessage::UtteranceEnd {} => out.push(AgentEvent::SpeechStopped),
            ServerMessage::Error { variant, description } => out.push(AgentEvent::Error {
                code: variant.unwrap_or_else(|| "error".to_owned()),
                message: description.unwrap_or_default(),
            }),
            ServerMessage::Other => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(frame: &str) -> Vec<AgentEvent> {
        let mut out = Vec::new();
        DeepgramParser.text(frame, &mut out);
        out
    }

    #[test]
    fn results_become_caller_transcripts() {
        let frame = r#"{"type":"Results","channel_index":[0,1],"duration":1.0,"start":0.0,"is_final":true,"speech_final":true,"channel":{"alternatives":[{"transcript":"hello there","confidence":0.9,"words":[]}]},"metadata":{"request_id":"r","model_info":{"name":"n","version":"v","arch":"a"},"model_uuid":"u"}}"#;
        assert_eq!(
            parse(frame),
            [AgentEvent::Transcript { speaker: Speaker::Caller, text: "hello there".into(), is_final: true }]
        );
        assert!(parse(r#"{"type":"Results","channel":{"alternatives":[{"transcript":""}]}}"#).is_empty());
        assert!(parse(r#"{"type":"Metadata","request_id":"r"}"#).is_empty());
        assert!(
            matches!(&parse("\u{0}")[..], [AgentEvent::Error { code, .. }] if code == codes::MALFORMED_FRAME)
        );
        assert!(
            matches!(&parse(r#"{"type":"Results"}"#)[..], [AgentEvent::Error { code, .. }] if code == codes::MALFORMED_FRAME)
        );
    }
}
