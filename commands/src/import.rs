//! Bulk contact import: a process manager that reads a spooled file and turns it into a few
//! events. Two passes over the file on disk, neither holding more than a batch in memory:
//!
//! 1. **check**: encoding, structure, header, line lengths, row count. A file-level problem
//!    fails the import before any contact is written (`ContactImportFailed`).
//! 2. **import**: rows become contact data (phone numbers parsed to E.164, time zones from the
//!    number), duplicates within the file and against the tenant's contacts are reported per
//!    row, numbers on the do-not-call list are imported flagged, and every `batch_size` rows
//!    become one `ContactBatchImported` event in a stream of its own.
//!
//! A process that dies mid-import leaves the import unfinished; [`recover_unfinished`] fails it
//! at the next start and the projection drops its contacts, so nothing stays half-imported.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use kraliki_domain::contact::ContactData;
use kraliki_domain::contact_import::{
    json_input, ColumnMapping, ContactBatch, ContactBatchCommand, ContactImport, ContactImportCommand,
    CsvLayout, ImportFormat, ImportTotals, ImportedContact, RowProblem,
};
use kraliki_projections::Wake;
use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::{CommandContext, Dispatcher};

#[derive(Debug, Clone)]
pub struct ImportLimits {
    /// Rows per batch event.
    pub batch_size: usize,
    /// A longer line (a CSV record, an NDJSON line) fails the file.
    pub max_line_bytes: usize,
}

impl Default for ImportLimits {
    fn default() -> Self {
        Self { batch_size: 5_000, max_line_bytes: 64 * 1024 }
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ImportJob {
    pub id: Uuid,
    pub tenant: Uuid,
    pub actor: String,
    pub correlation_id: Option<String>,
    pub format: ImportFormat,
    /// The spooled upload; removed when the import ends.
    pub path: PathBuf,
    pub mapping: ColumnMapping,
    pub contact_list: Option<String>,
    pub default_region: Option<String>,
}

impl ImportJob {
    fn context(&self) -> CommandContext {
        let ctx = CommandContext::new(self.tenant.to_string(), self.actor.clone());
        match &self.correlation_id {
            Some(c) => ctx.with_correlation(c.clone()),
            None => ctx,
        }
    }
}

/// One row's fate in pass 2.
// A command lives for one decision; boxing its settings would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Row {
    Contact(u64, ContactData),
    Rejected(Vec<RowProblem>),
}

fn file_problem(code: &str, row: u64, message: impl Into<String>) -> RowProblem {
    RowProblem::new(row, None, code, message)
}

/// Pass 1. `Ok(Err(problem))` is a file-level problem; `Err` an I/O failure.
fn check_file(job: &ImportJob, limits: &ImportLimits) -> std::io::Result<Result<u64, RowProblem>> {
    let size = std::fs::metadata(&job.path)?.len();
    if size == 0 {
        return Ok(Err(file_problem("empty_file", 0, "the file is empty")));
    }
    let mut rows = 0u64;
    let outcome = match job.format {
        ImportFormat::Csv => each_csv_record(job, limits, |_, _| {
            rows += 1;
            Ok(())
        }),
        ImportFormat::Ndjson => each_ndjson_line(job, limits, |_, _| {
            rows += 1;
            Ok(())
        }),
        ImportFormat::Json => each_json_element(job, |_, _| {
            rows += 1;
            Ok(())
        }),
    }?;
    Ok(match outcome {
        Err(p) => Err(p),
        Ok(()) if rows == 0 => Err(file_problem("empty_file", 0, "the file has no contact rows")),
        Ok(()) => Ok(rows),
    })
}

type Stop = Result<(), RowProblem>;

/// Calls `f(row number, fields)` for every record; structural problems stop the walk.
fn each_csv_record(
    job: &ImportJob,
    limits: &ImportLimits,
    mut f: impl FnMut(u64, Result<Vec<&str>, RowProblem>) -> Stop,
) -> std::io::Result<Stop> {
    let mut reader =
        csv::ReaderBuilder::new().flexible(true).from_reader(BufReader::new(File::open(&job.path)?));
    let headers = match reader.byte_headers() {
        Ok(h) => h.clone(),
        Err(e) => return Ok(Err(csv_problem(e))),
    };
    let Ok(headers): Result<Vec<String>, _> =
        headers.iter().map(|h| std::str::from_utf8(h).map(str::to_owned)).collect()
    else {
        return Ok(Err(file_problem(
            "invalid_encoding",
            1,
            "the header row is not UTF-8 text; save the file as UTF-8",
        )));
    };
    let layout = match CsvLayout::new(&headers, &job.mapping) {
        Ok(l) => l,
        Err(p) => return Ok(Err(p)),
    };
    let mut record = csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => return Ok(Ok(())),
            Ok(true) => {}
            Err(e) => return Ok(Err(csv_problem(e))),
        }
        let row = record.position().map_or(0, |p| p.line());
        if record.as_slice().len() > limits.max_line_bytes {
            return Ok(Err(file_problem(
                "line_too_long",
                row,
                format!("row {row} is longer than {} bytes; is this a contact file?", limits.max_line_bytes),
            )));
        }
        let Ok(text) = std::str::from_utf8(record.as_slice()) else {
            return Ok(Err(file_problem(
                "invalid_encoding",
                row,
                format!("row {row} is not UTF-8 text; save the file as UTF-8"),
            )));
        };
        if text.trim().is_empty() && record.len() <= 1 {
            continue;
        }
        let fields: Vec<&str> = record.iter().map(|b| std::str::from_utf8(b).unwrap_or_default()).collect();
        let shaped = if fields.len() != layout.width() {
            Err(RowProblem::new(
                row,
                None,
                "wrong_field_count",
                format!("{} fields where the header has {}", fields.len(), layout.width()),
            ))
        } else {
            Ok(fields)
        };
        if let Err(p) = f(row, shaped) {
            return Ok(Err(p));
        }
    }
}

fn csv_problem(e: csv::Error) -> RowProblem {
    let row = e.position().map_or(0, |p| p.line());
    match e.kind() {
        csv::ErrorKind::Utf8 { .. } => {
            file_problem("invalid_encoding", row, "the file is not UTF-8 text; save it as UTF-8")
        }
        _ => file_problem("invalid_csv", row, format!("not a readable CSV file: {e}")),
    }
}

fn each_ndjson_line(
    job: &ImportJob,
    limits: &ImportLimits,
    mut f: impl FnMut(u64, Result<Value, RowProblem>) -> Stop,
) -> std::io::Result<Stop> {
    let mut reader = BufReader::new(File::open(&job.path)?);
    let mut line = Vec::new();
    let mut row = 0u64;
    loop {
        line.clear();
        // Reads at most one byte past the limit, so an endless line never fills memory.
        let n = (&mut reader).take(limits.max_line_bytes as u64 + 1).read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(Ok(()));
        }
        row += 1;
        if line.len() > limits.max_line_bytes {
            return Ok(Err(file_problem(
                "line_too_long",
                row,
                format!("line {row} is longer than {} bytes", limits.max_line_bytes),
            )));
        }
        let Ok(text) = std::str::from_utf8(&line) else {
            return Ok(Err(file_problem("invalid_encoding", row, format!("line {row} is not UTF-8 text"))));
        };
        if text.trim().is_empty() {
            continue;
        }
        let value = serde_json::from_str::<Value>(text)
            .map_err(|e| RowProblem::new(row, None, "invalid_json", format!("not a JSON object: {e}")));
        if let Err(p) = f(row, value) {
            return Ok(Err(p));
        }
    }
}

struct Each<'f, F>(&'f mut F, &'f mut Option<RowProblem>);

impl<'de, F: FnMut(u64, Result<Value, RowProblem>) -> Stop> Visitor<'de> for Each<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON array of contact objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut row = 0;
        while let Some(value) = seq.next_element::<Value>()? {
            row += 1;
            if let Err(p) = (self.0)(row, Ok(value)) {
                *self.1 = Some(p);
                return Err(de::Error::custom("stopped"));
            }
        }
        Ok(())
    }
}

impl<'de, F: FnMut(u64, Result<Value, RowProblem>) -> Stop> DeserializeSeed<'de> for Each<'_, F> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

/// A JSON array read element by element (`serde_json`'s streaming reader), never whole.
fn each_json_element(
    job: &ImportJob,
    mut f: impl FnMut(u64, Result<Value, RowProblem>) -> Stop,
) -> std::io::Result<Stop> {
    let mut de = serde_json::Deserializer::from_reader(BufReader::new(File::open(&job.path)?));
    let mut stopped = None;
    let result = Each(&mut f, &mut stopped).deserialize(&mut de).and_then(|()| de.end());
    if let Some(p) = stopped {
        return Ok(Err(p));
    }
    Ok(match result {
        Ok(()) => Ok(()),
        Err(e) if e.is_io() => return Err(std::io::Error::other(e)),
        Err(e) => Err(file_problem(
            "invalid_json",
            e.line() as u64,
            format!("not a JSON array of contacts (line {}, column {}): {e}", e.line(), e.column()),
        )),
    })
}

/// Pass 2, on a blocking thread: rows → contact data, in batches sent to the async side.
fn read_rows(job: &ImportJob, limits: &ImportLimits, tx: mpsc::Sender<Vec<Row>>) -> std::io::Result<Stop> {
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut batch = Vec::with_capacity(limits.batch_size);
    let region = job.default_region.clone();
    let list = job.contact_list.clone();
    let mut push =
        |row: u64, input: Result<kraliki_domain::contact::ContactInput, Vec<RowProblem>>| -> Stop {
            let outcome = match input.and_then(|i| {
                i.parse(region.as_deref()).map_err(|problems| {
                    problems
                        .into_iter()
                        .map(|p| RowProblem::new(row, Some(&p.field), p.code, p.message))
                        .collect()
                })
            }) {
                Ok(mut data) => match seen.get(&data.phone_number) {
                    Some(first) => Row::Rejected(vec![RowProblem::new(
                        row,
                        Some("phone_number"),
                        "duplicate_phone",
                        format!("{} is already on row {first} of this file", data.phone_number),
                    )]),
                    None => {
                        seen.insert(data.phone_number.clone(), row);
                        if let Some(l) = &list {
                            let l = l.trim().to_lowercase();
                            if !l.is_empty() && !data.lists.contains(&l) {
                                data.lists.push(l);
                            }
                        }
                        Row::Contact(row, data)
                    }
                },
                Err(problems) => Row::Rejected(problems),
            };
            batch.push(outcome);
            if batch.len() >= limits.batch_size {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(limits.batch_size));
                if tx.blocking_send(full).is_err() {
                    return Err(file_problem("interrupted", row, "the import was stopped"));
                }
            }
            Ok(())
        };
    let stop = match job.format {
        ImportFormat::Csv => {
            let layout_headers = {
                let mut r = csv::ReaderBuilder::new()
                    .flexible(true)
                    .from_reader(BufReader::new(File::open(&job.path)?));
                r.headers().map(|h| h.iter().map(str::to_owned).collect::<Vec<_>>()).unwrap_or_default()
            };
            let layout = match CsvLayout::new(&layout_headers, &job.mapping) {
                Ok(l) => l,
                Err(p) => return Ok(Err(p)),
            };
            each_csv_record(job, limits, |row, fields| match fields {
                Ok(fields) => push(row, layout.input(row, fields.into_iter())),
                Err(p) => push(row, Err(vec![p])),
            })?
        }
        ImportFormat::Ndjson => each_ndjson_line(job, limits, |row, v| {
            push(row, v.map_err(|p| vec![p]).and_then(|v| json_input(row, v)))
        })?,
        ImportFormat::Json => each_json_element(job, |row, v| {
            push(row, v.map_err(|p| vec![p]).and_then(|v| json_input(row, v)))
        })?,
    };
    if stop.is_ok() && !batch.is_empty() && tx.blocking_send(batch).is_err() {
        return Ok(Err(file_problem("interrupted", 0, "the import was stopped")));
    }
    Ok(stop)
}

/// How many imports a tenant may have waiting; one more is refused (`QueueFull`).
pub const MAX_QUEUED_PER_TENANT: i64 = 20;

/// An upload another instance took, not yet reachable here, is left to that instance this
/// long; then it is failed with the reason (its spool is not shared).
const UNREACHABLE_AFTER: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(
        "this company has {MAX_QUEUED_PER_TENANT} imports waiting already; try again when one has finished"
    )]
    QueueFull,
    #[error(transparent)]
    Command(#[from] crate::DispatchError<kraliki_domain::contact_import::ContactImportError>),
    #[error(transparent)]
    Store(#[from] sqlx::Error),
}

/// The import queue: imports are queued as rows of `import_jobs` and run by whichever
/// instance's worker takes them — one import per tenant at a time (so two imports of a tenant
/// never race on duplicate detection), tenants served in turn by their oldest waiting import,
/// at most [`MAX_QUEUED_PER_TENANT`] waiting per tenant.
#[derive(Clone)]
pub struct Importer {
    dispatcher: Dispatcher,
    pool: PgPool,
    wake: Wake,
    limits: ImportLimits,
    queued: std::sync::Arc<tokio::sync::Notify>,
}

impl Importer {
    /// Starts this instance's worker; it runs until `shutdown`.
    pub fn start(
        dispatcher: Dispatcher,
        pool: PgPool,
        wake: Wake,
        limits: ImportLimits,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Self {
        let importer = Self { dispatcher, pool, wake, limits, queued: Default::default() };
        let worker = importer.clone();
        tokio::spawn(async move { worker.work(shutdown).await });
        importer
    }

    pub fn limits(&self) -> &ImportLimits {
        &self.limits
    }

    /// Records the import as started and queues it. The file must already be spooled.
    pub async fn submit(
        &self,
        job: ImportJob,
        file_name: Option<String>,
        size_bytes: u64,
    ) -> Result<Option<i64>, SubmitError> {
        let waiting: i64 =
            sqlx::query_scalar("SELECT count(*) FROM import_jobs WHERE tenant_id = $1 AND state = 'queued'")
                .bind(job.tenant)
                .fetch_one(&self.pool)
                .await?;
        if waiting >= MAX_QUEUED_PER_TENANT {
            return Err(SubmitError::QueueFull);
        }
        let command = ContactImportCommand::StartImport {
            format: job.format,
            file_name,
            size_bytes,
            contact_list: job.contact_list.clone(),
            default_region: job.default_region.clone(),
            mapping: job.mapping.clone(),
            at: Utc::now(),
        };
        let outcome =
            self.dispatcher.execute::<ContactImport>(&job.id.to_string(), command, &job.context()).await?;
        sqlx::query(
            "INSERT INTO import_jobs (import_id, tenant_id, job, spool_path, state) VALUES ($1, $2, $3, $4, 'queued') \
             ON CONFLICT (import_id) DO NOTHING",
        )
        .bind(job.id)
        .bind(job.tenant)
        .bind(serde_json::to_value(&job).map_err(|e| sqlx::Error::Protocol(e.to_string()))?)
        .bind(job.path.display().to_string())
        .execute(&self.pool)
        .await?;
        self.queued.notify_one();
        Ok(outcome.position)
    }

    async fn work(self, shutdown: tokio_util::sync::CancellationToken) {
        let worker = Worker {
            dispatcher: self.dispatcher.clone(),
            pool: self.pool.clone(),
            wake: self.wake.clone(),
            limits: self.limits.clone(),
        };
        while !shutdown.is_cancelled() {
            let woken = self.queued.notified();
            let ran = match worker.take_next().await {
                Ok(Some((job, lock))) => {
                    let id = job.id;
                    if let Err(e) = worker.run(job, lock).await {
                        tracing::error!(import = %id, error = %e, "contact import failed");
                    }
                    true
                }
                Ok(None) => false,
                Err(error) => {
                    tracing::warn!(%error, "could not take an import from the queue");
                    false
                }
            };
            if ran {
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = woken => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }
}

struct Worker {
    dispatcher: Dispatcher,
    pool: PgPool,
    wake: Wake,
    limits: ImportLimits,
}

fn lock_key(import: Uuid) -> i64 {
    let b = import.as_u128();
    (b as i64) ^ ((b >> 64) as i64)
}

async fn release_tenant(lock: &mut sqlx::PgConnection, tenant: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_unlock($1)").bind(tenant_key(tenant)).execute(lock).await?;
    Ok(())
}

fn tenant_key(tenant: Uuid) -> i64 {
    lock_key(tenant) ^ 0x4b52_4c4b_494d_5054 // "KRLKIMPT": tenants' locks apart from imports'
}

impl Worker {
    /// Takes the oldest queued import of a tenant none of whose imports is running, locking the
    /// import (recovery leaves a locked one alone) and its tenant on one detached session.
    async fn take_next(&self) -> anyhow::Result<Option<(ImportJob, sqlx::PgConnection)>> {
        let candidates: Vec<(Uuid, Uuid, serde_json::Value, String, chrono::DateTime<Utc>)> = sqlx::query_as(
            "SELECT DISTINCT ON (tenant_id) import_id, tenant_id, job, spool_path, queued_at FROM import_jobs j \
             WHERE state = 'queued' AND NOT EXISTS \
               (SELECT 1 FROM import_jobs r WHERE r.tenant_id = j.tenant_id AND r.state = 'running') \
             ORDER BY tenant_id, queued_at LIMIT 50",
        )
        .fetch_all(&self.pool)
        .await?;
        if candidates.is_empty() {
            return Ok(None);
        }
        // A session of its own: the locks live as long as the import runs.
        let mut lock = self.pool.acquire().await?.detach();
        let mut candidates = candidates;
        candidates.sort_by_key(|c| c.4);
        for (id, tenant, job, spool, queued_at) in candidates {
            let tenant_free: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(tenant_key(tenant))
                .fetch_one(&mut lock)
                .await?;
            if !tenant_free {
                continue;
            }
            let job: ImportJob = serde_json::from_value(job)?;
            if !std::path::Path::new(&spool).exists() {
                // Another instance's upload: its own worker runs it — unless it never does.
                if Utc::now() - queued_at > UNREACHABLE_AFTER {
                    self.fail_unreachable(&job).await?;
                }
                release_tenant(&mut lock, tenant).await?;
                continue;
            }
            let claimed = sqlx::query(
                "UPDATE import_jobs SET state = 'running', started_at = now() WHERE import_id = $1 AND state = 'queued'",
            )
            .bind(id)
            .execute(&mut lock)
            .await?;
            if claimed.rows_affected() == 1 {
                sqlx::query("SELECT pg_advisory_lock($1)").bind(lock_key(id)).execute(&mut lock).await?;
                return Ok(Some((job, lock)));
            }
            release_tenant(&mut lock, tenant).await?;
        }
        Ok(None)
    }

    async fn fail_unreachable(&self, job: &ImportJob) -> anyhow::Result<()> {
        let command = ContactImportCommand::FailImport {
            code: "spool_unreachable".into(),
            message: "the upload waits on another server's spool, which has not run it; configure a spool directory all servers share (KRALIKI_IMPORTS__SPOOL_DIR), or upload again".into(),
            row: None,
            at: Utc::now(),
        };
        match self.dispatcher.execute::<ContactImport>(&job.id.to_string(), command, &job.context()).await {
            Ok(_) | Err(crate::DispatchError::Rejected(_)) => {}
            Err(e) => return Err(anyhow::anyhow!("{e}")),
        }
        sqlx::query("UPDATE import_jobs SET state = 'done', finished_at = now() WHERE import_id = $1")
            .bind(job.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn run(&self, job: ImportJob, mut lock: sqlx::PgConnection) -> anyhow::Result<()> {
        // The import's and its tenant's locks are held on `lock` while the import runs:
        // recovery at another process's start leaves it alone, and no other import of the
        // tenant starts.
        let result = self.import(&job).await;
        let _ = std::fs::remove_file(&job.path);
        let ctx = job.context();
        let at = Utc::now();
        let last = match result {
            Ok(Ok(totals)) => {
                let command = ContactImportCommand::CompleteImport { totals, at };
                self.dispatcher.execute::<ContactImport>(&job.id.to_string(), command, &ctx).await
            }
            Ok(Err(p)) => {
                let command = ContactImportCommand::FailImport {
                    code: p.code,
                    message: p.message,
                    row: (p.row > 0).then_some(p.row),
                    at,
                };
                self.dispatcher.execute::<ContactImport>(&job.id.to_string(), command, &ctx).await
            }
            Err(e) => {
                tracing::error!(import = %job.id, error = %e, "contact import stopped");
                let command = ContactImportCommand::FailImport {
                    code: "interrupted".into(),
                    message: "the import stopped before the end; nothing of it was kept".into(),
                    row: None,
                    at,
                };
                self.dispatcher.execute::<ContactImport>(&job.id.to_string(), command, &ctx).await
            }
        };
        let _ =
            sqlx::query("UPDATE import_jobs SET state = 'done', finished_at = now() WHERE import_id = $1")
                .bind(job.id)
                .execute(&mut lock)
                .await;
        let _ = sqlx::query("SELECT pg_advisory_unlock($1), pg_advisory_unlock($2)")
            .bind(lock_key(job.id))
            .bind(tenant_key(job.tenant))
            .execute(&mut lock)
            .await;
        let _ = sqlx::Connection::close(lock).await;
        let outcome = last.map_err(|e| anyhow::anyhow!("recording the import's end: {e}"))?;
        // The next import of this process checks duplicates against these contacts.
        if let Some(position) = outcome.position {
            let _ = kraliki_projections::position::wait_for(
                &self.pool,
                &self.wake,
                kraliki_projections::contact::NAME,
                position,
                Duration::from_secs(60),
            )
            .await;
        }
        Ok(())
    }

    async fn import(&self, job: &ImportJob) -> anyhow::Result<Result<ImportTotals, RowProblem>> {
        let (checked_job, limits) = (job.clone(), self.limits.clone());
        let checked = tokio::task::spawn_blocking(move || check_file(&checked_job, &limits)).await??;
        let total_rows = match checked {
            Ok(rows) => rows,
            Err(problem) => return Ok(Err(problem)),
        };
        let ctx = job.context();
        self.dispatcher
            .execute::<ContactImport>(
                &job.id.to_string(),
                ContactImportCommand::MarkValidated { total_rows, at: Utc::now() },
                &ctx,
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;

        let (tx, mut rx) = mpsc::channel::<Vec<Row>>(2);
        let (reader_job, limits) = (job.clone(), self.limits.clone());
        let reader = tokio::task::spawn_blocking(move || read_rows(&reader_job, &limits, tx));
        let mut totals = ImportTotals::default();
        while let Some(rows) = rx.recv().await {
            totals.batches += 1;
            let batch = totals.batches;
            let mut contacts = Vec::new();
            let mut rejected = Vec::new();
            for row in rows {
                match row {
                    Row::Contact(row, data) => {
                        contacts.push(ImportedContact { id: Uuid::now_v7(), row, data })
                    }
                    Row::Rejected(problems) => rejected.extend(problems),
                }
            }
            let phones: Vec<String> = contacts.iter().map(|c| c.data.phone_number.clone()).collect();
            let (existing, listed) =
                kraliki_projections::contact::known_numbers(&self.pool, job.tenant, &phones).await?;
            if !existing.is_empty() {
                let existing: std::collections::HashSet<String> = existing.into_iter().collect();
                contacts.retain(|c| {
                    let duplicate = existing.contains(&c.data.phone_number);
                    if duplicate {
                        rejected.push(RowProblem::new(
                            c.row,
                            Some("phone_number"),
                            "duplicate_phone",
                            format!("{} is already a contact", c.data.phone_number),
                        ));
                    }
                    !duplicate
                });
                rejected.sort_by_key(|p| p.row);
            }
            for c in &mut contacts {
                if listed.contains(&c.data.phone_number) {
                    c.data.do_not_call = true;
                }
            }
            let mut rows_rejected: Vec<u64> = rejected.iter().map(|p| p.row).collect();
            rows_rejected.dedup();
            totals.successful += contacts.len() as u64;
            totals.failed += rows_rejected.len() as u64;
            totals.duplicates += rejected.iter().filter(|p| p.code == "duplicate_phone").count() as u64;
            totals.do_not_call += contacts.iter().filter(|c| c.data.do_not_call).count() as u64;
            let command = ContactBatchCommand::RecordBatch {
                import_id: job.id,
                batch,
                contacts,
                rejected,
                at: Utc::now(),
            };
            self.dispatcher
                .execute::<ContactBatch>(&ContactBatch::stream_id(job.id, batch), command, &ctx)
                .await
                .map_err(|e| anyhow::anyhow!("recording batch {batch}: {e}"))?;
        }
        match reader.await?? {
            Ok(()) => {}
            Err(problem) => return Ok(Err(problem)),
        }
        totals.total = totals.successful + totals.failed;
        Ok(Ok(totals))
    }
}

/// Fails imports whose process is gone (no one holds their lock): their contacts are dropped
/// by the projection, so a crash never leaves an import half done.
pub async fn recover_unfinished(dispatcher: &Dispatcher, pool: &PgPool) -> anyhow::Result<usize> {
    let mut failed = 0;
    for (id, tenant) in kraliki_projections::contact_import::unfinished_imports(pool).await? {
        let mut conn = pool.acquire().await?;
        let free: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(lock_key(id))
            .fetch_one(&mut *conn)
            .await?;
        if !free {
            continue;
        }
        let ctx = CommandContext::new(tenant.to_string(), "system:import-recovery");
        let command = ContactImportCommand::FailImport {
            code: "interrupted".into(),
            message: "the server stopped during the import; nothing of it was kept — upload the file again"
                .into(),
            row: None,
            at: Utc::now(),
        };
        // A queued import is not unfinished work of a dead process: it waits for a worker.
        let queued: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM import_jobs WHERE import_id = $1 AND state = 'queued')",
        )
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
        if queued {
            sqlx::query("SELECT pg_advisory_unlock($1)").bind(lock_key(id)).execute(&mut *conn).await?;
            continue;
        }
        let result = dispatcher.execute::<ContactImport>(&id.to_string(), command, &ctx).await;
        sqlx::query("UPDATE import_jobs SET state = 'done', finished_at = now() WHERE import_id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        sqlx::query("SELECT pg_advisory_unlock($1)").bind(lock_key(id)).execute(&mut *conn).await?;
        match result {
            Ok(_) => failed += 1,
            Err(crate::DispatchError::Rejected(_)) => {}
            Err(e) => return Err(anyhow::anyhow!("{e}")),
        }
    }
    Ok(failed)
}
