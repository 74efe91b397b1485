//! The routing rules' read model (`routing_rule_view`): each rule at its current version.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kraliki_domain::routing_rule::{RoutingRuleEvent, RuleSettings};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::company::{Cursor, Page};
use crate::event::StoredEvent;
use crate::filter::EventFilter;
use crate::projection::{BuildTables, Projection};

pub const NAME: &str = "routing_rule_view";
const RULES: &str = "routing_rule_view";

pub struct RoutingRuleProjection;

#[async_trait]
impl Projection for RoutingRuleProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &[RULES]
    }

    fn reads(&self) -> Option<EventFilter> {
        Some(EventFilter::aggregates(&["RoutingRule"]))
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        t: &BuildTables,
        events: &[StoredEvent],
    ) -> anyhow::Result<()> {
        for e in events.iter().filter(|e| e.aggregate_type == "RoutingRule") {
            rule(conn, t, e).await?;
        }
        Ok(())
    }
}

async fn rule(conn: &mut PgConnection, t: &BuildTables, e: &StoredEvent) -> anyhow::Result<()> {
    let table = t.get(RULES);
    let id: Uuid = e.aggregate_id.parse()?;
    let seq = e.sequence;
    match e.decode::<RoutingRuleEvent>()? {
        RoutingRuleEvent::RoutingRuleCreated { version, settings, at } => sqlx::query(&format!(
            "INSERT INTO {table} (id, tenant_id, name, priority, enabled, rule_version, settings, version, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) ON CONFLICT (id) DO NOTHING"
        ))
        .bind(id)
        .bind(e.tenant()?)
        .bind(settings.name.clone())
        .bind(settings.priority)
        .bind(settings.enabled)
        .bind(i32::try_from(version).unwrap_or(i32::MAX))
        .bind(serde_json::to_value(&settings)?)
        .bind(seq)
        .bind(at).execute(&mut *conn).await?,
        RoutingRuleEvent::RoutingRuleUpdated { version, settings, at, .. } => sqlx::query(&format!(
            "UPDATE {table} SET name = $2, priority = $3, enabled = $4, rule_version = $5, settings = $6, \
             version = $7, updated_at = $8 WHERE id = $1"
        ))
        .bind(id)
        .bind(settings.name.clone())
        .bind(settings.priority)
        .bind(settings.enabled)
        .bind(i32::try_from(version).unwrap_or(i32::MAX))
        .bind(serde_json::to_value(&settings)?)
        .bind(seq)
        .bind(at).execute(&mut *conn).await?,
        RoutingRuleEvent::RoutingRuleDeleted { .. } => {
            sqlx::query(&format!("DELETE FROM {table} WHERE id = $1")).bind(id).execute(&mut *conn).await?
        }
    };
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RuleRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub priority: i32,
    pub enabled: bool,
    pub rule_version: i32,
    pub settings: Value,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl RuleRow {
    pub fn settings(&self) -> anyhow::Result<RuleSettings> {
        Ok(serde_json::from_value(self.settings.clone())?)
    }
}

const COLUMNS: &str =
    "id, tenant_id, name, priority, enabled, rule_version, settings, version, created_at, updated_at";

pub async fn get(pool: &PgPool, tenant: Uuid, id: Uuid) -> Result<Option<RuleRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM {RULES} WHERE id = $1 AND tenant_id = $2"))
        .bind(id)
        .bind(tenant)
        .fetch_optional(pool)
        .await
}

/// Every rule of the tenant (for evaluation), highest priority first.
pub async fn all(pool: &PgPool, tenant: Uuid) -> Result<Vec<RuleRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM {RULES} WHERE tenant_id = $1 ORDER BY priority DESC, created_at, id"
    ))
    .bind(tenant)
    .fetch_all(pool)
    .await
}

/// Newest first; `enabled` filters.
pub async fn list(
    pool: &PgPool,
    tenant: Uuid,
    enabled: Option<bool>,
    after: Option<&Cursor>,
    limit: i64,
) -> anyhow::Result<Page<RuleRow>> {
    let mut q = sqlx::QueryBuilder::new(format!("SELECT {COLUMNS} FROM {RULES} WHERE tenant_id = "));
    q.push_bind(tenant);
    if let Some(enabled) = enabled {
        q.push(" AND enabled = ").push_bind(enabled);
    }
    crate::keyset::push_page(&mut q, "created_at", "id", after, true, limit)?;
    let rows: Vec<RuleRow> = q.build_query_as().fetch_all(pool).await?;
    Ok(crate::keyset::page(rows, limit, |r| (r.created_at, r.id)))
}
