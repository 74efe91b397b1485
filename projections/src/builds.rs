//! The build registry: which builds of a projection exist, which one serves reads, and the
//! switch-over from a finished rebuild to serving.
//!
//! Every change to a projection's builds happens under one transaction-scoped advisory lock per
//! projection, so processes racing to create or switch builds take turns.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Postgres, Row, Transaction};

use crate::event::Position;
use crate::projection::{BuildTables, Projection};
use crate::wake::BUILDS_CHANNEL;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildStatus {
    Building,
    Active,
    Retired,
}

impl BuildStatus {
    fn parse(s: &str) -> Self {
        match s {
            "building" => Self::Building,
            "active" => Self::Active,
            _ => Self::Retired,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Build {
    pub name: String,
    pub build_id: i32,
    pub version: i32,
    pub status: BuildStatus,
    pub checkpoint: Position,
    pub events_done: i64,
    pub started_at: DateTime<Utc>,
    pub activated_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

const BUILD_COLUMNS: &str = "name, build_id, version, status, last_tx::text::bigint AS last_tx, \
    last_position, events_done, started_at, activated_at, updated_at";

impl Build {
    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        let status: String = row.try_get("status")?;
        Ok(Self {
            name: row.try_get("name")?,
            build_id: row.try_get("build_id")?,
            version: row.try_get("version")?,
            status: BuildStatus::parse(&status),
            checkpoint: Position { tx: row.try_get("last_tx")?, pos: row.try_get("last_position")? },
            events_done: row.try_get("events_done")?,
            started_at: row.try_get("started_at")?,
            activated_at: row.try_get("activated_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

async fn lock_builds(tx: &mut Transaction<'_, Postgres>, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('kraliki.projection_builds'), hashtext($1))")
        .bind(name)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Builds that are building or active, oldest first.
pub async fn current(conn: &mut PgConnection, name: &str) -> Result<Vec<Build>, sqlx::Error> {
    let sql = format!(
        "SELECT {BUILD_COLUMNS} FROM projection_builds WHERE name = $1 AND status <> 'retired' ORDER BY build_id"
    );
    let rows = sqlx::query(&sql).bind(name).fetch_all(conn).await?;
    rows.iter().map(Build::from_row).collect()
}

/// Every build of every projection, newest first (for status pages).
pub async fn all(pool: &PgPool) -> Result<Vec<Build>, sqlx::Error> {
    let sql = format!("SELECT {BUILD_COLUMNS} FROM projection_builds ORDER BY name, build_id DESC");
    let rows = sqlx::query(&sql).fetch_all(pool).await?;
    rows.iter().map(Build::from_row).collect()
}

pub async fn get(conn: &mut PgConnection, name: &str, build_id: i32) -> Result<Option<Build>, sqlx::Error> {
    let sql = format!("SELECT {BUILD_COLUMNS} FROM projection_builds WHERE name = $1 AND build_id = $2");
    let row = sqlx::query(&sql).bind(name).bind(build_id).fetch_optional(conn).await?;
    row.as_ref().map(Build::from_row).transpose()
}

async fn create(
    tx: &mut Transaction<'_, Postgres>,
    projection: &dyn Projection,
) -> Result<Build, sqlx::Error> {
    let name = projection.name();
    // One sequence for every projection: a table that moves to another projection never meets
    // a physical name of its old one.
    let next: i32 =
        sqlx::query_scalar("SELECT nextval('projection_build_ids')::int").fetch_one(&mut **tx).await?;
    let tables = BuildTables::new(projection.tables(), next);
    for base in projection.tables() {
        let physical = tables.get(base);
        sqlx::query(&format!("DROP TABLE IF EXISTS {physical}")).execute(&mut **tx).await?;
        // Keys now (upserts need them); other indexes once the build has caught up, which
        // is much cheaper than maintaining them row by row through a whole rebuild.
        sqlx::query(&format!(
            "CREATE TABLE {physical} (LIKE {base}_template INCLUDING ALL EXCLUDING INDEXES)"
        ))
        .execute(&mut **tx)
        .await?;
        let keys: Vec<String> = sqlx::query_scalar(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = $1::regclass AND contype IN ('p', 'u')",
        )
        .bind(format!("{base}_template"))
        .fetch_all(&mut **tx)
        .await?;
        for key in keys {
            sqlx::query(&format!("ALTER TABLE {physical} ADD {key}")).execute(&mut **tx).await?;
        }
    }
    // The head below the transaction barrier: everything before it has committed, so starting
    // after it misses nothing that comes later.
    let start: (String, i64) = if projection.starts_at_head() {
        sqlx::query_as::<_, (String, i64)>(
            "SELECT tx_id::text, global_position FROM events \
             WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
             ORDER BY tx_id DESC, global_position DESC LIMIT 1",
        )
        .fetch_optional(&mut **tx)
        .await?
        .unwrap_or(("0".into(), 0))
    } else {
        ("0".into(), 0)
    };
    let sql = format!(
        "INSERT INTO projection_builds (name, build_id, version, status, last_tx, last_position) \
         VALUES ($1, $2, $3, 'building', $4::text::xid8, $5) RETURNING {BUILD_COLUMNS}"
    );
    let row = sqlx::query(&sql)
        .bind(name)
        .bind(next)
        .bind(projection.version())
        .bind(start.0)
        .bind(start.1)
        .fetch_one(&mut **tx)
        .await?;
    sqlx::query("SELECT pg_notify($1, $2)").bind(BUILDS_CHANNEL).bind(name).execute(&mut **tx).await?;
    tracing::info!(
        projection = name,
        build_id = next,
        version = projection.version(),
        "projection build created"
    );
    Build::from_row(&row)
}

/// Makes sure this code's version of the projection has a build: the first build on a new
/// database, or a rebuild when the serving build was made by an older version. Returns the
/// builds that are building or active.
pub async fn ensure(pool: &PgPool, projection: &dyn Projection) -> Result<Vec<Build>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    lock_builds(&mut tx, projection.name()).await?;
    let mut builds = current(&mut tx, projection.name()).await?;
    let ours = projection.version();
    let has_current_version = builds.iter().any(|b| b.version >= ours);
    let is_building = builds.iter().any(|b| b.status == BuildStatus::Building);
    if !has_current_version && !is_building {
        builds.push(create(&mut tx, projection).await?);
    }
    tx.commit().await?;
    Ok(builds)
}

/// Starts a rebuild from the beginning of the log into fresh tables; the active build keeps
/// serving until the new one has caught up. Asking while a rebuild runs returns that rebuild.
pub async fn request_rebuild(pool: &PgPool, projection: &dyn Projection) -> Result<Build, sqlx::Error> {
    let mut tx = pool.begin().await?;
    lock_builds(&mut tx, projection.name()).await?;
    let builds = current(&mut tx, projection.name()).await?;
    let build = match builds.into_iter().find(|b| b.status == BuildStatus::Building) {
        Some(running) => running,
        None => create(&mut tx, projection).await?,
    };
    tx.commit().await?;
    Ok(build)
}

/// Creates a build's secondary indexes (those of its templates that are not keys), if missing.
/// Done once a build has caught up, before it may serve reads.
pub async fn create_deferred_indexes(
    pool: &PgPool,
    projection: &dyn Projection,
    build_id: i32,
) -> Result<(), sqlx::Error> {
    let tables = BuildTables::new(projection.tables(), build_id);
    for base in projection.tables() {
        let physical = tables.get(base);
        let definitions: Vec<(String, String)> = sqlx::query_as(
            "SELECT c.relname::text, pg_get_indexdef(ix.indexrelid) FROM pg_index ix \
             JOIN pg_class c ON c.oid = ix.indexrelid \
             WHERE ix.indrelid = $1::regclass AND NOT ix.indisprimary AND NOT ix.indisunique ORDER BY c.relname",
        )
        .bind(format!("{base}_template"))
        .fetch_all(pool)
        .await?;
        for (name, definition) in definitions {
            // `CREATE INDEX <name> ON public.<base>_template USING …` → the build's own copy.
            let Some((_, rest)) = definition.split_once(&format!(" ON public.{base}_template ")) else {
                tracing::warn!(index = name, "unexpected index definition; not copied");
                continue;
            };
            let own = format!("{physical}{}", name.trim_start_matches(&format!("{base}_template")));
            sqlx::query(&format!("CREATE INDEX IF NOT EXISTS {own} ON {physical} {rest}"))
                .execute(pool)
                .await?;
        }
    }
    Ok(())
}

/// Switches reads to `build_id` if it is at least as far along as the active build. Returns
/// whether it switched. The caller must hold the build's runner lock.
pub async fn try_activate(
    pool: &PgPool,
    projection: &dyn Projection,
    build_id: i32,
) -> Result<bool, sqlx::Error> {
    let name = projection.name();
    // Statistics of the build as it starts to serve, not as autovacuum last happened to see it
    // (a rebuild filled it, perhaps from nothing, moments ago). Outside the switch's
    // transaction: an open transaction holds back every runner's barrier.
    for physical in BuildTables::new(projection.tables(), build_id).physical() {
        sqlx::query(&format!("ANALYZE {physical}")).execute(pool).await?;
    }
    let mut tx = pool.begin().await?;
    lock_builds(&mut tx, name).await?;
    let sql = format!(
        "SELECT {BUILD_COLUMNS} FROM projection_builds WHERE name = $1 AND status <> 'retired' FOR UPDATE"
    );
    let rows = sqlx::query(&sql).bind(name).fetch_all(&mut *tx).await?;
    let builds = rows.iter().map(Build::from_row).collect::<Result<Vec<_>, _>>()?;
    let Some(ours) = builds.iter().find(|b| b.build_id == build_id && b.status == BuildStatus::Building)
    else {
        return Ok(false);
    };
    let active = builds.iter().find(|b| b.status == BuildStatus::Active);
    if let Some(active) = active {
        // Never switch to a build that has seen less than the one serving: a reader that waited
        // for a position would see it vanish.
        if active.checkpoint > ours.checkpoint {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE projection_builds SET status = 'retired', retired_at = now(), updated_at = now() \
             WHERE name = $1 AND build_id = $2",
        )
        .bind(name)
        .bind(active.build_id)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "UPDATE projection_builds SET status = 'active', activated_at = now(), updated_at = now() \
         WHERE name = $1 AND build_id = $2",
    )
    .bind(name)
    .bind(build_id)
    .execute(&mut *tx)
    .await?;
    let tables = BuildTables::new(projection.tables(), build_id);
    for base in projection.tables() {
        let physical = tables.get(base);

        sqlx::query(&format!("DROP VIEW IF EXISTS {base}")).execute(&mut *tx).await?;
        sqlx::query(&format!("CREATE VIEW {base} AS SELECT * FROM {physical}")).execute(&mut *tx).await?;
    }
    sqlx::query("SELECT pg_notify($1, $2)").bind(BUILDS_CHANNEL).bind(name).execute(&mut *tx).await?;
    tx.commit().await?;
    tracing::info!(projection = name, build_id, "projection build now serves reads");
    drop_retired_tables(pool, projection).await;
    Ok(true)
}

/// Drops the tables of retired builds. Waits at most briefly for readers; what it cannot drop
/// now is dropped on a later switch.
pub async fn drop_retired_tables(pool: &PgPool, projection: &dyn Projection) {
    if projection.tables().is_empty() {
        return;
    }
    let retired: Vec<i32> = match sqlx::query_scalar(
        "SELECT build_id FROM projection_builds WHERE name = $1 AND status = 'retired'",
    )
    .bind(projection.name())
    .fetch_all(pool)
    .await
    {
        Ok(ids) => ids,
        Err(error) => {
            tracing::warn!(%error, "could not list retired builds");
            return;
        }
    };
    for build_id in retired {
        let tables = BuildTables::new(projection.tables(), build_id);
        for base in projection.tables() {
            let physical = tables.get(base).to_owned();
            let result = async {
                let mut tx = pool.begin().await?;
                sqlx::query("SET LOCAL lock_timeout = '2s'").execute(&mut *tx).await?;
                sqlx::query(&format!("DROP TABLE IF EXISTS {physical}")).execute(&mut *tx).await?;
                tx.commit().await
            }
            .await;
            if let Err(error) = result {
                tracing::warn!(%error, table = physical, "retired table not dropped yet");
            }
        }
    }
}
