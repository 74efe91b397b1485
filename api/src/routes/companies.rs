//! `/api/v1/companies`: the tenant companies. Writes are commands on the Company aggregate;
//! reads come from the `company_view` projection.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use kraliki_commands::Outcome;
use kraliki_domain::company::{Company, CompanyCommand, CompanyProfile, ProfilePatch};
use kraliki_domain::values::{optional_text, CompanyName, CompanySize, DomainName, InvalidValue, Role};
use kraliki_projections::company::{self as view, CompanyFilter, CompanyRow, CompanySort, Cursor};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::common::{context, write_headers, Checks};
use crate::auth::AuthUser;
use crate::error::{ApiError, Code};
use crate::extract::{bad_cursor, page_limit, ApiJson, ApiQuery, IdempotencyKey, MinPosition, PathId};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, update, deactivate))
        .routes(routes!(reactivate))
        .routes(routes!(list_alias))
}

/// The template UI's unversioned path for [`list`].
#[utoipa::path(get, path = "/api/companies", tag = "companies", operation_id = "companies_list_alias", params(ListQuery),
    responses((status = 200, body = Vec<CompanyResponse>, headers(("Link" = String, description = "The next page (RFC 8288)"), ("X-Next-Cursor" = String, description = "The next page's cursor")), description = "Alias of `GET /api/v1/companies`"), (status = 400, body = crate::error::Problem, description = "Bad request (problem+json)")),
    security(("bearer" = [])))]
async fn list_alias(
    state: State<AppState>,
    user: AuthUser,
    min: MinPosition,
    q: ApiQuery<ListQuery>,
    uri: axum::extract::OriginalUri,
) -> Result<super::common::Paged<CompanyResponse>, ApiError> {
    list(state, user, min, q, uri).await
}

/// The read shape (the seed's fields plus counts, state and version).
#[derive(Debug, Serialize, ToSchema)]
pub struct CompanyResponse {
    pub id: Uuid,
    pub name: String,
    pub domain: String,
    pub size: Option<String>,
    pub industry: Option<String>,
    pub description: Option<String>,
    pub website: Option<String>,
    pub is_active: bool,
    pub user_count: i32,
    pub campaign_count: i32,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deactivated_at: Option<DateTime<Utc>>,
}

impl From<CompanyRow> for CompanyResponse {
    fn from(r: CompanyRow) -> Self {
        Self {
            id: r.id,
            name: r.name,
            domain: r.domain,
            size: r.size,
            industry: r.industry,
            description: r.description,
            website: r.website,
            is_active: r.is_active,
            user_count: r.user_count,
            campaign_count: r.campaign_count,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            deactivated_at: r.deactivated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CompanyCreateBody {
    name: String,
    domain: String,
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "small")]
    size: Option<CompanySize>,
    #[serde(default)]
    industry: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    website: Option<String>,
}

/// Absent keeps the value; `null` clears it.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Absent fields stay as they are; `null` clears an optional one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CompanyUpdateBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    domain: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    size: Option<Option<CompanySize>>,
    #[serde(default, deserialize_with = "present")]
    industry: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    website: Option<Option<String>>,
}

#[derive(Debug, Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DeactivateQuery {
    reason: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    is_active: Option<bool>,
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    sort: Option<String>,
    #[serde(default)]
    order: Option<String>,
    #[serde(default)]
    #[allow(dead_code)] // read by `MinPosition`; listed so it is not an unknown parameter
    min_position: Option<i64>,
}

fn website(raw: Option<&str>) -> Result<Option<String>, InvalidValue> {
    let value = optional_text("website", raw, 300)?;
    match &value {
        Some(v) if !(v.starts_with("https://") || v.starts_with("http://")) => {
            Err(InvalidValue::new("website", "invalid_url", "must start with http:// or https://"))
        }
        _ => Ok(value),
    }
}

fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"v{version}\"")).unwrap_or(HeaderValue::from_static("\"v0\""))
}

/// Answers a write with the company as the read model now shows it, once the projection has
/// applied the command's events (bounded wait; `Kraliki-Position` tells the client where to
/// wait itself if it ran out).
async fn written(
    state: &AppState,
    id: Uuid,
    outcome: Outcome,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let id = if outcome.replayed { outcome.aggregate_id.parse().unwrap_or(id) } else { id };
    let mut response = match state.wait_for(view::NAME, outcome.position).await {
        Ok(()) => {
            let row = view::get(&state.pool, id).await?.ok_or_else(ApiError::not_found)?;
            let version = row.version;
            let mut r = (status, Json(CompanyResponse::from(row))).into_response();
            r.headers_mut().insert(header::ETAG, etag(version));
            r
        }
        Err(e) if e.code == Code::ProjectionLagging => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "id": id, "position": outcome.position, "status": "accepted" })),
        )
            .into_response(),
        Err(e) => return Err(e),
    };
    let location = (status == StatusCode::CREATED).then(|| format!("/api/v1/companies/{id}"));
    write_headers(&mut response, &outcome, location);
    Ok(response)
}

#[utoipa::path(post, path = "/api/v1/companies", tag = "companies", operation_id = "companies_create", request_body = CompanyCreateBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "A repeated key returns the first outcome")),
    responses((status = 201, body = CompanyResponse, description = "Created"), (status = 202, description = "Accepted; the read model is catching up"),
        (status = 401, body = crate::error::Problem, description = "Not authenticated (problem+json)"), (status = 403, body = crate::error::Problem, description = "Not allowed (problem+json)"), (status = 422, body = crate::error::Problem, description = "Invalid input (problem+json)")),
    security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    IdempotencyKey(key): IdempotencyKey,
    body: ApiJson<CompanyCreateBody>,
) -> Result<Response, ApiError> {
    user.require_operator("manages companies")?;
    let b = body.value;
    let mut checks = Checks::default();
    let name = checks.take(CompanyName::parse(&b.name));
    let domain = checks.take(DomainName::parse(&b.domain));
    let industry = checks.take(optional_text("industry", b.industry.as_deref(), 100));
    let description = checks.take(optional_text("description", b.description.as_deref(), 2000));
    let site = checks.take(website(b.website.as_deref()));
    checks.finish()?;
    let (Some(name), Some(domain), Some(industry), Some(description), Some(website)) =
        (name, domain, industry, description, site)
    else {
        return Err(ApiError::new(Code::ValidationFailed));
    };
    let id = Uuid::now_v7();
    let profile =
        CompanyProfile { domain: domain.as_str().to_owned(), size: b.size, industry, description, website };
    let command = CompanyCommand::CreateCompany { name, profile, at: Utc::now() };
    let ctx = context(&headers, &user, id, key, body.fingerprint);
    let outcome = state.dispatcher.execute::<Company>(&id.to_string(), command, &ctx).await?;
    written(&state, id, outcome, StatusCode::CREATED).await
}

#[utoipa::path(put, path = "/api/v1/companies/{id}", tag = "companies", operation_id = "companies_update", request_body = CompanyUpdateBody,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = CompanyResponse, description = "OK"), (status = 403, body = crate::error::Problem, description = "Not allowed (problem+json)"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)"),
        (status = 409, body = crate::error::Problem, description = "Conflict (problem+json)"), (status = 422, body = crate::error::Problem, description = "Invalid input (problem+json)")),
    security(("bearer" = [])))]
async fn update(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    PathId(id): PathId,
    IdempotencyKey(key): IdempotencyKey,
    body: ApiJson<CompanyUpdateBody>,
) -> Result<Response, ApiError> {
    user.require_company(id)?;
    user.require(&[Role::Admin])?;
    let b = body.value;
    let mut checks = Checks::default();
    let name = b.name.as_deref().map(CompanyName::parse).transpose();
    let name = checks.take(name).flatten();
    let domain = checks.take(b.domain.as_deref().map(DomainName::parse).transpose()).flatten();
    let industry = b.industry.map(|v| optional_text("industry", v.as_deref(), 100));
    let description = b.description.map(|v| optional_text("description", v.as_deref(), 2000));
    let site = b.website.map(|v| website(v.as_deref()));
    let patch = ProfilePatch {
        domain: domain.map(|d| d.as_str().to_owned()),
        size: b.size,
        industry: industry.and_then(|r| checks.take(r)),
        description: description.and_then(|r| checks.take(r)),
        website: site.and_then(|r| checks.take(r)),
    };
    checks.finish()?;
    let command = CompanyCommand::UpdateCompany { name, profile: patch, at: Utc::now() };
    let ctx = context(&headers, &user, id, key, body.fingerprint);
    let outcome = state.dispatcher.execute::<Company>(&id.to_string(), command, &ctx).await?;
    written(&state, id, outcome, StatusCode::OK).await
}

#[utoipa::path(delete, path = "/api/v1/companies/{id}", tag = "companies", operation_id = "companies_deactivate",
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header), DeactivateQuery),
    responses((status = 204, description = "Deactivated"), (status = 403, body = crate::error::Problem, description = "Not allowed (problem+json)"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)"),
        (status = 409, body = crate::error::Problem, description = "Conflict (problem+json)")),
    security(("bearer" = [])))]
async fn deactivate(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    PathId(id): PathId,
    IdempotencyKey(key): IdempotencyKey,
    ApiQuery(query): ApiQuery<DeactivateQuery>,
) -> Result<Response, ApiError> {
    user.require_company(id)?;
    user.require_operator("manages companies")?;
    let reason = optional_text("reason", query.reason.as_deref(), 500)?;
    let command = CompanyCommand::DeactivateCompany { reason, at: Utc::now() };
    let fp =
        crate::extract::fingerprint(&axum::http::Method::DELETE, &format!("/api/v1/companies/{id}"), b"");
    let ctx = context(&headers, &user, id, key, fp);
    let outcome = state.dispatcher.execute::<Company>(&id.to_string(), command, &ctx).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Some(position) = outcome.position.and_then(|p| HeaderValue::from_str(&p.to_string()).ok()) {
        response.headers_mut().insert("kraliki-position", position);
    }
    Ok(response)
}

#[utoipa::path(post, path = "/api/v1/companies/{id}/reactivate", tag = "companies", operation_id = "companies_reactivate",
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = CompanyResponse, description = "OK"), (status = 403, body = crate::error::Problem, description = "Not allowed (problem+json)"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)"),
        (status = 409, body = crate::error::Problem, description = "Conflict (problem+json)")),
    security(("bearer" = [])))]
async fn reactivate(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    PathId(id): PathId,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Response, ApiError> {
    user.require_company(id)?;
    user.require_operator("manages companies")?;
    let command = CompanyCommand::ReactivateCompany { at: Utc::now() };
    let fp = crate::extract::fingerprint(
        &axum::http::Method::POST,
        &format!("/api/v1/companies/{id}/reactivate"),
        b"",
    );
    let ctx = context(&headers, &user, id, key, fp);
    let outcome = state.dispatcher.execute::<Company>(&id.to_string(), command, &ctx).await?;
    written(&state, id, outcome, StatusCode::OK).await
}

#[utoipa::path(get, path = "/api/v1/companies/{id}", tag = "companies", operation_id = "companies_read",
    params(("id" = Uuid, Path), ("min_position" = Option<i64>, Query, description = "Wait until the read model applied this log position"),
        ("If-None-Match" = Option<String>, Header)),
    responses((status = 200, body = CompanyResponse, description = "OK"), (status = 304, description = "Not modified"),
        (status = 404, body = crate::error::Problem, description = "Not found (problem+json)"), (status = 503, body = crate::error::Problem, description = "Not ready or read model lagging (problem+json)")),
    security(("bearer" = [])))]
async fn read(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    PathId(id): PathId,
    MinPosition(min): MinPosition,
) -> Result<Response, ApiError> {
    user.require_company(id)?;
    state.wait_for(view::NAME, min).await?;
    let row = view::get(&state.pool, id).await?.ok_or_else(ApiError::not_found)?;
    let tag = etag(row.version);
    if headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == tag.as_bytes() || v == "*") {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        r.headers_mut().insert(header::ETAG, tag);
        return Ok(r);
    }
    let mut r = Json(CompanyResponse::from(row)).into_response();
    r.headers_mut().insert(header::ETAG, tag);
    Ok(r)
}

#[utoipa::path(get, path = "/api/v1/companies", tag = "companies", operation_id = "companies_list", params(ListQuery),
    responses((status = 200, body = Vec<CompanyResponse>, headers(("Link" = String, description = "The next page: `<…?cursor=…>; rel=\"next\"` (RFC 8288); absent on the last page"), ("X-Next-Cursor" = String, description = "The next page's cursor")), description = "OK"), (status = 400, body = crate::error::Problem, description = "Bad request (problem+json)"), (status = 401, body = crate::error::Problem, description = "Not authenticated (problem+json)")),
    security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    MinPosition(min): MinPosition,
    ApiQuery(q): ApiQuery<ListQuery>,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
) -> Result<super::common::Paged<CompanyResponse>, ApiError> {
    let limit = page_limit(q.limit)?;
    let sort = match q.sort.as_deref() {
        None | Some("created_at") => CompanySort::CreatedAt,
        Some("name") => CompanySort::Name,
        Some(_) => {
            return Err(ApiError::new(Code::InvalidQuery).field(
                "sort",
                "invalid",
                "one of: created_at, name",
            ))
        }
    };
    let descending = match q.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => {
            return Err(ApiError::new(Code::InvalidQuery).field("order", "invalid", "one of: asc, desc"))
        }
    };
    let cursor = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(raw) => Some(Cursor::decode(raw).ok_or_else(bad_cursor)?),
    };
    state.wait_for(view::NAME, min).await?;
    let only = (!user.is_operator()).then(|| vec![user.company_id]);
    let filter = CompanyFilter { only, is_active: q.is_active, search: q.q };
    let page =
        view::list(&state.pool, &filter, sort, descending, cursor.as_ref(), limit).await.map_err(|e| {
            if e.is::<chrono::ParseError>() {
                bad_cursor()
            } else {
                ApiError::from(e)
            }
        })?;
    let items = page.items.into_iter().map(Into::into).collect();
    Ok(super::common::Paged::new(items, page.next_cursor, &uri))
}
