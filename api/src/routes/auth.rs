//! `/api/v1/auth`: register, login, me, refresh, logout (shapes from the original backend).

use std::collections::BTreeSet;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use kraliki_commands::CommandContext;
use kraliki_domain::company::{Company, CompanyCommand, CompanyProfile};
use kraliki_domain::user::User;
use kraliki_domain::values::{CompanyName, DomainName, Email, Password, PersonName, Role};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::auth::passwords;
use crate::auth::tokens::{self, RefreshClaims, TokenError};
use crate::auth::users::{self, CreateUserError, NewUser};
use crate::auth::AuthUser;
use crate::error::{ApiError, Code};
use crate::extract::ApiJson;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(me))
        .routes(routes!(refresh))
        .routes(routes!(refresh_unprefixed))
        .routes(routes!(logout))
        .routes(routes!(change_password))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    current_password: String,
    new_password: String,
}

#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth", operation_id = "auth_change_password", request_body = PasswordBody,
    responses((status = 204, description = "Changed; every session revoked"),
        (status = 401, body = crate::error::Problem, description = "Not authenticated or wrong current password"),
        (status = 422, body = crate::error::Problem, description = "Invalid new password")),
    security(("bearer" = [])))]
async fn change_password(
    State(state): State<AppState>,
    user: AuthUser,
    body: ApiJson<PasswordBody>,
) -> Result<Response, ApiError> {
    if user.service {
        return Err(ApiError::new(Code::Forbidden).detail("service accounts have API keys, not passwords"));
    }
    let b = body.value;
    let new = Password::parse(&b.new_password)?;
    let cost = state.settings.auth.bcrypt_cost;
    let hash: Option<String> =
        sqlx::query_scalar("SELECT password_hash FROM user_credentials WHERE user_id = $1")
            .bind(user.user_id)
            .fetch_optional(&state.pool)
            .await?;
    if !passwords::verify(&b.current_password, hash, cost).await? {
        return Err(ApiError::new(Code::InvalidCredentials).detail("the current password is wrong"));
    }
    let new_hash = passwords::hash(&new, cost).await?;
    sqlx::query("UPDATE user_credentials SET password_hash = $2, updated_at = now() WHERE user_id = $1")
        .bind(user.user_id)
        .bind(new_hash)
        .execute(&state.pool)
        .await?;
    let ctx = CommandContext::new(user.company_id.to_string(), user.actor());
    state
        .dispatcher
        .execute::<User>(
            &user.user_id.to_string(),
            kraliki_domain::user::UserCommand::RecordPasswordChange { at: Utc::now() },
            &ctx,
        )
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!("{e}")))?;
    // Every session ends: whoever knew the old password may hold one.
    sqlx::query("UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL")
        .bind(user.user_id)
        .execute(&state.pool)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    email: String,
    password: String,
    full_name: String,
    #[serde(default)]
    organization: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    email: String,
    password: String,
}

#[derive(Debug, Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    #[serde(default)]
    refresh_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub id: Uuid,
    pub email: String,
    pub full_name: String,
    /// The same as `full_name` (the template UI's header reads `name`).
    pub name: String,
    pub organization: Option<String>,
    pub company_id: String,
    pub role: String,
    pub roles: Vec<String>,
    pub phone_number: Option<String>,
    pub avatar_url: Option<String>,
    pub timezone: String,
    pub language: String,
    pub is_active: bool,
}

#[derive(Debug, Serialize, ToSchema)]
struct TokenResponse {
    access_token: String,
    refresh_token: String,
    token_type: &'static str,
    expires_in: i64,
    expires_at: DateTime<Utc>,
    /// The same instant as `expires_at` (the template UI's fixtures read camelCase).
    #[serde(rename = "expiresAt")]
    expires_at_camel: DateTime<Utc>,
    user: Me,
}

/// The user's profile, and whether their company is active (a deactivated company is
/// suspended: no logins, no refreshes, no requests; see `AuthUser::require_active_company`).
async fn profile(state: &AppState, user_id: Uuid) -> Result<(Me, User, bool), ApiError> {
    let (user, _) = state.dispatcher.load::<User>(&user_id.to_string()).await?;
    if !user.registered {
        return Err(ApiError::new(Code::Unauthorized).detail("the user no longer exists"));
    }
    let company = match user.company_id.parse::<Uuid>() {
        Ok(company) => Some(state.dispatcher.load::<Company>(&company.to_string()).await?.0),
        Err(_) => None,
    };
    let company_active = company.as_ref().is_none_or(|c| !c.created || c.is_active)
        || user.roles.contains(&kraliki_domain::values::Role::PlatformOperator);
    let organization = company.map(|c| c.name).unwrap_or_default();
    let roles: Vec<String> = user.roles.iter().map(|r| r.as_str().to_owned()).collect();
    let me = Me {
        id: user_id,
        email: user.email.clone(),
        full_name: user.full_name.clone(),
        name: user.full_name.clone(),
        organization: (!organization.is_empty()).then_some(organization),
        company_id: user.company_id.clone(),
        role: user.primary_role().map(|r| r.as_str().to_owned()).unwrap_or_default(),
        roles,
        phone_number: None,
        avatar_url: None,
        timezone: "UTC".into(),
        language: "en".into(),
        is_active: user.is_active,
    };
    Ok((me, user, company_active))
}

fn company_inactive() -> ApiError {
    ApiError::new(Code::CompanyInactive).detail("the company is deactivated")
}

fn cookie(name: &str, value: &str, max_age: i64, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .ok()
}

/// Issues tokens for a user (new session family, or the given one on refresh) with cookies.
async fn session(
    state: &AppState,
    me: Me,
    family: Option<Uuid>,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let auth = &state.settings.auth;
    let issued = tokens::issue(&state.keys, auth, me.id, &me.email, &me.roles, &me.role, &me.company_id)?;
    sqlx::query("INSERT INTO refresh_tokens (jti, user_id, family_id, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(issued.refresh_jti)
        .bind(me.id)
        .bind(family.unwrap_or(issued.refresh_jti))
        .bind(issued.refresh_expires_at)
        .execute(&state.pool)
        .await?;
    let body = TokenResponse {
        access_token: issued.access_token.clone(),
        refresh_token: issued.refresh_token.clone(),
        token_type: "bearer",
        expires_in: issued.expires_in,
        expires_at: issued.expires_at,
        expires_at_camel: issued.expires_at,
        user: me,
    };
    let mut response = (status, Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(c) = cookie("auth_token", &issued.access_token, auth.access_ttl_secs, auth.secure_cookies) {
        headers.append(header::SET_COOKIE, c);
    }
    if let Some(c) =
        cookie("refresh_token", &issued.refresh_token, auth.refresh_ttl_secs, auth.secure_cookies)
    {
        headers.append(header::SET_COOKIE, c);
    }
    Ok(response)
}

fn field_errors(errors: Vec<kraliki_domain::values::InvalidValue>) -> ApiError {
    let mut e = ApiError::new(Code::ValidationFailed);
    for v in errors {
        e = e.field(v.field, v.code, v.message);
    }
    e
}

#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", operation_id = "auth_register", request_body = RegisterBody,
    responses((status = 201, body = TokenResponse, description = "A new company with the caller as its admin"),
        (status = 403, body = crate::error::Problem, description = "Not allowed (problem+json)"), (status = 409, body = crate::error::Problem, description = "Conflict (problem+json)"), (status = 422, body = crate::error::Problem, description = "Invalid input (problem+json)")))]
async fn register(State(state): State<AppState>, body: ApiJson<RegisterBody>) -> Result<Response, ApiError> {
    if !state.settings.auth.allow_registration {
        return Err(ApiError::new(Code::RegistrationClosed));
    }
    let b = body.value;
    let mut errors = Vec::new();
    let email = Email::parse(&b.email).map_err(|e| errors.push(e)).ok();
    let password = Password::parse(&b.password).map_err(|e| errors.push(e)).ok();
    let full_name = PersonName::parse(&b.full_name).map_err(|e| errors.push(e)).ok();
    let (Some(email), Some(password), Some(full_name)) = (email, password, full_name) else {
        return Err(field_errors(errors));
    };
    if users::email_taken(&state.pool, &email).await? {
        return Err(ApiError::new(Code::EmailTaken));
    }
    // Sign-up creates the caller's company, with them as its admin.
    let company_id = Uuid::now_v7();
    let org = b.organization.as_deref().map(str::trim).filter(|o| !o.is_empty()).map(str::to_owned);
    let name = CompanyName::parse(&org.unwrap_or_else(|| format!("{}'s company", full_name.as_str())))?;
    let domain = DomainName::parse(email.domain())?;
    let company_profile = CompanyProfile {
        domain: domain.as_str().to_owned(),
        size: None,
        industry: None,
        description: None,
        website: None,
    };
    let ctx = CommandContext::new(company_id.to_string(), "signup");
    state
        .dispatcher
        .execute::<Company>(
            &company_id.to_string(),
            CompanyCommand::CreateCompany { name, profile: company_profile, at: Utc::now() },
            &ctx,
        )
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!("{e}")))?;
    let new = NewUser { company_id, email, password, full_name, roles: BTreeSet::from([Role::Admin]) };
    let (user_id, outcome) =
        users::create(&state.pool, &state.dispatcher, state.settings.auth.bcrypt_cost, new, &ctx)
            .await
            .map_err(|e| match e {
                CreateUserError::EmailTaken => ApiError::new(Code::EmailTaken),
                CreateUserError::Other(e) => ApiError::internal(e),
            })?;
    // Read-your-writes: the new admin's first request sees their company and themselves.
    for view in [kraliki_projections::company::NAME, kraliki_projections::user::NAME] {
        state.wait_for(view, outcome.position).await?;
    }
    let (me, _, _) = profile(&state, user_id).await?;
    session(&state, me, None, StatusCode::CREATED).await
}

fn client_address(headers: &HeaderMap, peer: Option<SocketAddr>) -> String {
    let _ = headers; // X-Forwarded-For is not trusted without a configured proxy.
    peer.map(|p| p.ip().to_string()).unwrap_or_else(|| "unknown".into())
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", operation_id = "auth_login", request_body = LoginBody,
    responses((status = 200, body = TokenResponse, description = "OK"), (status = 401, body = crate::error::Problem, description = "Not authenticated (problem+json)"),
        (status = 429, body = crate::error::Problem, description = "Too many failed logins; see Retry-After")))]
async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: ApiJson<LoginBody>,
) -> Result<Response, ApiError> {
    let auth = &state.settings.auth;
    let b = body.value;
    let account = b.email.trim().to_lowercase();
    let address = client_address(&headers, Some(peer));
    if let Some(wait) = passwords::throttled(&state.pool, &account, &address, auth).await? {
        return Err(ApiError::new(Code::TooManyRequests)
            .detail("too many failed logins; try again later")
            .retry_after(wait as u64));
    }
    let found: Option<(Uuid, String)> = sqlx::query_as(
        "SELECT e.user_id, c.password_hash FROM user_emails e JOIN user_credentials c USING (user_id) WHERE e.email = $1",
    )
    .bind(&account)
    .fetch_optional(&state.pool)
    .await?;
    let (user_id, hash) = found.map(|(u, h)| (Some(u), Some(h))).unwrap_or((None, None));
    let ok = passwords::verify(&b.password, hash, auth.bcrypt_cost).await?;
    let user = match (ok, user_id) {
        (true, Some(id)) => {
            let (me, user, company_active) = profile(&state, id).await?;
            user.is_active.then_some((me, company_active))
        }
        _ => None,
    };
    let Some((me, company_active)) = user else {
        passwords::record_failure(&state.pool, &account, &address).await?;
        return Err(ApiError::new(Code::InvalidCredentials));
    };
    passwords::clear_account(&state.pool, &account, auth.failure_window_secs).await?;
    // Said only to someone who knew the password.
    if !company_active {
        return Err(company_inactive());
    }
    session(&state, me, None, StatusCode::OK).await
}

#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", operation_id = "auth_me",
    responses((status = 200, body = Me, description = "OK"), (status = 401, body = crate::error::Problem, description = "Not authenticated (problem+json)")), security(("bearer" = [])))]
async fn me(State(state): State<AppState>, user: AuthUser) -> Result<Json<Me>, ApiError> {
    let (me, _, _) = profile(&state, user.user_id).await?;
    Ok(Json(me))
}

/// The refresh token comes in the body (`{"refresh_token": …}`) or, with an empty body, from
/// the `refresh_token` cookie.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", operation_id = "auth_refresh", request_body(content = Option<RefreshBody>),
    responses((status = 200, body = TokenResponse, description = "OK"), (status = 401, body = crate::error::Problem, description = "Not authenticated (problem+json)")))]
async fn refresh(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let from_body = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let parsed: RefreshBody = serde_json::from_slice(&body)
            .map_err(|e| ApiError::new(Code::InvalidBody).detail(e.to_string()))?;
        parsed.refresh_token
    };
    let from_cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| *k == "refresh_token")
        .map(|(_, v)| v.to_owned());
    let token = from_body
        .or(from_cookie)
        .ok_or_else(|| ApiError::new(Code::Unauthorized).detail("no refresh token"))?;
    let claims: RefreshClaims = tokens::verify(&state.keys, &state.settings.auth, &token)?;
    if claims.kind != "refresh" {
        return Err(TokenError::WrongKind.into());
    }
    let jti: Uuid = claims.jti.parse().map_err(|_| ApiError::from(TokenError::Malformed))?;
    // Rotate: mark this token used, exactly once. A used or revoked token presented again
    // revokes its whole family (it was copied).
    let used: Option<(Uuid, Uuid)> = sqlx::query_as(
        "UPDATE refresh_tokens SET used_at = now() WHERE jti = $1 AND used_at IS NULL AND revoked_at IS NULL \
         AND expires_at > now() RETURNING user_id, family_id",
    )
    .bind(jti)
    .fetch_optional(&state.pool)
    .await?;
    let Some((user_id, family)) = used else {
        sqlx::query("UPDATE refresh_tokens SET revoked_at = now() WHERE revoked_at IS NULL AND family_id = (SELECT family_id FROM refresh_tokens WHERE jti = $1)")
            .bind(jti)
            .execute(&state.pool)
            .await?;
        return Err(ApiError::new(Code::Unauthorized).detail("the refresh token was already used or revoked"));
    };
    let (me, user, company_active) = profile(&state, user_id).await?;
    if !user.is_active {
        return Err(ApiError::new(Code::Unauthorized).detail("the user is deactivated"));
    }
    if !company_active {
        return Err(company_inactive());
    }
    session(&state, me, Some(family), StatusCode::OK).await
}

/// The template UI calls the refresh route without the `/api/v1` prefix too.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", operation_id = "auth_refresh_unprefixed", request_body(content = Option<RefreshBody>),
    responses((status = 200, body = TokenResponse, description = "OK"), (status = 401, body = crate::error::Problem, description = "Not authenticated (problem+json)")))]
async fn refresh_unprefixed(
    state: State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    refresh(state, headers, body).await
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", operation_id = "auth_logout",
    responses((status = 204, description = "Sessions revoked, cookies cleared"), (status = 401, body = crate::error::Problem, description = "Not authenticated (problem+json)")),
    security(("bearer" = [])))]
async fn logout(State(state): State<AppState>, user: AuthUser) -> Result<Response, ApiError> {
    sqlx::query("UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL")
        .bind(user.user_id)
        .execute(&state.pool)
        .await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    let secure = state.settings.auth.secure_cookies;
    for name in ["auth_token", "refresh_token"] {
        if let Some(c) = cookie(name, "", 0, secure) {
            response.headers_mut().append(header::SET_COOKIE, c);
        }
    }
    Ok(response)
}
