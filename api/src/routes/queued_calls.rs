//! `/api/v1/queues/{id}/calls`: the calls waiting in a queue (read from `queue_entry_view`, in
//! the queue strategy's order), putting a call in a queue and taking it out (commands on the
//! call's QueuedCall stream). The router does the rest: it offers the call to the agent the
//! strategy picks.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use kraliki_domain::queued_call::{QueuedCall as Aggregate, QueuedCallCommand};
use kraliki_domain::routing::{order_waiting_for, CallToRoute, PreferredAgent};
use kraliki_projections::queued_call::{self as view, EntryRow};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::common::{tenant_context, write_headers, MANAGERS, READERS};
use crate::auth::AuthUser;
use crate::error::{ApiError, Code};
use crate::extract::{ApiJson, IdempotencyKey, MinPosition, PathId};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, enqueue)).routes(routes!(remove))
}

/// The offer a waiting call has pending.
#[derive(Debug, Serialize, ToSchema)]
pub struct PendingOffer {
    pub offer_id: Uuid,
    pub agent_id: Uuid,
    pub offered_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A call in a queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueuedCall {
    pub call_id: Uuid,
    /// 1-based, in the queue strategy's order (VIP and priority first where it says so).
    pub position: i64,
    /// Seconds waited so far.
    pub wait_seconds: i64,
    pub queue_id: Uuid,
    /// The call's visit to a queue (2 after an overflow into this one, …).
    pub visit: i32,
    /// waiting, or offered (an agent holds a reservation for it).
    pub status: String,
    pub priority: i32,
    pub vip: bool,
    /// Skill → minimum level the call requires (the queue's and the call's own).
    pub required_skills: BTreeMap<String, u8>,
    pub language: Option<String>,
    pub queued_at: DateTime<Utc>,
    /// When the queue's max wait sends it to the overflow target.
    pub overflow_at: Option<DateTime<Utc>>,
    /// Routing decisions made for it so far.
    pub decisions: i32,
    /// Why the last decision found nobody (`none_eligible`, …), while it waits.
    pub waiting_because: Option<String>,
    pub offer: Option<PendingOffer>,
    /// Agents who rejected or missed it (not offered it again).
    pub turned_down: Vec<Uuid>,
}

impl QueuedCall {
    fn from_row(e: &EntryRow, position: i64, now: DateTime<Utc>) -> Result<Self, ApiError> {
        let call = e.call()?;
        let offer = match (e.status.as_str(), e.offer_id, e.agent_id) {
            ("offered", Some(offer_id), Some(agent_id)) => Some(PendingOffer {
                offer_id,
                agent_id,
                offered_at: e.offered_at,
                expires_at: e.offer_expires_at,
            }),
            _ => None,
        };
        let mut turned_down: Vec<Uuid> = e.turned_down().into_iter().collect();
        turned_down.sort();
        Ok(Self {
            call_id: e.call_id,
            position,
            wait_seconds: (now - e.arrived_at).num_seconds().max(0),
            queue_id: e.queue_id,
            visit: e.visit,
            status: e.status.clone(),
            priority: e.priority,
            vip: e.vip,
            required_skills: call.required_skills,
            language: call.required_language,
            queued_at: e.arrived_at,
            overflow_at: e.overflow_at,
            decisions: e.decisions,
            waiting_because: if e.status == "waiting" { e.last_why_none.clone() } else { None },
            offer,
            turned_down,
        })
    }
}

/// Puts a call in the queue. Skills and language add to the queue's own requirements (the
/// call's level wins for a skill both name).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnqueueBody {
    /// A call of the company.
    pub call_id: Uuid,
    /// 0–100, higher first (default 0).
    #[serde(default)]
    pub priority: i32,
    #[serde(default)]
    pub required_skills: BTreeMap<String, u8>,
    /// The language the agent must speak (default: the queue's).
    pub language: Option<String>,
    #[serde(default)]
    pub vip: bool,
    /// The caller's last agent (VIP stickiness).
    pub preferred_agent_id: Option<Uuid>,
    /// When the caller last spoke with that agent (default: now).
    pub last_contact_at: Option<DateTime<Utc>>,
    /// Anything else known about the call (kept with every decision).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub attributes: Map<String, Value>,
}

/// The queue's calls in its strategy's order.
async fn ordered(state: &AppState, tenant: Uuid, queue: Uuid) -> Result<Vec<QueuedCall>, ApiError> {
    let Some(row) = kraliki_projections::queue::get(&state.pool, tenant, queue).await? else {
        return Err(ApiError::not_found());
    };
    let strategy = row.settings()?.strategy;
    let entries = view::in_queue(&state.pool, tenant, queue).await?;
    let now = Utc::now();
    let mut calls = Vec::with_capacity(entries.len());
    for e in &entries {
        let mut c = e.call()?;
        c.waited_ms = u64::try_from((now - e.arrived_at).num_milliseconds()).unwrap_or(0);
        calls.push(c);
    }
    let order = order_waiting_for(strategy, &calls);
    let by_id: std::collections::HashMap<Uuid, &EntryRow> = entries.iter().map(|e| (e.call_id, e)).collect();
    order.iter().enumerate().map(|(i, id)| QueuedCall::from_row(by_id[id], i as i64 + 1, now)).collect()
}

#[utoipa::path(get, path = "/api/v1/queues/{id}/calls", tag = "queues", operation_id = "queues_calls", params(("id" = Uuid, Path)),
    responses((status = 200, body = Vec<QueuedCall>, description = "The calls in the queue (waiting or offered), in the queue strategy's order, with position and wait so far"),
        (status = 404, body = crate::error::Problem, description = "Not found (problem+json)")),
    security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    PathId(id): PathId,
    MinPosition(min): MinPosition,
) -> Result<Json<Vec<QueuedCall>>, ApiError> {
    user.require(READERS)?;
    state.wait_for(view::NAME, min).await?;
    Ok(Json(ordered(&state, user.company_id, id).await?))
}

#[utoipa::path(post, path = "/api/v1/queues/{id}/calls", tag = "queues", operation_id = "queues_enqueue_call",
    request_body = EnqueueBody,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = QueuedCall, description = "The call waits in the queue (a `CallQueued` event); the router offers it to the agent the strategy picks"),
        (status = 404, body = crate::error::Problem, description = "No such queue (problem+json)"),
        (status = 409, body = crate::error::Problem, description = "The call waits in a queue already (problem+json)"),
        (status = 422, body = crate::error::Problem, description = "Unknown call or agent, bad skills, language or priority (problem+json)")),
    security(("bearer" = [])))]
async fn enqueue(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    PathId(id): PathId,
    IdempotencyKey(key): IdempotencyKey,
    body: ApiJson<EnqueueBody>,
) -> Result<Response, ApiError> {
    user.require(MANAGERS)?;
    let tenant = user.company_id;
    let queue =
        kraliki_projections::queue::get(&state.pool, tenant, id).await?.ok_or_else(ApiError::not_found)?;
    let settings = queue.settings()?;
    let b = body.value;
    let mut error = ApiError::new(Code::ValidationFailed);
    if kraliki_projections::call::get(&state.pool, tenant, b.call_id).await?.is_none() {
        error = error.field("call_id", "not_found", "no such call");
    }
    if let Some(agent) = b.preferred_agent_id {
        if kraliki_projections::agent::get(&state.pool, tenant, agent).await?.is_none() {
            error = error.field("preferred_agent_id", "not_found", "no such agent");
        }
    }
    if !error.errors.is_empty() {
        return Err(error);
    }
    let mut required_skills = settings.required_skills.clone();
    required_skills.extend(b.required_skills);
    let now = Utc::now();
    let call = CallToRoute {
        call_id: b.call_id,
        queue_id: Some(id),
        priority: b.priority,
        arrived_at: now,
        waited_ms: 0,
        required_skills,
        required_language: b.language.or(settings.language.clone()),
        vip: b.vip,
        preferred_agent: b
            .preferred_agent_id
            .map(|agent_id| PreferredAgent { agent_id, last_contact_at: b.last_contact_at.unwrap_or(now) }),
        attributes: b.attributes,
    };
    let command = QueuedCallCommand::Enqueue {
        queue_id: id,
        call,
        max_wait_seconds: settings.max_wait_seconds,
        at: now,
    };
    let ctx = tenant_context(&headers, &user, key, body.fingerprint);
    let outcome = state.dispatcher.execute::<Aggregate>(&b.call_id.to_string(), command, &ctx).await?;
    state.wait_for(view::NAME, outcome.position).await?;
    let calls = ordered(&state, tenant, id).await?;
    let Some(entry) = calls.into_iter().find(|c| c.call_id == b.call_id) else {
        // Offered, assigned or gone already (a replay, or a router faster than this answer).
        let row = view::current(&state.pool, tenant, b.call_id).await?.ok_or_else(ApiError::not_found)?;
        let mut response =
            (StatusCode::CREATED, Json(QueuedCall::from_row(&row, 0, Utc::now())?)).into_response();
        write_headers(&mut response, &outcome, None);
        return Ok(response);
    };
    let mut response = (StatusCode::CREATED, Json(entry)).into_response();
    write_headers(&mut response, &outcome, Some(format!("/api/v1/queues/{id}/calls")));
    Ok(response)
}

#[utoipa::path(delete, path = "/api/v1/queues/{id}/calls/{call_id}", tag = "queues", operation_id = "queues_remove_call",
    params(("id" = Uuid, Path), ("call_id" = Uuid, Path)),
    responses((status = 204, description = "The call left the queue (a `CallAbandoned` event, reason `removed`); a pending offer is withdrawn from its agent"),
        (status = 404, body = crate::error::Problem, description = "No such queue, or the call is not in it (problem+json)")),
    security(("bearer" = [])))]
async fn remove(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    Path((id, call)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    user.require(MANAGERS)?;
    let (Ok(id), Ok(call)) = (id.parse::<Uuid>(), call.parse::<Uuid>()) else {
        return Err(ApiError::not_found());
    };
    let tenant = user.company_id;
    match view::current(&state.pool, tenant, call).await? {
        Some(e) if e.queue_id == id && e.in_queue() => {}
        _ => return Err(ApiError::not_found()),
    }
    let ctx = tenant_context(&headers, &user, None, String::new());
    let command = QueuedCallCommand::Abandon { reason: "removed".into(), at: Utc::now() };
    let outcome = state.dispatcher.execute::<Aggregate>(&call.to_string(), command, &ctx).await?;
    state.wait_for(view::NAME, outcome.position).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    write_headers(&mut response, &outcome, None);
    Ok(response)
}
