//! Telephony webhooks and media streams over HTTP. Twilio: `POST /api/telephony/twilio/voice`
//! (answers TwiML), `POST /api/telephony/twilio/status`, the Media Streams socket at
//! `/api/telephony/twilio/media`. Telnyx: `POST /api/telephony/telnyx/webhook` and
//! `/api/telephony/telnyx/media`. The routes read the request and hand it to the calls service
//! (`kraliki_voice::calls`), which checks the signatures, applies each webhook once and runs the
//! media bridge.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::SinkExt;
use kraliki_voice::ai::MEDIA_READ_BUFFER;
use kraliki_voice::bridge::{Dialect, PhoneSocket};
use kraliki_voice::calls::{TelnyxRequest, TwilioRequest, WebhookAnswer};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::error::ApiError;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(twilio_voice))
        .routes(routes!(twilio_status))
        .routes(routes!(twilio_queue_wait))
        .routes(routes!(twilio_ivr))
        .routes(routes!(twilio_agent_answer))
        .routes(routes!(twilio_agent_status))
        .routes(routes!(twilio_media))
        .routes(routes!(telnyx_webhook))
        .routes(routes!(telnyx_media))
}

fn answer(a: WebhookAnswer) -> Response {
    match a {
        WebhookAnswer::Twiml(xml) => {
            ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], xml).into_response()
        }
        WebhookAnswer::NoContent => StatusCode::NO_CONTENT.into_response(),
    }
}

fn twilio<'a>(
    path: &'a str,
    headers: &'a HeaderMap,
    raw: &'a Option<String>,
    body: &'a [u8],
) -> TwilioRequest<'a> {
    TwilioRequest {
        path,
        query: raw.as_deref(),
        signature: headers.get("x-twilio-signature").and_then(|v| v.to_str().ok()),
        body,
    }
}

#[utoipa::path(post, path = "/api/telephony/twilio/voice", tag = "telephony", operation_id = "twilio_voice",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "Twilio's voice webhook (CallSid, From, To, Direction, …); signed with X-Twilio-Signature"),
    responses((status = 200, description = "TwiML: <Connect><Stream> to the media socket", content_type = "text/xml"),
        (status = 403, body = crate::error::Problem, description = "Bad or missing signature (problem+json)"),
        (status = 503, body = crate::error::Problem, description = "Twilio not configured (problem+json)")))]
async fn twilio_voice(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req = twilio("/api/telephony/twilio/voice", &headers, &raw, &body);
    Ok(answer(state.calls.twilio_voice(req).await?))
}

#[utoipa::path(post, path = "/api/telephony/twilio/status", tag = "telephony", operation_id = "twilio_status",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "Twilio status callback; signed"),
    responses((status = 204, description = "Applied (or already applied: retries change nothing)"),
        (status = 403, body = crate::error::Problem, description = "Bad or missing signature (problem+json)")))]
async fn twilio_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req = twilio("/api/telephony/twilio/status", &headers, &raw, &body);
    Ok(answer(state.calls.twilio_status(req).await?))
}

#[utoipa::path(post, path = "/api/telephony/twilio/ivr", tag = "telephony", operation_id = "twilio_ivr",
    params(("call_id" = Uuid, Query, description = "The call in its IVR flow"),
        ("seq" = u32, Query, description = "The flow input this answers (a repeat changes nothing)"),
        ("kind" = String, Query, description = "gather | record | dial | voicemail")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "Twilio's <Gather>, <Record> or <Dial> action request (Digits, SpeechResult, RecordingUrl, DialCallStatus, …); signed"),
    responses((status = 200, description = "TwiML: what the flow asks for next", content_type = "text/xml"),
        (status = 400, body = crate::error::Problem, description = "A callback without its call, seq or kind (problem+json)"),
        (status = 403, body = crate::error::Problem, description = "Bad or missing signature (problem+json)")))]
async fn twilio_ivr(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req = twilio("/api/telephony/twilio/ivr", &headers, &raw, &body);
    Ok(answer(state.calls.twilio_ivr(req).await?))
}

#[utoipa::path(post, path = "/api/telephony/twilio/queue/wait", tag = "telephony", operation_id = "twilio_queue_wait",
    params(("call_id" = Uuid, Query, description = "The waiting call")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "Twilio's <Enqueue> wait URL request (QueuePosition, QueueTime, …); signed"),
    responses((status = 200, description = "TwiML: the caller's position and estimated wait in their language, then a pause of the queue's announcement interval", content_type = "text/xml"),
        (status = 403, body = crate::error::Problem, description = "Bad or missing signature (problem+json)")))]
async fn twilio_queue_wait(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req = twilio("/api/telephony/twilio/queue/wait", &headers, &raw, &body);
    Ok(answer(state.calls.twilio_queue_wait(req).await?))
}

#[utoipa::path(post, path = "/api/telephony/twilio/agent/answer", tag = "telephony", operation_id = "twilio_agent_answer",
    params(("tenant" = Uuid, Query), ("agent_id" = Uuid, Query), ("call_id" = Uuid, Query), ("offer_id" = Uuid, Query)),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "Twilio fetching the TwiML of an agent's answered leg; signed"),
    responses((status = 200, description = "TwiML: <Dial><Queue> of the caller (the offer accepted), or a goodbye when the offer is over", content_type = "text/xml"),
        (status = 403, body = crate::error::Problem, description = "Bad or missing signature (problem+json)")))]
async fn twilio_agent_answer(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req = twilio("/api/telephony/twilio/agent/answer", &headers, &raw, &body);
    Ok(answer(state.calls.twilio_agent_answer(req).await?))
}

#[utoipa::path(post, path = "/api/telephony/twilio/agent/status", tag = "telephony", operation_id = "twilio_agent_status",
    params(("tenant" = Uuid, Query), ("agent_id" = Uuid, Query), ("call_id" = Uuid, Query), ("offer_id" = Uuid, Query)),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "Status callback of an agent's leg; signed"),
    responses((status = 204, description = "Applied: not answered → the offer is missed with the carrier's reason; completed → the agent's call ended"),
        (status = 403, body = crate::error::Problem, description = "Bad or missing signature (problem+json)")))]
async fn twilio_agent_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req = twilio("/api/telephony/twilio/agent/status", &headers, &raw, &body);
    Ok(answer(state.calls.twilio_agent_status(req).await?))
}

#[utoipa::path(post, path = "/api/telephony/telnyx/webhook", tag = "telephony", operation_id = "telnyx_webhook",
    request_body(content = Object, description = "A Telnyx Call Control webhook; signed (telnyx-signature-ed25519, telnyx-timestamp)"),
    responses((status = 204, description = "Applied (once per event id)"),
        (status = 403, body = crate::error::Problem, description = "Bad, stale or missing signature (problem+json)"),
        (status = 503, body = crate::error::Problem, description = "Telnyx not configured (problem+json)")))]
async fn telnyx_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let header_of = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let req = TelnyxRequest {
        signature: header_of("telnyx-signature-ed25519"),
        timestamp: header_of("telnyx-timestamp"),
        body: &body,
    };
    Ok(answer(state.calls.telnyx_webhook(req).await?))
}

#[utoipa::path(get, path = "/api/telephony/twilio/media", tag = "telephony", operation_id = "twilio_media",
    responses((status = 101, description = "Twilio Media Streams WebSocket (bidirectional, μ-law 8 kHz)")))]
async fn twilio_media(State(state): State<AppState>, ws: WebSocketUpgrade) -> Response {
    ws.read_buffer_size(MEDIA_READ_BUFFER)
        .on_upgrade(move |socket| media(state, socket, Dialect::Twilio, BTreeMap::new()))
}

#[utoipa::path(get, path = "/api/telephony/telnyx/media", tag = "telephony", operation_id = "telnyx_media",
    responses((status = 101, description = "Telnyx media streaming WebSocket (bidirectional RTP, PCMU)")))]
async fn telnyx_media(
    State(state): State<AppState>,
    Query(query): Query<BTreeMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.read_buffer_size(MEDIA_READ_BUFFER)
        .on_upgrade(move |socket| media(state, socket, Dialect::Telnyx, query))
}

/// The phone's media WebSocket, read and written by the call's bridge task itself.
pub struct PhoneWs(pub WebSocket);

impl PhoneSocket for PhoneWs {
    type Text = axum::extract::ws::Utf8Bytes;

    async fn recv(&mut self) -> Option<Self::Text> {
        loop {
            match self.0.recv().await? {
                Ok(Message::Text(text)) => return Some(text),
                Ok(Message::Binary(bytes)) => match axum::extract::ws::Utf8Bytes::try_from(bytes) {
                    Ok(text) => return Some(text),
                    Err(_) => continue,
                },
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue, // ping/pong are answered by tungstenite
            }
        }
    }

    async fn feed(&mut self, text: String) -> Result<(), ()> {
        self.0.feed(Message::Text(text.into())).await.map_err(|_| ())
    }

    async fn flush(&mut self) -> Result<(), ()> {
        SinkExt::flush(&mut self.0).await.map_err(|_| ())
    }
}

async fn media(state: AppState, socket: WebSocket, dialect: Dialect, query: BTreeMap<String, String>) {
    let mut phone = PhoneWs(socket);
    let _ = state.calls.media(&mut phone, dialect, query).await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(3), phone.0.close()).await;
}
