//! `/api/v1/teams`: teams, their members and their agents (commands on the Team aggregate),
//! read from `team_view` and `agent_view`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use kraliki_commands::Outcome;
use kraliki_domain::team::{MemberRole, Team, TeamCommand, TeamSettings};
use kraliki_projections::agent::{self as agents, AgentFilter};
use kraliki_projections::company::Cursor;
use kraliki_projections::team::{self as view, TeamRow};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::agents::{company_user, AgentPerformance, AgentResponse, Performance, PeriodQuery};
use super::common::{invalid, tenant_context, write_headers, written_id, Paged, MANAGERS, READERS};
use crate::auth::AuthUser;
use crate::error::{ApiError, Code};
use crate::extract::{bad_cursor, page_limit, ApiJson, ApiQuery, IdempotencyKey, MinPosition, PathId};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, update, delete))
        .routes(routes!(team_agents))
        .routes(routes!(team_performance))
        .routes(routes!(add_member))
        .routes(routes!(remove_member))
}

/// A member of a team.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamMember {
    pub user_id: Uuid,
    /// owner | manager | supervisor | agent | viewer
    pub role: MemberRole,
}

/// A team: its settings, flat, plus members.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamResponse {
    pub id: Uuid,
    #[serde(flatten)]
    pub settings: TeamSettings,
    pub members: Vec<TeamMember>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TeamResponse {
    fn from_row(r: TeamRow) -> Result<Self, ApiError> {
        let settings = r.settings()?;
        let map: std::collections::BTreeMap<Uuid, MemberRole> =
            serde_json::from_value(r.members).map_err(|e| ApiError::internal(anyhow::Error::from(e)))?;
        let members = map.into_iter().map(|(user_id, role)| TeamMember { user_id, role }).collect();
        Ok(Self {
            id: r.id,
            settings,
            members,
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

async fn owned(state: &AppState, user: &AuthUser, id: Uuid) -> Result<TeamRow, ApiError> {
    view::get(&state.pool, user.company_id, id).await?.ok_or_else(ApiError::not_found)
}

/// 422 unless the supervisor (when named) is a user of the company.
async fn check_supervisor(
    state: &AppState,
    user: &AuthUser,
    settings: &TeamSettings,
) -> Result<(), ApiError> {
    match settings.supervisor_id {
        Some(s) if !company_user(state, user, s).await? => Err(ApiError::new(Code::ValidationFailed).field(
            "supervisor_id",
            "not_found",
            "no such user in the company",
        )),
        _ => Ok(()),
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
    let mut response = (status, Json(TeamResponse::from_row(row)?)).into_response();
    let location = (status == StatusCode::CREATED).then(|| format!("/api/v1/teams/{id}"));
    write_headers(&mut response, outcome, location);
    Ok(response)
}

#[utoipa::path(post, path = "/api/v1/teams", tag = "teams", operation_id = "teams_create",
    request_body(content = TeamSettings, description = "`name` is required; `timezone` (IANA) defaults to UTC."),
    params(("Idempotency-Key" = Option<String>, Header, description = "A repeated key returns the first outcome")),
    responses((status = 201, body = TeamResponse, description = "Created"), (status = 403, body = crate::error::Problem, description = "Not allowed (problem+json)"),
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
    let settings = TeamSettings::from_json(Value::Object(body.value)).map_err(invalid)?;
    let id = Uuid::now_v7();
    let ctx = tenant_context(&headers, &user, key, body.fingerprint);
    let prepare = async {
        check_supervisor(&state, &user, &settings).await?;
        Ok(TeamCommand::CreateTeam { settings, at: Utc::now() })
    };
    let outcome = super::common::create::<Team>(&state, &ctx, id, prepare).await?;
    answer(&state, &user, id, &outcome, StatusCode::CREATED).await
}

#[utoipa::path(get, path = "/api/v1/teams", tag = "teams", operation_id = "teams_list", params(ListQuery),
    responses((status = 200, body = Vec<TeamResponse>, headers(("Link" = String, description = "The next page: `<…?cursor=…>; rel=\"next\"` (RFC 8288); absent on the last page"), ("X-Next-Cursor" = String, description = "The next page's cursor")), description = "Newest first"), (status = 400, body = crate::error::Problem, description = "Invalid query (problem+json)")),
    security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    MinPosition(min): MinPosition,
    ApiQuery(q): ApiQuery<ListQuery>,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
) -> Result<Paged<TeamResponse>, ApiError> {
    user.require(READERS)?;
    let limit = page_limit(q.limit)?;
    let cursor = q.cursor.as_deref().map(|c| Cursor::decode(c).ok_or_else(bad_cursor)).transpose()?;
    state.wait_for(view::NAME, min).await?;
    let page = view::list(&state.pool, user.company_id, q.q.as_deref(), cursor.as_ref(), limit)
        .await
        .map_err(|e| if e.is::<chrono::ParseError>() { bad_cursor() } else { ApiError::from(e) })?;
    let items = page.items.into_iter().map(TeamResponse::from_row).collect::<Result<_, _>>()?;
    Ok(Paged::new(items, page.next_cursor, &uri))
}

#[utoipa::path(get, path = "/api/v1/teams/{id}", tag = "teams", operation_id = "teams_read", params(("id" = Uuid, Path)),
    responses((status = 200, body = TeamResponse, description = "OK"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)")),
    security(("bearer" = [])))]
async fn read(
    State(state): State<AppState>,
    user: AuthUser,
    PathId(id): PathId,
    MinPosition(min): MinPosition,
) -> Result<Json<TeamResponse>, ApiError> {
    user.require(READERS)?;
    state.wait_for(view::NAME, min).await?;
    Ok(Json(TeamResponse::from_row(owned(&state, &user, id).await?)?))
}

#[utoipa::path(put, path = "/api/v1/teams/{id}", tag = "teams", operation_id = "teams_update",
    request_body(content = Object, description = "A JSON merge patch over the settings: absent keeps, `null` resets to the default."),
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = TeamResponse, description = "OK"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)"),
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
    check_supervisor(&state, &user, &merged).await?;
    let command = TeamCommand::UpdateTeam { patch: body.value, at: Utc::now() };
    let ctx = tenant_context(&headers, &user, key, body.fingerprint);
    let outcome = state.dispatcher.execute::<Team>(&id.to_string(), command, &ctx).await?;
    answer(&state, &user, id, &outcome, StatusCode::OK).await
}

#[utoipa::path(delete, path = "/api/v1/teams/{id}", tag = "teams", operation_id = "teams_delete", params(("id" = Uuid, Path)),
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
        .execute::<Team>(&id.to_string(), TeamCommand::DeleteTeam { at: Utc::now() }, &ctx)
        .await?;
    state.wait_for(view::NAME, outcome.position).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(get, path = "/api/v1/teams/{id}/agents", tag = "teams", operation_id = "teams_agents", params(("id" = Uuid, Path), ListQuery),
    responses((status = 200, body = Vec<AgentResponse>, headers(("Link" = String, description = "The next page (RFC 8288)"), ("X-Next-Cursor" = String, description = "The next page's cursor")), description = "The agents whose `team_ids` name the team, newest first"),
        (status = 404, body = crate::error::Problem, description = "Not found (problem+json)")),
    security(("bearer" = [])))]
async fn team_agents(
    State(state): State<AppState>,
    user: AuthUser,
    PathId(id): PathId,
    MinPosition(min): MinPosition,
    ApiQuery(q): ApiQuery<ListQuery>,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
) -> Result<Paged<AgentResponse>, ApiError> {
    user.require(READERS)?;
    let limit = page_limit(q.limit)?;
    let cursor = q.cursor.as_deref().map(|c| Cursor::decode(c).ok_or_else(bad_cursor)).transpose()?;
    state.wait_for(view::NAME, min).await?;
    state.wait_for(agents::NAME, min).await?;
    owned(&state, &user, id).await?;
    let filter = AgentFilter { team_id: Some(id), search: q.q, ..AgentFilter::default() };
    let page =
        agents::list(&state.pool, user.company_id, &filter, cursor.as_ref(), limit).await.map_err(|e| {
            if e.is::<chrono::ParseError>() {
                bad_cursor()
            } else {
                ApiError::from(e)
            }
        })?;
    let items = page.items.into_iter().map(AgentResponse::from_row).collect::<Result<_, _>>()?;
    Ok(Paged::new(items, page.next_cursor, &uri))
}

#[utoipa::path(post, path = "/api/v1/teams/{id}/members", tag = "teams", operation_id = "teams_add_member", request_body = TeamMember,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = TeamResponse, description = "The team with the member (the same role again changes nothing)"),
        (status = 404, body = crate::error::Problem, description = "Not found (problem+json)"),
        (status = 409, body = crate::error::Problem, description = "A member already, with another role (problem+json)"),
        (status = 422, body = crate::error::Problem, description = "Not a user of the company, or an unknown role (problem+json)")),
    security(("bearer" = [])))]
async fn add_member(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    PathId(id): PathId,
    IdempotencyKey(key): IdempotencyKey,
    body: ApiJson<TeamMember>,
) -> Result<Response, ApiError> {
    user.require(MANAGERS)?;
    owned(&state, &user, id).await?;
    let m = &body.value;
    if !company_user(&state, &user, m.user_id).await? {
        return Err(ApiError::new(Code::ValidationFailed).field(
            "user_id",
            "not_found",
            "no such user in the company",
        ));
    }
    let command = TeamCommand::AddTeamMember { user_id: m.user_id, role: m.role, at: Utc::now() };
    let ctx = tenant_context(&headers, &user, key, body.fingerprint);
    let outcome = state.dispatcher.execute::<Team>(&id.to_string(), command, &ctx).await?;
    answer(&state, &user, id, &outcome, StatusCode::OK).await
}

#[utoipa::path(delete, path = "/api/v1/teams/{id}/members/{user_id}", tag = "teams", operation_id = "teams_remove_member",
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 200, body = TeamResponse, description = "The team without the member"), (status = 404, body = crate::error::Problem, description = "No such team or member (problem+json)")),
    security(("bearer" = [])))]
async fn remove_member(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    Path((id, member)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    user.require(MANAGERS)?;
    let id: Uuid = id.parse().map_err(|_| ApiError::not_found())?;
    let member: Uuid = member.parse().map_err(|_| ApiError::not_found())?;
    owned(&state, &user, id).await?;
    let ctx = tenant_context(&headers, &user, None, String::new());
    let command = TeamCommand::RemoveTeamMember { user_id: member, at: Utc::now() };
    let outcome = state.dispatcher.execute::<Team>(&id.to_string(), command, &ctx).await?;
    answer(&state, &user, id, &outcome, StatusCode::OK).await
}

/// A team's performance: its agents' figures summed, and each agent's.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamPerformance {
    pub team_id: Uuid,
    /// The team's agents.
    pub agents: usize,
    #[serde(flatten)]
    pub figures: Performance,
    pub per_agent: Vec<AgentPerformance>,
}

#[utoipa::path(get, path = "/api/v1/teams/{id}/performance", tag = "teams", operation_id = "teams_performance", params(("id" = Uuid, Path), PeriodQuery),
    responses((status = 200, body = TeamPerformance, description = "The team's agents' offers, calls and time in each state over the period"),
        (status = 400, body = crate::error::Problem, description = "Invalid period (problem+json)"),
        (status = 404, body = crate::error::Problem, description = "Not found (problem+json)")),
    security(("bearer" = [])))]
async fn team_performance(
    State(state): State<AppState>,
    user: AuthUser,
    PathId(id): PathId,
    MinPosition(min): MinPosition,
    ApiQuery(q): ApiQuery<PeriodQuery>,
) -> Result<Json<TeamPerformance>, ApiError> {
    user.require(READERS)?;
    let period = q.period()?;
    state.wait_for(view::NAME, min).await?;
    state.wait_for(agents::NAME, min).await?;
    owned(&state, &user, id).await?;
    let ids = agents::team_agents(&state.pool, user.company_id, id).await?;
    let figures = agents::figures(&state.pool, user.company_id, &ids, period.0, period.1).await?;
    let mut total = kraliki_projections::agent::AgentFigures::default();
    for f in &figures {
        total.add(f);
    }
    Ok(Json(TeamPerformance {
        team_id: id,
        agents: ids.len(),
        figures: Performance::new(&total, period),
        per_agent: figures
            .iter()
            .map(|f| AgentPerformance { agent_id: f.agent_id, figures: Performance::new(f, period) })
            .collect(),
    }))
}
