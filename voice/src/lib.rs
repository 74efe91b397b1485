//! Telephony and voice-AI adapters for Kraliki Voice.
//!
//! So far the pure building blocks, with no network I/O:
//! - [`audio`]: G.711 μ-law and 8 kHz ⇄ 16/24 kHz resampling for the media bridge;
//! - [`twilio`]: `X-Twilio-Signature` webhook validation;
//! - [`telnyx`]: Telnyx Ed25519 webhook signature verification.

pub mod audio;
pub mod telnyx;
pub mod twilio;
