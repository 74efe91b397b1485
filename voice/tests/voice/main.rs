//! Integration tests for `kraliki-voice`: one binary, one module per area.
//!
//! The voice-AI adapters run against the local fakes in `kraliki_voice::testing`; the SDK
//! oracles (Python, `KRALIKI_TEST_PYTHON`) check every message against the vendors' own types.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod deepgram;
mod deepgram_agent;
mod dispatch;
mod gemini;
mod helpers;
mod openai;
mod telephony;
