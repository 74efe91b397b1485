//! Contact imports: `/api/v1/contacts/import` (CSV, JSON or NDJSON, streamed to disk and
//! imported in the background by the import queue, with progress and a per-row report),
//! `/api/v1/contacts/bulk` (the seed's JSON shape) and `/api/v1/contacts/imports…`.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use kraliki_commands::import::ImportJob;
use kraliki_domain::contact_import::{ColumnMapping, ImportFormat};
use kraliki_domain::values::PhoneNumber;
use kraliki_projections::contact::{self as view};
use kraliki_projections::contact_import::{ImportRow, ProblemRow};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::common::{invalid, MANAGERS, READERS};
use crate::auth::AuthUser;
use crate::error::{ApiError, Code};
use crate::extract::{ApiJson, ApiQuery, MinPosition, PathId};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_imports))
        .routes(routes!(import_status))
        .routes(routes!(import_report))
}

/// Uploads streamed to disk (their own size limit, no request timeout).
pub fn uploads() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(import))
}

/// The seed's JSON bulk route: read whole, so held to `imports.max_bulk_bytes`.
pub fn bulk_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(bulk))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportError {
    pub row: i64,
    pub field: Option<String>,
    pub code: String,
    /// The seed's name for the message.
    pub error: String,
}

impl From<ProblemRow> for ImportError {
    fn from(p: ProblemRow) -> Self {
        Self { row: p.row_no, field: p.field, code: p.code, error: p.message }
    }
}

/// An import's status. `total`, `successful`, `failed` and `errors` are the seed's result shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportStatus {
    pub id: Uuid,
    /// validating | importing | completed | failed
    pub status: String,
    pub format: String,
    pub file_name: Option<String>,
    pub size_bytes: i64,
    pub contact_list_id: Option<String>,
    /// Data rows in the file (known once it was checked).
    pub total: Option<i64>,
    pub processed_rows: i64,
    pub successful: i64,
    pub failed: i64,
    pub duplicates: i64,
    /// Imported, but flagged do-not-call (on the tenant's list, or so marked in the file).
    pub do_not_call: i64,
    pub progress_percent: f64,
    /// The first 100 row problems; the whole report is at `report_url`.
    pub errors: Vec<ImportError>,
    /// A file-level problem: nothing of the file was imported.
    pub error: Option<ImportError>,
    pub report_url: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

async fn import_body(state: &AppState, row: ImportRow) -> Result<ImportStatus, ApiError> {
    let errors = kraliki_projections::contact_import::problems(&state.pool, row.id, Some(100))
        .await?
        .into_iter()
        .map(ImportError::from)
        .collect();
    let progress_percent = match (row.status.as_str(), row.total_rows) {
        ("completed", _) => 100.0,
        (_, Some(total)) if total > 0 => {
            ((row.processed_rows as f64 * 1000.0 / total as f64).round() / 10.0).min(100.0)
        }
        _ => 0.0,
    };
    Ok(ImportStatus {
        id: row.id,
        status: row.status,
        format: row.format,
        file_name: row.file_name,
        size_bytes: row.size_bytes,
        contact_list_id: row.contact_list,
        total: row.total_rows,
        processed_rows: row.processed_rows,
        successful: row.successful,
        failed: row.failed,
        duplicates: row.duplicates,
        do_not_call: row.do_not_call,
        progress_percent,
        errors,
        error: row.error_code.map(|code| ImportError {
            row: row.error_row.unwrap_or(0),
            field: None,
            code,
            error: row.error_message.unwrap_or_default(),
        }),
        report_url: format!("/api/v1/contacts/imports/{}/report", row.id),
        created_at: row.created_at,
        updated_at: row.updated_at,
        finished_at: row.finished_at,
    })
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ImportQuery {
    /// csv | json | ndjson (default: from the file name or Content-Type, else csv).
    format: Option<String>,
    /// JSON object: source column → contact field, `custom:<name>` or `ignore`.
    mapping: Option<String>,
    contact_list_id: Option<String>,
    /// ISO 3166 region for numbers written without +country code.
    default_region: Option<String>,
    file_name: Option<String>,
    /// Answer when the import has finished (bounded), instead of at once with 202.
    wait: Option<bool>,
}

fn parse_format(raw: &str) -> Result<ImportFormat, ApiError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "csv" => Ok(ImportFormat::Csv),
        "json" => Ok(ImportFormat::Json),
        "ndjson" | "jsonl" => Ok(ImportFormat::Ndjson),
        _ => {
            Err(ApiError::new(Code::ValidationFailed).field("format", "invalid", "one of: csv, json, ndjson"))
        }
    }
}

fn guess_format(file_name: Option<&str>, content_type: Option<&str>) -> ImportFormat {
    let name = file_name.unwrap_or_default().to_ascii_lowercase();
    let mime = content_type.unwrap_or_default().to_ascii_lowercase();
    if name.ends_with(".ndjson")
        || name.ends_with(".jsonl")
        || mime.contains("ndjson")
        || mime.contains("jsonl")
    {
        ImportFormat::Ndjson
    } else if name.ends_with(".json") || mime.starts_with("application/json") {
        ImportFormat::Json
    } else {
        ImportFormat::Csv
    }
}

fn parse_mapping(raw: Option<&str>) -> Result<ColumnMapping, ApiError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(ColumnMapping::default()),
        Some(s) => serde_json::from_str(s).map_err(|_| {
            ApiError::new(Code::ValidationFailed).field(
                "mapping",
                "invalid",
                "a JSON object of source column → contact field (or custom:<name>, ignore)",
            )
        }),
    }
}

/// Streams chunks to the spool file, refusing more than the configured size.
struct Spool {
    path: std::path::PathBuf,
    file: tokio::fs::File,
    bytes: u64,
    max: u64,
}

impl Spool {
    async fn create(state: &AppState, id: Uuid) -> Result<Self, ApiError> {
        let dir = state.settings.spool_dir();
        tokio::fs::create_dir_all(&dir).await.map_err(anyhow::Error::from)?;
        let path = dir.join(format!("{id}.upload"));
        let file = tokio::fs::File::create(&path).await.map_err(anyhow::Error::from)?;
        Ok(Self { path, file, bytes: 0, max: state.settings.imports.max_upload_bytes })
    }

    async fn write(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        self.bytes += chunk.len() as u64;
        if self.bytes > self.max {
            let _ = tokio::fs::remove_file(&self.path).await;
            return Err(ApiError::new(Code::PayloadTooLarge)
                .detail(format!("the file is larger than {} bytes", self.max)));
        }
        self.file.write_all(chunk).await.map_err(anyhow::Error::from)?;
        Ok(())
    }

    async fn finish(mut self) -> Result<(std::path::PathBuf, u64), ApiError> {
        self.file.flush().await.map_err(anyhow::Error::from)?;
        Ok((self.path, self.bytes))
    }

    async fn discard(self) {
        let _ = tokio::fs::remove_file(&self.path).await;
    }
}

fn upload_error(e: impl std::fmt::Display) -> ApiError {
    let text = e.to_string();
    if text.contains("length limit") || text.contains("too large") {
        ApiError::new(Code::PayloadTooLarge).detail(text)
    } else {
        ApiError::new(Code::InvalidBody).detail(format!("the upload could not be read: {text}"))
    }
}

struct Upload {
    path: std::path::PathBuf,
    size: u64,
    file_name: Option<String>,
    content_type: Option<String>,
    fields: ImportQuery,
}

/// A multipart form (field `file`, plus `format`, `mapping`, `contact_list_id`,
/// `default_region`), or the file itself as the body.
async fn receive(
    state: &AppState,
    id: Uuid,
    mut query: ImportQuery,
    req: Request,
) -> Result<Upload, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_default();
    let mut spool = Spool::create(state, id).await?;
    if content_type.to_ascii_lowercase().starts_with("multipart/form-data") {
        let mut form = Multipart::from_request(req, state).await.map_err(upload_error)?;
        let mut file_seen = None;
        loop {
            let field = match form.next_field().await {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    spool.discard().await;
                    return Err(upload_error(e));
                }
            };
            let name = field.name().unwrap_or_default().to_owned();
            if name == "file" {
                file_seen =
                    Some((field.file_name().map(str::to_owned), field.content_type().map(str::to_owned)));
                let mut field = field;
                loop {
                    match field.chunk().await {
                        Ok(Some(chunk)) => spool.write(&chunk).await?,
                        Ok(None) => break,
                        Err(e) => {
                            spool.discard().await;
                            return Err(upload_error(e));
                        }
                    }
                }
                continue;
            }
            let value = match field.text().await {
                Ok(v) => v,
                Err(e) => {
                    spool.discard().await;
                    return Err(upload_error(e));
                }
            };
            match name.as_str() {
                "format" => query.format = Some(value),
                "mapping" => query.mapping = Some(value),
                "contact_list_id" => query.contact_list_id = Some(value),
                "default_region" => query.default_region = Some(value),
                _ => {}
            }
        }
        let Some((file_name, file_type)) = file_seen else {
            spool.discard().await;
            return Err(ApiError::new(Code::ValidationFailed).field(
                "file",
                "required",
                "send the file in a form field named file",
            ));
        };
        let (path, size) = spool.finish().await?;
        let file_name = query.file_name.clone().or(file_name);
        return Ok(Upload { path, size, file_name, content_type: file_type, fields: query });
    }
    let mut stream = req.into_body().into_data_stream();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => spool.write(&chunk).await?,
            Err(e) => {
                spool.discard().await;
                return Err(upload_error(e));
            }
        }
    }
    let (path, size) = spool.finish().await?;
    let file_name = query.file_name.clone();
    Ok(Upload { path, size, file_name, content_type: Some(content_type), fields: query })
}

/// Waits (bounded) for an import to finish, then answers its status.
async fn import_answer(
    state: &AppState,
    user: &AuthUser,
    id: Uuid,
    wait: bool,
) -> Result<Response, ApiError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(if wait { 300 } else { 5 });
    let mut projected = state.wake.subscribe_projected();
    loop {
        projected.borrow_and_update();
        if let Some(row) =
            kraliki_projections::contact_import::get_import(&state.pool, user.company_id, id).await?
        {
            let finished = matches!(row.status.as_str(), "completed" | "failed");
            if finished || !wait {
                if finished {
                    // The contacts are another read model: answer once it holds the import too.
                    let end: Option<i64> = sqlx::query_scalar(
                        "SELECT max(global_position) FROM events WHERE aggregate_type = 'ContactImport' AND aggregate_id = $1",
                    )
                    .bind(id.to_string())
                    .fetch_one(&state.pool)
                    .await?;
                    state.wait_for(view::NAME, end).await?;
                }
                let status = if finished { StatusCode::OK } else { StatusCode::ACCEPTED };
                let mut r = (status, Json(import_body(state, row).await?)).into_response();
                if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/contacts/imports/{id}")) {
                    r.headers_mut().insert(header::LOCATION, v);
                }
                return Ok(r);
            }
        }
        if tokio::time::timeout_at(deadline, projected.changed()).await.is_err() {
            return Err(ApiError::new(Code::ProjectionLagging)
                .detail(format!("import {id} is still running; GET its status")));
        }
    }
}

async fn start_import(
    state: &AppState,
    user: &AuthUser,
    headers: &HeaderMap,
    id: Uuid,
    upload: Upload,
) -> Result<(), ApiError> {
    let fields = &upload.fields;
    let prepared = (|| {
        let format = match fields.format.as_deref() {
            Some(f) => parse_format(f)?,
            None => guess_format(upload.file_name.as_deref(), upload.content_type.as_deref()),
        };
        let mapping = parse_mapping(fields.mapping.as_deref())?;
        if let Some(r) = fields.default_region.as_deref() {
            PhoneNumber::parse("1", Some(r)).map(|_| ()).or_else(|e| {
                if e.code == "invalid_region" {
                    Err(invalid(vec![e]))
                } else {
                    Ok(())
                }
            })?;
        }
        Ok::<_, ApiError>((format, mapping))
    })();
    let (format, mapping) = match prepared {
        Ok(p) => p,
        Err(e) => {
            let _ = tokio::fs::remove_file(&upload.path).await;
            return Err(e);
        }
    };
    let job = ImportJob {
        id,
        tenant: user.company_id,
        actor: user.actor(),
        correlation_id: headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned),
        format,
        path: upload.path.clone(),
        mapping,
        contact_list: fields.contact_list_id.clone(),
        default_region: fields.default_region.clone(),
    };
    let submitted = state.importer.submit(job, upload.file_name.clone(), upload.size).await;
    if let Err(e) = submitted {
        let _ = tokio::fs::remove_file(&upload.path).await;
        return Err(e.into());
    }
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/contacts/import", tag = "contacts", operation_id = "contacts_import", params(ImportQuery),
    request_body(content = String, description = "multipart/form-data with the file in field `file` (plus optional fields format, mapping, contact_list_id, default_region), or the file itself as the body (text/csv, application/json, application/x-ndjson). CSV needs a header row; a column named phone_number (or phone, mobile, …) is required; columns other than the contact's fields go to custom_fields.",
        content_type = "multipart/form-data"),
    responses((status = 202, body = ImportStatus, description = "Accepted; GET the Location for progress"), (status = 200, body = ImportStatus, description = "Finished (with wait=true)"),
        (status = 413, body = crate::error::Problem, description = "File too large (problem+json)"), (status = 422, body = crate::error::Problem, description = "Invalid options (problem+json)")),
    security(("bearer" = [])))]
async fn import(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<ImportQuery>,
    req: Request<Body>,
) -> Result<Response, ApiError> {
    user.require(MANAGERS)?;
    let wait = query.wait.unwrap_or(false);
    let id = Uuid::now_v7();
    let upload = receive(&state, id, query, req).await?;
    start_import(&state, &user, &headers, id, upload).await?;
    import_answer(&state, &user, id, wait).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct BulkBody {
    contact_list_id: Option<String>,
    default_region: Option<String>,
    #[schema(value_type = Vec<Object>)]
    contacts: Vec<Value>,
}

/// The seed's synchronous import result.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkResult {
    pub import_id: Uuid,
    pub status: String,
    pub total: i64,
    pub successful: i64,
    pub failed: i64,
    pub errors: Vec<ImportError>,
}

#[utoipa::path(post, path = "/api/v1/contacts/bulk", tag = "contacts", operation_id = "contacts_bulk", request_body = BulkBody,
    responses((status = 200, body = BulkResult, description = "The seed's result: {total, successful, failed, errors: [{row, error}]}"),
        (status = 422, body = crate::error::Problem, description = "Invalid (problem+json)")),
    security(("bearer" = [])))]
async fn bulk(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    body: ApiJson<BulkBody>,
) -> Result<Response, ApiError> {
    user.require(MANAGERS)?;
    let b = body.value;
    if b.contacts.is_empty() {
        return Err(ApiError::new(Code::ValidationFailed).field(
            "contacts",
            "required",
            "at least one contact",
        ));
    }
    let id = Uuid::now_v7();
    let mut spool = Spool::create(&state, id).await?;
    let bytes = serde_json::to_vec(&b.contacts).map_err(anyhow::Error::from)?;
    spool.write(&bytes).await?;
    let (path, size) = spool.finish().await?;
    let upload = Upload {
        path,
        size,
        file_name: None,
        content_type: Some("application/json".into()),
        fields: ImportQuery {
            format: Some("json".into()),
            contact_list_id: b.contact_list_id,
            default_region: b.default_region,
            ..ImportQuery::default()
        },
    };
    start_import(&state, &user, &headers, id, upload).await?;
    import_answer(&state, &user, id, true).await?;
    let row = kraliki_projections::contact_import::get_import(&state.pool, user.company_id, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let mut errors: Vec<ImportError> = kraliki_projections::contact_import::problems(&state.pool, id, None)
        .await?
        .into_iter()
        .map(ImportError::from)
        .collect();
    if let Some(code) = row.error_code {
        errors.insert(
            0,
            ImportError {
                row: row.error_row.unwrap_or(0),
                field: None,
                code,
                error: row.error_message.unwrap_or_default(),
            },
        );
    }
    let total = row.total_rows.unwrap_or(b.contacts.len() as i64);
    Ok(Json(BulkResult {
        import_id: id,
        status: row.status,
        total,
        successful: row.successful,
        failed: total - row.successful,
        errors,
    })
    .into_response())
}

#[utoipa::path(get, path = "/api/v1/contacts/imports", tag = "contacts", operation_id = "contacts_imports", 
    responses((status = 200, body = Vec<ImportStatus>, description = "The latest 100 imports, newest first")), security(("bearer" = [])))]
async fn list_imports(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<Vec<ImportStatus>>, ApiError> {
    user.require(READERS)?;
    let mut out = Vec::new();
    for row in kraliki_projections::contact_import::list_imports(&state.pool, user.company_id, 100).await? {
        out.push(import_body(&state, row).await?);
    }
    Ok(Json(out))
}

#[utoipa::path(get, path = "/api/v1/contacts/imports/{id}", tag = "contacts", operation_id = "contacts_import_status", params(("id" = Uuid, Path)),
    responses((status = 200, body = ImportStatus, description = "Progress and the first row problems"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)")),
    security(("bearer" = [])))]
async fn import_status(
    State(state): State<AppState>,
    user: AuthUser,
    PathId(id): PathId,
    MinPosition(min): MinPosition,
) -> Result<Json<ImportStatus>, ApiError> {
    user.require(READERS)?;
    state.wait_for(kraliki_projections::contact_import::NAME, min).await?;
    let row = kraliki_projections::contact_import::get_import(&state.pool, user.company_id, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(import_body(&state, row).await?))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ReportQuery {
    /// csv (default) | json
    format: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/contacts/imports/{id}/report", tag = "contacts", operation_id = "contacts_import_report", params(("id" = Uuid, Path), ReportQuery),
    responses((status = 200, description = "Every row problem: CSV `row,field,code,message` (or JSON)", content_type = "text/csv"),
        (status = 404, body = crate::error::Problem, description = "Not found (problem+json)")),
    security(("bearer" = [])))]
async fn import_report(
    State(state): State<AppState>,
    user: AuthUser,
    PathId(id): PathId,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Response, ApiError> {
    user.require(READERS)?;
    let row = kraliki_projections::contact_import::get_import(&state.pool, user.company_id, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let mut problems = kraliki_projections::contact_import::problems(&state.pool, id, None).await?;
    if let Some(code) = row.error_code {
        problems.insert(
            0,
            ProblemRow {
                row_no: row.error_row.unwrap_or(0),
                field: None,
                code,
                message: row.error_message.unwrap_or_default(),
            },
        );
    }
    match q.format.as_deref().unwrap_or("csv") {
        "json" => Ok(Json(problems.into_iter().map(ImportError::from).collect::<Vec<_>>()).into_response()),
        "csv" => {
            let mut out = csv::Writer::from_writer(Vec::new());
            out.write_record(["row", "field", "code", "message"]).map_err(anyhow::Error::from)?;
            for p in problems {
                out.write_record([p.row_no.to_string(), p.field.unwrap_or_default(), p.code, p.message])
                    .map_err(anyhow::Error::from)?;
            }
            let bytes = out.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut r = bytes.into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
            if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"import-{id}-report.csv\""))
            {
                r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
            }
            Ok(r)
        }
        _ => Err(ApiError::new(Code::InvalidQuery).field("format", "invalid", "csv or json")),
    }
}

// Do-not-call list --------------------------------------------------------------------------
