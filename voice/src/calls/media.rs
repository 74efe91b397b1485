//! A media stream's call: its token checked, its campaign's voice agent connected, and the
//! bridge run to the end.

use std::collections::BTreeMap;

use chrono::Utc;
use kraliki_commands::CommandContext;
use kraliki_domain::call::{Call, CallCommand};
use kraliki_domain::campaign::VoiceProvider;
use kraliki_projections::metrics_catalog as catalog;
use uuid::Uuid;

use super::{ws_url, AgentFunctions, CallService, Target};
use crate::ai::{self, DeepgramAgentConfig, GeminiConfig, OpenAiConfig, ProviderConfig, SessionConfig};
use crate::bridge::{Bridge, CallController, CallSetup, Dialect, Ending, PhoneSocket, StreamStart};

fn target_from(params: &BTreeMap<String, String>) -> Option<(Uuid, Target, String)> {
    let id = |k: &str| params.get(k).and_then(|v| v.parse::<Uuid>().ok());
    Some((
        id("call_id")?,
        Target { tenant: id("tenant")?, campaign: id("campaign_id"), contact: id("contact_id") },
        params.get("token")?.clone(),
    ))
}

impl CallService {
    /// The voice-AI provider a campaign uses, with the configured key and endpoints.
    pub fn provider_config(&self, provider: VoiceProvider) -> Result<ProviderConfig, String> {
        let p = &self.inner.settings;
        let missing = || format!("{} has no API key configured", provider.as_str());
        Ok(match provider {
            VoiceProvider::Openai => {
                let mut c = OpenAiConfig::new(p.openai_api_key.clone().ok_or_else(missing)?);
                if let Some(url) = &p.openai_realtime_url {
                    c.base_url = url.clone();
                }
                ProviderConfig::OpenAi(c)
            }
            VoiceProvider::Gemini => {
                let mut c = GeminiConfig::new(p.gemini_api_key.clone().ok_or_else(missing)?);
                if let Some(url) = &p.gemini_live_url {
                    c.url = url.clone();
                }
                ProviderConfig::Gemini(c)
            }
            // A Deepgram campaign's calls talk to its Voice Agent (speech-to-text, an LLM and
            // text-to-speech on Deepgram's side, μ-law both ways).
            VoiceProvider::Deepgram => {
                let mut c = DeepgramAgentConfig::new(p.deepgram_api_key.clone().ok_or_else(missing)?);
                // DEEPGRAM_AGENT_URL, else the agent's path on DEEPGRAM_URL (one base for Deepgram).
                if let Some(url) = &p.deepgram_agent_url {
                    c.url = url.clone();
                } else if let Some(base) = &p.deepgram_url {
                    c.url = format!("{}/v1/agent/converse", ws_url(base.trim_end_matches('/')));
                }
                if let Some(think) = &p.deepgram_think_provider {
                    c.think_provider = think.clone();
                }
                if let Some(model) = &p.deepgram_think_model {
                    c.think_model = model.clone();
                }
                ProviderConfig::DeepgramAgent(c)
            }
        })
    }

    /// Opens a browser session's call (provider `browser`, answered at once by the person at
    /// the page) for `tenant`, talking as `campaign` says or else as the company's defaults
    /// say, and runs `page` through the bridge to its end. `actor` is who opened it.
    pub async fn browser_session<P: PhoneSocket>(
        &self,
        page: &mut P,
        tenant: Uuid,
        campaign: Option<Uuid>,
        actor: &str,
    ) -> Result<Ending, String> {
        let call_id = Uuid::now_v7();
        let ctx = CommandContext::new(tenant.to_string(), actor.to_owned());
        let dispatcher = &self.inner.dispatcher;
        let id = call_id.to_string();
        let initiate = CallCommand::InitiateCall {
            direction: kraliki_domain::call::CallDirection::Inbound,
            provider: "browser".into(),
            provider_call_id: None,
            from: format!("browser:{actor}"),
            to: "ai-agent".into(),
            campaign_id: campaign,
            contact_id: None,
            at: Utc::now(),
        };
        dispatcher.execute::<Call>(&id, initiate, &ctx).await.map_err(|e| e.to_string())?;
        let answer = CallCommand::AnswerCall { answered_by: Some("human".into()), at: Utc::now() };
        dispatcher.execute::<Call>(&id, answer, &ctx).await.map_err(|e| e.to_string())?;
        let target = Target { tenant, campaign, contact: None };
        let query: BTreeMap<String, String> =
            self.stream_parameters(call_id, &target).into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        self.media(page, Dialect::Browser, query).await
    }

    /// Runs one media stream (the phone's socket) through the bridge to its end.
    pub async fn media<P: PhoneSocket>(
        &self,
        phone: &mut P,
        dialect: Dialect,
        query: BTreeMap<String, String>,
    ) -> Result<Ending, String> {
        let bridge = Bridge::new(self.inner.dispatcher.clone());
        let this = self.clone();
        let result = bridge
            .run(dialect, phone, move |start| async move { this.setup(dialect, start, query).await })
            .await;
        if let Err(reason) = &result {
            tracing::warn!(%reason, "media stream refused");
        }
        result
    }

    /// Resolves a stream's call: checks its token, reads the campaign's agent settings and the
    /// contact, and connects the voice provider. A failure fails the call with the reason.
    async fn setup(
        &self,
        dialect: Dialect,
        start: StreamStart,
        query: BTreeMap<String, String>,
    ) -> Result<CallSetup, String> {
        let mut params = query;
        params.extend(start.parameters.clone());
        let Some((call_id, target, token)) = target_from(&params) else {
            return Err("the stream carries no call parameters".into());
        };
        let expected = self.media_token(call_id, &target);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), token.as_bytes())) {
            return Err("the stream's token does not match its call".into());
        }
        let fail = |reason: String| {
            let dispatcher = self.inner.dispatcher.clone();
            let tenant = target.tenant;
            async move {
                let ctx = CommandContext::new(tenant.to_string(), "system:media-bridge");
                let command = CallCommand::FailCall { reason: reason.clone(), at: Utc::now() };
                if let Err(e) = dispatcher.execute::<Call>(&call_id.to_string(), command, &ctx).await {
                    tracing::warn!(call = %call_id, error = %e, "could not record the call's failure");
                }
                reason
            }
        };
        let pool = &self.inner.pool;
        // A campaign's call talks as the campaign says; any other call (ad-hoc, a browser
        // session) as the company's defaults say.
        let (settings, model) = match target.campaign {
            Some(c) => match kraliki_projections::campaign::get(pool, target.tenant, c).await {
                Ok(Some(row)) => (row.settings().map_err(|e| e.to_string())?, None),
                Ok(None) => return Err(fail("the call's campaign no longer exists".into()).await),
                Err(e) => return Err(e.to_string()),
            },
            None => {
                let defaults = kraliki_projections::tenant_settings::get(pool, target.tenant)
                    .await
                    .map_err(|e| e.to_string())?;
                (defaults_settings(&defaults), defaults.provider.model)
            }
        };
        let contact = match target.contact {
            Some(c) => kraliki_projections::contact::get(pool, target.tenant, c).await.ok().flatten().map(|row| {
                serde_json::json!({"first_name": row.first_name, "last_name": row.last_name, "company": row.company,
                    "email": row.email, "language": row.language, "custom_fields": row.custom_fields, "phone_number": row.phone_number})
            }),
            None => None,
        };
        let name = settings.primary_provider.as_str();
        let mut provider = match self.provider_config(settings.primary_provider) {
            Ok(p) => p,
            Err(reason) => {
                connect_failed(name, "not_configured");
                return Err(fail(reason).await);
            }
        };
        if let Some(model) = &model {
            provider.set_model(model);
        }
        let controller = AgentFunctions {
            service: self.clone(),
            dialect,
            tenant: target.tenant,
            call_id,
            provider_call_id: start.provider_call_id,
            contact,
        };
        let greeting = settings.configuration.get("greeting").and_then(|g| g.as_str()).map(str::to_owned);
        // A caller handed over by an IVR flow: what the flow learnt goes with them.
        let from_ivr = match self.inner.dispatcher.load::<Call>(&call_id.to_string()).await {
            Ok((call, _)) => call.ivr.map(|ivr| ivr_briefing(&ivr.session.variables)),
            Err(e) => return Err(e.to_string()),
        };
        let session_config = SessionConfig {
            instructions: [settings.instructions.clone(), settings.script.clone(), from_ivr]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("\n\n"),
            voice: settings.voice.clone(),
            language: Some(settings.language.clone()),
            tools: controller.tools(),
            greeting,
        };
        let connecting = std::time::Instant::now();
        let connected = ai::connect(&provider, &session_config).await;
        match &connected {
            Ok(_) => self.health().success(name, connecting.elapsed()),
            Err(e) => {
                self.health().failure(name, &e.to_string());
                connect_failed(name, failure_reason(e));
            }
        }
        let agent = CallCommand::ConnectAgent {
            provider: name.to_owned(),
            model: Some(provider.model().to_owned()),
            voice: session_config.voice.clone().or_else(|| provider.default_voice().map(str::to_owned)),
            connect_ms: u64::try_from(connecting.elapsed().as_millis()).unwrap_or(u64::MAX),
            at: Utc::now(),
        };
        match connected {
            Ok(session) => Ok(CallSetup {
                call_id,
                tenant_id: target.tenant.to_string(),
                session,
                controller: Box::new(controller),
                connected: Some(agent),
            }),
            Err(e) => Err(fail(format!("voice provider unavailable: {e}")).await),
        }
    }
}

/// The settings of a call no campaign configures, from the company's defaults.
fn defaults_settings(
    d: &kraliki_projections::tenant_settings::TenantDefaults,
) -> kraliki_domain::campaign::CampaignSettings {
    let mut s = kraliki_domain::campaign::CampaignSettings {
        primary_provider: d.provider.ai_provider,
        voice: d.provider.voice.clone(),
        instructions: d.session.instructions.clone(),
        ..Default::default()
    };
    if let Some(language) = &d.session.language {
        s.language = language.clone();
    }
    if let Some(greeting) = &d.session.greeting {
        s.configuration.insert("greeting".into(), serde_json::Value::String(greeting.clone()));
    }
    s
}

fn connect_failed(provider: &'static str, reason: &'static str) {
    metrics::counter!(catalog::VOICE_PROVIDER_CONNECT_FAILURES.name, "provider" => provider, "reason" => reason)
        .increment(1);
}

/// The `reason` label of a failed connect: a small fixed set.
fn failure_reason(error: &ai::AiError) -> &'static str {
    match error {
        ai::AiError::Config { .. } => "config",
        ai::AiError::Connect { .. } => "connect",
        ai::AiError::Rejected { .. } => "rejected",
        ai::AiError::Timeout { .. } => "timeout",
        ai::AiError::Closed { .. } | ai::AiError::Unsupported { .. } => "other",
    }
}

/// What an IVR flow learnt about the caller, for the AI agent's instructions (the call's own
/// ids left out).
fn ivr_briefing(variables: &std::collections::BTreeMap<String, serde_json::Value>) -> String {
    let mut out = String::from("The caller came through the phone menu, which learnt:");
    for (name, value) in variables.iter().filter(|(k, _)| !matches!(k.as_str(), "call_id" | "campaign_id")) {
        let value = match value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out.push_str(&format!("\n- {name}: {value}"));
    }
    out
}
