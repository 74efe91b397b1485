//! The service-account read model (`service_account_view`): accounts and their keys' history.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kraliki_domain::service_account::{ServiceAccount, ServiceAccountEvent};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::event::StoredEvent;
use crate::filter::EventFilter;
use crate::projection::{BuildTables, Projection};

pub const NAME: &str = "service_account_view";
const TABLE: &str = "service_account_view";
const COLUMNS: &str = "id, company_id, name, roles, is_active, keys, version, created_at, updated_at";

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ServiceAccountRow {
    pub id: Uuid,
    pub company_id: Uuid,
    pub name: String,
    pub roles: Vec<String>,
    pub is_active: bool,
    pub keys: serde_json::Value,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub struct ServiceAccountProjection;

#[async_trait]
impl Projection for ServiceAccountProjection {
    fn name(&self) -> &'static str {
        NAME
    }
    fn version(&self) -> i32 {
        1
    }
    fn tables(&self) -> &'static [&'static str] {
        &[TABLE]
    }

    fn reads(&self) -> Option<EventFilter> {
        Some(EventFilter::aggregates(&["ServiceAccount"]))
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        tables: &BuildTables,
        events: &[StoredEvent],
    ) -> anyhow::Result<()> {
        let t = tables.get(TABLE);
        for event in
            events.iter().filter(|e| e.aggregate_type == <ServiceAccount as cqrs_es::Aggregate>::TYPE)
        {
            let id: Uuid = event.aggregate_id.parse()?;
            let seq = event.sequence;
            match event.decode::<ServiceAccountEvent>()? {
                ServiceAccountEvent::ServiceAccountCreated { company_id, name, roles, at } => {
                    let roles: Vec<String> = roles.iter().map(|r| r.as_str().to_owned()).collect();
                    sqlx::query(&format!(
                        "INSERT INTO {t} ({COLUMNS}) VALUES ($1, $2, $3, $4, true, '[]', $5, $6, $6) ON CONFLICT (id) DO NOTHING"
                    ))
                    .bind(id)
                    .bind(company_id.parse::<Uuid>()?)
                    .bind(name)
                    .bind(roles)
                    .bind(seq)
                    .bind(at)
                    .execute(&mut *conn)
                    .await?;
                }
                ServiceAccountEvent::ApiKeyIssued { key_id, prefix, at } => {
                    let key = serde_json::json!({ "key_id": key_id, "prefix": prefix, "issued_at": at, "revoked_at": null });
                    sqlx::query(&format!(
                        "UPDATE {t} SET keys = keys || jsonb_build_array($2::jsonb), version = $3, updated_at = $4 WHERE id = $1"
                    ))
                    .bind(id)
                    .bind(key)
                    .bind(seq)
                    .bind(at)
                    .execute(&mut *conn)
                    .await?;
                }
                ServiceAccountEvent::ApiKeyRevoked { key_id, at } => {
                    sqlx::query(&format!(
                        "UPDATE {t} SET keys = (SELECT coalesce(jsonb_agg(CASE WHEN k ->> 'key_id' = $2 \
                           THEN jsonb_set(k, '{{revoked_at}}', to_jsonb($4::timestamptz)) ELSE k END), '[]') \
                           FROM jsonb_array_elements(keys) k), version = $3, updated_at = $4 WHERE id = $1"
                    ))
                    .bind(id)
                    .bind(key_id)
                    .bind(seq)
                    .bind(at)
                    .execute(&mut *conn)
                    .await?;
                }
                ServiceAccountEvent::ServiceAccountDeactivated { at } => {
                    sqlx::query(&format!(
                        "UPDATE {t} SET is_active = false, version = $2, updated_at = $3 WHERE id = $1"
                    ))
                    .bind(id)
                    .bind(seq)
                    .bind(at)
                    .execute(&mut *conn)
                    .await?;
                }
            }
        }
        Ok(())
    }
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<ServiceAccountRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM {TABLE} WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// A company's accounts in creation order (ids are UUID v7), after the cursor id.
pub async fn list_for_company(
    pool: &PgPool,
    company_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<(Vec<ServiceAccountRow>, bool), sqlx::Error> {
    let mut rows: Vec<ServiceAccountRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM {TABLE} WHERE company_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3"
    ))
    .bind(company_id)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    Ok((rows, more))
}
