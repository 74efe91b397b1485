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
use kraliki_projections::agent::{self as view, AgentFigures, AgentFilter, AgentRow, StateChangeRow};
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
        .routes(routes!(accept_offer))
        .routes(routes!(reject_offer))
        .routes(routes!(states))
        .routes(routes!(performance))
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

/// Declining an offer: why, if the agent says.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectBody {
    pub reason: Option<String>,
}

/// The agent (or a supervisor for them) answers an offer: `id` and `offer` parsed, the agent
/// owned, the caller the agent themself or a manager.
async fn answer_offer(
    state: &AppState,
    user: &AuthUser,
    headers: &HeaderMap,
    (id, offer): (String, String),
    key: Option<String>,
    fingerprint: String,
    command: impl FnOnce(Uuid) -> AgentCommand,
) -> Result<Response, ApiError> {
    user.require(READERS)?;
    let (Ok(id), Ok(offer)) = (id.parse::<Uuid>(), offer.parse::<Uuid>()) else {
        return Err(ApiError::not_found());
    };
    let row = owned(state, user, id).await?;
    if row.user_id != user.user_id {
        user.require(MANAGERS)?;
    }
    let ctx = tenant_context(headers, user, key, fingerprint);
    let outcome = state.dispatcher.execute::<Agent>(&id.to_string(), command(offer), &ctx).await?;
    answer(state, user, id, &outcome, StatusCode::OK).await
}

#[utoipa::path(post, path = "/api/v1/agents/{id}/offers/{offer_id}/accept", tag = "agents", operation_id = "agents_accept_offer",
    params(("id" = Uuid, Path), ("offer_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = AgentResponse, description = "The agent took the offered call (`AgentOfferAccepted`; the router assigns the call)"),
        (status = 403, body = crate::error::Problem, description = "Neither a supervisor nor the agent themself (problem+json)"),
        (status = 404, body = crate::error::Problem, description = "Not found (problem+json)"),
        (status = 409, body = crate::error::Problem, description = "Not the agent's current offer (answered, expired or withdrawn) (problem+json)")),
    security(("bearer" = [])))]
async fn accept_offer(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    Path(ids): Path<(String, String)>,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Response, ApiError> {
    let at = Utc::now();
    answer_offer(&state, &user, &headers, ids, key, String::new(), |offer_id| AgentCommand::AcceptOffer {
        offer_id,
        at,
    })
    .await
}

#[utoipa::path(post, path = "/api/v1/agents/{id}/offers/{offer_id}/reject", tag = "agents", operation_id = "agents_reject_offer",
    request_body(content = Option<RejectBody>),
    params(("id" = Uuid, Path), ("offer_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = AgentResponse, description = "The agent declined (`AgentOfferRejected`, a missed offer; the call is offered to someone else)"),
        (status = 403, body = crate::error::Problem, description = "Neither a supervisor nor the agent themself (problem+json)"),
        (status = 404, body = crate::error::Problem, description = "Not found (problem+json)"),
        (status = 409, body = crate::error::Problem, description = "Not the agent's current offer (problem+json)")),
    security(("bearer" = [])))]
async fn reject_offer(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    Path(ids): Path<(String, String)>,
    IdempotencyKey(key): IdempotencyKey,
    body: Option<ApiJson<RejectBody>>,
) -> Result<Response, ApiError> {
    let at = Utc::now();
    let (reason, fingerprint) = match body {
        Some(b) => (b.value.reason, b.fingerprint),
        None => (None, String::new()),
    };
    answer_offer(&state, &user, &headers, ids, key, fingerprint, |offer_id| AgentCommand::RejectOffer {
        offer_id,
        reason,
        at,
    })
    .await
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

/// A period (`from`, `to`; default the last 24 hours, `to` at most now).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct PeriodQuery {
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    #[allow(dead_code)] // read by `MinPosition`
    min_position: Option<i64>,
}

impl PeriodQuery {
    pub(crate) fn period(&self) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
        let now = Utc::now();
        let to = self.to.unwrap_or(now).min(now);
        let from = self.from.unwrap_or(to - chrono::Duration::hours(24));
        if from >= to {
            return Err(ApiError::new(Code::InvalidQuery).field(
                "from",
                "invalid",
                "the period must start before it ends (and before now)",
            ));
        }
        Ok((from, to))
    }
}

fn ratio(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// Figures over a period, all from the agent events (time in each state, offers and calls).
#[derive(Debug, Serialize, ToSchema)]
pub struct Performance {
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    /// Offers made.
    pub offers: i64,
    pub accepted: i64,
    pub rejected: i64,
    /// Offers that timed out.
    pub missed: i64,
    /// Offers withdrawn.
    pub cancelled: i64,
    /// Pauses after missed offers in a row.
    pub auto_pauses: i64,
    /// accepted / offers.
    pub acceptance_rate: Option<f64>,
    /// Calls that ended for the agent(s).
    pub calls_handled: i64,
    /// Any state but offline.
    pub logged_in_seconds: f64,
    /// Time on calls (on_call).
    pub talk_seconds: f64,
    /// After-call work (wrap_up).
    pub wrap_up_seconds: f64,
    /// (talk + wrap-up) / calls handled. Hold is not tracked yet (no hold events).
    pub aht_seconds: Option<f64>,
    /// (reserved + on_call + wrap_up) / (available + reserved + on_call + wrap_up).
    pub occupancy: Option<f64>,
    /// (on_call + wrap_up) / logged-in time.
    pub utilization: Option<f64>,
    /// Seconds in each state.
    pub seconds_in_state: std::collections::BTreeMap<String, f64>,
}

impl Performance {
    pub(crate) fn new(f: &AgentFigures, (from, to): (DateTime<Utc>, DateTime<Utc>)) -> Self {
        let secs = |ms: i64| ms as f64 / 1000.0;
        let (talk, wrap, staffed, logged) = (f.talk_ms(), f.wrap_up_ms(), f.staffed_ms(), f.logged_in_ms());
        let reserved = f.state_ms.get("reserved").copied().unwrap_or(0);
        Self {
            period_start: from,
            period_end: to,
            offers: f.offers,
            accepted: f.accepted,
            rejected: f.rejected,
            missed: f.missed,
            cancelled: f.cancelled,
            auto_pauses: f.auto_pauses,
            acceptance_rate: ratio(f.accepted, f.offers),
            calls_handled: f.calls_handled,
            logged_in_seconds: secs(logged),
            talk_seconds: secs(talk),
            wrap_up_seconds: secs(wrap),
            aht_seconds: (f.calls_handled > 0).then(|| secs(talk + wrap) / f.calls_handled as f64),
            occupancy: ratio(reserved + talk + wrap, staffed),
            utilization: ratio(talk + wrap, logged),
            seconds_in_state: f.state_ms.iter().map(|(s, ms)| (s.clone(), secs(*ms))).collect(),
        }
    }
}

/// One agent's performance.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentPerformance {
    pub agent_id: Uuid,
    #[serde(flatten)]
    pub figures: Performance,
}

#[utoipa::path(get, path = "/api/v1/agents/{id}/performance", tag = "agents", operation_id = "agents_performance", params(("id" = Uuid, Path), PeriodQuery),
    responses((status = 200, body = AgentPerformance, description = "Offers, calls, time in each state, AHT, occupancy and utilization over the period"),
        (status = 400, body = crate::error::Problem, description = "Invalid period (problem+json)"),
        (status = 404, body = crate::error::Problem, description = "Not found (problem+json)")),
    security(("bearer" = [])))]
async fn performance(
    State(state): State<AppState>,
    user: AuthUser,
    PathId(id): PathId,
    MinPosition(min): MinPosition,
    ApiQuery(q): ApiQuery<PeriodQuery>,
) -> Result<Json<AgentPerformance>, ApiError> {
    user.require(READERS)?;
    let period = q.period()?;
    state.wait_for(view::NAME, min).await?;
    owned(&state, &user, id).await?;
    let figures = view::figures(&state.pool, user.company_id, &[id], period.0, period.1).await?;
    let f = figures.into_iter().next().unwrap_or_default();
    Ok(Json(AgentPerformance { agent_id: id, figures: Performance::new(&f, period) }))
}
