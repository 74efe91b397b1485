//! `/api/v1/calls`: the call log, read from `call_view` and `call_timeline_view` (one row per
//! call, every step of it, its transcript), and the call's raw event history from the log for
//! auditors. Calls are written by telephony and voice sessions, not here.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Days, NaiveDate, Utc};
use kraliki_projections::call::{self as view, CallFilter, CallRow, TimelineRow, TranscriptRow};
use kraliki_projections::company::Cursor;
use kraliki_projections::StoredEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::common::READERS;
use crate::auth::AuthUser;
use crate::error::{ApiError, Code};
use crate::extract::{bad_cursor, page_limit, ApiQuery, MinPosition, PathId};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(read))
        .routes(routes!(transcript))
        .routes(routes!(events))
        .routes(routes!(outbound))
        .routes(routes!(disposition))
}

/// What the call came to, as the agent who handled it says (during the call, in wrap-up, or a
/// correction later).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DispositionBody {
    /// A code: letters, digits, `_` or `-` (spaces become `_`, stored in lower case), at most
    /// 64. The campaign's `success_dispositions` count as conversions.
    pub disposition: String,
    /// Free text, at most 2,000 characters.
    #[serde(default)]
    pub notes: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/calls/{id}/disposition", tag = "calls", operation_id = "calls_disposition", request_body = DispositionBody,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = CallResponse, description = "The disposition is the call's (`CallDispositionSet`; the campaign's counts move with it)"),
        (status = 403, body = crate::error::Problem, description = "Neither a supervisor nor the agent the call was assigned to (problem+json)"),
        (status = 404, body = crate::error::Problem, description = "Not found (problem+json)"),
        (status = 422, body = crate::error::Problem, description = "The disposition or the notes are not valid (problem+json)")),
    security(("bearer" = [])))]
async fn disposition(
    State(state): State<AppState>,
    user: AuthUser,
    headers: axum::http::HeaderMap,
    PathId(id): PathId,
    crate::extract::IdempotencyKey(key): crate::extract::IdempotencyKey,
    body: crate::extract::ApiJson<DispositionBody>,
) -> Result<Response, ApiError> {
    user.require(READERS)?;
    owned(&state, &user, id).await?;
    let agent = kraliki_projections::agent::for_user(&state.pool, user.company_id, user.user_id).await?;
    if user.require(super::common::MANAGERS).is_err() {
        // An agent dispositions the calls they were assigned.
        let entry = kraliki_projections::queued_call::current(&state.pool, user.company_id, id).await?;
        let theirs = agent
            .as_ref()
            .zip(entry)
            .is_some_and(|(a, e)| e.agent_id == Some(a.id) && e.status == "assigned");
        if !theirs {
            return Err(ApiError::new(Code::Forbidden)
                .detail("only the agent the call was assigned to, or a supervisor"));
        }
    }
    let b = body.value;
    let ctx = super::common::tenant_context(&headers, &user, key, body.fingerprint);
    let command = kraliki_domain::call::CallCommand::SetDisposition {
        disposition: b.disposition,
        notes: b.notes,
        agent_id: agent.map(|a| a.id),
        at: Utc::now(),
    };
    let outcome =
        state.dispatcher.execute::<kraliki_domain::call::Call>(&id.to_string(), command, &ctx).await?;
    state.wait_for(view::NAME, outcome.position).await?;
    let row = owned(&state, &user, id).await?;
    let mut response = Json(CallResponse::from(row)).into_response();
    super::common::write_headers(&mut response, &outcome, None);
    Ok(response)
}

/// Places an outbound call to a contact for a campaign, through Twilio or Telnyx.
#[derive(Debug, Deserialize, ToSchema)]
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
    pub provider: Option<kraliki_voice::calls::Carrier>,
}

#[utoipa::path(post, path = "/api/v1/calls/outbound", tag = "calls", operation_id = "calls_outbound", request_body = OutboundBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "A repeated key returns the first call and dials nobody again")),
    responses((status = 201, body = kraliki_voice::calls::PlacedCall, description = "The provider accepted the call; its progress arrives as webhooks"),
        (status = 404, body = crate::error::Problem, description = "No such campaign or contact (problem+json)"),
        (status = 409, body = crate::error::Problem, description = "Campaign not active, or the contact may not be called now (do-not-call, outside the calling window) (problem+json)"),
        (status = 422, body = crate::error::Problem, description = "The campaign has no caller id (problem+json)"),
        (status = 503, body = crate::error::Problem, description = "The carrier (Twilio or Telnyx) is not configured, or it refused (problem+json)")),
    security(("bearer" = [])))]
pub async fn outbound(
    State(state): State<AppState>,
    user: AuthUser,
    headers: axum::http::HeaderMap,
    crate::extract::IdempotencyKey(key): crate::extract::IdempotencyKey,
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
    let ctx = super::common::tenant_context(&headers, &user, key, body.fingerprint);
    let dial = kraliki_voice::calls::Dial {
        call_id: Uuid::now_v7(),
        tenant: user.company_id,
        campaign: Some(&campaign),
        callee: kraliki_voice::calls::Callee::Contact(&contact),
        from: None,
        detect_machine: b.detect_machine,
        carrier: b.provider,
        metadata: None,
    };
    let placed = state.calls.place(dial, &ctx).await?;
    state.wait_for(view::NAME, placed.position).await?;
    Ok((axum::http::StatusCode::CREATED, Json(placed)).into_response())
}

/// A call as the call log shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallResponse {
    pub id: Uuid,
    /// inbound | outbound
    pub direction: String,
    /// twilio | telnyx | ...
    pub provider: String,
    /// The provider's id for the call (Twilio `CallSid`, Telnyx `call_control_id`).
    pub provider_call_id: Option<String>,
    pub from_number: String,
    pub to_number: String,
    pub campaign_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    /// initiated | ringing | in_progress | completed | failed
    pub status: String,
    /// Who answered (human, machine, ...), as the provider said.
    pub answered_by: Option<String>,
    /// connected | no_answer | busy | failed | voicemail | abandoned, once ended.
    pub outcome: Option<String>,
    pub disposition: Option<String>,
    pub hangup_cause: Option<String>,
    /// Why the call failed, when it did.
    pub failure_reason: Option<String>,
    /// Talk time: from the answer to the end; 0 when never answered; null while live.
    pub duration_seconds: Option<i64>,
    /// From initiation to the end; null while live.
    pub total_seconds: Option<i64>,
    pub recording_url: Option<String>,
    /// Where a transfer was asked to go (the last one).
    pub transfer_target: Option<String>,
    /// What the call was about: the AI agent's summary at its end, or the note it handed to
    /// the human agent with a transfer (the last one).
    pub summary: Option<String>,
    pub started_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Sequence of the call's stream this row reflects.
    pub version: i64,
    pub updated_at: DateTime<Utc>,
    /// What the requester of the call asked to keep with it.
    pub metadata: Option<Value>,
    /// The voice agent's provider (openai | gemini | deepgram), model and voice, once connected.
    pub ai_provider: Option<String>,
    pub ai_model: Option<String>,
    pub ai_voice: Option<String>,
    /// The agent's notes with a disposition set by hand, the human agent who set it, and when.
    pub disposition_notes: Option<String>,
    pub disposition_agent_id: Option<Uuid>,
    pub disposition_at: Option<DateTime<Utc>>,
}

impl From<CallRow> for CallResponse {
    fn from(r: CallRow) -> Self {
        Self {
            id: r.id,
            direction: r.direction,
            provider: r.provider,
            provider_call_id: r.provider_call_id,
            from_number: r.from_number,
            to_number: r.to_number,
            campaign_id: r.campaign_id,
            contact_id: r.contact_id,
            status: r.status,
            answered_by: r.answered_by,
            outcome: r.outcome,
            disposition: r.disposition,
            hangup_cause: r.hangup_cause,
            failure_reason: r.failure_reason,
            duration_seconds: r.duration_seconds,
            total_seconds: r.ended_at.map(|end| (end - r.started_at).num_seconds().max(0)),
            recording_url: r.recording_url,
            transfer_target: r.transfer_target,
            summary: r.summary,
            started_at: r.started_at,
            answered_at: r.answered_at,
            ended_at: r.ended_at,
            version: r.version,
            updated_at: r.updated_at,
            metadata: r.metadata,
            ai_provider: r.ai_provider,
            ai_model: r.ai_model,
            ai_voice: r.ai_voice,
            disposition_notes: r.disposition_notes,
            disposition_agent_id: r.disposition_agent_id,
            disposition_at: r.disposition_at,
        }
    }
}

/// One step of a call.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineStep {
    /// The event's sequence in the call's stream.
    pub seq: i64,
    pub at: DateTime<Utc>,
    /// The event type: CallInitiated, CallRinging, CallAnswered, MediaStreamStarted,
    /// MediaStreamStopped, DtmfReceived, TranscriptSegmentAdded, AiFunctionCalled,
    /// TransferRequested, RecordingAvailable, CallCompleted, CallFailed.
    pub kind: String,
    /// The event's facts (its payload without `at`).
    pub detail: Value,
}

impl From<TimelineRow> for TimelineStep {
    fn from(r: TimelineRow) -> Self {
        Self { seq: r.seq, at: r.at, kind: r.kind, detail: r.detail }
    }
}

/// One transcript segment.
#[derive(Debug, Serialize, ToSchema)]
pub struct TranscriptSegment {
    /// The event's sequence in the call's stream.
    pub seq: i64,
    pub at: DateTime<Utc>,
    /// caller | agent
    pub speaker: String,
    pub text: String,
    /// Offsets from the start of the call's audio.
    pub start_ms: i64,
    pub end_ms: i64,
}

impl From<TranscriptRow> for TranscriptSegment {
    fn from(r: TranscriptRow) -> Self {
        Self {
            seq: r.seq,
            at: r.at,
            speaker: r.speaker,
            text: r.text,
            start_ms: r.start_ms,
            end_ms: r.end_ms,
        }
    }
}

/// A call with every step and its transcript.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallDetail {
    #[serde(flatten)]
    pub call: CallResponse,
    /// Every step, in stream order.
    pub timeline: Vec<TimelineStep>,
    /// Transcript segments in spoken order.
    pub transcript: Vec<TranscriptSegment>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Transcript {
    pub call_id: Uuid,
    /// In spoken order (by start offset).
    pub segments: Vec<TranscriptSegment>,
}

/// An event of the call's stream, as stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallEventRecord {
    /// Place in the whole log.
    pub global_position: i64,
    /// Place in the call's stream, from 1.
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    /// The stored payload, tagged by event type.
    pub payload: Value,
    /// event_id, tenant_id, actor, correlation_id, causation_id, occurred_at, idempotency key.
    pub metadata: Value,
    pub recorded_at: DateTime<Utc>,
}

impl From<StoredEvent> for CallEventRecord {
    fn from(e: StoredEvent) -> Self {
        Self {
            global_position: e.global_position,
            sequence: e.sequence,
            event_type: e.event_type,
            event_version: e.event_version,
            payload: e.payload,
            metadata: e.metadata,
            recorded_at: e.recorded_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallEvents {
    pub call_id: Uuid,
    /// In sequence order.
    pub events: Vec<CallEventRecord>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
    /// initiated | ringing | in_progress | completed | failed
    status: Option<String>,
    /// inbound | outbound
    direction: Option<String>,
    campaign_id: Option<Uuid>,
    contact_id: Option<Uuid>,
    provider_call_id: Option<String>,
    /// Started at or after: RFC 3339, or a date (YYYY-MM-DD, UTC).
    from: Option<String>,
    /// Started before: RFC 3339, or a date (YYYY-MM-DD, UTC), which includes that whole day.
    to: Option<String>,
    #[allow(dead_code)] // read by `MinPosition`
    min_position: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct TranscriptQuery {
    /// json (default) | text: `Caller: …` / `Agent: …` lines
    format: Option<String>,
    #[allow(dead_code)] // read by `MinPosition`
    min_position: Option<i64>,
}

/// A date bound: an instant, or a UTC day (its start; with `end_of_day`, the next day's start).
fn instant(field: &'static str, raw: &str, end_of_day: bool) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(at) = DateTime::parse_from_rfc3339(raw) {
        return Ok(at.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .and_then(|d| if end_of_day { d.checked_add_days(Days::new(1)) } else { Some(d) })
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
        .ok_or_else(|| {
            ApiError::new(Code::InvalidQuery).field(field, "invalid", "an RFC 3339 time or a YYYY-MM-DD date")
        })
}

fn one_of(field: &'static str, value: Option<&str>, allowed: &[&str]) -> Result<(), ApiError> {
    match value {
        Some(v) if !allowed.contains(&v) => Err(ApiError::new(Code::InvalidQuery).field(
            field,
            "invalid",
            format!("one of {}", allowed.join(", ")),
        )),
        _ => Ok(()),
    }
}

/// The call if it belongs to the caller's company (else 404).
async fn owned(state: &AppState, user: &AuthUser, id: Uuid) -> Result<CallRow, ApiError> {
    view::get(&state.pool, user.company_id, id).await?.ok_or_else(ApiError::not_found)
}

#[utoipa::path(get, path = "/api/v1/calls", tag = "calls", operation_id = "calls_list", params(ListQuery),
    responses((status = 200, body = Vec<CallResponse>, headers(("Link" = String, description = "The next page: `<…?cursor=…>; rel=\"next\"` (RFC 8288); absent on the last page"), ("X-Next-Cursor" = String, description = "The next page's cursor")), description = "Newest first (by start)"), (status = 400, body = crate::error::Problem, description = "Invalid query (problem+json)")),
    security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    MinPosition(min): MinPosition,
    ApiQuery(q): ApiQuery<ListQuery>,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
) -> Result<super::common::Paged<CallResponse>, ApiError> {
    user.require(READERS)?;
    let limit = page_limit(q.limit)?;
    one_of("status", q.status.as_deref(), &view::STATUSES)?;
    one_of("direction", q.direction.as_deref(), &["inbound", "outbound"])?;
    let started_from = q.from.as_deref().map(|raw| instant("from", raw, false)).transpose()?;
    let started_before = q.to.as_deref().map(|raw| instant("to", raw, true)).transpose()?;
    let cursor = q.cursor.as_deref().map(|c| Cursor::decode(c).ok_or_else(bad_cursor)).transpose()?;
    state.wait_for(view::NAME, min).await?;
    let filter = CallFilter {
        status: q.status,
        direction: q.direction,
        campaign_id: q.campaign_id,
        contact_id: q.contact_id,
        provider_call_id: q.provider_call_id,
        started_from,
        started_before,
    };
    let page = view::list(&state.pool, user.company_id, &filter, cursor.as_ref(), limit)
        .await
        .map_err(|e| if e.is::<chrono::ParseError>() { bad_cursor() } else { ApiError::from(e) })?;
    let items = page.items.into_iter().map(CallResponse::from).collect();
    Ok(super::common::Paged::new(items, page.next_cursor, &uri))
}

#[utoipa::path(get, path = "/api/v1/calls/{id}", tag = "calls", operation_id = "calls_read", params(("id" = Uuid, Path),
        ("min_position" = Option<i64>, Query, description = "Wait until the read model has applied this log position")),
    responses((status = 200, body = CallDetail, description = "The call, every step of it and its transcript"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)")),
    security(("bearer" = [])))]
pub(super) async fn read(
    State(state): State<AppState>,
    user: AuthUser,
    PathId(id): PathId,
    MinPosition(min): MinPosition,
) -> Result<Json<CallDetail>, ApiError> {
    user.require(READERS)?;
    state.wait_for(view::NAME, min).await?;
    let call = owned(&state, &user, id).await?;
    let timeline = view::timeline(&state.pool, id).await?.into_iter().map(TimelineStep::from).collect();
    let transcript =
        view::transcript(&state.pool, id).await?.into_iter().map(TranscriptSegment::from).collect();
    Ok(Json(CallDetail { call: call.into(), timeline, transcript }))
}

/// `Caller: …` / `Agent: …`, one line per segment.
fn as_text(segments: &[TranscriptRow]) -> String {
    let mut out = String::new();
    for s in segments {
        let mut speaker = s.speaker.chars();
        let label: String =
            speaker.next().map(|c| c.to_uppercase().chain(speaker).collect()).unwrap_or_default();
        // A segment's text is one line of the transcript, whatever line breaks it carried.
        let text = s.text.split_whitespace().collect::<Vec<_>>().join(" ");
        out.push_str(&label);
        out.push_str(": ");
        out.push_str(&text);
        out.push('\n');
    }
    out
}

#[utoipa::path(get, path = "/api/v1/calls/{id}/transcript", tag = "calls", operation_id = "calls_transcript", params(("id" = Uuid, Path), TranscriptQuery),
    responses((status = 200, description = "The transcript in spoken order: JSON, or with `format=text` plain `Caller: …` / `Agent: …` lines",
            content((Transcript = "application/json"), (String = "text/plain"))),
        (status = 400, body = crate::error::Problem, description = "Invalid query (problem+json)"),
        (status = 404, body = crate::error::Problem, description = "Not found (problem+json)")),
    security(("bearer" = [])))]
async fn transcript(
    State(state): State<AppState>,
    user: AuthUser,
    PathId(id): PathId,
    MinPosition(min): MinPosition,
    ApiQuery(q): ApiQuery<TranscriptQuery>,
) -> Result<Response, ApiError> {
    user.require(READERS)?;
    let text = match q.format.as_deref().unwrap_or("json") {
        "json" => false,
        "text" => true,
        _ => return Err(ApiError::new(Code::InvalidQuery).field("format", "invalid", "json or text")),
    };
    state.wait_for(view::NAME, min).await?;
    owned(&state, &user, id).await?;
    let segments = view::transcript(&state.pool, id).await?;
    if text {
        let mut r = as_text(&segments).into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        return Ok(r);
    }
    let segments = segments.into_iter().map(TranscriptSegment::from).collect();
    Ok(Json(Transcript { call_id: id, segments }).into_response())
}

#[utoipa::path(get, path = "/api/v1/calls/{id}/events", tag = "calls", operation_id = "calls_events", params(("id" = Uuid, Path)),
    responses((status = 200, body = CallEvents, description = "The call's stream as stored in the event log, in sequence order, with metadata (for audit)"),
        (status = 404, body = crate::error::Problem, description = "Not found (problem+json)")),
    security(("bearer" = [])))]
async fn events(
    State(state): State<AppState>,
    user: AuthUser,
    PathId(id): PathId,
) -> Result<Json<CallEvents>, ApiError> {
    user.require(READERS)?;
    // The log itself, not a read model: complete as soon as a command has answered.
    let history = view::history(&state.pool, user.company_id, id).await?;
    if history.is_empty() {
        return Err(ApiError::not_found());
    }
    Ok(Json(CallEvents { call_id: id, events: history.into_iter().map(CallEventRecord::from).collect() }))
}
