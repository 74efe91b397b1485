//! `/api/v1/companies/{id}/users`: a company's people. Admins manage them; supervisors and
//! auditors may look; every change is an event on the User aggregate.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use kraliki_commands::CommandContext;
use kraliki_domain::user::{User, UserCommand};
use kraliki_domain::values::{Email, Password, PersonName, Role};
use kraliki_projections::user::{self as view, UserRow};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::auth::users::{self, CreateUserError, NewUser};
use crate::auth::AuthUser;
use crate::error::{ApiError, Code};
use crate::extract::{bad_cursor, page_limit, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(read, update, deactivate))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserResponse {
    pub id: Uuid,
    pub company_id: Uuid,
    pub email: String,
    pub full_name: String,
    pub role: String,
    pub roles: Vec<String>,
    pub is_active: bool,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub password_changed_at: Option<DateTime<Utc>>,
}

impl From<UserRow> for UserResponse {
    fn from(r: UserRow) -> Self {
        let role = r
            .roles
            .iter()
            .filter_map(|x| Role::parse(x).ok())
            .max()
            .map(|x| x.as_str().to_owned())
            .unwrap_or_default();
        Self {
            id: r.id,
            company_id: r.company_id,
            email: r.email,
            full_name: r.full_name,
            role,
            roles: r.roles,
            is_active: r.is_active,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            password_changed_at: r.password_changed_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UserCreateBody {
    email: String,
    password: String,
    full_name: String,
    roles: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UserUpdateBody {
    #[serde(default)]
    full_name: Option<String>,
    /// The complete set of roles after the change.
    #[serde(default)]
    roles: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    cursor: Option<String>,
    /// Only active (`true`) or deactivated (`false`) users.
    #[serde(default)]
    is_active: Option<bool>,
    /// Only holders of this role.
    #[serde(default)]
    role: Option<String>,
}

/// The user as the read model shows it once it applied `position`.
async fn answer(
    state: &AppState,
    id: Uuid,
    position: Option<i64>,
    status: StatusCode,
) -> Result<Response, ApiError> {
    state.wait_for(view::NAME, position).await?;
    let row = view::get(&state.pool, id).await?.ok_or_else(ApiError::not_found)?;
    Ok((status, Json(UserResponse::from(row))).into_response())
}

/// The target user, if it belongs to `company` (else not found).
async fn member(state: &AppState, company: Uuid, user_id: Uuid) -> Result<User, ApiError> {
    let (user, _) = state.dispatcher.load::<User>(&user_id.to_string()).await?;
    if !user.registered || user.company_id != company.to_string() {
        return Err(ApiError::not_found());
    }
    Ok(user)
}

#[utoipa::path(get, path = "/api/v1/companies/{id}/users", tag = "users", operation_id = "users_list", params(("id" = Uuid, Path), ListQuery),
    responses((status = 200, description = "The company's users, oldest first", body = Vec<UserResponse>, headers(("Link" = String, description = "The next page: `<…?cursor=…>; rel=\"next\"` (RFC 8288); absent on the last page"), ("X-Next-Cursor" = String, description = "The next page's cursor"))), (status = 403, body = crate::error::Problem, description = "Not allowed (problem+json)"),
        (status = 404, body = crate::error::Problem, description = "Not found (problem+json)")),
    security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(company): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<ListQuery>,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
) -> Result<super::common::Paged<UserResponse>, ApiError> {
    caller.require_company(company)?;
    caller.require(&[Role::Admin, Role::Supervisor, Role::Auditor])?;
    let limit = page_limit(q.limit)?;
    let after = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(raw) => {
            let bad = || bad_cursor();
            let (at, id) = raw.split_once('~').ok_or_else(bad)?;
            let at = DateTime::parse_from_rfc3339(at).map_err(|_| bad())?.with_timezone(&Utc);
            Some((at, id.parse().map_err(|_| bad())?))
        }
    };
    let role = q.role.as_deref().map(Role::parse).transpose()?;
    let (rows, more) =
        view::list_for_company(&state.pool, company, q.is_active, role.map(Role::as_str), after, limit)
            .await?;
    let next =
        if more { rows.last().map(|r| format!("{}~{}", r.created_at.to_rfc3339(), r.id)) } else { None };
    let items: Vec<UserResponse> = rows.into_iter().map(Into::into).collect();
    Ok(super::common::Paged::new(items, next, &uri))
}

#[utoipa::path(post, path = "/api/v1/companies/{id}/users", tag = "users", operation_id = "users_create", params(("id" = Uuid, Path)), request_body = UserCreateBody,
    responses((status = 201, body = UserResponse, description = "Created"), (status = 403, body = crate::error::Problem, description = "Not allowed (problem+json)"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)"),
        (status = 409, body = crate::error::Problem, description = "Conflict (problem+json)"), (status = 422, body = crate::error::Problem, description = "Invalid input (problem+json)")),
    security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(company): ApiPath<Uuid>,
    body: ApiJson<UserCreateBody>,
) -> Result<Response, ApiError> {
    caller.require_company(company)?;
    caller.require(&[Role::Admin])?;
    let b = body.value;
    let mut errors = Vec::new();
    let email = Email::parse(&b.email).map_err(|e| errors.push(e)).ok();
    let password = Password::parse(&b.password).map_err(|e| errors.push(e)).ok();
    let full_name = PersonName::parse(&b.full_name).map_err(|e| errors.push(e)).ok();
    let (Some(email), Some(password), Some(full_name)) = (email, password, full_name) else {
        let mut e = ApiError::new(Code::ValidationFailed);
        for v in errors {
            e = e.field(v.field, v.code, v.message);
        }
        return Err(e);
    };
    let roles = caller.grantable_roles(&b.roles)?;
    let (company_exists, _) =
        state.dispatcher.load::<kraliki_domain::company::Company>(&company.to_string()).await?;
    if !company_exists.created {
        return Err(ApiError::not_found());
    }
    let ctx = CommandContext::new(company.to_string(), caller.actor());
    let new = NewUser { company_id: company, email, password, full_name, roles };
    let (id, outcome) =
        users::create(&state.pool, &state.dispatcher, state.settings.auth.bcrypt_cost, new, &ctx)
            .await
            .map_err(|e| match e {
                CreateUserError::EmailTaken => ApiError::new(Code::EmailTaken),
                CreateUserError::Other(e) => ApiError::internal(e),
            })?;
    answer(&state, id, outcome.position, StatusCode::CREATED).await
}

#[utoipa::path(get, path = "/api/v1/companies/{id}/users/{user_id}", tag = "users", operation_id = "users_read",
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path), ("If-None-Match" = Option<String>, Header)),
    responses((status = 200, body = UserResponse, description = "OK"), (status = 304, description = "Not modified"), (status = 403, body = crate::error::Problem, description = "Not allowed (problem+json)"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)")),
    security(("bearer" = [])))]
async fn read(
    State(state): State<AppState>,
    caller: AuthUser,
    headers: axum::http::HeaderMap,
    ApiPath((company, user_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Response, ApiError> {
    caller.require_company(company)?;
    if caller.user_id != user_id {
        caller.require(&[Role::Admin, Role::Supervisor, Role::Auditor])?;
    }
    member(&state, company, user_id).await?;
    let row = view::get(&state.pool, user_id).await?.ok_or_else(ApiError::not_found)?;
    let tag =
        axum::http::HeaderValue::from_str(&format!("\"v{}\"", row.version)).map_err(anyhow::Error::from)?;
    if headers.get(axum::http::header::IF_NONE_MATCH).is_some_and(|v| v == tag) {
        return Ok((StatusCode::NOT_MODIFIED, [(axum::http::header::ETAG, tag)]).into_response());
    }
    Ok((StatusCode::OK, [(axum::http::header::ETAG, tag)], Json(UserResponse::from(row))).into_response())
}

#[utoipa::path(put, path = "/api/v1/companies/{id}/users/{user_id}", tag = "users", operation_id = "users_update",
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)), request_body = UserUpdateBody,
    responses((status = 200, body = UserResponse, description = "OK"), (status = 403, body = crate::error::Problem, description = "Not allowed (problem+json)"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)"),
        (status = 409, body = crate::error::Problem, description = "Conflict (problem+json)"), (status = 422, body = crate::error::Problem, description = "Invalid input (problem+json)")),
    security(("bearer" = [])))]
async fn update(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath((company, user_id)): ApiPath<(Uuid, Uuid)>,
    body: ApiJson<UserUpdateBody>,
) -> Result<Response, ApiError> {
    caller.require_company(company)?;
    caller.require(&[Role::Admin])?;
    let current = member(&state, company, user_id).await?;
    let b = body.value;
    let ctx = CommandContext::new(company.to_string(), caller.actor());
    let mut commands = Vec::new();
    if let Some(name) = b.full_name.as_deref() {
        commands.push(UserCommand::RenameUser { full_name: PersonName::parse(name)?, at: Utc::now() });
    }
    if let Some(raw) = &b.roles {
        let wanted = caller.grantable_roles(raw)?;
        if current.roles.contains(&Role::PlatformOperator) && !caller.is_operator() {
            return Err(ApiError::new(Code::Forbidden)
                .detail("only the platform operator changes an operator's roles"));
        }
        // Grant first, so the user never passes through having no role.
        for role in wanted.difference(&current.roles) {
            commands.push(UserCommand::GrantRole { role: *role, at: Utc::now() });
        }
        for role in current.roles.difference(&wanted) {
            commands.push(UserCommand::RevokeRole { role: *role, at: Utc::now() });
        }
    }
    let mut position = None;
    for command in commands {
        let outcome = state.dispatcher.execute::<User>(&user_id.to_string(), command, &ctx).await?;
        position = outcome.position.or(position);
    }
    answer(&state, user_id, position, StatusCode::OK).await
}

#[utoipa::path(delete, path = "/api/v1/companies/{id}/users/{user_id}", tag = "users", operation_id = "users_deactivate",
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204, description = "Deactivated; sessions revoked"), (status = 403, body = crate::error::Problem, description = "Not allowed (problem+json)"),
        (status = 404, body = crate::error::Problem, description = "Not found (problem+json)"), (status = 409, body = crate::error::Problem, description = "Conflict (problem+json)")),
    security(("bearer" = [])))]
async fn deactivate(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath((company, user_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Response, ApiError> {
    caller.require_company(company)?;
    caller.require(&[Role::Admin])?;
    member(&state, company, user_id).await?;
    if caller.user_id == user_id {
        return Err(ApiError::new(Code::InvalidState).detail("you cannot deactivate yourself"));
    }
    let ctx = CommandContext::new(company.to_string(), caller.actor());
    state
        .dispatcher
        .execute::<User>(&user_id.to_string(), UserCommand::DeactivateUser { at: Utc::now() }, &ctx)
        .await?;
    // Their sessions end now; access tokens lapse within their lifetime.
    sqlx::query("UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL")
        .bind(user_id)
        .execute(&state.pool)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
