//! The dashboard's call figures, counted from the call read model for the caller's company:
//! `/api/telephony/stats` (all time) and, where the template UI hard-codes them at the server
//! root, `/analytics/summary` and `/analytics/metrics/realtime` (today, UTC). Ratios are
//! computed from the counts here, never averaged.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use kraliki_projections::call::{CallStats, StatsBy};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::common::READERS;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::{ApiQuery, MinPosition};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(telephony_stats)).routes(routes!(summary)).routes(routes!(realtime))
}

/// Call counts.
#[derive(Debug, Serialize, ToSchema)]
struct Counts {
    total_calls: i64,
    completed_calls: i64,
    failed_calls: i64,
    active_calls: i64,
    inbound_calls: i64,
    outbound_calls: i64,
    answered_calls: i64,
    /// Ended with the outcome `connected`.
    connected_calls: i64,
    /// Average talk time of the answered calls that ended; `null` before any.
    average_duration_seconds: Option<f64>,
    /// Connected ÷ ended; `null` before any ended.
    success_rate: Option<f64>,
}

impl From<&CallStats> for Counts {
    fn from(s: &CallStats) -> Self {
        Self {
            total_calls: s.total,
            completed_calls: s.completed,
            failed_calls: s.failed,
            active_calls: s.active,
            inbound_calls: s.inbound,
            outbound_calls: s.outbound,
            answered_calls: s.answered,
            connected_calls: s.connected,
            average_duration_seconds: s.average_talk_seconds(),
            success_rate: s.success_rate(),
        }
    }
}

/// One provider's counts.
#[derive(Debug, Serialize, ToSchema)]
struct ProviderCounts {
    provider: String,
    #[serde(flatten)]
    counts: Counts,
}

fn per_provider(rows: &[CallStats]) -> Vec<ProviderCounts> {
    rows.iter()
        .map(|r| ProviderCounts { provider: r.provider.clone().unwrap_or_default(), counts: r.into() })
        .collect()
}

/// The company's calls, all time.
#[derive(Debug, Serialize, ToSchema)]
struct TelephonyStats {
    #[serde(flatten)]
    counts: Counts,
    /// Per carrier (twilio, telnyx, browser).
    by_provider: Vec<ProviderCounts>,
}

#[utoipa::path(get, path = "/api/telephony/stats", tag = "telephony", operation_id = "telephony_stats",
    params(("min_position" = Option<i64>, Query, description = "Wait until the read model has applied this log position")),
    responses((status = 200, body = TelephonyStats, description = "The company's calls, all time")), security(("bearer" = [])))]
async fn telephony_stats(
    State(state): State<AppState>,
    user: AuthUser,
    MinPosition(min): MinPosition,
) -> Result<Json<TelephonyStats>, ApiError> {
    user.require(READERS)?;
    state.wait_for(kraliki_projections::call::NAME, min).await?;
    let (all, rows) =
        kraliki_projections::call::stats(&state.pool, user.company_id, None, StatsBy::Carrier).await?;
    Ok(Json(TelephonyStats { counts: (&all).into(), by_provider: per_provider(&rows) }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct SinceQuery {
    /// Count calls started at or after this instant (default: today's start, UTC).
    since: Option<DateTime<Utc>>,
    #[allow(dead_code)] // read by `MinPosition`
    min_position: Option<i64>,
}

fn today() -> DateTime<Utc> {
    Utc::now().date_naive().and_hms_opt(0, 0, 0).map(|t| t.and_utc()).unwrap_or_else(Utc::now)
}

/// The dashboard's cards.
#[derive(Debug, Serialize, ToSchema)]
struct Summary {
    /// Calls started since `since`.
    calls_today: i64,
    since: DateTime<Utc>,
    #[serde(flatten)]
    counts: Counts,
    /// Per voice-AI provider (calls whose agent connected).
    by_provider: Vec<ProviderCounts>,
}

#[utoipa::path(get, path = "/analytics/summary", tag = "analytics", operation_id = "analytics_summary", params(SinceQuery),
    responses((status = 200, body = Summary, description = "Calls since `since` (today, UTC, by default)"), (status = 400, body = crate::error::Problem, description = "Invalid query (problem+json)")), security(("bearer" = [])))]
async fn summary(
    State(state): State<AppState>,
    user: AuthUser,
    MinPosition(min): MinPosition,
    ApiQuery(q): ApiQuery<SinceQuery>,
) -> Result<Json<Summary>, ApiError> {
    user.require(READERS)?;
    state.wait_for(kraliki_projections::call::NAME, min).await?;
    let since = q.since.unwrap_or_else(today);
    let (all, rows) =
        kraliki_projections::call::stats(&state.pool, user.company_id, Some(since), StatsBy::VoiceAi).await?;
    Ok(Json(Summary {
        calls_today: all.total,
        since,
        counts: (&all).into(),
        by_provider: per_provider(&rows),
    }))
}

/// What is happening now.
#[derive(Debug, Serialize, ToSchema)]
struct Realtime {
    /// Calls not ended yet.
    active_calls: i64,
    /// Live AI sessions (an agent connected, call not ended).
    active_sessions: i64,
    /// Calls started since `since`.
    calls_today: i64,
    since: DateTime<Utc>,
    average_duration_seconds: Option<f64>,
    success_rate: Option<f64>,
    by_provider: Vec<ProviderCounts>,
    at: DateTime<Utc>,
}

#[utoipa::path(get, path = "/analytics/metrics/realtime", tag = "analytics", operation_id = "analytics_realtime", params(SinceQuery),
    responses((status = 200, body = Realtime, description = "Live calls and sessions, and today's figures"), (status = 400, body = crate::error::Problem, description = "Invalid query (problem+json)")), security(("bearer" = [])))]
async fn realtime(
    State(state): State<AppState>,
    user: AuthUser,
    MinPosition(min): MinPosition,
    ApiQuery(q): ApiQuery<SinceQuery>,
) -> Result<Json<Realtime>, ApiError> {
    user.require(READERS)?;
    state.wait_for(kraliki_projections::call::NAME, min).await?;
    let since = q.since.unwrap_or_else(today);
    let (all, rows) =
        kraliki_projections::call::stats(&state.pool, user.company_id, Some(since), StatsBy::VoiceAi).await?;
    // Live calls that started before `since` count too.
    let (active_calls, active_sessions) =
        kraliki_projections::call::live_counts(&state.pool, user.company_id).await?;
    Ok(Json(Realtime {
        active_calls,
        active_sessions,
        calls_today: all.total,
        since,
        average_duration_seconds: all.average_talk_seconds(),
        success_rate: all.success_rate(),
        by_provider: per_provider(&rows),
        at: Utc::now(),
    }))
}
