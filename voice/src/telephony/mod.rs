//! The telephony wire layer: what Twilio and Telnyx send us and what we send them, as types.
//!
//! - [`twilio_media`] / [`telnyx_media`]: media-stream WebSocket messages (μ-law audio, marks,
//!   DTMF), parsed without panicking on anything the network sends;
//! - [`reorder`]: puts Telnyx media frames, which may arrive out of order, back in order;
//! - [`twiml`]: the TwiML we answer Twilio's voice webhooks with;
//! - [`twilio_rest`] / [`telnyx_control`]: outbound calls and call commands;
//! - [`webhooks`]: Twilio status callbacks and Telnyx call events mapped to one
//!   provider-neutral [`webhooks::TelephonyEvent`] with an idempotency key;
//! - `testing` (feature `testing`): fake media clients and fake provider APIs for tests.
//!
//! No HTTP routes live here: the API crate mounts them and calls into these types.

pub mod reorder;
pub mod telnyx_control;
pub mod telnyx_media;
pub mod twilio_media;
pub mod twilio_rest;
pub mod twiml;
pub mod webhooks;

#[cfg(feature = "testing")]
pub mod testing;

mod wire;

/// Why a media-stream WebSocket message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MediaParseError {
    /// Not JSON, or JSON without a string `event`.
    #[error("not a media-stream message: {0}")]
    Json(#[source] serde_json::Error),
    /// A well-formed message of a kind this side of the protocol does not have.
    #[error("unknown media-stream event {0:?}")]
    UnknownEvent(String),
    /// A known event whose fields are missing or of the wrong type.
    #[error("malformed {event:?} message: {source}")]
    Invalid {
        event: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// A `media` payload that is not base64.
    #[error("{event:?} payload is not valid base64: {source}")]
    Base64 {
        event: &'static str,
        #[source]
        source: base64::DecodeError,
    },
}

/// Which side of the call a media frame carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Track {
    /// What the caller says (`inbound`, or `inbound_track` in DTMF messages).
    Inbound,
    /// What the caller hears (`outbound` / `outbound_track`).
    Outbound,
    /// A track name neither provider documents today; kept rather than rejected.
    Other(String),
}

impl Track {
    pub fn parse(name: &str) -> Self {
        match name {
            "inbound" | "inbound_track" => Self::Inbound,
            "outbound" | "outbound_track" => Self::Outbound,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The name media messages use (`inbound` / `outbound`).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
            Self::Other(name) => name,
        }
    }
}

/// The audio format announced in a `start` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaFormat {
    /// `audio/x-mulaw` (Twilio) or `PCMU` (Telnyx) for G.711 μ-law.
    pub encoding: String,
    pub sample_rate: u32,
    pub channels: u16,
}

impl MediaFormat {
    /// Whether the stream carries 8 kHz mono G.711 μ-law, the only format the bridge takes as is.
    pub fn is_mulaw_8k_mono(&self) -> bool {
        let mulaw = matches!(self.encoding.as_str(), "audio/x-mulaw" | "PCMU" | "audio/PCMU");
        mulaw && self.sample_rate == 8_000 && self.channels == 1
    }
}
