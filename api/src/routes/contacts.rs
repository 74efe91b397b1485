//! `/api/v1/contacts`: contacts one by one, and a contact's own do-not-call flag. Imports are
//! in `imports`, the tenant-wide do-not-call list in `do_not_call`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use kraliki_commands::Outcome;
use kraliki_domain::contact::{Contact, ContactCommand, ContactInput};
use kraliki_domain::do_not_call::{DoNotCallCommand, DoNotCallNumber};
use kraliki_domain::values::{PhoneNumber, Role};
use kraliki_projections::company::Cursor;
use kraliki_projections::contact::{self as view, ContactQuery, ContactRow};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::common::{invalid, tenant_context, write_headers, written_id, MANAGERS, READERS};
use crate::auth::AuthUser;
use crate::error::{ApiError, Code};
use crate::extract::{bad_cursor, page_limit, ApiJson, ApiQuery, IdempotencyKey, MinPosition, PathId};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, update, patch, delete))
        .routes(routes!(mark_dnc, clear_dnc))
}

/// Who may add to the do-not-call list: anyone who talks to callers.
pub(crate) const DNC_WRITERS: &[Role] = &[Role::Agent, Role::Supervisor, Role::Admin];

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
    /// Name, number or e-mail contains.
    q: Option<String>,
    /// pending | calling | completed | failed | do_not_call
    status: Option<String>,
    tag: Option<String>,
    /// A contact list (`contact_list_id` of an import).
    list: Option<String>,
    import_id: Option<Uuid>,
    do_not_call: Option<bool>,
    #[allow(dead_code)] // read by `MinPosition`
    min_position: Option<i64>,
}

fn duplicate(phone: &str) -> ApiError {
    ApiError::new(Code::AlreadyExists).detail(format!("a contact with number {phone} exists")).field(
        "phone_number",
        "duplicate_phone",
        "another contact has this number",
    )
}

async fn owned(state: &AppState, user: &AuthUser, id: Uuid) -> Result<ContactRow, ApiError> {
    view::get(&state.pool, user.company_id, id).await?.ok_or_else(ApiError::not_found)
}

async fn answer(
    state: &AppState,
    user: &AuthUser,
    id: Uuid,
    outcome: &Outcome,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let id = written_id(outcome, id);
    state.wait_for(view::NAME, outcome.position).await?;
    let row = owned(state, user, id).await?;
    let mut r = (status, Json(row)).into_response();
    write_headers(&mut r, outcome, (status == StatusCode::CREATED).then(|| format!("/api/v1/contacts/{id}")));
    Ok(r)
}

fn take_text(body: &mut Map<String, Value>, key: &'static str) -> Result<Option<String>, ApiError> {
    match body.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::new(Code::InvalidBody).field(key, "invalid_type", "must be a string")),
    }
}

fn contact_input(body: Map<String, Value>) -> Result<ContactInput, ApiError> {
    serde_path_to_error::deserialize(Value::Object(body)).map_err(|e| {
        let field = e.path().to_string();
        let message = e.into_inner().to_string();
        let code = if message.starts_with("unknown field") { "unknown_field" } else { "invalid_type" };
        ApiError::new(Code::InvalidBody).detail(message.clone()).field(field, code, message)
    })
}

#[utoipa::path(post, path = "/api/v1/contacts", tag = "contacts", operation_id = "contacts_create",
    request_body(content = ContactInput, description = "A contact; `default_region` (ISO 3166, e.g. US) reads national numbers; `contact_list_id` adds it to a contact list."),
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = ContactRow, description = "Created"), (status = 409, body = crate::error::Problem, description = "Duplicate number (problem+json)"),
        (status = 422, body = crate::error::Problem, description = "Invalid (problem+json)")),
    security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    IdempotencyKey(key): IdempotencyKey,
    body: ApiJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    user.require(MANAGERS)?;
    let mut b = body.value;
    let region = take_text(&mut b, "default_region")?;
    let list = take_text(&mut b, "contact_list_id")?;
    let mut input = contact_input(b)?;
    if let Some(list) = list {
        input.lists.push(list);
    }
    let mut data = input.parse(region.as_deref()).map_err(invalid)?;
    let id = Uuid::now_v7();
    let ctx = tenant_context(&headers, &user, key, body.fingerprint);
    let prepare = async {
        if view::find_by_phone(&state.pool, user.company_id, &data.phone_number).await?.is_some() {
            return Err(duplicate(&data.phone_number));
        }
        if kraliki_projections::do_not_call::is_dnc(&state.pool, user.company_id, &data.phone_number).await? {
            data.do_not_call = true;
        }
        Ok(ContactCommand::CreateContact { data, at: Utc::now() })
    };
    let outcome = super::common::create::<Contact>(&state, &ctx, id, prepare).await?;
    answer(&state, &user, id, &outcome, StatusCode::CREATED).await
}

#[utoipa::path(get, path = "/api/v1/contacts", tag = "contacts", operation_id = "contacts_list", params(ListQuery),
    responses((status = 200, body = Vec<ContactRow>, headers(("Link" = String, description = "The next page: `<…?cursor=…>; rel=\"next\"` (RFC 8288); absent on the last page"), ("X-Next-Cursor" = String, description = "The next page's cursor")), description = "Oldest first")), security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    MinPosition(min): MinPosition,
    ApiQuery(q): ApiQuery<ListQuery>,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
) -> Result<super::common::Paged<ContactRow>, ApiError> {
    user.require(READERS)?;
    let limit = page_limit(q.limit)?;
    let cursor = q.cursor.as_deref().map(|c| Cursor::decode(c).ok_or_else(bad_cursor)).transpose()?;
    state.wait_for(view::NAME, min).await?;
    let query = ContactQuery {
        search: q.q,
        status: q.status,
        tag: q.tag,
        list: q.list,
        import_id: q.import_id,
        do_not_call: q.do_not_call,
    };
    let page = view::list(&state.pool, user.company_id, &query, cursor.as_ref(), limit)
        .await
        .map_err(|e| if e.is::<chrono::ParseError>() { bad_cursor() } else { ApiError::from(e) })?;
    Ok(super::common::Paged::new(page.items, page.next_cursor, &uri))
}

#[utoipa::path(get, path = "/api/v1/contacts/{id}", tag = "contacts", operation_id = "contacts_read", params(("id" = Uuid, Path)),
    responses((status = 200, body = ContactRow, description = "OK"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)")),
    security(("bearer" = [])))]
async fn read(
    State(state): State<AppState>,
    user: AuthUser,
    PathId(id): PathId,
    MinPosition(min): MinPosition,
) -> Result<Json<ContactRow>, ApiError> {
    user.require(READERS)?;
    state.wait_for(view::NAME, min).await?;
    Ok(Json(owned(&state, &user, id).await?))
}

/// The data an import gave a contact whose own stream is still empty.
fn known(row: &ContactRow) -> Option<kraliki_domain::contact::ContactData> {
    (row.version == 0).then(|| row.data())
}

async fn change(
    state: AppState,
    user: AuthUser,
    headers: HeaderMap,
    id: Uuid,
    key: Option<String>,
    body: ApiJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    user.require(MANAGERS)?;
    let row = owned(&state, &user, id).await?;
    if let Some(Value::String(raw)) = body.value.get("phone_number") {
        let phone = PhoneNumber::parse(raw, None).map_err(|e| invalid(vec![e]))?;
        if phone.as_str() != row.phone_number
            && view::find_by_phone(&state.pool, user.company_id, phone.as_str()).await?.is_some()
        {
            return Err(duplicate(phone.as_str()));
        }
    }
    let ctx = tenant_context(&headers, &user, key, body.fingerprint);
    let command = ContactCommand::UpdateContact { patch: body.value, known: known(&row), at: Utc::now() };
    let outcome = state.dispatcher.execute::<Contact>(&id.to_string(), command, &ctx).await?;
    answer(&state, &user, id, &outcome, StatusCode::OK).await
}

#[utoipa::path(put, path = "/api/v1/contacts/{id}", tag = "contacts", operation_id = "contacts_update",
    request_body(content = Object, description = "A JSON merge patch over the contact"),
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = ContactRow, description = "OK"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)"),
        (status = 409, body = crate::error::Problem, description = "Duplicate number (problem+json)"), (status = 422, body = crate::error::Problem, description = "Invalid (problem+json)")),
    security(("bearer" = [])))]
async fn update(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    PathId(id): PathId,
    IdempotencyKey(key): IdempotencyKey,
    body: ApiJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    change(state, user, headers, id, key, body).await
}

#[utoipa::path(patch, path = "/api/v1/contacts/{id}", tag = "contacts", operation_id = "contacts_patch",
    request_body(content = Object, description = "A JSON merge patch over the contact"),
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = ContactRow, description = "OK"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)"),
        (status = 409, body = crate::error::Problem, description = "Duplicate number (problem+json)"), (status = 422, body = crate::error::Problem, description = "Invalid (problem+json)")),
    security(("bearer" = [])))]
async fn patch(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    PathId(id): PathId,
    IdempotencyKey(key): IdempotencyKey,
    body: ApiJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    change(state, user, headers, id, key, body).await
}

#[utoipa::path(delete, path = "/api/v1/contacts/{id}", tag = "contacts", operation_id = "contacts_delete", params(("id" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)")),
    security(("bearer" = [])))]
async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    user.require(MANAGERS)?;
    let row = owned(&state, &user, id).await?;
    let ctx = tenant_context(&headers, &user, None, String::new());
    let command = ContactCommand::DeleteContact { known: known(&row), at: Utc::now() };
    let outcome = state.dispatcher.execute::<Contact>(&id.to_string(), command, &ctx).await?;
    state.wait_for(view::NAME, outcome.position).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DncBody {
    reason: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/contacts/{id}/do-not-call", tag = "contacts", operation_id = "contacts_mark_dnc", params(("id" = Uuid, Path)),
    request_body(content = Option<DncBody>, description = "Optional `{reason}`"),
    responses((status = 200, body = ContactRow, description = "The contact, flagged; its number is also put on the tenant's do-not-call list"),
        (status = 404, body = crate::error::Problem, description = "Not found (problem+json)")),
    security(("bearer" = [])))]
async fn mark_dnc(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    PathId(id): PathId,
    body: Option<ApiJson<DncBody>>,
) -> Result<Response, ApiError> {
    user.require(DNC_WRITERS)?;
    let row = owned(&state, &user, id).await?;
    let reason = body.and_then(|b| b.value.reason);
    let ctx = tenant_context(&headers, &user, None, String::new());
    let command = ContactCommand::SetDoNotCall { reason: reason.clone(), known: known(&row), at: Utc::now() };
    state.dispatcher.execute::<Contact>(&id.to_string(), command, &ctx).await?;
    let listing = DoNotCallCommand::AddNumber {
        phone_number: row.phone_number.clone(),
        reason,
        source: Some(format!("contact:{id}")),
        at: Utc::now(),
    };
    let outcome = state
        .dispatcher
        .execute::<DoNotCallNumber>(
            &DoNotCallNumber::stream_id(&ctx.tenant_id, &row.phone_number),
            listing,
            &ctx,
        )
        .await?;
    // The tenant's list is a read model of its own: the answer shows it updated too.
    state.wait_for(kraliki_projections::do_not_call::NAME, outcome.position).await?;
    answer(&state, &user, id, &outcome, StatusCode::OK).await
}

#[utoipa::path(delete, path = "/api/v1/contacts/{id}/do-not-call", tag = "contacts", operation_id = "contacts_clear_dnc", params(("id" = Uuid, Path)),
    responses((status = 200, body = ContactRow, description = "The contact's own flag cleared (the tenant list is changed at /api/v1/do-not-call)"),
        (status = 404, body = crate::error::Problem, description = "Not found (problem+json)")),
    security(("bearer" = [])))]
async fn clear_dnc(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    user.require(MANAGERS)?;
    let row = owned(&state, &user, id).await?;
    let ctx = tenant_context(&headers, &user, None, String::new());
    let command = ContactCommand::ClearDoNotCall { known: known(&row), at: Utc::now() };
    let outcome = state.dispatcher.execute::<Contact>(&id.to_string(), command, &ctx).await?;
    answer(&state, &user, id, &outcome, StatusCode::OK).await
}

// Imports -----------------------------------------------------------------------------------
