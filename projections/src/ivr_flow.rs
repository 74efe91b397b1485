//! The IVR flow read models: `ivr_flow_view` (the draft, the validator's findings on it, the
//! latest and the live version) and `ivr_flow_version_view` (every published version, as it was
//! published, and who published it).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kraliki_domain::ivr::{check, Flow, FlowIssue, IvrFlowEvent, ValidationContext};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::company::{Cursor, Page};
use crate::event::StoredEvent;
use crate::filter::EventFilter;
use crate::projection::{BuildTables, Projection};

pub const NAME: &str = "ivr_flow_view";
const FLOWS: &str = "ivr_flow_view";
const VERSIONS: &str = "ivr_flow_version_view";

pub struct IvrFlowProjection;

#[async_trait]
impl Projection for IvrFlowProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &[FLOWS, VERSIONS]
    }

    fn reads(&self) -> Option<EventFilter> {
        Some(EventFilter::aggregates(&["IvrFlow"]))
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        t: &BuildTables,
        events: &[StoredEvent],
    ) -> anyhow::Result<()> {
        for e in events.iter().filter(|e| e.aggregate_type == "IvrFlow") {
            flow(conn, t, e).await?;
        }
        Ok(())
    }
}

/// The findings without tenant configuration (publishing checks again with it).
fn issues(flow: &Flow) -> anyhow::Result<Value> {
    Ok(serde_json::to_value(check(flow, &ValidationContext::default()))?)
}

async fn flow(conn: &mut PgConnection, t: &BuildTables, e: &StoredEvent) -> anyhow::Result<()> {
    let (flows, versions) = (t.get(FLOWS), t.get(VERSIONS));
    let id: Uuid = e.aggregate_id.parse()?;
    let seq = e.sequence;
    match e.decode::<IvrFlowEvent>()? {
        IvrFlowEvent::IvrFlowCreated { flow, at } => {
            sqlx::query(&format!(
                "INSERT INTO {flows} (id, tenant_id, name, campaign_id, team_id, status, draft, issues, \
                 draft_changed, version, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, 'draft', $6, $7, true, $8, $9, $9) ON CONFLICT (id) DO NOTHING"
            ))
            .bind(id)
            .bind(e.tenant()?)
            .bind(&flow.name)
            .bind(flow.campaign_id)
            .bind(flow.team_id)
            .bind(serde_json::to_value(&flow)?)
            .bind(issues(&flow)?)
            .bind(seq)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        IvrFlowEvent::IvrFlowDraftUpdated { flow, at, .. } => {
            sqlx::query(&format!(
                "UPDATE {flows} f SET name = $2, campaign_id = $3, team_id = $4, draft = $5, issues = $6, \
                 draft_changed = (SELECT v.flow FROM {versions} v WHERE v.flow_id = f.id \
                   AND v.version = f.latest_version) IS DISTINCT FROM $5, \
                 version = $7, updated_at = $8 WHERE id = $1"
            ))
            .bind(id)
            .bind(&flow.name)
            .bind(flow.campaign_id)
            .bind(flow.team_id)
            .bind(serde_json::to_value(&flow)?)
            .bind(issues(&flow)?)
            .bind(seq)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        IvrFlowEvent::IvrFlowPublished { version, flow, at } => {
            sqlx::query(&format!(
                "INSERT INTO {versions} (flow_id, version, tenant_id, flow, published_at, published_by) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (flow_id, version) DO NOTHING"
            ))
            .bind(id)
            .bind(version as i32)
            .bind(e.tenant()?)
            .bind(serde_json::to_value(&flow)?)
            .bind(at)
            .bind(e.meta("actor"))
            .execute(&mut *conn)
            .await?;
            sqlx::query(&format!(
                "UPDATE {flows} SET status = 'published', latest_version = $2, live_version = $2, \
                 draft_changed = false, version = $3, updated_at = $4, published_at = $4 WHERE id = $1"
            ))
            .bind(id)
            .bind(version as i32)
            .bind(seq)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        IvrFlowEvent::IvrFlowVersionRepublished { version, at, .. } => {
            sqlx::query(&format!(
                "UPDATE {flows} SET live_version = $2, version = $3, updated_at = $4, published_at = $4 \
                 WHERE id = $1"
            ))
            .bind(id)
            .bind(version as i32)
            .bind(seq)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        // Deleting archives the stream: the read side forgets the flow (its events stay).
        IvrFlowEvent::IvrFlowArchived { .. } => {
            sqlx::query(&format!("DELETE FROM {flows} WHERE id = $1")).bind(id).execute(&mut *conn).await?;
            sqlx::query(&format!("DELETE FROM {versions} WHERE flow_id = $1"))
                .bind(id)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

// Queries ---------------------------------------------------------------------------------

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IvrFlowRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub campaign_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    pub status: String,
    pub draft: Value,
    pub issues: Value,
    pub draft_changed: bool,
    pub latest_version: i32,
    pub live_version: Option<i32>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
}

impl IvrFlowRow {
    /// The draft as the domain reads it.
    pub fn flow(&self) -> anyhow::Result<Flow> {
        Ok(serde_json::from_value(self.draft.clone())?)
    }

    /// The validator's findings on the draft.
    pub fn issues(&self) -> anyhow::Result<Vec<FlowIssue>> {
        Ok(serde_json::from_value(self.issues.clone())?)
    }
}

const FLOW_COLUMNS: &str =
    "id, tenant_id, name, campaign_id, team_id, status, draft, issues, draft_changed, \
    latest_version, live_version, version, created_at, updated_at, published_at";

/// The flow if it belongs to `tenant`.
pub async fn get(pool: &PgPool, tenant: Uuid, id: Uuid) -> Result<Option<IvrFlowRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {FLOW_COLUMNS} FROM {FLOWS} WHERE id = $1 AND tenant_id = $2"))
        .bind(id)
        .bind(tenant)
        .fetch_optional(pool)
        .await
}

#[derive(Debug, Default, Clone)]
pub struct IvrFlowFilter {
    pub status: Option<String>,
    pub campaign_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    /// Name contains (case-insensitive).
    pub search: Option<String>,
}

/// Newest first.
pub async fn list(
    pool: &PgPool,
    tenant: Uuid,
    filter: &IvrFlowFilter,
    after: Option<&Cursor>,
    limit: i64,
) -> anyhow::Result<Page<IvrFlowRow>> {
    let mut q = sqlx::QueryBuilder::new(format!("SELECT {FLOW_COLUMNS} FROM {FLOWS} WHERE tenant_id = "));
    q.push_bind(tenant);
    if let Some(s) = &filter.status {
        q.push(" AND status = ").push_bind(s.clone());
    }
    if let Some(c) = filter.campaign_id {
        q.push(" AND campaign_id = ").push_bind(c);
    }
    if let Some(c) = filter.team_id {
        q.push(" AND team_id = ").push_bind(c);
    }
    if let Some(s) = filter.search.as_deref().filter(|s| !s.is_empty()) {
        q.push(" AND lower(name) LIKE ").push_bind(crate::campaign::like(s));
    }
    crate::keyset::push_page(&mut q, "created_at", "id", after, true, limit)?;
    let rows: Vec<IvrFlowRow> = q.build_query_as().fetch_all(pool).await?;
    Ok(crate::keyset::page(rows, limit, |r| (r.created_at, r.id)))
}

/// The newest published flow attached to a campaign of `tenant` that calls may run: its id
/// and live version.
pub async fn live_for_campaign(
    pool: &PgPool,
    tenant: Uuid,
    campaign: Uuid,
) -> Result<Option<(Uuid, i32)>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT id, live_version FROM {FLOWS} WHERE campaign_id = $1 AND tenant_id = $2 \
         AND live_version IS NOT NULL ORDER BY published_at DESC, id LIMIT 1"
    ))
    .bind(campaign)
    .bind(tenant)
    .fetch_optional(pool)
    .await
}

/// One published version.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IvrFlowVersionRow {
    pub flow_id: Uuid,
    pub version: i32,
    pub flow: Value,
    pub published_at: DateTime<Utc>,
    pub published_by: Option<String>,
}

impl IvrFlowVersionRow {
    /// The version's flow as the domain reads it.
    pub fn flow(&self) -> anyhow::Result<Flow> {
        Ok(serde_json::from_value(self.flow.clone())?)
    }
}

const VERSION_COLUMNS: &str = "flow_id, version, flow, published_at, published_by";

/// A version of a flow of `tenant`.
pub async fn get_version(
    pool: &PgPool,
    tenant: Uuid,
    flow_id: Uuid,
    version: i32,
) -> Result<Option<IvrFlowVersionRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {VERSION_COLUMNS} FROM {VERSIONS} WHERE flow_id = $1 AND version = $2 AND tenant_id = $3"
    ))
    .bind(flow_id)
    .bind(version)
    .bind(tenant)
    .fetch_optional(pool)
    .await
}

/// A flow's versions, newest first, `limit` after version `before` (exclusive); the next
/// page's cursor is the last version's number.
pub async fn versions(
    pool: &PgPool,
    tenant: Uuid,
    flow_id: Uuid,
    before: Option<i32>,
    limit: i64,
) -> Result<(Vec<IvrFlowVersionRow>, Option<String>), sqlx::Error> {
    let mut rows: Vec<IvrFlowVersionRow> = sqlx::query_as(&format!(
        "SELECT {VERSION_COLUMNS} FROM {VERSIONS} WHERE flow_id = $1 AND tenant_id = $2 \
         AND ($3::int IS NULL OR version < $3) ORDER BY version DESC LIMIT $4"
    ))
    .bind(flow_id)
    .bind(tenant)
    .bind(before)
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = if more { rows.last().map(|r| r.version.to_string()) } else { None };
    Ok((rows, next))
}
