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
//!
//! What the agent may do is the call's [`CallController`] (its functions and how a transfer is
//! carried out), so the voice AI, an IVR handing over to it, or a supervisor's take-over plug in
//! without the bridge knowing. The media loop never waits on the database: call steps go to the
//! call's [`Recorder`], a bounded queue drained in order by a writer task of its own; functions
//! run beside the loop while audio keeps flowing.

use std::collections::BTreeMap;
use std::future::Future;
use std::ops::Deref;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use futures::stream::{FuturesUnordered, StreamExt};
use kraliki_commands::{CommandContext, DispatchError, Dispatcher, Outcome};
use kraliki_domain::call::{
    Call, CallCommand, CallError, CallOutcome, Speaker as CallSpeaker, TransferTarget,
};
use kraliki_projections::metrics_catalog as catalog;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
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
    /// A web page's session ([`crate::browser`]): no carrier, PCM16 at 16 kHz.
    Browser,
}

impl Dialect {
    /// The carrier's name (`twilio`, `telnyx`; `browser` for a page's session).
    pub fn carrier(self) -> &'static str {
        match self {
            Dialect::Twilio => "twilio",
            Dialect::Telnyx => "telnyx",
            Dialect::Browser => "browser",
        }
    }
}

/// Counts a bridged call in `kraliki_voice_active_calls` while it lives (also when the bridge's
/// future is dropped mid-call).
struct ActiveCall(metrics::Gauge);

impl ActiveCall {
    fn start(provider: &'static str, carrier: &'static str) -> Self {
        let gauge =
            metrics::gauge!(catalog::VOICE_ACTIVE_CALLS.name, "provider" => provider, "carrier" => carrier);
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for ActiveCall {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
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

/// What one function call of the agent led to.
pub struct FunctionResult {
    /// Sent back to the agent as the tool result.
    pub result: Value,
    /// `Some` ends the bridge (the call ends, or leaves the agent).
    pub ending: Option<Ending>,
}

/// What the agent on a call may do: the functions it is offered, what each does, and how a
/// transfer it asks for is carried out at the carrier.
#[async_trait]
pub trait CallController: Send + Sync {
    /// The functions offered to the agent (its session is configured with them).
    fn tools(&self) -> Vec<ToolSpec>;

    /// Runs one function the agent called. Call steps go through `recorder`.
    async fn call_function(&self, recorder: &Recorder, name: &str, arguments: &Value) -> FunctionResult;

    /// Moves the caller to `target` once the agent has left the call; `Err` says why not.
    async fn transfer(&self, target: &TransferTarget) -> Result<(), String>;
}

/// What the service decided for this stream: which call it is, whose, the agent and what the
/// agent may do.
pub struct CallSetup {
    pub call_id: Uuid,
    pub tenant_id: String,
    pub session: Box<dyn AgentSession>,
    pub controller: Box<dyn CallController>,
    /// How the agent connected (`ConnectAgent`), recorded right after the stream's start.
    pub connected: Option<CallCommand>,
}

/// How many call steps may wait for the database before the bridge waits too. A step is a
/// transcript segment, a DTMF digit, a function call — a few a second at most — so the queue
/// holds minutes of them; only if the database stays stuck that long does the media loop
/// wait (back-pressure), and nothing is ever dropped for lack of room.
pub const RECORDER_QUEUE: usize = 256;

/// A store failure is retried for about this long before the step is given up (logged and
/// counted as `kraliki_call_steps_lost_total`).
const RECORD_RETRY: Duration = Duration::from_secs(5);

enum Job {
    Record(CallCommand),
    Execute(CallCommand, oneshot::Sender<Result<Outcome, DispatchError<CallError>>>),
}

/// The call's steps on their way to the event store: a bounded queue, written in order by one
/// task, so the media loop never waits on the database.
#[derive(Clone)]
pub struct Recorder {
    call_id: Uuid,
    jobs: mpsc::Sender<Job>,
}

impl Recorder {
    /// Starts the call's writer; it ends once every `Recorder` clone is dropped and the queue
    /// is written.
    pub fn start(
        dispatcher: Dispatcher,
        call_id: Uuid,
        ctx: CommandContext,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (jobs, mut queue) = mpsc::channel::<Job>(RECORDER_QUEUE);
        let writer = tokio::spawn(async move {
            let id = call_id.to_string();
            while let Some(job) = queue.recv().await {
                match job {
                    Job::Record(command) => {
                        let name = kraliki_domain::CommandPolicy::name(&command);
                        let started = std::time::Instant::now();
                        loop {
                            match dispatcher.execute::<Call>(&id, command.clone(), &ctx).await {
                                Ok(_) | Err(DispatchError::Rejected(CallError::Ended)) => break,
                                Err(DispatchError::Rejected(rule)) => {
                                    tracing::info!(call = %call_id, command = name, reason = %rule, "call step refused");
                                    break;
                                }
                                Err(e) if started.elapsed() < RECORD_RETRY => {
                                    tracing::debug!(call = %call_id, error = %e, "call step not written yet; retrying");
                                    tokio::time::sleep(Duration::from_millis(200)).await;
                                }
                                Err(e) => {
                                    tracing::warn!(call = %call_id, command = name, error = %e, "could not record a call step");
                                    metrics::counter!(catalog::CALL_STEPS_LOST.name, "command" => name)
                                        .increment(1);
                                    break;
                                }
                            }
                        }
                    }
                    Job::Execute(command, reply) => {
                        let _ = reply.send(dispatcher.execute::<Call>(&id, command, &ctx).await);
                    }
                }
            }
        });
        (Self { call_id, jobs }, writer)
    }

    pub fn call_id(&self) -> Uuid {
        self.call_id
    }

    /// Queues a call step; waits only while the queue is full.
    pub async fn record(&self, command: CallCommand) {
        if self.jobs.send(Job::Record(command)).await.is_err() {
            tracing::warn!(call = %self.call_id, "call step after the call's writer stopped");
        }
    }

    /// Runs a command after every step queued before it, and answers its outcome (for what
    /// the agent must be told, e.g. whether a callback was accepted).
    pub async fn execute(&self, command: CallCommand) -> Result<Outcome, DispatchError<CallError>> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Execute(command, reply))
            .await
            .map_err(|_| DispatchError::Store(anyhow::anyhow!("the call's writer stopped")))?;
        answer.await.map_err(|_| DispatchError::Store(anyhow::anyhow!("the call's writer stopped")))?
    }
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
    browser: crate::browser::BrowserAudio,
}

impl Wire {
    fn new(dialect: Dialect) -> Self {
        let browser = crate::browser::BrowserAudio::default();
        Self { dialect, stream_id: String::new(), reorder: MediaReorderer::new(16), browser }
    }

    /// What the phone side is told once the call is set up (a page learns its call's id).
    fn started(&self, call_id: Uuid) -> Option<String> {
        (self.dialect == Dialect::Browser).then(|| crate::browser::started(call_id))
    }

    /// A final transcript segment, for a side that shows it (a page does).
    fn transcript(&self, speaker: &CallSpeaker, text: &str) -> Option<String> {
        (self.dialect == Dialect::Browser).then(|| {
            let who = match speaker {
                CallSpeaker::Caller => "caller",
                CallSpeaker::Agent => "agent",
            };
            crate::browser::transcript(who, text)
        })
    }

    /// How the call ended, for a side that is told (a page is).
    fn ended(&self, ending: &Ending) -> Option<String> {
        (self.dialect == Dialect::Browser).then(|| {
            crate::browser::ended(match ending {
                Ending::Completed { .. } => "completed",
                Ending::Transferred { .. } => "transferred",
                Ending::Failed { reason } => reason,
            })
        })
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
            Dialect::Browser => {
                use crate::browser::Inbound;
                Ok(vec![match self.browser.parse(text)? {
                    // The page names nothing: its call was set up by the route that upgraded
                    // its socket (the parameters come from there, never from the page).
                    Inbound::Start => {
                        self.stream_id = format!("browser-{}", Uuid::now_v7());
                        Phone::Start(StreamStart {
                            stream_id: self.stream_id.clone(),
                            provider_call_id: String::new(),
                            parameters: BTreeMap::new(),
                        })
                    }
                    Inbound::Audio(ulaw) => Phone::Media(ulaw),
                    Inbound::Mark(name) => Phone::Mark(name),
                    Inbound::Dtmf(digit) => Phone::Dtmf(digit),
                    Inbound::Stop => Phone::Stop,
                }])
            }
        }
    }

    fn media(&mut self, ulaw: &[u8]) -> String {
        match self.dialect {
            Dialect::Twilio => TwilioOutbound::media(self.stream_id.clone(), ulaw.to_vec()).to_json(),
            Dialect::Telnyx => TelnyxOutbound::Media { payload: ulaw.to_vec() }.to_json(),
            Dialect::Browser => self.browser.media(ulaw),
        }
    }

    fn mark(&self, name: &str) -> String {
        match self.dialect {
            Dialect::Twilio => TwilioOutbound::mark(self.stream_id.clone(), name).to_json(),
            Dialect::Telnyx => TelnyxOutbound::Mark { name: name.to_owned() }.to_json(),
            Dialect::Browser => crate::browser::mark(name),
        }
    }

    fn clear(&self) -> String {
        match self.dialect {
            Dialect::Twilio => TwilioOutbound::clear(self.stream_id.clone()).to_json(),
            Dialect::Telnyx => TelnyxOutbound::Clear.to_json(),
            Dialect::Browser => crate::browser::clear(),
        }
    }
}

/// How the call ended, as the bridge saw it.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    /// The agent ended it (`end_call`) or the phone hung up.
    Completed {
        disposition: Option<String>,
    },
    Transferred {
        target: TransferTarget,
    },
    Failed {
        reason: String,
    },
}

pub struct Bridge {
    dispatcher: Dispatcher,
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
    recorder: Recorder,
    started: Instant,
    /// The agent item whose audio the phone plays now.
    item: Option<ItemAudio>,
    /// The caller's current turn on the call's clock (ms): from the provider's speech start to
    /// its speech stop, for the timing of the caller's transcript.
    caller_turn: Option<(u64, Option<u64>)>,
}

impl Bridge {
    pub fn new(dispatcher: Dispatcher) -> Self {
        Self { dispatcher }
    }

    /// Runs one media stream to its end: `phone` is the media socket (the caller closes it
    /// afterwards); `setup` resolves the call at `start`.
    pub async fn run<P, F, Fut>(&self, dialect: Dialect, phone: &mut P, setup: F) -> Result<Ending, String>
    where
        P: PhoneSocket,
        F: FnOnce(StreamStart) -> Fut,
        Fut: std::future::Future<Output = Result<CallSetup, String>>,
    {
        let mut wire = Wire::new(dialect);
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
        let CallSetup { call_id, tenant_id, mut session, controller, connected } = setup(start).await?;
        let _active = ActiveCall::start(session.provider().as_str(), dialect.carrier());
        // From a frame read on one side to its write on the other (handles looked up once).
        let latency = |direction: &'static str| metrics::histogram!(catalog::BRIDGE_FRAME_LATENCY.name, "direction" => direction);
        let (to_agent, to_caller) = (latency("caller_to_agent"), latency("agent_to_caller"));
        let (recorder, writer) = Recorder::start(
            self.dispatcher.clone(),
            call_id,
            CommandContext::new(tenant_id, "system:media-bridge"),
        );
        let mut live = Live { call_id, recorder, started: Instant::now(), item: None, caller_turn: None };
        // Functions the agent called, running beside the media loop.
        let mut functions = FuturesUnordered::new();
        // Both dialects stream G.711 μ-law at 8 kHz.
        let codec = "PCMU";
        live.recorder
            .record(CallCommand::StartMediaStream {
                stream_id: stream_id.clone(),
                codec: codec.into(),
                sample_rate: 8000,
                at: Utc::now(),
            })
            .await;
        if let Some(connected) = connected {
            live.recorder.record(connected).await;
        }
        if let Some(started) = wire.started(call_id) {
            if phone.feed(started).await.is_ok() {
                let _ = phone.flush().await;
            }
        }

        let ending = loop {
            tokio::select! {
                frame = phone.recv() => {
                    let read_at = Instant::now();
                    let Some(text) = frame else {
                        break Ending::Completed { disposition: None };
                    };
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
                                match session.send_audio(&audio).await {
                                    Ok(()) => to_agent.record(read_at.elapsed().as_secs_f64()),
                                    Err(e) => tracing::debug!(call = %live.call_id, error = %e, "agent refused audio"),
                                }
                            }
                            Phone::Dtmf(digits) => {
                                live.recorder.record(CallCommand::ReceiveDtmf { digits, at: Utc::now() }).await;
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
                    let read_at = Instant::now();
                    let Some(event) = event else {
                        break Ending::Failed { reason: "the voice provider ended the session".into() };
                    };
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
                            to_caller.record(read_at.elapsed().as_secs_f64());
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
                                                        if let Some(frame) = wire.transcript(&speaker, &text) {
                                if phone.feed(frame).await.is_ok() {
                                    let _ = phone.flush().await;
                                }
                            }
                            live.recorder.record(CallCommand::AddTranscriptSegment { speaker, text, start_ms, end_ms, at: Utc::now() }).await;
                        }
                        AgentEvent::ToolCall { call_id, name, arguments } => {
                            let (controller, recorder) = (&controller, live.recorder.clone());
                            functions.push(async move {
                                let done = controller.call_function(&recorder, &name, &arguments).await;
                                (call_id, name, arguments, done)
                            });
                        }
                        AgentEvent::Closed { reason } => break Ending::Failed { reason: format!("voice provider closed: {reason}") },
                        AgentEvent::Error { code, message } => {
                            tracing::info!(call = %live.call_id, code, message, "voice provider error");
                        }
                        _ => {}
                    }
                }
                Some((call_id, name, arguments, done)) = functions.next(), if !functions.is_empty() => {
                    live.recorder.record(CallCommand::RecordFunctionCall {
                        name, call_id: call_id.clone(), arguments, result: done.result.clone(), at: Utc::now(),
                    }).await;
                    if let Some(ending) = done.ending {
                        break ending;
                    }
                    if let Err(e) = session.send_tool_result(&call_id, done.result).await {
                        tracing::debug!(call = %live.call_id, error = %e, "tool result refused");
                    }
                }
            }
        };
        drop(functions);
        if let Some(frame) = wire.ended(&ending) {
            if phone.feed(frame).await.is_ok() {
                let _ = phone.flush().await;
            }
        }
        let _ = session.close().await;
        let recorder = live.recorder;
        recorder.record(CallCommand::StopMediaStream { stream_id, at: Utc::now() }).await;
        let at = Utc::now();
        let last = match &ending {
            Ending::Completed { disposition } => CallCommand::CompleteCall {
                outcome: CallOutcome::Connected,
                disposition: disposition.clone(),
                hangup_cause: None,
                at,
            },
            Ending::Transferred { target } => match controller.transfer(target).await {
                Ok(()) => CallCommand::CompleteCall {
                    outcome: CallOutcome::Connected,
                    disposition: Some("transferred".into()),
                    hangup_cause: None,
                    at: Utc::now(),
                },
                Err(reason) => CallCommand::FailCall {
                    reason: format!("the transfer to {} failed: {reason}", target.describe()),
                    at: Utc::now(),
                },
            },
            Ending::Failed { reason } => CallCommand::FailCall { reason: reason.clone(), at },
        };
        recorder.record(last).await;
        // Everything the call did is written before the bridge says it is over.
        drop(recorder);
        let _ = writer.await;
        Ok(ending)
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
