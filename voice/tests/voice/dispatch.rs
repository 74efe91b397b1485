//! Picking the provider at run time through `ai::connect`.

use kraliki_voice::ai::{self, AgentEvent, Provider, ProviderConfig};
use kraliki_voice::testing::{FakeDeepgram, FakeGemini, FakeOpenAi, Step};

use crate::helpers::*;

#[tokio::test]
async fn a_campaign_can_pick_any_provider_by_name() {
    let openai = FakeOpenAi::start().await.unwrap();
    let gemini = FakeGemini::start().await.unwrap();
    let deepgram = FakeDeepgram::start().await.unwrap();
    openai.push(Step::Json(FakeOpenAi::speech_started("item_1", 0)));
    gemini.push(Step::Json(FakeGemini::interrupted()));
    deepgram.push(Step::Json(FakeDeepgram::speech_started(0.0)));

    for (name, expected) in [
        ("openai", AgentEvent::SpeechStarted),
        ("gemini", AgentEvent::Interrupted),
        ("deepgram", AgentEvent::SpeechStarted),
    ] {
        let config = match name.parse::<Provider>().unwrap() {
            Provider::OpenAi => ProviderConfig::OpenAi(openai.config()),
            Provider::Gemini => ProviderConfig::Gemini(gemini.config()),
            Provider::Deepgram => ProviderConfig::Deepgram(deepgram.config()),
        };
        let mut session = ai::connect(&config, &session_config(None)).await.unwrap();
        assert_eq!(session.provider().as_str(), name);
        assert_eq!(session.provider(), config.provider());
        assert_eq!(next_event(session.as_mut()).await, expected, "{name}");
        session.send_audio(&[0xFF; 160]).await.unwrap();
        session.close().await.unwrap();
        assert!(matches!(next_event(session.as_mut()).await, AgentEvent::Closed { .. }), "{name}");
    }
    assert!("azure".parse::<Provider>().is_err());
}
