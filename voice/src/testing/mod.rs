//! Local fake voice-AI servers speaking each provider's wire protocol (see `PROTOCOLS.md`),
//! for this crate's tests and end-to-end call tests. Feature `testing`.
//!
//! A [`FakeServer`] listens on `127.0.0.1:0`, records every client frame (parsed JSON where it
//! is JSON), every connection's path, query and headers, and every plain HTTP request. It does
//! the provider's handshake by itself ([`FakeOpenAi`], [`FakeGemini`], [`FakeDeepgram`],
//! [`FakeDeepgramAgent`]) and otherwise follows a script of [`Step`]s, pushed before or during
//! the call, which starts once the handshake is done: send an event, send garbage, wait for a
//! client message, close or drop the connection.
//!
//! ```ignore
//! let fake = FakeOpenAi::start().await?;
//! fake.push_all(FakeOpenAi::greeting_script("resp_1", "item_1", &ulaw, "Hello"));
//! fake.push(Step::wait_for_type("conversation.item.create"));
//! fake.push(Step::Drop);
//! let session = OpenAiSession::connect(&fake.config(), &session_config).await?;
//! ```

mod deepgram;
mod deepgram_agent;
mod gemini;
mod openai;

pub use deepgram::{FakeDeepgram, TtsReply};
pub use deepgram_agent::FakeDeepgramAgent;
pub use gemini::FakeGemini;
pub use openai::FakeOpenAi;

use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// A frame a client sent to a fake.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    /// A text frame holding JSON.
    Json(Value),
    /// A text frame that is not JSON.
    Text(String),
    Binary(Vec<u8>),
    /// A close frame (code and reason).
    Close(Option<(u16, String)>),
}

impl ClientFrame {
    pub fn json(&self) -> Option<&Value> {
        match self {
            ClientFrame::Json(v) => Some(v),
            _ => None,
        }
    }

    /// The `type` field of a JSON frame (OpenAI and Deepgram messages have one).
    pub fn json_type(&self) -> Option<&str> {
        self.json()?.get("type")?.as_str()
    }
}

/// Request line and headers of a connection or HTTP request (header names lowercase).
#[derive(Debug, Clone, PartialEq)]
pub struct RequestInfo {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
}

impl RequestInfo {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A plain HTTP request a fake answered (Deepgram TTS).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    pub info: RequestInfo,
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Everything a fake has seen and sent, in order.
#[derive(Debug, Clone, Default)]
pub struct Log {
    /// WebSocket connections, including refused ones.
    pub connections: Vec<RequestInfo>,
    /// Client frames from every connection.
    pub received: Vec<ClientFrame>,
    /// JSON the fake sent (handshake replies and [`Step::Json`]), for checking the fake itself.
    pub sent: Vec<Value>,
    pub http: Vec<HttpRequest>,
}

/// Tells whether a client frame is the one a [`Step::WaitFor`] waits for.
pub type Matcher = Arc<dyn Fn(&ClientFrame) -> bool + Send + Sync>;

/// One thing a fake does during a call, in order.
#[derive(Clone)]
pub enum Step {
    /// Sends a JSON message, framed the way the provider frames it.
    Json(Value),
    /// Sends a raw text frame, e.g. malformed JSON.
    Text(String),
    Binary(Vec<u8>),
    /// Waits until the client sends a matching frame. Frames that arrived before this step
    /// count too, except those an earlier `WaitFor` already matched or skipped.
    WaitFor(Matcher),
    /// Sends a close frame and ends the connection.
    Close {
        code: u16,
        reason: String,
    },
    /// Drops the TCP connection with no close frame, like a crashed provider.
    Drop,
}

impl Step {
    pub fn wait_for(matches: impl Fn(&ClientFrame) -> bool + Send + Sync + 'static) -> Step {
        Step::WaitFor(Arc::new(matches))
    }

    pub fn wait_for_json(matches: impl Fn(&Value) -> bool + Send + Sync + 'static) -> Step {
        Step::wait_for(move |f| f.json().is_some_and(&matches))
    }

    /// Waits for a JSON message with this `type` (OpenAI, Deepgram).
    pub fn wait_for_type(ty: &str) -> Step {
        let ty = ty.to_owned();
        Step::wait_for(move |f| f.json_type() == Some(ty.as_str()))
    }

    /// Waits for a JSON message with this top-level key (Gemini).
    pub fn wait_for_key(key: &str) -> Step {
        let key = key.to_owned();
        Step::wait_for_json(move |v| v.get(&key).is_some())
    }

    pub fn close(code: u16, reason: &str) -> Step {
        Step::Close { code, reason: reason.to_owned() }
    }
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Json(v) => write!(f, "Json({v})"),
            Step::Text(t) => write!(f, "Text({t:?})"),
            Step::Binary(b) => write!(f, "Binary({} bytes)", b.len()),
            Step::WaitFor(_) => f.write_str("WaitFor(..)"),
            Step::Close { code, reason } => write!(f, "Close({code}, {reason:?})"),
            Step::Drop => f.write_str("Drop"),
        }
    }
}

/// What a provider's fake does by itself.
pub(crate) trait Protocol: Send + Sync + 'static {
    /// Whether the request carries the fake's API key.
    fn authorized(&self, request: &RequestInfo) -> bool;
    /// Messages sent as soon as a client connects.
    fn on_connect(&self) -> Vec<Value> {
        Vec::new()
    }
    /// Automatic replies to a client frame (handshakes, end of stream).
    fn reply(&self, frame: &ClientFrame) -> Vec<Step>;
    /// Whether the script waits for a client frame that completes the session handshake
    /// (as real servers send nothing before it), and whether `frame` is that frame.
    fn awaits_handshake(&self) -> bool {
        false
    }
    fn completes_handshake(&self, _frame: &ClientFrame) -> bool {
        false
    }
    /// Whether JSON goes out in binary frames (Gemini does that).
    fn json_as_binary(&self) -> bool {
        false
    }
    /// Answers a plain HTTP request: status, content type, body.
    fn http(&self, _request: &HttpRequest) -> (StatusCode, &'static str, Vec<u8>) {
        (StatusCode::NOT_FOUND, "text/plain", b"not found".to_vec())
    }
    /// The body of a 401 answer.
    fn unauthorized_body(&self) -> String {
        r#"{"error":"invalid api key"}"#.to_owned()
    }
}

struct Shared {
    protocol: Box<dyn Protocol>,
    log: Mutex<Log>,
    changed: watch::Sender<u64>,
    steps: tokio::sync::Mutex<mpsc::UnboundedReceiver<Step>>,
}

impl Shared {
    fn log(&self) -> MutexGuard<'_, Log> {
        // A panicking test thread may poison the lock; the log itself stays consistent.
        self.log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn record(&self, f: impl FnOnce(&mut Log)) {
        f(&mut self.log());
        self.changed.send_modify(|n| *n += 1);
    }
}

/// A running fake server; stops when dropped.
pub struct FakeServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    steps: mpsc::UnboundedSender<Step>,
    task: JoinHandle<()>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeServer {
    pub(crate) async fn start(protocol: impl Protocol) -> std::io::Result<FakeServer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (steps, steps_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            protocol: Box::new(protocol),
            log: Mutex::default(),
            changed: watch::Sender::new(0),
            steps: tokio::sync::Mutex::new(steps_rx),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "fake server stopped");
            }
        });
        Ok(FakeServer { addr, shared, steps, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:port` + `path`.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// `http://127.0.0.1:port` + `path`.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Queues a step for the current (or next) connection.
    pub fn push(&self, step: Step) {
        // The receiver lives as long as `self`, so this cannot fail.
        let _ = self.steps.send(step);
    }

    pub fn push_all(&self, steps: impl IntoIterator<Item = Step>) {
        steps.into_iter().for_each(|s| self.push(s));
    }

    /// A copy of everything seen so far.
    pub fn log(&self) -> Log {
        self.shared.log().clone()
    }

    pub fn received(&self) -> Vec<ClientFrame> {
        self.shared.log().received.clone()
    }

    /// The JSON frames the client sent, in order.
    pub fn received_json(&self) -> Vec<Value> {
        self.shared.log().received.iter().filter_map(|f| f.json().cloned()).collect()
    }

    /// The JSON the fake sent.
    pub fn sent_json(&self) -> Vec<Value> {
        self.shared.log().sent.clone()
    }

    pub fn connections(&self) -> Vec<RequestInfo> {
        self.shared.log().connections.clone()
    }

    pub fn http_requests(&self) -> Vec<HttpRequest> {
        self.shared.log().http.clone()
    }

    /// Waits until `check` finds what it looks for in the log, or `timeout` passes.
    pub async fn wait_until<T>(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&Log) -> Option<T>,
    ) -> Option<T> {
        let mut changed = self.shared.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            changed.borrow_and_update();
            if let Some(found) = check(&self.shared.log()) {
                return Some(found);
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                _ => return None,
            }
        }
    }

    /// Waits for a client JSON message matching `matches` and returns it.
    pub async fn wait_for_json(&self, timeout: Duration, matches: impl Fn(&Value) -> bool) -> Option<Value> {
        self.wait_until(timeout, |log| {
            log.received.iter().filter_map(ClientFrame::json).find(|v| matches(v)).cloned()
        })
        .await
    }

    /// Waits until the client has sent `n` frames matching `matches` and returns them.
    pub async fn wait_for_frames(
        &self,
        timeout: Duration,
        n: usize,
        matches: impl Fn(&ClientFrame) -> bool,
    ) -> Option<Vec<ClientFrame>> {
        self.wait_until(timeout, |log| {
            let found: Vec<_> = log.received.iter().filter(|f| matches(f)).cloned().collect();
            (found.len() >= n).then_some(found)
        })
        .await
    }
}

fn request_info(parts: &axum::http::request::Parts) -> RequestInfo {
    let query = parts
        .uri
        .query()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let headers = parts
        .headers
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    RequestInfo { method: parts.method.to_string(), path: parts.uri.path().to_owned(), query, headers }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let info = request_info(&parts);
    let upgrade =
        parts.headers.get(header::UPGRADE).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    let authorized = shared.protocol.authorized(&info);
    if upgrade {
        shared.record(|log| log.connections.push(info));
        if !authorized {
            return unauthorized(&shared);
        }
        match WebSocketUpgrade::from_request_parts(&mut parts, &shared).await {
            Ok(ws) => ws.on_upgrade(move |socket| run_connection(shared, socket)),
            Err(rejection) => rejection.into_response(),
        }
    } else {
        let body = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default().to_vec();
        let request = HttpRequest { info, body };
        shared.record(|log| log.http.push(request.clone()));
        if !authorized {
            return unauthorized(&shared);
        }
        let (status, content_type, body) = shared.protocol.http(&request);
        (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
    }
}

fn unauthorized(shared: &Shared) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "application/json")],
        shared.protocol.unauthorized_body(),
    )
        .into_response()
}

fn client_frame(msg: Message) -> Option<ClientFrame> {
    Some(match msg {
        Message::Text(text) => match serde_json::from_str(text.as_str()) {
            Ok(v) => ClientFrame::Json(v),
            Err(_) => ClientFrame::Text(text.as_str().to_owned()),
        },
        Message::Binary(data) => ClientFrame::Binary(data.to_vec()),
        Message::Close(frame) => ClientFrame::Close(frame.map(|f| (f.code, f.reason.as_str().to_owned()))),
        Message::Ping(_) | Message::Pong(_) => return None,
    })
}

async fn run_connection(shared: Arc<Shared>, mut socket: WebSocket) {
    for msg in shared.protocol.on_connect() {
        if execute(&shared, &mut socket, Step::Json(msg)).await.is_break() {
            return;
        }
    }
    // Only one connection at a time follows the script; others just get the handshake.
    let mut steps = shared.steps.try_lock().ok();
    let mut cursor = shared.log().received.len();
    let mut waiting: Option<Matcher> = None;
    let mut ready = !shared.protocol.awaits_handshake();
    loop {
        if let Some(matches) = &waiting {
            let log = shared.log();
            if let Some(i) = log.received[cursor..].iter().position(|f| matches(f)) {
                cursor += i + 1;
                waiting = None;
            }
        }
        let next_step = async {
            match steps.as_deref_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            incoming = socket.recv() => {
                let Some(Ok(msg)) = incoming else { return };
                let Some(frame) = client_frame(msg) else { continue };
                let replies = shared.protocol.reply(&frame);
                ready |= shared.protocol.completes_handshake(&frame);
                let closed = matches!(frame, ClientFrame::Close(_));
                shared.record(|log| log.received.push(frame));
                for step in replies {
                    if execute(&shared, &mut socket, step).await.is_break() {
                        return;
                    }
                }
                if closed {
                    // Let axum answer the close frame, then end.
                    let _ = tokio::time::timeout(Duration::from_secs(1), async {
                        while socket.recv().await.is_some() {}
                    }).await;
                    return;
                }
            }
            step = next_step, if ready && waiting.is_none() => match step {
                Some(Step::WaitFor(matches)) => waiting = Some(matches),
                Some(step) => if execute(&shared, &mut socket, step).await.is_break() { return },
                None => steps = None,
            },
        }
    }
}

async fn execute(shared: &Shared, socket: &mut WebSocket, step: Step) -> ControlFlow<()> {
    let msg = match step {
        Step::Json(v) => {
            let text = v.to_string();
            shared.record(|log| log.sent.push(v));
            if shared.protocol.json_as_binary() {
                Message::Binary(text.into_bytes().into())
            } else {
                Message::Text(text.into())
            }
        }
        Step::Text(t) => Message::Text(t.into()),
        Step::Binary(b) => Message::Binary(b.into()),
        Step::WaitFor(_) => return ControlFlow::Continue(()), // handled by the caller
        Step::Close { code, reason } => {
            let _ = socket.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                while let Some(Ok(msg)) = socket.recv().await {
                    if let Some(frame) = client_frame(msg) {
                        shared.record(|log| log.received.push(frame));
                    }
                }
            })
            .await;
            return ControlFlow::Break(());
        }
        Step::Drop => return ControlFlow::Break(()),
    };
    match socket.send(msg).await {
        Ok(()) => ControlFlow::Continue(()),
        Err(_) => ControlFlow::Break(()),
    }
}
