//! WebSocket plumbing the adapters share: connecting over rustls, the session handshake, and
//! [`Link`], which turns provider frames into [`AgentEvent`]s and sends ours (with optional
//! keep-alives).
//!
//! The link has no tasks of its own: the call's bridge task drives it. Pings are answered by
//! tungstenite while reading (the bridge always waits on [`Link::next_event`]), keep-alives are
//! sent from there, and `next_event` stays cancel-safe so it can sit in a `tokio::select!`.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use super::{AgentEvent, AiError, Provider};

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Events produced outside the socket (Deepgram's TTS) buffered before their producer waits.
const EVENT_BUFFER: usize = 1024;
/// Read buffer of a provider socket: a few audio frames' worth.
pub const MEDIA_READ_BUFFER: usize = 4 * 1024;
/// How long one frame may take to be written before the provider counts as stuck.
pub(crate) const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`Link::close`] waits for the provider to finish the closing handshake.
pub(crate) const CLOSE_WAIT: Duration = Duration::from_secs(3);

/// Turns the provider's frames into events. Runs inside the reader task.
pub(crate) trait Parser: Send + 'static {
    fn text(&mut self, text: &str, out: &mut Vec<AgentEvent>);

    fn binary(&mut self, data: &[u8], out: &mut Vec<AgentEvent>) {
        out.push(super::error_event(
            super::codes::MALFORMED_FRAME,
            format!("unexpected binary frame of {} bytes", data.len()),
        ));
    }
}

/// TLS client config with the `ring` provider and the Mozilla roots, built once.
fn tls() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
                .map_err(|e| format!("TLS setup failed: {e}"))
        })
        .clone()
}

/// Opens the WebSocket with the given (secret) headers.
pub(crate) async fn open(
    provider: Provider,
    url: &str,
    headers: &[(&'static str, &str)],
    timeout: Duration,
) -> Result<Ws, AiError> {
    let config_err = |message: String| AiError::Config { provider, message };
    let mut request =
        url.into_client_request().map_err(|e| config_err(format!("bad WebSocket URL {url:?}: {e}")))?;
    for &(name, value) in headers {
        let mut value = HeaderValue::from_str(value)
            .map_err(|_| config_err(format!("the {name} header value is not valid")))?;
        value.set_sensitive(true);
        request.headers_mut().insert(HeaderName::from_static(name), value);
    }
    let connector = Connector::Rustls(tls().map_err(config_err)?);
    // Voice frames are small: tungstenite's default 128 KiB read buffer is zeroed again and
    // again for nothing (it was the top of the media benchmark's profile).
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(MEDIA_READ_BUFFER);
    let connecting =
        tokio_tungstenite::connect_async_tls_with_config(request, Some(config), true, Some(connector));
    match tokio::time::timeout(timeout, connecting).await {
        Err(_) => Err(AiError::Timeout { provider, what: "accept the connection" }),
        Ok(Err(e)) => Err(AiError::Connect { provider, message: describe_connect_error(e) }),
        Ok(Ok((ws, _response))) => Ok(ws),
    }
}

fn describe_connect_error(e: tungstenite::Error) -> String {
    match e {
        tungstenite::Error::Http(response) => {
            let body = response
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(&b[..b.len().min(500)]).into_owned())
                .unwrap_or_default();
            format!("HTTP {} {}", response.status(), body.trim())
        }
        other => other.to_string(),
    }
}

/// Why the provider closed the socket, for [`AgentEvent::Closed`].
pub(crate) fn close_reason(frame: Option<&CloseFrame>) -> String {
    match frame {
        Some(f) if f.reason.is_empty() => format!("provider closed the connection ({})", u16::from(f.code)),
        Some(f) => format!("provider closed the connection ({}): {}", u16::from(f.code), f.reason),
        None => "provider closed the connection".to_owned(),
    }
}

/// Reads frames during a handshake (before the tasks start) until `done` accepts one.
///
/// `done` gets each text or binary frame and returns `Some(Ok(()))` when the handshake is
/// complete, `Some(Err(message))` when the provider rejected it, and `None` to keep waiting.
/// Frames it waited past are returned, for the reader to handle first.
pub(crate) async fn handshake(
    provider: Provider,
    ws: &mut Ws,
    timeout: Duration,
    mut done: impl FnMut(&[u8]) -> Option<Result<(), String>>,
) -> Result<Vec<Message>, AiError> {
    let mut earlier = Vec::new();
    let wait = async {
        loop {
            let msg = ws.next().await;
            let frame = match &msg {
                Some(Ok(Message::Text(t))) => t.as_str().as_bytes(),
                Some(Ok(Message::Binary(b))) => &b[..],
                Some(Ok(Message::Close(frame))) => {
                    return Err(AiError::Rejected { provider, message: close_reason(frame.as_ref()) })
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    return Err(AiError::Connect { provider, message: format!("connection lost: {e}") })
                }
                None => {
                    return Err(AiError::Connect {
                        provider,
                        message: "connection lost during the handshake".to_owned(),
                    })
                }
            };
            match done(frame) {
                Some(Ok(())) => return Ok(()),
                Some(Err(message)) => return Err(AiError::Rejected { provider, message }),
                None => earlier.extend(msg.and_then(Result::ok)),
            }
        }
    };
    tokio::time::timeout(timeout, wait)
        .await
        .unwrap_or(Err(AiError::Timeout { provider, what: "complete the session handshake" }))?;
    Ok(earlier)
}

/// Sends one JSON message during a handshake.
pub(crate) async fn send_json_raw(provider: Provider, ws: &mut Ws, msg: &Value) -> Result<(), AiError> {
    ws.send(Message::text(msg.to_string()))
        .await
        .map_err(|e| AiError::Connect { provider, message: format!("sending the session setup failed: {e}") })
}

/// A running connection, driven by whoever awaits it: [`Link::send`] writes straight to the
/// socket and [`Link::next_event`] reads from it, so a call's audio crosses no task or channel
/// on its way (one task per call carries both directions; the media benchmark's profile was
/// task hand-offs and wake-ups before).
pub(crate) struct Link {
    provider: Provider,
    ws: Ws,
    parser: Box<dyn Parser>,
    /// Events parsed but not yet handed out (a frame may carry several).
    pending: VecDeque<AgentEvent>,
    batch: Vec<AgentEvent>,
    /// Events produced outside the socket (Deepgram's TTS), merged into `next_event`.
    extra_tx: mpsc::Sender<AgentEvent>,
    extra: mpsc::Receiver<AgentEvent>,
    /// A sender was handed out: `extra` is worth polling.
    extra_used: bool,
    keepalive: Option<(Duration, Message)>,
    last_sent: Instant,
    /// [`close`](Self::close) was called.
    closing: bool,
    /// A write failed: the socket is unusable for sending.
    broken: bool,
    /// The socket ended; `Closed` is queued in `pending` (or was handed out).
    ended: bool,
    /// `Closed` has been handed out; nothing follows it.
    finished: bool,
}

impl Link {
    /// Wraps the connection; `earlier` are frames read during the handshake, handled first.
    /// With `keepalive = Some((every, msg))`, `msg` is sent whenever nothing else was sent for
    /// `every` while [`next_event`](Self::next_event) waits.
    pub(crate) fn spawn(
        provider: Provider,
        ws: Ws,
        earlier: Vec<Message>,
        parser: impl Parser,
        keepalive: Option<(Duration, Message)>,
    ) -> Self {
        let (extra_tx, extra) = mpsc::channel(EVENT_BUFFER);
        let mut link = Self {
            provider,
            ws,
            parser: Box::new(parser),
            pending: VecDeque::new(),
            batch: Vec::new(),
            extra_tx,
            extra,
            extra_used: false,
            keepalive,
            last_sent: Instant::now(),
            closing: false,
            broken: false,
            ended: false,
            finished: false,
        };
        for msg in earlier {
            link.take(Some(Ok(msg)));
        }
        link
    }

    pub(crate) fn provider(&self) -> Provider {
        self.provider
    }

    /// Writes one frame. A provider that does not take it within [`SEND_TIMEOUT`] (it stopped
    /// reading) fails the send, and every later one.
    pub(crate) async fn send(&mut self, msg: Message) -> Result<(), AiError> {
        if self.finished || self.closing || self.ended || self.broken {
            return Err(AiError::Closed { provider: self.provider });
        }
        match tokio::time::timeout(SEND_TIMEOUT, self.ws.send(msg)).await {
            Ok(Ok(())) => {
                self.last_sent = Instant::now();
                Ok(())
            }
            Ok(Err(e)) => {
                tracing::debug!(provider = %self.provider, error = %e, "provider connection write failed");
                self.broken = true;
                Err(AiError::Closed { provider: self.provider })
            }
            Err(_) => {
                self.broken = true;
                Err(AiError::Timeout { provider: self.provider, what: "take our frames" })
            }
        }
    }

    pub(crate) async fn send_json(&mut self, msg: &Value) -> Result<(), AiError> {
        self.send(Message::text(msg.to_string())).await
    }

    /// A sender for events produced outside the socket (Deepgram's TTS).
    pub(crate) fn event_sender(&mut self) -> Option<mpsc::Sender<AgentEvent>> {
        self.extra_used = true;
        Some(self.extra_tx.clone())
    }

    /// The next event: parsed from the socket, or produced outside it; `Closed` (always the
    /// last) when the socket ends. Cancel-safe: a frame is parsed whole once read.
    pub(crate) async fn next_event(&mut self) -> Option<AgentEvent> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                if matches!(event, AgentEvent::Closed { .. }) {
                    self.finished = true;
                }
                return Some(event);
            }
            if self.finished {
                return None;
            }
            let keepalive_at = match &self.keepalive {
                Some((every, _)) if !self.broken => {
                    Some(tokio::time::Instant::from_std(self.last_sent + *every))
                }
                _ => None,
            };
            tokio::select! {
                event = self.extra.recv(), if self.extra_used => {
                    if let Some(event) = event {
                        return Some(event);
                    }
                }
                msg = self.ws.next() => {
                    self.take(msg);
                    if self.ended && !self.closing {
                        // Let tungstenite send its reply to a close frame.
                        let _ = tokio::time::timeout(Duration::from_secs(1), self.ws.flush()).await;
                    }
                }
                _ = sleep_until(keepalive_at) => {
                    if let Some((_, ping)) = &self.keepalive {
                        let ping = ping.clone();
                        // A failed keep-alive shows up as the socket's end on the next read.
                        let _ = self.send(ping).await;
                    }
                }
            }
        }
    }

    /// Handles one read result: events into `pending`, or the end of the socket.
    fn take(&mut self, msg: Option<Result<Message, tungstenite::Error>>) {
        if self.ended {
            return;
        }
        let reason = match msg {
            Some(Ok(Message::Text(text))) => {
                self.parser.text(&text, &mut self.batch);
                self.pending.extend(self.batch.drain(..));
                return;
            }
            Some(Ok(Message::Binary(data))) => {
                self.parser.binary(&data, &mut self.batch);
                self.pending.extend(self.batch.drain(..));
                return;
            }
            Some(Ok(Message::Close(frame))) => close_reason(frame.as_ref()),
            Some(Ok(_)) => return, // ping/pong are answered by tungstenite
            Some(Err(e)) => format!("connection lost: {e}"),
            None => "connection lost: the provider went away without a close frame".to_owned(),
        };
        let reason = if self.closing { "closed by client".to_owned() } else { reason };
        self.ended = true;
        self.pending.push_back(AgentEvent::Closed { reason });
    }

    /// Sends `farewell` (e.g. Deepgram's `CloseStream`), then a close frame unless
    /// `provider_closes`, and reads on for up to [`CLOSE_WAIT`] until the provider has closed.
    /// Events read meanwhile stay readable through [`next_event`](Self::next_event).
    pub(crate) async fn close(&mut self, farewell: Vec<Message>, provider_closes: bool) {
        if self.closing {
            return;
        }
        let deadline = tokio::time::Instant::now() + CLOSE_WAIT;
        let usable = !(self.ended || self.broken);
        self.closing = true;
        if usable {
            for msg in farewell {
                if !matches!(tokio::time::timeout_at(deadline, self.ws.send(msg)).await, Ok(Ok(()))) {
                    break;
                }
            }
            if !provider_closes {
                let frame = CloseFrame { code: CloseCode::Normal, reason: "call ended".into() };
                let _ = tokio::time::timeout_at(deadline, self.ws.send(Message::Close(Some(frame)))).await;
            }
        }
        while !self.ended {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Ok(msg) => self.take(msg),
                Err(_) => {
                    tracing::debug!(provider = %self.provider, "provider did not close in time; dropping the connection");
                    self.ended = true;
                    self.pending.push_back(AgentEvent::Closed { reason: "closed by client".to_owned() });
                }
            }
        }
    }
}

/// Sleeps until `at`, or forever when there is no deadline.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
