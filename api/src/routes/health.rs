//! Liveness, readiness and metrics.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/api/health", get(health))
        .route("/live", get(live))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "healthy", "service": "kraliki", "version": env!("CARGO_PKG_VERSION") }))
}

async fn live() -> Json<serde_json::Value> {
    Json(json!({ "status": "alive" }))
}

/// Ready when the database answers, every migration is applied and every serving projection is
/// within the configured lag.
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

async fn metrics(State(state): State<AppState>) -> Response {
    // Refresh the lag and barrier gauges at scrape time.
    if let Err(error) = kraliki_projections::status::read_side(&state.pool).await {
        tracing::warn!(%error, "could not refresh projection gauges");
    }
    state.metrics.run_upkeep();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render()).into_response()
}
