//! Read-your-writes: a command's answer carries the position of its last event; a read may ask
//! to wait (bounded) until the projection it reads from has applied that position.

use std::time::Duration;

use sqlx::PgPool;

use crate::event::Position;
use crate::filter::EventFilter;
use crate::wake::Wake;

#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("position {0} does not exist in the event log")]
    UnknownPosition(i64),
    #[error("the read model has not reached position {0} yet")]
    Timeout(i64),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The catch-up place of the event at `global_position`, if it exists.
pub async fn locate(pool: &PgPool, global_position: i64) -> Result<Option<Position>, sqlx::Error> {
    let tx: Option<i64> =
        sqlx::query_scalar("SELECT tx_id::text::bigint FROM events WHERE global_position = $1")
            .bind(global_position)
            .fetch_optional(pool)
            .await?;
    Ok(tx.map(|tx| Position { tx, pos: global_position }))
}

/// Where the serving build of `projection` stands.
pub async fn active_checkpoint(pool: &PgPool, projection: &str) -> Result<Option<Position>, sqlx::Error> {
    let row: Option<(i64, i64)> = sqlx::query_as(
        "SELECT last_tx::text::bigint, last_position FROM projection_builds WHERE name = $1 AND status = 'active'",
    )
    .bind(projection)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(tx, pos)| Position { tx, pos }))
}

/// Waits until the serving builds of every one of `projections` have applied the event at
/// `global_position` (one lookup of the event, one read of their checkpoints per wake-up).
pub async fn wait_for_all(
    pool: &PgPool,
    wake: &Wake,
    projections: &[&str],
    global_position: i64,
    timeout: Duration,
) -> Result<(), WaitError> {
    if global_position <= 0 || projections.is_empty() {
        return Ok(());
    }
    let target = locate(pool, global_position).await?.ok_or(WaitError::UnknownPosition(global_position))?;
    let names: Vec<String> = projections.iter().map(|p| (*p).to_owned()).collect();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut projected = wake.subscribe_projected();
    loop {
        projected.borrow_and_update();
        let at: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT name, last_tx::text::bigint, last_position FROM projection_builds \
             WHERE name = ANY($1) AND status = 'active'",
        )
        .bind(&names)
        .fetch_all(pool)
        .await?;
        let mut caught_up = true;
        for name in &names {
            let checkpoint =
                at.iter().find(|(n, ..)| n == name).map(|(_, tx, pos)| Position { tx: *tx, pos: *pos });
            match checkpoint {
                Some(c) if (c.tx, c.pos) >= (target.tx, target.pos) => {}
                Some(c) if skipped_only(pool, wake, name, c, target).await? => {}
                _ => {
                    wake.hurry(name);
                    caught_up = false;
                }
            }
        }
        if caught_up {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return Err(WaitError::Timeout(global_position)),
            _ = projected.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
}

/// Whether a read model whose checkpoint is `checkpoint` already shows the log up to `target`:
/// every transaction up to the target's is over and nothing between the two is of what its
/// runner reads (a runner sleeps through the appends of types it ignores, so its checkpoint
/// moves over them late). Unknown here (no runner registered what it reads): no.
async fn skipped_only(
    pool: &PgPool,
    wake: &Wake,
    projection: &str,
    checkpoint: Position,
    target: Position,
) -> Result<bool, sqlx::Error> {
    let Some(Some(filter)) = wake.reads_of(projection) else { return Ok(false) };
    let (aggregates, events) = filter.sql_arrays();
    sqlx::query_scalar(&format!(
        "SELECT pg_snapshot_xmin(pg_current_snapshot()) > $3::text::xid8 AND NOT EXISTS ( \
           SELECT 1 FROM events \
           WHERE (tx_id, global_position) > ($1::text::xid8, $2) \
             AND (tx_id, global_position) <= ($3::text::xid8, $4) AND {})",
        EventFilter::sql_condition(5, 6)
    ))
    .bind(checkpoint.tx.to_string())
    .bind(checkpoint.pos)
    .bind(target.tx.to_string())
    .bind(target.pos)
    .bind(aggregates)
    .bind(events)
    .fetch_one(pool)
    .await
}

/// Waits until the serving build of `projection` has applied the event at `global_position`.
pub async fn wait_for(
    pool: &PgPool,
    wake: &Wake,
    projection: &str,
    global_position: i64,
    timeout: Duration,
) -> Result<(), WaitError> {
    wait_for_all(pool, wake, &[projection], global_position, timeout).await
}
