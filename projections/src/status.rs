//! Health of the read side: lag per projection (events and milliseconds behind the log) and the
//! age of the transaction barrier (how long the oldest open transaction holds catch-up back).

use serde::Serialize;
use sqlx::PgPool;

use crate::builds::{self, Build, BuildStatus};
use crate::filter::EventFilter;
use crate::metrics_catalog as catalog;
use crate::wake::Wake;

/// Lag is counted up to this many events; beyond it the figure reads "at least".
pub const LAG_COUNT_CAP: i64 = 1_000_000;

#[derive(Debug, Clone, Serialize)]
pub struct BuildStatusReport {
    #[serde(flatten)]
    pub build: Build,
    pub lag_events: i64,
    pub lag_ms: f64,
    /// Events in the log (for rebuild progress).
    pub total_events: i64,
    pub progress: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReadSideStatus {
    pub barrier_age_ms: f64,
    pub builds: Vec<BuildStatusReport>,
}

pub async fn barrier_age_ms(pool: &PgPool) -> Result<f64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT coalesce(extract(epoch FROM clock_timestamp() - min(xact_start)) * 1000, 0)::float8 \
         FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()",
    )
    .fetch_one(pool)
    .await
}

/// The size of the log for progress bars: the highest position, an index lookup (a count would
/// scan the log on every refresh). Positions of rolled-back appends are skipped, so this may
/// over-count slightly; progress is an estimate, lag counts are exact.
pub async fn total_events(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT coalesce(max(global_position), 0) FROM events").fetch_one(pool).await
}

/// Events after the build's checkpoint (those `filter` selects, when given) and the age of the
/// oldest of them.
async fn lag(pool: &PgPool, build: &Build, filter: Option<&EventFilter>) -> Result<(i64, f64), sqlx::Error> {
    let (tx, pos) = (build.checkpoint.tx.to_string(), build.checkpoint.pos);
    let (aggregates, events) = filter.map(EventFilter::sql_arrays).unwrap_or_default();
    // Both queries: $1, $2 the checkpoint; $3 "every event"; $4, $5 the filter's arrays.
    let selects = format!("($3 OR {})", EventFilter::sql_condition(4, 5));
    let behind: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM (SELECT 1 FROM events WHERE (tx_id, global_position) > ($1::text::xid8, $2) \
           AND {selects} LIMIT $6) s"
    ))
    .bind(&tx)
    .bind(pos)
    .bind(filter.is_none())
    .bind(&aggregates)
    .bind(&events)
    .bind(LAG_COUNT_CAP)
    .fetch_one(pool)
    .await?;
    if behind == 0 {
        return Ok((0, 0.0));
    }
    let age: f64 = sqlx::query_scalar(&format!(
        "SELECT coalesce(extract(epoch FROM clock_timestamp() - recorded_at) * 1000, 0)::float8 FROM events \
         WHERE (tx_id, global_position) > ($1::text::xid8, $2) AND {selects} \
         ORDER BY tx_id, global_position LIMIT 1"
    ))
    .bind(&tx)
    .bind(pos)
    .bind(filter.is_none())
    .bind(&aggregates)
    .bind(&events)
    .fetch_optional(pool)
    .await?
    .unwrap_or(0.0);
    Ok((behind, age))
}

/// Status of every building or active build, with lag. Also sets the lag gauges. With the
/// `wake` of the process whose runners registered what they read, a serving build's lag counts
/// only the events it reads (an idle runner moves its checkpoint over the others late, on its
/// next read or poll); a building one's counts every event (its progress through the log).
pub async fn read_side(pool: &PgPool, wake: Option<&Wake>) -> Result<ReadSideStatus, sqlx::Error> {
    let barrier_age_ms = barrier_age_ms(pool).await?;
    metrics::gauge!(catalog::BARRIER_AGE.name).set(barrier_age_ms / 1000.0);
    let total = total_events(pool).await?;
    let mut reports = Vec::new();
    for build in builds::all(pool).await? {
        if build.status == BuildStatus::Retired {
            continue;
        }
        let reads = match (build.status, wake) {
            (BuildStatus::Active, Some(wake)) => wake.reads_of(&build.name).flatten(),
            _ => None,
        };
        let (lag_events, lag_ms) = lag(pool, &build, reads.as_ref()).await?;
        if build.status == BuildStatus::Active {
            let name = build.name.clone();
            metrics::gauge!(catalog::PROJECTION_LAG_EVENTS.name, "projection" => name.clone())
                .set(lag_events as f64);
            metrics::gauge!(catalog::PROJECTION_LAG_SECONDS.name, "projection" => name).set(lag_ms / 1000.0);
        }
        let progress = if total == 0 { 1.0 } else { (total - lag_events) as f64 / total as f64 };
        reports.push(BuildStatusReport { build, lag_events, lag_ms, total_events: total, progress });
    }
    Ok(ReadSideStatus { barrier_age_ms, builds: reports })
}
