//! The providers' settings: voice AI (OpenAI, Gemini, Deepgram) and carriers (Twilio, Telnyx),
//! with the endpoints tests and staging point elsewhere. Read by the server's layered
//! configuration; checked whole at start.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// Voice-AI and telephony providers, read from the seed's unprefixed variables
/// (`OPENAI_API_KEY`, `TWILIO_AUTH_TOKEN`, ...). Every endpoint can be pointed elsewhere
/// (tests, staging). A provider without a key cannot serve a campaign.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ProviderSettings {
    #[serde(serialize_with = "expose_opt")]
    pub openai_api_key: Option<SecretString>,
    #[serde(serialize_with = "expose_opt")]
    pub gemini_api_key: Option<SecretString>,
    #[serde(serialize_with = "expose_opt")]
    pub deepgram_api_key: Option<SecretString>,
    pub twilio_account_sid: Option<String>,
    #[serde(serialize_with = "expose_opt")]
    pub twilio_auth_token: Option<SecretString>,
    #[serde(serialize_with = "expose_opt")]
    pub telnyx_api_key: Option<SecretString>,
    pub telnyx_public_key: Option<String>,
    /// The Telnyx Call Control application outbound calls are placed with.
    pub telnyx_connection_id: Option<String>,
    /// The external URL of this service, which webhook signatures are computed over.
    pub public_base_url: Option<String>,
    pub openai_realtime_url: Option<String>,
    pub gemini_live_url: Option<String>,
    pub deepgram_url: Option<String>,
    /// Deepgram Voice Agent endpoint (a Deepgram campaign's calls talk to it).
    pub deepgram_agent_url: Option<String>,
    /// The LLM behind the Deepgram Voice Agent (`agent.think.provider`), e.g. `open_ai` and
    /// `gpt-4o-mini` (the defaults).
    pub deepgram_think_provider: Option<String>,
    pub deepgram_think_model: Option<String>,
    pub telnyx_api_url: Option<String>,
    pub twilio_api_url: Option<String>,
}

/// The unprefixed variables `ProviderSettings` reads.
pub const PROVIDER_VARIABLES: &[&str] = &[
    "openai_api_key",
    "gemini_api_key",
    "deepgram_api_key",
    "twilio_account_sid",
    "twilio_auth_token",
    "telnyx_api_key",
    "telnyx_public_key",
    "telnyx_connection_id",
    "public_base_url",
    "openai_realtime_url",
    "gemini_live_url",
    "deepgram_url",
    "deepgram_agent_url",
    "deepgram_think_provider",
    "deepgram_think_model",
    "telnyx_api_url",
    "twilio_api_url",
];

impl ProviderSettings {
    /// Problems with the provider settings that would make every webhook of that provider fail
    /// later: checked at start, so a bad value stops the server with a clear message instead.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(base) = &self.public_base_url {
            match url::Url::parse(base) {
                Ok(u) if u.scheme() == "https" && u.has_host() && u.query().is_none() => {}
                Ok(u) if u.scheme() != "https" => out.push(format!(
                    "PUBLIC_BASE_URL must be an https:// URL (Twilio and Telnyx stream media only over wss://), not {}://",
                    u.scheme()
                )),
                _ => out.push("PUBLIC_BASE_URL must be an https:// URL with a host and no query".into()),
            }
        }
        if let Some(key) = &self.telnyx_public_key {
            if let Err(e) = crate::telnyx::TelnyxVerifier::from_base64_key(key) {
                out.push(format!(
                    "TELNYX_PUBLIC_KEY must be the 32-byte Ed25519 public key in base64, as the Telnyx portal shows it ({e:?})"
                ));
            }
        }
        let endpoints = [
            ("OPENAI_REALTIME_URL", &self.openai_realtime_url, &["ws", "wss"][..]),
            ("GEMINI_LIVE_URL", &self.gemini_live_url, &["ws", "wss"][..]),
            ("DEEPGRAM_URL", &self.deepgram_url, &["ws", "wss", "http", "https"][..]),
            ("DEEPGRAM_AGENT_URL", &self.deepgram_agent_url, &["ws", "wss"][..]),
            ("TELNYX_API_URL", &self.telnyx_api_url, &["http", "https"][..]),
            ("TWILIO_API_URL", &self.twilio_api_url, &["http", "https"][..]),
        ];
        for (name, value, schemes) in endpoints {
            if let Some(raw) = value {
                match url::Url::parse(raw) {
                    Ok(u) if schemes.contains(&u.scheme()) && u.has_host() => {}
                    _ => out.push(format!("{name} must be a {} URL", schemes.join(" or "))),
                }
            }
        }
        out
    }

    /// The voice-AI providers that have a key.
    pub fn configured_voice(&self) -> Vec<kraliki_domain::campaign::VoiceProvider> {
        use kraliki_domain::campaign::VoiceProvider;
        use secrecy::ExposeSecret;
        let has = |k: &Option<SecretString>| k.as_ref().is_some_and(|k| !k.expose_secret().trim().is_empty());
        let mut out = Vec::new();
        if has(&self.openai_api_key) {
            out.push(VoiceProvider::Openai);
        }
        if has(&self.gemini_api_key) {
            out.push(VoiceProvider::Gemini);
        }
        if has(&self.deepgram_api_key) {
            out.push(VoiceProvider::Deepgram);
        }
        out
    }
}

fn expose_opt<S: serde::Serializer>(secret: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    use secrecy::ExposeSecret;
    match secret {
        Some(secret) => s.serialize_some(secret.expose_secret()),
        None => s.serialize_none(),
    }
}
