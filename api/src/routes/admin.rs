//! Operating the read side: projection status with rebuild progress, and rebuilds.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use serde::Serialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::AuthUser;
use crate::error::{ApiError, Code};
use crate::state::AppState;
use kraliki_projections::builds::{self, Build, BuildStatus};
use kraliki_projections::status;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(rebuild))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BuildView {
    pub name: String,
    pub build_id: i32,
    pub version: i32,
    #[schema(value_type = String, example = "active")]
    pub status: BuildStatus,
    pub position: i64,
    pub events_done: i64,
    pub lag_events: i64,
    pub lag_ms: f64,
    pub total_events: i64,
    pub progress: f64,
    pub events_per_second: f64,
    pub eta_seconds: Option<f64>,
    pub started_at: chrono::DateTime<Utc>,
    pub activated_at: Option<chrono::DateTime<Utc>>,
}

/// Rate over the build's life so far, and the time left at that rate.
pub fn view(report: &status::BuildStatusReport) -> BuildView {
    let b = &report.build;
    let elapsed = (b.updated_at - b.started_at).num_milliseconds().max(1) as f64 / 1000.0;
    let rate = b.events_done as f64 / elapsed;
    let eta = (b.status == BuildStatus::Building && rate > 0.0).then(|| report.lag_events as f64 / rate);
    BuildView {
        name: b.name.clone(),
        build_id: b.build_id,
        version: b.version,
        status: b.status,
        position: b.checkpoint.pos,
        events_done: b.events_done,
        lag_events: report.lag_events,
        lag_ms: report.lag_ms,
        total_events: report.total_events,
        progress: report.progress,
        events_per_second: rate,
        eta_seconds: eta,
        started_at: b.started_at,
        activated_at: b.activated_at,
    }
}

#[utoipa::path(get, path = "/api/v1/admin/projections", tag = "operations", operation_id = "operations_list",
    responses((status = 200, description = "`{barrier_age_ms, builds: [BuildView]}`", body = Object), (status = 403, body = crate::error::Problem, description = "Not allowed (problem+json)")),
    security(("bearer" = [])))]
async fn list(State(state): State<AppState>, user: AuthUser) -> Result<Json<serde_json::Value>, ApiError> {
    user.require_operator("operates projections")?;
    let status = status::read_side(&state.pool, Some(&state.wake)).await?;
    let builds: Vec<BuildView> = status.builds.iter().map(view).collect();
    Ok(Json(serde_json::json!({ "barrier_age_ms": status.barrier_age_ms, "builds": builds })))
}

#[utoipa::path(post, path = "/api/v1/admin/projections/{name}/rebuild", tag = "operations", operation_id = "operations_rebuild", params(("name" = String, Path)),
    responses((status = 202, description = "The rebuild's build", body = Object), (status = 403, body = crate::error::Problem, description = "Not allowed (problem+json)"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)")),
    security(("bearer" = [])))]
async fn rebuild(
    State(state): State<AppState>,
    user: AuthUser,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<Build>), ApiError> {
    user.require_operator("operates projections")?;
    let projection = state
        .supervisor
        .projection(&name)
        .ok_or_else(|| ApiError::new(Code::NotFound).detail(format!("no projection named {name}")))?;
    let build = builds::request_rebuild(&state.pool, projection.as_ref()).await?;
    state.wake.builds_changed();
    Ok((StatusCode::ACCEPTED, Json(build)))
}
