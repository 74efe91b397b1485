//! The user read model (`user_view`): who belongs to which company, with which roles.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kraliki_domain::user::{User, UserEvent};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::event::StoredEvent;
use crate::filter::EventFilter;
use crate::projection::{BuildTables, Projection};

pub const NAME: &str = "user_view";
const TABLE: &str = "user_view";

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub company_id: Uuid,
    pub email: String,
    pub full_name: String,
    pub roles: Vec<String>,
    pub is_active: bool,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub password_changed_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str =
    "id, company_id, email, full_name, roles, is_active, version, created_at, updated_at, password_changed_at";

pub struct UserProjection;

#[async_trait]
impl Projection for UserProjection {
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
        Some(EventFilter::aggregates(&["User"]))
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        tables: &BuildTables,
        events: &[StoredEvent],
    ) -> anyhow::Result<()> {
        let t = tables.get(TABLE);
        for event in events.iter().filter(|e| e.aggregate_type == <User as cqrs_es::Aggregate>::TYPE) {
            let id: Uuid = event.aggregate_id.parse()?;
            let seq = event.sequence;
            match event.decode::<UserEvent>()? {
                UserEvent::UserRegistered { company_id, email, full_name, roles, at } => {
                    let company: Uuid = company_id.parse()?;
                    let roles: Vec<String> = roles.iter().map(|r| r.as_str().to_owned()).collect();
                    sqlx::query(&format!(
                        "INSERT INTO {t} ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, true, $6, $7, $7, NULL) \
                         ON CONFLICT (id) DO NOTHING"
                    ))
                    .bind(id)
                    .bind(company)
                    .bind(email)
                    .bind(full_name)
                    .bind(roles)
                    .bind(seq)
                    .bind(at)
                    .execute(&mut *conn)
                    .await?;
                }
                UserEvent::RoleGranted { role, at } => {
                    sqlx::query(&format!(
                        "UPDATE {t} SET roles = CASE WHEN $2 = ANY(roles) THEN roles ELSE array_append(roles, $2) END, \
                         version = $3, updated_at = $4 WHERE id = $1"
                    ))
                    .bind(id)
                    .bind(role.as_str())
                    .bind(seq)
                    .bind(at)
                    .execute(&mut *conn)
                    .await?;
                }
                UserEvent::RoleRevoked { role, at } => {
                    sqlx::query(&format!(
                        "UPDATE {t} SET roles = array_remove(roles, $2), version = $3, updated_at = $4 WHERE id = $1"
                    ))
                    .bind(id)
                    .bind(role.as_str())
                    .bind(seq)
                    .bind(at)
                    .execute(&mut *conn)
                    .await?;
                }
                UserEvent::PasswordChanged { at } => {
                    sqlx::query(&format!(
                        "UPDATE {t} SET password_changed_at = $2, version = $3, updated_at = $2 WHERE id = $1"
                    ))
                    .bind(id)
                    .bind(at)
                    .bind(seq)
                    .execute(&mut *conn)
                    .await?;
                }
                UserEvent::UserRenamed { full_name, at } => {
                    sqlx::query(&format!(
                        "UPDATE {t} SET full_name = $2, version = $3, updated_at = $4 WHERE id = $1"
                    ))
                    .bind(id)
                    .bind(full_name)
                    .bind(seq)
                    .bind(at)
                    .execute(&mut *conn)
                    .await?;
                }
                UserEvent::UserDeactivated { at } | UserEvent::UserReactivated { at } => {
                    let active = matches!(event.decode::<UserEvent>()?, UserEvent::UserReactivated { .. });
                    sqlx::query(&format!(
                        "UPDATE {t} SET is_active = $2, version = $3, updated_at = $4 WHERE id = $1"
                    ))
                    .bind(id)
                    .bind(active)
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

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM {TABLE} WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// Users of one company, oldest first, after the cursor `(created_at, id)`, optionally only
/// active (or inactive) ones and only holders of `role`.
pub async fn list_for_company(
    pool: &PgPool,
    company_id: Uuid,
    is_active: Option<bool>,
    role: Option<&str>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<(Vec<UserRow>, bool), sqlx::Error> {
    let (at, id) = after.unzip();
    let mut rows: Vec<UserRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM {TABLE} WHERE company_id = $1 \
         AND ($2::bool IS NULL OR is_active = $2) AND ($3::text IS NULL OR $3 = ANY(roles)) \
         AND ($4::timestamptz IS NULL OR (created_at, id) > ($4, $5)) ORDER BY created_at, id LIMIT $6"
    ))
    .bind(company_id)
    .bind(is_active)
    .bind(role)
    .bind(at)
    .bind(id)
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    Ok((rows, more))
}
