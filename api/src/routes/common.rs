//! Pieces every tenant-scoped write route shares: the command context, collecting field
//! problems, and the headers of a write's answer.

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use kraliki_commands::{CommandContext, Outcome};
use kraliki_domain::values::InvalidValue;

use crate::auth::AuthUser;
use crate::error::ApiError;

/// The command context: `tenant` owns the target, the caller is the actor, the caller's own
/// company scopes their idempotency keys, the request id correlates.
pub fn context(
    headers: &HeaderMap,
    user: &AuthUser,
    tenant: uuid::Uuid,
    key: Option<String>,
    fingerprint: String,
) -> CommandContext {
    let mut ctx = CommandContext::new(tenant.to_string(), user.actor());
    if let Some(request_id) = headers.get("x-request-id").and_then(|v| v.to_str().ok()) {
        ctx = ctx.with_correlation(request_id);
    }
    if let Some(key) = key {
        ctx = ctx.with_idempotency(user.company_id.to_string(), key, Some(fingerprint));
    }
    ctx
}

/// [`context`] for the caller's own company's resources (campaigns, contacts, …).
pub fn tenant_context(
    headers: &HeaderMap,
    user: &AuthUser,
    key: Option<String>,
    fingerprint: String,
) -> CommandContext {
    context(headers, user, user.company_id, key, fingerprint)
}

/// A keyed creation: a retry of a request that already succeeded gets the first outcome before
/// the route's own checks run (they may refuse because of what that first request did — a
/// duplicate it created itself), and again if `prepare` refuses (a concurrent first request may
/// have committed meanwhile). `prepare` makes those checks and the command.
pub async fn create<A>(
    state: &crate::state::AppState,
    ctx: &CommandContext,
    id: uuid::Uuid,
    prepare: impl std::future::Future<Output = Result<A::Command, ApiError>>,
) -> Result<Outcome, ApiError>
where
    A: cqrs_es::Aggregate<Services = ()> + Clone + 'static,
    A::Command: kraliki_domain::CommandPolicy + Clone + Send + Sync,
    A::Error: crate::error::ErrorCode,
{
    if let Some(first) = state.dispatcher.replayed::<A::Error>(ctx).await? {
        return Ok(first);
    }
    let command = match prepare.await {
        Ok(command) => command,
        Err(refused) => {
            return match state.dispatcher.replayed::<A::Error>(ctx).await? {
                Some(first) => Ok(first),
                None => Err(refused),
            }
        }
    };
    Ok(state.dispatcher.execute::<A>(&id.to_string(), command, ctx).await?)
}

/// Every field problem as one 422 `validation_failed`.
pub fn invalid(problems: Vec<InvalidValue>) -> ApiError {
    crate::error::invalid(&problems)
}

/// Collects every field problem before answering, so a client fixes them all at once.
#[derive(Default)]
pub struct Checks(pub Vec<InvalidValue>);

impl Checks {
    pub fn take<T>(&mut self, r: Result<T, InvalidValue>) -> Option<T> {
        r.map_err(|e| self.0.push(e)).ok()
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(invalid(self.0))
        }
    }
}

/// `Kraliki-Position` (where to wait for read-your-writes), `Idempotent-Replayed` and, for a
/// creation, `Location`.
pub fn write_headers(response: &mut Response, outcome: &Outcome, location: Option<String>) {
    let headers = response.headers_mut();
    if let Some(position) = outcome.position {
        if let Ok(v) = HeaderValue::from_str(&position.to_string()) {
            headers.insert("kraliki-position", v);
        }
    }
    if outcome.replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    if let Some(v) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert(header::LOCATION, v);
    }
}

/// The id a write concerns: the one asked for, or the first request's on an idempotent replay.
pub fn written_id(outcome: &Outcome, asked: uuid::Uuid) -> uuid::Uuid {
    if outcome.replayed {
        outcome.aggregate_id.split(':').next().and_then(|s| s.parse().ok()).unwrap_or(asked)
    } else {
        asked
    }
}

/// A page of a list, answered the one way every list answers: the body is the bare JSON array
/// of the items (what the template UIs read); the next page, if any, is in
/// `Link: </same/path?…&cursor=…>; rel="next"` (RFC 8288) and in `X-Next-Cursor`.
pub struct Paged<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
    /// The request's URI: the next page's link keeps its path and other parameters.
    pub uri: axum::http::Uri,
}

impl<T> Paged<T> {
    pub fn new(items: Vec<T>, next_cursor: Option<String>, uri: &axum::http::Uri) -> Self {
        Self { items, next_cursor, uri: uri.clone() }
    }
}

/// The request's URI with `cursor` set to `cursor` (other parameters kept, in order).
pub fn next_link(uri: &axum::http::Uri, cursor: &str) -> String {
    let mut query: Vec<(String, String)> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes()).into_owned().filter(|(k, _)| k != "cursor").collect()
        })
        .unwrap_or_default();
    query.push(("cursor".into(), cursor.to_owned()));
    let encoded = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(query).finish();
    format!("{}?{encoded}", uri.path())
}

impl<T: serde::Serialize> axum::response::IntoResponse for Paged<T> {
    fn into_response(self) -> Response {
        let mut response = axum::Json(self.items).into_response();
        if let Some(cursor) = self.next_cursor {
            let headers = response.headers_mut();
            if let Ok(v) =
                HeaderValue::from_str(&format!("<{}>; rel=\"next\"", next_link(&self.uri, &cursor)))
            {
                headers.insert(header::LINK, v);
            }
            if let Ok(v) = HeaderValue::from_str(&cursor) {
                headers.insert("x-next-cursor", v);
            }
        }
        response
    }
}

/// Reader roles: everyone in the company. Writer roles differ per resource.
pub const READERS: &[kraliki_domain::values::Role] = &[
    kraliki_domain::values::Role::Agent,
    kraliki_domain::values::Role::Auditor,
    kraliki_domain::values::Role::Analyst,
    kraliki_domain::values::Role::Supervisor,
    kraliki_domain::values::Role::Admin,
];

pub const MANAGERS: &[kraliki_domain::values::Role] =
    &[kraliki_domain::values::Role::Supervisor, kraliki_domain::values::Role::Admin];
