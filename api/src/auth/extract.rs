//! `AuthUser`: the caller, from `Authorization: Bearer …` or the `auth_token` cookie.

use std::collections::BTreeSet;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use kraliki_domain::values::Role;
use uuid::Uuid;

use super::tokens::{self, AccessClaims, TokenError};
use crate::error::{ApiError, Code};
use crate::state::AppState;

#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user_id: Uuid,
    pub company_id: Uuid,
    pub email: String,
    pub roles: BTreeSet<Role>,
    /// A service account (API key) rather than a person.
    pub service: bool,
}

impl AuthUser {
    pub fn is_operator(&self) -> bool {
        self.roles.contains(&Role::PlatformOperator)
    }

    pub fn has_any(&self, roles: &[Role]) -> bool {
        roles.iter().any(|r| self.roles.contains(r))
    }

    /// 403 unless the caller holds one of `roles` (the platform operator holds them all).
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if self.is_operator() || self.has_any(roles) {
            Ok(())
        } else {
            Err(ApiError::new(Code::Forbidden).detail("your role does not allow this"))
        }
    }

    /// Whether the caller may see this company's data at all (others' ids are simply not found).
    pub fn in_company(&self, company_id: Uuid) -> bool {
        self.is_operator() || self.company_id == company_id
    }

    /// 404 for another tenant's company: it does not exist for this caller.
    pub fn require_company(&self, company_id: Uuid) -> Result<(), ApiError> {
        if self.in_company(company_id) {
            Ok(())
        } else {
            Err(ApiError::not_found())
        }
    }

    /// 403 unless the caller runs the platform.
    pub fn require_operator(&self, what: &str) -> Result<(), ApiError> {
        if self.is_operator() {
            Ok(())
        } else {
            Err(ApiError::new(Code::Forbidden).detail(format!("only the platform operator {what}")))
        }
    }

    /// Roles this caller may give: at least one, valid, and `platform_operator` only from an
    /// operator.
    pub fn grantable_roles(&self, raw: &[String]) -> Result<BTreeSet<Role>, ApiError> {
        let mut roles = BTreeSet::new();
        for r in raw {
            roles.insert(Role::parse(r)?);
        }
        if roles.is_empty() {
            return Err(ApiError::new(Code::ValidationFailed).field(
                "roles",
                "required",
                "give at least one role",
            ));
        }
        if roles.contains(&Role::PlatformOperator) && !self.is_operator() {
            return Err(
                ApiError::new(Code::Forbidden).detail("only the platform operator grants platform_operator")
            );
        }
        Ok(roles)
    }

    /// A deactivated company is suspended: its people and service accounts can do nothing
    /// (the platform operator still can, to reactivate it).
    pub fn require_active_company(&self, company_active: bool) -> Result<(), ApiError> {
        if company_active || self.is_operator() {
            Ok(())
        } else {
            Err(ApiError::new(Code::CompanyInactive).detail("the company is deactivated"))
        }
    }

    /// The actor recorded in event metadata.
    pub fn actor(&self) -> String {
        if self.service {
            format!("service:{}", self.user_id)
        } else {
            format!("user:{}", self.user_id)
        }
    }
}

pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A page's WebSocket cannot send headers: its upgrade request may carry the access token as
/// `?access_token=` instead (no other request may, so tokens stay out of ordinary URLs).
fn websocket_token(parts: &Parts) -> Option<String> {
    let upgrade = parts.headers.get(axum::http::header::UPGRADE)?.to_str().ok()?;
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return None;
    }
    url::form_urlencoded::parse(parts.uri.query()?.as_bytes())
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| v.into_owned())
}

pub fn unauthorized(detail: &str) -> ApiError {
    ApiError::new(Code::Unauthorized).detail(detail)
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        unauthorized(&e.to_string())
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let user = authenticate(parts, state).await?;
        if let Some(slot) = parts.extensions.get::<crate::telemetry::TenantSlot>() {
            slot.set(user.company_id);
        }
        Ok(user)
    }
}

async fn authenticate(parts: &Parts, state: &AppState) -> Result<AuthUser, ApiError> {
    let api_key = parts
        .headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .or_else(|| bearer(parts).filter(|t| t.starts_with(super::api_keys::PREFIX)));
    if let Some(key) = api_key {
        return service_account(state, key).await;
    }
    let query_token = websocket_token(parts);
    let token = bearer(parts)
        .or_else(|| cookie(parts, "auth_token"))
        .or(query_token.as_deref())
        .ok_or_else(|| unauthorized("send a bearer token or the auth_token cookie"))?;
    let claims: AccessClaims = tokens::verify(&state.keys, &state.settings.auth, token)?;
    if claims.kind != "access" {
        return Err(TokenError::WrongKind.into());
    }
    let user_id = claims.sub.parse().map_err(|_| ApiError::from(TokenError::Malformed))?;
    // The token says who; the user's current state says what they may do.
    let principal = state
        .principals
        .get(&state.dispatcher, user_id)
        .await?
        .ok_or_else(|| unauthorized("the user no longer exists"))?;
    if !principal.user_active {
        return Err(unauthorized("the user is deactivated"));
    }
    let user = AuthUser {
        user_id,
        company_id: principal.company_id,
        email: principal.email,
        roles: principal.roles,
        service: false,
    };
    user.require_active_company(principal.company_active)?;
    Ok(user)
}

/// A service account by API key: the key must be stored unrevoked with a matching secret and
/// listed as issued by the account's events, and the account must be active.
async fn service_account(state: &AppState, key: &str) -> Result<AuthUser, ApiError> {
    use kraliki_domain::service_account::ServiceAccount;
    let invalid = || unauthorized("the API key is not valid");
    let (account_id, key_id) = super::api_keys::check(&state.pool, key).await?.ok_or_else(invalid)?;
    let (account, _) = state.dispatcher.load::<ServiceAccount>(&account_id.to_string()).await?;
    if !account.is_active || !account.keys.contains_key(&key_id.to_string()) {
        return Err(invalid());
    }
    let company_id: Uuid = account.company_id.parse().map_err(|_| invalid())?;
    let (company, _) =
        state.dispatcher.load::<kraliki_domain::company::Company>(&company_id.to_string()).await?;
    let user = AuthUser {
        user_id: account_id,
        company_id,
        email: format!("service-account:{}", account.name),
        roles: account.roles,
        service: true,
    };
    user.require_active_company(!company.created || company.is_active)?;
    Ok(user)
}
