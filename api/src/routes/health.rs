//! Liveness, readiness and metrics.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(api_health))
        .routes(routes!(live))
        .routes(routes!(ready))
        .routes(routes!(metrics))
}

#[utoipa::path(get, path = "/health", tag = "operations", operation_id = "operations_health", responses((status = 200, body = Object, description = "OK")))]
async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "healthy", "service": "kraliki", "version": env!("CARGO_PKG_VERSION") }))
}

/// The same, where the template UI probes it.
#[utoipa::path(get, path = "/api/health", tag = "operations", operation_id = "operations_api_health", responses((status = 200, body = Object, description = "OK")))]
async fn api_health() -> Json<serde_json::Value> {
    health().await
}

#[utoipa::path(get, path = "/live", tag = "operations", operation_id = "operations_live", responses((status = 200, body = Object, description = "OK")))]
async fn live() -> Json<serde_json::Value> {
    Json(json!({ "status": "alive" }))
}

/// Ready when the database answers, every migration is applied and every serving projection is
/// within the configured lag.
#[utoipa::path(get, path = "/ready", tag = "operations", operation_id = "operations_ready",
    responses((status = 200, body = Object, description = "Database, migrations and projection lag all fine"),
        (status = 503, body = Object, description = "The same report, with what is not fine")))]
async fn ready(State(state): State<AppState>) -> Response {
    let mut ok = true;
    let database = match sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&state.pool).await {
        Ok(_) => json!({ "ok": true }),
        Err(e) => {
            ok = false;
            json!({ "ok": false, "error": e.to_string() })
        }
    };
    let migrations = match crate::db::pending_migrations(&state.pool).await {
        Ok(pending) => {
            ok &= pending.is_empty();
            json!({ "ok": pending.is_empty(), "pending": pending })
        }
        Err(e) => {
            ok = false;
            json!({ "ok": false, "error": format!("{e:#}") })
        }
    };
    let max_lag = state.settings.projections.ready_max_lag_ms;
    let projections = match kraliki_projections::status::read_side(&state.pool).await {
        Ok(status) => {
            let mut items = Vec::new();
            for p in state.supervisor.projections() {
                let active = status.builds.iter().find(|b| {
                    b.build.name == p.name()
                        && b.build.status == kraliki_projections::builds::BuildStatus::Active
                });
                let within = active.is_some_and(|b| b.lag_ms <= max_lag);
                ok &= within;
                items.push(json!({
                    "name": p.name(),
                    "ok": within,
                    "serving": active.is_some(),
                    "lag_events": active.map(|b| b.lag_events),
                    "lag_ms": active.map(|b| b.lag_ms),
                }));
            }
            json!({ "ok": items.iter().all(|i| i["ok"] == true), "barrier_age_ms": status.barrier_age_ms, "items": items })
        }
        Err(e) => {
            ok = false;
            json!({ "ok": false, "error": e.to_string() })
        }
    };
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "status": if ok { "ready" } else { "not_ready" },
        "checks": { "database": database, "migrations": migrations, "projections": projections },
    });
    (status, Json(body)).into_response()
}

#[utoipa::path(get, path = "/metrics", tag = "operations", operation_id = "operations_metrics", responses((status = 200, content_type = "text/plain", body = String, description = "OK")))]
async fn metrics(State(state): State<AppState>) -> Response {
    // Refresh the lag and barrier gauges at scrape time.
    if let Err(error) = kraliki_projections::status::read_side(&state.pool).await {
        tracing::warn!(%error, "could not refresh projection gauges");
    }
    state.metrics.run_upkeep();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render()).into_response()
}
