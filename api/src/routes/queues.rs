//! `/api/v1/queues`: queue settings and members (commands on the Queue aggregate), read from
//! `queue_view`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use kraliki_commands::Outcome;
use kraliki_domain::queue::{OverflowTarget, Queue, QueueCommand, QueueMember, QueueSettings};
use kraliki_projections::company::Cursor;
use kraliki_projections::queue::{self as view, QueueRow};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::common::{invalid, tenant_context, write_headers, written_id, Paged, MANAGERS, READERS};
use crate::auth::AuthUser;
use crate::error::{ApiError, Code};
use crate::extract::{bad_cursor, page_limit, ApiJson, ApiQuery, IdempotencyKey, MinPosition, PathId};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(read, update, delete))
}

/// A queue: its settings, flat (members included).
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueResponse {
    pub id: Uuid,
    #[serde(flatten)]
    pub settings: QueueSettings,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl QueueResponse {
    fn from_row(r: QueueRow) -> Result<Self, ApiError> {
        Ok(Self {
            id: r.id,
            settings: r.settings()?,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
    /// Name contains (case-insensitive).
    q: Option<String>,
    #[allow(dead_code)] // read by `MinPosition`
    min_position: Option<i64>,
}

async fn owned(state: &AppState, user: &AuthUser, id: Uuid) -> Result<QueueRow, ApiError> {
    view::get(&state.pool, user.company_id, id).await?.ok_or_else(ApiError::not_found)
}

/// 422 for each member that is not an agent or team of the company, and for an overflow queue
/// that does not exist (or is the queue itself).
async fn check_refs(
    state: &AppState,
    user: &AuthUser,
    own: Option<Uuid>,
    settings: &QueueSettings,
) -> Result<(), ApiError> {
    let mut error = ApiError::new(Code::ValidationFailed);
    for (i, m) in settings.members.iter().enumerate() {
        let found = match *m {
            QueueMember::Agent { id } => {
                kraliki_projections::agent::get(&state.pool, user.company_id, id).await?.is_some()
            }
            QueueMember::Team { id } => {
                kraliki_projections::team::get(&state.pool, user.company_id, id).await?.is_some()
            }
        };
        if !found {
            error = error.field(format!("members[{i}].id"), "not_found", "no such agent or team");
        }
    }
    if let OverflowTarget::Queue { queue_id } = settings.overflow {
        if Some(queue_id) == own {
            error = error.field("overflow.queue_id", "invalid", "a queue cannot overflow to itself");
        } else if view::get(&state.pool, user.company_id, queue_id).await?.is_none() {
            error = error.field("overflow.queue_id", "not_found", "no such queue");
        }
    }
    if error.errors.is_empty() {
        Ok(())
    } else {
        Err(error)
    }
}

async fn answer(
    state: &AppState,
    user: &AuthUser,
    id: Uuid,
    outcome: &Outcome,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let id = written_id(outcome, id);
    state.wait_for(view::NAME, outcome.position).await?;
    let row = owned(state, user, id).await?;
    let mut response = (status, Json(QueueResponse::from_row(row)?)).into_response();
    let location = (status == StatusCode::CREATED).then(|| format!("/api/v1/queues/{id}"));
    write_headers(&mut response, outcome, location);
    Ok(response)
}

#[utoipa::path(post, path = "/api/v1/queues", tag = "queues", operation_id = "queues_create",
    request_body(content = QueueSettings, description = "`name` is required; `strategy` one of the queue strategies (default fifo); members `{type: agent|team, id}`."),
    params(("Idempotency-Key" = Option<String>, Header, description = "A repeated key returns the first outcome")),
    responses((status = 201, body = QueueResponse, description = "Created"), (status = 403, body = crate::error::Problem, description = "Not allowed (problem+json)"),
        (status = 422, body = crate::error::Problem, description = "Invalid settings, unknown member or overflow queue (problem+json)")),
    security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    IdempotencyKey(key): IdempotencyKey,
    body: ApiJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    user.require(MANAGERS)?;
    let settings = QueueSettings::from_json(Value::Object(body.value)).map_err(invalid)?;
    let id = Uuid::now_v7();
    let ctx = tenant_context(&headers, &user, key, body.fingerprint);
    let prepare = async {
        check_refs(&state, &user, None, &settings).await?;
        Ok(QueueCommand::CreateQueue { settings, at: Utc::now() })
    };
    let outcome = super::common::create::<Queue>(&state, &ctx, id, prepare).await?;
    answer(&state, &user, id, &outcome, StatusCode::CREATED).await
}

#[utoipa::path(get, path = "/api/v1/queues", tag = "queues", operation_id = "queues_list", params(ListQuery),
    responses((status = 200, body = Vec<QueueResponse>, headers(("Link" = String, description = "The next page: `<…?cursor=…>; rel=\"next\"` (RFC 8288); absent on the last page"), ("X-Next-Cursor" = String, description = "The next page's cursor")), description = "Newest first"), (status = 400, body = crate::error::Problem, description = "Invalid query (problem+json)")),
    security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    MinPosition(min): MinPosition,
    ApiQuery(q): ApiQuery<ListQuery>,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
) -> Result<Paged<QueueResponse>, ApiError> {
    user.require(READERS)?;
    let limit = page_limit(q.limit)?;
    let cursor = q.cursor.as_deref().map(|c| Cursor::decode(c).ok_or_else(bad_cursor)).transpose()?;
    state.wait_for(view::NAME, min).await?;
    let page = view::list(&state.pool, user.company_id, q.q.as_deref(), cursor.as_ref(), limit)
        .await
        .map_err(|e| if e.is::<chrono::ParseError>() { bad_cursor() } else { ApiError::from(e) })?;
    let items = page.items.into_iter().map(QueueResponse::from_row).collect::<Result<_, _>>()?;
    Ok(Paged::new(items, page.next_cursor, &uri))
}

#[utoipa::path(get, path = "/api/v1/queues/{id}", tag = "queues", operation_id = "queues_read", params(("id" = Uuid, Path)),
    responses((status = 200, body = QueueResponse, description = "OK"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)")),
    security(("bearer" = [])))]
async fn read(
    State(state): State<AppState>,
    user: AuthUser,
    PathId(id): PathId,
    MinPosition(min): MinPosition,
) -> Result<Json<QueueResponse>, ApiError> {
    user.require(READERS)?;
    state.wait_for(view::NAME, min).await?;
    Ok(Json(QueueResponse::from_row(owned(&state, &user, id).await?)?))
}

#[utoipa::path(put, path = "/api/v1/queues/{id}", tag = "queues", operation_id = "queues_update",
    request_body(content = Object, description = "A JSON merge patch over the settings: absent keeps, `null` resets to the default, a `members` array replaces the list."),
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = QueueResponse, description = "OK"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)"),
        (status = 422, body = crate::error::Problem, description = "Invalid (problem+json)")),
    security(("bearer" = [])))]
async fn update(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    PathId(id): PathId,
    IdempotencyKey(key): IdempotencyKey,
    body: ApiJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    user.require(MANAGERS)?;
    let row = owned(&state, &user, id).await?;
    let merged = row.settings()?.patched(&body.value).map_err(invalid)?;
    check_refs(&state, &user, Some(id), &merged).await?;
    let command = QueueCommand::UpdateQueue { patch: body.value, at: Utc::now() };
    let ctx = tenant_context(&headers, &user, key, body.fingerprint);
    let outcome = state.dispatcher.execute::<Queue>(&id.to_string(), command, &ctx).await?;
    answer(&state, &user, id, &outcome, StatusCode::OK).await
}

#[utoipa::path(delete, path = "/api/v1/queues/{id}", tag = "queues", operation_id = "queues_delete", params(("id" = Uuid, Path)),
    responses((status = 204, description = "Deleted (its events stay in the log)"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)")),
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
        .execute::<Queue>(&id.to_string(), QueueCommand::DeleteQueue { at: Utc::now() }, &ctx)
        .await?;
    state.wait_for(view::NAME, outcome.position).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
