//! The browser session's wire format (`/ws/session`): a web page talks to the AI agent with
//! the computer's microphone (agents and supervisors rehearse calls), through the same media
//! bridge as a phone call. JSON text frames both ways; audio is base64 of 16-bit little-endian
//! mono PCM at 16 kHz (what a page gets from an `AudioWorklet` after resampling), converted to
//! and from the bridge's μ-law at 8 kHz here.
//!
//! Page → server:
//! - `{"type":"start"}` once, first (the server answers `started` with the call's id);
//! - `{"type":"audio","audio":"<base64 PCM16>"}`;
//! - `{"type":"mark","name":"…"}`: echo every `mark` once the audio before it has played (as a
//!   carrier does), so that a barge-in cuts the agent's item where the person stopped hearing it;
//! - `{"type":"dtmf","digit":"5"}`; `{"type":"stop"}` to hang up.
//!
//! Server → page: `started {call_id}`, `audio {audio, sample_rate}`, `mark {name}`, `clear` (drop
//! the audio queued for playing: the person interrupted), `transcript {speaker, text}` and,
//! before the socket closes, `ended {reason}`.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;

use crate::audio::{self, Resampler};

/// The page's sample rate.
pub const SAMPLE_RATE: u32 = 16_000;

/// A frame from the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    Start,
    /// Caller audio, already μ-law at 8 kHz.
    Audio(Vec<u8>),
    Mark(String),
    Dtmf(String),
    Stop,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Frame {
    Start,
    Audio { audio: String },
    Mark { name: String },
    Dtmf { digit: String },
    Stop,
}

/// One session's converters (their filters keep state across frames).
pub struct BrowserAudio {
    down: Resampler,
    up: Resampler,
    pcm: Vec<i16>,
    resampled: Vec<i16>,
}

impl Default for BrowserAudio {
    fn default() -> Self {
        Self {
            down: Resampler::new(SAMPLE_RATE, 8000).expect("2:1 is supported"),
            up: Resampler::new(8000, SAMPLE_RATE).expect("1:2 is supported"),
            pcm: Vec::new(),
            resampled: Vec::new(),
        }
    }
}

impl BrowserAudio {
    /// Reads a page's frame; audio comes out as μ-law at 8 kHz.
    pub fn parse(&mut self, text: &str) -> Result<Inbound, String> {
        let frame: Frame =
            serde_json::from_str(text).map_err(|e| format!("unreadable browser frame: {e}"))?;
        Ok(match frame {
            Frame::Start => Inbound::Start,
            Frame::Audio { audio } => {
                let bytes =
                    BASE64.decode(audio.as_bytes()).map_err(|e| format!("audio is not base64: {e}"))?;
                self.pcm.clear();
                if !audio::pcm16_from_le_bytes(&bytes, &mut self.pcm) {
                    return Err("audio must be whole 16-bit samples".into());
                }
                self.resampled.clear();
                self.down.process(&self.pcm, &mut self.resampled);
                Inbound::Audio(audio::encode_ulaw(&self.resampled))
            }
            Frame::Mark { name } => Inbound::Mark(name),
            Frame::Dtmf { digit } => Inbound::Dtmf(digit),
            Frame::Stop => Inbound::Stop,
        })
    }

    /// The agent's μ-law 8 kHz audio as the page's `audio` frame.
    pub fn media(&mut self, ulaw: &[u8]) -> String {
        self.pcm.clear();
        audio::decode_ulaw_into(ulaw, &mut self.pcm);
        self.resampled.clear();
        self.up.process(&self.pcm, &mut self.resampled);
        let mut bytes = Vec::with_capacity(self.resampled.len() * 2);
        audio::pcm16_to_le_bytes(&self.resampled, &mut bytes);
        json!({"type": "audio", "audio": BASE64.encode(bytes), "sample_rate": SAMPLE_RATE}).to_string()
    }
}

pub fn mark(name: &str) -> String {
    json!({"type": "mark", "name": name}).to_string()
}

pub fn clear() -> String {
    json!({"type": "clear"}).to_string()
}

pub fn started(call_id: uuid::Uuid) -> String {
    json!({"type": "started", "call_id": call_id, "sample_rate": SAMPLE_RATE}).to_string()
}

pub fn transcript(speaker: &str, text: &str) -> String {
    json!({"type": "transcript", "speaker": speaker, "text": text}).to_string()
}

pub fn ended(reason: &str) -> String {
    json!({"type": "ended", "reason": reason}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tone_goes_through_at_half_then_double_the_rate() {
        let mut a = BrowserAudio::default();
        // 20 ms of a 440 Hz tone at 16 kHz.
        let pcm: Vec<i16> = (0..320)
            .map(|i| ((i as f64 * 440.0 * std::f64::consts::TAU / 16_000.0).sin() * 8000.0) as i16)
            .collect();
        let mut bytes = Vec::new();
        audio::pcm16_to_le_bytes(&pcm, &mut bytes);
        let frame = json!({"type": "audio", "audio": BASE64.encode(&bytes)}).to_string();
        let Ok(Inbound::Audio(ulaw)) = a.parse(&frame) else { panic!("audio") };
        assert_eq!(ulaw.len(), 160, "20 ms at 8 kHz");
        let out: serde_json::Value = serde_json::from_str(&a.media(&ulaw)).expect("a JSON frame");
        let back = BASE64.decode(out["audio"].as_str().expect("audio")).expect("base64");
        assert_eq!(back.len(), 640, "20 ms at 16 kHz, 2 bytes a sample");
        assert_eq!(out["sample_rate"], 16_000);
    }

    #[test]
    fn bad_frames_are_errors_not_panics() {
        let mut a = BrowserAudio::default();
        assert!(a.parse("{").is_err());
        assert!(a.parse(r#"{"type":"audio","audio":"***"}"#).is_err());
        assert!(a.parse(r#"{"type":"audio","audio":"AA=="}"#).is_err(), "one byte: not a whole sample");
        assert!(a.parse(r#"{"type":"launch"}"#).is_err());
        assert_eq!(a.parse(r#"{"type":"mark","name":"i@100"}"#), Ok(Inbound::Mark("i@100".into())));
        assert_eq!(a.parse(r#"{"type":"stop"}"#), Ok(Inbound::Stop));
    }
}
