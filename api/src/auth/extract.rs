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

    /// The actor recorded in event metadata.
    pub fn actor(&self) -> String {
        format!("user:{}", self.user_id)
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
        let token = bearer(parts)
            .or_else(|| cookie(parts, "auth_token"))
            .ok_or_else(|| unauthorized("send a bearer token or the auth_token cookie"))?;
        let claims: AccessClaims = tokens::verify(&state.keys, &state.settings.auth, token)?;
        if claims.kind != "access" {
            return Err(TokenError::WrongKind.into());
        }
        let user_id = claims.sub.parse().map_err(|_| ApiError::from(TokenError::Malformed))?;
        let company_id = claims.org_id.parse().map_err(|_| ApiError::from(TokenError::Malformed))?;
        let roles = claims.roles.iter().filter_map(|r| Role::parse(r).ok()).collect();
        Ok(Self { user_id, company_id, email: claims.email, roles })
    }
}
