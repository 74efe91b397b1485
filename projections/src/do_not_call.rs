//! The tenant's do-not-call list (`do_not_call_view`): one row per listed number.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kraliki_domain::do_not_call::DoNotCallEvent;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::event::StoredEvent;
use crate::filter::EventFilter;
use crate::projection::{BuildTables, Projection};

pub const NAME: &str = "do_not_call_view";
const DNC: &str = "do_not_call_view";

pub struct DoNotCallProjection;

#[async_trait]
impl Projection for DoNotCallProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &[DNC]
    }

    fn reads(&self) -> Option<EventFilter> {
        Some(EventFilter::aggregates(&["DoNotCallNumber"]))
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        t: &BuildTables,
        events: &[StoredEvent],
    ) -> anyhow::Result<()> {
        for e in events.iter().filter(|e| e.aggregate_type == "DoNotCallNumber") {
            dnc(conn, t, e).await?;
        }
        Ok(())
    }
}

async fn dnc(conn: &mut PgConnection, t: &BuildTables, e: &StoredEvent) -> anyhow::Result<()> {
    let table = t.get(DNC);
    match e.decode::<DoNotCallEvent>()? {
        DoNotCallEvent::DoNotCallNumberAdded { phone_number, reason, source, at } => {
            sqlx::query(&format!(
                "INSERT INTO {table} (tenant_id, phone_number, reason, source, added_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (tenant_id, phone_number) DO UPDATE SET reason = excluded.reason, source = excluded.source, \
                 added_at = excluded.added_at"
            ))
            .bind(e.tenant()?)
            .bind(phone_number)
            .bind(reason)
            .bind(source)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        DoNotCallEvent::DoNotCallNumberRemoved { phone_number, .. } => {
            sqlx::query(&format!("DELETE FROM {table} WHERE tenant_id = $1 AND phone_number = $2"))
                .bind(e.tenant()?)
                .bind(phone_number)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DncRow {
    pub phone_number: String,
    pub reason: Option<String>,
    pub source: Option<String>,
    pub added_at: DateTime<Utc>,
}

pub async fn list_dnc(
    pool: &PgPool,
    tenant: Uuid,
    after: Option<&str>,
    limit: i64,
) -> Result<(Vec<DncRow>, Option<String>), sqlx::Error> {
    let mut rows: Vec<DncRow> = sqlx::query_as(&format!(
        "SELECT phone_number, reason, source, added_at FROM {DNC} WHERE tenant_id = $1 AND phone_number > $2 \
         ORDER BY phone_number LIMIT $3"
    ))
    .bind(tenant)
    .bind(after.unwrap_or(""))
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = if more { rows.last().map(|r| r.phone_number.clone()) } else { None };
    Ok((rows, next))
}

pub async fn is_dnc(pool: &PgPool, tenant: Uuid, phone: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "SELECT EXISTS (SELECT 1 FROM {DNC} WHERE tenant_id = $1 AND phone_number = $2)"
    ))
    .bind(tenant)
    .bind(phone)
    .fetch_one(pool)
    .await
}
