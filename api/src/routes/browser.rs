//! `/ws/session`: a web page talks to the AI agent with the computer's microphone, through the
//! same media bridge as a phone call, recorded as a call with provider `browser` (the template
//! UI's "AI Call Center Training": agents and supervisors rehearse with the AI). The protocol
//! (JSON text frames, base64 PCM16 at 16 kHz) is in `kraliki_voice::browser` and the README.

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::common::READERS;
use futures::SinkExt;
use kraliki_voice::ai::MEDIA_READ_BUFFER;

use super::telephony::PhoneWs;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(session))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct SessionQuery {
    /// Talk as this campaign's agent (else as the company's session defaults).
    campaign_id: Option<Uuid>,
    /// The access token, for pages that cannot send an `Authorization` header on a WebSocket
    /// (only an upgrade request may carry it here).
    #[allow(dead_code)] // read by `AuthUser`
    access_token: Option<String>,
}

#[utoipa::path(get, path = "/ws/session", tag = "sessions", operation_id = "browser_session", params(SessionQuery),
    responses((status = 101, description = "The session's WebSocket: JSON frames, base64 PCM16 at 16 kHz both ways (see the README)"),
        (status = 401, body = crate::error::Problem, description = "No valid token (problem+json)"),
        (status = 404, body = crate::error::Problem, description = "No such campaign (problem+json)")),
    security(("bearer" = [])))]
async fn session(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<SessionQuery>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    user.require(READERS)?;
    if let Some(id) = q.campaign_id {
        kraliki_projections::campaign::get(&state.pool, user.company_id, id)
            .await?
            .ok_or_else(ApiError::not_found)?;
    }
    let (tenant, campaign, actor) = (user.company_id, q.campaign_id, user.actor());
    Ok(ws.read_buffer_size(MEDIA_READ_BUFFER).on_upgrade(move |socket| async move {
        let mut page = PhoneWs(socket);
        if let Err(reason) = state.calls.browser_session(&mut page, tenant, campaign, &actor).await {
            tracing::info!(%reason, "browser session ended without a call");
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(3), page.0.close()).await;
    }))
}
