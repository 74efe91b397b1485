//! `kraliki-bench --only media`: N concurrent calls through the media bridge, audio both ways,
//! timed from outside the server.
//!
//! Three processes: the server (this one, serving `/api/telephony/twilio/media`), a load
//! generator (`kraliki-bench phones`: Twilio's side of N Media Streams over real WebSockets,
//! each sending a 20 ms μ-law frame every 20 ms, playing what comes back in real time and
//! echoing the bridge's marks as Twilio does: once the audio before a mark would have played,
//! pending ones at once on `clear`) and an echo voice provider (`kraliki-bench echo`): an OpenAI
//! Realtime echo (μ-law passed through both ways) or a Gemini Live echo (8 kHz μ-law → 16 kHz
//! PCM in, 24 kHz PCM → 8 kHz μ-law out, so both resamplers run). Every call is a real Call
//! aggregate whose stream start and stop the bridge records.
//!
//! Latency is measured at the two ends, never inside the server: the load generator stamps
//! each frame as it sends it and each frame as it arrives, the echo stamps each frame as it
//! arrives and each reply as it sends it (one system-wide clock), so "phone → provider" spans
//! the server reading the frame, parsing, base64, resampling and writing it, and "provider →
//! phone" likewise the other way. A call is known at the echo by `bench-call-<n>` in its session
//! instructions (a campaign per call); frames are matched by order within a call. The same
//! load through a bare relay (in this process: the same sockets and frames, string copying, no
//! parsing, marks or events), measured the same way, is the baseline.
//!
//! Calls per core = calls / cores used by the server process alone while every call is up (the
//! other two report their CPU apart; on a small machine all three share the cores).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::routing::get;
use base64::Engine;
use chrono::Utc;
use futures::{SinkExt, StreamExt};
use kraliki_api::state::AppState;
use kraliki_commands::CommandContext;
use kraliki_domain::call::{Call, CallCommand, CallDirection};
use kraliki_domain::campaign::VoiceProvider;
use kraliki_voice::telephony::twilio_media::{
    Connected, TwilioInbound, TwilioMark, TwilioMedia, TwilioOutbound, TwilioStart, TwilioStop,
};
use kraliki_voice::telephony::{MediaFormat, Track};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Names a call in its provider session's instructions: `bench-call-<n>`.
const CALL_TAG: &str = "bench-call-";

/// μ-law bytes a second: how fast the phone plays what it is sent.
const ULAW_PER_SECOND: f64 = 8_000.0;

/// Nanoseconds on the system-wide clock (the two measuring processes share it).
fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or_default()
}

/// The call number after `bench-call-` in a session's first message.
fn call_number(text: &str) -> Option<u64> {
    let at = text.find(CALL_TAG)? + CALL_TAG.len();
    let digits: String = text[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// What one end saw of one call's frames, in order.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct FrameTimes {
    /// When each frame from the other end arrived.
    pub received_ns: Vec<u64>,
    /// When each frame to the other end was sent.
    pub sent_ns: Vec<u64>,
}

// ---------------------------------------------------------------------------------------
// The echo provider (its own process).

#[derive(Default)]
struct EchoLog {
    calls: Mutex<HashMap<u64, FrameTimes>>,
    open: AtomicUsize,
}

/// Counts an open provider session while it lives.
struct Open(Arc<EchoLog>);

impl Open {
    fn new(log: &Arc<EchoLog>) -> Self {
        log.open.fetch_add(1, Ordering::SeqCst);
        Self(log.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

fn keep(log: &EchoLog, call: Option<u64>, times: FrameTimes) {
    if let (Some(call), Ok(mut calls)) = (call, log.calls.lock()) {
        calls.insert(call, times);
    }
}

async fn openai_echo(mut socket: WebSocket, log: Arc<EchoLog>) {
    let _open = Open::new(&log);
    let (mut call, mut times) = (None, FrameTimes::default());
    while let Some(Ok(message)) = socket.recv().await {
        let Message::Text(text) = message else { continue };
        let at = now_ns();
        let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
        let (reply, audio) = match v["type"].as_str() {
            Some("session.update") => {
                call = call.or_else(|| call_number(&text));
                (json!({"type": "session.updated", "event_id": "e", "session": v["session"]}), false)
            }
            Some("input_audio_buffer.append") => {
                times.received_ns.push(at);
                (
                    json!({"type": "response.output_audio.delta", "event_id": "e", "response_id": "r",
                        "item_id": "i", "output_index": 0, "content_index": 0, "delta": v["audio"]}),
                    true,
                )
            }
            _ => continue,
        };
        let reply = reply.to_string();
        if audio {
            times.sent_ns.push(now_ns());
        }
        if socket.send(Message::Text(reply.into())).await.is_err() {
            break;
        }
    }
    keep(&log, call, times);
}

async fn gemini_echo(mut socket: WebSocket, log: Arc<EchoLog>) {
    let _open = Open::new(&log);
    // 20 ms of a 24 kHz tone, as PCM16 LE: what a model answers with.
    let pcm: Vec<u8> = (0..480)
        .flat_map(|i| {
            (((i as f64 * 440.0 * std::f64::consts::TAU / 24_000.0).sin() * 8000.0) as i16).to_le_bytes()
        })
        .collect();
    let audio = json!({"serverContent": {"modelTurn": {"parts": [{"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": B64.encode(pcm)}}]}}}).to_string();
    let (mut call, mut times) = (None, FrameTimes::default());
    while let Some(Ok(message)) = socket.recv().await {
        let text = match message {
            Message::Text(t) => t.to_string(),
            Message::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
            _ => continue,
        };
        let at = now_ns();
        let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
        let reply = if v.get("setup").is_some() {
            call = call.or_else(|| call_number(&text));
            json!({"setupComplete": {}}).to_string()
        } else if v.get("realtimeInput").is_some() {
            times.received_ns.push(at);
            times.sent_ns.push(now_ns());
            audio.clone()
        } else {
            continue;
        };
        if socket.send(Message::Text(reply.into())).await.is_err() {
            break;
        }
    }
    keep(&log, call, times);
}

/// `kraliki-bench echo`: serves both echo providers on a free port and prints it; then, for
/// each `dump` line on stdin, waits until no session is open and prints what every call's
/// frames did as one JSON line (and forgets it).
pub async fn serve_echo() -> anyhow::Result<()> {
    let log = Arc::new(EchoLog::default());
    let (openai, gemini) = (log.clone(), log.clone());
    let echo = axum::Router::new()
        .route(
            "/v1/realtime",
            get(move |ws: WebSocketUpgrade| {
                let log = openai.clone();
                async move { ws.read_buffer_size(8192).on_upgrade(move |s| openai_echo(s, log)) }
            }),
        )
        .route(
            "/gemini",
            get(move |ws: WebSocketUpgrade| {
                let log = gemini.clone();
                async move { ws.read_buffer_size(8192).on_upgrade(move |s| gemini_echo(s, log)) }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, echo).await });
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(tokio::io::stdin()));
    while let Some(line) = lines.next_line().await? {
        if line.trim() != "dump" {
            continue;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while log.open.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let calls = log.calls.lock().map(|mut c| std::mem::take(&mut *c)).unwrap_or_default();
        let open = log.open.load(Ordering::SeqCst);
        println!("{}", serde_json::to_string(&json!({"open": open, "calls": calls}))?);
        std::io::stdout().flush()?;
    }
    Ok(())
}

/// The echo provider process, seen from the benchmark.
pub struct Echo {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl Echo {
    pub fn start() -> anyhow::Result<Self> {
        let mut child = std::process::Command::new(std::env::current_exe()?)
            .arg("echo")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().context("the echo provider has no stdout")?;
        let mut stdout = std::io::BufReader::new(stdout);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let addr = line.trim().parse().map_err(|_| anyhow::anyhow!("the echo provider said {line:?}"))?;
        Ok(Self { child, addr, stdout })
    }

    /// Points the voice providers at the echo (before the server starts).
    pub fn configure(&self, settings: &mut kraliki_api::Settings) {
        settings.providers.openai_api_key = Some(SecretString::from("bench"));
        settings.providers.openai_realtime_url = Some(self.openai_url());
        settings.providers.gemini_api_key = Some(SecretString::from("bench"));
        settings.providers.gemini_live_url = Some(format!("ws://{}/gemini", self.addr));
    }

    fn openai_url(&self) -> String {
        format!("ws://{}/v1/realtime", self.addr)
    }

    /// Every call's frames as the echo saw them since the last dump, once no session is open.
    fn dump(&mut self) -> anyhow::Result<HashMap<u64, FrameTimes>> {
        #[derive(Deserialize)]
        struct Dump {
            open: usize,
            calls: HashMap<u64, FrameTimes>,
        }
        let stdin = self.child.stdin.as_mut().context("the echo provider has no stdin")?;
        stdin.write_all(b"dump\n")?;
        stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        let dump: Dump = serde_json::from_str(&line).context("the echo provider's figures")?;
        if dump.open > 0 {
            anyhow::bail!("{} provider sessions were still open after 30 s", dump.open);
        }
        Ok(dump.calls)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// The bare relay (in the server's process, so its CPU is measured like the bridge's).

/// Relays running now.
static RELAYS: AtomicUsize = AtomicUsize::new(0);

/// The value of the first `"key":"…"` string in a JSON text (base64 and ids only: no escapes).
fn json_str<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let at = text.find(key)? + key.len();
    let rest = text[at..].trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
    Some(&rest[..rest.find('"')?])
}

/// The baseline: the least a bridge can do with the same sockets and frames. One task per call
/// copies the phone's payload into an OpenAI `append` and the echo's `delta` into a Twilio
/// `media`, with string search instead of JSON parsing, and no marks, events or bookkeeping.
async fn relay(mut phone: WebSocket, echo_url: String) {
    use tokio_tungstenite::tungstenite::Message as Ws;
    RELAYS.fetch_add(1, Ordering::SeqCst);
    // The phone's `start` names the stream and, for the echo, the call.
    let mut stream_sid = String::new();
    let mut call = String::new();
    while let Some(Ok(Message::Text(text))) = phone.recv().await {
        if text.contains("\"event\":\"start\"") {
            stream_sid = json_str(&text, "\"streamSid\"").unwrap_or_default().to_owned();
            call = json_str(&text, "\"bench_call\"").unwrap_or_default().to_owned();
            break;
        }
    }
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(kraliki_voice::ai::MEDIA_READ_BUFFER);
    if let Ok((mut echo, _)) =
        tokio_tungstenite::connect_async_with_config(echo_url.as_str(), Some(config), true).await
    {
        let hello =
            json!({"type": "session.update", "session": {"instructions": format!("{CALL_TAG}{call}")}});
        let mut open = echo.send(Ws::text(hello.to_string())).await.is_ok();
        while open {
            tokio::select! {
                message = phone.recv() => {
                    let Some(Ok(Message::Text(text))) = message else { break };
                    if text.contains("\"event\":\"media\"") {
                        let Some(payload) = json_str(&text, "\"payload\"") else { continue };
                        let append = format!(r#"{{"type":"input_audio_buffer.append","audio":"{payload}"}}"#);
                        open = echo.send(Ws::text(append)).await.is_ok();
                    } else if text.contains("\"event\":\"stop\"") {
                        break;
                    }
                }
                message = echo.next() => {
                    let Some(Ok(Ws::Text(text))) = message else { break };
                    let Some(delta) = json_str(&text, "\"delta\"") else { continue };
                    let media = format!(r#"{{"event":"media","streamSid":"{stream_sid}","media":{{"payload":"{delta}"}}}}"#);
                    open = phone.send(Message::Text(media.into())).await.is_ok();
                }
            }
        }
        let _ = echo.close(None).await;
    }
    RELAYS.fetch_sub(1, Ordering::SeqCst);
}

async fn start_relay(echo_url: String) -> anyhow::Result<std::net::SocketAddr> {
    let app = axum::Router::new().route(
        "/relay",
        get(move |ws: WebSocketUpgrade| {
            let echo_url = echo_url.clone();
            async move {
                ws.read_buffer_size(kraliki_voice::ai::MEDIA_READ_BUFFER)
                    .on_upgrade(move |socket| relay(socket, echo_url))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

// ---------------------------------------------------------------------------------------
// The load generator (its own process).

#[derive(Debug, Serialize, Deserialize)]
pub struct Leg {
    /// The call's number at the echo.
    pub number: u64,
    pub call_sid: String,
    pub parameters: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PhoneSpec {
    pub url: String,
    pub seconds: u64,
    /// The audio comes back as sent (μ-law passed through): check each frame's number.
    pub check_order: bool,
    pub legs: Vec<Leg>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct LegFigures {
    pub number: u64,
    pub times: FrameTimes,
    /// Ticks that fired more than a frame late (the generator itself fell behind).
    pub late: u64,
    pub marks_received: u64,
    pub marks_echoed: u64,
    /// Frames that came back out of order (only counted with `check_order`).
    pub out_of_order: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PhoneFigures {
    pub failed: u64,
    pub legs: Vec<LegFigures>,
}

/// Twilio's playback queue as far as marks go: audio plays at 8,000 bytes a second; a mark
/// comes back once what was sent before it has played; `clear` drops the rest and returns the
/// pending marks at once.
struct Playout {
    playing_until: Instant,
    pending: VecDeque<(Instant, String)>,
}

impl Playout {
    fn audio(&mut self, bytes: usize, now: Instant) {
        self.playing_until =
            self.playing_until.max(now) + Duration::from_secs_f64(bytes as f64 / ULAW_PER_SECOND);
    }

    /// A mark to send back now, or `None` (kept until its audio has played).
    fn mark(&mut self, name: String, now: Instant) -> Option<String> {
        if self.pending.is_empty() && self.playing_until <= now {
            return Some(name);
        }
        self.pending.push_back((self.playing_until.max(now), name));
        None
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

    fn clear(&mut self, now: Instant) -> Vec<String> {
        self.playing_until = now;
        self.pending.drain(..).map(|(_, name)| name).collect()
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// One phone leg: Twilio's side of a Media Stream, over a real WebSocket.
async fn leg(
    url: String,
    leg: Leg,
    seconds: u64,
    check_order: bool,
    index: usize,
) -> anyhow::Result<LegFigures> {
    use tokio_tungstenite::tungstenite::Message as Ws;
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(kraliki_voice::ai::MEDIA_READ_BUFFER);
    let (socket, _) = tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true).await?;
    let (mut tx, mut rx) = socket.split();
    let stream_sid = format!("MZ{index:032}");
    tx.send(Ws::text(
        TwilioInbound::Connected(Connected { protocol: "Call".into(), version: "1.0.0".into() }).to_json(),
    ))
    .await?;
    let start = TwilioInbound::Start(TwilioStart {
        sequence_number: 1,
        stream_sid: stream_sid.clone(),
        account_sid: "AC0".into(),
        call_sid: leg.call_sid.clone(),
        tracks: vec!["inbound".into()],
        custom_parameters: leg.parameters,
        media_format: MediaFormat { encoding: "audio/x-mulaw".into(), sample_rate: 8000, channels: 1 },
    });
    tx.send(Ws::text(start.to_json())).await?;
    let mut figures = LegFigures { number: leg.number, ..LegFigures::default() };
    let mut playout = Playout { playing_until: Instant::now(), pending: VecDeque::new() };
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut seq = 1u64;
    let mut marks = Vec::new();
    loop {
        let due = playout.pending.front().map(|(at, _)| *at);
        tokio::select! {
            tick = ticks.tick() => {
                if Instant::now() >= end {
                    break;
                }
                if tick.elapsed() > Duration::from_millis(20) {
                    figures.late += 1;
                }
                let frame = figures.times.sent_ns.len() as u64;
                let mut payload = vec![0xffu8; 160];
                payload[..2].copy_from_slice(&((frame % 60_000) as u16).to_be_bytes());
                seq += 1;
                let media = TwilioInbound::Media(TwilioMedia {
                    sequence_number: seq, stream_sid: stream_sid.clone(), track: Track::Inbound,
                    chunk: frame + 1, timestamp_ms: frame * 20, payload,
                })
                .to_json();
                figures.times.sent_ns.push(now_ns());
                tx.send(Ws::text(media)).await?;
            }
            () = sleep_until_opt(due) => marks.extend(playout.due(Instant::now())),
            message = rx.next() => {
                let at = now_ns();
                let Some(Ok(Ws::Text(text))) = message else {
                    if message.is_none() { break } else { continue }
                };
                let now = Instant::now();
                match TwilioOutbound::parse(&text) {
                    Ok(TwilioOutbound::Media { payload, .. }) => {
                        if check_order && payload.len() >= 2 {
                            let expected = (figures.times.received_ns.len() as u64 % 60_000) as u16;
                            if u16::from_be_bytes([payload[0], payload[1]]) != expected {
                                figures.out_of_order += 1;
                            }
                        }
                        figures.times.received_ns.push(at);
                        playout.audio(payload.len(), now);
                    }
                    Ok(TwilioOutbound::Mark { name, .. }) => {
                        figures.marks_received += 1;
                        marks.extend(playout.mark(name, now));
                    }
                    Ok(TwilioOutbound::Clear { .. }) => marks.extend(playout.clear(now)),
                    Err(_) => {}
                }
            }
        }
        for name in marks.drain(..) {
            seq += 1;
            let mark = TwilioInbound::Mark(TwilioMark {
                sequence_number: seq,
                stream_sid: stream_sid.clone(),
                name,
            });
            tx.send(Ws::text(mark.to_json())).await?;
            figures.marks_echoed += 1;
        }
    }
    seq += 1;
    let stop =
        TwilioStop { sequence_number: seq, stream_sid, account_sid: "AC0".into(), call_sid: leg.call_sid };
    let _ = tx.send(Ws::text(TwilioInbound::Stop(stop).to_json())).await;
    let _ = tx.close().await;
    Ok(figures)
}

/// `kraliki-bench phones`: the load generator. Reads a [`PhoneSpec`] on stdin, runs every leg
/// at once in real time, prints [`PhoneFigures`] as JSON.
pub async fn serve_phones() -> anyhow::Result<()> {
    let spec: PhoneSpec = serde_json::from_reader(std::io::stdin())?;
    let (seconds, check) = (spec.seconds, spec.check_order);
    let tasks = spec
        .legs
        .into_iter()
        .enumerate()
        .map(|(i, l)| tokio::spawn(leg(spec.url.clone(), l, seconds, check, i)));
    let mut all = PhoneFigures::default();
    for result in futures::future::join_all(tasks).await {
        match result {
            Ok(Ok(f)) => all.legs.push(f),
            _ => all.failed += 1,
        }
    }
    println!("{}", serde_json::to_string(&all)?);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The measurement.

/// How long after the load generator starts every call is taken to be set up.
const WARM_UP: Duration = Duration::from_secs(2);

fn cpu_of(pid: u32) -> f64 {
    // utime + stime, in clock ticks (100 per second on Linux).
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let fields: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
            Some((fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?) / 100.0)
        })
        .unwrap_or(f64::NAN)
}

/// p50 and p99 in ms of nanosecond figures.
fn p50_p99(values: &mut [i64]) -> (f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    values.sort_unstable();
    let at = |p: f64| {
        let rank = ((p / 100.0) * (values.len() - 1) as f64).round() as usize;
        values[rank.min(values.len() - 1)] as f64 / 1e6
    };
    (at(50.0), at(99.0))
}

/// One mode's latencies, from the two ends' stamps.
#[derive(Default)]
struct Latencies {
    /// Phone frame sent → provider frame received.
    inbound: Vec<i64>,
    /// Provider frame sent → phone frame received.
    outbound: Vec<i64>,
    /// Phone frame sent → the echo's answer to it back at the phone.
    round_trip: Vec<i64>,
    /// Phone frames the provider never saw (in flight when the call ended) and the reverse.
    unmatched: u64,
    calls_missing: u64,
}

/// Latencies of the frames sent within `window` (ns on the shared clock; `None`: all).
fn latencies(
    phones: &PhoneFigures,
    echo: &HashMap<u64, FrameTimes>,
    window: Option<(u64, u64)>,
) -> Latencies {
    let mut l = Latencies::default();
    let within = |sent: u64| window.is_none_or(|(from, to)| (from..to).contains(&sent));
    for leg in &phones.legs {
        let Some(provider) = echo.get(&leg.number) else {
            l.calls_missing += 1;
            continue;
        };
        let phone = &leg.times;
        let diff = |a: &[u64], b: &[u64]| {
            a.iter()
                .zip(b)
                .filter(|(a, _)| within(**a))
                .map(|(a, b)| *b as i64 - *a as i64)
                .collect::<Vec<_>>()
        };
        l.inbound.extend(diff(&phone.sent_ns, &provider.received_ns));
        l.outbound.extend(diff(&provider.sent_ns, &phone.received_ns));
        l.round_trip.extend(diff(&phone.sent_ns, &phone.received_ns));
        l.unmatched += phone.sent_ns.len().abs_diff(provider.received_ns.len()) as u64
            + provider.sent_ns.len().abs_diff(phone.received_ns.len()) as u64;
    }
    l
}

/// What one mode measured: calls per server core, (p50, p99) ms each way while all ran.
struct ModeFigures {
    per_core: f64,
    inbound: (f64, f64),
    outbound: (f64, f64),
}

struct Mode {
    label: &'static str,
    provider: Option<VoiceProvider>,
    goal: &'static str,
}

pub async fn run(
    app: &kraliki_api::Application,
    calls: usize,
    seconds: u64,
    echo: &mut Echo,
) -> anyhow::Result<()> {
    let state = app.state();
    let tenant = Uuid::now_v7();
    let ctx = CommandContext::new(tenant.to_string(), "system:bench");
    let relay = start_relay(echo.openai_url()).await?;
    let modes = [
        Mode {
            label: "passthrough",
            provider: Some(VoiceProvider::Openai),
            goal: "goal >= 1,000 calls per core",
        },
        Mode {
            label: "resampling",
            provider: Some(VoiceProvider::Gemini),
            goal: "goal >= 300 calls per core",
        },
        Mode {
            label: "bare relay (baseline)",
            provider: None,
            goal: "the same sockets and frames, nothing else",
        },
    ];
    let mut results: Vec<ModeFigures> = Vec::new();
    for mode in &modes {
        let (url, legs, call_ids) = match mode.provider {
            Some(provider) => {
                let (legs, ids) = bench_calls(state, &ctx, tenant, mode.label, provider, calls).await?;
                (format!("ws://{}/api/telephony/twilio/media", app.addr()), legs, ids)
            }
            None => (
                format!("ws://{relay}/relay"),
                (0..calls as u64)
                    .map(|i| Leg {
                        number: i,
                        call_sid: format!("CArelay{i:026}"),
                        parameters: BTreeMap::from([("bench_call".to_owned(), i.to_string())]),
                    })
                    .collect(),
                Vec::new(),
            ),
        };
        let spec =
            PhoneSpec { url, seconds, check_order: mode.provider != Some(VoiceProvider::Gemini), legs };
        let out_path = std::env::temp_dir().join(format!(
            "kraliki-bench-phones-{}-{}.json",
            std::process::id(),
            &mode.label[..4]
        ));
        let mut phones = std::process::Command::new(std::env::current_exe()?)
            .arg("phones")
            .stdin(std::process::Stdio::piped())
            .stdout(std::fs::File::create(&out_path)?)
            .spawn()?;
        let phones_pid = phones.id();
        let (echo_pid, server_pid) = (echo.pid(), std::process::id());
        let streams = |event: &'static str| {
            let ids = call_ids.clone();
            async move {
                sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM events WHERE event_type = $1 AND aggregate_type = 'Call' AND aggregate_id = ANY($2)",
                )
                .bind(event)
                .bind(ids)
                .fetch_one(&state.pool)
                .await
                .unwrap_or(0)
            }
        };
        let up = || async {
            match mode.provider {
                Some(_) => streams("MediaStreamStarted").await as usize,
                None => RELAYS.load(Ordering::SeqCst),
            }
        };
        let cpu = || [cpu_of(server_pid), cpu_of(echo_pid), cpu_of(phones_pid)];
        let whole_before = cpu();
        let started = Instant::now();
        {
            let mut stdin = phones.stdin.take().context("the load generator has no stdin")?;
            stdin.write_all(&serde_json::to_vec(&spec)?)?;
        }
        // Concurrent calls cost what they cost while they run: CPU is measured over a window
        // after every call has been set up and before any ends (WARM_UP in, 1 s before the
        // end). (Setting a call up and ending it costs about 0.5 ms of server CPU a call.)
        let window = (started + WARM_UP, started + Duration::from_secs(seconds.saturating_sub(1)));
        // Latency percentiles cover the frames sent in the same window: while calls are still
        // being set up, frames wait for their bridge to connect its provider (reported apart).
        let mut steady_ns = None;
        let steady = if window.1 > window.0 + Duration::from_secs(1) {
            tokio::time::sleep_until(window.0.into()).await;
            while up().await < calls && Instant::now() < window.1 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let (before, at, from_ns) = (cpu(), Instant::now(), now_ns());
            tokio::time::sleep_until(window.1.into()).await;
            let (after, wall) = (cpu(), at.elapsed().as_secs_f64());
            steady_ns = Some((from_ns, now_ns()));
            Some([0, 1, 2].map(|i| (after[i] - before[i]) / wall))
        } else {
            None
        };
        // Sample the generator's CPU just before it exits.
        let mut phones_last = f64::NAN;
        while phones.try_wait()?.is_none() {
            let c = cpu_of(phones_pid);
            if c.is_finite() {
                phones_last = c;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let wall = started.elapsed().as_secs_f64();
        let whole = [
            (cpu_of(server_pid) - whole_before[0]) / wall,
            (cpu_of(echo_pid) - whole_before[1]) / wall,
            (phones_last - whole_before[2]) / wall,
        ];
        let [server_cores, echo_cores, phones_cores] = steady.unwrap_or(whole);
        phones.wait()?;
        let output = std::fs::read_to_string(&out_path)?;
        let _ = std::fs::remove_file(&out_path);
        let figures: PhoneFigures = output
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok())
            .ok_or_else(|| anyhow::anyhow!("no figures from the load generator: {output}"))?;

        // Every bridge (or relay) ends and records its stream's stop before the figures are
        // read, so none is left out.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let running = match mode.provider {
                Some(_) => calls.saturating_sub(streams("MediaStreamStopped").await as usize),
                None => RELAYS.load(Ordering::SeqCst),
            };
            if running == 0 {
                break;
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "{running} {} calls did not end within 60 s of their phones hanging up",
                    mode.label
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let provider_side = echo.dump()?;
        let mut l = latencies(&figures, &provider_side, steady_ns);
        let mut whole = latencies(&figures, &provider_side, None);

        let per_core = calls as f64 / server_cores.max(0.01);
        let sum = |f: fn(&LegFigures) -> u64| figures.legs.iter().map(f).sum::<u64>();
        println!(
            "media {}: {calls} calls x {seconds} s over WebSockets, {} failed; {} frames sent, {} back ({} sent late); marks {} received, {} echoed; while all ran the server used {server_cores:.2} cores (load generator {phones_cores:.2}, echo provider {echo_cores:.2}) -> {per_core:.0} calls per server core ({})",
            mode.label,
            figures.failed,
            sum(|l| l.times.sent_ns.len() as u64),
            sum(|l| l.times.received_ns.len() as u64),
            sum(|l| l.late),
            sum(|l| l.marks_received),
            sum(|l| l.marks_echoed),
            mode.goal,
        );
        let (inbound, outbound, round_trip) =
            (p50_p99(&mut l.inbound), p50_p99(&mut l.outbound), p50_p99(&mut l.round_trip));
        println!(
            "  per frame while all ran ({} frames), timed at the phone and the provider: phone -> provider p50 {:.3} ms p99 {:.3} ms; provider -> phone p50 {:.3} ms p99 {:.3} ms; round trip p50 {:.2} ms p99 {:.2} ms",
            l.inbound.len(), inbound.0, inbound.1, outbound.0, outbound.1, round_trip.0, round_trip.1,
        );
        let (all_in, all_out) = (p50_p99(&mut whole.inbound), p50_p99(&mut whole.outbound));
        println!(
            "  the whole run, set-up included: phone -> provider p99 {:.2} ms, provider -> phone p99 {:.2} ms; {} frames unmatched at hang-up, {} calls unseen by the provider{}",
            all_in.1, all_out.1, whole.unmatched, whole.calls_missing,
            if spec.check_order { format!(", {} frames out of order", sum(|l| l.out_of_order)) } else { String::new() },
        );
        results.push(ModeFigures { per_core, inbound, outbound });
    }
    if let [passthrough, resampling, relay] = &results[..] {
        for (label, bridge) in [("passthrough", passthrough), ("resampling", resampling)] {
            println!(
                "media {label} over the bare relay: {:.2} of its calls per core; latency added: phone -> provider p50 {:+.3} ms p99 {:+.3} ms, provider -> phone p50 {:+.3} ms p99 {:+.3} ms (goal p99 <= 2 ms)",
                bridge.per_core / relay.per_core,
                bridge.inbound.0 - relay.inbound.0,
                bridge.inbound.1 - relay.inbound.1,
                bridge.outbound.0 - relay.outbound.0,
                bridge.outbound.1 - relay.outbound.1,
            );
        }
    }
    Ok(())
}

/// `calls` initiated calls for `provider`, each in a campaign of its own whose instructions
/// name the call for the echo: the legs the phones dial, and the calls' ids.
async fn bench_calls(
    state: &AppState,
    ctx: &CommandContext,
    tenant: Uuid,
    label: &str,
    provider: VoiceProvider,
    calls: usize,
) -> anyhow::Result<(Vec<Leg>, Vec<String>)> {
    use kraliki_domain::campaign::{Campaign, CampaignCommand, CampaignOrigin, CampaignSettings};
    let mut legs = Vec::with_capacity(calls);
    let mut ids = Vec::with_capacity(calls);
    let mut last = None;
    for i in 0..calls as u64 {
        let campaign = Uuid::now_v7();
        let settings = CampaignSettings {
            name: format!("bench {label} {i}"),
            primary_provider: provider,
            instructions: Some(format!("{CALL_TAG}{i}")),
            ..CampaignSettings::default()
        };
        let create =
            CampaignCommand::CreateCampaign { settings, origin: CampaignOrigin::Blank, at: Utc::now() };
        let created = state
            .dispatcher
            .execute::<Campaign>(&campaign.to_string(), create, ctx)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        last = created.position.or(last);
        let target = kraliki_voice::calls::Target { tenant, campaign: Some(campaign), contact: None };
        let call_sid = format!("CA{}{i:026}", &label[..2]);
        let call_id = kraliki_voice::calls::call_uuid("twilio", &call_sid);
        let initiate = CallCommand::InitiateCall {
            direction: CallDirection::Inbound,
            provider: "twilio".into(),
            provider_call_id: Some(call_sid.clone()),
            from: "+14155550123".into(),
            to: "+14155550100".into(),
            campaign_id: Some(campaign),
            contact_id: None,
            at: Utc::now(),
        };
        state
            .dispatcher
            .execute::<Call>(&call_id.to_string(), initiate, ctx)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let parameters = state
            .calls
            .stream_parameters(call_id, &target)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        legs.push(Leg { number: i, call_sid, parameters });
        ids.push(call_id.to_string());
    }
    // The media setup reads the campaigns' settings from their read model.
    state
        .wait_for(kraliki_projections::campaign::NAME, last)
        .await
        .map_err(|e| anyhow::anyhow!("{:?}", e.code))?;
    Ok((legs, ids))
}
