//! Realtime voice-AI sessions behind one provider-neutral API, for the call media bridge.
//!
//! The bridge feeds caller audio as the phone delivers it (8 kHz μ-law, 20 ms frames) into an
//! [`AgentSession`] and plays back what [`AgentSession::next_event`] yields. Each adapter does
//! its provider's wire protocol (see `PROTOCOLS.md`) and audio conversion, so the bridge sees
//! only 8 kHz μ-law and [`AgentEvent`]s:
//! - [`openai`]: OpenAI Realtime (GA), μ-law passed through as `audio/pcmu`;
//! - [`gemini`]: Gemini Live, μ-law 8 kHz ⇄ PCM16 16 kHz in / 24 kHz out;
//! - [`deepgram`]: Deepgram streaming speech-to-text plus text-to-speech (no LLM);
//! - [`deepgram_agent`]: the Deepgram Voice Agent (listen, think and speak on Deepgram's side),
//!   μ-law passed through both ways.
//!
//! A campaign picks its provider at run time with a [`ProviderConfig`] and [`connect`].
//! Network trouble never panics: a dropped connection ends the event stream with
//! [`AgentEvent::Closed`], and frames the adapter cannot use become [`AgentEvent::Error`].

pub mod deepgram;
pub mod deepgram_agent;
pub mod gemini;
mod link;

pub use link::MEDIA_READ_BUFFER;
pub mod openai;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use deepgram::{DeepgramConfig, DeepgramSession};
pub use deepgram_agent::{DeepgramAgentConfig, DeepgramAgentSession};
pub use gemini::{GeminiConfig, GeminiSession};
pub use openai::{OpenAiConfig, OpenAiSession};

/// How long connecting plus the provider's session handshake may take by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A function the agent may call, described by a JSON Schema for its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
}

/// What the agent is told at the start of a call; the same for every provider.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionConfig {
    /// System prompt (ignored by the Deepgram STT+TTS adapter, which has no LLM).
    pub instructions: String,
    /// Provider voice name (OpenAI e.g. `marin`, Gemini e.g. `Kore`, Deepgram a TTS model such
    /// as `aura-2-thalia-en`); `None` uses the adapter's default.
    pub voice: Option<String>,
    /// BCP-47 language of the call (e.g. `cs`, `en-US`), used for transcription and speech.
    pub language: Option<String>,
    pub tools: Vec<ToolSpec>,
    /// Said to the caller as soon as the session is up (the Deepgram Voice Agent speaks it by
    /// itself, from its settings).
    pub greeting: Option<String>,
}

/// Who said a transcribed piece of the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Speaker {
    Caller,
    Agent,
}

/// What a session reports to the media bridge.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentEvent {
    /// Agent speech for the phone, always 8 kHz μ-law. `item_id` names the provider's
    /// conversation item (OpenAI; the Deepgram Voice Agent names each agent turn) so the bridge
    /// can [`AgentSession::truncate`] it on barge-in and track what was played.
    AudioOut {
        ulaw_8k: Vec<u8>,
        item_id: Option<String>,
    },
    /// The caller started talking (barge-in): the bridge should send the telephony `clear`.
    SpeechStarted,
    /// The caller stopped talking (OpenAI `speech_stopped`, Deepgram `UtteranceEnd`).
    SpeechStopped,
    /// The provider cut its own answer short because the caller spoke (Gemini
    /// `interrupted`): the bridge should send the telephony `clear`.
    Interrupted,
    Transcript {
        speaker: Speaker,
        text: String,
        is_final: bool,
    },
    /// The agent wants a function run; answer with [`AgentSession::send_tool_result`].
    ToolCall {
        call_id: String,
        name: String,
        arguments: Value,
    },
    /// The provider withdrew tool calls it had asked for (Gemini `toolCallCancellation`).
    ToolCallsCancelled {
        call_ids: Vec<String>,
    },
    /// The agent finished its turn.
    ResponseDone,
    /// Something went wrong but the session goes on: a provider error event, or a frame the
    /// adapter could not use (`code` is then one of [`codes`]).
    Error {
        code: String,
        message: String,
    },
    /// The connection ended; this is always the last event.
    Closed {
        reason: String,
    },
}

/// `AgentEvent::Error` codes the adapters produce themselves (provider errors keep theirs).
pub mod codes {
    /// A frame that is not JSON or lacks what its type requires.
    pub const MALFORMED_FRAME: &str = "malformed_frame";
    /// Audio that is not valid base64, or PCM with an odd number of bytes.
    pub const BAD_AUDIO: &str = "bad_audio";
    /// Audio in a format the adapter cannot convert.
    pub const UNSUPPORTED_AUDIO: &str = "unsupported_audio";
    /// Tool-call arguments that are not a JSON object.
    pub const BAD_TOOL_ARGUMENTS: &str = "bad_tool_arguments";
    /// The provider announced it will close the connection soon (Gemini `goAway`).
    pub const GOING_AWAY: &str = "going_away";
    /// Text-to-speech failed (Deepgram).
    pub const TTS_FAILED: &str = "tts_failed";
    /// The provider did not say a [`say`](super::AgentSession::say) text because the caller or
    /// the agent was mid-turn (Deepgram Voice Agent `InjectionRefused`).
    pub const INJECTION_REFUSED: &str = "injection_refused";
}

/// A voice-AI vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    OpenAi,
    Gemini,
    Deepgram,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Gemini => "gemini",
            Provider::Deepgram => "deepgram",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A provider name that is not `openai`, `gemini` or `deepgram`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown voice-AI provider {0:?}: expected openai, gemini or deepgram")]
pub struct UnknownProvider(pub String);

impl FromStr for Provider {
    type Err = UnknownProvider;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "openai" => Ok(Provider::OpenAi),
            "gemini" => Ok(Provider::Gemini),
            "deepgram" => Ok(Provider::Deepgram),
            _ => Err(UnknownProvider(s.to_owned())),
        }
    }
}

/// Why a session could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum AiError {
    #[error("invalid {provider} configuration: {message}")]
    Config { provider: Provider, message: String },
    #[error("could not connect to {provider}: {message}")]
    Connect { provider: Provider, message: String },
    #[error("{provider} rejected the session: {message}")]
    Rejected { provider: Provider, message: String },
    #[error("timed out waiting for {provider} to {what}")]
    Timeout { provider: Provider, what: &'static str },
    #[error("the {provider} session is closed")]
    Closed { provider: Provider },
    #[error("{provider} sessions cannot {what}")]
    Unsupported { provider: Provider, what: &'static str },
}

/// One live voice-agent conversation. Object-safe, so a campaign can hold a
/// `Box<dyn AgentSession>` for whichever provider it uses.
#[async_trait]
pub trait AgentSession: Send {
    fn provider(&self) -> Provider;

    /// Sends caller audio: 8 kHz μ-law, normally one 20 ms frame (160 bytes) per call.
    async fn send_audio(&mut self, ulaw_8k: &[u8]) -> Result<(), AiError>;

    /// Has the agent say `text` to the caller (OpenAI and Gemini voice it through the model;
    /// Deepgram synthesizes it with TTS; the Deepgram Voice Agent injects it as agent speech).
    async fn say(&mut self, text: &str) -> Result<(), AiError>;

    /// Answers an [`AgentEvent::ToolCall`] and lets the agent continue.
    async fn send_tool_result(&mut self, call_id: &str, result: Value) -> Result<(), AiError>;

    /// After a barge-in, tells the provider how much of `item_id` the caller actually heard
    /// (OpenAI `conversation.item.truncate`). Gemini and the Deepgram Voice Agent truncate on
    /// their own, so this is a no-op there; Deepgram drops the speech it has not yet synthesized.
    async fn truncate(&mut self, item_id: &str, audio_end_ms: u32) -> Result<(), AiError>;

    /// The next event, or `None` after [`AgentEvent::Closed`] was returned. Cancel-safe, so it
    /// can sit in a `tokio::select!` next to the telephony stream.
    async fn next_event(&mut self) -> Option<AgentEvent>;

    /// Ends the session politely and waits (briefly) for the provider to close.
    async fn close(&mut self) -> Result<(), AiError>;
}

/// Which provider to use, with its credentials and endpoints.
#[derive(Debug, Clone)]
pub enum ProviderConfig {
    OpenAi(OpenAiConfig),
    Gemini(GeminiConfig),
    Deepgram(DeepgramConfig),
    /// The Deepgram Voice Agent; its [`Provider`] is [`Provider::Deepgram`] too.
    DeepgramAgent(DeepgramAgentConfig),
}

impl ProviderConfig {
    pub fn provider(&self) -> Provider {
        match self {
            ProviderConfig::OpenAi(_) => Provider::OpenAi,
            ProviderConfig::Gemini(_) => Provider::Gemini,
            ProviderConfig::Deepgram(_) | ProviderConfig::DeepgramAgent(_) => Provider::Deepgram,
        }
    }

    /// The model the session talks with (the Voice Agent's "think" model; the speech-to-text
    /// model of the classic pipeline).
    pub fn model(&self) -> &str {
        match self {
            ProviderConfig::OpenAi(c) => &c.model,
            ProviderConfig::Gemini(c) => &c.model,
            ProviderConfig::Deepgram(c) => &c.stt_model,
            ProviderConfig::DeepgramAgent(c) => &c.think_model,
        }
    }

    pub fn set_model(&mut self, model: &str) {
        let slot = match self {
            ProviderConfig::OpenAi(c) => &mut c.model,
            ProviderConfig::Gemini(c) => &mut c.model,
            ProviderConfig::Deepgram(c) => &mut c.stt_model,
            ProviderConfig::DeepgramAgent(c) => &mut c.think_model,
        };
        *slot = model.to_owned();
    }

    /// The voice used when the session names none; `None` where the provider picks it.
    pub fn default_voice(&self) -> Option<&str> {
        match self {
            ProviderConfig::OpenAi(c) => Some(&c.default_voice),
            ProviderConfig::Gemini(_) => None,
            ProviderConfig::Deepgram(c) => Some(&c.tts_model),
            ProviderConfig::DeepgramAgent(c) => Some(&c.speak_model),
        }
    }
}

/// Opens a session with the configured provider and, if `session.greeting` is set, starts the
/// greeting.
pub async fn connect(
    provider: &ProviderConfig,
    session: &SessionConfig,
) -> Result<Box<dyn AgentSession>, AiError> {
    Ok(match provider {
        ProviderConfig::OpenAi(cfg) => Box::new(OpenAiSession::connect(cfg, session).await?),
        ProviderConfig::Gemini(cfg) => Box::new(GeminiSession::connect(cfg, session).await?),
        ProviderConfig::Deepgram(cfg) => Box::new(DeepgramSession::connect(cfg, session).await?),
        ProviderConfig::DeepgramAgent(cfg) => Box::new(DeepgramAgentSession::connect(cfg, session).await?),
    })
}

/// An `AgentEvent::Error` with one of our own [`codes`].
pub(crate) fn error_event(code: &str, message: impl Into<String>) -> AgentEvent {
    AgentEvent::Error { code: code.to_owned(), message: message.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_names_round_trip() {
        for p in [Provider::OpenAi, Provider::Gemini, Provider::Deepgram] {
            assert_eq!(p.as_str().parse::<Provider>(), Ok(p));
            assert_eq!(p.to_string(), p.as_str());
        }
        assert_eq!(" OpenAI ".parse::<Provider>(), Ok(Provider::OpenAi));
        assert_eq!("azure".parse::<Provider>(), Err(UnknownProvider("azure".into())));
    }
}
