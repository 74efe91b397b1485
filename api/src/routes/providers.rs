//! The providers a company's calls use: which are configured and how they are doing
//! (`/api/v1/providers`, `/api/v1/providers/health`, and `/providers/health` where the template
//! UI looks), what each voice-AI provider offers (`voices`, `models`, `voice-config`), and the
//! company's defaults (`/api/v1/settings/provider`, a `TenantSettings` event).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use kraliki_domain::campaign::VoiceProvider;
use kraliki_domain::providers::ProviderOffer;
use kraliki_domain::tenant_settings::{ProviderDefaults, TenantSettings, TenantSettingsCommand};
use kraliki_voice::calls::ProviderHealth;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::common::{tenant_context, write_headers, READERS};
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, MinPosition};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(providers))
        .routes(routes!(health))
        .routes(routes!(health_root))
        .routes(routes!(voices))
        .routes(routes!(models))
        .routes(routes!(voice_config))
        .routes(routes!(settings_read, settings_write))
}

/// Who may change the company's defaults.
const SETTINGS_WRITERS: &[kraliki_domain::values::Role] = &[kraliki_domain::values::Role::Admin];

/// A provider, whether it is configured, how it did in real use, and for voice AI what it offers.
#[derive(Debug, Serialize, ToSchema)]
struct ProviderEntry {
    /// openai | gemini | deepgram | twilio | telnyx
    name: String,
    /// voice_ai | telephony
    kind: String,
    configured: bool,
    /// The company's default of its kind.
    is_default: bool,
    health: ProviderHealth,
    /// Voice AI only: its models and voices.
    #[serde(skip_serializing_if = "Option::is_none")]
    offer: Option<ProviderOffer>,
}

#[utoipa::path(get, path = "/api/v1/providers", tag = "providers", operation_id = "providers_list",
    responses((status = 200, body = Vec<ProviderEntry>, description = "Voice AI first, then carriers")), security(("bearer" = [])))]
async fn providers(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<Vec<ProviderEntry>>, ApiError> {
    user.require(READERS)?;
    let defaults = kraliki_projections::tenant_settings::get(&state.pool, user.company_id).await?;
    let carrier = state.calls.default_carrier(defaults.provider.telephony_provider.as_deref());
    let entries = state
        .calls
        .provider_health()
        .into_iter()
        .map(|health| {
            let voice = VoiceProvider::ALL.into_iter().find(|p| p.as_str() == health.provider);
            ProviderEntry {
                name: health.provider.clone(),
                kind: health.kind.clone(),
                configured: health.configured,
                is_default: match voice {
                    Some(p) => p == defaults.provider.ai_provider,
                    None => carrier.is_some_and(|c| c.as_str() == health.provider),
                },
                offer: voice.map(VoiceProvider::offer),
                health,
            }
        })
        .collect();
    Ok(Json(entries))
}

#[utoipa::path(get, path = "/api/v1/providers/health", tag = "providers", operation_id = "providers_health",
    responses((status = 200, body = Vec<ProviderHealth>, description = "Measured from this instance's real sessions and carrier requests: `unknown` until used")), security(("bearer" = [])))]
async fn health(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<Vec<ProviderHealth>>, ApiError> {
    user.require(READERS)?;
    Ok(Json(state.calls.provider_health()))
}

/// The template UI's path for [`health`] (hard-coded at the server root).
#[utoipa::path(get, path = "/providers/health", tag = "providers", operation_id = "providers_health_root",
    responses((status = 200, body = Vec<ProviderHealth>, description = "Alias of `/api/v1/providers/health`")), security(("bearer" = [])))]
async fn health_root(state: State<AppState>, user: AuthUser) -> Result<Json<Vec<ProviderHealth>>, ApiError> {
    health(state, user).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct OfferQuery {
    /// One provider only (openai | gemini | deepgram).
    provider: Option<VoiceProvider>,
}

fn offers(q: &OfferQuery) -> Vec<ProviderOffer> {
    VoiceProvider::ALL
        .into_iter()
        .filter(|p| q.provider.is_none_or(|only| only == *p))
        .map(VoiceProvider::offer)
        .collect()
}

/// One provider's voices.
#[derive(Debug, Serialize, ToSchema)]
struct ProviderVoices {
    provider: VoiceProvider,
    voices: Vec<&'static str>,
    default_voice: &'static str,
}

#[utoipa::path(get, path = "/api/v1/providers/voices", tag = "providers", operation_id = "providers_voices", params(OfferQuery),
    responses((status = 200, body = Vec<ProviderVoices>, description = "Each voice-AI provider's voices"), (status = 400, body = crate::error::Problem, description = "Unknown provider (problem+json)")), security(("bearer" = [])))]
async fn voices(
    user: AuthUser,
    ApiQuery(q): ApiQuery<OfferQuery>,
) -> Result<Json<Vec<ProviderVoices>>, ApiError> {
    user.require(READERS)?;
    Ok(Json(
        offers(&q)
            .into_iter()
            .map(|o| ProviderVoices {
                provider: o.provider,
                voices: o.voices,
                default_voice: o.default_voice,
            })
            .collect(),
    ))
}

/// One provider's realtime models.
#[derive(Debug, Serialize, ToSchema)]
struct ProviderModels {
    provider: VoiceProvider,
    models: Vec<&'static str>,
    default_model: &'static str,
}

#[utoipa::path(get, path = "/api/v1/providers/models", tag = "providers", operation_id = "providers_models", params(OfferQuery),
    responses((status = 200, body = Vec<ProviderModels>, description = "Each voice-AI provider's realtime models"), (status = 400, body = crate::error::Problem, description = "Unknown provider (problem+json)")), security(("bearer" = [])))]
async fn models(
    user: AuthUser,
    ApiQuery(q): ApiQuery<OfferQuery>,
) -> Result<Json<Vec<ProviderModels>>, ApiError> {
    user.require(READERS)?;
    Ok(Json(
        offers(&q)
            .into_iter()
            .map(|o| ProviderModels {
                provider: o.provider,
                models: o.models,
                default_model: o.default_model,
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct VoiceConfigQuery {
    /// The campaign whose choice to show (else the company's defaults).
    campaign_id: Option<Uuid>,
}

/// What a call would talk with: provider, model and voice, and where the choice comes from.
#[derive(Debug, Serialize, ToSchema)]
struct VoiceConfig {
    provider: VoiceProvider,
    /// `null` when the provider's default is used (see `offer.default_model`).
    model: Option<String>,
    voice: Option<String>,
    language: Option<String>,
    /// campaign | company
    source: &'static str,
    campaign_id: Option<Uuid>,
    /// What the provider offers to choose from.
    offer: ProviderOffer,
}

#[utoipa::path(get, path = "/api/v1/providers/voice-config", tag = "providers", operation_id = "providers_voice_config", params(VoiceConfigQuery),
    responses((status = 200, body = VoiceConfig, description = "The campaign's choice, or the company's defaults"), (status = 404, body = crate::error::Problem, description = "No such campaign (problem+json)")), security(("bearer" = [])))]
async fn voice_config(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<VoiceConfigQuery>,
) -> Result<Json<VoiceConfig>, ApiError> {
    user.require(READERS)?;
    let config = match q.campaign_id {
        Some(id) => {
            let row = kraliki_projections::campaign::get(&state.pool, user.company_id, id)
                .await?
                .ok_or_else(ApiError::not_found)?;
            let s = row.settings().map_err(ApiError::internal)?;
            VoiceConfig {
                provider: s.primary_provider,
                model: None,
                voice: s.voice,
                language: Some(s.language),
                source: "campaign",
                campaign_id: Some(id),
                offer: s.primary_provider.offer(),
            }
        }
        None => {
            let d = kraliki_projections::tenant_settings::get(&state.pool, user.company_id).await?;
            VoiceConfig {
                provider: d.provider.ai_provider,
                model: d.provider.model,
                voice: d.provider.voice,
                language: d.session.language,
                source: "company",
                campaign_id: None,
                offer: d.provider.ai_provider.offer(),
            }
        }
    };
    Ok(Json(config))
}

/// The company's default providers.
#[derive(Debug, Serialize, ToSchema)]
struct ProviderSettingsResponse {
    #[serde(flatten)]
    defaults: ProviderDefaults,
    /// `null` until the company sets any.
    updated_at: Option<DateTime<Utc>>,
}

#[utoipa::path(get, path = "/api/v1/settings/provider", tag = "providers", operation_id = "settings_provider_read",
    params(("min_position" = Option<i64>, Query, description = "Wait until the read model has applied this log position")),
    responses((status = 200, body = ProviderSettingsResponse, description = "The defaults (the built-in ones until the company sets its own)")), security(("bearer" = [])))]
async fn settings_read(
    State(state): State<AppState>,
    user: AuthUser,
    MinPosition(min): MinPosition,
) -> Result<Json<ProviderSettingsResponse>, ApiError> {
    user.require(READERS)?;
    state.wait_for(kraliki_projections::tenant_settings::NAME, min).await?;
    let d = kraliki_projections::tenant_settings::get(&state.pool, user.company_id).await?;
    Ok(Json(ProviderSettingsResponse { defaults: d.provider, updated_at: d.updated_at }))
}

#[utoipa::path(put, path = "/api/v1/settings/provider", tag = "providers", operation_id = "settings_provider_write", request_body = ProviderDefaults,
    responses((status = 200, body = ProviderSettingsResponse, description = "Saved (a `ProviderDefaultsSet` event; the same again records nothing)"),
        (status = 422, body = crate::error::Problem, description = "A carrier we do not speak, or a model or voice the provider does not offer (problem+json)")),
    security(("bearer" = [])))]
async fn settings_write(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    body: ApiJson<ProviderDefaults>,
) -> Result<Response, ApiError> {
    user.require(SETTINGS_WRITERS)?;
    let command = TenantSettingsCommand::SetProviderDefaults { defaults: body.value, at: Utc::now() };
    set_defaults(&state, &user, &headers, body.fingerprint, command, |d| ProviderSettingsResponse {
        defaults: d.provider,
        updated_at: d.updated_at,
    })
    .await
}

/// Changes the company's defaults and answers with them as the read model now holds them.
pub(super) async fn set_defaults<T: Serialize>(
    state: &AppState,
    user: &AuthUser,
    headers: &HeaderMap,
    fingerprint: String,
    command: TenantSettingsCommand,
    shape: impl FnOnce(kraliki_projections::tenant_settings::TenantDefaults) -> T,
) -> Result<Response, ApiError> {
    let ctx = tenant_context(headers, user, None, fingerprint);
    let outcome =
        state.dispatcher.execute::<TenantSettings>(&user.company_id.to_string(), command, &ctx).await?;
    state.wait_for(kraliki_projections::tenant_settings::NAME, outcome.position).await?;
    let d = kraliki_projections::tenant_settings::get(&state.pool, user.company_id).await?;
    let mut r = Json(shape(d)).into_response();
    write_headers(&mut r, &outcome, None);
    Ok(r)
}
