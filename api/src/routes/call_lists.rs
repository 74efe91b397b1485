//! `/api/v1/call-lists`: which contacts a campaign dials and in what order (a saved filter), its
//! members, and the "next contacts to dial" query the dialer uses.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use chrono::{DateTime, Utc};
use kraliki_commands::Outcome;
use kraliki_domain::call_list::{CallList, CallListCommand, CallListSpec, ContactFilter, SortKey};
use kraliki_projections::call_list::CallListRow;
use kraliki_projections::campaign::{self as campaigns};
use kraliki_projections::company::Cursor;
use kraliki_projections::contact::{self as contacts, CallListQuery, MemberRow};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::common::{tenant_context, write_headers, written_id, MANAGERS, READERS};
use crate::auth::AuthUser;
use crate::error::{ApiError, Code};
use crate::extract::{bad_cursor, page_limit, ApiJson, ApiQuery, IdempotencyKey, MinPosition, PathId};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, update, delete))
        .routes(routes!(members))
        .routes(routes!(next))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallListResponse {
    pub id: Uuid,
    pub campaign_id: Uuid,
    pub name: String,
    pub filter: ContactFilter,
    pub order: Vec<SortKey>,
    /// Contacts matching the filter.
    pub contacts: i64,
    /// Of those, contacts that can still be dialed (not DNC, attempts left, not finished);
    /// calling windows and retry delays decide when.
    pub dialable: i64,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CallListCreateBody {
    campaign_id: Uuid,
    name: String,
    #[serde(default)]
    filter: ContactFilter,
    #[serde(default)]
    order: Vec<SortKey>,
}

/// Absent parts stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CallListUpdateBody {
    name: Option<String>,
    filter: Option<ContactFilter>,
    order: Option<Vec<SortKey>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
    campaign_id: Option<Uuid>,
    #[allow(dead_code)] // read by `MinPosition`
    min_position: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct MembersQuery {
    limit: Option<i64>,
    cursor: Option<String>,
    #[allow(dead_code)] // read by `MinPosition`
    min_position: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct NextQuery {
    /// How many (1–500, default 10).
    limit: Option<i64>,
    /// Evaluate at this instant instead of now (RFC 3339), to plan ahead.
    at: Option<DateTime<Utc>>,
    #[allow(dead_code)] // read by `MinPosition`
    min_position: Option<i64>,
}

/// The next contacts to dial. Empty with a `blocked_reason` when the campaign may not dial now.
#[derive(Debug, Serialize, ToSchema)]
pub struct NextToDial {
    pub call_list_id: Uuid,
    pub campaign_id: Uuid,
    pub campaign_status: String,
    /// campaign_not_active | before_start_time | after_end_time, or null when dialing.
    pub blocked_reason: Option<String>,
    pub evaluated_at: DateTime<Utc>,
    pub items: Vec<MemberRow>,
}

struct Parsed {
    row: CallListRow,
    filter: ContactFilter,
    order: Vec<SortKey>,
}

fn parse(row: CallListRow) -> Result<Parsed, ApiError> {
    let filter = serde_json::from_value(row.filter.clone()).map_err(anyhow::Error::from)?;
    let order = serde_json::from_value(row.sort.clone()).map_err(anyhow::Error::from)?;
    Ok(Parsed { row, filter, order })
}

async fn response(state: &AppState, user: &AuthUser, p: Parsed) -> Result<CallListResponse, ApiError> {
    let campaign = campaigns::get(&state.pool, user.company_id, p.row.campaign_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let settings = campaign.settings()?;
    let query = CallListQuery {
        tenant: user.company_id,
        campaign: p.row.campaign_id,
        settings: &settings,
        filter: &p.filter,
        order: &p.order,
        now: Utc::now(),
    };
    let (contacts, dialable) = contacts::count_members(&state.pool, &query).await?;
    Ok(CallListResponse {
        id: p.row.id,
        campaign_id: p.row.campaign_id,
        name: p.row.name,
        filter: p.filter,
        order: p.order,
        contacts,
        dialable,
        version: p.row.version,
        created_at: p.row.created_at,
        updated_at: p.row.updated_at,
    })
}

async fn owned(state: &AppState, user: &AuthUser, id: Uuid) -> Result<Parsed, ApiError> {
    parse(
        kraliki_projections::call_list::get_call_list(&state.pool, user.company_id, id)
            .await?
            .ok_or_else(ApiError::not_found)?,
    )
}

async fn answer(
    state: &AppState,
    user: &AuthUser,
    id: Uuid,
    outcome: &Outcome,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let id = written_id(outcome, id);
    state.wait_for(kraliki_projections::call_list::NAME, outcome.position).await?;
    state.wait_for(campaigns::NAME, outcome.position).await?;
    let body = response(state, user, owned(state, user, id).await?).await?;
    let mut r = (status, Json(body)).into_response();
    write_headers(
        &mut r,
        outcome,
        (status == StatusCode::CREATED).then(|| format!("/api/v1/call-lists/{id}")),
    );
    Ok(r)
}

#[utoipa::path(post, path = "/api/v1/call-lists", tag = "call-lists", operation_id = "call_lists_create", request_body = CallListCreateBody,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = CallListResponse, description = "Created"), (status = 422, body = crate::error::Problem, description = "Invalid (problem+json)")),
    security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    IdempotencyKey(key): IdempotencyKey,
    body: ApiJson<CallListCreateBody>,
) -> Result<Response, ApiError> {
    user.require(MANAGERS)?;
    let b = body.value;
    let id = Uuid::now_v7();
    let ctx = tenant_context(&headers, &user, key, body.fingerprint);
    let prepare = async {
        if campaigns::get(&state.pool, user.company_id, b.campaign_id).await?.is_none() {
            return Err(ApiError::new(Code::ValidationFailed).field(
                "campaign_id",
                "not_found",
                "no such campaign",
            ));
        }
        let spec = CallListSpec { name: b.name, filter: b.filter, order: b.order };
        Ok(CallListCommand::CreateCallList { campaign_id: b.campaign_id, spec, at: Utc::now() })
    };
    let outcome = super::common::create::<CallList>(&state, &ctx, id, prepare).await?;
    answer(&state, &user, id, &outcome, StatusCode::CREATED).await
}

#[utoipa::path(get, path = "/api/v1/call-lists", tag = "call-lists", operation_id = "call_lists_list", params(ListQuery),
    responses((status = 200, body = Vec<CallListResponse>, headers(("Link" = String, description = "The next page: `<…?cursor=…>; rel=\"next\"` (RFC 8288); absent on the last page"), ("X-Next-Cursor" = String, description = "The next page's cursor")), description = "Newest first")), security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    MinPosition(min): MinPosition,
    ApiQuery(q): ApiQuery<ListQuery>,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
) -> Result<super::common::Paged<CallListResponse>, ApiError> {
    user.require(READERS)?;
    let limit = page_limit(q.limit)?;
    let cursor = q.cursor.as_deref().map(|c| Cursor::decode(c).ok_or_else(bad_cursor)).transpose()?;
    state.wait_for(kraliki_projections::call_list::NAME, min).await?;
    state.wait_for(campaigns::NAME, min).await?;
    let page = kraliki_projections::call_list::list_call_lists(
        &state.pool,
        user.company_id,
        q.campaign_id,
        cursor.as_ref(),
        limit,
    )
    .await
    .map_err(|e| if e.is::<chrono::ParseError>() { bad_cursor() } else { ApiError::from(e) })?;
    let mut items = Vec::with_capacity(page.items.len());
    for row in page.items {
        items.push(response(&state, &user, parse(row)?).await?);
    }
    Ok(super::common::Paged::new(items, page.next_cursor, &uri))
}

#[utoipa::path(get, path = "/api/v1/call-lists/{id}", tag = "call-lists", operation_id = "call_lists_read", params(("id" = Uuid, Path)),
    responses((status = 200, body = CallListResponse, description = "OK"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)")),
    security(("bearer" = [])))]
async fn read(
    State(state): State<AppState>,
    user: AuthUser,
    PathId(id): PathId,
    MinPosition(min): MinPosition,
) -> Result<Json<CallListResponse>, ApiError> {
    user.require(READERS)?;
    state.wait_for(kraliki_projections::call_list::NAME, min).await?;
    state.wait_for(campaigns::NAME, min).await?;
    let parsed = owned(&state, &user, id).await?;
    Ok(Json(response(&state, &user, parsed).await?))
}

#[utoipa::path(put, path = "/api/v1/call-lists/{id}", tag = "call-lists", operation_id = "call_lists_update", request_body = CallListUpdateBody,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = CallListResponse, description = "OK"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)"),
        (status = 422, body = crate::error::Problem, description = "Invalid (problem+json)")),
    security(("bearer" = [])))]
async fn update(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    PathId(id): PathId,
    IdempotencyKey(key): IdempotencyKey,
    body: ApiJson<CallListUpdateBody>,
) -> Result<Response, ApiError> {
    user.require(MANAGERS)?;
    let current = owned(&state, &user, id).await?;
    let b = body.value;
    let spec = CallListSpec {
        name: b.name.unwrap_or(current.row.name),
        filter: b.filter.unwrap_or(current.filter),
        order: b.order.unwrap_or(current.order),
    };
    let ctx = tenant_context(&headers, &user, key, body.fingerprint);
    let command = CallListCommand::UpdateCallList { spec, at: Utc::now() };
    let outcome = state.dispatcher.execute::<CallList>(&id.to_string(), command, &ctx).await?;
    answer(&state, &user, id, &outcome, StatusCode::OK).await
}

#[utoipa::path(delete, path = "/api/v1/call-lists/{id}", tag = "call-lists", operation_id = "call_lists_delete", params(("id" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)")),
    security(("bearer" = [])))]
async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    user.require(MANAGERS)?;
    owned(&state, &user, id).await?;
    let ctx = tenant_context(&headers, &user, None, String::new());
    let outcome = state
        .dispatcher
        .execute::<CallList>(&id.to_string(), CallListCommand::DeleteCallList { at: Utc::now() }, &ctx)
        .await?;
    state.wait_for(kraliki_projections::call_list::NAME, outcome.position).await?;
    state.wait_for(campaigns::NAME, outcome.position).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn offset_cursor(raw: Option<&str>) -> Result<i64, ApiError> {
    let Some(raw) = raw else { return Ok(0) };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("o:").and_then(|n| n.parse::<i64>().ok()))
        .filter(|n| *n >= 0)
        .ok_or_else(bad_cursor)
}

#[utoipa::path(get, path = "/api/v1/call-lists/{id}/contacts", tag = "call-lists", operation_id = "call_lists_members", params(("id" = Uuid, Path), MembersQuery),
    responses((status = 200, body = Vec<MemberRow>, headers(("Link" = String, description = "The next page: `<…?cursor=…>; rel=\"next\"` (RFC 8288); absent on the last page"), ("X-Next-Cursor" = String, description = "The next page's cursor")), description = "The list's contacts in dialing order, with this campaign's attempts"),
        (status = 404, body = crate::error::Problem, description = "Not found (problem+json)")),
    security(("bearer" = [])))]
async fn members(
    State(state): State<AppState>,
    user: AuthUser,
    PathId(id): PathId,
    MinPosition(min): MinPosition,
    ApiQuery(q): ApiQuery<MembersQuery>,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
) -> Result<super::common::Paged<MemberRow>, ApiError> {
    user.require(READERS)?;
    let limit = page_limit(q.limit)?;
    let offset = offset_cursor(q.cursor.as_deref())?;
    state.wait_for(kraliki_projections::call_list::NAME, min).await?;
    state.wait_for(campaigns::NAME, min).await?;
    state.wait_for(contacts::NAME, min).await?;
    let p = owned(&state, &user, id).await?;
    let campaign = campaigns::get(&state.pool, user.company_id, p.row.campaign_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let settings = campaign.settings()?;
    let query = CallListQuery {
        tenant: user.company_id,
        campaign: p.row.campaign_id,
        settings: &settings,
        filter: &p.filter,
        order: &p.order,
        now: Utc::now(),
    };
    let mut items = contacts::members(&state.pool, &query, offset, limit + 1).await?;
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let next_cursor = more
        .then(|| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("o:{}", offset + limit)));
    Ok(super::common::Paged::new(items, next_cursor, &uri))
}

#[utoipa::path(get, path = "/api/v1/call-lists/{id}/next", tag = "call-lists", operation_id = "call_lists_next", params(("id" = Uuid, Path), NextQuery),
    responses((status = 200, body = NextToDial, description = "The next contacts to dial, best first: calling window in each contact's zone, do-not-call, attempts and retry delays respected"),
        (status = 404, body = crate::error::Problem, description = "Not found (problem+json)")),
    security(("bearer" = [])))]
async fn next(
    State(state): State<AppState>,
    user: AuthUser,
    PathId(id): PathId,
    MinPosition(min): MinPosition,
    ApiQuery(q): ApiQuery<NextQuery>,
) -> Result<Json<NextToDial>, ApiError> {
    user.require(READERS)?;
    let limit = match q.limit {
        None => 10,
        Some(n) => page_limit(Some(n))?,
    };
    state.wait_for(kraliki_projections::call_list::NAME, min).await?;
    state.wait_for(campaigns::NAME, min).await?;
    state.wait_for(contacts::NAME, min).await?;
    let p = owned(&state, &user, id).await?;
    let campaign = campaigns::get(&state.pool, user.company_id, p.row.campaign_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let settings = campaign.settings()?;
    let now = q.at.unwrap_or_else(Utc::now);
    let blocked_reason = if !campaign.is_active() {
        Some("campaign_not_active")
    } else if settings.start_time.is_some_and(|s| now < s) {
        Some("before_start_time")
    } else if settings.end_time.is_some_and(|e| now >= e) {
        Some("after_end_time")
    } else {
        None
    };
    let items = match blocked_reason {
        Some(_) => Vec::new(),
        None => {
            let query = CallListQuery {
                tenant: user.company_id,
                campaign: p.row.campaign_id,
                settings: &settings,
                filter: &p.filter,
                order: &p.order,
                now,
            };
            contacts::next_to_dial(&state.pool, &query, limit).await?
        }
    };
    Ok(Json(NextToDial {
        call_list_id: id,
        campaign_id: p.row.campaign_id,
        campaign_status: campaign.status,
        blocked_reason: blocked_reason.map(str::to_owned),
        evaluated_at: now,
        items,
    }))
}
