//! The Postgres pool and the migrations (the `migrations/` folder, embedded at build time).

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use secrecy::ExposeSecret;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use crate::config::Settings;

pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

pub async fn connect(settings: &Settings) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(settings.database_url.expose_secret())
        .context("DATABASE_URL is not a valid postgres:// URL")?
        .application_name("kraliki")
        .options([
            (
                "idle_in_transaction_session_timeout",
                settings.database.idle_in_transaction_timeout_ms.to_string(),
            ),
            // Statements are prepared once per connection and live as long as it does; a
            // generic plan chosen while a read model was small (a sequential scan) would
            // outlive its growth until the next analyze. Read-model tables grow from empty with
            // every new build, so every statement is planned with its values (tens of
            // microseconds against a wrong plan's milliseconds), as the runners' are.
            ("plan_cache_mode", "force_custom_plan".to_owned()),
        ]);
    let host =
        format!("{}:{}/{}", options.get_host(), options.get_port(), options.get_database().unwrap_or(""));
    PgPoolOptions::new()
        .max_connections(settings.database.max_connections)
        .acquire_timeout(Duration::from_millis(settings.database.acquire_timeout_ms.max(100)))
        // No ping before every checkout (a round trip per statement); a broken connection fails
        // its statement and is dropped, and idle ones are recycled.
        .test_before_acquire(false)
        .idle_timeout(Duration::from_secs(300))
        .connect_with(options)
        .await
        .with_context(|| format!("cannot connect to PostgreSQL at {host}"))
}

pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR.run(pool).await.context("running migrations")
}

/// Migrations embedded in this binary that the database has not applied successfully.
pub async fn pending_migrations(pool: &PgPool) -> anyhow::Result<Vec<i64>> {
    let applied: Vec<i64> = match sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
        .fetch_all(pool)
        .await
    {
        Ok(v) => v,
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    Ok(MIGRATOR.iter().map(|m| m.version).filter(|v| !applied.contains(v)).collect())
}
