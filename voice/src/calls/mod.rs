//! The calls application service: everything the server does with a call, in one place with its
//! own error type — placing one at a carrier, turning the carriers' webhooks into call commands,
//! setting up a media stream's voice agent, and carrying out transfers. HTTP routes check
//! nothing of this themselves: they read the request, call the service and answer.
//!
//! Carrier clients (Twilio REST, Telnyx Call Control) and the webhook verifiers are built once,
//! when the service is, and shared by every call.
//!
//! Call ids: a call we place gets its id before the carrier is asked (`CallRequested`), and the
//! carrier carries it back in every webhook — in the (signed) webhook URLs for Twilio, in
//! `client_state` for Telnyx. A call that starts at the carrier (inbound) is named after the
//! carrier's call id ([`call_uuid`]), the same on every retry and instance.

pub mod agent_legs;
pub mod config;
mod error;
mod functions;
mod health;
mod ivr;
mod media;
mod placement;
mod webhooks;

use std::sync::Arc;

use hmac::{Hmac, Mac};
use kraliki_commands::Dispatcher;
use sha2::Sha256;
use sqlx::PgPool;
use uuid::Uuid;

pub use config::ProviderSettings;
pub use error::CallsError;
pub use functions::AgentFunctions;
pub use health::{HealthBook, ProviderHealth};
pub use placement::{Callee, Carrier, Dial, PlacedCall};
pub use webhooks::{TelnyxRequest, TwilioRequest, WebhookAnswer};

use crate::telephony::telnyx_control::TelnyxClient;
use crate::telephony::twilio_rest::TwilioRestClient;
use crate::telnyx::TelnyxVerifier;
use crate::twilio::TwilioValidator;

/// The call's aggregate id for a call that started at the carrier: the same on every retry.
pub fn call_uuid(provider: &str, provider_call_id: &str) -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_URL, format!("kraliki:{provider}:{provider_call_id}").as_bytes())
}

/// Who a call belongs to and what it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub tenant: Uuid,
    pub campaign: Option<Uuid>,
    pub contact: Option<Uuid>,
}

#[derive(Clone)]
pub struct CallService {
    inner: Arc<Inner>,
}

struct Inner {
    settings: ProviderSettings,
    dispatcher: Dispatcher,
    pool: PgPool,
    /// Keys the HMAC tokens that tie a media stream to the call we set it up for.
    media_secret: [u8; 32],
    twilio: Option<TwilioRestClient>,
    telnyx: Option<TelnyxClient>,
    twilio_validator: Option<TwilioValidator>,
    telnyx_verifier: Option<TelnyxVerifier>,
    /// How each provider did when this instance last used it.
    health: HealthBook,
    /// What IVR `webhook` nodes may call.
    webhook_policy: kraliki_domain::ivr::WebhookPolicy,
    /// Published IVR flow versions read so far.
    flows: ivr::FlowCache,
}

impl CallService {
    /// Builds the clients and verifiers the settings allow. Settings are checked at start
    /// ([`ProviderSettings::problems`]); what cannot be built here is reported, not hidden.
    pub fn new(settings: ProviderSettings, dispatcher: Dispatcher, pool: PgPool) -> anyhow::Result<Self> {
        let twilio = match (&settings.twilio_account_sid, &settings.twilio_auth_token) {
            (Some(sid), Some(token)) => {
                let client = TwilioRestClient::new(sid.clone(), token.clone())?;
                Some(match &settings.twilio_api_url {
                    Some(url) => client.with_base_url(url)?,
                    None => client,
                })
            }
            _ => None,
        };
        let telnyx = match &settings.telnyx_api_key {
            Some(key) => {
                let client = TelnyxClient::new(key.clone())?;
                Some(match &settings.telnyx_api_url {
                    Some(url) => client.with_base_url(url)?,
                    None => client,
                })
            }
            None => None,
        };
        let twilio_validator = settings.twilio_auth_token.clone().map(TwilioValidator::new);
        let telnyx_verifier = match &settings.telnyx_public_key {
            Some(key) => Some(
                TelnyxVerifier::from_base64_key(key)
                    .map_err(|e| anyhow::anyhow!("TELNYX_PUBLIC_KEY: {e:?}"))?,
            ),
            None => None,
        };
        let media_secret = media_secret(&settings);
        Ok(Self {
            inner: Arc::new(Inner {
                settings,
                dispatcher,
                pool,
                media_secret,
                twilio,
                telnyx,
                twilio_validator,
                telnyx_verifier,
                health: HealthBook::default(),
                webhook_policy: Default::default(),
                flows: Default::default(),
            }),
        })
    }

    /// What IVR `webhook` nodes may call (the same policy publishing checks flows against).
    /// Only while the service is being built, before it is shared.
    pub fn with_webhook_policy(mut self, policy: kraliki_domain::ivr::WebhookPolicy) -> Self {
        Arc::get_mut(&mut self.inner).expect("set before the service is shared").webhook_policy = policy;
        self
    }

    /// Every provider with how it did in real use here (voice AI first, then carriers).
    pub fn provider_health(&self) -> Vec<ProviderHealth> {
        use kraliki_domain::campaign::VoiceProvider;
        let configured = self.inner.settings.configured_voice();
        let mut out: Vec<ProviderHealth> =
            [VoiceProvider::Openai, VoiceProvider::Gemini, VoiceProvider::Deepgram]
                .into_iter()
                .map(|p| self.inner.health.report(p.as_str(), "voice_ai", configured.contains(&p)))
                .collect();
        out.push(self.inner.health.report("twilio", "telephony", self.inner.twilio.is_some()));
        let telnyx = self.inner.telnyx.is_some() && self.inner.settings.telnyx_connection_id.is_some();
        out.push(self.inner.health.report("telnyx", "telephony", telnyx));
        out
    }

    pub(crate) fn health(&self) -> &HealthBook {
        &self.inner.health
    }

    pub fn settings(&self) -> &ProviderSettings {
        &self.inner.settings
    }

    pub fn dispatcher(&self) -> &Dispatcher {
        &self.inner.dispatcher
    }

    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// Whether any carrier can place calls.
    pub fn can_dial(&self) -> bool {
        self.inner.twilio.is_some()
            || (self.inner.telnyx.is_some() && self.inner.settings.telnyx_connection_id.is_some())
    }

    fn twilio(&self) -> Result<&TwilioRestClient, CallsError> {
        self.inner.twilio.as_ref().ok_or_else(|| {
            CallsError::NotConfigured("TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN are not configured".into())
        })
    }

    fn telnyx(&self) -> Result<&TelnyxClient, CallsError> {
        self.inner
            .telnyx
            .as_ref()
            .ok_or_else(|| CallsError::NotConfigured("TELNYX_API_KEY is not configured".into()))
    }

    /// Our external URL for a path (webhook signatures are computed over it).
    fn public_url(&self, path_and_query: &str) -> Result<String, CallsError> {
        let base = self.inner.settings.public_base_url.as_deref().ok_or_else(|| {
            CallsError::NotConfigured(
                "PUBLIC_BASE_URL is not configured: webhook signatures cannot be checked".into(),
            )
        })?;
        Ok(format!("{}{path_and_query}", base.trim_end_matches('/')))
    }

    /// HMAC over the call and its target: a media stream carrying it was set up by us.
    fn media_token(&self, call: Uuid, t: &Target) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.inner.media_secret[..])
            .expect("HMAC takes any key length");
        mac.update(format!("{call}|{}|{:?}|{:?}", t.tenant, t.campaign, t.contact).as_bytes());
        mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The `<Parameter>`s (Twilio) or query (Telnyx) a media stream must carry for `call`.
    pub fn stream_parameters(&self, call: Uuid, t: &Target) -> Vec<(&'static str, String)> {
        let mut p = vec![("call_id", call.to_string()), ("tenant", t.tenant.to_string())];
        if let Some(c) = t.campaign {
            p.push(("campaign_id", c.to_string()));
        }
        if let Some(c) = t.contact {
            p.push(("contact_id", c.to_string()));
        }
        p.push(("token", self.media_token(call, t)));
        p
    }
}

/// `https://…` → `wss://…`.
fn ws_url(http_url: &str) -> String {
    if let Some(rest) = http_url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = http_url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        http_url.to_owned()
    }
}

/// The media-token key: derived from the telephony credentials, so every instance agrees; a
/// random one per process when none is configured (then a stream must reach the instance that
/// answered its webhook, which is what a single instance does).
fn media_secret(settings: &ProviderSettings) -> [u8; 32] {
    use secrecy::ExposeSecret;
    use sha2::Digest;
    let parts: Vec<&str> = [&settings.twilio_auth_token, &settings.telnyx_api_key]
        .into_iter()
        .flatten()
        .map(|s| s.expose_secret())
        .collect();
    if parts.is_empty() {
        let mut key = [0u8; 32];
        for (i, b) in Uuid::new_v4().as_bytes().iter().chain(Uuid::new_v4().as_bytes()).enumerate() {
            key[i] = *b;
        }
        return key;
    }
    let mut h = sha2::Sha256::new();
    h.update(b"kraliki-media-token\0");
    for part in parts {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.finalize().into()
}
