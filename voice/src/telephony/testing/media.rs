//! Fake provider media clients: connect to a media WebSocket URL the way Twilio or Telnyx does.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;

use crate::audio::ULAW_FRAME_BYTES;
use crate::telephony::telnyx_media::{
    TelnyxInbound, TelnyxMark, TelnyxMedia, TelnyxOutbound, TelnyxStart, TelnyxStop,
};
use crate::telephony::twilio_media::{
    Connected, TwilioDtmf, TwilioInbound, TwilioMark, TwilioMedia, TwilioOutbound, TwilioStart, TwilioStop,
};
use crate::telephony::{MediaFormat, Track};

/// μ-law silence, used to pad a last partial frame.
const ULAW_SILENCE: u8 = 0xFF;
const FRAME: Duration = Duration::from_millis(20);

/// How fast to send audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// One 20 ms frame every 20 ms, as a phone call does.
    RealTime,
    /// All frames at once.
    AsFastAsPossible,
}

/// The order to send frames in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameOrder {
    InOrder,
    /// Shuffled within consecutive blocks of `block` frames (Telnyx does not guarantee order);
    /// each frame keeps its own sequence number and chunk.
    Shuffled {
        block: usize,
        seed: u64,
    },
}

/// How the fake "plays" audio our server sends, which decides when marks come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Playout {
    /// Audio plays in no time: a mark comes back as soon as it arrives.
    Instant,
    /// Audio plays at 8,000 μ-law bytes a second: a mark comes back once the audio sent before
    /// it would have finished playing; `clear` drops the rest and returns pending marks at once.
    RealTime,
}

/// What our server sent the fake provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerFrame {
    Media(Vec<u8>),
    Mark(String),
    Clear,
    /// A text frame the provider would reject, with why.
    Invalid {
        text: String,
        error: String,
    },
    /// A binary frame (neither provider accepts them).
    Binary(Vec<u8>),
}

#[derive(Debug, thiserror::Error)]
pub enum FakeMediaError {
    #[error("could not connect: {0}")]
    Connect(#[source] Box<tokio_tungstenite::tungstenite::Error>),
    #[error("the connection is closed")]
    Closed,
}

/// A provider's message formats, as the fake client needs them.
pub trait Dialect: Clone + Send + Sync + 'static {
    fn connected(&self) -> String;
    fn start(&self, sequence_number: u64) -> String;
    fn media(&self, sequence_number: u64, chunk: u64, timestamp_ms: u64, payload: &[u8]) -> String;
    fn dtmf(&self, sequence_number: u64, digit: &str) -> String;
    fn mark(&self, sequence_number: u64, name: &str) -> String;
    fn stop(&self, sequence_number: u64) -> String;
    fn parse_server(&self, text: &str) -> ServerFrame;
}

/// The call a fake Twilio stream belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioDialect {
    pub account_sid: String,
    pub call_sid: String,
    pub stream_sid: String,
    /// As the `<Parameter>`s of the TwiML `<Stream>` would give them.
    pub custom_parameters: BTreeMap<String, String>,
}

impl TwilioDialect {
    pub fn new(call_sid: impl Into<String>, stream_sid: impl Into<String>) -> Self {
        Self {
            account_sid: "AC00000000000000000000000000000000".to_owned(),
            call_sid: call_sid.into(),
            stream_sid: stream_sid.into(),
            custom_parameters: BTreeMap::new(),
        }
    }

    pub fn parameter(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.custom_parameters.insert(name.into(), value.into());
        self
    }
}

impl Dialect for TwilioDialect {
    fn connected(&self) -> String {
        TwilioInbound::Connected(Connected { protocol: "Call".to_owned(), version: "1.0.0".to_owned() })
            .to_json()
    }

    fn start(&self, sequence_number: u64) -> String {
        TwilioInbound::Start(TwilioStart {
            sequence_number,
            stream_sid: self.stream_sid.clone(),
            account_sid: self.account_sid.clone(),
            call_sid: self.call_sid.clone(),
            tracks: vec!["inbound".to_owned()],
            custom_parameters: self.custom_parameters.clone(),
            media_format: MediaFormat {
                encoding: "audio/x-mulaw".to_owned(),
                sample_rate: 8_000,
                channels: 1,
            },
        })
        .to_json()
    }

    fn media(&self, sequence_number: u64, chunk: u64, timestamp_ms: u64, payload: &[u8]) -> String {
        TwilioInbound::Media(TwilioMedia {
            sequence_number,
            stream_sid: self.stream_sid.clone(),
            track: Track::Inbound,
            chunk,
            timestamp_ms,
            payload: payload.to_vec(),
        })
        .to_json()
    }

    fn dtmf(&self, sequence_number: u64, digit: &str) -> String {
        TwilioInbound::Dtmf(TwilioDtmf {
            sequence_number,
            stream_sid: self.stream_sid.clone(),
            track: "inbound_track".to_owned(),
            digit: digit.to_owned(),
        })
        .to_json()
    }

    fn mark(&self, sequence_number: u64, name: &str) -> String {
        TwilioInbound::Mark(TwilioMark {
            sequence_number,
            stream_sid: self.stream_sid.clone(),
            name: name.to_owned(),
        })
        .to_json()
    }

    fn stop(&self, sequence_number: u64) -> String {
        TwilioInbound::Stop(TwilioStop {
            sequence_number,
            stream_sid: self.stream_sid.clone(),
            account_sid: self.account_sid.clone(),
            call_sid: self.call_sid.clone(),
        })
        .to_json()
    }

    fn parse_server(&self, text: &str) -> ServerFrame {
        match TwilioOutbound::parse(text) {
            // Twilio ignores messages for another stream; so does the fake, loudly.
            Ok(
                TwilioOutbound::Media { stream_sid, .. }
                | TwilioOutbound::Mark { stream_sid, .. }
                | TwilioOutbound::Clear { stream_sid },
            ) if stream_sid != self.stream_sid => ServerFrame::Invalid {
                text: text.to_owned(),
                error: format!("streamSid {stream_sid:?} is not this stream"),
            },
            Ok(TwilioOutbound::Media { payload, .. }) => ServerFrame::Media(payload),
            Ok(TwilioOutbound::Mark { name, .. }) => ServerFrame::Mark(name),
            Ok(TwilioOutbound::Clear { .. }) => ServerFrame::Clear,
            Err(e) => ServerFrame::Invalid { text: text.to_owned(), error: e.to_string() },
        }
    }
}

/// The call a fake Telnyx stream belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelnyxDialect {
    pub stream_id: String,
    pub call_control_id: String,
    pub call_session_id: Option<String>,
    pub client_state: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

impl TelnyxDialect {
    pub fn new(call_control_id: impl Into<String>, stream_id: impl Into<String>) -> Self {
        Self {
            stream_id: stream_id.into(),
            call_control_id: call_control_id.into(),
            call_session_id: None,
            client_state: None,
            from: None,
            to: None,
        }
    }
}

impl Dialect for TelnyxDialect {
    fn connected(&self) -> String {
        TelnyxInbound::Connected { version: Some("1.0.0".to_owned()) }.to_json()
    }

    fn start(&self, sequence_number: u64) -> String {
        TelnyxInbound::Start(TelnyxStart {
            sequence_number,
            stream_id: self.stream_id.clone(),
            call_control_id: self.call_control_id.clone(),
            call_session_id: self.call_session_id.clone(),
            user_id: None,
            from: self.from.clone(),
            to: self.to.clone(),
            client_state: self.client_state.clone(),
            tags: Vec::new(),
            custom_parameters: BTreeMap::new(),
            media_format: MediaFormat { encoding: "PCMU".to_owned(), sample_rate: 8_000, channels: 1 },
        })
        .to_json()
    }

    fn media(&self, sequence_number: u64, chunk: u64, timestamp_ms: u64, payload: &[u8]) -> String {
        TelnyxInbound::Media(TelnyxMedia {
            sequence_number,
            stream_id: self.stream_id.clone(),
            track: Track::Inbound,
            chunk,
            timestamp_ms,
            payload: payload.to_vec(),
        })
        .to_json()
    }

    fn dtmf(&self, sequence_number: u64, digit: &str) -> String {
        TelnyxInbound::Dtmf(crate::telephony::telnyx_media::TelnyxDtmf {
            sequence_number: Some(sequence_number),
            stream_id: self.stream_id.clone(),
            occurred_at: None,
            digit: digit.to_owned(),
        })
        .to_json()
    }

    fn mark(&self, sequence_number: u64, name: &str) -> String {
        TelnyxInbound::Mark(TelnyxMark {
            sequence_number: Some(sequence_number),
            stream_id: self.stream_id.clone(),
            name: name.to_owned(),
        })
        .to_json()
    }

    fn stop(&self, sequence_number: u64) -> String {
        TelnyxInbound::Stop(TelnyxStop {
            sequence_number: Some(sequence_number),
            stream_id: self.stream_id.clone(),
            call_control_id: Some(self.call_control_id.clone()),
            user_id: None,
        })
        .to_json()
    }

    fn parse_server(&self, text: &str) -> ServerFrame {
        match TelnyxOutbound::parse(text) {
            Ok(TelnyxOutbound::Media { payload }) => ServerFrame::Media(payload),
            Ok(TelnyxOutbound::Mark { name }) => ServerFrame::Mark(name),
            Ok(TelnyxOutbound::Clear) => ServerFrame::Clear,
            Err(e) => ServerFrame::Invalid { text: text.to_owned(), error: e.to_string() },
        }
    }
}

/// A fake Twilio dialing our `<Connect><Stream>` URL.
pub type FakeTwilioMediaClient = FakeMediaClient<TwilioDialect>;
/// A fake Telnyx dialing our `stream_url`.
pub type FakeTelnyxMediaClient = FakeMediaClient<TelnyxDialect>;

/// Why the fake sent a mark back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EchoCause {
    /// The audio queued before the mark has played.
    Played,
    /// `clear` dropped the audio before it: pending marks come back at once.
    Cleared,
}

/// A mark the fake sent back to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Echo {
    pub name: String,
    pub cause: EchoCause,
}

struct Log {
    received: Vec<ServerFrame>,
    echoes: Vec<Echo>,
    player: Player,
    /// The audio played when each `clear` arrived.
    played_at_clears: Vec<Duration>,
    /// Marks returned by `clear` are kept back (not sent) until released.
    hold_cleared: bool,
    held: Vec<String>,
    closed_by_server: bool,
}

/// One fake provider-side media connection. Dropping it aborts its tasks.
pub struct FakeMediaClient<D: Dialect> {
    dialect: D,
    out: mpsc::UnboundedSender<Message>,
    frames: mpsc::UnboundedReceiver<ServerFrame>,
    log: Arc<Mutex<Log>>,
    sequence: Arc<AtomicU64>,
    chunk: u64,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl<D: Dialect> FakeMediaClient<D> {
    /// Connects to `url` (`ws://127.0.0.1:…/…`) and sends `connected` and `start`, as the
    /// provider does when a call's stream begins.
    pub async fn connect(url: &str, dialect: D, playout: Playout) -> Result<Self, FakeMediaError> {
        let (socket, _) =
            tokio_tungstenite::connect_async(url).await.map_err(|e| FakeMediaError::Connect(Box::new(e)))?;
        let (mut sink, mut stream) = socket.split();
        let (out, mut outgoing) = mpsc::unbounded_channel::<Message>();
        let (frames_tx, frames) = mpsc::unbounded_channel();
        let log = Arc::new(Mutex::new(Log {
            received: Vec::new(),
            echoes: Vec::new(),
            player: Player::new(playout, Instant::now()),
            played_at_clears: Vec::new(),
            hold_cleared: false,
            held: Vec::new(),
            closed_by_server: false,
        }));
        let sequence = Arc::new(AtomicU64::new(1));

        let writer = tokio::spawn(async move {
            while let Some(message) = outgoing.recv().await {
                let closing = matches!(message, Message::Close(_));
                if sink.send(message).await.is_err() || closing {
                    break;
                }
            }
            let _ = sink.close().await;
        });

        let reader = {
            let (dialect, log, sequence, out) = (dialect.clone(), log.clone(), sequence.clone(), out.clone());
            tokio::spawn(async move {
                loop {
                    let due = lock(&log).player.pending.front().map(|(at, _)| *at);
                    let message = tokio::select! {
                        message = stream.next() => message,
                        () = sleep_until_opt(due) => {
                            let mut log = lock(&log);
                            for name in log.player.due(Instant::now()) {
                                echo(&dialect, &sequence, &out, &mut log, name, EchoCause::Played);
                            }
                            continue;
                        }
                    };
                    let frame = match message {
                        Some(Ok(Message::Text(text))) => dialect.parse_server(text.as_str()),
                        Some(Ok(Message::Binary(bytes))) => ServerFrame::Binary(bytes.to_vec()),
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                        Some(Ok(_)) => continue,
                    };
                    {
                        let mut log = lock(&log);
                        let now = Instant::now();
                        if frame == ServerFrame::Clear {
                            let played = log.player.played(now);
                            log.played_at_clears.push(played);
                        }
                        for (name, cause) in log.player.on_frame(&frame, now) {
                            echo(&dialect, &sequence, &out, &mut log, name, cause);
                        }
                        log.received.push(frame.clone());
                    }
                    let _ = frames_tx.send(frame);
                }
                lock(&log).closed_by_server = true;
            })
        };

        let client = Self { dialect, out, frames, log, sequence, chunk: 0, reader, writer };
        client.send_text(client.dialect.connected())?;
        let seq = client.next_sequence();
        client.send_text(client.dialect.start(seq))?;
        Ok(client)
    }

    /// Streams `ulaw` as 20 ms frames (the last one padded with silence). Returns the number
    /// of frames sent.
    pub async fn send_audio(&mut self, ulaw: &[u8], pace: Pace) -> Result<usize, FakeMediaError> {
        self.send_audio_ordered(ulaw, pace, FrameOrder::InOrder).await
    }

    /// [`Self::send_audio`] in a chosen order.
    pub async fn send_audio_ordered(
        &mut self,
        ulaw: &[u8],
        pace: Pace,
        order: FrameOrder,
    ) -> Result<usize, FakeMediaError> {
        let mut frames: Vec<String> = ulaw
            .chunks(ULAW_FRAME_BYTES)
            .map(|chunk| {
                let mut payload = chunk.to_vec();
                payload.resize(ULAW_FRAME_BYTES, ULAW_SILENCE);
                self.chunk += 1;
                let timestamp_ms = (self.chunk - 1) * FRAME.as_millis() as u64;
                let seq = self.next_sequence();
                self.dialect.media(seq, self.chunk, timestamp_ms, &payload)
            })
            .collect();
        if let FrameOrder::Shuffled { block, seed } = order {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            for block in frames.chunks_mut(block.max(1)) {
                block.shuffle(&mut rng);
            }
        }
        let count = frames.len();
        let mut ticks = tokio::time::interval(FRAME);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
        for frame in frames {
            if pace == Pace::RealTime {
                ticks.tick().await;
            }
            self.send_text(frame)?;
        }
        Ok(count)
    }

    /// The caller presses `digit`.
    pub fn send_dtmf(&self, digit: &str) -> Result<(), FakeMediaError> {
        let seq = self.next_sequence();
        self.send_text(self.dialect.dtmf(seq, digit))
    }

    /// Sends any text frame as is (for testing how the server takes garbage).
    pub fn send_raw(&self, text: impl Into<String>) -> Result<(), FakeMediaError> {
        self.send_text(text.into())
    }

    /// The call ends: `stop`, then the WebSocket close.
    pub fn stop(&self) -> Result<(), FakeMediaError> {
        let seq = self.next_sequence();
        self.send_text(self.dialect.stop(seq))?;
        self.out.send(Message::Close(None)).map_err(|_| FakeMediaError::Closed)
    }

    /// The next frame from the server, waiting at most `timeout`.
    pub async fn next_frame(&mut self, timeout: Duration) -> Option<ServerFrame> {
        tokio::time::timeout(timeout, self.frames.recv()).await.ok().flatten()
    }

    /// Frames until one matches `wanted` (returned) or `timeout` passes (`None`).
    pub async fn wait_for(
        &mut self,
        timeout: Duration,
        wanted: impl Fn(&ServerFrame) -> bool,
    ) -> Option<ServerFrame> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = self.next_frame(left).await?;
            if wanted(&frame) {
                return Some(frame);
            }
        }
    }

    /// Everything the server has sent so far.
    pub fn received(&self) -> Vec<ServerFrame> {
        lock(&self.log).received.clone()
    }

    /// The μ-law audio the server has sent so far, concatenated.
    pub fn received_audio(&self) -> Vec<u8> {
        lock(&self.log)
            .received
            .iter()
            .filter_map(|f| match f {
                ServerFrame::Media(bytes) => Some(bytes.as_slice()),
                _ => None,
            })
            .flatten()
            .copied()
            .collect()
    }

    /// Marks the fake has echoed back to the server, in order.
    pub fn echoed_marks(&self) -> Vec<String> {
        lock(&self.log).echoes.iter().map(|e| e.name.clone()).collect()
    }

    /// Marks the fake has echoed back, in order, with why each came back.
    pub fn echoes(&self) -> Vec<Echo> {
        lock(&self.log).echoes.clone()
    }

    /// The audio the fake has played so far (with [`Playout::Instant`], all it received).
    pub fn played(&self) -> Duration {
        lock(&self.log).player.played(Instant::now())
    }

    /// How much audio had played when each `clear` arrived, in order.
    pub fn played_at_clears(&self) -> Vec<Duration> {
        lock(&self.log).played_at_clears.clone()
    }

    /// From now on the marks a `clear` returns are kept back until
    /// [`release_held_marks`](Self::release_held_marks): a test decides whether the server sees
    /// them before or after something else.
    pub fn hold_cleared_marks(&self) {
        lock(&self.log).hold_cleared = true;
    }

    /// Sends the marks kept back by [`hold_cleared_marks`](Self::hold_cleared_marks), and stops
    /// keeping them. Returns how many were sent.
    pub fn release_held_marks(&self) -> usize {
        let mut log = lock(&self.log);
        log.hold_cleared = false;
        let held = std::mem::take(&mut log.held);
        let count = held.len();
        for name in held {
            echo(&self.dialect, &self.sequence, &self.out, &mut log, name, EchoCause::Cleared);
        }
        count
    }

    /// Whether the server closed the connection (or it broke).
    pub fn closed_by_server(&self) -> bool {
        lock(&self.log).closed_by_server
    }

    fn next_sequence(&self) -> u64 {
        self.sequence.fetch_add(1, Ordering::Relaxed)
    }

    fn send_text(&self, text: String) -> Result<(), FakeMediaError> {
        self.out.send(Message::text(text)).map_err(|_| FakeMediaError::Closed)
    }
}

impl<D: Dialect> Drop for FakeMediaClient<D> {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

/// The provider's playback queue, as far as marks are concerned.
struct Player {
    playout: Playout,
    playing_until: Instant,
    /// All the audio received, and what `clear` dropped of it unplayed.
    queued: Duration,
    dropped: Duration,
    /// Marks waiting for the audio before them to finish, with when that is.
    pending: VecDeque<(Instant, String)>,
}

impl Player {
    fn new(playout: Playout, now: Instant) -> Self {
        Self {
            playout,
            playing_until: now,
            queued: Duration::ZERO,
            dropped: Duration::ZERO,
            pending: VecDeque::new(),
        }
    }

    /// The audio played by `now`.
    fn played(&self, now: Instant) -> Duration {
        let left = self.playing_until.saturating_duration_since(now);
        self.queued.saturating_sub(self.dropped).saturating_sub(left)
    }

    /// Marks to echo now because of `frame`.
    fn on_frame(&mut self, frame: &ServerFrame, now: Instant) -> Vec<(String, EchoCause)> {
        match (frame, self.playout) {
            (ServerFrame::Media(bytes), playout) => {
                let length =
                    Duration::from_secs_f64(bytes.len() as f64 / f64::from(crate::audio::TELEPHONY_HZ));
                self.queued += length;
                if playout == Playout::RealTime {
                    self.playing_until = self.playing_until.max(now) + length;
                }
                Vec::new()
            }
            (ServerFrame::Mark(name), Playout::Instant) => vec![(name.clone(), EchoCause::Played)],
            (ServerFrame::Mark(name), Playout::RealTime) => {
                if self.playing_until <= now && self.pending.is_empty() {
                    vec![(name.clone(), EchoCause::Played)]
                } else {
                    self.pending.push_back((self.playing_until.max(now), name.clone()));
                    Vec::new()
                }
            }
            (ServerFrame::Clear, _) => {
                self.dropped += self.playing_until.saturating_duration_since(now);
                self.playing_until = now;
                self.pending.drain(..).map(|(_, name)| (name, EchoCause::Cleared)).collect()
            }
            _ => Vec::new(),
        }
    }

    fn due(&mut self, now: Instant) -> Vec<String> {
        let mut due = Vec::new();
        while self.pending.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, name)) = self.pending.pop_front() {
                due.push(name);
            }
        }
        due
    }
}

/// Sends `name` back (or keeps it back, if cleared marks are held).
fn echo<D: Dialect>(
    dialect: &D,
    sequence: &AtomicU64,
    out: &mpsc::UnboundedSender<Message>,
    log: &mut Log,
    name: String,
    cause: EchoCause,
) {
    if cause == EchoCause::Cleared && log.hold_cleared {
        log.held.push(name);
        return;
    }
    let seq = sequence.fetch_add(1, Ordering::Relaxed);
    if out.send(Message::text(dialect.mark(seq, &name))).is_ok() {
        log.echoes.push(Echo { name, cause });
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The log stays usable even if a test thread panicked while holding it.
fn lock(log: &Mutex<Log>) -> MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
