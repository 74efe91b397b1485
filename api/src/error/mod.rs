//! One error shape everywhere: RFC 9457 `application/problem+json` with a stable `code`.
//!
//! Handlers return `ApiError`; its response carries the `Problem` as an extension and the
//! `problem_layer` middleware renders it with the request path as `instance`. The same layer
//! turns bare error statuses from the framework (unknown route, wrong method, timeout) into
//! problems, so no client ever sees a non-problem error body.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::i18n::Lang;

mod codes;
mod domain;

pub use codes::Code;
pub use domain::{invalid, ErrorCode};

impl Code {
    pub fn as_str(self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    }

    fn for_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => Code::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => Code::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => Code::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Code::UnsupportedMediaType,
            StatusCode::REQUEST_TIMEOUT => Code::RequestTimeout,
            StatusCode::TOO_MANY_REQUESTS => Code::TooManyRequests,
            StatusCode::UNAUTHORIZED => Code::Unauthorized,
            StatusCode::FORBIDDEN => Code::Forbidden,
            StatusCode::SERVICE_UNAVAILABLE => Code::ServiceUnavailable,
            s if s.is_client_error() => Code::InvalidQuery,
            _ => Code::Internal,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub code: String,
    pub message: String,
}

/// RFC 9457 problem details, with a stable `code`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

#[derive(Debug)]
pub struct ApiError {
    pub code: Code,
    pub detail: Option<String>,
    pub errors: Vec<FieldError>,
    pub retry_after: Option<u64>,
    /// The cause of a 500, logged and never sent.
    pub source: Option<anyhow::Error>,
}

impl ApiError {
    pub fn new(code: Code) -> Self {
        Self { code, detail: None, errors: Vec::new(), retry_after: None, source: None }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn field(
        mut self,
        field: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        self.errors.push(FieldError { field: field.into(), code: code.into(), message: message.into() });
        self
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn not_found() -> Self {
        Self::new(Code::NotFound)
    }

    /// An unexpected failure: 500, its cause logged and never sent — unless the cause is the
    /// database being out of reach, which is 503 `database_unavailable` with `Retry-After`
    /// (the pool reconnects by itself once it is back).
    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        let source = source.into();
        if source.chain().any(|c| c.downcast_ref::<sqlx::Error>().is_some_and(database_unreachable)) {
            tracing::warn!(error = format!("{source:#}"), "database unavailable");
            return Self::new(Code::DatabaseUnavailable).retry_after(2);
        }
        Self { source: Some(source), ..Self::new(Code::Internal) }
    }
}

/// Whether an error says the database cannot be reached (as opposed to a query that failed).
pub fn database_unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
            true
        }
        // Class 08 (connection exception) and 57P0x (shut down, cannot connect now).
        sqlx::Error::Database(db) => db.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self::internal(e)
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        Self::internal(e)
    }
}

impl From<kraliki_domain::values::InvalidValue> for ApiError {
    fn from(e: kraliki_domain::values::InvalidValue) -> Self {
        Self::new(Code::ValidationFailed).field(e.field, e.code, e.message)
    }
}

impl From<kraliki_projections::position::WaitError> for ApiError {
    fn from(e: kraliki_projections::position::WaitError) -> Self {
        use kraliki_projections::position::WaitError;
        match e {
            WaitError::UnknownPosition(_) => Self::new(Code::UnknownPosition).detail(e.to_string()),
            WaitError::Timeout(_) => Self::new(Code::ProjectionLagging).detail(e.to_string()).retry_after(1),
            WaitError::Database(db) => Self::internal(db),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(source) = &self.source {
            tracing::error!(error = format!("{source:#}"), "request failed");
        }
        let status = self.code.status();
        let problem = Problem {
            kind: format!("urn:kraliki:problem:{}", self.code.as_str()),
            title: self.code.title().to_owned(),
            status: status.as_u16(),
            code: self.code.as_str(),
            detail: self.detail,
            instance: None,
            errors: self.errors,
        };
        let mut response = status.into_response();
        if let Some(seconds) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response.extensions_mut().insert(problem);
        response
    }
}

fn render(mut problem: Problem, path: &str, lang: Lang, mut response: Response) -> Response {
    problem.instance = Some(path.to_owned());
    if let Some(&code) = Code::ALL.iter().find(|c| c.as_str() == problem.code) {
        problem.title = crate::i18n::title(code, lang).to_owned();
    }
    for e in &mut problem.errors {
        if let Some(m) = crate::i18n::field_message(&e.code, lang) {
            e.message = m.to_owned();
        }
    }
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    headers.insert(header::CONTENT_LANGUAGE, HeaderValue::from_static(lang.tag()));
    headers.remove(header::CONTENT_LENGTH);
    *response.body_mut() = Body::from(body);
    response
}

/// Renders problems (ours and the framework's bare error statuses) with `instance`.
pub async fn problem_layer(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let lang = Lang::negotiate(request.headers().get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()));
    let mut response = next.run(request).await;
    if let Some(problem) = response.extensions_mut().remove::<Problem>() {
        return render(problem, &path, lang, response);
    }
    let status = response.status();
    // A handler that wrote its own typed body (`/ready`'s report) keeps it; bare statuses from
    // the framework become problems.
    let has_body_type = response.headers().contains_key(header::CONTENT_TYPE)
        && !response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/plain"));
    if (status.is_client_error() || status.is_server_error()) && !has_body_type {
        let code = Code::for_status(status);
        let problem = Problem {
            kind: format!("urn:kraliki:problem:{}", code.as_str()),
            title: code.title().to_owned(),
            status: status.as_u16(),
            code: code.as_str(),
            detail: None,
            instance: None,
            errors: Vec::new(),
        };
        return render(problem, &path, lang, response);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_snake_case() {
        assert_eq!(Code::IdempotencyKeyReused.as_str(), "idempotency_key_reused");
        assert_eq!(Code::MalformedJson.status(), StatusCode::BAD_REQUEST);
    }
}
