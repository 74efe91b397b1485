//! A company's call defaults (`tenant_settings_view`): provider and session defaults.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kraliki_domain::tenant_settings::{ProviderDefaults, SessionDefaults, TenantSettingsEvent};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::event::StoredEvent;
use crate::filter::EventFilter;
use crate::projection::{BuildTables, Projection};

pub const NAME: &str = "tenant_settings_view";
const TABLE: &str = "tenant_settings_view";

pub struct TenantSettingsProjection;

#[async_trait]
impl Projection for TenantSettingsProjection {
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
        Some(EventFilter::aggregates(&["TenantSettings"]))
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        t: &BuildTables,
        events: &[StoredEvent],
    ) -> anyhow::Result<()> {
        let table = t.get(TABLE);
        for e in events.iter().filter(|e| e.aggregate_type == "TenantSettings") {
            let tenant: Uuid = e.aggregate_id.parse()?;
            let (column, value, at) = match e.decode::<TenantSettingsEvent>()? {
                TenantSettingsEvent::ProviderDefaultsSet { defaults, at } => {
                    ("provider", serde_json::to_value(defaults)?, at)
                }
                TenantSettingsEvent::SessionDefaultsSet { defaults, at } => {
                    ("session", serde_json::to_value(defaults)?, at)
                }
            };
            sqlx::query(&format!(
                "INSERT INTO {table} (tenant_id, {column}, version, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (tenant_id) DO UPDATE SET {column} = excluded.{column}, version = excluded.version, \
                 updated_at = excluded.updated_at"
            ))
            .bind(tenant)
            .bind(value)
            .bind(e.sequence)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

/// A company's call defaults (the defaults of defaults where it set none).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TenantDefaults {
    pub provider: ProviderDefaults,
    pub session: SessionDefaults,
    pub updated_at: Option<DateTime<Utc>>,
}

pub async fn get(pool: &PgPool, tenant: Uuid) -> Result<TenantDefaults, sqlx::Error> {
    let row: Option<(Option<serde_json::Value>, Option<serde_json::Value>, DateTime<Utc>)> =
        sqlx::query_as(&format!("SELECT provider, session, updated_at FROM {TABLE} WHERE tenant_id = $1"))
            .bind(tenant)
            .fetch_optional(pool)
            .await?;
    Ok(match row {
        None => TenantDefaults::default(),
        Some((provider, session, at)) => TenantDefaults {
            provider: provider.and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default(),
            session: session.and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default(),
            updated_at: Some(at),
        },
    })
}
