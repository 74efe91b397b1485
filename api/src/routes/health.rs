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

/// How long `/ready` waits for each of its checks: a load balancer must get an answer fast,
/// above all when the database is unreachable.
const READY_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(900);

async fn bounded<T, E: std::fmt::Display>(
    check: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(READY_CHECK_TIMEOUT, check).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(_) => Err("no answer within 900 ms".into()),
    }
}

/// Ready when the database answers, every migration is applied and every read model is within
/// the configured lag. Builds that serve no reads (the NATS publisher, process managers) that
/// lag make the answer `degraded` (still 200): the API works, fan-out or automation is late.
#[utoipa::path(get, path = "/ready", tag = "operations", operation_id = "operations_ready",
    responses((status = 200, body = Object, description = "Ready (or degraded: something that serves no reads lags)"),
        (status = 503, body = Object, description = "The same report, with what is not fine")))]
async fn ready(State(state): State<AppState>) -> Response {
    let mut ok = true;
    let mut degraded = false;
    let database = match bounded(sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&state.pool)).await {
        Ok(_) => json!({ "ok": true }),
        Err(e) => {
            ok = false;
            json!({ "ok": false, "error": e })
        }
    };
    // Without the database the other checks can only time out too.
    let (migrations, projections) = if !ok {
        let skipped = json!({ "ok": false, "error": "the database does not answer" });
        (skipped.clone(), skipped)
    } else {
        let migrations = match bounded(crate::db::pending_migrations(&state.pool)).await {
            Ok(pending) => {
                ok &= pending.is_empty();
                json!({ "ok": pending.is_empty(), "pending": pending })
            }
            Err(e) => {
                ok = false;
                json!({ "ok": false, "error": e })
            }
        };
        let max_lag = state.settings.projections.ready_max_lag_ms;
        let projections = match bounded(kraliki_projections::status::read_side(
            &state.pool,
            Some(&state.wake),
        ))
        .await
        {
            Ok(status) => {
                let mut items = Vec::new();
                for p in state.supervisor.projections() {
                    let active = status.builds.iter().find(|b| {
                        b.build.name == p.name()
                            && b.build.status == kraliki_projections::builds::BuildStatus::Active
                    });
                    let within = active.is_some_and(|b| b.lag_ms <= max_lag);
                    if p.serves_reads() {
                        ok &= within;
                    } else {
                        degraded |= !within;
                    }
                    items.push(json!({
                        "name": p.name(),
                        "ok": within,
                        "serves_reads": p.serves_reads(),
                        "serving": active.is_some(),
                        "lag_events": active.map(|b| b.lag_events),
                        "lag_ms": active.map(|b| b.lag_ms),
                    }));
                }
                json!({ "ok": items.iter().all(|i| i["ok"] == true), "barrier_age_ms": status.barrier_age_ms, "items": items })
            }
            Err(e) => {
                ok = false;
                json!({ "ok": false, "error": e })
            }
        };
        (migrations, projections)
    };
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let word = match (ok, degraded) {
        (false, _) => "not_ready",
        (true, true) => "degraded",
        (true, false) => "ready",
    };
    let body = json!({
        "status": word,
        "checks": { "database": database, "migrations": migrations, "projections": projections },
    });
    (status, Json(body)).into_response()
}

#[utoipa::path(get, path = "/metrics", tag = "operations", operation_id = "operations_metrics", responses((status = 200, content_type = "text/plain", body = String, description = "OK")))]
async fn metrics(State(state): State<AppState>) -> Response {
    // Refresh the gauges read from the database (lag, barrier, dialing campaigns) at scrape time.
    if let Err(error) = bounded(crate::telemetry::refresh_gauges(&state.pool, &state.wake)).await {
        tracing::warn!(%error, "could not refresh the database gauges");
    }
    state.metrics.run_upkeep();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render()).into_response()
}
