//! Call lists (`call_list_view`): a campaign's saved filters and orders of contacts.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kraliki_domain::call_list::CallListEvent;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::company::{Cursor, Page};
use crate::event::StoredEvent;
use crate::filter::EventFilter;
use crate::projection::{json, BuildTables, Projection};

pub const NAME: &str = "call_list_view";
const CALL_LISTS: &str = "call_list_view";

pub struct CallListProjection;

#[async_trait]
impl Projection for CallListProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &[CALL_LISTS]
    }

    fn reads(&self) -> Option<EventFilter> {
        Some(EventFilter::aggregates(&["CallList"]).and_events("Campaign", &["CampaignDeleted"]))
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        t: &BuildTables,
        events: &[StoredEvent],
    ) -> anyhow::Result<()> {
        for e in events {
            match e.aggregate_type.as_str() {
                "CallList" => call_list(conn, t, e).await?,
                // A deleted campaign's lists go with it.
                "Campaign" if e.event_type == "CampaignDeleted" => {
                    let lists = t.get(CALL_LISTS);
                    sqlx::query(&format!("DELETE FROM {lists} WHERE campaign_id = $1"))
                        .bind(e.aggregate_id.parse::<Uuid>()?)
                        .execute(&mut *conn)
                        .await?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

async fn call_list(conn: &mut PgConnection, t: &BuildTables, e: &StoredEvent) -> anyhow::Result<()> {
    let table = t.get(CALL_LISTS);
    let id: Uuid = e.aggregate_id.parse()?;
    match e.decode::<CallListEvent>()? {
        CallListEvent::CallListCreated { campaign_id, spec, at } => {
            sqlx::query(&format!(
                "INSERT INTO {table} (id, tenant_id, campaign_id, name, filter, sort, version, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT (id) DO NOTHING"
            ))
            .bind(id)
            .bind(e.tenant()?)
            .bind(campaign_id)
            .bind(&spec.name)
            .bind(json(&spec.filter)?)
            .bind(json(&spec.order)?)
            .bind(e.sequence)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        CallListEvent::CallListUpdated { spec, at } => {
            sqlx::query(&format!(
                "UPDATE {table} SET name = $2, filter = $3, sort = $4, version = $5, updated_at = $6 WHERE id = $1"
            ))
            .bind(id)
            .bind(&spec.name)
            .bind(json(&spec.filter)?)
            .bind(json(&spec.order)?)
            .bind(e.sequence)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        CallListEvent::CallListDeleted { .. } => {
            sqlx::query(&format!("DELETE FROM {table} WHERE id = $1")).bind(id).execute(&mut *conn).await?;
        }
    }
    Ok(())
}

/// Call events move the campaign's live statistics.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CallListRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub campaign_id: Uuid,
    pub name: String,
    pub filter: Value,
    pub sort: Value,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const CALL_LIST_COLUMNS: &str =
    "id, tenant_id, campaign_id, name, filter, sort, version, created_at, updated_at";

pub async fn get_call_list(
    pool: &PgPool,
    tenant: Uuid,
    id: Uuid,
) -> Result<Option<CallListRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {CALL_LIST_COLUMNS} FROM {CALL_LISTS} WHERE id = $1 AND tenant_id = $2"))
        .bind(id)
        .bind(tenant)
        .fetch_optional(pool)
        .await
}

pub async fn call_lists_of(pool: &PgPool, campaign: Uuid) -> Result<Vec<CallListRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {CALL_LIST_COLUMNS} FROM {CALL_LISTS} WHERE campaign_id = $1 ORDER BY created_at, id"
    ))
    .bind(campaign)
    .fetch_all(pool)
    .await
}

pub async fn list_call_lists(
    pool: &PgPool,
    tenant: Uuid,
    campaign: Option<Uuid>,
    after: Option<&Cursor>,
    limit: i64,
) -> anyhow::Result<Page<CallListRow>> {
    let mut q =
        sqlx::QueryBuilder::new(format!("SELECT {CALL_LIST_COLUMNS} FROM {CALL_LISTS} WHERE tenant_id = "));
    q.push_bind(tenant);
    if let Some(c) = campaign {
        q.push(" AND campaign_id = ").push_bind(c);
    }
    crate::keyset::push_page(&mut q, "created_at", "id", after, true, limit)?;
    let rows: Vec<CallListRow> = q.build_query_as().fetch_all(pool).await?;
    Ok(crate::keyset::page(rows, limit, |r| (r.created_at, r.id)))
}
