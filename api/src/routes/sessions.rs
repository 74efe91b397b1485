//! AI sessions: the live ones of the company on every instance (`/api/v1/sessions`, from the
//! call read model: a call whose voice agent connected and that has not ended) and the
//! defaults of sessions no campaign configures (`/api/v1/sessions/config`).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use chrono::{DateTime, Utc};
use kraliki_domain::tenant_settings::{SessionDefaults, TenantSettingsCommand};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::common::{MANAGERS, READERS};
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::{page_limit, ApiJson, ApiQuery, MinPosition};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(sessions)).routes(routes!(config_read, config_write))
}

/// A live AI session: a call with its voice agent connected.
#[derive(Debug, Serialize, ToSchema)]
struct LiveSession {
    /// The call's id (sessions are driven by call id).
    id: Uuid,
    call_id: Uuid,
    /// The voice-AI provider: openai | gemini | deepgram.
    provider: Option<String>,
    model: Option<String>,
    voice: Option<String>,
    /// The carrier (twilio | telnyx) or `browser`.
    telephony_provider: String,
    direction: String,
    from_number: String,
    to_number: String,
    campaign_id: Option<Uuid>,
    contact_id: Option<Uuid>,
    status: String,
    started_at: DateTime<Utc>,
    /// When the voice agent connected.
    connected_at: Option<DateTime<Utc>>,
    /// Seconds since the agent connected.
    duration_seconds: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct SessionsQuery {
    /// At most this many (newest first), 1–500, default 50.
    limit: Option<i64>,
    #[allow(dead_code)] // read by `MinPosition`
    min_position: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/sessions", tag = "sessions", operation_id = "sessions_list", params(SessionsQuery),
    responses((status = 200, body = Vec<LiveSession>, description = "The company's live AI sessions on every instance, newest first"),
        (status = 400, body = crate::error::Problem, description = "Invalid query (problem+json)")),
    security(("bearer" = [])))]
async fn sessions(
    State(state): State<AppState>,
    user: AuthUser,
    MinPosition(min): MinPosition,
    ApiQuery(q): ApiQuery<SessionsQuery>,
) -> Result<Json<Vec<LiveSession>>, ApiError> {
    user.require(READERS)?;
    let limit = page_limit(q.limit)?;
    state.wait_for(kraliki_projections::call::NAME, min).await?;
    let now = Utc::now();
    let rows = kraliki_projections::call::live_sessions(&state.pool, user.company_id, limit).await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| LiveSession {
                id: r.id,
                call_id: r.id,
                provider: r.ai_provider,
                model: r.ai_model,
                voice: r.ai_voice,
                telephony_provider: r.provider,
                direction: r.direction,
                from_number: r.from_number,
                to_number: r.to_number,
                campaign_id: r.campaign_id,
                contact_id: r.contact_id,
                status: r.status,
                started_at: r.started_at,
                connected_at: r.agent_connected_at,
                duration_seconds: r.agent_connected_at.map_or(0, |at| (now - at).num_seconds().max(0)),
            })
            .collect(),
    ))
}

/// The defaults of sessions no campaign configures (ad-hoc calls, browser sessions).
#[derive(Debug, Serialize, ToSchema)]
struct SessionConfigResponse {
    #[serde(flatten)]
    defaults: SessionDefaults,
    /// `null` until the company sets any.
    updated_at: Option<DateTime<Utc>>,
}

#[utoipa::path(get, path = "/api/v1/sessions/config", tag = "sessions", operation_id = "sessions_config_read",
    params(("min_position" = Option<i64>, Query, description = "Wait until the read model has applied this log position")),
    responses((status = 200, body = SessionConfigResponse, description = "The session defaults")), security(("bearer" = [])))]
async fn config_read(
    State(state): State<AppState>,
    user: AuthUser,
    MinPosition(min): MinPosition,
) -> Result<Json<SessionConfigResponse>, ApiError> {
    user.require(READERS)?;
    state.wait_for(kraliki_projections::tenant_settings::NAME, min).await?;
    let d = kraliki_projections::tenant_settings::get(&state.pool, user.company_id).await?;
    Ok(Json(SessionConfigResponse { defaults: d.session, updated_at: d.updated_at }))
}

#[utoipa::path(post, path = "/api/v1/sessions/config", tag = "sessions", operation_id = "sessions_config_write", request_body = SessionDefaults,
    responses((status = 200, body = SessionConfigResponse, description = "Saved (a `SessionDefaultsSet` event; the same again records nothing)"),
        (status = 422, body = crate::error::Problem, description = "Too long, or control characters (problem+json)")),
    security(("bearer" = [])))]
async fn config_write(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    body: ApiJson<SessionDefaults>,
) -> Result<Response, ApiError> {
    user.require(MANAGERS)?;
    let command = TenantSettingsCommand::SetSessionDefaults { defaults: body.value, at: Utc::now() };
    super::providers::set_defaults(&state, &user, &headers, body.fingerprint, command, |d| {
        SessionConfigResponse { defaults: d.session, updated_at: d.updated_at }
    })
    .await
}
