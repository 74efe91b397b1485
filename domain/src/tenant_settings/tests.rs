use chrono::{TimeZone, Utc};
use cqrs_es::test::TestFramework;

use super::*;

type Given = TestFramework<TenantSettings>;

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 2, 9, 0, 0).single().expect("time")
}

#[test]
fn provider_defaults_are_set_once_and_checked() {
    let defaults = ProviderDefaults {
        ai_provider: VoiceProvider::Gemini,
        model: Some(" models/gemini-live-2.5-flash-preview ".into()),
        voice: Some("Puck".into()),
        telephony_provider: Some("telnyx".into()),
    };
    let recorded =
        ProviderDefaults { model: Some("models/gemini-live-2.5-flash-preview".into()), ..defaults.clone() };
    Given::with(())
        .given_no_previous_events()
        .when(TenantSettingsCommand::SetProviderDefaults { defaults: defaults.clone(), at: at() })
        .then_expect_events(vec![TenantSettingsEvent::ProviderDefaultsSet {
            defaults: recorded.clone(),
            at: at(),
        }]);
    // The same again changes nothing.
    Given::with(())
        .given(vec![TenantSettingsEvent::ProviderDefaultsSet { defaults: recorded, at: at() }])
        .when(TenantSettingsCommand::SetProviderDefaults { defaults, at: at() })
        .then_expect_events(vec![]);
    let bad = ProviderDefaults { telephony_provider: Some("skype".into()), ..ProviderDefaults::default() };
    Given::with(())
        .given_no_previous_events()
        .when(TenantSettingsCommand::SetProviderDefaults { defaults: bad, at: at() })
        .then_expect_error(TenantSettingsError::Invalid(vec![InvalidValue::new(
            "telephony_provider",
            "invalid",
            "one of: twilio, telnyx",
        )]));
}

#[test]
fn session_defaults_keep_line_breaks_and_refuse_other_control_characters() {
    let ok =
        SessionDefaults { instructions: Some("Be kind.\nBe brief.".into()), ..SessionDefaults::default() };
    Given::with(())
        .given_no_previous_events()
        .when(TenantSettingsCommand::SetSessionDefaults { defaults: ok.clone(), at: at() })
        .then_expect_events(vec![TenantSettingsEvent::SessionDefaultsSet { defaults: ok, at: at() }]);
    let bad = SessionDefaults { greeting: Some("hi\u{7}".into()), ..SessionDefaults::default() };
    Given::with(())
        .given_no_previous_events()
        .when(TenantSettingsCommand::SetSessionDefaults { defaults: bad, at: at() })
        .then_expect_error(TenantSettingsError::Invalid(vec![InvalidValue::new(
            "greeting",
            "invalid_characters",
            "must not contain control characters",
        )]));
}

#[test]
fn a_voice_or_model_the_provider_does_not_offer_is_refused_at_once() {
    let bad = ProviderDefaults {
        ai_provider: VoiceProvider::Openai,
        model: Some("gpt-realtime".into()),
        voice: Some("Puck".into()),
        telephony_provider: None,
    };
    let err = bad.validated().expect_err("Puck is Gemini's");
    assert_eq!(err.len(), 1);
    assert_eq!((err[0].field.as_ref(), err[0].code), ("voice", "not_offered"));
    let worse = ProviderDefaults {
        model: Some("gpt-3".into()),
        voice: Some("Kore".into()),
        ..ProviderDefaults::default()
    };
    let fields: Vec<String> = worse
        .validated()
        .expect_err("neither is offered")
        .into_iter()
        .map(|e| e.field.into_owned())
        .collect();
    assert_eq!(fields, ["model", "voice"]);
}
