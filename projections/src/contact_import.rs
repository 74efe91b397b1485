//! Contact imports: `contact_import_view` (progress and outcome) and
//! `contact_import_problem_view` (the per-row report).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kraliki_domain::contact_import::{ContactBatchEvent, ContactImportEvent};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::event::StoredEvent;
use crate::filter::EventFilter;
use crate::projection::{BuildTables, Projection};

pub const NAME: &str = "contact_import_view";
const IMPORTS: &str = "contact_import_view";
const PROBLEMS: &str = "contact_import_problem_view";

pub struct ImportProjection;

#[async_trait]
impl Projection for ImportProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &[IMPORTS, PROBLEMS]
    }

    fn reads(&self) -> Option<EventFilter> {
        Some(EventFilter::aggregates(&["ContactBatch", "ContactImport"]))
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        t: &BuildTables,
        events: &[StoredEvent],
    ) -> anyhow::Result<()> {
        for e in events {
            match e.aggregate_type.as_str() {
                "ContactBatch" => batch(conn, t, e).await?,
                "ContactImport" => import(conn, t, e).await?,
                _ => {}
            }
        }
        Ok(())
    }
}

async fn batch(conn: &mut PgConnection, t: &BuildTables, e: &StoredEvent) -> anyhow::Result<()> {
    let ContactBatchEvent::ContactBatchImported { import_id, contacts, rejected, at, .. } = e.decode()?;
    if !rejected.is_empty() {
        let problems = t.get(PROBLEMS);
        let mut seq = Vec::with_capacity(rejected.len());
        let mut last = (u64::MAX, 0i32);
        for p in &rejected {
            last = if p.row == last.0 { (p.row, last.1 + 1) } else { (p.row, 0) };
            seq.push(last.1);
        }
        sqlx::query(&format!(
            "INSERT INTO {problems} (import_id, row_no, seq, field, code, message) \
             SELECT $1, * FROM unnest($2::bigint[], $3::int[], $4::text[], $5::text[], $6::text[]) \
             ON CONFLICT DO NOTHING"
        ))
        .bind(import_id)
        .bind(rejected.iter().map(|p| p.row as i64).collect::<Vec<_>>())
        .bind(seq)
        .bind(rejected.iter().map(|p| p.field.clone()).collect::<Vec<_>>())
        .bind(rejected.iter().map(|p| p.code.clone()).collect::<Vec<_>>())
        .bind(rejected.iter().map(|p| p.message.clone()).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    let mut rows_rejected: Vec<u64> = rejected.iter().map(|p| p.row).collect();
    rows_rejected.dedup();
    let duplicates = rejected.iter().filter(|p| p.code == "duplicate_phone").count() as i64;
    let dnc = contacts.iter().filter(|c| c.data.do_not_call).count() as i64;
    let imports = t.get(IMPORTS);
    sqlx::query(&format!(
        "UPDATE {imports} SET processed_rows = processed_rows + $2, successful = successful + $3, \
         failed = failed + $4, duplicates = duplicates + $5, do_not_call = do_not_call + $6, batches = batches + 1, \
         updated_at = $7 WHERE id = $1"
    ))
    .bind(import_id)
    .bind((contacts.len() + rows_rejected.len()) as i64)
    .bind(contacts.len() as i64)
    .bind(rows_rejected.len() as i64)
    .bind(duplicates)
    .bind(dnc)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn import(conn: &mut PgConnection, t: &BuildTables, e: &StoredEvent) -> anyhow::Result<()> {
    let table = t.get(IMPORTS);
    let id: Uuid = e.aggregate_id.parse()?;
    match e.decode::<ContactImportEvent>()? {
        ContactImportEvent::ContactImportStarted {
            format, file_name, size_bytes, contact_list, at, ..
        } => {
            sqlx::query(&format!(
                "INSERT INTO {table} (id, tenant_id, status, format, file_name, size_bytes, contact_list, created_at, updated_at) \
                 VALUES ($1, $2, 'validating', $3, $4, $5, $6, $7, $7) ON CONFLICT (id) DO NOTHING"
            ))
            .bind(id)
            .bind(e.tenant()?)
            .bind(format.as_str())
            .bind(file_name)
            .bind(size_bytes as i64)
            .bind(contact_list)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        ContactImportEvent::ContactImportValidated { total_rows, at } => {
            sqlx::query(&format!(
                "UPDATE {table} SET status = 'importing', total_rows = $2, updated_at = $3 WHERE id = $1"
            ))
            .bind(id)
            .bind(total_rows as i64)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        ContactImportEvent::ContactImportCompleted { totals, at } => {
            sqlx::query(&format!(
                "UPDATE {table} SET status = 'completed', total_rows = $2, processed_rows = $2, successful = $3, \
                 failed = $4, duplicates = $5, do_not_call = $6, batches = $7, updated_at = $8, finished_at = $8 WHERE id = $1"
            ))
            .bind(id)
            .bind(totals.total as i64)
            .bind(totals.successful as i64)
            .bind(totals.failed as i64)
            .bind(totals.duplicates as i64)
            .bind(totals.do_not_call as i64)
            .bind(totals.batches as i64)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        ContactImportEvent::ContactImportFailed { code, message, row, at } => {
            sqlx::query(&format!(
                "UPDATE {table} SET status = 'failed', error_code = $2, error_message = $3, error_row = $4, \
                 successful = 0, updated_at = $5, finished_at = $5 WHERE id = $1"
            ))
            .bind(id)
            .bind(code)
            .bind(message)
            .bind(row.map(|r| r as i64))
            .bind(at)
            .execute(&mut *conn)
            .await?;
            // Its contacts are dropped by the contact projection.
        }
    }
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ImportRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub status: String,
    pub format: String,
    pub file_name: Option<String>,
    pub size_bytes: i64,
    pub contact_list: Option<String>,
    pub total_rows: Option<i64>,
    pub processed_rows: i64,
    pub successful: i64,
    pub failed: i64,
    pub duplicates: i64,
    pub do_not_call: i64,
    pub batches: i64,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub error_row: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

pub async fn get_import(pool: &PgPool, tenant: Uuid, id: Uuid) -> Result<Option<ImportRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT * FROM {IMPORTS} WHERE id = $1 AND tenant_id = $2"))
        .bind(id)
        .bind(tenant)
        .fetch_optional(pool)
        .await
}

pub async fn list_imports(pool: &PgPool, tenant: Uuid, limit: i64) -> Result<Vec<ImportRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT * FROM {IMPORTS} WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
    ))
    .bind(tenant)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Imports left unfinished (by a process that stopped), for the recovery at start.
pub async fn unfinished_imports(pool: &PgPool) -> Result<Vec<(Uuid, Uuid)>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT id, tenant_id FROM {IMPORTS} WHERE status IN ('validating', 'importing')"
    ))
    .fetch_all(pool)
    .await
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProblemRow {
    pub row_no: i64,
    pub field: Option<String>,
    pub code: String,
    pub message: String,
}

/// The import's per-row report, in row order; `limit` None for all of it.
pub async fn problems(
    pool: &PgPool,
    import: Uuid,
    limit: Option<i64>,
) -> Result<Vec<ProblemRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT row_no, field, code, message FROM {PROBLEMS} WHERE import_id = $1 ORDER BY row_no, seq LIMIT $2"
    ))
    .bind(import)
    .bind(limit)
    .fetch_all(pool)
    .await
}
