//! Access and refresh tokens: JWT, `alg: EdDSA` only, with `kid`, issuer, audience, expiry and
//! not-before checked on every request.

use chrono::Utc;
use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use uuid::Uuid;

use super::keys::KeyRing;
use crate::config::AuthSettings;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AccessClaims {
    pub sub: String,
    pub email: String,
    /// The most powerful role held; `roles` has them all.
    pub role: String,
    pub roles: Vec<String>,
    pub org_id: String,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    pub iss: String,
    pub aud: String,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RefreshClaims {
    pub sub: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    pub iss: String,
    pub aud: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's algorithm is not accepted")]
    Algorithm,
    #[error("the token's key is unknown")]
    UnknownKey,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token is not for this service")]
    WrongAudience,
    #[error("the token's signature does not verify")]
    Signature,
    #[error("this is not the right kind of token")]
    WrongKind,
}

pub fn sign<T: Serialize>(ring: &KeyRing, claims: &T) -> anyhow::Result<String> {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(ring.signing_kid.clone());
    Ok(jsonwebtoken::encode(&header, claims, &ring.signing)?)
}

pub fn verify<T: DeserializeOwned>(
    ring: &KeyRing,
    auth: &AuthSettings,
    token: &str,
) -> Result<T, TokenError> {
    use jsonwebtoken::errors::ErrorKind;
    let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => TokenError::Algorithm,
        _ => TokenError::Malformed,
    })?;
    if header.alg != Algorithm::EdDSA {
        return Err(TokenError::Algorithm);
    }
    let kid = header.kid.ok_or(TokenError::UnknownKey)?;
    let key = ring.verifying.get(&kid).ok_or(TokenError::UnknownKey)?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[&auth.issuer]);
    validation.set_audience(&[&auth.audience]);
    validation.validate_nbf = true;
    validation.leeway = 5;
    validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<T>(token, key, &validation).map(|d| d.claims).map_err(|e| match e.kind() {
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidAudience | ErrorKind::InvalidIssuer => TokenError::WrongAudience,
        ErrorKind::InvalidSignature => TokenError::Signature,
        ErrorKind::InvalidAlgorithm => TokenError::Algorithm,
        _ => TokenError::Malformed,
    })
}

pub struct Issued {
    pub access_token: String,
    pub refresh_token: String,
    pub refresh_jti: Uuid,
    pub expires_in: i64,
    pub expires_at: chrono::DateTime<Utc>,
    pub refresh_expires_at: chrono::DateTime<Utc>,
}

/// A fresh access token and refresh token for a user.
pub fn issue(
    ring: &KeyRing,
    auth: &AuthSettings,
    user_id: Uuid,
    email: &str,
    roles: &[String],
    role: &str,
    org_id: &str,
) -> anyhow::Result<Issued> {
    let now = Utc::now();
    let exp = now + chrono::Duration::seconds(auth.access_ttl_secs);
    let access = AccessClaims {
        sub: user_id.to_string(),
        email: email.to_owned(),
        role: role.to_owned(),
        roles: roles.to_vec(),
        org_id: org_id.to_owned(),
        exp: exp.timestamp(),
        iat: now.timestamp(),
        nbf: now.timestamp(),
        jti: Uuid::now_v7().to_string(),
        iss: auth.issuer.clone(),
        aud: auth.audience.clone(),
        kind: "access".into(),
    };
    let refresh_jti = Uuid::now_v7();
    let refresh_exp = now + chrono::Duration::seconds(auth.refresh_ttl_secs);
    let refresh = RefreshClaims {
        sub: user_id.to_string(),
        kind: "refresh".into(),
        exp: refresh_exp.timestamp(),
        iat: now.timestamp(),
        nbf: now.timestamp(),
        jti: refresh_jti.to_string(),
        iss: auth.issuer.clone(),
        aud: auth.audience.clone(),
    };
    Ok(Issued {
        access_token: sign(ring, &access)?,
        refresh_token: sign(ring, &refresh)?,
        refresh_jti,
        expires_in: auth.access_ttl_secs,
        expires_at: exp,
        refresh_expires_at: refresh_exp,
    })
}
