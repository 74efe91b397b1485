//! A company's defaults for its calls: which voice-AI provider, model and voice, which carrier,
//! and the session defaults (instructions, greeting, language) of calls no campaign configures
//! (ad-hoc calls, browser training sessions). One stream per tenant; every change an event.

#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::campaign::VoiceProvider;
use crate::values::{clean_text, InvalidValue};
use crate::CommandPolicy;

/// The tenant's default providers (`GET/PUT /api/v1/settings/provider`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProviderDefaults {
    /// openai | gemini | deepgram
    #[serde(default = "default_provider")]
    pub ai_provider: VoiceProvider,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub voice: Option<String>,
    /// twilio | telnyx (else whichever is configured)
    #[serde(default)]
    pub telephony_provider: Option<String>,
}

fn default_provider() -> VoiceProvider {
    VoiceProvider::Openai
}

impl Default for ProviderDefaults {
    fn default() -> Self {
        Self { ai_provider: VoiceProvider::Openai, model: None, voice: None, telephony_provider: None }
    }
}

impl ProviderDefaults {
    pub fn validated(self) -> Result<Self, Vec<InvalidValue>> {
        let mut problems = Vec::new();
        let text = |field: &'static str, v: Option<String>, problems: &mut Vec<InvalidValue>| match v {
            Some(v) => clean_text(field, &v, 100).map(Some).unwrap_or_else(|e| {
                problems.push(e);
                None
            }),
            None => None,
        };
        let model = text("model", self.model, &mut problems);
        let voice = text("voice", self.voice, &mut problems);
        let provider = self.ai_provider;
        if model.as_deref().is_some_and(|m| !provider.offers_model(m)) {
            let offer = provider.offer();
            problems.push(InvalidValue::new(
                "model",
                "not_offered",
                format!("{} offers: {}", provider.as_str(), offer.models.join(", ")),
            ));
        }
        if voice.as_deref().is_some_and(|v| !provider.offers_voice(v)) {
            let offer = provider.offer();
            problems.push(InvalidValue::new(
                "voice",
                "not_offered",
                format!("{} offers: {}", provider.as_str(), offer.voices.join(", ")),
            ));
        }
        let telephony_provider = match self.telephony_provider.as_deref() {
            None => None,
            Some(p @ ("twilio" | "telnyx")) => Some(p.to_owned()),
            Some(_) => {
                problems.push(InvalidValue::new("telephony_provider", "invalid", "one of: twilio, telnyx"));
                None
            }
        };
        if problems.is_empty() {
            Ok(Self { ai_provider: self.ai_provider, model, voice, telephony_provider })
        } else {
            Err(problems)
        }
    }
}

/// Defaults of AI sessions no campaign configures (`GET/POST /api/v1/sessions/config`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SessionDefaults {
    #[serde(default)]
    pub instructions: Option<String>,
    #[serde(default)]
    pub greeting: Option<String>,
    /// BCP-47, e.g. `en`, `es`, `cs-CZ`.
    #[serde(default)]
    pub language: Option<String>,
}

impl SessionDefaults {
    pub fn validated(self) -> Result<Self, Vec<InvalidValue>> {
        let mut problems = Vec::new();
        let mut text = |field: &'static str, v: Option<String>, max: usize| match v {
            Some(v) if v.trim().is_empty() => None,
            Some(v) => match clean_multiline(field, &v, max) {
                Ok(v) => Some(v),
                Err(e) => {
                    problems.push(e);
                    None
                }
            },
            None => None,
        };
        let instructions = text("instructions", self.instructions, 20_000);
        let greeting = text("greeting", self.greeting, 1_000);
        let language = text("language", self.language, 35);
        if problems.is_empty() {
            Ok(Self { instructions, greeting, language })
        } else {
            Err(problems)
        }
    }
}

/// Prose may hold line breaks; no other control characters.
fn clean_multiline(field: &'static str, raw: &str, max: usize) -> Result<String, InvalidValue> {
    let v = raw.trim();
    if v.chars().count() > max {
        return Err(InvalidValue::new(field, "too_long", format!("must be at most {max} characters")));
    }
    if v.chars().any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r') {
        return Err(InvalidValue::new(field, "invalid_characters", "must not contain control characters"));
    }
    Ok(v.to_owned())
}

#[derive(Debug, Clone, PartialEq)]
pub enum TenantSettingsCommand {
    SetProviderDefaults { defaults: ProviderDefaults, at: DateTime<Utc> },
    SetSessionDefaults { defaults: SessionDefaults, at: DateTime<Utc> },
}

impl CommandPolicy for TenantSettingsCommand {
    fn name(&self) -> &'static str {
        match self {
            Self::SetProviderDefaults { .. } => "SetProviderDefaults",
            Self::SetSessionDefaults { .. } => "SetSessionDefaults",
        }
    }
}

/// Stored forever: never rename a variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TenantSettingsEvent {
    ProviderDefaultsSet { defaults: ProviderDefaults, at: DateTime<Utc> },
    SessionDefaultsSet { defaults: SessionDefaults, at: DateTime<Utc> },
}

impl DomainEvent for TenantSettingsEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ProviderDefaultsSet { .. } => "ProviderDefaultsSet",
            Self::SessionDefaultsSet { .. } => "SessionDefaultsSet",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TenantSettingsError {
    #[error("invalid settings")]
    Invalid(Vec<InvalidValue>),
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantSettings {
    pub provider: ProviderDefaults,
    pub session: SessionDefaults,
}

impl Aggregate for TenantSettings {
    const TYPE: &'static str = "TenantSettings";
    type Command = TenantSettingsCommand;
    type Event = TenantSettingsEvent;
    type Error = TenantSettingsError;
    type Services = ();

    async fn handle(
        &mut self,
        command: TenantSettingsCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), TenantSettingsError> {
        let event = match command {
            TenantSettingsCommand::SetProviderDefaults { defaults, at } => {
                let defaults = defaults.validated().map_err(TenantSettingsError::Invalid)?;
                if defaults == self.provider {
                    return Ok(());
                }
                TenantSettingsEvent::ProviderDefaultsSet { defaults, at }
            }
            TenantSettingsCommand::SetSessionDefaults { defaults, at } => {
                let defaults = defaults.validated().map_err(TenantSettingsError::Invalid)?;
                if defaults == self.session {
                    return Ok(());
                }
                TenantSettingsEvent::SessionDefaultsSet { defaults, at }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: TenantSettingsEvent) {
        match event {
            TenantSettingsEvent::ProviderDefaultsSet { defaults, .. } => self.provider = defaults,
            TenantSettingsEvent::SessionDefaultsSet { defaults, .. } => self.session = defaults,
        }
    }
}
