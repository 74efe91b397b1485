//! `/api/v1/campaigns`: campaign settings and lifecycle (commands on the Campaign aggregate),
//! read from `campaign_view`; the seed's read shape (settings fields flat, plus id, status and
//! call statistics) with our additions.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use kraliki_commands::Outcome;
use kraliki_domain::call_list::{ContactFilter, SortKey};
use kraliki_domain::campaign::settings::merge_patch;
use kraliki_domain::campaign::{
    Campaign, CampaignCommand, CampaignOrigin, CampaignSettings, CampaignStatus, Readiness,
};
use kraliki_projections::campaign::{self as view, CampaignFilter, CampaignRow};
use kraliki_projections::company::Cursor;
use kraliki_projections::contact::{self as contacts, CallListQuery};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::common::{invalid, tenant_context, write_headers, written_id, MANAGERS, READERS};
use crate::auth::AuthUser;
use crate::error::{ApiError, Code};
use crate::extract::{bad_cursor, page_limit, ApiJson, ApiQuery, IdempotencyKey, MinPosition, PathId};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, update, patch, delete))
        .routes(routes!(start))
        .routes(routes!(pause))
        .routes(routes!(resume))
        .routes(routes!(complete))
        .routes(routes!(cancel))
        .routes(routes!(archive))
        .routes(routes!(clone_campaign))
        .routes(routes!(analytics))
        .routes(routes!(list_alias, create_alias))
}

/// The seed's MCP client's unversioned path for [`list`].
#[utoipa::path(get, path = "/api/campaigns", tag = "campaigns", operation_id = "campaigns_list_alias", params(ListQuery),
    responses((status = 200, body = Vec<CampaignResponse>, headers(("Link" = String, description = "The next page (RFC 8288)"), ("X-Next-Cursor" = String, description = "The next page's cursor")), description = "Alias of `GET /api/v1/campaigns`"), (status = 400, body = crate::error::Problem, description = "Invalid query (problem+json)")),
    security(("bearer" = [])))]
async fn list_alias(
    state: State<AppState>,
    user: AuthUser,
    min: MinPosition,
    q: ApiQuery<ListQuery>,
    uri: axum::extract::OriginalUri,
) -> Result<super::common::Paged<CampaignResponse>, ApiError> {
    list(state, user, min, q, uri).await
}

/// The seed's MCP client's unversioned path for [`create`].
#[utoipa::path(post, path = "/api/campaigns", tag = "campaigns", operation_id = "campaigns_create_alias",
    request_body(content = CampaignSettings, description = "As `POST /api/v1/campaigns`"),
    params(("Idempotency-Key" = Option<String>, Header, description = "A repeated key returns the first outcome")),
    responses((status = 201, body = CampaignResponse, description = "Alias of `POST /api/v1/campaigns`"), (status = 422, body = crate::error::Problem, description = "Invalid settings (problem+json)")),
    security(("bearer" = [])))]
async fn create_alias(
    state: State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    key: IdempotencyKey,
    body: ApiJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    create(state, user, headers, key, body).await
}

/// The seed's campaign read shape: every setting, flat, plus state and statistics.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignResponse {
    pub id: Uuid,
    #[serde(flatten)]
    pub settings: CampaignSettings,
    /// draft | active | paused | completed | cancelled | archived
    pub status: String,
    pub origin: Value,
    pub total_calls: i32,
    pub calls_in_flight: i32,
    pub connected_calls: i32,
    pub successful_calls: i32,
    pub failed_calls: i32,
    /// successful / connected calls, 0–1.
    pub conversion_rate: f64,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub paused_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub archived_at: Option<DateTime<Utc>>,
}

impl CampaignResponse {
    pub(crate) fn from_row(r: CampaignRow) -> Result<Self, ApiError> {
        let settings = r.settings()?;
        let conversion_rate = if r.connected_calls > 0 {
            f64::from(r.successful_calls) / f64::from(r.connected_calls)
        } else {
            0.0
        };
        Ok(Self {
            id: r.id,
            settings,
            status: r.status,
            origin: r.origin,
            total_calls: r.total_calls,
            calls_in_flight: r.calls_in_flight,
            connected_calls: r.connected_calls,
            successful_calls: r.successful_calls,
            failed_calls: r.failed_calls,
            conversion_rate,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            started_at: r.started_at,
            paused_at: r.paused_at,
            ended_at: r.ended_at,
            archived_at: r.archived_at,
        })
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
    /// draft | active | paused | completed | cancelled | archived
    status: Option<String>,
    campaign_type: Option<String>,
    /// Name contains (case-insensitive).
    q: Option<String>,
    #[allow(dead_code)] // read by `MinPosition`
    min_position: Option<i64>,
}

/// `reason` for pause, complete, cancel.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    reason: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CloneBody {
    /// Default: "<name> (copy)".
    name: Option<String>,
    /// Copy the source's call lists too (default true).
    include_call_lists: Option<bool>,
}

/// The campaign as the read model shows it once it applied `outcome`.
async fn answer(
    state: &AppState,
    user: &AuthUser,
    id: Uuid,
    outcome: &Outcome,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let id = written_id(outcome, id);
    state.wait_for(view::NAME, outcome.position).await?;
    let row = view::get(&state.pool, user.company_id, id).await?.ok_or_else(ApiError::not_found)?;
    let mut response = (status, Json(CampaignResponse::from_row(row)?)).into_response();
    let location = (status == StatusCode::CREATED).then(|| format!("/api/v1/campaigns/{id}"));
    write_headers(&mut response, outcome, location);
    Ok(response)
}

/// The campaign if it belongs to the caller's company (else 404).
async fn owned(state: &AppState, user: &AuthUser, id: Uuid) -> Result<CampaignRow, ApiError> {
    view::get(&state.pool, user.company_id, id).await?.ok_or_else(ApiError::not_found)
}

/// Settings from a JSON object: a template's settings (when `template_id` is given) with the
/// body merged over them.
async fn settings_from_body(
    state: &AppState,
    user: &AuthUser,
    mut body: Map<String, Value>,
) -> Result<(CampaignSettings, CampaignOrigin), ApiError> {
    let template = match body.remove("template_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.parse::<Uuid>().map_err(|_| {
            ApiError::new(Code::ValidationFailed).field("template_id", "invalid", "not a template id")
        })?),
        Some(_) => {
            return Err(ApiError::new(Code::ValidationFailed).field(
                "template_id",
                "invalid",
                "not a template id",
            ))
        }
    };
    let (base, origin) = match template {
        Some(template_id) => {
            let row = kraliki_projections::campaign_template::get_template(
                &state.pool,
                user.company_id,
                template_id,
            )
            .await?
            .ok_or_else(|| {
                ApiError::new(Code::ValidationFailed).field("template_id", "not_found", "no such template")
            })?;
            (row.settings, CampaignOrigin::Template { template_id })
        }
        None => (Value::Object(Map::new()), CampaignOrigin::Blank),
    };
    let mut merged = base;
    merge_patch(&mut merged, &Value::Object(body));
    let settings = CampaignSettings::from_json(merged).map_err(invalid)?;
    Ok((settings, origin))
}

#[utoipa::path(post, path = "/api/v1/campaigns", tag = "campaigns", operation_id = "campaigns_create",
    request_body(content = CampaignSettings, description = "Campaign settings (the seed's fields; only `name` is required). `template_id` starts from a template's settings."),
    params(("Idempotency-Key" = Option<String>, Header, description = "A repeated key returns the first outcome")),
    responses((status = 201, body = CampaignResponse, description = "Created as a draft"), (status = 403, body = crate::error::Problem, description = "Not allowed (problem+json)"),
        (status = 422, body = crate::error::Problem, description = "Invalid settings (problem+json)")),
    security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    IdempotencyKey(key): IdempotencyKey,
    body: ApiJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    user.require(MANAGERS)?;
    let (settings, origin) = settings_from_body(&state, &user, body.value).await?;
    let id = Uuid::now_v7();
    let command = CampaignCommand::CreateCampaign { settings, origin, at: Utc::now() };
    let ctx = tenant_context(&headers, &user, key, body.fingerprint);
    let outcome = state.dispatcher.execute::<Campaign>(&id.to_string(), command, &ctx).await?;
    answer(&state, &user, id, &outcome, StatusCode::CREATED).await
}

#[utoipa::path(get, path = "/api/v1/campaigns", tag = "campaigns", operation_id = "campaigns_list", params(ListQuery),
    responses((status = 200, body = Vec<CampaignResponse>, headers(("Link" = String, description = "The next page: `<…?cursor=…>; rel=\"next\"` (RFC 8288); absent on the last page"), ("X-Next-Cursor" = String, description = "The next page's cursor")), description = "Newest first"), (status = 400, body = crate::error::Problem, description = "Invalid query (problem+json)")),
    security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    MinPosition(min): MinPosition,
    ApiQuery(q): ApiQuery<ListQuery>,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
) -> Result<super::common::Paged<CampaignResponse>, ApiError> {
    user.require(READERS)?;
    let limit = page_limit(q.limit)?;
    if let Some(s) = q.status.as_deref() {
        if !CampaignStatus::ALL.iter().any(|c| c.as_str() == s) {
            return Err(ApiError::new(Code::InvalidQuery).field(
                "status",
                "invalid",
                "not a campaign status",
            ));
        }
    }
    let cursor = q.cursor.as_deref().map(|c| Cursor::decode(c).ok_or_else(bad_cursor)).transpose()?;
    state.wait_for(view::NAME, min).await?;
    let filter = CampaignFilter { status: q.status, campaign_type: q.campaign_type, search: q.q };
    let page =
        view::list(&state.pool, user.company_id, &filter, cursor.as_ref(), limit).await.map_err(|e| {
            if e.is::<chrono::ParseError>() {
                bad_cursor()
            } else {
                ApiError::from(e)
            }
        })?;
    let items = page.items.into_iter().map(CampaignResponse::from_row).collect::<Result<_, _>>()?;
    Ok(super::common::Paged::new(items, page.next_cursor, &uri))
}

#[utoipa::path(get, path = "/api/v1/campaigns/{id}", tag = "campaigns", operation_id = "campaigns_read", params(("id" = Uuid, Path)),
    responses((status = 200, body = CampaignResponse, description = "OK"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)")),
    security(("bearer" = [])))]
async fn read(
    State(state): State<AppState>,
    user: AuthUser,
    PathId(id): PathId,
    MinPosition(min): MinPosition,
) -> Result<Json<CampaignResponse>, ApiError> {
    user.require(READERS)?;
    state.wait_for(view::NAME, min).await?;
    Ok(Json(CampaignResponse::from_row(owned(&state, &user, id).await?)?))
}

async fn change(
    state: AppState,
    user: AuthUser,
    headers: HeaderMap,
    id: Uuid,
    key: Option<String>,
    body: ApiJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    user.require(MANAGERS)?;
    owned(&state, &user, id).await?;
    let command = CampaignCommand::UpdateCampaign { patch: body.value, at: Utc::now() };
    let ctx = tenant_context(&headers, &user, key, body.fingerprint);
    let outcome = state.dispatcher.execute::<Campaign>(&id.to_string(), command, &ctx).await?;
    answer(&state, &user, id, &outcome, StatusCode::OK).await
}

#[utoipa::path(put, path = "/api/v1/campaigns/{id}", tag = "campaigns", operation_id = "campaigns_update",
    request_body(content = Object, description = "A JSON merge patch over the settings: absent keeps, `null` resets to the default. While active, provider, dialing mode, caller id, calling window, type and start time are locked."),
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = CampaignResponse, description = "OK"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)"),
        (status = 409, body = crate::error::Problem, description = "Locked while active, or not editable (problem+json)"), (status = 422, body = crate::error::Problem, description = "Invalid (problem+json)")),
    security(("bearer" = [])))]
async fn update(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    PathId(id): PathId,
    IdempotencyKey(key): IdempotencyKey,
    body: ApiJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    change(state, user, headers, id, key, body).await
}

#[utoipa::path(patch, path = "/api/v1/campaigns/{id}", tag = "campaigns", operation_id = "campaigns_patch",
    request_body(content = Object, description = "Same as PUT: a JSON merge patch over the settings."),
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = CampaignResponse, description = "OK"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)"),
        (status = 409, body = crate::error::Problem, description = "Locked while active (problem+json)"), (status = 422, body = crate::error::Problem, description = "Invalid (problem+json)")),
    security(("bearer" = [])))]
async fn patch(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    PathId(id): PathId,
    IdempotencyKey(key): IdempotencyKey,
    body: ApiJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    change(state, user, headers, id, key, body).await
}

#[utoipa::path(delete, path = "/api/v1/campaigns/{id}", tag = "campaigns", operation_id = "campaigns_delete", params(("id" = Uuid, Path)),
    responses((status = 204, description = "Deleted (its events stay in the log)"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)"),
        (status = 409, body = crate::error::Problem, description = "Active or paused (problem+json)")),
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
        .execute::<Campaign>(&id.to_string(), CampaignCommand::DeleteCampaign { at: Utc::now() }, &ctx)
        .await?;
    state.wait_for(view::NAME, outcome.position).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// What a start needs to know from outside the aggregate: contacts its call lists can dial
/// and which providers have keys.
async fn readiness(state: &AppState, user: &AuthUser, row: &CampaignRow) -> Result<Readiness, ApiError> {
    let settings = row.settings()?;
    let mut dialable = 0u64;
    for list in kraliki_projections::call_list::call_lists_of(&state.pool, row.id).await? {
        let filter: ContactFilter = serde_json::from_value(list.filter).map_err(anyhow::Error::from)?;
        let order: Vec<SortKey> = serde_json::from_value(list.sort).map_err(anyhow::Error::from)?;
        let query = CallListQuery {
            tenant: user.company_id,
            campaign: row.id,
            settings: &settings,
            filter: &filter,
            order: &order,
            now: Utc::now(),
        };
        dialable += contacts::count_members(&state.pool, &query).await?.1.max(0) as u64;
    }
    Ok(Readiness {
        dialable_contacts: dialable,
        configured_providers: state.settings.providers.configured_voice(),
    })
}

async fn lifecycle(
    state: AppState,
    user: AuthUser,
    headers: HeaderMap,
    id: Uuid,
    body: Option<ApiJson<ReasonBody>>,
    make: impl FnOnce(Option<String>, Option<Readiness>) -> CampaignCommand,
    needs_readiness: bool,
) -> Result<Response, ApiError> {
    user.require(MANAGERS)?;
    let row = owned(&state, &user, id).await?;
    let readiness = if needs_readiness { Some(readiness(&state, &user, &row).await?) } else { None };
    let (reason, fingerprint) = match body {
        Some(b) => (b.value.reason, b.fingerprint),
        None => (None, String::new()),
    };
    let ctx = tenant_context(&headers, &user, None, fingerprint);
    let outcome =
        state.dispatcher.execute::<Campaign>(&id.to_string(), make(reason, readiness), &ctx).await?;
    answer(&state, &user, id, &outcome, StatusCode::OK).await
}

#[utoipa::path(post, path = "/api/v1/campaigns/{id}/start", tag = "campaigns", operation_id = "campaigns_start", params(("id" = Uuid, Path)),
    responses((status = 200, body = CampaignResponse, description = "Active (a paused campaign resumes; an active one stays as it is)"),
        (status = 404, body = crate::error::Problem, description = "Not found (problem+json)"),
        (status = 409, body = crate::error::Problem, description = "`campaign_not_ready` (no dialable contacts, end time passed), `provider_not_configured`, or `invalid_state` (problem+json)")),
    security(("bearer" = [])))]
async fn start(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    let make = |_, r: Option<Readiness>| CampaignCommand::StartCampaign {
        readiness: r.unwrap_or_default(),
        at: Utc::now(),
    };
    lifecycle(state, user, headers, id, None, make, true).await
}

#[utoipa::path(post, path = "/api/v1/campaigns/{id}/pause", tag = "campaigns", operation_id = "campaigns_pause", params(("id" = Uuid, Path)),
    request_body(content = Option<ReasonBody>, description = "Optional `{reason}`"),
    responses((status = 200, body = CampaignResponse, description = "Paused (a paused one stays paused)"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)"),
        (status = 409, body = crate::error::Problem, description = "Not active (problem+json)")),
    security(("bearer" = [])))]
async fn pause(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    PathId(id): PathId,
    body: Option<ApiJson<ReasonBody>>,
) -> Result<Response, ApiError> {
    let make = |reason, _| CampaignCommand::PauseCampaign { reason, at: Utc::now() };
    lifecycle(state, user, headers, id, body, make, false).await
}

#[utoipa::path(post, path = "/api/v1/campaigns/{id}/resume", tag = "campaigns", operation_id = "campaigns_resume", params(("id" = Uuid, Path)),
    responses((status = 200, body = CampaignResponse, description = "Active again"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)"),
        (status = 409, body = crate::error::Problem, description = "Not paused, or not ready (problem+json)")),
    security(("bearer" = [])))]
async fn resume(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    let make = |_, r: Option<Readiness>| CampaignCommand::ResumeCampaign {
        readiness: r.unwrap_or_default(),
        at: Utc::now(),
    };
    lifecycle(state, user, headers, id, None, make, true).await
}

#[utoipa::path(post, path = "/api/v1/campaigns/{id}/complete", tag = "campaigns", operation_id = "campaigns_complete", params(("id" = Uuid, Path)),
    request_body(content = Option<ReasonBody>, description = "Optional `{reason}`"),
    responses((status = 200, body = CampaignResponse, description = "Completed"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)"),
        (status = 409, body = crate::error::Problem, description = "Not active or paused (problem+json)")),
    security(("bearer" = [])))]
async fn complete(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    PathId(id): PathId,
    body: Option<ApiJson<ReasonBody>>,
) -> Result<Response, ApiError> {
    let make = |reason, _| CampaignCommand::CompleteCampaign { reason, at: Utc::now() };
    lifecycle(state, user, headers, id, body, make, false).await
}

#[utoipa::path(post, path = "/api/v1/campaigns/{id}/cancel", tag = "campaigns", operation_id = "campaigns_cancel", params(("id" = Uuid, Path)),
    request_body(content = Option<ReasonBody>, description = "Optional `{reason}`"),
    responses((status = 200, body = CampaignResponse, description = "Cancelled"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)"),
        (status = 409, body = crate::error::Problem, description = "Already ended (problem+json)")),
    security(("bearer" = [])))]
async fn cancel(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    PathId(id): PathId,
    body: Option<ApiJson<ReasonBody>>,
) -> Result<Response, ApiError> {
    let make = |reason, _| CampaignCommand::CancelCampaign { reason, at: Utc::now() };
    lifecycle(state, user, headers, id, body, make, false).await
}

#[utoipa::path(post, path = "/api/v1/campaigns/{id}/archive", tag = "campaigns", operation_id = "campaigns_archive", params(("id" = Uuid, Path)),
    responses((status = 200, body = CampaignResponse, description = "Archived (read-only)"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)"),
        (status = 409, body = crate::error::Problem, description = "Active or paused (problem+json)")),
    security(("bearer" = [])))]
async fn archive(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    let make = |_, _| CampaignCommand::ArchiveCampaign { at: Utc::now() };
    lifecycle(state, user, headers, id, None, make, false).await
}

#[utoipa::path(post, path = "/api/v1/campaigns/{id}/clone", tag = "campaigns", operation_id = "campaigns_clone", params(("id" = Uuid, Path)),
    request_body(content = Option<CloneBody>, description = "Optional `{name, include_call_lists}`"),
    responses((status = 201, body = CampaignResponse, description = "A new draft with the same settings (and call lists)"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)")),
    security(("bearer" = [])))]
async fn clone_campaign(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    PathId(id): PathId,
    IdempotencyKey(key): IdempotencyKey,
    body: Option<ApiJson<CloneBody>>,
) -> Result<Response, ApiError> {
    user.require(MANAGERS)?;
    let source = owned(&state, &user, id).await?;
    let (b, fingerprint) = body.map(|b| (b.value, b.fingerprint)).unwrap_or_default();
    let mut settings = source.settings()?;
    settings.name = match b.name {
        Some(n) => n,
        None => format!("{} (copy)", settings.name).chars().take(200).collect(),
    };
    let new_id = Uuid::now_v7();
    let ctx = tenant_context(&headers, &user, key, fingerprint);
    let include_call_lists = b.include_call_lists.unwrap_or(true);
    let command = CampaignCommand::CreateCampaign {
        settings,
        origin: CampaignOrigin::Clone { campaign_id: id, include_call_lists },
        at: Utc::now(),
    };
    let mut outcome = state.dispatcher.execute::<Campaign>(&new_id.to_string(), command, &ctx).await?;
    // The call lists are copied by the campaign_cloner process manager (a retried clone
    // finishes a copy cut short): answer once it has, and the read model shows them.
    if include_call_lists {
        if let Some(created) = outcome.position {
            state.wait_for(kraliki_commands::process::cloner::NAME, Some(created)).await?;
            let head: Option<i64> =
                sqlx::query_scalar("SELECT max(global_position) FROM events").fetch_one(&state.pool).await?;
            state.wait_for(kraliki_projections::call_list::NAME, head).await?;
            outcome.position = head.or(outcome.position);
        }
    }
    answer(&state, &user, new_id, &outcome, StatusCode::CREATED).await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OutcomeCount {
    pub outcome: String,
    pub disposition: Option<String>,
    pub calls: i32,
}

/// Live campaign analytics: contacts and calls, as events arrive.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignAnalytics {
    pub campaign_id: Uuid,
    pub status: String,
    /// Contacts in the campaign's call lists (a contact in two lists counts twice).
    pub contacts_total: i64,
    /// Contacts that can still be dialed (not DNC, attempts left, not finished).
    pub contacts_remaining: i64,
    pub contacts_attempted: i64,
    pub contacts_connected: i64,
    pub contacts_in_flight: i64,
    /// Contacts finished (connected, or out of attempts) / contacts, 0–100.
    pub completion_percent: f64,
    pub total_calls: i32,
    pub calls_in_flight: i32,
    pub connected_calls: i32,
    pub successful_calls: i32,
    pub failed_calls: i32,
    pub conversion_rate: f64,
    pub average_talk_seconds: f64,
    pub outcomes: Vec<OutcomeCount>,
}

#[utoipa::path(get, path = "/api/v1/campaigns/{id}/analytics", tag = "campaigns", operation_id = "campaigns_analytics", params(("id" = Uuid, Path)),
    responses((status = 200, body = CampaignAnalytics, description = "OK"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)")),
    security(("bearer" = [])))]
async fn analytics(
    State(state): State<AppState>,
    user: AuthUser,
    PathId(id): PathId,
    MinPosition(min): MinPosition,
) -> Result<Json<CampaignAnalytics>, ApiError> {
    user.require(READERS)?;
    state.wait_for(view::NAME, min).await?;
    state.wait_for(contacts::NAME, min).await?;
    let row = owned(&state, &user, id).await?;
    let settings = row.settings()?;
    let (mut total, mut remaining) = (0i64, 0i64);
    for list in kraliki_projections::call_list::call_lists_of(&state.pool, id).await? {
        let filter: ContactFilter = serde_json::from_value(list.filter).map_err(anyhow::Error::from)?;
        let query = CallListQuery {
            tenant: user.company_id,
            campaign: id,
            settings: &settings,
            filter: &filter,
            order: &[],
            now: Utc::now(),
        };
        let (t, r) = contacts::count_members(&state.pool, &query).await?;
        total += t;
        remaining += r;
    }
    let (attempted, connected, in_flight) = contacts::campaign_progress(&state.pool, id).await?;
    let finished = (total - remaining).max(0);
    let completion_percent =
        if total > 0 { (finished as f64 * 1000.0 / total as f64).round() / 10.0 } else { 0.0 };
    let outcomes = view::outcomes(&state.pool, id)
        .await?
        .into_iter()
        .map(|o| OutcomeCount {
            outcome: o.outcome,
            disposition: (!o.disposition.is_empty()).then_some(o.disposition),
            calls: o.calls,
        })
        .collect();
    let ended = row.total_calls - row.calls_in_flight;
    Ok(Json(CampaignAnalytics {
        campaign_id: id,
        status: row.status,
        contacts_total: total,
        contacts_remaining: remaining,
        contacts_attempted: attempted,
        contacts_connected: connected,
        contacts_in_flight: in_flight,
        completion_percent,
        total_calls: row.total_calls,
        calls_in_flight: row.calls_in_flight,
        connected_calls: row.connected_calls,
        successful_calls: row.successful_calls,
        failed_calls: row.failed_calls,
        conversion_rate: if row.connected_calls > 0 {
            f64::from(row.successful_calls) / f64::from(row.connected_calls)
        } else {
            0.0
        },
        average_talk_seconds: if ended > 0 && row.connected_calls > 0 {
            row.talk_seconds as f64 / f64::from(row.connected_calls)
        } else {
            0.0
        },
        outcomes,
    }))
}
