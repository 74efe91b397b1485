//! The teams' read model (`team_view`): settings and members (user id → role).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kraliki_domain::team::{TeamEvent, TeamSettings};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::company::{Cursor, Page};
use crate::event::StoredEvent;
use crate::filter::EventFilter;
use crate::projection::{BuildTables, Projection};

pub const NAME: &str = "team_view";
const TEAMS: &str = "team_view";

pub struct TeamProjection;

#[async_trait]
impl Projection for TeamProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &[TEAMS]
    }

    fn reads(&self) -> Option<EventFilter> {
        Some(EventFilter::aggregates(&["Team"]))
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        t: &BuildTables,
        events: &[StoredEvent],
    ) -> anyhow::Result<()> {
        for e in events.iter().filter(|e| e.aggregate_type == "Team") {
            team(conn, t, e).await?;
        }
        Ok(())
    }
}

async fn team(conn: &mut PgConnection, t: &BuildTables, e: &StoredEvent) -> anyhow::Result<()> {
    let table = t.get(TEAMS);
    let id: Uuid = e.aggregate_id.parse()?;
    let seq = e.sequence;
    match e.decode::<TeamEvent>()? {
        TeamEvent::TeamCreated { settings, at } => {
            sqlx::query(&format!(
                "INSERT INTO {table} (id, tenant_id, name, settings, version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (id) DO NOTHING"
            ))
            .bind(id)
            .bind(e.tenant()?)
            .bind(settings.name.clone())
            .bind(serde_json::to_value(&settings)?)
            .bind(seq)
            .bind(at)
            .execute(&mut *conn)
            .await?
        }
        TeamEvent::TeamUpdated { settings, at, .. } => {
            sqlx::query(&format!(
                "UPDATE {table} SET name = $2, settings = $3, version = $4, updated_at = $5 WHERE id = $1"
            ))
            .bind(id)
            .bind(settings.name.clone())
            .bind(serde_json::to_value(&settings)?)
            .bind(seq)
            .bind(at)
            .execute(&mut *conn)
            .await?
        }
        TeamEvent::TeamDeleted { .. } => {
            sqlx::query(&format!("DELETE FROM {table} WHERE id = $1")).bind(id).execute(&mut *conn).await?
        }
        TeamEvent::TeamMemberAdded { user_id, role, at }
        | TeamEvent::TeamMemberRoleChanged { user_id, role, at, .. } => {
            sqlx::query(&format!(
            "UPDATE {table} SET members = members || jsonb_build_object($2::text, $3::text), version = $4, \
             updated_at = $5 WHERE id = $1"
        ))
            .bind(id)
            .bind(user_id.to_string())
            .bind(role.as_str())
            .bind(seq)
            .bind(at)
            .execute(&mut *conn)
            .await?
        }
        TeamEvent::TeamMemberRemoved { user_id, at, .. } => {
            sqlx::query(&format!(
            "UPDATE {table} SET members = members - $2::text, version = $3, updated_at = $4 WHERE id = $1"
        ))
            .bind(id)
            .bind(user_id.to_string())
            .bind(seq)
            .bind(at)
            .execute(&mut *conn)
            .await?
        }
    };
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TeamRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub settings: Value,
    pub members: Value,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TeamRow {
    pub fn settings(&self) -> anyhow::Result<TeamSettings> {
        Ok(serde_json::from_value(self.settings.clone())?)
    }
}

const COLUMNS: &str = "id, tenant_id, name, settings, members, version, created_at, updated_at";

pub async fn get(pool: &PgPool, tenant: Uuid, id: Uuid) -> Result<Option<TeamRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM {TEAMS} WHERE id = $1 AND tenant_id = $2"))
        .bind(id)
        .bind(tenant)
        .fetch_optional(pool)
        .await
}

/// Which of `ids` are teams of the tenant.
pub async fn existing(pool: &PgPool, tenant: Uuid, ids: &[Uuid]) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(&format!("SELECT id FROM {TEAMS} WHERE tenant_id = $1 AND id = ANY($2)"))
        .bind(tenant)
        .bind(ids)
        .fetch_all(pool)
        .await
}

/// Newest first; `search`: name contains (case-insensitive).
pub async fn list(
    pool: &PgPool,
    tenant: Uuid,
    search: Option<&str>,
    after: Option<&Cursor>,
    limit: i64,
) -> anyhow::Result<Page<TeamRow>> {
    let mut q = sqlx::QueryBuilder::new(format!("SELECT {COLUMNS} FROM {TEAMS} WHERE tenant_id = "));
    q.push_bind(tenant);
    if let Some(s) = search.filter(|s| !s.is_empty()) {
        q.push(" AND lower(name) LIKE ").push_bind(crate::campaign::like(s));
    }
    crate::keyset::push_page(&mut q, "created_at", "id", after, true, limit)?;
    let rows: Vec<TeamRow> = q.build_query_as().fetch_all(pool).await?;
    Ok(crate::keyset::page(rows, limit, |r| (r.created_at, r.id)))
}
