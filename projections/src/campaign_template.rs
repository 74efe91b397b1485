//! Campaign templates (`campaign_template_view`): saved settings to start campaigns from.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kraliki_domain::campaign_template::TemplateEvent;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::company::{Cursor, Page};
use crate::event::StoredEvent;
use crate::filter::EventFilter;
use crate::projection::{json, BuildTables, Projection};

pub const NAME: &str = "campaign_template_view";
const TEMPLATES: &str = "campaign_template_view";

pub struct TemplateProjection;

#[async_trait]
impl Projection for TemplateProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &[TEMPLATES]
    }

    fn reads(&self) -> Option<EventFilter> {
        Some(EventFilter::aggregates(&["CampaignTemplate"]))
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        t: &BuildTables,
        events: &[StoredEvent],
    ) -> anyhow::Result<()> {
        for e in events.iter().filter(|e| e.aggregate_type == "CampaignTemplate") {
            template(conn, t, e).await?;
        }
        Ok(())
    }
}

async fn template(conn: &mut PgConnection, t: &BuildTables, e: &StoredEvent) -> anyhow::Result<()> {
    let table = t.get(TEMPLATES);
    let id: Uuid = e.aggregate_id.parse()?;
    match e.decode::<TemplateEvent>()? {
        TemplateEvent::CampaignTemplateCreated { settings, source_campaign, at } => {
            sqlx::query(&format!(
                "INSERT INTO {table} (id, tenant_id, name, description, settings, source_campaign, version, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT (id) DO NOTHING"
            ))
            .bind(id)
            .bind(e.tenant()?)
            .bind(&settings.name)
            .bind(&settings.description)
            .bind(json(&settings)?)
            .bind(source_campaign)
            .bind(e.sequence)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        TemplateEvent::CampaignTemplateUpdated { settings, at, .. } => {
            sqlx::query(&format!(
                "UPDATE {table} SET name = $2, description = $3, settings = $4, version = $5, updated_at = $6 WHERE id = $1"
            ))
            .bind(id)
            .bind(&settings.name)
            .bind(&settings.description)
            .bind(json(&settings)?)
            .bind(e.sequence)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        TemplateEvent::CampaignTemplateDeleted { .. } => {
            sqlx::query(&format!("DELETE FROM {table} WHERE id = $1")).bind(id).execute(&mut *conn).await?;
        }
    }
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TemplateRow {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub settings: Value,
    pub source_campaign: Option<Uuid>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const TEMPLATE_COLUMNS: &str =
    "id, name, description, settings, source_campaign, version, created_at, updated_at";

pub async fn get_template(pool: &PgPool, tenant: Uuid, id: Uuid) -> Result<Option<TemplateRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {TEMPLATE_COLUMNS} FROM {TEMPLATES} WHERE id = $1 AND tenant_id = $2"))
        .bind(id)
        .bind(tenant)
        .fetch_optional(pool)
        .await
}

pub async fn list_templates(
    pool: &PgPool,
    tenant: Uuid,
    search: Option<&str>,
    after: Option<&Cursor>,
    limit: i64,
) -> anyhow::Result<Page<TemplateRow>> {
    let mut q =
        sqlx::QueryBuilder::new(format!("SELECT {TEMPLATE_COLUMNS} FROM {TEMPLATES} WHERE tenant_id = "));
    q.push_bind(tenant);
    if let Some(s) = search.filter(|s| !s.is_empty()) {
        q.push(" AND lower(name) LIKE ").push_bind(crate::campaign::like(s));
    }
    crate::keyset::push_page(&mut q, "created_at", "id", after, true, limit)?;
    let rows: Vec<TemplateRow> = q.build_query_as().fetch_all(pool).await?;
    Ok(crate::keyset::page(rows, limit, |r| (r.created_at, r.id)))
}
