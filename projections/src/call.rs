//! The call read models: `call_view` (one row per call: parties, status, outcome, timings,
//! recording) and `call_timeline_view` (every step of every call in stream order, transcript
//! segments, DTMF and AI function calls included). Also the call's raw event history, for
//! auditors, straight from the log.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kraliki_domain::call::CallEvent;
use serde_json::Value;
use sqlx::{PgConnection, PgPool, QueryBuilder};
use uuid::Uuid;

use crate::company::{Cursor, Page};
use crate::event::{StoredEvent, EVENT_COLUMNS};
use crate::projection::{BuildTables, Projection};

pub const NAME: &str = "call_view";
const CALLS: &str = "call_view";
const TIMELINE: &str = "call_timeline_view";

/// The event type of a transcript segment: the timeline rows the transcript is made of.
pub const TRANSCRIPT_KIND: &str = "TranscriptSegmentAdded";

pub struct CallProjection;

/// One timeline row, collected over a batch and written in one statement.
struct Step {
    call_id: Uuid,
    seq: i64,
    at: DateTime<Utc>,
    kind: String,
    detail: Value,
}

#[async_trait]
impl Projection for CallProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> i32 {
        3 // 2: summary; 3: requested calls, typed transfer targets
    }

    fn tables(&self) -> &'static [&'static str] {
        &[CALLS, TIMELINE]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        t: &BuildTables,
        events: &[StoredEvent],
    ) -> anyhow::Result<()> {
        let mut steps = Vec::new();
        for e in events.iter().filter(|e| e.aggregate_type == "Call") {
            let id: Uuid = e.aggregate_id.parse()?;
            let event: CallEvent = e.decode()?;
            let at = event.at();
            steps.push(Step {
                call_id: id,
                seq: e.sequence,
                at,
                kind: e.event_type.clone(),
                detail: detail(&event)?,
            });
            call(conn, t, e, id, event).await?;
        }
        append_steps(conn, t, &steps).await
    }
}

/// The event's payload without what the timeline row already says: its type (`kind`), its time
/// (`at`) and, on the end events, the call's own campaign and contact.
fn detail(event: &CallEvent) -> anyhow::Result<Value> {
    // Externally tagged: `{"CallAnswered": {...}}`.
    let mut fields = match serde_json::to_value(event)? {
        Value::Object(tagged) => match tagged.into_iter().next() {
            Some((_, Value::Object(fields))) => fields,
            _ => serde_json::Map::new(),
        },
        _ => serde_json::Map::new(),
    };
    fields.remove("at");
    if matches!(
        event,
        CallEvent::CallCompleted { .. } | CallEvent::CallFailed { .. } | CallEvent::CallbackScheduled { .. }
    ) {
        fields.remove("campaign_id");
        fields.remove("contact_id");
    }
    Ok(Value::Object(fields))
}

/// The call's row: created by its initiation, then moved by each step.
async fn call(
    conn: &mut PgConnection,
    t: &BuildTables,
    e: &StoredEvent,
    id: Uuid,
    event: CallEvent,
) -> anyhow::Result<()> {
    let table = t.get(CALLS);
    let seq = e.sequence;
    match event {
        CallEvent::CallRequested {
            direction,
            provider,
            from,
            to,
            campaign_id,
            contact_id,
            metadata,
            at,
            ..
        } => {
            let direction = serde_json::to_value(direction)?;
            sqlx::query(&format!(
                "INSERT INTO {table} (id, tenant_id, direction, provider, provider_call_id, from_number, to_number, \
                                  campaign_id, contact_id, status, started_at, version, updated_at, metadata) \
                 VALUES ($1, $2, $3, $4, NULL, $5, $6, $7, $8, 'requested', $9, $10, $9, $11) ON CONFLICT (id) DO NOTHING"
            ))
            .bind(id)
            .bind(e.tenant()?)
            .bind(direction.as_str().unwrap_or_default())
            .bind(provider)
            .bind(from)
            .bind(to)
            .bind(campaign_id)
            .bind(contact_id)
            .bind(at)
            .bind(seq)
            .bind(metadata)
            .execute(&mut *conn)
            .await?;
        }
        CallEvent::CallPlaced { provider_call_id, at } => {
            sqlx::query(&format!(
                "UPDATE {table} SET provider_call_id = $4, \
                 status = CASE WHEN status = 'requested' THEN 'initiated' ELSE status END, \
                 version = $2, updated_at = $3 WHERE id = $1"
            ))
            .bind(id)
            .bind(seq)
            .bind(at)
            .bind(provider_call_id)
            .execute(&mut *conn)
            .await?;
        }
        CallEvent::CallInitiated {
            direction,
            provider,
            provider_call_id,
            from,
            to,
            campaign_id,
            contact_id,
            at,
        } => {
            let direction = serde_json::to_value(direction)?;
            sqlx::query(&format!(
                "INSERT INTO {table} (id, tenant_id, direction, provider, provider_call_id, from_number, to_number, \
                 campaign_id, contact_id, status, started_at, version, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'initiated', $10, $11, $10) ON CONFLICT (id) DO NOTHING"
            ))
            .bind(id)
            .bind(e.tenant()?)
            .bind(direction.as_str().unwrap_or_default())
            .bind(provider)
            .bind(provider_call_id)
            .bind(from)
            .bind(to)
            .bind(campaign_id)
            .bind(contact_id)
            .bind(at)
            .bind(seq)
            .execute(&mut *conn)
            .await?;
        }
        // Late provider callbacks never move a call backwards.
        CallEvent::CallRinging { at } => {
            sqlx::query(&format!(
                "UPDATE {table} SET status = CASE WHEN status IN ('requested', 'initiated') THEN 'ringing' ELSE status END, \
                 version = $2, updated_at = $3 WHERE id = $1"
            ))
            .bind(id)
            .bind(seq)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        CallEvent::CallAnswered { answered_by, at } => {
            sqlx::query(&format!(
                "UPDATE {table} SET status = CASE WHEN status IN ('requested', 'initiated', 'ringing') THEN 'in_progress' \
                 ELSE status END, answered_by = $4, answered_at = $3, version = $2, updated_at = $3 WHERE id = $1"
            ))
            .bind(id)
            .bind(seq)
            .bind(at)
            .bind(answered_by)
            .execute(&mut *conn)
            .await?;
        }
        CallEvent::TransferRequested { target, at, .. } => {
            sqlx::query(&format!(
                "UPDATE {table} SET transfer_target = $4, version = $2, updated_at = $3 WHERE id = $1"
            ))
            .bind(id)
            .bind(seq)
            .bind(at)
            .bind(target.code())
            .execute(&mut *conn)
            .await?;
        }
        CallEvent::CallSummarized { summary, at } => {
            sqlx::query(&format!(
                "UPDATE {table} SET summary = $4, version = $2, updated_at = $3 WHERE id = $1"
            ))
            .bind(id)
            .bind(seq)
            .bind(at)
            .bind(summary)
            .execute(&mut *conn)
            .await?;
        }
        CallEvent::RecordingAvailable { url, at, .. } => {
            sqlx::query(&format!(
                "UPDATE {table} SET recording_url = $4, version = $2, updated_at = $3 WHERE id = $1"
            ))
            .bind(id)
            .bind(seq)
            .bind(at)
            .bind(url)
            .execute(&mut *conn)
            .await?;
        }
        CallEvent::CallCompleted { outcome, disposition, duration_seconds, hangup_cause, at, .. } => {
            sqlx::query(&format!(
                "UPDATE {table} SET status = 'completed', outcome = $4, disposition = $5, hangup_cause = $6, \
                 duration_seconds = $7, ended_at = $3, version = $2, updated_at = $3 WHERE id = $1"
            ))
            .bind(id)
            .bind(seq)
            .bind(at)
            .bind(outcome.as_str())
            .bind(disposition)
            .bind(hangup_cause)
            .bind(i64::try_from(duration_seconds)?)
            .execute(&mut *conn)
            .await?;
        }
        // The aggregate records no duration for a failure; the talk time it cut short follows a
        // completion's rule: from the answer, 0 when never answered.
        CallEvent::CallFailed { reason, at, .. } => {
            sqlx::query(&format!(
                "UPDATE {table} SET status = 'failed', outcome = 'failed', failure_reason = $4, \
                 duration_seconds = coalesce(greatest(floor(extract(epoch FROM $3 - answered_at)), 0)::bigint, 0), \
                 ended_at = $3, version = $2, updated_at = $3 WHERE id = $1"
            ))
            .bind(id)
            .bind(seq)
            .bind(at)
            .bind(reason)
            .execute(&mut *conn)
            .await?;
        }
        CallEvent::MediaStreamStarted { at, .. }
        | CallEvent::MediaStreamStopped { at, .. }
        | CallEvent::DtmfReceived { at, .. }
        | CallEvent::TranscriptSegmentAdded { at, .. }
        | CallEvent::AiFunctionCalled { at, .. }
        | CallEvent::CallbackScheduled { at, .. } => {
            sqlx::query(&format!("UPDATE {table} SET version = $2, updated_at = $3 WHERE id = $1"))
                .bind(id)
                .bind(seq)
                .bind(at)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

async fn append_steps(conn: &mut PgConnection, t: &BuildTables, steps: &[Step]) -> anyhow::Result<()> {
    if steps.is_empty() {
        return Ok(());
    }
    let table = t.get(TIMELINE);
    sqlx::query(&format!(
        "INSERT INTO {table} (call_id, seq, at, kind, detail) \
         SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::timestamptz[], $4::text[], $5::jsonb[]) \
         ON CONFLICT (call_id, seq) DO NOTHING"
    ))
    .bind(steps.iter().map(|s| s.call_id).collect::<Vec<_>>())
    .bind(steps.iter().map(|s| s.seq).collect::<Vec<_>>())
    .bind(steps.iter().map(|s| s.at).collect::<Vec<_>>())
    .bind(steps.iter().map(|s| s.kind.clone()).collect::<Vec<_>>())
    .bind(steps.iter().map(|s| s.detail.clone()).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

// Queries ---------------------------------------------------------------------------------

/// Statuses a call's row goes through.
pub const STATUSES: [&str; 5] = ["initiated", "ringing", "in_progress", "completed", "failed"];

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CallRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub direction: String,
    pub provider: String,
    pub provider_call_id: Option<String>,
    pub from_number: String,
    pub to_number: String,
    pub campaign_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    pub status: String,
    pub answered_by: Option<String>,
    pub outcome: Option<String>,
    pub disposition: Option<String>,
    pub hangup_cause: Option<String>,
    pub failure_reason: Option<String>,
    pub duration_seconds: Option<i64>,
    pub recording_url: Option<String>,
    pub transfer_target: Option<String>,
    pub summary: Option<String>,
    pub started_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
    pub metadata: Option<Value>,
}

const CALL_COLUMNS: &str = "id, tenant_id, direction, provider, provider_call_id, from_number, to_number, \
    campaign_id, contact_id, status, answered_by, outcome, disposition, hangup_cause, failure_reason, \
    duration_seconds, recording_url, transfer_target, summary, started_at, answered_at, ended_at, version, updated_at, metadata";

/// Calls of a campaign started since `since` (its hourly pace).
pub async fn started_since(pool: &PgPool, campaign: Uuid, since: DateTime<Utc>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {CALLS} WHERE campaign_id = $1 AND started_at >= $2"))
        .bind(campaign)
        .bind(since)
        .fetch_one(pool)
        .await
}

pub async fn get(pool: &PgPool, tenant: Uuid, id: Uuid) -> Result<Option<CallRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {CALL_COLUMNS} FROM {CALLS} WHERE id = $1 AND tenant_id = $2"))
        .bind(id)
        .bind(tenant)
        .fetch_optional(pool)
        .await
}

#[derive(Debug, Default, Clone)]
pub struct CallFilter {
    pub status: Option<String>,
    pub direction: Option<String>,
    pub campaign_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    pub provider_call_id: Option<String>,
    /// Started at or after.
    pub started_from: Option<DateTime<Utc>>,
    /// Started before.
    pub started_before: Option<DateTime<Utc>>,
}

/// Newest first (by start).
pub async fn list(
    pool: &PgPool,
    tenant: Uuid,
    filter: &CallFilter,
    after: Option<&Cursor>,
    limit: i64,
) -> anyhow::Result<Page<CallRow>> {
    let mut q = QueryBuilder::new(format!("SELECT {CALL_COLUMNS} FROM {CALLS} WHERE tenant_id = "));
    q.push_bind(tenant);
    if let Some(s) = &filter.status {
        q.push(" AND status = ").push_bind(s.clone());
    }
    if let Some(d) = &filter.direction {
        q.push(" AND direction = ").push_bind(d.clone());
    }
    if let Some(c) = filter.campaign_id {
        q.push(" AND campaign_id = ").push_bind(c);
    }
    if let Some(c) = filter.contact_id {
        q.push(" AND contact_id = ").push_bind(c);
    }
    if let Some(p) = &filter.provider_call_id {
        q.push(" AND provider_call_id = ").push_bind(p.clone());
    }
    if let Some(from) = filter.started_from {
        q.push(" AND started_at >= ").push_bind(from);
    }
    if let Some(before) = filter.started_before {
        q.push(" AND started_at < ").push_bind(before);
    }
    crate::keyset::push_page(&mut q, "started_at", "id", after, true, limit)?;
    let rows: Vec<CallRow> = q.build_query_as().fetch_all(pool).await?;
    Ok(crate::keyset::page(rows, limit, |r| (r.started_at, r.id)))
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TimelineRow {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub kind: String,
    pub detail: Value,
}

/// Every step of a call, in stream order. Scoped by the caller (read the call first).
pub async fn timeline(pool: &PgPool, call_id: Uuid) -> Result<Vec<TimelineRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT seq, at, kind, detail FROM {TIMELINE} WHERE call_id = $1 ORDER BY seq"))
        .bind(call_id)
        .fetch_all(pool)
        .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TranscriptRow {
    pub seq: i64,
    pub at: DateTime<Utc>,
    /// caller | agent
    pub speaker: String,
    pub text: String,
    pub start_ms: i64,
    pub end_ms: i64,
}

/// A call's transcript segments in the order they were spoken (by start offset; segments that
/// start together keep the order they were recorded in). Transcription of one speaker can
/// finish after the other's reply has started, so recording order alone would misplace them.
pub async fn transcript(pool: &PgPool, call_id: Uuid) -> Result<Vec<TranscriptRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT seq, at, detail ->> 'speaker' AS speaker, detail ->> 'text' AS text, \
         (detail ->> 'start_ms')::bigint AS start_ms, (detail ->> 'end_ms')::bigint AS end_ms \
         FROM {TIMELINE} WHERE call_id = $1 AND kind = '{TRANSCRIPT_KIND}' \
         ORDER BY (detail ->> 'start_ms')::bigint, seq"
    ))
    .bind(call_id)
    .fetch_all(pool)
    .await
}

/// The call's stream as stored in the log, in sequence order, if it belongs to `tenant` (empty
/// otherwise). Read from the log itself, not from a read model: what auditors check against.
pub async fn history(pool: &PgPool, tenant: Uuid, call_id: Uuid) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE aggregate_type = 'Call' AND aggregate_id = $1 \
         AND metadata ->> 'tenant_id' = $2 ORDER BY sequence"
    ))
    .bind(call_id.to_string())
    .bind(tenant.to_string())
    .fetch_all(pool)
    .await?;
    rows.iter().map(StoredEvent::from_row).collect()
}
