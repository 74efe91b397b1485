//! Telnyx media streaming: the JSON text frames of a Call Control `stream_url` WebSocket.
//!
//! Like Twilio's, in snake_case: Telnyx sends `connected`, `start`, `media` (base64 RTP payload
//! without headers; PCMU here), `dtmf`, `mark` (echoes of ours), `error` and `stop`; we send
//! `media`, `mark` and `clear`. Telnyx does not guarantee the order of media frames, so
//! [`MediaReorderer`] puts them back in `chunk` order per track before they reach the bridge.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::reorder::{ReorderBuffer, Reordered};
use super::wire::{self, num_str, opt_num_str, NameBody, PayloadBody};
use super::{MediaFormat, MediaParseError, Track};

/// A message Telnyx sends us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TelnyxInbound {
    Connected { version: Option<String> },
    Start(TelnyxStart),
    Media(TelnyxMedia),
    Dtmf(TelnyxDtmf),
    Mark(TelnyxMark),
    Error(TelnyxStreamError),
    Stop(TelnyxStop),
}

/// The stream's metadata, sent once before any media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelnyxStart {
    pub sequence_number: u64,
    pub stream_id: String,
    pub call_control_id: String,
    pub call_session_id: Option<String>,
    pub user_id: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// Base64, as set by our last command (see [`super::telnyx_control::ClientState`]).
    pub client_state: Option<String>,
    pub tags: Vec<String>,
    pub custom_parameters: BTreeMap<String, String>,
    pub media_format: MediaFormat,
}

/// One frame of audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelnyxMedia {
    pub sequence_number: u64,
    pub stream_id: String,
    pub track: Track,
    /// Frame counter of this track: the order to play frames in.
    pub chunk: u64,
    /// Milliseconds since the stream started.
    pub timestamp_ms: u64,
    /// Decoded RTP payload (μ-law bytes for PCMU).
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelnyxDtmf {
    pub sequence_number: Option<u64>,
    pub stream_id: String,
    /// When the telephony engine saw the key; DTMF frames may arrive out of order too.
    pub occurred_at: Option<String>,
    pub digit: String,
}

/// A mark we sent, echoed back once the audio before it has played (or on `clear`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelnyxMark {
    pub sequence_number: Option<u64>,
    pub stream_id: String,
    pub name: String,
}

/// Telnyx could not use something we sent (100003 `malformed_frame`, 100004 `invalid_media`,
/// 100005 `rate_limit_reached`) or failed itself (100002 `unknown_error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelnyxStreamError {
    pub stream_id: Option<String>,
    pub code: u64,
    pub title: String,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelnyxStop {
    pub sequence_number: Option<u64>,
    pub stream_id: String,
    pub call_control_id: Option<String>,
    pub user_id: Option<String>,
}

impl TelnyxInbound {
    /// Reads one text frame.
    pub fn parse(text: &str) -> Result<Self, MediaParseError> {
        let tag = wire::parse_event(text)?;
        Ok(match &*tag.event {
            "connected" => {
                let w: ConnectedWire = wire::parse_body("connected", text)?;
                Self::Connected { version: w.version }
            }
            "start" => {
                let w: StartWire = wire::parse_body("start", text)?;
                Self::Start(TelnyxStart {
                    sequence_number: w.sequence_number,
                    stream_id: w.stream_id,
                    call_control_id: w.start.call_control_id,
                    call_session_id: w.start.call_session_id,
                    user_id: w.start.user_id,
                    from: w.start.from,
                    to: w.start.to,
                    client_state: w.start.client_state,
                    tags: w.start.tags.unwrap_or_default(),
                    custom_parameters: w
                        .start
                        .custom_parameters
                        .map(CustomParameters::into_map)
                        .unwrap_or_default(),
                    media_format: MediaFormat {
                        encoding: w.start.media_format.encoding,
                        sample_rate: w.start.media_format.sample_rate,
                        channels: w.start.media_format.channels,
                    },
                })
            }
            "media" => {
                let w: MediaWire = wire::parse_body("media", text)?;
                Self::Media(TelnyxMedia {
                    sequence_number: w.sequence_number,
                    stream_id: w.stream_id,
                    track: Track::parse(&w.media.track),
                    chunk: w.media.chunk,
                    timestamp_ms: w.media.timestamp,
                    payload: wire::decode_payload("media", &w.media.payload)?,
                })
            }
            "dtmf" => {
                let w: DtmfWire = wire::parse_body("dtmf", text)?;
                Self::Dtmf(TelnyxDtmf {
                    sequence_number: w.sequence_number,
                    stream_id: w.stream_id,
                    occurred_at: w.occurred_at,
                    digit: w.dtmf.digit,
                })
            }
            "mark" => {
                let w: MarkWire = wire::parse_body("mark", text)?;
                Self::Mark(TelnyxMark {
                    sequence_number: w.sequence_number,
                    stream_id: w.stream_id,
                    name: w.mark.name,
                })
            }
            "error" => {
                let w: ErrorWire = wire::parse_body("error", text)?;
                Self::Error(TelnyxStreamError {
                    stream_id: w.stream_id,
                    code: w.payload.code,
                    title: w.payload.title,
                    detail: w.payload.detail,
                })
            }
            "stop" => {
                let w: StopWire = wire::parse_body("stop", text)?;
                let stop = w.stop.unwrap_or_default();
                Self::Stop(TelnyxStop {
                    sequence_number: w.sequence_number,
                    stream_id: w.stream_id,
                    call_control_id: stop.call_control_id,
                    user_id: stop.user_id,
                })
            }
            other => return Err(MediaParseError::UnknownEvent(other.to_owned())),
        })
    }

    /// Reads a frame that arrived as bytes (a binary WebSocket frame holding the same JSON).
    pub fn parse_bytes(bytes: &[u8]) -> Result<Self, MediaParseError> {
        Self::parse(wire::utf8(bytes)?)
    }

    /// The message as Telnyx would send it (for fakes and tests).
    pub fn to_json(&self) -> String {
        match self {
            Self::Connected { version } => {
                wire::tagged_json("connected", &ConnectedWire { version: version.clone() })
            }
            Self::Start(s) => wire::tagged_json(
                "start",
                &StartWire {
                    sequence_number: s.sequence_number,
                    stream_id: s.stream_id.clone(),
                    start: StartBodyWire {
                        user_id: s.user_id.clone(),
                        call_control_id: s.call_control_id.clone(),
                        call_session_id: s.call_session_id.clone(),
                        from: s.from.clone(),
                        to: s.to.clone(),
                        client_state: s.client_state.clone(),
                        tags: (!s.tags.is_empty()).then(|| s.tags.clone()),
                        custom_parameters: (!s.custom_parameters.is_empty())
                            .then(|| CustomParameters::Map(s.custom_parameters.clone())),
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
                    stream_id: m.stream_id.clone(),
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
                    stream_id: d.stream_id.clone(),
                    occurred_at: d.occurred_at.clone(),
                    dtmf: DigitBody { digit: d.digit.clone() },
                },
            ),
            Self::Mark(m) => wire::tagged_json(
                "mark",
                &MarkWire {
                    sequence_number: m.sequence_number,
                    stream_id: m.stream_id.clone(),
                    mark: NameBody { name: m.name.clone() },
                },
            ),
            Self::Error(e) => wire::tagged_json(
                "error",
                &ErrorWire {
                    stream_id: e.stream_id.clone(),
                    payload: ErrorBody { code: e.code, title: e.title.clone(), detail: e.detail.clone() },
                },
            ),
            Self::Stop(s) => wire::tagged_json(
                "stop",
                &StopWire {
                    sequence_number: s.sequence_number,
                    stream_id: s.stream_id.clone(),
                    stop: Some(StopBodyWire {
                        user_id: s.user_id.clone(),
                        call_control_id: s.call_control_id.clone(),
                    }),
                },
            ),
        }
    }
}

/// A message we send Telnyx (bidirectional streaming, `stream_bidirectional_mode: "rtp"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TelnyxOutbound {
    /// Audio in the negotiated codec (PCMU here), 20 ms to 30 s per message.
    Media { payload: Vec<u8> },
    /// Asks Telnyx to echo `name` back once the media before it has played.
    Mark { name: String },
    /// Stops playback and drops queued media; queued marks come back.
    Clear,
}

impl TelnyxOutbound {
    pub fn to_json(&self) -> String {
        match self {
            Self::Media { payload } => wire::tagged_json(
                "media",
                &OutMediaWire { media: PayloadBody { payload: wire::b64_encode(payload) } },
            ),
            Self::Mark { name } => {
                wire::tagged_json("mark", &OutMarkWire { mark: NameBody { name: name.clone() } })
            }
            Self::Clear => wire::tagged_json("clear", &Empty {}),
        }
    }

    /// Reads what we sent (for fakes and tests standing in for Telnyx).
    pub fn parse(text: &str) -> Result<Self, MediaParseError> {
        let tag = wire::parse_event(text)?;
        Ok(match &*tag.event {
            "media" => {
                let w: OutMediaWire = wire::parse_body("media", text)?;
                Self::Media { payload: wire::decode_payload("media", &w.media.payload)? }
            }
            "mark" => {
                let w: OutMarkWire = wire::parse_body("mark", text)?;
                Self::Mark { name: w.mark.name }
            }
            "clear" => Self::Clear,
            other => return Err(MediaParseError::UnknownEvent(other.to_owned())),
        })
    }
}

/// What [`MediaReorderer::push`] hands on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderedMedia {
    /// The next frame of its track, in `chunk` order.
    Frame(TelnyxMedia),
    /// `count` frames of `track` from `first_chunk` on never arrived within the window; the
    /// bridge may play silence in their place.
    Gap { track: Track, first_chunk: u64, count: u64 },
    /// A frame that arrived after its place was passed (or twice), dropped.
    Dropped { track: Track, chunk: u64, duplicate: bool },
}

/// Puts Telnyx media frames back in `chunk` order, one bounded [`ReorderBuffer`] per track.
#[derive(Debug)]
pub struct MediaReorderer {
    window: usize,
    tracks: BTreeMap<Track, ReorderBuffer<TelnyxMedia>>,
}

impl MediaReorderer {
    /// `window`: how many frames past a missing one to wait before giving it up (each frame is
    /// 20 ms, so 5 adds at most 100 ms of delay while a frame is missing).
    pub fn new(window: usize) -> Self {
        Self { window, tracks: BTreeMap::new() }
    }

    /// Takes one frame and returns whatever can now be handed on, in order.
    pub fn push(&mut self, frame: TelnyxMedia) -> Vec<OrderedMedia> {
        let track = frame.track.clone();
        let buffer = self
            .tracks
            .entry(track.clone())
            // Chunks count from 1, so a stream whose first frame is late is still ordered.
            .or_insert_with(|| ReorderBuffer::starting_at(1, self.window));
        let chunk = frame.chunk;
        let out = buffer.push(chunk, frame);
        out.into_iter().map(|r| ordered(&track, r)).collect()
    }

    /// At the end of the stream: everything still held, in order, with the gaps between.
    pub fn flush(&mut self) -> Vec<OrderedMedia> {
        let mut out = Vec::new();
        for (track, buffer) in &mut self.tracks {
            out.extend(buffer.flush().into_iter().map(|r| ordered(track, r)));
        }
        out
    }

    /// Counters of one track.
    pub fn stats(&self, track: &Track) -> Option<super::reorder::ReorderStats> {
        self.tracks.get(track).map(ReorderBuffer::stats)
    }
}

fn ordered(track: &Track, r: Reordered<TelnyxMedia>) -> OrderedMedia {
    match r {
        Reordered::Item { item, .. } => OrderedMedia::Frame(item),
        Reordered::Gap { first, count } => {
            OrderedMedia::Gap { track: track.clone(), first_chunk: first, count }
        }
        Reordered::Late { seq } => {
            OrderedMedia::Dropped { track: track.clone(), chunk: seq, duplicate: false }
        }
        Reordered::Duplicate { seq } => {
            OrderedMedia::Dropped { track: track.clone(), chunk: seq, duplicate: true }
        }
    }
}

#[derive(Serialize, Deserialize)]
struct ConnectedWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct StartWire {
    #[serde(with = "num_str")]
    sequence_number: u64,
    stream_id: String,
    start: StartBodyWire,
}

#[derive(Serialize, Deserialize)]
struct StartBodyWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    call_control_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    call_session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    custom_parameters: Option<CustomParameters>,
    media_format: MediaFormatWire,
}

/// Custom parameters as an object, or as the `[{name, value}]` list the commands take.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum CustomParameters {
    Map(BTreeMap<String, String>),
    List(Vec<NameValue>),
}

#[derive(Serialize, Deserialize)]
struct NameValue {
    name: String,
    value: String,
}

impl CustomParameters {
    fn into_map(self) -> BTreeMap<String, String> {
        match self {
            Self::Map(map) => map,
            Self::List(list) => list.into_iter().map(|p| (p.name, p.value)).collect(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct MediaFormatWire {
    encoding: String,
    sample_rate: u32,
    channels: u16,
}

#[derive(Serialize, Deserialize)]
struct MediaWire {
    #[serde(with = "num_str")]
    sequence_number: u64,
    stream_id: String,
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
struct DtmfWire {
    #[serde(default, with = "opt_num_str", skip_serializing_if = "Option::is_none")]
    sequence_number: Option<u64>,
    stream_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    occurred_at: Option<String>,
    dtmf: DigitBody,
}

#[derive(Serialize, Deserialize)]
struct DigitBody {
    digit: String,
}

#[derive(Serialize, Deserialize)]
struct MarkWire {
    #[serde(default, with = "opt_num_str", skip_serializing_if = "Option::is_none")]
    sequence_number: Option<u64>,
    stream_id: String,
    mark: NameBody,
}

#[derive(Serialize, Deserialize)]
struct ErrorWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stream_id: Option<String>,
    payload: ErrorBody,
}

#[derive(Serialize, Deserialize)]
struct ErrorBody {
    #[serde(with = "wire::num")]
    code: u64,
    title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct StopWire {
    #[serde(default, with = "opt_num_str", skip_serializing_if = "Option::is_none")]
    sequence_number: Option<u64>,
    stream_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stop: Option<StopBodyWire>,
}

#[derive(Serialize, Deserialize, Default)]
struct StopBodyWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    call_control_id: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct OutMediaWire {
    media: PayloadBody,
}

#[derive(Serialize, Deserialize)]
struct OutMarkWire {
    mark: NameBody,
}

#[derive(Serialize)]
struct Empty {}
