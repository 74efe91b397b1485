//! The call media bridge: a telephony media stream (Twilio or Telnyx) on one side, a voice-AI
//! session on the other, every step recorded as an event of the call.
//!
//! The bridge works on text frames through [`PhoneSocket`], so the HTTP layer (axum's
//! WebSocket) and the tests (plain channels, [`ChannelPhone`]) drive it alike. One task per
//! call runs it: it reads the phone and the agent session itself and writes to both directly,
//! so a frame crosses no channel or task on its way. It:
//! - parses the phone's frames (Telnyx frames are put back in order), answers the `start` by
//!   resolving the call ([`CallSetup`]) and connecting the campaign's provider;
//! - passes caller audio to the agent and the agent's audio to the phone, each chunk followed
//!   by a mark so that the audio actually played is known;
//! - on barge-in (caller speech while the agent talks) clears the phone's queue and tells the
//!   provider how much of its item was heard (`truncate` at the last played mark);
//! - records DTMF, final transcript segments, AI function calls and their results, transfer
//!   requests, the stream's start and stop, and the end: completed with a disposition, or
//!   failed with the reason when the provider drops, never a panic.

use std::collections::BTreeMap;
use std::future::Future;
use std::ops::Deref;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::BoxFuture;
use kraliki_commands::{CommandContext, DispatchError, Dispatcher};
use kraliki_domain::call::{Call, CallCommand, CallError, CallOutcome, Speaker as CallSpeaker};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::ai::{AgentEvent, AgentSession, Speaker, ToolSpec};
use crate::telephony::telnyx_media::{MediaReorderer, OrderedMedia, TelnyxInbound, TelnyxOutbound};
use crate::telephony::twilio_media::{TwilioInbound, TwilioOutbound};
use crate::telephony::Track;

/// How long a new media socket may stay silent before its `start` frame.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Agent audio between two marks, at most: the precision of "what the caller heard".
pub const MARK_EVERY_MS: u32 = 100;

/// Which provider's media-stream dialect the phone side speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Twilio,
    Telnyx,
}

/// The phone's media socket as the bridge drives it: text frames in, text frames out.
pub trait PhoneSocket: Send {
    type Text: Deref<Target = str> + Send;

    /// The next text frame; `None` once the socket is closed. Must be cancel-safe: it sits in a
    /// `tokio::select!` next to the agent session.
    fn recv(&mut self) -> impl Future<Output = Option<Self::Text>> + Send;

    /// Queues a frame; [`flush`](Self::flush) sends what is queued. `Err` means the phone is
    /// gone.
    fn feed(&mut self, text: String) -> impl Future<Output = Result<(), ()>> + Send;

    fn flush(&mut self) -> impl Future<Output = Result<(), ()>> + Send;
}

/// A [`PhoneSocket`] over two channels, for tests and in-process drivers.
pub struct ChannelPhone {
    pub incoming: mpsc::Receiver<String>,
    pub outgoing: mpsc::Sender<String>,
}

impl PhoneSocket for ChannelPhone {
    type Text = String;

    async fn recv(&mut self) -> Option<String> {
        self.incoming.recv().await
    }

    async fn feed(&mut self, text: String) -> Result<(), ()> {
        self.outgoing.send(text).await.map_err(|_| ())
    }

    async fn flush(&mut self) -> Result<(), ()> {
        Ok(())
    }
}

/// What the phone's `start` frame said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStart {
    pub stream_id: String,
    /// Twilio `CallSid` / Telnyx `call_control_id`.
    pub provider_call_id: String,
    /// Twilio `<Parameter>`s / Telnyx custom parameters.
    pub parameters: BTreeMap<String, String>,
}

/// Moves the call into the named human queue at its telephony provider (Twilio `<Enqueue>`,
/// Telnyx `enqueue`); `Err` says why it could not.
pub type TransferFn = Box<dyn FnOnce(String) -> BoxFuture<'static, Result<(), String>> + Send>;

/// What the HTTP layer decided for this stream: which call it is, whose, and the agent.
pub struct CallSetup {
    pub call_id: Uuid,
    pub tenant_id: String,
    pub contact: Option<Value>,
    pub session: Box<dyn AgentSession>,
    /// How a `transfer_to_queue` is carried out; `None` fails such a transfer.
    pub transfer: Option<TransferFn>,
}

/// Messages of the phone side, in order.
#[derive(Debug, Clone, PartialEq)]
enum Phone {
    Start(StreamStart),
    Media(Vec<u8>),
    Dtmf(String),
    Mark(String),
    Stop,
    Nothing,
}

struct Wire {
    dialect: Dialect,
    stream_id: String,
    reorder: MediaReorderer,
}

impl Wire {
    fn new(dialect: Dialect) -> Self {
        Self { dialect, stream_id: String::new(), reorder: MediaReorderer::new(16) }
    }

    fn parse(&mut self, text: &str) -> Result<Vec<Phone>, String> {
        match self.dialect {
            Dialect::Twilio => Ok(vec![match TwilioInbound::parse(text).map_err(|e| e.to_string())? {
                TwilioInbound::Start(s) => {
                    self.stream_id = s.stream_sid.clone();
                    Phone::Start(StreamStart {
                        stream_id: s.stream_sid,
                        provider_call_id: s.call_sid,
                        parameters: s.custom_parameters,
                    })
                }
                TwilioInbound::Media(m) if m.track == Track::Inbound => Phone::Media(m.payload),
                TwilioInbound::Dtmf(d) => Phone::Dtmf(d.digit),
                TwilioInbound::Mark(m) => Phone::Mark(m.name),
                TwilioInbound::Stop(_) => Phone::Stop,
                _ => Phone::Nothing,
            }]),
            Dialect::Telnyx => match TelnyxInbound::parse(text).map_err(|e| e.to_string())? {
                TelnyxInbound::Start(s) => {
                    self.stream_id = s.stream_id.clone();
                    Ok(vec![Phone::Start(StreamStart {
                        stream_id: s.stream_id,
                        provider_call_id: s.call_control_id,
                        parameters: s.custom_parameters,
                    })])
                }
                TelnyxInbound::Media(m) if m.track == Track::Inbound => Ok(self
                    .reorder
                    .push(m)
                    .into_iter()
                    .filter_map(|o| match o {
                        OrderedMedia::Frame(f) => Some(Phone::Media(f.payload)),
                        // A lost frame is 20 ms of silence to the agent.
                        OrderedMedia::Gap { count, .. } => {
                            Some(Phone::Media(vec![0xff; 160 * count.min(50) as usize]))
                        }
                        OrderedMedia::Dropped { .. } => None,
                    })
                    .collect()),
                TelnyxInbound::Dtmf(d) => Ok(vec![Phone::Dtmf(d.digit)]),
                TelnyxInbound::Mark(m) => Ok(vec![Phone::Mark(m.name)]),
                TelnyxInbound::Stop(_) => Ok(vec![Phone::Stop]),
                TelnyxInbound::Error(e) => Err(format!("telnyx stream error: {e:?}")),
                _ => Ok(vec![Phone::Nothing]),
            },
        }
    }

    fn media(&self, ulaw: &[u8]) -> String {
        match self.dialect {
            Dialect::Twilio => TwilioOutbound::media(self.stream_id.clone(), ulaw.to_vec()).to_json(),
            Dialect::Telnyx => TelnyxOutbound::Media { payload: ulaw.to_vec() }.to_json(),
        }
    }

    fn mark(&self, name: &str) -> String {
        match self.dialect {
            Dialect::Twilio => TwilioOutbound::mark(self.stream_id.clone(), name).to_json(),
            Dialect::Telnyx => TelnyxOutbound::Mark { name: name.to_owned() }.to_json(),
        }
    }

    fn clear(&self) -> String {
        match self.dialect {
            Dialect::Twilio => TwilioOutbound::clear(self.stream_id.clone()).to_json(),
            Dialect::Telnyx => TelnyxOutbound::Clear.to_json(),
        }
    }
}

/// The functions every agent may call.
pub fn call_tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "transfer_to_queue".into(),
            description: "Transfer the caller to a human agent queue.".into(),
            parameters: json!({"type": "object", "properties": {
                "queue": {"type": "string", "description": "Queue name or id"},
                "reason": {"type": "string"},
                "summary": {"type": "string", "description": "What the human agent should know about the caller and the call so far"}},
                "required": ["queue"]}),
        },
        ToolSpec {
            name: "end_call".into(),
            description: "End the call, with its outcome (disposition) such as sale, not_interested, callback_requested, wrong_number.".into(),
            parameters: json!({"type": "object", "properties": {
                "disposition": {"type": "string"}, "summary": {"type": "string"}}, "required": ["disposition"]}),
        },
        ToolSpec {
            name: "schedule_callback".into(),
            description: "Schedule a call back to this contact at a given time (RFC 3339).".into(),
            parameters: json!({"type": "object", "properties": {
                "at": {"type": "string", "format": "date-time"}, "note": {"type": "string"}}, "required": ["at"]}),
        },
        ToolSpec {
            name: "lookup_contact".into(),
            description: "Look up what is known about the person on the call.".into(),
            parameters: json!({"type": "object", "properties": {}}),
        },
    ]
}

/// How the call ended, as the bridge saw it.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    /// The agent ended it (`end_call`) or the phone hung up.
    Completed {
        disposition: Option<String>,
    },
    Transferred {
        target: String,
    },
    Failed {
        reason: String,
    },
}

/// Per-frame figures for the benchmark: how long a frame spent inside the bridge.
#[derive(Debug, Default, Clone)]
pub struct BridgeStats {
    pub frames_in: u64,
    pub frames_out: u64,
    /// Microseconds from reading a phone frame to handing its audio to the agent.
    pub inbound_us: Vec<u32>,
    /// Microseconds from an agent audio event to its phone frame being written.
    pub outbound_us: Vec<u32>,
}

pub struct Bridge {
    dispatcher: Dispatcher,
    /// Record per-frame latencies (benchmarks only).
    pub measure: bool,
}

/// Bookkeeping of the agent item being played: audio queued to the phone, where its last mark
/// was put, and what the phone reported played (ms of the item's audio).
struct ItemAudio {
    id: String,
    /// When its first audio went to the phone (ms on the call's clock).
    started_ms: u64,
    queued_ms: u32,
    marked_ms: Option<u32>,
    played_ms: u32,
    /// Audio was queued since the last barge-in.
    playing: bool,
    /// The caller cut it short: only `played_ms` of it was heard.
    interrupted: bool,
}

struct Live {
    call_id: Uuid,
    ctx: CommandContext,
    started: Instant,
    contact: Option<Value>,
    /// The agent item whose audio the phone plays now.
    item: Option<ItemAudio>,
    /// The caller's current turn on the call's clock (ms): from the provider's speech start to
    /// its speech stop, for the timing of the caller's transcript.
    caller_turn: Option<(u64, Option<u64>)>,
}

impl Bridge {
    pub fn new(dispatcher: Dispatcher) -> Self {
        Self { dispatcher, measure: false }
    }

    async fn record(&self, live: &Live, command: CallCommand) {
        let result = self.dispatcher.execute::<Call>(&live.call_id.to_string(), command, &live.ctx).await;
        match result {
            Ok(_) | Err(DispatchError::Rejected(CallError::Ended)) => {}
            Err(e) => tracing::warn!(call = %live.call_id, error = %e, "could not record a call step"),
        }
    }

    /// Runs one media stream to its end: `phone` is the media socket (the caller closes it
    /// afterwards); `setup` resolves the call at `start`.
    pub async fn run<P, F, Fut>(
        &self,
        dialect: Dialect,
        phone: &mut P,
        setup: F,
    ) -> Result<(Ending, BridgeStats), String>
    where
        P: PhoneSocket,
        F: FnOnce(StreamStart) -> Fut,
        Fut: std::future::Future<Output = Result<CallSetup, String>>,
    {
        let mut wire = Wire::new(dialect);
        let mut stats = BridgeStats::default();
        // Until `start`: only `connected` frames may come first.
        let start = loop {
            let text = match tokio::time::timeout(START_TIMEOUT, phone.recv()).await {
                Ok(Some(text)) => text,
                Ok(None) => return Err("the stream closed before start".into()),
                Err(_) => return Err("no start frame in time".into()),
            };
            match wire.parse(&text) {
                Ok(frames) => {
                    if let Some(Phone::Start(s)) = frames.into_iter().find(|f| matches!(f, Phone::Start(_))) {
                        break s;
                    }
                }
                Err(e) => tracing::debug!(error = %e, "unreadable frame before start"),
            }
        };
        let stream_id = start.stream_id.clone();
        let CallSetup { call_id, tenant_id, contact, mut session, transfer } = setup(start).await?;
        let mut live = Live {
            call_id,
            ctx: CommandContext::new(tenant_id, "system:media-bridge"),
            started: Instant::now(),
            contact,
            item: None,
            caller_turn: None,
        };
        // Both dialects stream G.711 μ-law at 8 kHz.
        let codec = "PCMU";
        self.record(
            &live,
            CallCommand::StartMediaStream {
                stream_id: stream_id.clone(),
                codec: codec.into(),
                sample_rate: 8000,
                at: Utc::now(),
            },
        )
        .await;

        let ending = loop {
            tokio::select! {
                frame = phone.recv() => {
                    let Some(text) = frame else {
                        break Ending::Completed { disposition: None };
                    };
                    let read_at = Instant::now();
                    let frames = match wire.parse(&text) {
                        Ok(f) => f,
                        Err(e) => {
                            // A malformed frame is logged and skipped; the call goes on.
                            tracing::debug!(call = %live.call_id, error = %e, "unreadable media frame");
                            continue;
                        }
                    };
                    let mut stop = false;
                    for frame in frames {
                        match frame {
                            Phone::Media(audio) => {
                                stats.frames_in += 1;
                                if let Err(e) = session.send_audio(&audio).await {
                                    tracing::debug!(call = %live.call_id, error = %e, "agent refused audio");
                                }
                                if self.measure {
                                    stats.inbound_us.push(read_at.elapsed().as_micros().min(u32::MAX as u128) as u32);
                                }
                            }
                            Phone::Dtmf(digits) => {
                                self.record(&live, CallCommand::ReceiveDtmf { digits, at: Utc::now() }).await;
                            }
                            Phone::Mark(name) => {
                                if let Some((item, ms)) = name.rsplit_once('@') {
                                    if let (Ok(ms), Some(current)) = (ms.parse::<u32>(), live.item.as_mut()) {
                                        // After a barge-in what was heard is frozen at what
                                        // the truncate said: the marks the phone sends back
                                        // because of `clear` name audio that was dropped.
                                        if current.id == item && !current.interrupted {
                                            current.played_ms = ms;
                                        }
                                    }
                                }
                            }
                            Phone::Stop => stop = true,
                            Phone::Start(_) | Phone::Nothing => {}
                        }
                    }
                    if stop {
                        break Ending::Completed { disposition: None };
                    }
                }
                event = session.next_event() => {
                    let Some(event) = event else {
                        break Ending::Failed { reason: "the voice provider ended the session".into() };
                    };
                    let event_at = Instant::now();
                    match event {
                        AgentEvent::AudioOut { ulaw_8k, item_id } => {
                            let id = item_id.unwrap_or_else(|| "agent".to_owned());
                            let current = match &mut live.item {
                                Some(current) if current.id == id => current,
                                slot => slot.insert(ItemAudio {
                                    id,
                                    started_ms: live.started.elapsed().as_millis() as u64,
                                    queued_ms: 0,
                                    marked_ms: None,
                                    played_ms: 0,
                                    playing: false,
                                    interrupted: false,
                                }),
                            };
                            current.queued_ms += (ulaw_8k.len() / 8) as u32;
                            current.playing = true;
                            // A mark at most every MARK_EVERY_MS of an item's audio (and on its
                            // first chunk): what was played is known to that precision.
                            let mark = match current.marked_ms {
                                Some(at) if current.queued_ms < at + MARK_EVERY_MS => None,
                                _ => {
                                    current.marked_ms = Some(current.queued_ms);
                                    Some(format!("{}@{}", current.id, current.queued_ms))
                                }
                            };
                            stats.frames_out += 1;
                            // The audio and its mark leave in one write.
                            let mut sent = phone.feed(wire.media(&ulaw_8k)).await;
                            if let Some(mark) = mark {
                                if sent.is_ok() {
                                    sent = phone.feed(wire.mark(&mark)).await;
                                }
                            }
                            if sent.is_err() || phone.flush().await.is_err() {
                                break Ending::Completed { disposition: None };
                            }
                            if self.measure {
                                stats.outbound_us.push(event_at.elapsed().as_micros().min(u32::MAX as u128) as u32);
                            }
                        }
                        AgentEvent::SpeechStopped => {
                            let now = live.started.elapsed().as_millis() as u64;
                            if let Some((_, end @ None)) = &mut live.caller_turn {
                                *end = Some(now);
                            }
                        }
                        AgentEvent::SpeechStarted | AgentEvent::Interrupted => {
                            live.caller_turn = Some((live.started.elapsed().as_millis() as u64, None));
                            // Barge-in: drop what the phone still has queued and tell the
                            // provider what the caller actually heard.
                            if let Some(current) = live.item.as_mut().filter(|c| c.playing) {
                                current.playing = false;
                                current.interrupted = true;
                                if phone.feed(wire.clear()).await.is_ok() {
                                    let _ = phone.flush().await;
                                }
                                if let Err(e) = session.truncate(&current.id, current.played_ms).await {
                                    tracing::debug!(call = %live.call_id, error = %e, "truncate refused");
                                }
                            }
                        }
                        AgentEvent::Transcript { speaker, text, is_final: true } if !text.trim().is_empty() => {
                            // Timing on the call's clock: the caller's turn as the provider's
                            // voice detection saw it; the agent's item as the phone played it.
                            // Without either, the moment the transcript arrived.
                            let now = live.started.elapsed().as_millis() as u64;
                            let (speaker, start_ms, end_ms) = match speaker {
                                Speaker::Caller => {
                                    let (start, end) = live.caller_turn.take().unwrap_or((now, None));
                                    (CallSpeaker::Caller, start, end.unwrap_or(now).max(start))
                                }
                                Speaker::Agent => match &live.item {
                                    Some(item) => {
                                        let heard = if item.interrupted { item.played_ms } else { item.queued_ms };
                                        (CallSpeaker::Agent, item.started_ms, item.started_ms + u64::from(heard))
                                    }
                                    None => (CallSpeaker::Agent, now, now),
                                },
                            };
                            self.record(&live, CallCommand::AddTranscriptSegment { speaker, text, start_ms, end_ms, at: Utc::now() }).await;
                        }
                        AgentEvent::ToolCall { call_id, name, arguments } => {
                            let (result, ending) = self.function(&live, &name, &arguments).await;
                            self.record(&live, CallCommand::RecordFunctionCall {
                                name: name.clone(), call_id: call_id.clone(), arguments, result: result.clone(), at: Utc::now(),
                            }).await;
                            if let Some(ending) = ending {
                                break ending;
                            }
                            if let Err(e) = session.send_tool_result(&call_id, result).await {
                                tracing::debug!(call = %live.call_id, error = %e, "tool result refused");
                            }
                        }
                        AgentEvent::Closed { reason } => break Ending::Failed { reason: format!("voice provider closed: {reason}") },
                        AgentEvent::Error { code, message } => {
                            tracing::info!(call = %live.call_id, code, message, "voice provider error");
                        }
                        _ => {}
                    }
                }
            }
        };
        let _ = session.close().await;
        self.record(&live, CallCommand::StopMediaStream { stream_id, at: Utc::now() }).await;
        let at = Utc::now();
        match &ending {
            Ending::Completed { disposition } => {
                self.record(
                    &live,
                    CallCommand::CompleteCall {
                        outcome: CallOutcome::Connected,
                        disposition: disposition.clone(),
                        hangup_cause: None,
                        at,
                    },
                )
                .await;
            }
            Ending::Transferred { target } => {
                let moved = match transfer {
                    Some(transfer) => transfer(target.clone()).await,
                    None => Err("this call's provider cannot transfer it".to_owned()),
                };
                let command = match moved {
                    Ok(()) => CallCommand::CompleteCall {
                        outcome: CallOutcome::Connected,
                        disposition: Some("transferred".into()),
                        hangup_cause: None,
                        at: Utc::now(),
                    },
                    Err(reason) => CallCommand::FailCall {
                        reason: format!("the transfer to queue {target} failed: {reason}"),
                        at: Utc::now(),
                    },
                };
                self.record(&live, command).await;
            }
            Ending::Failed { reason } => {
                self.record(&live, CallCommand::FailCall { reason: reason.clone(), at }).await;
            }
        }
        Ok((ending, stats))
    }

    /// Runs one AI function; `Some(ending)` ends the bridge.
    async fn function(&self, live: &Live, name: &str, args: &Value) -> (Value, Option<Ending>) {
        let text = |k: &str| args.get(k).and_then(Value::as_str).map(str::to_owned);
        match name {
            "end_call" => {
                if let Some(summary) = text("summary") {
                    self.record(live, CallCommand::SummarizeCall { summary, at: Utc::now() }).await;
                }
                let disposition = text("disposition").unwrap_or_else(|| "completed".into());
                (
                    json!({"ok": true}),
                    Some(Ending::Completed { disposition: Some(disposition.to_lowercase()) }),
                )
            }
            "transfer_to_queue" => match text("queue") {
                Some(queue) => {
                    // A warm transfer: the note for the human goes with the call.
                    if let Some(summary) = text("summary") {
                        self.record(live, CallCommand::SummarizeCall { summary, at: Utc::now() }).await;
                    }
                    self.record(
                        live,
                        CallCommand::RequestTransfer {
                            target: format!("queue:{queue}"),
                            reason: text("reason"),
                            at: Utc::now(),
                        },
                    )
                    .await;
                    (json!({"ok": true, "queue": queue}), Some(Ending::Transferred { target: queue }))
                }
                None => (json!({"ok": false, "error": "queue is required"}), None),
            },
            "schedule_callback" => {
                match text("at").and_then(|a| chrono::DateTime::parse_from_rfc3339(&a).ok()) {
                    Some(when) => {
                        let command = CallCommand::ScheduleCallback {
                            callback_at: when.with_timezone(&Utc),
                            note: text("note"),
                            at: Utc::now(),
                        };
                        let id = live.call_id.to_string();
                        match self.dispatcher.execute::<Call>(&id, command, &live.ctx).await {
                            Ok(_) => {
                                (json!({"ok": true, "at": when.to_rfc3339(), "note": text("note")}), None)
                            }
                            Err(DispatchError::Rejected(e)) => {
                                (json!({"ok": false, "error": e.to_string()}), None)
                            }
                            Err(e) => {
                                tracing::warn!(call = %live.call_id, error = %e, "could not schedule a callback");
                                (
                                    json!({"ok": false, "error": "the callback could not be saved; try again"}),
                                    None,
                                )
                            }
                        }
                    }
                    None => (json!({"ok": false, "error": "at must be an RFC 3339 time"}), None),
                }
            }
            "lookup_contact" => match &live.contact {
                Some(contact) => (json!({"ok": true, "contact": contact}), None),
                None => (json!({"ok": false, "error": "the caller is not a known contact"}), None),
            },
            other => (json!({"ok": false, "error": format!("unknown function {other}")}), None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bridge() -> Bridge {
        // Never connected: these cases end before any call step is recorded.
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .expect("a lazy pool");
        Bridge::new(Dispatcher::new(pool, kraliki_projections::Wake::new()))
    }

    #[tokio::test(start_paused = true)]
    async fn a_socket_that_never_starts_is_let_go() {
        let (_keep, incoming) = mpsc::channel::<String>(1);
        let (outgoing, _) = mpsc::channel::<String>(1);
        let result = bridge()
            .run(Dialect::Twilio, &mut ChannelPhone { incoming, outgoing }, |_| async {
                Err::<CallSetup, _>("unreachable".to_owned())
            })
            .await;
        assert_eq!(result.err().as_deref(), Some("no start frame in time"));
    }

    #[tokio::test]
    async fn garbage_before_start_is_skipped_and_a_refused_setup_ends_the_stream() {
        let (tx, incoming) = mpsc::channel::<String>(8);
        let (outgoing, _) = mpsc::channel::<String>(1);
        tx.send("{not json".into()).await.expect("send");
        tx.send(r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#.into()).await.expect("send");
        let start = r#"{"event":"start","sequenceNumber":"1","streamSid":"MZ1","start":{"accountSid":"AC1","streamSid":"MZ1","callSid":"CA1","tracks":["inbound"],"customParameters":{"call_id":"x"},"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}"#;
        tx.send(start.into()).await.expect("send");
        let result = bridge()
            .run(Dialect::Twilio, &mut ChannelPhone { incoming, outgoing }, |start| async move {
                assert_eq!(start.provider_call_id, "CA1");
                assert_eq!(start.parameters.get("call_id").map(String::as_str), Some("x"));
                Err::<CallSetup, _>("refused".to_owned())
            })
            .await;
        assert_eq!(result.err().as_deref(), Some("refused"));
    }
}
