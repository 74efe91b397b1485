//! WebSocket plumbing the adapters share: connecting over rustls, a reader task that turns
//! provider frames into [`AgentEvent`]s, and a writer task (with optional keep-alives).
//!
//! Tasks rather than one `&mut` stream let the provider's pings be answered and Deepgram's
//! keep-alives be sent while the bridge is busy elsewhere, and make [`Link::next_event`] a
//! plain channel receive, which is cancel-safe.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use super::{AgentEvent, AiError, Provider};

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Events buffered between the reader task and the bridge; generous so a slow bridge does not
/// stall the socket (about 20 s of 20 ms audio chunks).
const EVENT_BUFFER: usize = 1024;
/// Read buffer of a provider socket: a few audio frames' worth.
pub const MEDIA_READ_BUFFER: usize = 8 * 1024;
/// Outgoing frames buffered before `send_audio` waits.
const OUT_BUFFER: usize = 256;
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

/// A running connection: writer and reader tasks plus the event channel.
pub(crate) struct Link {
    provider: Provider,
    out: mpsc::Sender<Message>,
    events: mpsc::Receiver<AgentEvent>,
    events_tx: mpsc::WeakSender<AgentEvent>,
    closing: Arc<AtomicBool>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
    /// `Closed` has been handed out; nothing follows it.
    finished: bool,
}

impl Link {
    /// Starts the tasks; the reader first handles `earlier` (frames read during the
    /// handshake). With `keepalive = Some((every, msg))` the writer sends `msg` whenever
    /// nothing else was sent for `every`.
    pub(crate) fn spawn(
        provider: Provider,
        ws: Ws,
        earlier: Vec<Message>,
        parser: impl Parser,
        keepalive: Option<(Duration, Message)>,
    ) -> Self {
        let (sink, stream) = ws.split();
        let (out, out_rx) = mpsc::channel(OUT_BUFFER);
        let (events_tx, events) = mpsc::channel(EVENT_BUFFER);
        let closing = Arc::new(AtomicBool::new(false));
        let weak = events_tx.downgrade();
        let reader = tokio::spawn(read_loop(stream, earlier, parser, events_tx, closing.clone()));
        let writer = tokio::spawn(write_loop(sink, out_rx, keepalive));
        Self { provider, out, events, events_tx: weak, closing, reader, writer, finished: false }
    }

    pub(crate) fn provider(&self) -> Provider {
        self.provider
    }

    pub(crate) async fn send(&self, msg: Message) -> Result<(), AiError> {
        if self.finished || self.closing.load(Ordering::Relaxed) {
            return Err(AiError::Closed { provider: self.provider });
        }
        self.out.send(msg).await.map_err(|_| AiError::Closed { provider: self.provider })
    }

    pub(crate) async fn send_json(&self, msg: &Value) -> Result<(), AiError> {
        self.send(Message::text(msg.to_string())).await
    }

    /// A sender for events produced outside the reader (Deepgram's TTS), while the reader runs.
    pub(crate) fn event_sender(&self) -> Option<mpsc::Sender<AgentEvent>> {
        self.events_tx.upgrade()
    }

    pub(crate) async fn next_event(&mut self) -> Option<AgentEvent> {
        if self.finished {
            return None;
        }
        let event = self.events.recv().await.unwrap_or_else(|| AgentEvent::Closed {
            reason: if self.closing.load(Ordering::Relaxed) {
                "closed by client".to_owned()
            } else {
                "session ended".to_owned()
            },
        });
        if matches!(event, AgentEvent::Closed { .. }) {
            self.finished = true;
            self.events.close();
        }
        Some(event)
    }

    /// Sends `farewell` (e.g. Deepgram's `CloseStream`), then a close frame unless
    /// `provider_closes`, and waits up to [`CLOSE_WAIT`] for the reader to see the end.
    /// Events still buffered stay readable through [`next_event`](Self::next_event).
    pub(crate) async fn close(&mut self, farewell: Vec<Message>, provider_closes: bool) {
        if self.closing.swap(true, Ordering::Relaxed) {
            return;
        }
        for msg in farewell {
            if self.out.send(msg).await.is_err() {
                break;
            }
        }
        if !provider_closes {
            let frame = CloseFrame { code: CloseCode::Normal, reason: "call ended".into() };
            let _ = self.out.send(Message::Close(Some(frame))).await;
        }
        if tokio::time::timeout(CLOSE_WAIT, &mut self.reader).await.is_err() {
            tracing::debug!(provider = %self.provider, "provider did not close in time; dropping the connection");
            self.reader.abort();
        }
        self.writer.abort();
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

async fn read_loop(
    mut stream: SplitStream<Ws>,
    earlier: Vec<Message>,
    mut parser: impl Parser,
    events: mpsc::Sender<AgentEvent>,
    closing: Arc<AtomicBool>,
) {
    let mut earlier = earlier.into_iter();
    let mut batch = Vec::new();
    let reason = loop {
        let next = match earlier.next() {
            Some(msg) => Some(Ok(msg)),
            None => stream.next().await,
        };
        match next {
            Some(Ok(Message::Text(text))) => parser.text(&text, &mut batch),
            Some(Ok(Message::Binary(data))) => parser.binary(&data, &mut batch),
            Some(Ok(Message::Close(frame))) => {
                // Keep polling briefly so tungstenite sends its reply to the close frame.
                let drain = async { while stream.next().await.is_some() {} };
                let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
                break if closing.load(Ordering::Relaxed) {
                    "closed by client".to_owned()
                } else {
                    close_reason(frame.as_ref())
                };
            }
            Some(Ok(_)) => continue, // ping/pong are answered by tungstenite
            Some(Err(e)) => {
                break if closing.load(Ordering::Relaxed) {
                    "closed by client".to_owned()
                } else {
                    format!("connection lost: {e}")
                };
            }
            None => {
                break if closing.load(Ordering::Relaxed) {
                    "closed by client".to_owned()
                } else {
                    "connection lost: the provider went away without a close frame".to_owned()
                };
            }
        }
        for event in batch.drain(..) {
            if events.send(event).await.is_err() {
                return; // the session was dropped
            }
        }
    };
    let _ = events.send(AgentEvent::Closed { reason }).await;
}

async fn write_loop(
    mut sink: SplitSink<Ws, Message>,
    mut out: mpsc::Receiver<Message>,
    keepalive: Option<(Duration, Message)>,
) {
    loop {
        let msg = match &keepalive {
            Some((every, ping)) => match tokio::time::timeout(*every, out.recv()).await {
                Ok(Some(msg)) => msg,
                Ok(None) => break,
                Err(_) => ping.clone(),
            },
            None => match out.recv().await {
                Some(msg) => msg,
                None => break,
            },
        };
        let is_close = matches!(msg, Message::Close(_));
        if let Err(e) = sink.send(msg).await {
            tracing::debug!(error = %e, "provider connection write failed");
            break;
        }
        if is_close {
            break;
        }
    }
}
