//! The tenant-wide do-not-call list at `/api/v1/do-not-call`: one small stream per number (who
//! listed it, when, why); every dial query honours it at once.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use kraliki_domain::do_not_call::{DoNotCallCommand, DoNotCallNumber};
use kraliki_domain::values::PhoneNumber;
use kraliki_projections::do_not_call::DncRow;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::common::{invalid, tenant_context, write_headers, MANAGERS, READERS};
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::{bad_cursor, page_limit, ApiJson, ApiQuery, IdempotencyKey, MinPosition};
use crate::state::AppState;

use super::contacts::DNC_WRITERS;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(dnc_list, dnc_add)).routes(routes!(dnc_remove))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DncQuery {
    limit: Option<i64>,
    cursor: Option<String>,
    #[allow(dead_code)] // read by `MinPosition`
    min_position: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DncAddBody {
    phone_number: String,
    reason: Option<String>,
    default_region: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/do-not-call", tag = "do-not-call", operation_id = "dnc_list", params(DncQuery),
    responses((status = 200, body = Vec<DncRow>, headers(("Link" = String, description = "The next page: `<…?cursor=…>; rel=\"next\"` (RFC 8288); absent on the last page"), ("X-Next-Cursor" = String, description = "The next page's cursor")), description = "By number")), security(("bearer" = [])))]
async fn dnc_list(
    State(state): State<AppState>,
    user: AuthUser,
    MinPosition(min): MinPosition,
    ApiQuery(q): ApiQuery<DncQuery>,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
) -> Result<super::common::Paged<DncRow>, ApiError> {
    user.require(READERS)?;
    let limit = page_limit(q.limit)?;
    if q.cursor.as_deref().is_some_and(|c| !c.starts_with('+')) {
        return Err(bad_cursor());
    }
    state.wait_for(kraliki_projections::do_not_call::NAME, min).await?;
    let (items, next_cursor) =
        kraliki_projections::do_not_call::list_dnc(&state.pool, user.company_id, q.cursor.as_deref(), limit)
            .await?;
    Ok(super::common::Paged::new(items, next_cursor, &uri))
}

#[utoipa::path(post, path = "/api/v1/do-not-call", tag = "do-not-call", operation_id = "dnc_add", request_body = DncAddBody,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, description = "Listed; every dial of the tenant skips the number"), (status = 422, body = crate::error::Problem, description = "Invalid number (problem+json)")),
    security(("bearer" = [])))]
async fn dnc_add(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    IdempotencyKey(key): IdempotencyKey,
    body: ApiJson<DncAddBody>,
) -> Result<Response, ApiError> {
    user.require(DNC_WRITERS)?;
    let b = body.value;
    let phone =
        PhoneNumber::parse(&b.phone_number, b.default_region.as_deref()).map_err(|e| invalid(vec![e]))?;
    let ctx = tenant_context(&headers, &user, key, body.fingerprint);
    let command = DoNotCallCommand::AddNumber {
        phone_number: phone.as_str().to_owned(),
        reason: b.reason,
        source: Some(user.actor()),
        at: Utc::now(),
    };
    let outcome = state
        .dispatcher
        .execute::<DoNotCallNumber>(
            &DoNotCallNumber::stream_id(&ctx.tenant_id, phone.as_str()),
            command,
            &ctx,
        )
        .await?;
    state.wait_for(kraliki_projections::do_not_call::NAME, outcome.position).await?;
    let mut r =
        (StatusCode::CREATED, Json(serde_json::json!({ "phone_number": phone.as_str(), "listed": true })))
            .into_response();
    write_headers(&mut r, &outcome, None);
    Ok(r)
}

#[utoipa::path(delete, path = "/api/v1/do-not-call/{phone_number}", tag = "do-not-call", operation_id = "dnc_remove", params(("phone_number" = String, Path, description = "E.164")),
    responses((status = 204, description = "Removed from the list"), (status = 404, body = crate::error::Problem, description = "Not on the list (problem+json)")),
    security(("bearer" = [])))]
async fn dnc_remove(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    Path(phone_number): Path<String>,
) -> Result<Response, ApiError> {
    user.require(MANAGERS)?;
    let phone = PhoneNumber::parse(&phone_number, None).map_err(|_| ApiError::not_found())?;
    let ctx = tenant_context(&headers, &user, None, String::new());
    let command = DoNotCallCommand::RemoveNumber { reason: None, at: Utc::now() };
    let outcome = state
        .dispatcher
        .execute::<DoNotCallNumber>(
            &DoNotCallNumber::stream_id(&ctx.tenant_id, phone.as_str()),
            command,
            &ctx,
        )
        .await?;
    state.wait_for(kraliki_projections::do_not_call::NAME, outcome.position).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
