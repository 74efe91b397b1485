//! Telephony and voice-AI adapters for Kraliki Voice.
//!
//! - [`audio`]: G.711 μ-law and 8 kHz ⇄ 16/24 kHz resampling for the media bridge;
//! - [`twilio`]: `X-Twilio-Signature` webhook validation;
//! - [`telnyx`]: Telnyx Ed25519 webhook signature verification;
//! - [`ai`]: realtime voice-agent sessions (OpenAI Realtime, Gemini Live, Deepgram STT+TTS,
//!   the Deepgram Voice Agent) behind one [`ai::AgentSession`] trait;
//! - `testing` (feature `testing`): local fake servers for those providers.

pub mod ai;
pub mod audio;
pub mod bridge;
pub mod browser;
pub mod calls;
pub mod dialer;
pub mod telephony;
pub mod telnyx;
#[cfg(feature = "testing")]
pub mod testing;
pub mod twilio;
