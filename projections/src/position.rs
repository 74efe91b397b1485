//! Read-your-writes: a command's answer carries the position of its last event; a read may ask
//! to wait (bounded) until the projection it reads from has applied that position.

use std::time::Duration;

use sqlx::PgPool;

use crate::event::Position;
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
        let behind: i64 = sqlx::query_scalar(
            "SELECT $1::int - count(*) FROM projection_builds WHERE name = ANY($2) AND status = 'active' \
             AND (last_tx, last_position) >= ($3::text::xid8, $4)",
        )
        .bind(i32::try_from(names.len()).unwrap_or(i32::MAX))
        .bind(&names)
        .bind(target.tx.to_string())
        .bind(target.pos)
        .fetch_one(pool)
        .await?;
        if behind <= 0 {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return Err(WaitError::Timeout(global_position)),
            _ = projected.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
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
