//! The queues' read model (`queue_view`): settings, members included. Waiting calls are in
//! their own streams and read model (`queued_call`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kraliki_domain::queue::{QueueEvent, QueueSettings};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::company::{Cursor, Page};
use crate::event::StoredEvent;
use crate::filter::EventFilter;
use crate::projection::{BuildTables, Projection};

pub const NAME: &str = "queue_view";
const QUEUES: &str = "queue_view";

pub struct QueueProjection;

#[async_trait]
impl Projection for QueueProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &[QUEUES]
    }

    fn reads(&self) -> Option<EventFilter> {
        Some(EventFilter::aggregates(&["Queue"]))
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        t: &BuildTables,
        events: &[StoredEvent],
    ) -> anyhow::Result<()> {
        for e in events.iter().filter(|e| e.aggregate_type == "Queue") {
            queue(conn, t, e).await?;
        }
        Ok(())
    }
}

async fn queue(conn: &mut PgConnection, t: &BuildTables, e: &StoredEvent) -> anyhow::Result<()> {
    let table = t.get(QUEUES);
    let id: Uuid = e.aggregate_id.parse()?;
    let seq = e.sequence;
    match e.decode::<QueueEvent>()? {
        QueueEvent::QueueCreated { settings, at } => sqlx::query(&format!(
            "INSERT INTO {table} (id, tenant_id, name, settings, version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (id) DO NOTHING"
        ))
        .bind(id)
        .bind(e.tenant()?)
        .bind(settings.name.clone())
        .bind(serde_json::to_value(&settings)?)
        .bind(seq)
        .bind(at).execute(&mut *conn).await?,
        QueueEvent::QueueUpdated { settings, at, .. } => sqlx::query(&format!(
            "UPDATE {table} SET name = $2, settings = $3, version = $4, updated_at = $5 WHERE id = $1"
        ))
        .bind(id)
        .bind(settings.name.clone())
        .bind(serde_json::to_value(&settings)?)
        .bind(seq)
        .bind(at).execute(&mut *conn).await?,
        QueueEvent::QueueDeleted { .. } => sqlx::query(&format!("DELETE FROM {table} WHERE id = $1")).bind(id).execute(&mut *conn).await?,
        QueueEvent::QueueMemberAdded { members, at, .. } | QueueEvent::QueueMemberRemoved { members, at, .. } => {
            sqlx::query(&format!(
                "UPDATE {table} SET settings = jsonb_set(settings, '{{members}}', $2), version = $3, updated_at = $4 \
                 WHERE id = $1"
            ))
            .bind(id)
            .bind(serde_json::to_value(&members)?)
            .bind(seq)
            .bind(at).execute(&mut *conn).await?
        }
    };
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QueueRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub settings: Value,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl QueueRow {
    pub fn settings(&self) -> anyhow::Result<QueueSettings> {
        Ok(serde_json::from_value(self.settings.clone())?)
    }
}

const COLUMNS: &str = "id, tenant_id, name, settings, version, created_at, updated_at";

pub async fn get(pool: &PgPool, tenant: Uuid, id: Uuid) -> Result<Option<QueueRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM {QUEUES} WHERE id = $1 AND tenant_id = $2"))
        .bind(id)
        .bind(tenant)
        .fetch_optional(pool)
        .await
}

/// Newest first; `search`: name contains (case-insensitive).
pub async fn list(
    pool: &PgPool,
    tenant: Uuid,
    search: Option<&str>,
    after: Option<&Cursor>,
    limit: i64,
) -> anyhow::Result<Page<QueueRow>> {
    let mut q = sqlx::QueryBuilder::new(format!("SELECT {COLUMNS} FROM {QUEUES} WHERE tenant_id = "));
    q.push_bind(tenant);
    if let Some(s) = search.filter(|s| !s.is_empty()) {
        q.push(" AND lower(name) LIKE ").push_bind(crate::campaign::like(s));
    }
    crate::keyset::push_page(&mut q, "created_at", "id", after, true, limit)?;
    let rows: Vec<QueueRow> = q.build_query_as().fetch_all(pool).await?;
    Ok(crate::keyset::page(rows, limit, |r| (r.created_at, r.id)))
}

/// The tenant's queues any of `agents` is a member of (directly or through one of `teams`).
pub async fn with_any_member(
    pool: &PgPool,
    tenant: Uuid,
    agents: &[Uuid],
    teams: &[Uuid],
) -> Result<Vec<Uuid>, sqlx::Error> {
    let agents: Vec<String> = agents.iter().map(Uuid::to_string).collect();
    let teams: Vec<String> = teams.iter().map(Uuid::to_string).collect();
    sqlx::query_scalar(&format!(
        "SELECT id FROM {QUEUES} q WHERE tenant_id = $1 AND EXISTS (\
           SELECT 1 FROM jsonb_array_elements(q.settings->'members') m \
           WHERE (m->>'type' = 'agent' AND m->>'id' = ANY($2)) OR (m->>'type' = 'team' AND m->>'id' = ANY($3))) \
         ORDER BY created_at, id"
    ))
    .bind(tenant)
    .bind(agents)
    .bind(teams)
    .fetch_all(pool)
    .await
}

/// The tenant's queue named `name_or_id`: its id, or its name ignoring case (the oldest of
/// that name).
pub async fn find(pool: &PgPool, tenant: Uuid, name_or_id: &str) -> Result<Option<QueueRow>, sqlx::Error> {
    if let Ok(id) = name_or_id.trim().parse::<Uuid>() {
        return get(pool, tenant, id).await;
    }
    sqlx::query_as(&format!(
        "SELECT id, tenant_id, name, settings, version, created_at, updated_at FROM {QUEUES} \
         WHERE tenant_id = $1 AND lower(name) = lower($2) ORDER BY created_at, id LIMIT 1"
    ))
    .bind(tenant)
    .bind(name_or_id.trim())
    .fetch_optional(pool)
    .await
}
