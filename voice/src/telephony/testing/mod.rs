//! Fakes of the telephony providers for tests (feature `testing`).
//!
//! - [`media`]: fake Twilio and Telnyx media clients: they dial our media WebSocket like the
//!   provider does, stream 20 ms μ-law frames (in real time or as fast as possible, in order or
//!   shuffled), press keys, hang up, and collect what our server plays back, echoing marks the
//!   way the providers do;
//! - [`api`]: fake Twilio REST and Telnyx Call Control servers on `127.0.0.1:0` that record
//!   every request and answer like the real APIs, errors included (or as scripted).

pub mod api;
pub mod media;
