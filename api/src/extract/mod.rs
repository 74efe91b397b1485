//! Extractors that turn bad input into clear problems before a handler runs.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::error::{ApiError, Code};

pub mod strict;

/// A JSON body: `application/json` only, size-limited, parsed with the path of the first bad
/// field. Syntax errors are 400 `malformed_json`; shape errors (unknown or missing fields, wrong
/// types) are 422 `invalid_body` with the field named.
pub struct ApiJson<T> {
    pub value: T,
    /// SHA-256 of method, path and body: the request fingerprint for idempotency keys.
    pub fingerprint: String,
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}

pub fn fingerprint(method: &Method, path: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(method.as_str().as_bytes());
    h.update([0]);
    h.update(path.as_bytes());
    h.update([0]);
    h.update(body);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(
                ApiError::new(Code::UnsupportedMediaType).detail("send Content-Type: application/json")
            );
        }
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(Code::PayloadTooLarge).detail(rejection.body_text())
            } else {
                ApiError::new(Code::MalformedJson).detail(rejection.body_text())
            }
        })?;
        check_strict(&bytes)?;
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut *de).map_err(|error| {
            let path = error.path().to_string();
            let inner = error.into_inner();
            match inner.classify() {
                serde_json::error::Category::Data => {
                    let field = if path == "." { String::new() } else { path };
                    let code = if inner.to_string().starts_with("unknown field") {
                        "unknown_field"
                    } else if inner.to_string().starts_with("missing field") {
                        "required"
                    } else {
                        "invalid_type"
                    };
                    let message = inner.to_string();
                    let message = message.split(" at line ").next().unwrap_or_default().to_owned();
                    ApiError::new(Code::InvalidBody).detail(message.clone()).field(field, code, message)
                }
                _ => ApiError::new(Code::MalformedJson).detail(inner.to_string()),
            }
        })?;
        de.end().map_err(|e| ApiError::new(Code::MalformedJson).detail(e.to_string()))?;
        Ok(Self { value, fingerprint: fingerprint(&method, &path, &bytes) })
    }
}

/// What every JSON body must be before it is read as the handler's type: syntactically JSON
/// with nothing after it (400 `malformed_json`), an object at the top (a struct would also
/// accept an array of its fields), no key twice in an object and no U+0000 in any string
/// (422, the field named).
fn check_strict(bytes: &[u8]) -> Result<(), ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    if let Err(error) = serde_path_to_error::deserialize::<_, strict::Strict>(&mut *de) {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let message = inner.to_string();
        let field = if path == "." { String::new() } else { path };
        return Err(if let Some(rest) = message.strip_prefix(strict::DUPLICATE_KEY) {
            let key = rest.split('\u{1f}').nth(1).unwrap_or_default();
            let field = if field.is_empty() { key.to_owned() } else { format!("{field}.{key}") };
            ApiError::new(Code::InvalidBody).detail(format!("{field}: {}", strict::DUPLICATE_KEY)).field(
                field,
                "duplicate_key",
                "this key appears more than once in its object",
            )
        } else if message.starts_with(strict::NUL_CHARACTER) {
            ApiError::new(Code::ValidationFailed).field(
                field,
                "invalid_characters",
                "must not contain control characters",
            )
        } else {
            ApiError::new(Code::MalformedJson).detail(message)
        });
    }
    de.end().map_err(|e| ApiError::new(Code::MalformedJson).detail(e.to_string()))?;
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(ApiError::new(Code::InvalidBody).detail("the body must be a JSON object").field(
            "",
            "invalid_type",
            "expected a JSON object",
        ));
    }
    Ok(())
}

/// An optional JSON body: none when the request has no body (no Content-Length or zero, and no
/// Content-Type); otherwise exactly like [`ApiJson`].
impl<S: Send + Sync, T: DeserializeOwned> OptionalFromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        let headers = req.headers();
        let length = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let chunked = headers.contains_key(header::TRANSFER_ENCODING);
        if !headers.contains_key(header::CONTENT_TYPE) && !chunked && length.unwrap_or(0) == 0 {
            return Ok(None);
        }
        <Self as FromRequest<S>>::from_request(req, state).await.map(Some)
    }
}

/// The `Idempotency-Key` header, if sent: 1–255 visible ASCII characters.
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(raw) = parts.headers.get("idempotency-key") else { return Ok(Self(None)) };
        let key = raw
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| {
                ApiError::new(Code::InvalidIdempotencyKey).detail("1 to 255 visible ASCII characters")
            })?;
        Ok(Self(Some(key.to_owned())))
    }
}

/// Read-your-writes: `?min_position=N` or header `Kraliki-Min-Position: N` asks the read to
/// wait until the read model has applied log position N.
pub struct MinPosition(pub Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for MinPosition {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let from_query = parts.uri.query().and_then(|q| {
            q.split('&').find_map(|pair| pair.strip_prefix("min_position=").map(str::to_owned))
        });
        let from_header =
            parts.headers.get("kraliki-min-position").and_then(|v| v.to_str().ok()).map(str::to_owned);
        match from_query.or(from_header) {
            None => Ok(Self(None)),
            Some(raw) => {
                raw.trim().parse::<i64>().ok().filter(|n| *n >= 0).map(|n| Self(Some(n))).ok_or_else(|| {
                    ApiError::new(Code::InvalidQuery).field(
                        "min_position",
                        "invalid",
                        "must be a non-negative integer",
                    )
                })
            }
        }
    }
}

/// Query parameters; a bad one is 400 `invalid_query` naming it.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        reject_nul_in_query(parts.uri.query())?;
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|rejection| ApiError::new(Code::InvalidQuery).detail(rejection.body_text()))
    }
}

/// A query parameter (name or value) holding U+0000 is refused by name: nothing stores it.
pub fn reject_nul_in_query(query: Option<&str>) -> Result<(), ApiError> {
    let Some(query) = query else { return Ok(()) };
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if name.contains('\0') || value.contains('\0') {
            return Err(ApiError::new(Code::InvalidQuery).field(
                name.replace('\0', ""),
                "invalid_characters",
                "must not contain control characters",
            ));
        }
    }
    Ok(())
}

/// A path id. An id that cannot exist is simply not found.
pub struct PathId(pub uuid::Uuid);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) = axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found())?;
        raw.parse().map(Self).map_err(|_| ApiError::not_found())
    }
}

/// Path parameters. One rule for every route: a path that names nothing that can exist (an id
/// that is not a UUID, say) is simply not found, never a 400.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|_| ApiError::not_found())
    }
}

/// The page size of a list: `limit`, 1–500, 50 when absent.
pub fn page_limit(raw: Option<i64>) -> Result<i64, ApiError> {
    let limit = raw.unwrap_or(50);
    if (1..=500).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::new(Code::InvalidQuery).field("limit", "out_of_range", "must be between 1 and 500"))
    }
}

/// A `cursor` this API did not hand out.
pub fn bad_cursor() -> ApiError {
    ApiError::new(Code::InvalidQuery).field("cursor", "invalid", "not a cursor from this API")
}
