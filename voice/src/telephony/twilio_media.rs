//! Twilio Media Streams: the JSON text frames of a bidirectional `<Connect><Stream>` WebSocket.
//!
//! Twilio sends `connected`, `start`, `media` (base64 μ-law, 8 kHz mono, 20 ms per frame),
//! `dtmf`, `mark` (one we sent, echoed once the audio before it has played) and `stop`; we send
//! `media`, `mark` and `clear`. Counters (`sequenceNumber`, `chunk`, `timestamp`) are decimal
//! strings on the wire and numbers here. Parsing never panics: anything unexpected is a
//! [`MediaParseError`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::wire::{self, num_str, NameBody, PayloadBody};
use super::{MediaFormat, MediaParseError, Track};

/// A message Twilio sends us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TwilioInbound {
    Connected(Connected),
    Start(TwilioStart),
    Media(TwilioMedia),
    Dtmf(TwilioDtmf),
    Mark(TwilioMark),
    Stop(TwilioStop),
}

/// The first message on a new connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connected {
    /// `Call`.
    pub protocol: String,
    pub version: String,
}

/// The stream's metadata, sent once before any media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioStart {
    pub sequence_number: u64,
    pub stream_sid: String,
    pub account_sid: String,
    pub call_sid: String,
    /// `inbound`, `outbound` or both.
    pub tracks: Vec<String>,
    /// The `<Parameter>`s of the TwiML `<Stream>`.
    pub custom_parameters: BTreeMap<String, String>,
    pub media_format: MediaFormat,
}

/// One frame of audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioMedia {
    pub sequence_number: u64,
    pub stream_sid: String,
    pub track: Track,
    /// Frame counter of this track, from 1.
    pub chunk: u64,
    /// Milliseconds since the stream started.
    pub timestamp_ms: u64,
    /// Decoded μ-law bytes.
    pub payload: Vec<u8>,
}

/// A key the caller pressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioDtmf {
    pub sequence_number: u64,
    pub stream_sid: String,
    /// `inbound_track`.
    pub track: String,
    pub digit: String,
}

/// A mark we sent, echoed back once the audio sent before it has played (or on `clear`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioMark {
    pub sequence_number: u64,
    pub stream_sid: String,
    pub name: String,
}

/// The stream has ended (the call hung up or the stream was stopped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioStop {
    pub sequence_number: u64,
    pub stream_sid: String,
    pub account_sid: String,
    pub call_sid: String,
}

impl TwilioInbound {
    /// Reads one text frame.
    pub fn parse(text: &str) -> Result<Self, MediaParseError> {
        let tag = wire::parse_event(text)?;
        Ok(match &*tag.event {
            "connected" => {
                let w: ConnectedWire = wire::parse_body("connected", text)?;
                Self::Connected(Connected { protocol: w.protocol, version: w.version })
            }
            "start" => {
                let w: StartWire = wire::parse_body("start", text)?;
                Self::Start(TwilioStart {
                    sequence_number: w.sequence_number,
                    stream_sid: w.stream_sid,
                    account_sid: w.start.account_sid,
                    call_sid: w.start.call_sid,
                    tracks: w.start.tracks,
                    custom_parameters: w.start.custom_parameters,
                    media_format: w.start.media_format.into(),
                })
            }
            "media" => {
                let w: MediaWire = wire::parse_body("media", text)?;
                Self::Media(TwilioMedia {
                    sequence_number: w.sequence_number,
                    stream_sid: w.stream_sid,
                    track: Track::parse(&w.media.track),
                    chunk: w.media.chunk,
                    timestamp_ms: w.media.timestamp,
                    payload: wire::decode_payload("media", &w.media.payload)?,
                })
            }
            "dtmf" => {
                let w: DtmfWire = wire::parse_body("dtmf", text)?;
                Self::Dtmf(TwilioDtmf {
                    sequence_number: w.sequence_number,
                    stream_sid: w.stream_sid,
                    track: w.dtmf.track,
                    digit: w.dtmf.digit,
                })
            }
            "mark" => {
                let w: MarkWire = wire::parse_body("mark", text)?;
                Self::Mark(TwilioMark {
                    sequence_number: w.sequence_number,
                    stream_sid: w.stream_sid,
                    name: w.mark.name,
                })
            }
            "stop" => {
                let w: StopWire = wire::parse_body("stop", text)?;
                Self::Stop(TwilioStop {
                    sequence_number: w.sequence_number,
                    stream_sid: w.stream_sid,
                    account_sid: w.stop.account_sid,
                    call_sid: w.stop.call_sid,
                })
            }
            other => return Err(MediaParseError::UnknownEvent(other.to_owned())),
        })
    }

    /// Reads a frame that arrived as bytes (a binary WebSocket frame holding the same JSON).
    pub fn parse_bytes(bytes: &[u8]) -> Result<Self, MediaParseError> {
        Self::parse(wire::utf8(bytes)?)
    }

    /// The message as Twilio would send it (for fakes and tests).
    pub fn to_json(&self) -> String {
        match self {
            Self::Connected(c) => wire::tagged_json(
                "connected",
                &ConnectedWire { protocol: c.protocol.clone(), version: c.version.clone() },
            ),
            Self::Start(s) => wire::tagged_json(
                "start",
                &StartWire {
                    sequence_number: s.sequence_number,
                    stream_sid: s.stream_sid.clone(),
                    start: StartBodyWire {
                        stream_sid: Some(s.stream_sid.clone()),
                        account_sid: s.account_sid.clone(),
                        call_sid: s.call_sid.clone(),
                        tracks: s.tracks.clone(),
                        custom_parameters: s.custom_parameters.clone(),
                        media_format: MediaFormatWire {
                            encoding: s.media_format.encoding.clone(),
                            sample_rate: s.media_format.sample_rate,
                            channels: s.media_format.channels,
                        },
                    },
                },
            ),
            Self::Media(m) => wire::tagged_json(
                "media",
                &MediaWire {
                    sequence_number: m.sequence_number,
                    stream_sid: m.stream_sid.clone(),
                    media: MediaBodyWire {
                        track: m.track.as_str().to_owned(),
                        chunk: m.chunk,
                        timestamp: m.timestamp_ms,
                        payload: wire::b64_encode(&m.payload),
                    },
                },
            ),
            Self::Dtmf(d) => wire::tagged_json(
                "dtmf",
                &DtmfWire {
                    sequence_number: d.sequence_number,
                    stream_sid: d.stream_sid.clone(),
                    dtmf: DtmfBodyWire { track: d.track.clone(), digit: d.digit.clone() },
                },
            ),
            Self::Mark(m) => wire::tagged_json(
                "mark",
                &MarkWire {
                    sequence_number: m.sequence_number,
                    stream_sid: m.stream_sid.clone(),
                    mark: NameBody { name: m.name.clone() },
                },
            ),
            Self::Stop(s) => wire::tagged_json(
                "stop",
                &StopWire {
                    sequence_number: s.sequence_number,
                    stream_sid: s.stream_sid.clone(),
                    stop: StopBodyWire { account_sid: s.account_sid.clone(), call_sid: s.call_sid.clone() },
                },
            ),
        }
    }

    /// The stream this message belongs to (`connected` has none).
    pub fn stream_sid(&self) -> Option<&str> {
        match self {
            Self::Connected(_) => None,
            Self::Start(s) => Some(&s.stream_sid),
            Self::Media(m) => Some(&m.stream_sid),
            Self::Dtmf(d) => Some(&d.stream_sid),
            Self::Mark(m) => Some(&m.stream_sid),
            Self::Stop(s) => Some(&s.stream_sid),
        }
    }
}

/// A message we send Twilio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TwilioOutbound {
    /// Audio to play to the caller: μ-law, 8 kHz mono (any length; Twilio buffers it).
    Media { stream_sid: String, payload: Vec<u8> },
    /// Asks Twilio to echo `name` back once everything sent before it has played.
    Mark { stream_sid: String, name: String },
    /// Drops the audio Twilio has buffered (barge-in); pending marks come back.
    Clear { stream_sid: String },
}

impl TwilioOutbound {
    pub fn media(stream_sid: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        Self::Media { stream_sid: stream_sid.into(), payload: payload.into() }
    }

    pub fn mark(stream_sid: impl Into<String>, name: impl Into<String>) -> Self {
        Self::Mark { stream_sid: stream_sid.into(), name: name.into() }
    }

    pub fn clear(stream_sid: impl Into<String>) -> Self {
        Self::Clear { stream_sid: stream_sid.into() }
    }

    /// The text frame to send.
    pub fn to_json(&self) -> String {
        match self {
            Self::Media { stream_sid, payload } => wire::tagged_json(
                "media",
                &OutMediaWire {
                    stream_sid: stream_sid.clone(),
                    media: PayloadBody { payload: wire::b64_encode(payload) },
                },
            ),
            Self::Mark { stream_sid, name } => wire::tagged_json(
                "mark",
                &OutMarkWire { stream_sid: stream_sid.clone(), mark: NameBody { name: name.clone() } },
            ),
            Self::Clear { stream_sid } => {
                wire::tagged_json("clear", &OutClearWire { stream_sid: stream_sid.clone() })
            }
        }
    }

    /// Reads what we sent (for fakes and tests standing in for Twilio).
    pub fn parse(text: &str) -> Result<Self, MediaParseError> {
        let tag = wire::parse_event(text)?;
        Ok(match &*tag.event {
            "media" => {
                let w: OutMediaWire = wire::parse_body("media", text)?;
                Self::Media {
                    stream_sid: w.stream_sid,
                    payload: wire::decode_payload("media", &w.media.payload)?,
                }
            }
            "mark" => {
                let w: OutMarkWire = wire::parse_body("mark", text)?;
                Self::Mark { stream_sid: w.stream_sid, name: w.mark.name }
            }
            "clear" => {
                let w: OutClearWire = wire::parse_body("clear", text)?;
                Self::Clear { stream_sid: w.stream_sid }
            }
            other => return Err(MediaParseError::UnknownEvent(other.to_owned())),
        })
    }
}

#[derive(Serialize, Deserialize)]
struct ConnectedWire {
    protocol: String,
    version: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartWire {
    #[serde(with = "num_str")]
    sequence_number: u64,
    stream_sid: String,
    start: StartBodyWire,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartBodyWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stream_sid: Option<String>,
    account_sid: String,
    call_sid: String,
    #[serde(default)]
    tracks: Vec<String>,
    #[serde(default)]
    custom_parameters: BTreeMap<String, String>,
    media_format: MediaFormatWire,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MediaFormatWire {
    encoding: String,
    sample_rate: u32,
    channels: u16,
}

impl From<MediaFormatWire> for MediaFormat {
    fn from(w: MediaFormatWire) -> Self {
        Self { encoding: w.encoding, sample_rate: w.sample_rate, channels: w.channels }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MediaWire {
    #[serde(with = "num_str")]
    sequence_number: u64,
    stream_sid: String,
    media: MediaBodyWire,
}

#[derive(Serialize, Deserialize)]
struct MediaBodyWire {
    track: String,
    #[serde(with = "num_str")]
    chunk: u64,
    #[serde(with = "num_str")]
    timestamp: u64,
    payload: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DtmfWire {
    #[serde(with = "num_str")]
    sequence_number: u64,
    stream_sid: String,
    dtmf: DtmfBodyWire,
}

#[derive(Serialize, Deserialize)]
struct DtmfBodyWire {
    #[serde(default)]
    track: String,
    digit: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MarkWire {
    #[serde(with = "num_str")]
    sequence_number: u64,
    stream_sid: String,
    mark: NameBody,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StopWire {
    #[serde(with = "num_str")]
    sequence_number: u64,
    stream_sid: String,
    stop: StopBodyWire,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StopBodyWire {
    account_sid: String,
    call_sid: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OutMediaWire {
    stream_sid: String,
    media: PayloadBody,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OutMarkWire {
    stream_sid: String,
    mark: NameBody,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OutClearWire {
    stream_sid: String,
}
