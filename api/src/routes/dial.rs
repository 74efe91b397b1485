//! Calls placed on request rather than by a campaign's dialer: to a number or a contact, with or
//! without a campaign (`POST /api/telephony/call`, `POST /api/v1/calls/start`, the seed's
//! `POST /api/v1/telephony/outbound`), and the unversioned paths the template UI and the seed's
//! MCP client call. Every one goes through the calls service's `place`: do-not-call, the
//! calling window of the number's zones, the company's caller ids, the carrier's answer.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use kraliki_domain::values::PhoneNumber;
use kraliki_voice::calls::{Callee, Carrier, Dial, PlacedCall};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::calls::{CallDetail, OutboundBody};
use super::common::{tenant_context, Checks, MANAGERS};
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::{ApiJson, IdempotencyKey, MinPosition, PathId};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(telephony_call))
        .routes(routes!(telephony_call_read))
        .routes(routes!(calls_start))
        .routes(routes!(telephony_outbound))
        .routes(routes!(outbound_alias))
}

/// A call to a number (or a contact), optionally for a campaign.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallRequest {
    /// The number to call (E.164, or national with `default_region`). Else `contact_id`'s.
    #[serde(default)]
    to_number: Option<String>,
    /// A contact of the company to call (its number, zones and do-not-call flag).
    #[serde(default)]
    contact_id: Option<Uuid>,
    /// ISO 3166 region for a national `to_number`, e.g. `CZ`.
    #[serde(default)]
    default_region: Option<String>,
    /// One of the company's caller ids (its campaigns'); else the campaign's, else the first.
    #[serde(default)]
    from_number: Option<String>,
    /// twilio | telnyx; else the campaign's, else the company's default, else the configured one.
    #[serde(default)]
    provider: Option<Carrier>,
    /// A campaign of the company: its agent settings, calling window and caller id. It must be
    /// active.
    #[serde(default)]
    campaign_id: Option<Uuid>,
    #[serde(default)]
    detect_machine: bool,
    /// Kept with the call as given (a JSON object).
    #[serde(default)]
    metadata: Option<Value>,
}

/// The seed's `POST /api/v1/telephony/outbound` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeedOutbound {
    to_number: String,
    #[serde(default)]
    from_number: Option<String>,
    /// twilio | telnyx
    #[serde(default)]
    telephony_provider: Option<Carrier>,
    /// Not supported: the call's media always streams to this server's bridge (a URL of the
    /// client's choosing would take the audio elsewhere). Refused with 422 when given.
    #[serde(default)]
    stream_url: Option<String>,
    #[serde(default)]
    metadata: Option<Value>,
}

async fn place(
    state: &AppState,
    user: &AuthUser,
    headers: &HeaderMap,
    key: Option<String>,
    fingerprint: String,
    b: CallRequest,
) -> Result<PlacedCall, ApiError> {
    user.require(MANAGERS)?;
    let mut checks = Checks::default();
    let number = match (&b.to_number, b.contact_id) {
        (Some(n), None) => checks.take(PhoneNumber::parse(n, b.default_region.as_deref())),
        (None, Some(_)) => None,
        (Some(_), Some(_)) => {
            checks.0.push(kraliki_domain::values::InvalidValue::new(
                "to_number",
                "conflict",
                "give to_number or contact_id, not both",
            ));
            None
        }
        (None, None) => {
            checks.0.push(kraliki_domain::values::InvalidValue::new(
                "to_number",
                "required",
                "give to_number or contact_id",
            ));
            None
        }
    };
    if b.metadata.as_ref().is_some_and(|m| !m.is_object()) {
        checks.0.push(kraliki_domain::values::InvalidValue::new(
            "metadata",
            "invalid",
            "must be a JSON object",
        ));
    }
    let from = match &b.from_number {
        Some(f) => {
            checks.take(PhoneNumber::parse(f, b.default_region.as_deref())).map(|p| p.as_str().to_owned())
        }
        None => None,
    };
    checks.finish()?;
    let campaign = match b.campaign_id {
        Some(id) => Some(
            kraliki_projections::campaign::get(&state.pool, user.company_id, id)
                .await?
                .ok_or_else(ApiError::not_found)?,
        ),
        None => None,
    };
    let contact = match b.contact_id {
        Some(id) => Some(
            kraliki_projections::contact::get(&state.pool, user.company_id, id)
                .await?
                .ok_or_else(ApiError::not_found)?,
        ),
        None => None,
    };
    let callee = match (&contact, number) {
        (Some(c), _) => Callee::Contact(c),
        (None, Some(n)) => Callee::Number { zones: n.time_zones(), number: n.as_str().to_owned() },
        (None, None) => return Err(ApiError::not_found()),
    };
    let ctx = tenant_context(headers, user, key, fingerprint);
    let dial = Dial {
        call_id: Uuid::now_v7(),
        tenant: user.company_id,
        campaign: campaign.as_ref(),
        callee,
        from,
        detect_machine: b.detect_machine,
        carrier: b.provider,
        metadata: b.metadata,
    };
    let placed = state.calls.place(dial, &ctx).await?;
    // The caller may read the call at once (`GET /api/telephony/call/{id}`).
    state.wait_for(kraliki_projections::call::NAME, placed.position).await?;
    Ok(placed)
}

#[utoipa::path(post, path = "/api/telephony/call", tag = "telephony", operation_id = "telephony_call", request_body = CallRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A repeated key returns the first call and dials nobody again")),
    responses((status = 201, body = PlacedCall, description = "The carrier accepted the call; its progress arrives as webhooks"),
        (status = 404, body = crate::error::Problem, description = "No such campaign or contact (problem+json)"),
        (status = 409, body = crate::error::Problem, description = "Campaign not active, or the number may not be called now (do-not-call, outside the calling window) (problem+json)"),
        (status = 422, body = crate::error::Problem, description = "Invalid number or metadata, or a caller id that is not the company's (problem+json)"),
        (status = 503, body = crate::error::Problem, description = "The carrier is not configured, or it refused (problem+json)")),
    security(("bearer" = [])))]
async fn telephony_call(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    IdempotencyKey(key): IdempotencyKey,
    body: ApiJson<CallRequest>,
) -> Result<Response, ApiError> {
    let placed = place(&state, &user, &headers, key, body.fingerprint, body.value).await?;
    Ok((StatusCode::CREATED, Json(placed)).into_response())
}

#[utoipa::path(get, path = "/api/telephony/call/{id}", tag = "telephony", operation_id = "telephony_call_read", params(("id" = Uuid, Path),
        ("min_position" = Option<i64>, Query, description = "Wait until the read model has applied this log position")),
    responses((status = 200, body = CallDetail, description = "Alias of `GET /api/v1/calls/{id}`"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)")),
    security(("bearer" = [])))]
async fn telephony_call_read(
    state: State<AppState>,
    user: AuthUser,
    id: PathId,
    min: MinPosition,
) -> Result<Json<CallDetail>, ApiError> {
    super::calls::read(state, user, id, min).await
}

/// Starts an outbound AI call: the voice agent talks as the campaign says, or, without a
/// campaign, as the company's session and provider defaults say.
#[utoipa::path(post, path = "/api/v1/calls/start", tag = "calls", operation_id = "calls_start", request_body = CallRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A repeated key returns the first call and dials nobody again")),
    responses((status = 201, body = PlacedCall, description = "The carrier accepted the call; the AI agent joins when it is answered"),
        (status = 404, body = crate::error::Problem, description = "No such campaign or contact (problem+json)"),
        (status = 409, body = crate::error::Problem, description = "Campaign not active, or the number may not be called now (problem+json)"),
        (status = 422, body = crate::error::Problem, description = "Invalid request (problem+json)"),
        (status = 503, body = crate::error::Problem, description = "The carrier is not configured, or it refused (problem+json)")),
    security(("bearer" = [])))]
async fn calls_start(
    state: State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    key: IdempotencyKey,
    body: ApiJson<CallRequest>,
) -> Result<Response, ApiError> {
    telephony_call(state, user, headers, key, body).await
}

#[utoipa::path(post, path = "/api/v1/telephony/outbound", tag = "telephony", operation_id = "telephony_outbound", request_body = SeedOutbound,
    params(("Idempotency-Key" = Option<String>, Header, description = "A repeated key returns the first call and dials nobody again")),
    responses((status = 202, body = PlacedCall, description = "The carrier accepted the call (`call_id`); its progress arrives as webhooks"),
        (status = 409, body = crate::error::Problem, description = "The number may not be called now (problem+json)"),
        (status = 422, body = crate::error::Problem, description = "Invalid number, a caller id that is not the company's, or a `stream_url` (problem+json)"),
        (status = 503, body = crate::error::Problem, description = "The carrier is not configured, or it refused (problem+json)")),
    security(("bearer" = [])))]
async fn telephony_outbound(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    IdempotencyKey(key): IdempotencyKey,
    body: ApiJson<SeedOutbound>,
) -> Result<Response, ApiError> {
    let b = body.value;
    if b.stream_url.is_some() {
        user.require(MANAGERS)?;
        return Err(super::common::invalid(vec![kraliki_domain::values::InvalidValue::new(
            "stream_url",
            "not_supported",
            "calls stream to this server's media bridge; leave stream_url out",
        )]));
    }
    let request = CallRequest {
        to_number: Some(b.to_number),
        contact_id: None,
        default_region: None,
        from_number: b.from_number,
        provider: b.telephony_provider,
        campaign_id: None,
        detect_machine: false,
        metadata: b.metadata,
    };
    let placed = place(&state, &user, &headers, key, body.fingerprint, request).await?;
    Ok((StatusCode::ACCEPTED, Json(placed)).into_response())
}

/// The seed's MCP client's unversioned path for `POST /api/v1/calls/outbound`.
#[utoipa::path(post, path = "/api/calls/outbound", tag = "calls", operation_id = "calls_outbound_alias", request_body = OutboundBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "A repeated key returns the first call and dials nobody again")),
    responses((status = 201, body = PlacedCall, description = "Alias of `POST /api/v1/calls/outbound`"),
        (status = 404, body = crate::error::Problem, description = "No such campaign or contact (problem+json)"),
        (status = 409, body = crate::error::Problem, description = "Campaign not active, or the contact may not be called now (problem+json)"),
        (status = 503, body = crate::error::Problem, description = "The carrier is not configured, or it refused (problem+json)")),
    security(("bearer" = [])))]
async fn outbound_alias(
    state: State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    key: IdempotencyKey,
    body: ApiJson<OutboundBody>,
) -> Result<Response, ApiError> {
    super::calls::outbound(state, user, headers, key, body).await
}
