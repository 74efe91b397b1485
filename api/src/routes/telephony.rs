//! Telephony webhooks and media streams. Twilio: `POST /api/telephony/twilio/voice` (answers
//! TwiML `<Connect><Stream>`), `POST /api/telephony/twilio/status`, the Media Streams socket at
//! `/api/telephony/twilio/media`. Telnyx: `POST /api/telephony/telnyx/webhook` (answers the
//! call with streaming through Call Control) and `/api/telephony/telnyx/media`.
//!
//! Webhooks are authenticated by the providers' signatures (X-Twilio-Signature over
//! `PUBLIC_BASE_URL` + path; Telnyx Ed25519 with a 300 s window), never by tokens, and each is
//! applied once (its idempotency key: Twilio CallSid + status + sequence, Telnyx event id).
//! A media stream proves it belongs to a call we set up with an HMAC token we put in the
//! stream's parameters.

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use futures::SinkExt;
use hmac::{Hmac, Mac};
use kraliki_commands::{CommandContext, DispatchError};
use kraliki_domain::call::{Call, CallCommand, CallDirection, CallError, CallOutcome, CallStatus};
use kraliki_domain::campaign::VoiceProvider;
use kraliki_voice::ai::MEDIA_READ_BUFFER;
use kraliki_voice::ai::{
    self, DeepgramAgentConfig, GeminiConfig, OpenAiConfig, ProviderConfig, SessionConfig,
};
use kraliki_voice::bridge::{call_tools, Bridge, CallSetup, Dialect, PhoneSocket, StreamStart, TransferFn};
use kraliki_voice::telephony::telnyx_control::{Answer, CommandId, Enqueue, StreamParams, TelnyxClient};
use kraliki_voice::telephony::twilio_rest::{CallInstructions, TwilioRestClient};
use kraliki_voice::telephony::twiml::{Connect, Say, Stream, VoiceResponse};
use kraliki_voice::telephony::webhooks::{
    self as hooks, AmdOutcome, Disposition, TelephonyEvent, TelephonyWebhook, TelnyxWebhook,
    TwilioStatusCallback,
};
use kraliki_voice::telnyx::TelnyxVerifier;
use kraliki_voice::twilio::TwilioValidator;
use sha2::Sha256;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::error::{ApiError, Code};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(twilio_voice))
        .routes(routes!(twilio_status))
        .routes(routes!(twilio_media))
        .routes(routes!(telnyx_webhook))
        .routes(routes!(telnyx_media))
        .routes(routes!(outbound))
}

/// The call's aggregate id for a provider's call id: the same on every retry and instance.
pub fn call_uuid(provider: &str, provider_call_id: &str) -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_URL, format!("kraliki:{provider}:{provider_call_id}").as_bytes())
}

fn public_url(state: &AppState, path_and_query: &str) -> Result<String, ApiError> {
    let base =
        state.settings.providers.public_base_url.as_deref().map(|b| b.trim_end_matches('/')).ok_or_else(
            || {
                ApiError::new(Code::ServiceUnavailable)
                    .detail("PUBLIC_BASE_URL is not configured: webhook signatures cannot be checked")
            },
        )?;
    Ok(format!("{base}{path_and_query}"))
}

fn ws_url(http_url: &str) -> String {
    if let Some(rest) = http_url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = http_url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        http_url.to_owned()
    }
}

fn forbidden(why: &str) -> ApiError {
    ApiError::new(Code::Forbidden).detail(why.to_owned())
}

/// Who a call belongs to and what it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub tenant: Uuid,
    pub campaign: Option<Uuid>,
    pub contact: Option<Uuid>,
}

/// HMAC over the call and its target: a media stream carrying it was set up by us.
fn media_token(state: &AppState, call: Uuid, t: &Target) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(&state.media_secret[..]).expect("HMAC takes any key length");
    mac.update(format!("{call}|{}|{:?}|{:?}", t.tenant, t.campaign, t.contact).as_bytes());
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// The `<Parameter>`s (Twilio) or query (Telnyx) a media stream must carry for `call`.
pub fn stream_parameters(state: &AppState, call: Uuid, t: &Target) -> Vec<(&'static str, String)> {
    let mut p = vec![("call_id", call.to_string()), ("tenant", t.tenant.to_string())];
    if let Some(c) = t.campaign {
        p.push(("campaign_id", c.to_string()));
    }
    if let Some(c) = t.contact {
        p.push(("contact_id", c.to_string()));
    }
    p.push(("token", media_token(state, call, t)));
    p
}

fn target_from(params: &BTreeMap<String, String>) -> Option<(Uuid, Target, String)> {
    let id = |k: &str| params.get(k).and_then(|v| v.parse::<Uuid>().ok());
    Some((
        id("call_id")?,
        Target { tenant: id("tenant")?, campaign: id("campaign_id"), contact: id("contact_id") },
        params.get("token")?.clone(),
    ))
}

/// An outbound call carries its target in the webhook URL we gave the provider (signed with
/// it); an inbound call goes to the active inbound campaign answering the dialed number.
async fn resolve_target(
    state: &AppState,
    query: &HashMap<String, String>,
    to: Option<&str>,
) -> Result<Option<Target>, ApiError> {
    let id = |k: &str| query.get(k).and_then(|v| v.parse::<Uuid>().ok());
    if let Some(tenant) = id("tenant") {
        return Ok(Some(Target { tenant, campaign: id("campaign_id"), contact: id("contact_id") }));
    }
    let Some(to) = to else { return Ok(None) };
    Ok(kraliki_projections::campaign::inbound_for_number(&state.pool, to)
        .await?
        .map(|(campaign, tenant)| Target { tenant, campaign: Some(campaign), contact: None }))
}

/// A provider's call, as its first webhook describes it.
struct ProviderCall<'a> {
    provider: &'a str,
    id: &'a str,
    direction: CallDirection,
    from: &'a str,
    to: &'a str,
}

async fn ensure_call(
    state: &AppState,
    call_id: Uuid,
    target: &Target,
    call: ProviderCall<'_>,
) -> Result<i64, ApiError> {
    let ctx = CommandContext::new(target.tenant.to_string(), format!("system:{}", call.provider));
    let command = CallCommand::InitiateCall {
        direction: call.direction,
        provider: call.provider.to_owned(),
        provider_call_id: Some(call.id.to_owned()),
        from: call.from.to_owned(),
        to: call.to.to_owned(),
        campaign_id: target.campaign,
        contact_id: target.contact,
        at: Utc::now(),
    };
    match state.dispatcher.execute::<Call>(&call_id.to_string(), command, &ctx).await {
        Ok(outcome) => Ok(outcome.position.unwrap_or(0)),
        Err(DispatchError::Rejected(CallError::AlreadyExists)) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// The tenant of a call we know (from its first event), for commands on it.
async fn call_tenant(state: &AppState, call_id: Uuid) -> Result<Option<String>, ApiError> {
    Ok(sqlx::query_scalar(
        "SELECT metadata->>'tenant_id' FROM events WHERE aggregate_type = 'Call' AND aggregate_id = $1 AND sequence = 1",
    )
    .bind(call_id.to_string())
    .fetch_optional(&state.pool)
    .await?
    .flatten())
}

/// Applies a provider's webhook to the call, once per idempotency key.
async fn apply_webhook(state: &AppState, call_id: Uuid, hook: &TelephonyWebhook) -> Result<(), ApiError> {
    let (call, _) = state.dispatcher.load::<Call>(&call_id.to_string()).await?;
    if call.status == CallStatus::None {
        tracing::info!(call = %hook.call_id, "webhook for a call we never set up; ignored");
        return Ok(());
    }
    let Some(tenant) = call_tenant(state, call_id).await? else { return Ok(()) };
    let scope = match hook.provider {
        hooks::Provider::Twilio => "twilio",
        hooks::Provider::Telnyx => "telnyx",
    };
    let ctx = CommandContext::new(tenant, format!("system:{scope}")).with_idempotency(
        format!("webhook:{scope}"),
        hook.idempotency_key.clone(),
        None,
    );
    let at = Utc::now();
    let command = match &hook.event {
        TelephonyEvent::Ringing => CallCommand::MarkRinging { at },
        TelephonyEvent::Answered { answered_by } => {
            CallCommand::AnswerCall { answered_by: answered_by.map(|a| format!("{a:?}").to_lowercase()), at }
        }
        TelephonyEvent::Completed { disposition, hangup_cause, .. } => {
            let machine = call.answered_by.as_deref() == Some("machine");
            let outcome = match disposition {
                Disposition::Normal if machine => CallOutcome::Voicemail,
                Disposition::Normal => CallOutcome::Connected,
                Disposition::Busy | Disposition::Rejected => CallOutcome::Busy,
                Disposition::NoAnswer | Disposition::Canceled => CallOutcome::NoAnswer,
                Disposition::Other => CallOutcome::Failed,
            };
            CallCommand::CompleteCall { outcome, disposition: None, hangup_cause: hangup_cause.clone(), at }
        }
        TelephonyEvent::Failed { reason } => CallCommand::FailCall { reason: reason.clone(), at },
        TelephonyEvent::Dtmf { digits } | TelephonyEvent::GatherEnded { digits, .. } => {
            CallCommand::ReceiveDtmf { digits: digits.clone(), at }
        }
        TelephonyEvent::RecordingAvailable { url } => {
            CallCommand::AttachRecording { url: url.clone(), duration_seconds: None, at }
        }
        TelephonyEvent::MachineDetection { answered_by } => match answered_by.outcome() {
            // A machine: the call ends as voicemail when it hangs up; note who answered.
            AmdOutcome::Machine => CallCommand::AnswerCall { answered_by: Some("machine".into()), at },
            _ => return Ok(()),
        },
        TelephonyEvent::Initiated { .. }
        | TelephonyEvent::StreamStarted
        | TelephonyEvent::StreamStopped
        | TelephonyEvent::StreamFailed { .. }
        | TelephonyEvent::Unhandled { .. } => return Ok(()),
    };
    let name = kraliki_domain::CommandPolicy::name(&command);
    match state.dispatcher.execute::<Call>(&call_id.to_string(), command, &ctx).await {
        Ok(_) => {}
        // A late or repeated callback the call refuses (it has ended, say) changes nothing, but
        // it is never dropped silently: logged with the rule it broke, and counted.
        Err(DispatchError::Rejected(rule)) => refused(scope, name, &call_id, &rule),
        Err(e) => return Err(e.into()),
    }
    // An outbound Telnyx call that was answered gets its stream to the AI agent now.
    let outbound = call.direction == Some(CallDirection::Outbound) && call.streams.is_empty();
    if matches!(hook.event, TelephonyEvent::Answered { .. })
        && hook.provider == hooks::Provider::Telnyx
        && outbound
    {
        let tenant =
            ctx.tenant_id.parse().map_err(|_| ApiError::internal(anyhow::anyhow!("bad tenant id")))?;
        let target = Target { tenant, campaign: call.campaign_id, contact: call.contact_id };
        stream_telnyx(state, call_id, &target, &hook.call_id).await?;
    }
    Ok(())
}

/// A webhook's command that the call refused: logged with the cause and counted
/// (`kraliki_webhook_commands_refused_total`), never silently dropped.
fn refused(provider: &'static str, command: &'static str, call_id: &Uuid, rule: &CallError) {
    tracing::info!(provider, command, call = %call_id, reason = %rule, "webhook command refused by the call");
    metrics::counter!("kraliki_webhook_commands_refused_total", "provider" => provider, "command" => command)
        .increment(1);
}

fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn query_map(raw: &Option<String>) -> HashMap<String, String> {
    raw.as_deref()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// Checks X-Twilio-Signature over the public URL of this request and its form parameters.
fn check_twilio(
    state: &AppState,
    headers: &HeaderMap,
    path: &str,
    raw: &Option<String>,
    pairs: &[(String, String)],
) -> Result<(), ApiError> {
    let token = state.settings.providers.twilio_auth_token.clone().ok_or_else(|| {
        ApiError::new(Code::ServiceUnavailable).detail("TWILIO_AUTH_TOKEN is not configured")
    })?;
    let path_and_query = match raw {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_owned(),
    };
    let url = public_url(state, &path_and_query)?;
    let signature = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| forbidden("missing X-Twilio-Signature"))?;
    if !TwilioValidator::new(token).validate_form(&url, pairs, signature) {
        return Err(forbidden("X-Twilio-Signature does not match this request"));
    }
    Ok(())
}

fn twiml(xml: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], xml).into_response()
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
    let pairs = form_pairs(&body);
    check_twilio(&state, &headers, "/api/telephony/twilio/voice", &raw, &pairs)?;
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let call_sid = get("CallSid")
        .ok_or_else(|| ApiError::new(Code::ValidationFailed).field("CallSid", "required", "missing"))?;
    let (from, to) = (get("From").unwrap_or_default(), get("To").unwrap_or_default());
    let direction = if get("Direction").is_some_and(|d| d.starts_with("outbound")) {
        CallDirection::Outbound
    } else {
        CallDirection::Inbound
    };
    let Some(target) = resolve_target(&state, &query_map(&raw), Some(to)).await? else {
        let xml = VoiceResponse::new().say(Say::new("This number is not in service.")).hangup().to_xml();
        return Ok(twiml(xml));
    };
    let call_id = call_uuid("twilio", call_sid);
    // The answer is built before anything is recorded: a call is never written down that we
    // then cannot answer.
    let media = ws_url(&public_url(&state, "/api/telephony/twilio/media")?);
    let mut stream = Stream::new(&media).map_err(|e| ApiError::internal(anyhow::anyhow!("{e}")))?;
    for (name, value) in stream_parameters(&state, call_id, &target) {
        stream = stream.parameter(name, value);
    }
    let answer_xml = VoiceResponse::new().connect(Connect::stream(stream)).to_xml();
    ensure_call(
        &state,
        call_id,
        &target,
        ProviderCall { provider: "twilio", id: call_sid, direction, from, to },
    )
    .await?;
    let ctx = CommandContext::new(target.tenant.to_string(), "system:twilio");
    let answered_by = get("AnsweredBy").map(hooks::AnsweredBy::from_twilio);
    let answer = CallCommand::AnswerCall {
        answered_by: answered_by.map(|a| format!("{a:?}").to_lowercase()),
        at: Utc::now(),
    };
    match state.dispatcher.execute::<Call>(&call_id.to_string(), answer, &ctx).await {
        Ok(_) => {}
        Err(DispatchError::Rejected(rule)) => refused("twilio", "AnswerCall", &call_id, &rule),
        Err(e) => return Err(e.into()),
    }
    Ok(twiml(answer_xml))
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
    let pairs = form_pairs(&body);
    check_twilio(&state, &headers, "/api/telephony/twilio/status", &raw, &pairs)?;
    let callback = TwilioStatusCallback::from_form(&pairs)
        .map_err(|e| ApiError::new(Code::ValidationFailed).detail(e.to_string()))?;
    let hook =
        callback.to_event().map_err(|e| ApiError::new(Code::ValidationFailed).detail(e.to_string()))?;
    apply_webhook(&state, call_uuid("twilio", &callback.call_sid), &hook).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
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
    let key = state.settings.providers.telnyx_public_key.as_deref().ok_or_else(|| {
        ApiError::new(Code::ServiceUnavailable).detail("TELNYX_PUBLIC_KEY is not configured")
    })?;
    let verifier = TelnyxVerifier::from_base64_key(key)
        .map_err(|e| ApiError::internal(anyhow::anyhow!("TELNYX_PUBLIC_KEY: {e:?}")))?;
    let header_of = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let (Some(signature), Some(timestamp)) =
        (header_of("telnyx-signature-ed25519"), header_of("telnyx-timestamp"))
    else {
        return Err(forbidden("missing telnyx-signature-ed25519 / telnyx-timestamp"));
    };
    verifier
        .verify(signature, timestamp, &body, Utc::now().timestamp())
        .map_err(|e| forbidden(&format!("Telnyx signature refused: {e:?}")))?;
    let webhook = TelnyxWebhook::parse(&body)
        .map_err(|e| ApiError::new(Code::ValidationFailed).detail(e.to_string()))?;
    let hook = webhook.to_event().map_err(|e| ApiError::new(Code::ValidationFailed).detail(e.to_string()))?;
    let call_id = call_uuid("telnyx", &hook.call_id);
    if let TelephonyEvent::Initiated { direction: Some(hooks::CallDirection::Inbound), from, to } =
        &hook.event
    {
        let Some(target) = resolve_target(&state, &HashMap::new(), to.as_deref()).await? else {
            tracing::info!(to = ?to, "inbound Telnyx call to a number no campaign answers; ignored");
            return Ok(StatusCode::NO_CONTENT.into_response());
        };
        let (from, to) = (from.clone().unwrap_or_default(), to.clone().unwrap_or_default());
        let call = ProviderCall {
            provider: "telnyx",
            id: &hook.call_id,
            direction: CallDirection::Inbound,
            from: &from,
            to: &to,
        };
        ensure_call(&state, call_id, &target, call).await?;
        answer_telnyx(&state, call_id, &target, &hook).await?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    apply_webhook(&state, call_id, &hook).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Twilio's REST API with the configured account (and endpoint).
fn twilio_client(state: &AppState) -> Result<TwilioRestClient, String> {
    let p = &state.settings.providers;
    let (Some(sid), Some(token)) = (p.twilio_account_sid.clone(), p.twilio_auth_token.clone()) else {
        return Err("TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN are not configured".into());
    };
    let client = TwilioRestClient::new(sid, token).map_err(|e| e.to_string())?;
    match &p.twilio_api_url {
        Some(url) => client.with_base_url(url).map_err(|e| e.to_string()),
        None => Ok(client),
    }
}

/// Telnyx Call Control with the configured key (and endpoint).
fn telnyx_client(state: &AppState) -> Result<TelnyxClient, String> {
    let p = &state.settings.providers;
    let key = p.telnyx_api_key.clone().ok_or("TELNYX_API_KEY is not configured")?;
    let client = TelnyxClient::new(key).map_err(|e| e.to_string())?;
    match &p.telnyx_api_url {
        Some(url) => client.with_base_url(url).map_err(|e| e.to_string()),
        None => Ok(client),
    }
}

/// Carries out the AI's `transfer_to_queue` at the call's provider: Twilio runs `<Enqueue>` on
/// the call, Telnyx `enqueue`s it. Queues are per tenant: the provider's queue is named
/// `<tenant>:<queue>` (at most 64 characters, Twilio's limit).
fn queue_transfer(
    state: &AppState,
    dialect: Dialect,
    tenant: Uuid,
    call_id: Uuid,
    provider_call_id: String,
) -> TransferFn {
    let state = state.clone();
    Box::new(move |queue: String| {
        Box::pin(async move {
            let name: String = format!("{tenant}:{queue}").chars().take(64).collect();
            match dialect {
                Dialect::Twilio => {
                    let twiml = kraliki_voice::telephony::twiml::VoiceResponse::new().enqueue(name).to_xml();
                    twilio_client(&state)?
                        .redirect_call(&provider_call_id, CallInstructions::Twiml(twiml))
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }
                Dialect::Telnyx => {
                    let id = CommandId::parse(format!("enqueue-{call_id}")).map_err(|e| e.to_string())?;
                    telnyx_client(&state)?
                        .enqueue(&provider_call_id, &Enqueue::new(name), &id)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }
            }
        }) as futures::future::BoxFuture<'static, Result<(), String>>
    })
}

/// Our Telnyx media socket for this call, its token in the query.
fn telnyx_stream_url(state: &AppState, call_id: Uuid, target: &Target) -> Result<String, ApiError> {
    let query: Vec<String> =
        stream_parameters(state, call_id, target).into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    Ok(format!("{}?{}", ws_url(&public_url(state, "/api/telephony/telnyx/media")?), query.join("&")))
}

/// Starts the bidirectional stream of an outbound Telnyx call once it is answered (its call id
/// is known only then); the command id makes a redelivered `call.answered` start it once.
async fn stream_telnyx(
    state: &AppState,
    call_id: Uuid,
    target: &Target,
    call_control_id: &str,
) -> Result<(), ApiError> {
    let client = telnyx_client(state).map_err(|e| ApiError::new(Code::ServiceUnavailable).detail(e))?;
    let stream = StreamParams::bidirectional_pcmu(telnyx_stream_url(state, call_id, target)?);
    let id = CommandId::parse(format!("stream-{call_id}"))
        .map_err(|e| ApiError::internal(anyhow::anyhow!("{e}")))?;
    client.streaming_start(call_control_id, &stream, &id).await.map_err(|e| {
        ApiError::new(Code::ServiceUnavailable).detail(format!("Telnyx streaming_start failed: {e}"))
    })?;
    Ok(())
}

/// Answers an inbound Telnyx call with a bidirectional PCMU stream to our media socket; the
/// event id is the command id, so a redelivered webhook answers once.
async fn answer_telnyx(
    state: &AppState,
    call_id: Uuid,
    target: &Target,
    hook: &TelephonyWebhook,
) -> Result<(), ApiError> {
    let client = telnyx_client(state).map_err(|e| ApiError::new(Code::ServiceUnavailable).detail(e))?;
    let stream_url = telnyx_stream_url(state, call_id, target)?;
    let answer = Answer { stream: Some(StreamParams::bidirectional_pcmu(stream_url)), client_state: None };
    let id = CommandId::parse(format!("answer-{}", hook.idempotency_key))
        .map_err(|e| ApiError::internal(anyhow::anyhow!("{e}")))?;
    client
        .answer(&hook.call_id, &answer, &id)
        .await
        .map_err(|e| ApiError::new(Code::ServiceUnavailable).detail(format!("Telnyx answer failed: {e}")))?;
    Ok(())
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

/// The voice-AI provider a campaign uses, with the configured key and endpoints.
pub fn provider_config(state: &AppState, provider: VoiceProvider) -> Result<ProviderConfig, String> {
    let p = &state.settings.providers;
    let missing = || format!("{} has no API key configured", provider.as_str());
    Ok(match provider {
        VoiceProvider::Openai => {
            let mut c = OpenAiConfig::new(p.openai_api_key.clone().ok_or_else(missing)?);
            if let Some(url) = &p.openai_realtime_url {
                c.base_url = url.clone();
            }
            ProviderConfig::OpenAi(c)
        }
        VoiceProvider::Gemini => {
            let mut c = GeminiConfig::new(p.gemini_api_key.clone().ok_or_else(missing)?);
            if let Some(url) = &p.gemini_live_url {
                c.url = url.clone();
            }
            ProviderConfig::Gemini(c)
        }
        // A Deepgram campaign's calls talk to its Voice Agent (speech-to-text, an LLM and
        // text-to-speech on Deepgram's side, μ-law both ways).
        VoiceProvider::Deepgram => {
            let mut c = DeepgramAgentConfig::new(p.deepgram_api_key.clone().ok_or_else(missing)?);
            // DEEPGRAM_AGENT_URL, else the agent's path on DEEPGRAM_URL (one base for Deepgram).
            if let Some(url) = &p.deepgram_agent_url {
                c.url = url.clone();
            } else if let Some(base) = &p.deepgram_url {
                c.url = format!("{}/v1/agent/converse", ws_url(base.trim_end_matches('/')));
            }
            if let Some(think) = &p.deepgram_think_provider {
                c.think_provider = think.clone();
            }
            if let Some(model) = &p.deepgram_think_model {
                c.think_model = model.clone();
            }
            ProviderConfig::DeepgramAgent(c)
        }
    })
}

/// Resolves a stream's call: checks its token, reads the campaign's agent settings and the
/// contact, and connects the voice provider. A failure fails the call with the reason.
async fn setup(
    state: AppState,
    dialect: Dialect,
    start: StreamStart,
    query: BTreeMap<String, String>,
) -> Result<CallSetup, String> {
    let mut params = query;
    params.extend(start.parameters.clone());
    let Some((call_id, target, token)) = target_from(&params) else {
        return Err("the stream carries no call parameters".into());
    };
    let expected = media_token(&state, call_id, &target);
    if !bool::from(subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), token.as_bytes())) {
        return Err("the stream's token does not match its call".into());
    }
    let fail = |reason: String| {
        let state = state.clone();
        let tenant = target.tenant;
        async move {
            let ctx = CommandContext::new(tenant.to_string(), "system:media-bridge");
            let _ = state
                .dispatcher
                .execute::<Call>(
                    &call_id.to_string(),
                    CallCommand::FailCall { reason: reason.clone(), at: Utc::now() },
                    &ctx,
                )
                .await;
            reason
        }
    };
    let settings = match target.campaign {
        Some(c) => match kraliki_projections::campaign::get(&state.pool, target.tenant, c).await {
            Ok(Some(row)) => row.settings().map_err(|e| e.to_string())?,
            Ok(None) => return Err(fail("the call's campaign no longer exists".into()).await),
            Err(e) => return Err(e.to_string()),
        },
        None => kraliki_domain::campaign::CampaignSettings::default(),
    };
    let contact = match target.contact {
        Some(c) => kraliki_projections::contact::get(&state.pool, target.tenant, c).await.ok().flatten().map(|row| {
            serde_json::json!({"first_name": row.first_name, "last_name": row.last_name, "company": row.company,
                "email": row.email, "language": row.language, "custom_fields": row.custom_fields, "phone_number": row.phone_number})
        }),
        None => None,
    };
    let provider = match provider_config(&state, settings.primary_provider) {
        Ok(p) => p,
        Err(reason) => return Err(fail(reason).await),
    };
    let greeting = settings.configuration.get("greeting").and_then(|g| g.as_str()).map(str::to_owned);
    let session_config = SessionConfig {
        instructions: [settings.instructions.clone(), settings.script.clone()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("\n\n"),
        voice: settings.voice.clone(),
        language: Some(settings.language.clone()),
        tools: call_tools(),
        greeting,
    };
    match ai::connect(&provider, &session_config).await {
        Ok(session) => Ok(CallSetup {
            call_id,
            tenant_id: target.tenant.to_string(),
            contact,
            session,
            transfer: Some(queue_transfer(&state, dialect, target.tenant, call_id, start.provider_call_id)),
        }),
        Err(e) => Err(fail(format!("voice provider unavailable: {e}")).await),
    }
}

/// The phone's media WebSocket, read and written by the call's bridge task itself.
struct PhoneWs(WebSocket);

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
    let mut bridge = Bridge::new(state.dispatcher.clone());
    bridge.measure = state.bridge_stats.lock().map(|s| s.is_some()).unwrap_or(false);
    let setup_state = state.clone();
    let result =
        bridge.run(dialect, &mut phone, move |start| setup(setup_state, dialect, start, query)).await;
    match &result {
        Err(reason) => tracing::warn!(%reason, "media stream refused"),
        Ok((_, stats)) if bridge.measure => {
            if let Ok(mut collected) = state.bridge_stats.lock() {
                if let Some(all) = collected.as_mut() {
                    all.frames_in += stats.frames_in;
                    all.frames_out += stats.frames_out;
                    all.inbound_us.extend(&stats.inbound_us);
                    all.outbound_us.extend(&stats.outbound_us);
                }
            }
        }
        Ok(_) => {}
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(3), phone.0.close()).await;
}

/// Places an outbound call to a contact for a campaign, through Twilio or Telnyx.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutboundBody {
    pub campaign_id: Uuid,
    pub contact_id: Uuid,
    /// Detect answering machines (Twilio `MachineDetection=Enable`, Telnyx
    /// `answering_machine_detection=detect`; reported asynchronously).
    #[serde(default)]
    pub detect_machine: bool,
    /// The carrier: else the campaign's `configuration.telephony_provider`, else Twilio when it
    /// is configured, else Telnyx.
    #[serde(default)]
    pub provider: Option<Carrier>,
}

/// A telephony provider that places calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Carrier {
    Twilio,
    Telnyx,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct OutboundCall {
    pub call_id: Uuid,
    pub provider: String,
    pub provider_call_id: String,
    pub status: String,
    pub to: String,
    pub from: String,
}

#[utoipa::path(post, path = "/api/v1/calls/outbound", tag = "calls", operation_id = "calls_outbound", request_body = OutboundBody,
    responses((status = 201, body = OutboundCall, description = "The provider accepted the call; its progress arrives as webhooks"),
        (status = 404, body = crate::error::Problem, description = "No such campaign or contact (problem+json)"),
        (status = 409, body = crate::error::Problem, description = "Campaign not active, or the contact may not be called now (do-not-call, outside the calling window) (problem+json)"),
        (status = 422, body = crate::error::Problem, description = "The campaign has no caller id (problem+json)"),
        (status = 503, body = crate::error::Problem, description = "The carrier (Twilio or Telnyx) is not configured, or it refused (problem+json)")),
    security(("bearer" = [])))]
pub async fn outbound(
    State(state): State<AppState>,
    user: crate::auth::AuthUser,
    body: crate::extract::ApiJson<OutboundBody>,
) -> Result<Response, ApiError> {
    user.require(super::common::MANAGERS)?;
    let b = body.value;
    let campaign = kraliki_projections::campaign::get(&state.pool, user.company_id, b.campaign_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let contact = kraliki_projections::contact::get(&state.pool, user.company_id, b.contact_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let (answer, _) = place_call(&state, &campaign, &contact, b.detect_machine, b.provider).await?;
    Ok((StatusCode::CREATED, axum::Json(answer)).into_response())
}

/// Places a campaign's call to one of its tenant's contacts, after the checks every dial
/// passes (active campaign, do-not-call, the calling window in every zone of the contact, a
/// caller id), through `carrier` (else the campaign's `configuration.telephony_provider`,
/// else Twilio when configured, else Telnyx). Returns the call and the position of its
/// `CallInitiated`.
pub(crate) async fn place_call(
    state: &AppState,
    campaign: &kraliki_projections::campaign::CampaignRow,
    contact: &kraliki_projections::contact::ContactRow,
    detect_machine: bool,
    carrier: Option<Carrier>,
) -> Result<(OutboundCall, i64), ApiError> {
    use kraliki_voice::telephony::twilio_rest::{CallProgressEvent, CreateCall, MachineDetection};
    let tenant = campaign.tenant_id;
    if campaign.status != "active" {
        return Err(ApiError::new(Code::InvalidState).detail(format!("the campaign is {}", campaign.status)));
    }
    if contact.do_not_call
        || kraliki_projections::contact::is_dnc(&state.pool, tenant, &contact.phone_number).await?
    {
        return Err(ApiError::new(Code::InvalidState).detail("the contact is on a do-not-call list"));
    }
    let settings = campaign.settings()?;
    if !settings.may_call_at(&contact.timezones, chrono::Utc::now()) {
        return Err(ApiError::new(Code::InvalidState)
            .detail("outside the campaign's calling window in the contact's local time (every zone the number may be in)"));
    }
    let from = settings.caller_id.clone().ok_or_else(|| {
        ApiError::new(Code::ValidationFailed).field(
            "caller_id",
            "required",
            "the campaign has no caller id to call from",
        )
    })?;
    let target = Target { tenant, campaign: Some(campaign.id), contact: Some(contact.id) };
    let p = &state.settings.providers;
    let carrier = match carrier {
        Some(carrier) => carrier,
        None => match settings.configuration.get("telephony_provider").and_then(serde_json::Value::as_str) {
            Some("telnyx") => Carrier::Telnyx,
            Some("twilio") => Carrier::Twilio,
            _ if p.twilio_account_sid.is_none() && p.telnyx_api_key.is_some() => Carrier::Telnyx,
            _ => Carrier::Twilio,
        },
    };
    if carrier == Carrier::Telnyx {
        return dial_telnyx(state, &target, &contact.phone_number, &from, detect_machine).await;
    }
    let client = twilio_client(state).map_err(|e| ApiError::new(Code::ServiceUnavailable).detail(e))?;
    let query = format!("tenant={}&campaign_id={}&contact_id={}", target.tenant, campaign.id, contact.id);
    let mut create = CreateCall::new(
        contact.phone_number.clone(),
        from.clone(),
        CallInstructions::Url(public_url(state, &format!("/api/telephony/twilio/voice?{query}"))?),
    );
    create.status_callback = Some(public_url(state, "/api/telephony/twilio/status")?);
    create.status_callback_events = CallProgressEvent::ALL.to_vec();
    if detect_machine {
        create.machine_detection = Some(MachineDetection::Enable);
        create.async_amd_status_callback = Some(public_url(state, "/api/telephony/twilio/status")?);
    }
    let placed = client.create_call(&create).await.map_err(|e| {
        ApiError::new(Code::ServiceUnavailable).detail(format!("Twilio refused the call: {e}"))
    })?;
    let call_id = call_uuid("twilio", &placed.sid);
    let call = ProviderCall {
        provider: "twilio",
        id: &placed.sid,
        direction: CallDirection::Outbound,
        from: &from,
        to: &contact.phone_number,
    };
    let position = ensure_call(state, call_id, &target, call).await?;
    let answer = OutboundCall {
        call_id,
        provider: "twilio".into(),
        provider_call_id: placed.sid,
        status: placed.status,
        to: contact.phone_number.clone(),
        from,
    };
    Ok((answer, position))
}

/// Places an outbound call through Telnyx Call Control; its stream starts when it is answered.
async fn dial_telnyx(
    state: &AppState,
    target: &Target,
    to: &str,
    from: &str,
    detect_machine: bool,
) -> Result<(OutboundCall, i64), ApiError> {
    use kraliki_voice::telephony::telnyx_control::{AnsweringMachineDetection, Dial};
    let unavailable = |e: String| ApiError::new(Code::ServiceUnavailable).detail(e);
    let client = telnyx_client(state).map_err(unavailable)?;
    let connection = state
        .settings
        .providers
        .telnyx_connection_id
        .clone()
        .ok_or_else(|| unavailable("TELNYX_CONNECTION_ID is not configured".into()))?;
    let mut dial = Dial::new(connection, to, from);
    if detect_machine {
        dial.answering_machine_detection = Some(AnsweringMachineDetection::Detect);
    }
    let id = CommandId::parse(format!("dial-{}", Uuid::now_v7())).map_err(|e| unavailable(e.to_string()))?;
    let dialed =
        client.dial(&dial, &id).await.map_err(|e| unavailable(format!("Telnyx refused the call: {e}")))?;
    let call_id = call_uuid("telnyx", &dialed.call_control_id);
    let call = ProviderCall {
        provider: "telnyx",
        id: &dialed.call_control_id,
        direction: CallDirection::Outbound,
        from,
        to,
    };
    let position = ensure_call(state, call_id, target, call).await?;
    let answer = OutboundCall {
        call_id,
        provider: "telnyx".into(),
        provider_call_id: dialed.call_control_id,
        status: "initiated".into(),
        to: to.to_owned(),
        from: from.to_owned(),
    };
    Ok((answer, position))
}
