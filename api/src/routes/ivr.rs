//! `/api/ivr/flows`: IVR flows (commands on the IvrFlow aggregate), read from `ivr_flow_view`
//! and `ivr_flow_version_view`. The draft is saved whatever its logic (the builder saves work in
//! progress) and answered with the validator's findings; publishing validates it and refuses
//! with every finding; published versions are immutable and any of them can be made live again.
//! `…/test` runs the pure simulator over the draft or a version with scripted inputs.
//!
//! Bodies are read straight into the domain's `Flow`, never through a `serde_json::Value`: a
//! `Value` keeps one of two repeated keys, the flow's own reader reports them.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use kraliki_commands::Outcome;
use kraliki_domain::ivr::{
    check, simulate, CallStart, Flow, FlowIssue, IvrFlow, IvrFlowCommand, ScriptedInput, Simulation, Trace,
    ValidationContext,
};
use kraliki_projections::company::Cursor;
use kraliki_projections::ivr_flow::{self as view, IvrFlowFilter, IvrFlowRow, IvrFlowVersionRow};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::common::{create, tenant_context, write_headers, written_id, Paged, MANAGERS, READERS};
use crate::auth::AuthUser;
use crate::error::{ApiError, Code};
use crate::extract::{
    bad_cursor, page_limit, ApiJson, ApiPath, ApiQuery, IdempotencyKey, MinPosition, PathId,
};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create_flow))
        .routes(routes!(read, replace, patch, delete))
        .routes(routes!(publish))
        .routes(routes!(versions))
        .routes(routes!(read_version))
        .routes(routes!(republish))
        .routes(routes!(test))
        .routes(routes!(analytics))
}

/// A flow as the builder reads it: the draft's fields flat (the seed's shape), plus its state,
/// its versions and the validator's findings on the draft.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlowResponse {
    pub id: Uuid,
    /// The draft.
    #[serde(flatten)]
    pub flow: Flow,
    /// draft (never published) | published
    pub status: String,
    /// The highest version published (0: never).
    pub latest_version: i32,
    /// The version calls run (the latest, or one republished).
    pub live_version: Option<i32>,
    /// The draft differs from the latest version.
    pub draft_changed: bool,
    /// Whether no finding is an error (publishing also checks the tenant's configuration).
    pub publishable: bool,
    /// The validator's findings on the draft, errors and warnings.
    pub issues: Vec<FlowIssue>,
    /// Sequence of the flow's stream.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the live version was last published or republished.
    pub published_at: Option<DateTime<Utc>>,
}

impl FlowResponse {
    /// The row with the findings under `ctx` (the stored ones are without configuration).
    fn from_row(r: IvrFlowRow, ctx: &ValidationContext) -> Result<Self, ApiError> {
        let flow = r.flow()?;
        let issues = if *ctx == ValidationContext::default() { r.issues()? } else { check(&flow, ctx) };
        Ok(Self {
            id: r.id,
            flow,
            status: r.status,
            latest_version: r.latest_version,
            live_version: r.live_version,
            draft_changed: r.draft_changed,
            publishable: !issues.iter().any(FlowIssue::is_error),
            issues,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            published_at: r.published_at,
        })
    }
}

/// One published version, as it was published.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlowVersionResponse {
    pub flow_id: Uuid,
    /// 1, 2, …
    pub version: i32,
    /// Calls run this version.
    pub live: bool,
    pub flow: Flow,
    pub published_at: DateTime<Utc>,
    /// Who published it (`user:<id>`, `service_account:<id>`).
    pub published_by: Option<String>,
}

impl FlowVersionResponse {
    fn from_row(r: IvrFlowVersionRow, live: Option<i32>) -> Result<Self, ApiError> {
        Ok(Self {
            flow_id: r.flow_id,
            version: r.version,
            live: live == Some(r.version),
            flow: r.flow()?,
            published_at: r.published_at,
            published_by: r.published_by,
        })
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
    /// draft | published
    status: Option<String>,
    campaign_id: Option<Uuid>,
    team_id: Option<Uuid>,
    /// Name contains (case-insensitive).
    q: Option<String>,
    #[allow(dead_code)] // read by `MinPosition`
    min_position: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct VersionsQuery {
    limit: Option<i64>,
    /// The `X-Next-Cursor` of the previous page.
    cursor: Option<String>,
    #[allow(dead_code)] // read by `MinPosition`
    min_position: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AnalyticsQuery {
    /// One published version (default: every version).
    version: Option<u32>,
    /// Calls that entered from (inclusive).
    from: Option<DateTime<Utc>>,
    /// … to (exclusive).
    to: Option<DateTime<Utc>>,
    #[allow(dead_code)] // read by `MinPosition`
    min_position: Option<i64>,
}

/// A simulated call: the draft's (or `version`'s) flow with scripted inputs.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TestBody {
    /// A published version to run (the draft when absent).
    version: Option<u32>,
    /// What the call brings (caller number, language, variables).
    call: Option<CallStart>,
    /// When the call starts (now when absent): conditions read this clock.
    start_at: Option<DateTime<Utc>>,
    /// The inputs in order (`{"type": "digits", "digits": "1"}`, `{"type": "timeout"}`,
    /// `{"type": "speech", "text": "sales"}`, `{"type": "webhook_result", "status": 200,
    /// "body": {…}}`, …), each `after_seconds` after the previous one.
    #[serde(default)]
    inputs: Vec<ScriptedInput>,
}

/// The flow as the read model shows it once it applied `outcome`.
async fn answer(
    state: &AppState,
    user: &AuthUser,
    id: Uuid,
    outcome: &Outcome,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let id = written_id(outcome, id);
    state.wait_for(view::NAME, outcome.position).await?;
    let row = view::get(&state.pool, user.company_id, id).await?.ok_or_else(ApiError::not_found)?;
    let mut response =
        (status, Json(FlowResponse::from_row(row, &validation_context(state))?)).into_response();
    let location = (status == StatusCode::CREATED).then(|| format!("/api/ivr/flows/{id}"));
    write_headers(&mut response, outcome, location);
    Ok(response)
}

/// The flow if it belongs to the caller's company (else 404).
async fn owned(state: &AppState, user: &AuthUser, id: Uuid) -> Result<IvrFlowRow, ApiError> {
    view::get(&state.pool, user.company_id, id).await?.ok_or_else(ApiError::not_found)
}

/// What publishing checks beyond the flow: the configured webhook allow-list (`ivr.*`).
/// Transfer targets are not looked up (no queue read model yet).
fn validation_context(state: &AppState) -> ValidationContext {
    ValidationContext { webhooks: state.settings.ivr.webhook_policy(), queues: None, agents: None }
}

#[utoipa::path(post, path = "/api/ivr/flows", tag = "ivr", operation_id = "ivr_flows_create",
    request_body(content = Flow, description = "The flow (the seed's shape: `nodes` keyed by id). Saved even when it cannot be published yet; the answer lists the findings."),
    params(("Idempotency-Key" = Option<String>, Header, description = "A repeated key returns the first outcome")),
    responses((status = 201, body = FlowResponse, description = "Created as a draft"), (status = 403, body = crate::error::Problem, description = "Not allowed (problem+json)"),
        (status = 422, body = crate::error::Problem, description = "Not a flow: no name, too many nodes, a repeated key, an unknown node type (problem+json)")),
    security(("bearer" = [])))]
async fn create_flow(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    IdempotencyKey(key): IdempotencyKey,
    FlowJson(body): FlowJson,
) -> Result<Response, ApiError> {
    user.require(MANAGERS)?;
    let id = Uuid::now_v7();
    let ctx = tenant_context(&headers, &user, key, body.fingerprint);
    let flow = body.value;
    let outcome = create::<IvrFlow>(&state, &ctx, id, async {
        Ok(IvrFlowCommand::CreateIvrFlow { flow, at: Utc::now() })
    })
    .await?;
    answer(&state, &user, id, &outcome, StatusCode::CREATED).await
}

#[utoipa::path(get, path = "/api/ivr/flows", tag = "ivr", operation_id = "ivr_flows_list", params(ListQuery),
    responses((status = 200, body = Vec<FlowResponse>, headers(("Link" = String, description = "The next page: `<…?cursor=…>; rel=\"next\"` (RFC 8288); absent on the last page"), ("X-Next-Cursor" = String, description = "The next page's cursor")), description = "Newest first"), (status = 400, body = crate::error::Problem, description = "Invalid query (problem+json)")),
    security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    MinPosition(min): MinPosition,
    ApiQuery(q): ApiQuery<ListQuery>,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
) -> Result<Paged<FlowResponse>, ApiError> {
    user.require(READERS)?;
    let limit = page_limit(q.limit)?;
    if q.status.as_deref().is_some_and(|s| !["draft", "published"].contains(&s)) {
        return Err(ApiError::new(Code::InvalidQuery).field("status", "invalid", "draft or published"));
    }
    let cursor = q.cursor.as_deref().map(|c| Cursor::decode(c).ok_or_else(bad_cursor)).transpose()?;
    state.wait_for(view::NAME, min).await?;
    let filter =
        IvrFlowFilter { status: q.status, campaign_id: q.campaign_id, team_id: q.team_id, search: q.q };
    let page =
        view::list(&state.pool, user.company_id, &filter, cursor.as_ref(), limit).await.map_err(|e| {
            if e.is::<chrono::ParseError>() {
                bad_cursor()
            } else {
                ApiError::from(e)
            }
        })?;
    let ctx = validation_context(&state);
    let items = page.items.into_iter().map(|r| FlowResponse::from_row(r, &ctx)).collect::<Result<_, _>>()?;
    Ok(Paged::new(items, page.next_cursor, &uri))
}

#[utoipa::path(get, path = "/api/ivr/flows/{id}", tag = "ivr", operation_id = "ivr_flows_read", params(("id" = Uuid, Path)),
    responses((status = 200, body = FlowResponse, description = "The draft, its findings and its versions"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)")),
    security(("bearer" = [])))]
async fn read(
    State(state): State<AppState>,
    user: AuthUser,
    PathId(id): PathId,
    MinPosition(min): MinPosition,
) -> Result<Json<FlowResponse>, ApiError> {
    user.require(READERS)?;
    state.wait_for(view::NAME, min).await?;
    Ok(Json(FlowResponse::from_row(owned(&state, &user, id).await?, &validation_context(&state))?))
}

async fn change(
    state: AppState,
    user: AuthUser,
    headers: HeaderMap,
    id: Uuid,
    key: Option<String>,
    fingerprint: String,
    command: IvrFlowCommand,
) -> Result<Response, ApiError> {
    user.require(MANAGERS)?;
    owned(&state, &user, id).await?;
    let ctx = tenant_context(&headers, &user, key, fingerprint);
    let outcome = state.dispatcher.execute::<IvrFlow>(&id.to_string(), command, &ctx).await?;
    answer(&state, &user, id, &outcome, StatusCode::OK).await
}

#[utoipa::path(put, path = "/api/ivr/flows/{id}", tag = "ivr", operation_id = "ivr_flows_update",
    request_body(content = Flow, description = "The whole draft (replaces it). The live version does not change until the draft is published."),
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = FlowResponse, description = "Saved, with the findings"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)"),
        (status = 422, body = crate::error::Problem, description = "Not a flow (problem+json)")),
    security(("bearer" = [])))]
async fn replace(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    PathId(id): PathId,
    IdempotencyKey(key): IdempotencyKey,
    FlowJson(body): FlowJson,
) -> Result<Response, ApiError> {
    let command = IvrFlowCommand::ReplaceIvrFlowDraft { flow: body.value, at: Utc::now() };
    change(state, user, headers, id, key, body.fingerprint, command).await
}

#[utoipa::path(patch, path = "/api/ivr/flows/{id}", tag = "ivr", operation_id = "ivr_flows_patch",
    request_body(content = Object, description = "An RFC 7396 merge patch over the draft: `{\"nodes\": {\"n3\": null}}` removes a node, `{\"nodes\": {\"n1\": {\"message\": \"Hi\"}}}` edits one."),
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = FlowResponse, description = "Saved, with the findings"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)"),
        (status = 422, body = crate::error::Problem, description = "The patched draft is not a flow (problem+json)")),
    security(("bearer" = [])))]
async fn patch(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    PathId(id): PathId,
    IdempotencyKey(key): IdempotencyKey,
    body: ApiJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    let command = IvrFlowCommand::UpdateIvrFlowDraft { patch: body.value, at: Utc::now() };
    change(state, user, headers, id, key, body.fingerprint, command).await
}

#[utoipa::path(delete, path = "/api/ivr/flows/{id}", tag = "ivr", operation_id = "ivr_flows_delete", params(("id" = Uuid, Path)),
    responses((status = 204, description = "Archived: no call runs it, it is no longer listed (its events stay in the log)"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)")),
    security(("bearer" = [])))]
async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    user.require(MANAGERS)?;
    owned(&state, &user, id).await?;
    let ctx = tenant_context(&headers, &user, None, String::new());
    let command = IvrFlowCommand::ArchiveIvrFlow { at: Utc::now() };
    let outcome = state.dispatcher.execute::<IvrFlow>(&id.to_string(), command, &ctx).await?;
    state.wait_for(view::NAME, outcome.position).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(post, path = "/api/ivr/flows/{id}/publish", tag = "ivr", operation_id = "ivr_flows_publish", params(("id" = Uuid, Path)),
    responses((status = 200, body = FlowResponse, description = "The draft is the next version and live (an unchanged draft that is live already makes no version)"),
        (status = 404, body = crate::error::Problem, description = "Not found (problem+json)"),
        (status = 422, body = crate::error::Problem, description = "`flow_not_publishable`: every finding in `errors` (`field` = `nodes.<id>.<field>`, `code` = the finding's code; warnings' messages start with `warning:`) (problem+json)")),
    security(("bearer" = [])))]
async fn publish(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    let command = IvrFlowCommand::PublishIvrFlow { context: validation_context(&state), at: Utc::now() };
    change(state, user, headers, id, None, String::new(), command).await
}

#[utoipa::path(get, path = "/api/ivr/flows/{id}/versions", tag = "ivr", operation_id = "ivr_flows_versions", params(("id" = Uuid, Path), VersionsQuery),
    responses((status = 200, body = Vec<FlowVersionResponse>, headers(("Link" = String, description = "The next page (RFC 8288)"), ("X-Next-Cursor" = String, description = "The next page's cursor")), description = "Newest first"),
        (status = 404, body = crate::error::Problem, description = "Not found (problem+json)")),
    security(("bearer" = [])))]
async fn versions(
    State(state): State<AppState>,
    user: AuthUser,
    PathId(id): PathId,
    MinPosition(min): MinPosition,
    ApiQuery(q): ApiQuery<VersionsQuery>,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
) -> Result<Paged<FlowVersionResponse>, ApiError> {
    user.require(READERS)?;
    let limit = page_limit(q.limit)?;
    let before = q.cursor.as_deref().map(|c| c.parse::<i32>().map_err(|_| bad_cursor())).transpose()?;
    state.wait_for(view::NAME, min).await?;
    let flow = owned(&state, &user, id).await?;
    let (rows, next) = view::versions(&state.pool, user.company_id, id, before, limit).await?;
    let items = rows
        .into_iter()
        .map(|r| FlowVersionResponse::from_row(r, flow.live_version))
        .collect::<Result<_, _>>()?;
    Ok(Paged::new(items, next, &uri))
}

#[utoipa::path(get, path = "/api/ivr/flows/{id}/analytics", tag = "ivr", operation_id = "ivr_flows_analytics", params(("id" = Uuid, Path), AnalyticsQuery),
    responses((status = 200, body = kraliki_projections::ivr_visit::FlowFigures, description = "Calls through the flow: visits, exits per option, drop-off and median time per node, how the calls ended, completion"),
        (status = 404, body = crate::error::Problem, description = "Not found (problem+json)"),
        (status = 400, body = crate::error::Problem, description = "`from` after `to`, or a bad version (problem+json)")),
    security(("bearer" = [])))]
async fn analytics(
    State(state): State<AppState>,
    user: AuthUser,
    PathId(id): PathId,
    MinPosition(min): MinPosition,
    ApiQuery(q): ApiQuery<AnalyticsQuery>,
) -> Result<Json<kraliki_projections::ivr_visit::FlowFigures>, ApiError> {
    use kraliki_projections::ivr_visit;
    user.require(READERS)?;
    if let (Some(from), Some(to)) = (q.from, q.to) {
        if from > to {
            return Err(ApiError::new(Code::InvalidQuery).field(
                "from",
                "invalid",
                "`from` must not be after `to`",
            ));
        }
    }
    state.wait_for(ivr_visit::NAME, min).await?;
    owned(&state, &user, id).await?;
    let version = q
        .version
        .map(i32::try_from)
        .transpose()
        .map_err(|_| ApiError::new(Code::InvalidQuery).field("version", "invalid", "a version number"))?;
    let filter = ivr_visit::AnalyticsFilter { version, from: q.from, to: q.to };
    Ok(Json(ivr_visit::analytics(&state.pool, user.company_id, id, &filter).await?))
}

#[utoipa::path(get, path = "/api/ivr/flows/{id}/versions/{version}", tag = "ivr", operation_id = "ivr_flows_version_read",
    params(("id" = Uuid, Path), ("version" = u32, Path, description = "1, 2, …")),
    responses((status = 200, body = FlowVersionResponse, description = "The version as published"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)")),
    security(("bearer" = [])))]
async fn read_version(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath((id, version)): ApiPath<(Uuid, u32)>,
    MinPosition(min): MinPosition,
) -> Result<Json<FlowVersionResponse>, ApiError> {
    user.require(READERS)?;
    state.wait_for(view::NAME, min).await?;
    let flow = owned(&state, &user, id).await?;
    let version = i32::try_from(version).map_err(|_| ApiError::not_found())?;
    let row = view::get_version(&state.pool, user.company_id, id, version)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(FlowVersionResponse::from_row(row, flow.live_version)?))
}

#[utoipa::path(post, path = "/api/ivr/flows/{id}/versions/{version}/republish", tag = "ivr", operation_id = "ivr_flows_republish",
    params(("id" = Uuid, Path), ("version" = u32, Path, description = "An earlier (or the latest) published version")),
    responses((status = 200, body = FlowResponse, description = "That version is live again (rollback); the draft is unchanged"),
        (status = 404, body = crate::error::Problem, description = "No such flow or version (problem+json)")),
    security(("bearer" = [])))]
async fn republish(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    ApiPath((id, version)): ApiPath<(Uuid, u32)>,
) -> Result<Response, ApiError> {
    let command = IvrFlowCommand::RepublishIvrFlowVersion { version, at: Utc::now() };
    change(state, user, headers, id, None, String::new(), command).await
}

#[utoipa::path(post, path = "/api/ivr/flows/{id}/test", tag = "ivr", operation_id = "ivr_flows_test", params(("id" = Uuid, Path)),
    request_body(content = Option<TestBody>, description = "`{version?, call?, start_at?, inputs: [...]}`; webhooks are not called: the script gives their answers"),
    responses((status = 200, body = Trace, description = "The path taken, every step and effect, the variables at the end"),
        (status = 404, body = crate::error::Problem, description = "No such flow or version (problem+json)"),
        (status = 422, body = crate::error::Problem, description = "Invalid body (problem+json)")),
    security(("bearer" = [])))]
async fn test(
    State(state): State<AppState>,
    user: AuthUser,
    PathId(id): PathId,
    MinPosition(min): MinPosition,
    body: Option<ApiJson<TestBody>>,
) -> Result<Json<Trace>, ApiError> {
    user.require(READERS)?;
    state.wait_for(view::NAME, min).await?;
    let row = owned(&state, &user, id).await?;
    let b = body.map(|b| b.value).unwrap_or_default();
    let flow = match b.version {
        None => row.flow()?,
        Some(version) => {
            let version = i32::try_from(version).map_err(|_| ApiError::not_found())?;
            view::get_version(&state.pool, user.company_id, id, version)
                .await?
                .ok_or_else(ApiError::not_found)?
                .flow()?
        }
    };
    let simulation = Simulation { call: b.call.unwrap_or_default(), start_at: b.start_at, inputs: b.inputs };
    Ok(Json(simulate(&flow, &simulation, Utc::now())))
}

/// A flow body: [`ApiJson`]`<Flow>` (read straight into the domain's `Flow`), then refused with
/// 422 `invalid_body` if it has a field neither the flow nor a node knows (`nodes.n1.nxt_node`
/// would otherwise vanish and leave the node unlinked). The domain's `Flow` takes unknown fields
/// (a seed flow reads as it is), so the check is the API's; the field names come from serde's
/// own list for `Flow` and `Node`.
pub struct FlowJson(pub ApiJson<Flow>);

impl<S: Send + Sync> axum::extract::FromRequest<S> for FlowJson {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        use axum::body::{Body, Bytes};
        let (parts, body) = req.into_parts();
        let request = axum::extract::Request::from_parts(parts.clone(), body);
        let bytes = <Bytes as axum::extract::FromRequest<S>>::from_request(request, state).await.map_err(
            |rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(Code::PayloadTooLarge).detail(rejection.body_text())
                } else {
                    ApiError::new(Code::MalformedJson).detail(rejection.body_text())
                }
            },
        )?;
        let rebuilt = axum::extract::Request::from_parts(parts, Body::from(bytes.clone()));
        let parsed = <ApiJson<Flow> as axum::extract::FromRequest<S>>::from_request(rebuilt, state).await?;
        let unknown = unknown_fields::of(&bytes);
        if let Some(first) = unknown.first() {
            let mut error = ApiError::new(Code::InvalidBody).detail(format!("unknown field `{first}`"));
            for field in unknown {
                error = error.field(field, "unknown_field", "not a field of an IVR flow or node");
            }
            return Err(error);
        }
        Ok(Self(parsed))
    }
}

mod unknown_fields {
    //! The keys of a flow body that `Flow` and `Node` do not have, found by walking the body's
    //! keys (values skipped) — no `serde_json::Value` in between.

    use std::fmt;
    use std::sync::OnceLock;

    use kraliki_domain::ivr::{Flow, Node};
    use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

    /// `path.key` for every unknown key, in the body's order.
    pub fn of(body: &[u8]) -> Vec<String> {
        let mut found = Vec::new();
        let mut de = serde_json::Deserializer::from_slice(body);
        // The body parsed as a `Flow` already: an error here can only mean nothing to report.
        let _ = Keys { path: "", nodes: true, out: &mut found }.deserialize(&mut de);
        found
    }

    /// The field names serde's derive gives `T` (what `deserialize_struct` is told).
    fn fields_of<T: de::DeserializeOwned>() -> &'static [&'static str] {
        struct Introspect<'a>(&'a mut &'static [&'static str]);
        impl<'de> Deserializer<'de> for Introspect<'_> {
            type Error = de::value::Error;
            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
                Err(de::Error::custom("introspection"))
            }
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Self::Error> {
                *self.0 = fields;
                Err(de::Error::custom("introspection"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
                option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
                ignored_any
            }
        }
        let mut fields: &'static [&'static str] = &[];
        let _ = T::deserialize(Introspect(&mut fields));
        fields
    }

    fn flow_fields() -> &'static [&'static str] {
        static FIELDS: OnceLock<&'static [&'static str]> = OnceLock::new();
        FIELDS.get_or_init(fields_of::<Flow>)
    }

    fn node_fields() -> &'static [&'static str] {
        static FIELDS: OnceLock<&'static [&'static str]> = OnceLock::new();
        FIELDS.get_or_init(fields_of::<Node>)
    }

    /// The top level (`nodes: true`) or one node.
    struct Keys<'a> {
        path: &'a str,
        nodes: bool,
        out: &'a mut Vec<String>,
    }

    impl<'de> DeserializeSeed<'de> for Keys<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Keys<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let known = if self.nodes { flow_fields() } else { node_fields() };
            while let Some(key) = map.next_key::<String>()? {
                if !known.contains(&key.as_str()) {
                    self.out.push(format!("{}{key}", self.path));
                    map.next_value::<IgnoredAny>()?;
                } else if self.nodes && key == "nodes" {
                    map.next_value_seed(Nodes { out: &mut *self.out })?;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(())
        }
        fn visit_unit<E: de::Error>(self) -> Result<(), E> {
            Ok(())
        }
    }

    /// `nodes`: id → node.
    struct Nodes<'a> {
        out: &'a mut Vec<String>,
    }

    impl<'de> DeserializeSeed<'de> for Nodes<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Nodes<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object of nodes")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(id) = map.next_key::<String>()? {
                let path = format!("nodes.{id}.");
                map.next_value_seed(Keys { path: &path, nodes: false, out: &mut *self.out })?;
            }
            Ok(())
        }
        fn visit_unit<E: de::Error>(self) -> Result<(), E> {
            Ok(())
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn unknown_keys_are_named_and_known_ones_pass() {
            assert!(flow_fields().contains(&"entry_node_id"), "{:?}", flow_fields());
            assert!(node_fields().contains(&"type") && node_fields().contains(&"next_node"));
            let body = br#"{"name": "x", "colour": 1, "nodes": {"a": {"type": "menu", "nxt_node": "b",
                "options": {"1": "b"}}, "b": {"type": "end_call"}}, "entry_node_id": "a"}"#;
            assert_eq!(of(body), ["colour", "nodes.a.nxt_node"]);
            assert!(of(br#"{"name": "x", "nodes": null}"#).is_empty());
        }
    }
}
