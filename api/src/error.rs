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

/// Every code the API answers with, its status and its English title. Codes are stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    MalformedJson,
    InvalidBody,
    ValidationFailed,
    UnsupportedMediaType,
    PayloadTooLarge,
    InvalidQuery,
    NotFound,
    MethodNotAllowed,
    Conflict,
    AlreadyExists,
    InvalidState,
    CampaignNotReady,
    ProviderNotConfigured,
    LockedWhileActive,
    IdempotencyKeyReused,
    InvalidIdempotencyKey,
    PreconditionFailed,
    UnknownPosition,
    ProjectionLagging,
    RequestTimeout,
    Unauthorized,
    InvalidCredentials,
    EmailTaken,
    RegistrationClosed,
    Forbidden,
    TooManyRequests,
    ServiceUnavailable,
    Internal,
}

impl Code {
    pub const ALL: [Code; 28] = [
        Code::MalformedJson,
        Code::InvalidBody,
        Code::ValidationFailed,
        Code::UnsupportedMediaType,
        Code::PayloadTooLarge,
        Code::InvalidQuery,
        Code::NotFound,
        Code::MethodNotAllowed,
        Code::Conflict,
        Code::AlreadyExists,
        Code::InvalidState,
        Code::CampaignNotReady,
        Code::ProviderNotConfigured,
        Code::LockedWhileActive,
        Code::IdempotencyKeyReused,
        Code::InvalidIdempotencyKey,
        Code::PreconditionFailed,
        Code::UnknownPosition,
        Code::ProjectionLagging,
        Code::RequestTimeout,
        Code::Unauthorized,
        Code::InvalidCredentials,
        Code::EmailTaken,
        Code::RegistrationClosed,
        Code::Forbidden,
        Code::TooManyRequests,
        Code::ServiceUnavailable,
        Code::Internal,
    ];

    pub fn status(self) -> StatusCode {
        use Code::*;
        match self {
            MalformedJson | InvalidQuery | InvalidIdempotencyKey => StatusCode::BAD_REQUEST,
            InvalidBody | ValidationFailed | IdempotencyKeyReused | UnknownPosition => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            NotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Conflict
            | AlreadyExists
            | InvalidState
            | CampaignNotReady
            | ProviderNotConfigured
            | LockedWhileActive => StatusCode::CONFLICT,
            PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ProjectionLagging | ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Unauthorized | InvalidCredentials => StatusCode::UNAUTHORIZED,
            EmailTaken => StatusCode::CONFLICT,
            RegistrationClosed => StatusCode::FORBIDDEN,
            Forbidden => StatusCode::FORBIDDEN,
            TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn title(self) -> &'static str {
        use Code::*;
        match self {
            MalformedJson => "The request body is not valid JSON",
            InvalidBody => "The request body does not have the expected shape",
            ValidationFailed => "Some fields are invalid",
            UnsupportedMediaType => "The request body must be application/json",
            PayloadTooLarge => "The request body is too large",
            InvalidQuery => "The query string is invalid",
            NotFound => "Not found",
            MethodNotAllowed => "Method not allowed",
            Conflict => "The resource was changed concurrently",
            AlreadyExists => "The resource already exists",
            InvalidState => "The resource is not in a state that allows this",
            CampaignNotReady => "The campaign cannot start yet",
            ProviderNotConfigured => "The campaign's voice provider has no API key configured",
            LockedWhileActive => "These settings change only while the campaign is not dialing",
            IdempotencyKeyReused => "The idempotency key was used with a different request",
            InvalidIdempotencyKey => "The Idempotency-Key header is invalid",
            PreconditionFailed => "The resource changed since you read it",
            UnknownPosition => "The requested log position does not exist",
            ProjectionLagging => "The read model has not caught up yet",
            RequestTimeout => "The request took too long",
            Unauthorized => "Authentication required",
            InvalidCredentials => "Invalid email or password",
            EmailTaken => "A user with this e-mail address already exists",
            RegistrationClosed => "Self-service registration is closed",
            Forbidden => "Not allowed",
            TooManyRequests => "Too many requests",
            ServiceUnavailable => "Service unavailable",
            Internal => "Internal server error",
        }
    }

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

    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        Self { source: Some(source.into()), ..Self::new(Code::Internal) }
    }
}

/// A command's failure as a problem: the broken rule (mapped by `rule`, with its message as the
/// detail), a conflict (409), a reused idempotency key (422), or an internal error.
pub fn dispatch_error<E: std::error::Error>(
    e: kraliki_commands::DispatchError<E>,
    rule: impl FnOnce(&E) -> Code,
) -> ApiError {
    use kraliki_commands::DispatchError;
    match e {
        DispatchError::Rejected(broken) => ApiError::new(rule(&broken)).detail(broken.to_string()),
        DispatchError::Conflict => ApiError::new(Code::Conflict),
        DispatchError::IdempotencyKeyReused => ApiError::new(Code::IdempotencyKeyReused),
        DispatchError::Store(e) => ApiError::internal(e),
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
    if let Some(code) = Code::ALL.into_iter().find(|c| c.as_str() == problem.code) {
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
