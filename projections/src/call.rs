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
use crate::filter::EventFilter;
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
        // 2: summary; 3: requested calls, typed transfer targets; 4: the voice agent;
        // 5: dispositions set by hand
        5
    }

    fn tables(&self) -> &'static [&'static str] {
        &[CALLS, TIMELINE]
    }

    fn reads(&self) -> Option<EventFilter> {
        Some(EventFilter::aggregates(&["Call"]))
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
        CallEvent::CallCompleted { .. }
            | CallEvent::CallFailed { .. }
            | CallEvent::CallbackScheduled { .. }
            | CallEvent::CallDispositionSet { .. }
    ) {
        fields.remove("campaign_id");
        fields.remove("contact_id");
    }
    if matches!(event, CallEvent::CallDispositionSet { .. }) {
        // What the row says already; the step keeps the disposition, notes, agent and previous.
        fields.remove("outcome");
        fields.remove("started_at");
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
        CallEvent::CallDispositionSet { disposition, notes, agent_id, at, .. } => {
            sqlx::query(&format!(
                "UPDATE {table} SET disposition = $4, disposition_notes = $5, disposition_agent_id = $6, \
                 disposition_at = $3, version = $2, updated_at = $3 WHERE id = $1"
            ))
            .bind(id)
            .bind(seq)
            .bind(at)
            .bind(disposition)
            .bind(notes)
            .bind(agent_id)
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
                "UPDATE {table} SET status = 'completed', outcome = $4, disposition = coalesce($5, disposition), hangup_cause = $6, \
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
        CallEvent::AgentConnected { provider, model, voice, at, .. } => {
            sqlx::query(&format!(
                "UPDATE {table} SET ai_provider = $4, ai_model = $5, ai_voice = $6, agent_connected_at = $3, \
                 version = $2, updated_at = $3 WHERE id = $1"
            ))
            .bind(id)
            .bind(seq)
            .bind(at)
            .bind(provider)
            .bind(model)
            .bind(voice)
            .execute(&mut *conn)
            .await?;
        }
        // A flow's steps are on the timeline; the row moves once per input, with the
        // `IvrAdvanced` that ends every one (and is committed with them).
        CallEvent::IvrFlowEntered { .. } | CallEvent::IvrStepTaken { .. } => {}
        CallEvent::MediaStreamStarted { at, .. }
        | CallEvent::MediaStreamStopped { at, .. }
        | CallEvent::DtmfReceived { at, .. }
        | CallEvent::TranscriptSegmentAdded { at, .. }
        | CallEvent::AiFunctionCalled { at, .. }
        | CallEvent::CallbackScheduled { at, .. }
        | CallEvent::IvrAdvanced { at, .. } => {
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
    /// The voice agent on the call: provider, model, voice, since when.
    pub ai_provider: Option<String>,
    pub ai_model: Option<String>,
    pub ai_voice: Option<String>,
    pub agent_connected_at: Option<DateTime<Utc>>,
    /// The disposition set by hand: the notes, the human agent who set it, when.
    pub disposition_notes: Option<String>,
    pub disposition_agent_id: Option<Uuid>,
    pub disposition_at: Option<DateTime<Utc>>,
}

const CALL_COLUMNS: &str = "id, tenant_id, direction, provider, provider_call_id, from_number, to_number, \
    campaign_id, contact_id, status, answered_by, outcome, disposition, hangup_cause, failure_reason, \
    duration_seconds, recording_url, transfer_target, summary, started_at, answered_at, ended_at, version, updated_at, metadata, ai_provider, ai_model, ai_voice, agent_connected_at, \
    disposition_notes, disposition_agent_id, disposition_at";

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

/// The company's calls with a voice agent connected now (on any instance), newest first.
pub async fn live_sessions(pool: &PgPool, tenant: Uuid, limit: i64) -> Result<Vec<CallRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {CALL_COLUMNS} FROM {CALLS} WHERE tenant_id = $1 AND agent_connected_at IS NOT NULL \
         AND ended_at IS NULL ORDER BY agent_connected_at DESC, id LIMIT $2"
    ))
    .bind(tenant)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Counts over a company's calls, for one carrier or voice-AI provider or all of them.
#[derive(Debug, Clone, Default, PartialEq, sqlx::FromRow)]
pub struct CallStats {
    /// The carrier (`twilio`, `telnyx`, `browser`) or the voice-AI provider; `None` for all.
    pub provider: Option<String>,
    pub total: i64,
    /// Ended normally (`completed`), whatever the outcome.
    pub completed: i64,
    pub failed: i64,
    /// Not ended yet.
    pub active: i64,
    pub inbound: i64,
    pub outbound: i64,
    /// Someone (or a machine) answered.
    pub answered: i64,
    /// Ended with the outcome `connected` (a conversation took place).
    pub connected: i64,
    /// Talk time of the ended, answered calls.
    pub talk_seconds: i64,
    /// Ended calls that were answered (the denominator of the average talk time).
    pub answered_ended: i64,
}

impl CallStats {
    /// Average talk time of the answered calls that ended; `None` when there are none.
    pub fn average_talk_seconds(&self) -> Option<f64> {
        (self.answered_ended > 0).then(|| self.talk_seconds as f64 / self.answered_ended as f64)
    }

    /// Share of ended calls that connected; `None` before any ended.
    pub fn success_rate(&self) -> Option<f64> {
        let ended = self.completed + self.failed;
        (ended > 0).then(|| self.connected as f64 / ended as f64)
    }
}

/// Which provider a [`stats`] breakdown is by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsBy {
    Carrier,
    VoiceAi,
}

/// The company's call counts since `since` (all time when `None`): the totals, then one row per
/// provider (carrier or voice AI), in name order.
pub async fn stats(
    pool: &PgPool,
    tenant: Uuid,
    since: Option<DateTime<Utc>>,
    by: StatsBy,
) -> Result<(CallStats, Vec<CallStats>), sqlx::Error> {
    let group = match by {
        StatsBy::Carrier => "provider",
        StatsBy::VoiceAi => "ai_provider",
    };
    let rows: Vec<CallStats> = sqlx::query_as(&format!(
        "SELECT {group} AS provider, count(*) AS total, \
         count(*) FILTER (WHERE status = 'completed') AS completed, \
         count(*) FILTER (WHERE status = 'failed') AS failed, \
         count(*) FILTER (WHERE ended_at IS NULL) AS active, \
         count(*) FILTER (WHERE direction = 'inbound') AS inbound, \
         count(*) FILTER (WHERE direction = 'outbound') AS outbound, \
         count(*) FILTER (WHERE answered_at IS NOT NULL) AS answered, \
         count(*) FILTER (WHERE outcome = 'connected') AS connected, \
         coalesce(sum(duration_seconds) FILTER (WHERE answered_at IS NOT NULL AND ended_at IS NOT NULL), 0)::bigint AS talk_seconds, \
         count(*) FILTER (WHERE answered_at IS NOT NULL AND ended_at IS NOT NULL) AS answered_ended \
         FROM {CALLS} WHERE tenant_id = $1 AND ($2::timestamptz IS NULL OR started_at >= $2) \
         GROUP BY {group} ORDER BY {group} NULLS LAST"
    ))
    .bind(tenant)
    .bind(since)
    .fetch_all(pool)
    .await?;
    let mut all = CallStats::default();
    for r in &rows {
        all.total += r.total;
        all.completed += r.completed;
        all.failed += r.failed;
        all.active += r.active;
        all.inbound += r.inbound;
        all.outbound += r.outbound;
        all.answered += r.answered;
        all.connected += r.connected;
        all.talk_seconds += r.talk_seconds;
        all.answered_ended += r.answered_ended;
    }
    Ok((all, rows.into_iter().filter(|r| r.provider.is_some()).collect()))
}

/// The company's calls not ended yet, and how many of them have a voice agent connected.
pub async fn live_counts(pool: &PgPool, tenant: Uuid) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT count(*), count(*) FILTER (WHERE agent_connected_at IS NOT NULL) FROM {CALLS} \
         WHERE tenant_id = $1 AND ended_at IS NULL"
    ))
    .bind(tenant)
    .fetch_one(pool)
    .await
}
