//! `/api/v1/agents`: agent profiles, skills and the state machine (commands on the Agent
//! aggregate), read from `agent_view` and `agent_state_view`. Supervisors and admins manage
//! agents; an agent sets their own state.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use kraliki_commands::Outcome;
use kraliki_domain::agent::{Agent, AgentCommand, AgentProfile, AgentState, SkillLevel};
use kraliki_projections::agent::{self as view, AgentFilter, AgentRow, StateChangeRow};
use kraliki_projections::company::Cursor;
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
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, update, delete))
        .routes(routes!(set_skills))
        .routes(routes!(remove_skill))
        .routes(routes!(set_status))
        .routes(routes!(states))
        .routes(routes!(list_alias))
}

/// An agent as the read model shows it: the profile, flat, plus the current state.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentResponse {
    pub id: Uuid,
    #[serde(flatten)]
    pub profile: AgentProfile,
    /// offline | available | reserved | on_call | wrap_up | break | training | away | busy
    pub status: AgentState,
    /// The reason code of the current state (break and away reasons, `missed_offers`).
    pub status_reason: Option<String>,
    /// Since when the agent is in `status`.
    pub status_since: DateTime<Utc>,
    /// Since when the agent is available (none when not available).
    pub available_since: Option<DateTime<Utc>>,
    /// Missed offers in a row.
    pub missed_offers_in_a_row: i32,
    /// Calls the agent is on.
    pub active_calls: i32,
    /// The live offer: `{offer_id, call_id, queue_id, offered_at, expires_at}`.
    #[schema(value_type = Option<Object>)]
    pub current_offer: Option<Value>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl AgentResponse {
    pub(crate) fn from_row(r: AgentRow) -> Result<Self, ApiError> {
        Ok(Self {
            id: r.id,
            profile: r.profile()?,
            status: r.state(),
            status_reason: r.reason,
            status_since: r.state_since,
            available_since: r.available_since,
            missed_offers_in_a_row: r.missed_in_a_row,
            active_calls: r.active_calls,
            current_offer: r.offer,
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
    /// An agent state (`available`, `on_call`, …).
    status: Option<String>,
    /// Agents of this team.
    team_id: Option<Uuid>,
    /// Agents with this skill.
    skill: Option<String>,
    /// Display name contains (case-insensitive).
    q: Option<String>,
    #[allow(dead_code)] // read by `MinPosition`
    min_position: Option<i64>,
}

/// Skills to add or change: `{"skills": [{name, proficiency}, …]}` or one `{name, proficiency}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
enum SkillsBody {
    Many { skills: Vec<SkillLevel> },
    One(SkillLevel),
}

/// A state change (`reason`: a reason code for break and away).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    /// available | offline | break | training | away | busy
    status: String,
    reason: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct StatesQuery {
    limit: Option<i64>,
    /// The last sequence number of the previous page.
    cursor: Option<String>,
    #[allow(dead_code)] // read by `MinPosition`
    min_position: Option<i64>,
}

/// The agent if it belongs to the caller's company (else 404).
pub(crate) async fn owned(state: &AppState, user: &AuthUser, id: Uuid) -> Result<AgentRow, ApiError> {
    view::get(&state.pool, user.company_id, id).await?.ok_or_else(ApiError::not_found)
}

/// Whether `id` is a user of the caller's company.
pub(crate) async fn company_user(state: &AppState, user: &AuthUser, id: Uuid) -> Result<bool, ApiError> {
    Ok(kraliki_projections::user::get(&state.pool, id)
        .await?
        .is_some_and(|u| u.company_id == user.company_id))
}

/// 422 for every id in `ids` that is not a team of the caller's company.
async fn check_teams(state: &AppState, user: &AuthUser, ids: &[Uuid]) -> Result<(), ApiError> {
    let found = kraliki_projections::team::existing(&state.pool, user.company_id, ids).await?;
    let mut error = ApiError::new(Code::ValidationFailed);
    for (i, t) in ids.iter().enumerate() {
        if !found.contains(t) {
            error = error.field(format!("team_ids[{i}]"), "not_found", "no such team");
        }
    }
    if error.errors.is_empty() {
        Ok(())
    } else {
        Err(error)
    }
}

/// The agent as the read model shows it once it applied `outcome`.
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
    let mut response = (status, Json(AgentResponse::from_row(row)?)).into_response();
    let location = (status == StatusCode::CREATED).then(|| format!("/api/v1/agents/{id}"));
    write_headers(&mut response, outcome, location);
    Ok(response)
}

#[utoipa::path(post, path = "/api/v1/agents", tag = "agents", operation_id = "agents_create",
    request_body(content = AgentProfile, description = "The profile: `user_id` (a user of the company) and `display_name` are required; skills and languages map a name to a proficiency 1–5."),
    params(("Idempotency-Key" = Option<String>, Header, description = "A repeated key returns the first outcome")),
    responses((status = 201, body = AgentResponse, description = "Created, offline"), (status = 403, body = crate::error::Problem, description = "Not allowed (problem+json)"),
        (status = 409, body = crate::error::Problem, description = "The user is an agent already (problem+json)"),
        (status = 422, body = crate::error::Problem, description = "Invalid profile (problem+json)")),
    security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    IdempotencyKey(key): IdempotencyKey,
    body: ApiJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    user.require(MANAGERS)?;
    let profile = AgentProfile::from_json(Value::Object(body.value)).map_err(invalid)?;
    let id = Uuid::now_v7();
    let ctx = tenant_context(&headers, &user, key, body.fingerprint);
    let prepare = async {
        if !company_user(&state, &user, profile.user_id).await? {
            return Err(ApiError::new(Code::ValidationFailed).field(
                "user_id",
                "not_found",
                "no such user in the company",
            ));
        }
        check_teams(&state, &user, &profile.team_ids).await?;
        if let Some(other) = view::for_user(&state.pool, user.company_id, profile.user_id).await? {
            return Err(
                ApiError::new(Code::AlreadyExists).detail(format!("the user is agent {} already", other.id))
            );
        }
        Ok(AgentCommand::CreateAgent { profile, at: Utc::now() })
    };
    let outcome = super::common::create::<Agent>(&state, &ctx, id, prepare).await?;
    answer(&state, &user, id, &outcome, StatusCode::CREATED).await
}

#[utoipa::path(get, path = "/api/v1/agents", tag = "agents", operation_id = "agents_list", params(ListQuery),
    responses((status = 200, body = Vec<AgentResponse>, headers(("Link" = String, description = "The next page: `<…?cursor=…>; rel=\"next\"` (RFC 8288); absent on the last page"), ("X-Next-Cursor" = String, description = "The next page's cursor")), description = "Newest first"), (status = 400, body = crate::error::Problem, description = "Invalid query (problem+json)")),
    security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    MinPosition(min): MinPosition,
    ApiQuery(q): ApiQuery<ListQuery>,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
) -> Result<Paged<AgentResponse>, ApiError> {
    user.require(READERS)?;
    let limit = page_limit(q.limit)?;
    if let Some(s) = q.status.as_deref() {
        if AgentState::parse(s).is_none() {
            return Err(ApiError::new(Code::InvalidQuery).field("status", "invalid", "not an agent state"));
        }
    }
    let cursor = q.cursor.as_deref().map(|c| Cursor::decode(c).ok_or_else(bad_cursor)).transpose()?;
    state.wait_for(view::NAME, min).await?;
    let filter = AgentFilter {
        state: q.status.map(|s| s.trim().to_owned()),
        team_id: q.team_id,
        skill: q.skill.map(|s| s.trim().to_lowercase()),
        search: q.q,
    };
    let page =
        view::list(&state.pool, user.company_id, &filter, cursor.as_ref(), limit).await.map_err(|e| {
            if e.is::<chrono::ParseError>() {
                bad_cursor()
            } else {
                ApiError::from(e)
            }
        })?;
    let items = page.items.into_iter().map(AgentResponse::from_row).collect::<Result<_, _>>()?;
    Ok(Paged::new(items, page.next_cursor, &uri))
}

/// The seed's MCP client's unversioned path for [`list`].
#[utoipa::path(get, path = "/api/agents", tag = "agents", operation_id = "agents_list_alias", params(ListQuery),
    responses((status = 200, body = Vec<AgentResponse>, headers(("Link" = String, description = "The next page (RFC 8288)"), ("X-Next-Cursor" = String, description = "The next page's cursor")), description = "Alias of `GET /api/v1/agents`"), (status = 400, body = crate::error::Problem, description = "Invalid query (problem+json)")),
    security(("bearer" = [])))]
async fn list_alias(
    state: State<AppState>,
    user: AuthUser,
    min: MinPosition,
    q: ApiQuery<ListQuery>,
    uri: axum::extract::OriginalUri,
) -> Result<Paged<AgentResponse>, ApiError> {
    list(state, user, min, q, uri).await
}

#[utoipa::path(get, path = "/api/v1/agents/{id}", tag = "agents", operation_id = "agents_read", params(("id" = Uuid, Path)),
    responses((status = 200, body = AgentResponse, description = "OK"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)")),
    security(("bearer" = [])))]
async fn read(
    State(state): State<AppState>,
    user: AuthUser,
    PathId(id): PathId,
    MinPosition(min): MinPosition,
) -> Result<Json<AgentResponse>, ApiError> {
    user.require(READERS)?;
    state.wait_for(view::NAME, min).await?;
    Ok(Json(AgentResponse::from_row(owned(&state, &user, id).await?)?))
}

#[utoipa::path(put, path = "/api/v1/agents/{id}", tag = "agents", operation_id = "agents_update",
    request_body(content = Object, description = "A JSON merge patch over the profile: absent keeps, `null` resets to the default; `user_id` cannot change."),
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = AgentResponse, description = "OK"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)"),
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
    // The teams it names must exist (checked on the merged result).
    if body.value.contains_key("team_ids") {
        let merged = row.profile()?.patched(&body.value).map_err(invalid)?;
        check_teams(&state, &user, &merged.team_ids).await?;
    }
    let command = AgentCommand::UpdateAgent { patch: body.value, at: Utc::now() };
    let ctx = tenant_context(&headers, &user, key, body.fingerprint);
    let outcome = state.dispatcher.execute::<Agent>(&id.to_string(), command, &ctx).await?;
    answer(&state, &user, id, &outcome, StatusCode::OK).await
}

#[utoipa::path(delete, path = "/api/v1/agents/{id}", tag = "agents", operation_id = "agents_delete", params(("id" = Uuid, Path)),
    responses((status = 204, description = "Deleted (its events stay in the log)"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)"),
        (status = 409, body = crate::error::Problem, description = "Reserved or on a call (problem+json)")),
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
        .execute::<Agent>(&id.to_string(), AgentCommand::DeleteAgent { at: Utc::now() }, &ctx)
        .await?;
    state.wait_for(view::NAME, outcome.position).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(post, path = "/api/v1/agents/{id}/skills", tag = "agents", operation_id = "agents_set_skills",
    request_body(content = SkillsBody, description = "Skills to add or change (name + proficiency 1–5); the others stay."),
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = AgentResponse, description = "The agent with its skills"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)"),
        (status = 422, body = crate::error::Problem, description = "Invalid skill or proficiency (problem+json)")),
    security(("bearer" = [])))]
async fn set_skills(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    PathId(id): PathId,
    IdempotencyKey(key): IdempotencyKey,
    body: ApiJson<SkillsBody>,
) -> Result<Response, ApiError> {
    user.require(MANAGERS)?;
    owned(&state, &user, id).await?;
    let skills = match body.value {
        SkillsBody::Many { skills } => skills,
        SkillsBody::One(skill) => vec![skill],
    };
    let command = AgentCommand::SetSkills { skills, at: Utc::now() };
    let ctx = tenant_context(&headers, &user, key, body.fingerprint);
    let outcome = state.dispatcher.execute::<Agent>(&id.to_string(), command, &ctx).await?;
    answer(&state, &user, id, &outcome, StatusCode::OK).await
}

#[utoipa::path(delete, path = "/api/v1/agents/{id}/skills/{name}", tag = "agents", operation_id = "agents_remove_skill",
    params(("id" = Uuid, Path), ("name" = String, Path, description = "The skill")),
    responses((status = 200, body = AgentResponse, description = "The agent without the skill"), (status = 404, body = crate::error::Problem, description = "No such agent or skill (problem+json)")),
    security(("bearer" = [])))]
async fn remove_skill(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    user.require(MANAGERS)?;
    let id: Uuid = id.parse().map_err(|_| ApiError::not_found())?;
    owned(&state, &user, id).await?;
    let ctx = tenant_context(&headers, &user, None, String::new());
    let command = AgentCommand::RemoveSkill { name, at: Utc::now() };
    let outcome = state.dispatcher.execute::<Agent>(&id.to_string(), command, &ctx).await?;
    answer(&state, &user, id, &outcome, StatusCode::OK).await
}

#[utoipa::path(put, path = "/api/v1/agents/{id}/status", tag = "agents", operation_id = "agents_set_status",
    request_body = StatusBody,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = AgentResponse, description = "The agent in its new state (an `AgentStateChanged` event)"),
        (status = 403, body = crate::error::Problem, description = "Neither a supervisor nor the agent themself (problem+json)"),
        (status = 404, body = crate::error::Problem, description = "Not found (problem+json)"),
        (status = 409, body = crate::error::Problem, description = "The state machine does not allow it from the current state (problem+json)"),
        (status = 422, body = crate::error::Problem, description = "Unknown state, or one only calls set (problem+json)")),
    security(("bearer" = [])))]
async fn set_status(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    PathId(id): PathId,
    IdempotencyKey(key): IdempotencyKey,
    body: ApiJson<StatusBody>,
) -> Result<Response, ApiError> {
    user.require(READERS)?;
    let row = owned(&state, &user, id).await?;
    if row.user_id != user.user_id {
        user.require(MANAGERS)?;
    }
    let b = body.value;
    let to = AgentState::parse(&b.status).ok_or_else(|| {
        ApiError::new(Code::ValidationFailed).field("status", "invalid", "not an agent state")
    })?;
    let command = AgentCommand::ChangeState { to, reason: b.reason, at: Utc::now() };
    let ctx = tenant_context(&headers, &user, key, body.fingerprint);
    let outcome = state.dispatcher.execute::<Agent>(&id.to_string(), command, &ctx).await?;
    answer(&state, &user, id, &outcome, StatusCode::OK).await
}

#[utoipa::path(get, path = "/api/v1/agents/{id}/states", tag = "agents", operation_id = "agents_states", params(("id" = Uuid, Path), StatesQuery),
    responses((status = 200, body = Vec<StateChangeRow>, headers(("Link" = String, description = "The next page (RFC 8288)"), ("X-Next-Cursor" = String, description = "The next page's cursor")), description = "Every state change, oldest first"),
        (status = 404, body = crate::error::Problem, description = "Not found (problem+json)")),
    security(("bearer" = [])))]
async fn states(
    State(state): State<AppState>,
    user: AuthUser,
    PathId(id): PathId,
    MinPosition(min): MinPosition,
    ApiQuery(q): ApiQuery<StatesQuery>,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
) -> Result<Paged<StateChangeRow>, ApiError> {
    user.require(READERS)?;
    let limit = page_limit(q.limit)?;
    let after = match q.cursor.as_deref() {
        None => 0,
        Some(c) => c.parse::<i64>().map_err(|_| bad_cursor())?,
    };
    state.wait_for(view::NAME, min).await?;
    owned(&state, &user, id).await?;
    let (items, next) = view::states(&state.pool, user.company_id, id, after, limit).await?;
    Ok(Paged::new(items, next, &uri))
}
