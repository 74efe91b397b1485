//! `/api/v1/campaign-templates`: reusable campaign configurations, and campaigns made from them.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use kraliki_commands::Outcome;
use kraliki_domain::campaign::settings::merge_patch;
use kraliki_domain::campaign::{Campaign, CampaignCommand, CampaignOrigin, CampaignSettings};
use kraliki_domain::campaign_template::{CampaignTemplate, TemplateCommand};
use kraliki_projections::campaign::{self as view};
use kraliki_projections::campaign_template::TemplateRow;
use kraliki_projections::company::Cursor;
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
        .routes(routes!(read, update, delete))
        .routes(routes!(instantiate))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateResponse {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub settings: CampaignSettings,
    pub source_campaign: Option<Uuid>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TemplateResponse {
    fn from_row(r: TemplateRow) -> Result<Self, ApiError> {
        Ok(Self {
            id: r.id,
            name: r.name,
            description: r.description,
            settings: serde_json::from_value(r.settings).map_err(anyhow::Error::from)?,
            source_campaign: r.source_campaign,
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
    q: Option<String>,
    #[allow(dead_code)] // read by `MinPosition`
    min_position: Option<i64>,
}

async fn owned(state: &AppState, user: &AuthUser, id: Uuid) -> Result<TemplateRow, ApiError> {
    kraliki_projections::campaign_template::get_template(&state.pool, user.company_id, id)
        .await?
        .ok_or_else(ApiError::not_found)
}

async fn answer(
    state: &AppState,
    user: &AuthUser,
    id: Uuid,
    outcome: &Outcome,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let id = written_id(outcome, id);
    state.wait_for(kraliki_projections::campaign_template::NAME, outcome.position).await?;
    let body = TemplateResponse::from_row(owned(state, user, id).await?)?;
    let mut r = (status, Json(body)).into_response();
    write_headers(
        &mut r,
        outcome,
        (status == StatusCode::CREATED).then(|| format!("/api/v1/campaign-templates/{id}")),
    );
    Ok(r)
}

#[utoipa::path(post, path = "/api/v1/campaign-templates", tag = "campaign-templates", operation_id = "campaign_templates_create",
    request_body(content = CampaignSettings, description = "Campaign settings to reuse; or `from_campaign_id` (plus optional overrides) to save a campaign's settings as a template."),
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = TemplateResponse, description = "Created"), (status = 422, body = crate::error::Problem, description = "Invalid (problem+json)")),
    security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    IdempotencyKey(key): IdempotencyKey,
    body: ApiJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    user.require(MANAGERS)?;
    let mut b = body.value;
    let source = match b.remove("from_campaign_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.parse::<Uuid>().map_err(|_| {
            ApiError::new(Code::ValidationFailed).field("from_campaign_id", "invalid", "not a campaign id")
        })?),
        Some(_) => {
            return Err(ApiError::new(Code::ValidationFailed).field(
                "from_campaign_id",
                "invalid",
                "not a campaign id",
            ))
        }
    };
    let mut merged = match source {
        Some(campaign) => {
            view::get(&state.pool, user.company_id, campaign)
                .await?
                .ok_or_else(|| {
                    ApiError::new(Code::ValidationFailed).field(
                        "from_campaign_id",
                        "not_found",
                        "no such campaign",
                    )
                })?
                .settings
        }
        None => Value::Object(Map::new()),
    };
    merge_patch(&mut merged, &Value::Object(b));
    let settings = CampaignSettings::from_json(merged).map_err(invalid)?;
    let id = Uuid::now_v7();
    let ctx = tenant_context(&headers, &user, key, body.fingerprint);
    let command = TemplateCommand::CreateTemplate { settings, source_campaign: source, at: Utc::now() };
    let outcome = state.dispatcher.execute::<CampaignTemplate>(&id.to_string(), command, &ctx).await?;
    answer(&state, &user, id, &outcome, StatusCode::CREATED).await
}

#[utoipa::path(get, path = "/api/v1/campaign-templates", tag = "campaign-templates", operation_id = "campaign_templates_list", params(ListQuery),
    responses((status = 200, body = Vec<TemplateResponse>, headers(("Link" = String, description = "The next page: `<…?cursor=…>; rel=\"next\"` (RFC 8288); absent on the last page"), ("X-Next-Cursor" = String, description = "The next page's cursor")), description = "Newest first")), security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    MinPosition(min): MinPosition,
    ApiQuery(q): ApiQuery<ListQuery>,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
) -> Result<super::common::Paged<TemplateResponse>, ApiError> {
    user.require(READERS)?;
    let limit = page_limit(q.limit)?;
    let cursor = q.cursor.as_deref().map(|c| Cursor::decode(c).ok_or_else(bad_cursor)).transpose()?;
    state.wait_for(kraliki_projections::campaign_template::NAME, min).await?;
    let page = kraliki_projections::campaign_template::list_templates(
        &state.pool,
        user.company_id,
        q.q.as_deref(),
        cursor.as_ref(),
        limit,
    )
    .await
    .map_err(|e| if e.is::<chrono::ParseError>() { bad_cursor() } else { ApiError::from(e) })?;
    let items = page.items.into_iter().map(TemplateResponse::from_row).collect::<Result<_, _>>()?;
    Ok(super::common::Paged::new(items, page.next_cursor, &uri))
}

#[utoipa::path(get, path = "/api/v1/campaign-templates/{id}", tag = "campaign-templates", operation_id = "campaign_templates_read", params(("id" = Uuid, Path)),
    responses((status = 200, body = TemplateResponse, description = "OK"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)")),
    security(("bearer" = [])))]
async fn read(
    State(state): State<AppState>,
    user: AuthUser,
    PathId(id): PathId,
    MinPosition(min): MinPosition,
) -> Result<Json<TemplateResponse>, ApiError> {
    user.require(READERS)?;
    state.wait_for(kraliki_projections::campaign_template::NAME, min).await?;
    Ok(Json(TemplateResponse::from_row(owned(&state, &user, id).await?)?))
}

#[utoipa::path(put, path = "/api/v1/campaign-templates/{id}", tag = "campaign-templates", operation_id = "campaign_templates_update",
    request_body(content = Object, description = "A JSON merge patch over the template's settings"),
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = TemplateResponse, description = "OK"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)"),
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
    owned(&state, &user, id).await?;
    let ctx = tenant_context(&headers, &user, key, body.fingerprint);
    let command = TemplateCommand::UpdateTemplate { patch: body.value, at: Utc::now() };
    let outcome = state.dispatcher.execute::<CampaignTemplate>(&id.to_string(), command, &ctx).await?;
    answer(&state, &user, id, &outcome, StatusCode::OK).await
}

#[utoipa::path(delete, path = "/api/v1/campaign-templates/{id}", tag = "campaign-templates", operation_id = "campaign_templates_delete", params(("id" = Uuid, Path)),
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
        .execute::<CampaignTemplate>(
            &id.to_string(),
            TemplateCommand::DeleteTemplate { at: Utc::now() },
            &ctx,
        )
        .await?;
    state.wait_for(kraliki_projections::campaign_template::NAME, outcome.position).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(post, path = "/api/v1/campaign-templates/{id}/campaigns", tag = "campaign-templates", operation_id = "campaign_templates_instantiate",
    request_body(content = Object, description = "Overrides merged over the template's settings (e.g. `{\"name\": \"March renewals\"}`)"),
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = super::campaigns::CampaignResponse, description = "A new draft campaign"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)"),
        (status = 422, body = crate::error::Problem, description = "Invalid (problem+json)")),
    security(("bearer" = [])))]
async fn instantiate(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    PathId(id): PathId,
    IdempotencyKey(key): IdempotencyKey,
    body: Option<ApiJson<Map<String, Value>>>,
) -> Result<Response, ApiError> {
    user.require(MANAGERS)?;
    let template = owned(&state, &user, id).await?;
    let (overrides, fingerprint) = body.map(|b| (b.value, b.fingerprint)).unwrap_or_default();
    let mut merged = template.settings;
    merge_patch(&mut merged, &Value::Object(overrides));
    let settings = CampaignSettings::from_json(merged).map_err(invalid)?;
    let campaign_id = Uuid::now_v7();
    let ctx = tenant_context(&headers, &user, key, fingerprint);
    let command = CampaignCommand::CreateCampaign {
        settings,
        origin: CampaignOrigin::Template { template_id: id },
        at: Utc::now(),
    };
    let outcome = state.dispatcher.execute::<Campaign>(&campaign_id.to_string(), command, &ctx).await?;
    let campaign_id = written_id(&outcome, campaign_id);
    state.wait_for(view::NAME, outcome.position).await?;
    let row = view::get(&state.pool, user.company_id, campaign_id).await?.ok_or_else(ApiError::not_found)?;
    let mut r =
        (StatusCode::CREATED, Json(super::campaigns::CampaignResponse::from_row(row)?)).into_response();
    write_headers(&mut r, &outcome, Some(format!("/api/v1/campaigns/{campaign_id}")));
    Ok(r)
}
