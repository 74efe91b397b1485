//! The campaign read models: `campaign_view` (settings, lifecycle and live call statistics),
//! `campaign_outcome_view` (calls per outcome and disposition), `campaign_template_view` and
//! `call_list_view`. Call events update the statistics as they arrive.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kraliki_domain::call::CallEvent;
use kraliki_domain::campaign::{CampaignEvent, CampaignSettings, CampaignStatus};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::company::{Cursor, Page};
use crate::event::StoredEvent;
use crate::filter::EventFilter;
use crate::projection::{json, BuildTables, Projection};

pub const NAME: &str = "campaign_view";
const CAMPAIGNS: &str = "campaign_view";
const OUTCOMES: &str = "campaign_outcome_view";

pub struct CampaignProjection;

#[async_trait]
impl Projection for CampaignProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> i32 {
        3 // 2: calls count from their request; 3: templates and call lists are projections of their own
    }

    fn tables(&self) -> &'static [&'static str] {
        &[CAMPAIGNS, OUTCOMES]
    }

    fn reads(&self) -> Option<EventFilter> {
        // Of a call, only what moves a campaign's figures (not the many steps of a call's life).
        Some(EventFilter::aggregates(&["Campaign"]).and_events(
            "Call",
            &["CallRequested", "CallInitiated", "CallCompleted", "CallDispositionSet", "CallFailed"],
        ))
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        t: &BuildTables,
        events: &[StoredEvent],
    ) -> anyhow::Result<()> {
        for e in events {
            match e.aggregate_type.as_str() {
                "Campaign" => campaign(conn, t, e).await?,
                "Call" => call(conn, t, e).await?,
                _ => {}
            }
        }
        Ok(())
    }
}

async fn set_status(
    conn: &mut PgConnection,
    table: &str,
    id: Uuid,
    seq: i64,
    status: &str,
    column: Option<&str>,
    at: DateTime<Utc>,
) -> anyhow::Result<()> {
    let extra = match column {
        Some("resumed") => ", paused_at = NULL".to_owned(),
        Some(c) => format!(", {c} = $4"),
        None => String::new(),
    };
    sqlx::query(&format!(
        "UPDATE {table} SET status = $2, version = $3, updated_at = $4{extra} WHERE id = $1"
    ))
    .bind(id)
    .bind(status)
    .bind(seq)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn campaign(conn: &mut PgConnection, t: &BuildTables, e: &StoredEvent) -> anyhow::Result<()> {
    let table = t.get(CAMPAIGNS);
    let id: Uuid = e.aggregate_id.parse()?;
    let seq = e.sequence;
    match e.decode::<CampaignEvent>()? {
        CampaignEvent::CampaignCreated { settings, origin, at } => {
            sqlx::query(&format!(
                "INSERT INTO {table} (id, tenant_id, name, status, campaign_type, primary_provider, dialing_mode, \
                 settings, origin, version, created_at, updated_at) \
                 VALUES ($1, $2, $3, 'draft', $4, $5, $6, $7, $8, $9, $10, $10) ON CONFLICT (id) DO NOTHING"
            ))
            .bind(id)
            .bind(e.tenant()?)
            .bind(&settings.name)
            .bind(json(&settings.campaign_type)?.as_str().unwrap_or_default().to_owned())
            .bind(settings.primary_provider.as_str())
            .bind(json(&settings.dialing_mode)?.as_str().unwrap_or_default().to_owned())
            .bind(json(&settings)?)
            .bind(json(&origin)?)
            .bind(seq)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        CampaignEvent::CampaignUpdated { settings, at, .. } => {
            sqlx::query(&format!(
                "UPDATE {table} SET name = $2, campaign_type = $3, primary_provider = $4, dialing_mode = $5, \
                 settings = $6, version = $7, updated_at = $8 WHERE id = $1"
            ))
            .bind(id)
            .bind(&settings.name)
            .bind(json(&settings.campaign_type)?.as_str().unwrap_or_default().to_owned())
            .bind(settings.primary_provider.as_str())
            .bind(json(&settings.dialing_mode)?.as_str().unwrap_or_default().to_owned())
            .bind(json(&settings)?)
            .bind(seq)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        CampaignEvent::CampaignStarted { at, .. } => {
            set_status(conn, table, id, seq, "active", Some("started_at"), at).await?;
        }
        CampaignEvent::CampaignResumed { at } => {
            set_status(conn, table, id, seq, "active", Some("resumed"), at).await?
        }
        CampaignEvent::CampaignPaused { at, .. } => {
            set_status(conn, table, id, seq, "paused", Some("paused_at"), at).await?;
        }
        CampaignEvent::CampaignCompleted { at, .. } => {
            set_status(conn, table, id, seq, "completed", Some("ended_at"), at).await?;
        }
        CampaignEvent::CampaignCancelled { at, .. } => {
            set_status(conn, table, id, seq, "cancelled", Some("ended_at"), at).await?;
        }
        CampaignEvent::CampaignArchived { at } => {
            set_status(conn, table, id, seq, "archived", Some("archived_at"), at).await?;
        }
        CampaignEvent::CampaignDeleted { .. } => {
            sqlx::query(&format!("DELETE FROM {table} WHERE id = $1")).bind(id).execute(&mut *conn).await?;
        }
    }
    Ok(())
}

async fn call(conn: &mut PgConnection, t: &BuildTables, e: &StoredEvent) -> anyhow::Result<()> {
    let table = t.get(CAMPAIGNS);
    match e.decode::<CallEvent>()? {
        // The attempt starts when we request the call, or when the carrier reports one we
        // did not request first (inbound, or placed before requests were recorded).
        CallEvent::CallRequested { campaign_id: Some(campaign), .. }
        | CallEvent::CallInitiated { campaign_id: Some(campaign), .. } => {
            sqlx::query(&format!(
                "UPDATE {table} SET total_calls = total_calls + 1, calls_in_flight = calls_in_flight + 1 WHERE id = $1"
            ))
            .bind(campaign)
            .execute(&mut *conn)
            .await?;
        }
        CallEvent::CallCompleted {
            campaign_id: Some(campaign),
            outcome,
            disposition,
            duration_seconds,
            ..
        } => {
            let connected = outcome == kraliki_domain::call::CallOutcome::Connected;
            let disposition = disposition.map(|d| d.trim().to_ascii_lowercase()).unwrap_or_default();
            sqlx::query(&format!(
                "UPDATE {table} SET calls_in_flight = greatest(calls_in_flight - 1, 0), \
                 connected_calls = connected_calls + $2::int, \
                 successful_calls = successful_calls + (($2 AND settings->'success_dispositions' ? $3))::int, \
                 failed_calls = failed_calls + ($4)::int, talk_seconds = talk_seconds + $5 WHERE id = $1"
            ))
            .bind(campaign)
            .bind(connected)
            .bind(&disposition)
            .bind(outcome == kraliki_domain::call::CallOutcome::Failed)
            .bind(duration_seconds as i64)
            .execute(&mut *conn)
            .await?;
            count_outcome(conn, t, campaign, outcome.as_str(), &disposition).await?;
        }
        // A disposition set by hand after the call ended moves its counts: conversions (a
        // connected call's) and the per-disposition tally. One set while the call goes on is
        // counted by the completion, which carries it.
        CallEvent::CallDispositionSet {
            campaign_id: Some(campaign),
            outcome: Some(outcome),
            disposition,
            previous,
            ..
        } => {
            let previous = previous.unwrap_or_default();
            if outcome == kraliki_domain::call::CallOutcome::Connected {
                sqlx::query(&format!(
                    "UPDATE {table} SET successful_calls = greatest(successful_calls \
                     + (settings->'success_dispositions' ? $2)::int \
                     - (settings->'success_dispositions' ? $3)::int, 0) WHERE id = $1"
                ))
                .bind(campaign)
                .bind(&disposition)
                .bind(&previous)
                .execute(&mut *conn)
                .await?;
            }
            let outcomes = t.get(OUTCOMES);
            sqlx::query(&format!(
                "UPDATE {outcomes} SET calls = greatest(calls - 1, 0) \
                 WHERE campaign_id = $1 AND outcome = $2 AND disposition = $3"
            ))
            .bind(campaign)
            .bind(outcome.as_str())
            .bind(&previous)
            .execute(&mut *conn)
            .await?;
            count_outcome(conn, t, campaign, outcome.as_str(), &disposition).await?;
        }
        CallEvent::CallFailed { campaign_id: Some(campaign), .. } => {
            sqlx::query(&format!(
                "UPDATE {table} SET calls_in_flight = greatest(calls_in_flight - 1, 0), failed_calls = failed_calls + 1 WHERE id = $1"
            ))
            .bind(campaign)
            .execute(&mut *conn)
            .await?;
            count_outcome(conn, t, campaign, "failed", "").await?;
        }
        _ => {}
    }
    Ok(())
}

async fn count_outcome(
    conn: &mut PgConnection,
    t: &BuildTables,
    campaign: Uuid,
    outcome: &str,
    disposition: &str,
) -> anyhow::Result<()> {
    let table = t.get(OUTCOMES);
    sqlx::query(&format!(
        "INSERT INTO {table} (campaign_id, outcome, disposition, calls) VALUES ($1, $2, $3, 1) \
         ON CONFLICT (campaign_id, outcome, disposition) DO UPDATE SET calls = {table}.calls + 1"
    ))
    .bind(campaign)
    .bind(outcome)
    .bind(disposition)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

// Queries ---------------------------------------------------------------------------------

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CampaignRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub status: String,
    pub settings: Value,
    pub origin: Value,
    pub total_calls: i32,
    pub calls_in_flight: i32,
    pub connected_calls: i32,
    pub successful_calls: i32,
    pub failed_calls: i32,
    pub talk_seconds: i64,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub paused_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub archived_at: Option<DateTime<Utc>>,
}

impl CampaignRow {
    pub fn settings(&self) -> anyhow::Result<CampaignSettings> {
        Ok(serde_json::from_value(self.settings.clone())?)
    }

    /// The lifecycle state (the column holds its serde name).
    pub fn status(&self) -> CampaignStatus {
        serde_json::from_value(Value::String(self.status.clone())).unwrap_or_default()
    }

    pub fn is_active(&self) -> bool {
        self.status() == CampaignStatus::Active
    }
}

const CAMPAIGN_COLUMNS: &str = "id, tenant_id, name, status, settings, origin, total_calls, calls_in_flight, \
    connected_calls, successful_calls, failed_calls, talk_seconds, version, created_at, updated_at, started_at, \
    paused_at, ended_at, archived_at";

pub async fn get(pool: &PgPool, tenant: Uuid, id: Uuid) -> Result<Option<CampaignRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {CAMPAIGN_COLUMNS} FROM {CAMPAIGNS} WHERE id = $1 AND tenant_id = $2"))
        .bind(id)
        .bind(tenant)
        .fetch_optional(pool)
        .await
}

/// Every active campaign of every tenant (the dialer's round), oldest start first.
pub async fn active(pool: &PgPool) -> Result<Vec<CampaignRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {CAMPAIGN_COLUMNS} FROM {CAMPAIGNS} WHERE status = 'active' ORDER BY started_at, id"
    ))
    .fetch_all(pool)
    .await
}

#[derive(Debug, Default, Clone)]
pub struct CampaignFilter {
    pub status: Option<String>,
    pub campaign_type: Option<String>,
    pub search: Option<String>,
}

/// Newest first.
pub async fn list(
    pool: &PgPool,
    tenant: Uuid,
    filter: &CampaignFilter,
    after: Option<&Cursor>,
    limit: i64,
) -> anyhow::Result<Page<CampaignRow>> {
    let mut q =
        sqlx::QueryBuilder::new(format!("SELECT {CAMPAIGN_COLUMNS} FROM {CAMPAIGNS} WHERE tenant_id = "));
    q.push_bind(tenant);
    if let Some(s) = &filter.status {
        q.push(" AND status = ").push_bind(s.clone());
    }
    if let Some(s) = &filter.campaign_type {
        q.push(" AND campaign_type = ").push_bind(s.clone());
    }
    if let Some(s) = filter.search.as_deref().filter(|s| !s.is_empty()) {
        q.push(" AND lower(name) LIKE ").push_bind(like(s));
    }
    crate::keyset::push_page(&mut q, "created_at", "id", after, true, limit)?;
    let rows: Vec<CampaignRow> = q.build_query_as().fetch_all(pool).await?;
    Ok(crate::keyset::page(rows, limit, |r| (r.created_at, r.id)))
}

pub fn like(search: &str) -> String {
    format!("%{}%", search.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"))
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct OutcomeCount {
    pub outcome: String,
    pub disposition: String,
    pub calls: i32,
}

pub async fn outcomes(pool: &PgPool, campaign: Uuid) -> Result<Vec<OutcomeCount>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT outcome, disposition, calls FROM {OUTCOMES} WHERE campaign_id = $1 ORDER BY calls DESC, outcome, disposition"
    ))
    .bind(campaign)
    .fetch_all(pool)
    .await
}

/// The caller ids of a tenant's campaigns (what an ad-hoc call may call from), oldest first.
pub async fn caller_ids(pool: &PgPool, tenant: Uuid) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "SELECT caller_id FROM (SELECT settings->>'caller_id' AS caller_id, min(created_at) AS first \
         FROM {CAMPAIGNS} WHERE tenant_id = $1 AND settings->>'caller_id' IS NOT NULL GROUP BY 1) c ORDER BY first"
    ))
    .bind(tenant)
    .fetch_all(pool)
    .await
}

/// The active inbound campaign answering `number` (its caller id), and its tenant.
pub async fn inbound_for_number(pool: &PgPool, number: &str) -> Result<Option<(Uuid, Uuid)>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT id, tenant_id FROM {CAMPAIGNS} WHERE status = 'active' AND campaign_type = 'inbound_support' \
         AND settings->>'caller_id' = $1 ORDER BY created_at LIMIT 1"
    ))
    .bind(number)
    .fetch_optional(pool)
    .await
}
