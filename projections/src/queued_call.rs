//! The calls waiting in queues (`queue_entry_view`: one row per visit of a call to a queue,
//! with its pending offer and how it left) and each queue's round-robin pointer
//! (`queue_pointer_view`), from the QueuedCall streams. The router reads both to decide; the
//! API lists a queue's waiting calls from the first.

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kraliki_domain::queued_call::QueuedCallEvent;
use kraliki_domain::routing::CallToRoute;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::event::StoredEvent;
use crate::filter::EventFilter;
use crate::projection::{BuildTables, Projection};

pub const NAME: &str = "queue_entry_view";
const ENTRIES: &str = "queue_entry_view";
const POINTERS: &str = "queue_pointer_view";

pub struct QueuedCallProjection;

#[async_trait]
impl Projection for QueuedCallProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &[ENTRIES, POINTERS]
    }

    fn reads(&self) -> Option<EventFilter> {
        Some(EventFilter::aggregates(&["QueuedCall"]))
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        t: &BuildTables,
        events: &[StoredEvent],
    ) -> anyhow::Result<()> {
        for e in events.iter().filter(|e| e.aggregate_type == "QueuedCall") {
            entry(conn, t, e).await?;
        }
        Ok(())
    }
}

/// The current visit of the call (the row with the highest visit).
const CURRENT: &str = "visit = (SELECT max(visit) FROM {t} WHERE call_id = $1)";

async fn entry(conn: &mut PgConnection, t: &BuildTables, e: &StoredEvent) -> anyhow::Result<()> {
    let table = t.get(ENTRIES);
    let call_id: Uuid = e.aggregate_id.parse()?;
    let seq = e.sequence;
    let current = CURRENT.replace("{t}", table);
    match e.decode::<QueuedCallEvent>()? {
        QueuedCallEvent::CallQueued { visit, queue_id, call, overflow_at, at } => {
            sqlx::query(&format!(
                "INSERT INTO {table} (call_id, visit, tenant_id, queue_id, status, priority, vip, call, arrived_at, \
                 overflow_at, version) VALUES ($1, $2, $3, $4, 'waiting', $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT DO NOTHING"
            ))
            .bind(call_id)
            .bind(i32::try_from(visit)?)
            .bind(e.tenant()?)
            .bind(queue_id)
            .bind(call.priority)
            .bind(call.vip)
            .bind(serde_json::to_value(&call)?)
            .bind(at)
            .bind(overflow_at)
            .bind(seq)
            .execute(&mut *conn)
            .await?;
        }
        QueuedCallEvent::RoutingDecided {
            visit, number, decision, offer_id, offer_expires_at, at, ..
        } => {
            let why_none = decision
                .why_none
                .map(|w| serde_json::to_value(w).ok())
                .and_then(|v| v?.as_str().map(str::to_owned));
            sqlx::query(&format!(
                "UPDATE {table} SET decisions = $3, last_why_none = $4, \
                   status = CASE WHEN $5::uuid IS NULL THEN status ELSE 'offered' END, \
                   offer_id = COALESCE($5, offer_id), agent_id = CASE WHEN $5::uuid IS NULL THEN agent_id ELSE $6 END, \
                   offered_at = CASE WHEN $5::uuid IS NULL THEN offered_at ELSE $7 END, \
                   offer_expires_at = COALESCE($8, offer_expires_at), version = $9 \
                 WHERE call_id = $1 AND visit = $2"
            ))
            .bind(call_id)
            .bind(i32::try_from(visit)?)
            .bind(i32::try_from(number)?)
            .bind(why_none)
            .bind(offer_id)
            .bind(decision.winner)
            .bind(at)
            .bind(offer_expires_at)
            .bind(seq)
            .execute(&mut *conn)
            .await?;
            if let (Some(queue), Some(pointer)) = (decision.queue_id, decision.rr_pointer_after) {
                if decision.rr_pointer_after != decision.rr_pointer_before {
                    sqlx::query(&format!(
                        "INSERT INTO {} (queue_id, rr_pointer, at) VALUES ($1, $2, $3) \
                         ON CONFLICT (queue_id) DO UPDATE SET rr_pointer = excluded.rr_pointer, at = excluded.at",
                        t.get(POINTERS)
                    ))
                    .bind(queue)
                    .bind(i32::try_from(pointer)?)
                    .bind(at)
                    .execute(&mut *conn)
                    .await?;
                }
            }
        }
        QueuedCallEvent::CallOfferEnded { agent_id, outcome, .. } => {
            sqlx::query(&format!(
                "UPDATE {table} SET status = 'waiting', last_why_none = NULL, \
                   turned_down = CASE WHEN $2 AND NOT turned_down ? $3 THEN turned_down || to_jsonb($3) \
                                 ELSE turned_down END, version = $4 \
                 WHERE call_id = $1 AND {current}"
            ))
            .bind(call_id)
            .bind(outcome.turned_down())
            .bind(agent_id.to_string())
            .bind(seq)
            .execute(&mut *conn)
            .await?;
        }
        QueuedCallEvent::CallAssigned { agent_id, waited_ms, at, .. } => {
            left(conn, table, &current, call_id, "assigned", "assigned", Some(agent_id), waited_ms, at, seq)
                .await?
        }
        QueuedCallEvent::CallAbandoned { reason, waited_ms, at, agent_id, .. } => {
            left(conn, table, &current, call_id, "abandoned", &reason, agent_id, waited_ms, at, seq).await?
        }
        QueuedCallEvent::CallOverflowed { target, waited_ms, at, .. } => {
            let reason = serde_json::to_value(target)?["type"].as_str().unwrap_or("overflow").to_owned();
            left(conn, table, &current, call_id, "overflowed", &reason, None, waited_ms, at, seq).await?
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn left(
    conn: &mut PgConnection,
    table: &str,
    current: &str,
    call_id: Uuid,
    status: &str,
    reason: &str,
    agent_id: Option<Uuid>,
    waited_ms: u64,
    at: DateTime<Utc>,
    seq: i64,
) -> anyhow::Result<()> {
    sqlx::query(&format!(
        "UPDATE {table} SET status = $2, left_reason = $3, agent_id = COALESCE($4, agent_id), waited_ms = $5, \
           left_at = $6, version = $7 WHERE call_id = $1 AND {current}"
    ))
    .bind(call_id)
    .bind(status)
    .bind(reason)
    .bind(agent_id)
    .bind(i64::try_from(waited_ms)?)
    .bind(at)
    .bind(seq)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// One visit of a call to a queue.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EntryRow {
    pub call_id: Uuid,
    pub visit: i32,
    pub tenant_id: Uuid,
    pub queue_id: Uuid,
    /// waiting, offered, assigned, abandoned, overflowed.
    pub status: String,
    pub priority: i32,
    pub vip: bool,
    pub call: Value,
    pub arrived_at: DateTime<Utc>,
    pub overflow_at: Option<DateTime<Utc>>,
    pub decisions: i32,
    pub last_why_none: Option<String>,
    pub offer_id: Option<Uuid>,
    pub agent_id: Option<Uuid>,
    pub offered_at: Option<DateTime<Utc>>,
    pub offer_expires_at: Option<DateTime<Utc>>,
    pub turned_down: Value,
    pub left_reason: Option<String>,
    pub left_at: Option<DateTime<Utc>>,
    pub waited_ms: Option<i64>,
    pub version: i64,
}

impl EntryRow {
    /// The call as it was queued.
    pub fn call(&self) -> anyhow::Result<CallToRoute> {
        Ok(serde_json::from_value(self.call.clone())?)
    }

    /// The agents who rejected or missed it in this visit.
    pub fn turned_down(&self) -> HashSet<Uuid> {
        self.turned_down
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str()?.parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Still in the queue.
    pub fn in_queue(&self) -> bool {
        matches!(self.status.as_str(), "waiting" | "offered")
    }
}

const COLUMNS: &str = "call_id, visit, tenant_id, queue_id, status, priority, vip, call, arrived_at, overflow_at, \
    decisions, last_why_none, offer_id, agent_id, offered_at, offer_expires_at, turned_down, left_reason, left_at, \
    waited_ms, version";

/// The calls in a queue now (waiting or offered), by arrival.
pub async fn in_queue(pool: &PgPool, tenant: Uuid, queue: Uuid) -> Result<Vec<EntryRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM {ENTRIES} WHERE queue_id = $1 AND tenant_id = $2 \
         AND status IN ('waiting', 'offered') ORDER BY arrived_at, call_id"
    ))
    .bind(queue)
    .bind(tenant)
    .fetch_all(pool)
    .await
}

/// The call's current (or last) visit.
pub async fn current(pool: &PgPool, tenant: Uuid, call: Uuid) -> Result<Option<EntryRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM {ENTRIES} WHERE call_id = $1 AND tenant_id = $2 ORDER BY visit DESC LIMIT 1"
    ))
    .bind(call)
    .bind(tenant)
    .fetch_optional(pool)
    .await
}

/// The visit an offer was made in.
pub async fn by_offer(pool: &PgPool, offer: Uuid) -> Result<Option<EntryRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM {ENTRIES} WHERE offer_id = $1 ORDER BY visit DESC LIMIT 1"
    ))
    .bind(offer)
    .fetch_optional(pool)
    .await
}

/// Of `agents`, those a call's pending offer names (decided, maybe not yet reserved).
pub async fn offered_agents(pool: &PgPool, agents: &[Uuid]) -> Result<HashSet<Uuid>, sqlx::Error> {
    let rows: Vec<Uuid> = sqlx::query_scalar(&format!(
        "SELECT agent_id FROM {ENTRIES} WHERE status = 'offered' AND agent_id = ANY($1)"
    ))
    .bind(agents)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}

/// The queue's round-robin pointer (the member index last offered a call).
pub async fn pointer(pool: &PgPool, queue: Uuid) -> Result<Option<usize>, sqlx::Error> {
    let p: Option<i32> =
        sqlx::query_scalar(&format!("SELECT rr_pointer FROM {POINTERS} WHERE queue_id = $1"))
            .bind(queue)
            .fetch_optional(pool)
            .await?;
    Ok(p.and_then(|p| usize::try_from(p).ok()))
}

/// Calls waiting and offered per queue, for `queues`.
pub async fn depths(
    pool: &PgPool,
    tenant: Uuid,
    queues: &[Uuid],
) -> Result<Vec<(Uuid, i64, i64)>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT queue_id, count(*) FILTER (WHERE status = 'waiting'), count(*) FILTER (WHERE status = 'offered') \
         FROM {ENTRIES} WHERE tenant_id = $1 AND queue_id = ANY($2) AND status IN ('waiting', 'offered') \
         GROUP BY queue_id"
    ))
    .bind(tenant)
    .bind(queues)
    .fetch_all(pool)
    .await
}

/// Calls the queue assigned to agents since `since`, and the seconds from the first of those
/// assignments to the last (for the estimated wait).
pub async fn recent_assignments(
    pool: &PgPool,
    queue: Uuid,
    since: DateTime<Utc>,
) -> Result<(i64, f64), sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT count(*), COALESCE(extract(epoch FROM (max(left_at) - min(left_at)))::float8, 0) \
         FROM {ENTRIES} WHERE queue_id = $1 AND status = 'assigned' AND left_at >= $2"
    ))
    .bind(queue)
    .bind(since)
    .fetch_one(pool)
    .await
}

/// The first `limit` calls waiting (no offer pending) in `queue`, in the order they are served:
/// by arrival (`fifo`), else VIP first, then priority, then arrival — the order of
/// `domain::routing::order_waiting_for`. The router reads no more than it can offer.
pub async fn waiting_head(
    pool: &PgPool,
    tenant: Uuid,
    queue: Uuid,
    fifo: bool,
    limit: i64,
) -> Result<Vec<EntryRow>, sqlx::Error> {
    let order = if fifo { "arrived_at, call_id" } else { "vip DESC, priority DESC, arrived_at, call_id" };
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM {ENTRIES} WHERE queue_id = $1 AND tenant_id = $2 AND status = 'waiting' \
         ORDER BY {order} LIMIT $3"
    ))
    .bind(queue)
    .bind(tenant)
    .bind(limit)
    .fetch_all(pool)
    .await
}
