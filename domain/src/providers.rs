//! What each voice-AI provider offers: its realtime models and its voices, the first of each
//! being what our adapter uses when nothing is chosen. The lists are the providers' published
//! ones for the APIs our adapters speak (OpenAI Realtime, Gemini Live native audio, Deepgram's
//! Voice Agent with Aura-2 voices); a company's defaults are checked against them, so a typo
//! is refused when it is saved rather than failing every call later.

use serde::Serialize;

use crate::campaign::VoiceProvider;

/// One provider's offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProviderOffer {
    /// openai | gemini | deepgram
    pub provider: VoiceProvider,
    /// The realtime models; the first is the default.
    pub models: Vec<&'static str>,
    pub default_model: &'static str,
    /// The voices; the first is the default.
    pub voices: Vec<&'static str>,
    pub default_voice: &'static str,
}

const OPENAI_MODELS: &[&str] =
    &["gpt-realtime", "gpt-realtime-mini", "gpt-4o-realtime-preview", "gpt-4o-mini-realtime-preview"];
const OPENAI_VOICES: &[&str] =
    &["marin", "cedar", "alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse"];
const GEMINI_MODELS: &[&str] = &[
    "models/gemini-2.5-flash-native-audio-preview-09-2025",
    "models/gemini-live-2.5-flash-preview",
    "models/gemini-2.0-flash-live-001",
];
const GEMINI_VOICES: &[&str] = &["Puck", "Charon", "Kore", "Fenrir", "Aoede", "Leda", "Orus", "Zephyr"];
/// The Voice Agent's "think" models (the LLM between listening and speaking).
const DEEPGRAM_MODELS: &[&str] = &["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "claude-3-5-haiku-latest"];
const DEEPGRAM_VOICES: &[&str] = &[
    "aura-2-thalia-en",
    "aura-2-andromeda-en",
    "aura-2-apollo-en",
    "aura-2-arcas-en",
    "aura-2-asteria-en",
    "aura-2-athena-en",
    "aura-2-helena-en",
    "aura-2-odysseus-en",
    "aura-2-orion-en",
    "aura-2-zeus-en",
    "aura-2-celeste-es",
    "aura-2-estrella-es",
    "aura-2-nestor-es",
];

impl VoiceProvider {
    pub const ALL: [VoiceProvider; 3] =
        [VoiceProvider::Openai, VoiceProvider::Gemini, VoiceProvider::Deepgram];

    fn lists(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            Self::Openai => (OPENAI_MODELS, OPENAI_VOICES),
            Self::Gemini => (GEMINI_MODELS, GEMINI_VOICES),
            Self::Deepgram => (DEEPGRAM_MODELS, DEEPGRAM_VOICES),
        }
    }

    pub fn offer(self) -> ProviderOffer {
        let (models, voices) = self.lists();
        ProviderOffer {
            provider: self,
            models: models.to_vec(),
            default_model: models[0],
            voices: voices.to_vec(),
            default_voice: voices[0],
        }
    }

    pub fn offers_model(self, model: &str) -> bool {
        self.lists().0.contains(&model)
    }

    pub fn offers_voice(self, voice: &str) -> bool {
        self.lists().1.contains(&voice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_offers_its_defaults_and_nothing_twice() {
        for p in VoiceProvider::ALL {
            let offer = p.offer();
            assert!(p.offers_model(offer.default_model) && p.offers_voice(offer.default_voice));
            let mut seen = std::collections::HashSet::new();
            assert!(offer.voices.iter().chain(&offer.models).all(|v| seen.insert(*v)), "{p:?}");
        }
        assert!(!VoiceProvider::Openai.offers_voice("Puck"));
        assert!(VoiceProvider::Gemini.offers_voice("Puck"));
        assert!(!VoiceProvider::Gemini.offers_model("gpt-realtime"));
    }
}
