//! `/api/routing`: routing rules (commands on the RoutingRule aggregate, read from
//! `routing_rule_view`), the strategies, and rule evaluation for a call (`/route`, and one rule's
//! `/test`).

use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use kraliki_commands::Outcome;
use kraliki_domain::routing::Strategy;
use kraliki_domain::routing_rule::{
    evaluate_rule, evaluate_rules, RouteContext, RoutingRule, RoutingRuleCommand, RuleEvaluation, RuleRef,
    RuleSettings, TargetType,
};
use kraliki_projections::company::Cursor;
use kraliki_projections::routing_rule::{self as view, RuleRow};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::common::{invalid, tenant_context, write_headers, written_id, Paged, MANAGERS, READERS};
use crate::auth::AuthUser;
use crate::error::{ApiError, Code};
use crate::extract::{bad_cursor, page_limit, ApiJson, ApiQuery, IdempotencyKey, MinPosition, PathId};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, update, delete))
        .routes(routes!(test_rule))
        .routes(routes!(strategies))
        .routes(routes!(route))
}

/// A routing rule at its current version: its settings, flat.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleResponse {
    pub id: Uuid,
    #[serde(flatten)]
    pub settings: RuleSettings,
    /// The rule's version (1, 2, …): each create and update makes one; a match names it.
    pub rule_version: i32,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl RuleResponse {
    fn from_row(r: RuleRow) -> Result<Self, ApiError> {
        Ok(Self {
            id: r.id,
            settings: r.settings()?,
            rule_version: r.rule_version,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// One strategy.
#[derive(Debug, Serialize, ToSchema)]
pub struct StrategyInfo {
    pub name: String,
    pub description: String,
}

/// The seed's `/route` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteResponse {
    pub success: bool,
    /// The rule's id.
    pub rule_used: Option<Uuid>,
    /// The version of the rule used.
    pub rule_version: Option<u32>,
    pub rule_name: Option<String>,
    pub strategy: Option<Strategy>,
    pub target_type: Option<TargetType>,
    pub target_id: Option<String>,
    pub target_name: Option<String>,
    pub route_time_ms: f64,
    pub fallback_used: bool,
    pub message: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
    /// Only enabled (or disabled) rules.
    enabled: Option<bool>,
    #[allow(dead_code)] // read by `MinPosition`
    min_position: Option<i64>,
}

async fn owned(state: &AppState, user: &AuthUser, id: Uuid) -> Result<RuleRow, ApiError> {
    view::get(&state.pool, user.company_id, id).await?.ok_or_else(ApiError::not_found)
}

/// 422 when the target or fallback names an agent, team or queue the company does not have.
async fn check_targets(state: &AppState, user: &AuthUser, s: &RuleSettings) -> Result<(), ApiError> {
    let mut error = ApiError::new(Code::ValidationFailed);
    let targets = [
        ("target_id", Some(s.target_type), s.target_id.as_deref()),
        ("fallback_target_id", s.fallback_target_type, s.fallback_target_id.as_deref()),
    ];
    for (field, kind, id) in targets {
        let (Some(kind), Some(id)) = (kind, id) else { continue };
        let Ok(id) = id.parse::<Uuid>() else { continue };
        let (company, pool) = (user.company_id, &state.pool);
        let found = match kind {
            TargetType::Agent => kraliki_projections::agent::get(pool, company, id).await?.is_some(),
            TargetType::Team => kraliki_projections::team::get(pool, company, id).await?.is_some(),
            TargetType::Queue => kraliki_projections::queue::get(pool, company, id).await?.is_some(),
            TargetType::Voicemail | TargetType::External | TargetType::Ivr => true,
        };
        if !found {
            error = error.field(field, "not_found", format!("no such {}", kind.as_str()));
        }
    }
    if error.errors.is_empty() {
        Ok(())
    } else {
        Err(error)
    }
}

async fn answer(
    state: &AppState,
    user: &AuthUser,
    id: Uuid,
    outcome: &Outcome,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let id = written_id(outcome, id);
    state.wait_for(view::NAME, outcome.position).await?;
    let row = owned(state, user, id).await?;
    let mut response = (status, Json(RuleResponse::from_row(row)?)).into_response();
    let location = (status == StatusCode::CREATED).then(|| format!("/api/routing/rules/{id}"));
    write_headers(&mut response, outcome, location);
    Ok(response)
}

#[utoipa::path(post, path = "/api/routing/rules", tag = "routing", operation_id = "routing_rules_create",
    request_body(content = RuleSettings, description = "The seed's rule: `name`, `strategy`, `priority` (100; higher first), `conditions` `[{field, operator, value, logic}]`, hours, a target and a fallback."),
    params(("Idempotency-Key" = Option<String>, Header, description = "A repeated key returns the first outcome")),
    responses((status = 201, body = RuleResponse, description = "Created (version 1)"), (status = 403, body = crate::error::Problem, description = "Not allowed (problem+json)"),
        (status = 422, body = crate::error::Problem, description = "A condition that does not parse, an unknown strategy or a target that does not exist (problem+json)")),
    security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    IdempotencyKey(key): IdempotencyKey,
    body: ApiJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    user.require(MANAGERS)?;
    let settings = RuleSettings::from_json(Value::Object(body.value)).map_err(invalid)?;
    let id = Uuid::now_v7();
    let ctx = tenant_context(&headers, &user, key, body.fingerprint);
    let prepare = async {
        check_targets(&state, &user, &settings).await?;
        Ok(RoutingRuleCommand::CreateRoutingRule { settings, at: Utc::now() })
    };
    let outcome = super::common::create::<RoutingRule>(&state, &ctx, id, prepare).await?;
    answer(&state, &user, id, &outcome, StatusCode::CREATED).await
}

#[utoipa::path(get, path = "/api/routing/rules", tag = "routing", operation_id = "routing_rules_list", params(ListQuery),
    responses((status = 200, body = Vec<RuleResponse>, headers(("Link" = String, description = "The next page: `<…?cursor=…>; rel=\"next\"` (RFC 8288); absent on the last page"), ("X-Next-Cursor" = String, description = "The next page's cursor")), description = "Newest first"), (status = 400, body = crate::error::Problem, description = "Invalid query (problem+json)")),
    security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    MinPosition(min): MinPosition,
    ApiQuery(q): ApiQuery<ListQuery>,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
) -> Result<Paged<RuleResponse>, ApiError> {
    user.require(READERS)?;
    let limit = page_limit(q.limit)?;
    let cursor = q.cursor.as_deref().map(|c| Cursor::decode(c).ok_or_else(bad_cursor)).transpose()?;
    state.wait_for(view::NAME, min).await?;
    let page =
        view::list(&state.pool, user.company_id, q.enabled, cursor.as_ref(), limit).await.map_err(|e| {
            if e.is::<chrono::ParseError>() {
                bad_cursor()
            } else {
                ApiError::from(e)
            }
        })?;
    let items = page.items.into_iter().map(RuleResponse::from_row).collect::<Result<_, _>>()?;
    Ok(Paged::new(items, page.next_cursor, &uri))
}

#[utoipa::path(get, path = "/api/routing/rules/{id}", tag = "routing", operation_id = "routing_rules_read", params(("id" = Uuid, Path)),
    responses((status = 200, body = RuleResponse, description = "OK"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)")),
    security(("bearer" = [])))]
async fn read(
    State(state): State<AppState>,
    user: AuthUser,
    PathId(id): PathId,
    MinPosition(min): MinPosition,
) -> Result<Json<RuleResponse>, ApiError> {
    user.require(READERS)?;
    state.wait_for(view::NAME, min).await?;
    Ok(Json(RuleResponse::from_row(owned(&state, &user, id).await?)?))
}

#[utoipa::path(put, path = "/api/routing/rules/{id}", tag = "routing", operation_id = "routing_rules_update",
    request_body(content = Object, description = "A JSON merge patch over the settings (the next version): absent keeps, `null` resets to the default."),
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = RuleResponse, description = "OK"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)"),
        (status = 422, body = crate::error::Problem, description = "Invalid (problem+json)")),
    security(("bearer" = [])))]
async fn update(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    PathId(id): PathId,
    IdempotencyKey(key): IdempotencyKey,
    body: ApiJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    user.require(MANAGERS)?;
    let row = owned(&state, &user, id).await?;
    let merged = row.settings()?.patched(&body.value).map_err(invalid)?;
    check_targets(&state, &user, &merged).await?;
    let command = RoutingRuleCommand::UpdateRoutingRule { patch: body.value, at: Utc::now() };
    let ctx = tenant_context(&headers, &user, key, body.fingerprint);
    let outcome = state.dispatcher.execute::<RoutingRule>(&id.to_string(), command, &ctx).await?;
    answer(&state, &user, id, &outcome, StatusCode::OK).await
}

#[utoipa::path(delete, path = "/api/routing/rules/{id}", tag = "routing", operation_id = "routing_rules_delete", params(("id" = Uuid, Path)),
    responses((status = 204, description = "Deleted (its versions stay in the log)"), (status = 404, body = crate::error::Problem, description = "Not found (problem+json)")),
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
    let outcome = state
        .dispatcher
        .execute::<RoutingRule>(
            &id.to_string(),
            RoutingRuleCommand::DeleteRoutingRule { at: Utc::now() },
            &ctx,
        )
        .await?;
    state.wait_for(view::NAME, outcome.position).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(post, path = "/api/routing/rules/{id}/test", tag = "routing", operation_id = "routing_rules_test", params(("id" = Uuid, Path)),
    request_body(content = RouteContext, description = "What is known about a call: `caller_number`, `language`, `priority`, `vip`, any attribute."),
    responses((status = 200, body = RuleEvaluation, description = "Each condition's result, the hours, and the match if the rule routes the call"),
        (status = 404, body = crate::error::Problem, description = "Not found (problem+json)")),
    security(("bearer" = [])))]
async fn test_rule(
    State(state): State<AppState>,
    user: AuthUser,
    PathId(id): PathId,
    MinPosition(min): MinPosition,
    body: ApiJson<RouteContext>,
) -> Result<Json<RuleEvaluation>, ApiError> {
    user.require(READERS)?;
    state.wait_for(view::NAME, min).await?;
    let row = owned(&state, &user, id).await?;
    let settings = row.settings()?;
    let rule = RuleRef {
        rule_id: row.id,
        version: u32::try_from(row.rule_version).unwrap_or(0),
        settings: &settings,
    };
    Ok(Json(evaluate_rule(&rule, &body.value, Utc::now())))
}

#[utoipa::path(get, path = "/api/routing/strategies", tag = "routing", operation_id = "routing_strategies",
    responses((status = 200, body = Vec<StrategyInfo>, description = "The seed's eight strategies")),
    security(("bearer" = [])))]
async fn strategies(user: AuthUser) -> Result<Json<Vec<StrategyInfo>>, ApiError> {
    user.require(READERS)?;
    Ok(Json(
        Strategy::SEED
            .iter()
            .map(|s| StrategyInfo { name: s.as_str().to_owned(), description: s.description().to_owned() })
            .collect(),
    ))
}

#[utoipa::path(post, path = "/api/routing/route", tag = "routing", operation_id = "routing_route",
    request_body(content = RouteContext, description = "What is known about the call."),
    responses((status = 200, body = RouteResponse, description = "The rule that routes the call (highest priority first) and where to; `success: false` when none applies")),
    security(("bearer" = [])))]
async fn route(
    State(state): State<AppState>,
    user: AuthUser,
    MinPosition(min): MinPosition,
    body: ApiJson<RouteContext>,
) -> Result<Json<RouteResponse>, ApiError> {
    user.require(READERS)?;
    let started = Instant::now();
    state.wait_for(view::NAME, min).await?;
    let rows = view::all(&state.pool, user.company_id).await?;
    let settings = rows.iter().map(RuleRow::settings).collect::<Result<Vec<_>, _>>()?;
    let rules: Vec<RuleRef<'_>> = rows
        .iter()
        .zip(&settings)
        .map(|(r, s)| RuleRef {
            rule_id: r.id,
            version: u32::try_from(r.rule_version).unwrap_or(0),
            settings: s,
        })
        .collect();
    let matched = evaluate_rules(&rules, &body.value, Utc::now());
    let route_time_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(Json(match matched {
        Some(m) => RouteResponse {
            success: true,
            rule_used: Some(m.rule_id),
            rule_version: Some(m.version),
            rule_name: Some(m.rule_name),
            strategy: Some(m.strategy),
            target_type: Some(m.target.target_type),
            target_id: m.target.target_id,
            target_name: m.target.target_name,
            route_time_ms,
            fallback_used: m.fallback_used,
            message: m.why,
        },
        None => RouteResponse {
            success: false,
            rule_used: None,
            rule_version: None,
            rule_name: None,
            strategy: None,
            target_type: None,
            target_id: None,
            target_name: None,
            route_time_ms,
            fallback_used: false,
            message: "no enabled rule matches the call".into(),
        },
    }))
}
