//! `/api/v1/companies/{id}/service-accounts`: non-human callers (telephony workers,
//! orchestrators) with API keys. Company admins manage them; a key is shown once.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use kraliki_commands::CommandContext;
use kraliki_domain::service_account::{ServiceAccount, ServiceAccountCommand};
use kraliki_domain::values::Role;
use kraliki_projections::service_account::{self as view, ServiceAccountRow};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::auth::{api_keys, AuthUser};
use crate::error::{ApiError, Code, Problem};
use crate::extract::{bad_cursor, page_limit, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(deactivate))
        .routes(routes!(issue_key))
        .routes(routes!(revoke_key))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ServiceAccountCreateBody {
    name: String,
    roles: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct AccountResponse {
    id: Uuid,
    company_id: Uuid,
    name: String,
    roles: Vec<String>,
    is_active: bool,
    /// `[{key_id, prefix, issued_at, revoked_at}]`; secrets are never returned again.
    #[schema(value_type = Vec<Object>)]
    keys: serde_json::Value,
    /// Only in the answer that created the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    api_key: Option<String>,
}

impl From<ServiceAccountRow> for AccountResponse {
    fn from(r: ServiceAccountRow) -> Self {
        Self {
            id: r.id,
            company_id: r.company_id,
            name: r.name,
            roles: r.roles,
            is_active: r.is_active,
            keys: r.keys,
            api_key: None,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
struct KeyResponse {
    key_id: Uuid,
    prefix: String,
    /// The whole key: store it now, it is not shown again.
    api_key: String,
}

/// The account, if it belongs to `company` (else not found).
async fn account_of(state: &AppState, company: Uuid, id: Uuid) -> Result<ServiceAccount, ApiError> {
    let (account, _) = state.dispatcher.load::<ServiceAccount>(&id.to_string()).await?;
    if !account.created || account.company_id != company.to_string() {
        return Err(ApiError::not_found());
    }
    Ok(account)
}

/// Stores a new key's hash, then records its issue; the key authenticates only once both exist.
async fn issue(
    state: &AppState,
    account: Uuid,
    ctx: &CommandContext,
) -> Result<(api_keys::NewKey, Option<i64>), ApiError> {
    let key = api_keys::generate();
    sqlx::query("INSERT INTO api_keys (key_id, account_id, secret_hash) VALUES ($1, $2, $3)")
        .bind(key.key_id)
        .bind(account)
        .bind(&key.secret_hash)
        .execute(&state.pool)
        .await?;
    let command = ServiceAccountCommand::IssueApiKey {
        key_id: key.key_id.to_string(),
        prefix: key.display_prefix.clone(),
        at: Utc::now(),
    };
    match state.dispatcher.execute::<ServiceAccount>(&account.to_string(), command, ctx).await {
        Ok(outcome) => Ok((key, outcome.position)),
        Err(e) => {
            let _ = sqlx::query("DELETE FROM api_keys WHERE key_id = $1")
                .bind(key.key_id)
                .execute(&state.pool)
                .await;
            Err(e.into())
        }
    }
}

#[utoipa::path(get, path = "/api/v1/companies/{id}/service-accounts", tag = "service-accounts", operation_id = "service_accounts_list",
    params(("id" = Uuid, Path), ListQuery),
    responses((status = 200, body = Vec<AccountResponse>, headers(("Link" = String, description = "The next page: `<…?cursor=…>; rel=\"next\"` (RFC 8288); absent on the last page"), ("X-Next-Cursor" = String, description = "The next page's cursor")), description = "OK"), (status = 403, body = Problem, description = "Not allowed"),
        (status = 404, body = Problem, description = "Not found")),
    security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(company): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<ListQuery>,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
) -> Result<super::common::Paged<AccountResponse>, ApiError> {
    caller.require_company(company)?;
    caller.require(&[Role::Admin, Role::Auditor])?;
    let limit = page_limit(q.limit)?;
    let after = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(raw) => Some(raw.parse::<Uuid>().map_err(|_| bad_cursor())?),
    };
    let (rows, more) = view::list_for_company(&state.pool, company, after, limit).await?;
    let next_cursor = if more { rows.last().map(|r| r.id.to_string()) } else { None };
    Ok(super::common::Paged::new(rows.into_iter().map(Into::into).collect(), next_cursor, &uri))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    cursor: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/companies/{id}/service-accounts", tag = "service-accounts", operation_id = "service_accounts_create",
    params(("id" = Uuid, Path)), request_body = ServiceAccountCreateBody,
    responses((status = 201, body = AccountResponse, description = "Created, with its first API key (shown once)"),
        (status = 403, body = Problem, description = "Not allowed"), (status = 404, body = Problem, description = "Not found"),
        (status = 422, body = Problem, description = "Invalid input")),
    security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(company): ApiPath<Uuid>,
    body: ApiJson<ServiceAccountCreateBody>,
) -> Result<Response, ApiError> {
    caller.require_company(company)?;
    caller.require(&[Role::Admin])?;
    let b = body.value;
    let name = kraliki_domain::values::PersonName::parse(&b.name)
        .map_err(|e| ApiError::new(Code::ValidationFailed).field("name", e.code, e.message))?;
    let roles = caller.grantable_roles(&b.roles)?;
    let (company_state, _) =
        state.dispatcher.load::<kraliki_domain::company::Company>(&company.to_string()).await?;
    if !company_state.created {
        return Err(ApiError::not_found());
    }
    let id = Uuid::now_v7();
    let ctx = CommandContext::new(company.to_string(), caller.actor());
    let command = ServiceAccountCommand::CreateServiceAccount {
        company_id: company.to_string(),
        name: name.as_str().to_owned(),
        roles,
        at: Utc::now(),
    };
    state.dispatcher.execute::<ServiceAccount>(&id.to_string(), command, &ctx).await?;
    let (key, position) = issue(&state, id, &ctx).await?;
    state.wait_for(view::NAME, position).await?;
    let row = view::get(&state.pool, id).await?.ok_or_else(ApiError::not_found)?;
    let response = AccountResponse { api_key: Some(key.key), ..row.into() };
    Ok((StatusCode::CREATED, Json(response)).into_response())
}

#[utoipa::path(post, path = "/api/v1/companies/{id}/service-accounts/{account_id}/keys", tag = "service-accounts",
    operation_id = "service_accounts_issue_key",
    params(("id" = Uuid, Path), ("account_id" = Uuid, Path)),
    responses((status = 201, body = KeyResponse, description = "A new key (shown once)"),
        (status = 403, body = Problem, description = "Not allowed"), (status = 404, body = Problem, description = "Not found"),
        (status = 409, body = Problem, description = "Deactivated")),
    security(("bearer" = [])))]
async fn issue_key(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath((company, account)): ApiPath<(Uuid, Uuid)>,
) -> Result<Response, ApiError> {
    caller.require_company(company)?;
    caller.require(&[Role::Admin])?;
    account_of(&state, company, account).await?;
    let ctx = CommandContext::new(company.to_string(), caller.actor());
    let (key, _) = issue(&state, account, &ctx).await?;
    let body = KeyResponse { key_id: key.key_id, prefix: key.display_prefix, api_key: key.key };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[utoipa::path(delete, path = "/api/v1/companies/{id}/service-accounts/{account_id}/keys/{key_id}", tag = "service-accounts",
    operation_id = "service_accounts_revoke_key",
    params(("id" = Uuid, Path), ("account_id" = Uuid, Path), ("key_id" = Uuid, Path)),
    responses((status = 204, description = "Revoked"), (status = 403, body = Problem, description = "Not allowed"),
        (status = 404, body = Problem, description = "Not found")),
    security(("bearer" = [])))]
async fn revoke_key(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath((company, account, key_id)): ApiPath<(Uuid, Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    caller.require_company(company)?;
    caller.require(&[Role::Admin])?;
    account_of(&state, company, account).await?;
    let ctx = CommandContext::new(company.to_string(), caller.actor());
    let command = ServiceAccountCommand::RevokeApiKey { key_id: key_id.to_string(), at: Utc::now() };
    state.dispatcher.execute::<ServiceAccount>(&account.to_string(), command, &ctx).await?;
    sqlx::query("UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL")
        .bind(key_id)
        .execute(&state.pool)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/companies/{id}/service-accounts/{account_id}", tag = "service-accounts",
    operation_id = "service_accounts_deactivate",
    params(("id" = Uuid, Path), ("account_id" = Uuid, Path)),
    responses((status = 204, description = "Deactivated; every key revoked"), (status = 403, body = Problem, description = "Not allowed"),
        (status = 404, body = Problem, description = "Not found"), (status = 409, body = Problem, description = "Already deactivated")),
    security(("bearer" = [])))]
async fn deactivate(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath((company, account)): ApiPath<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    caller.require_company(company)?;
    caller.require(&[Role::Admin])?;
    account_of(&state, company, account).await?;
    let ctx = CommandContext::new(company.to_string(), caller.actor());
    let command = ServiceAccountCommand::DeactivateServiceAccount { at: Utc::now() };
    state.dispatcher.execute::<ServiceAccount>(&account.to_string(), command, &ctx).await?;
    sqlx::query("UPDATE api_keys SET revoked_at = now() WHERE account_id = $1 AND revoked_at IS NULL")
        .bind(account)
        .execute(&state.pool)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
