//! Given/when/then, one test per lifecycle rule.

use chrono::{DateTime, Duration, TimeZone, Utc};
use cqrs_es::test::TestFramework;
use serde_json::json;

use super::*;

type Given = TestFramework<Campaign>;

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 9, minute, 0).single().expect("valid time")
}

fn settings() -> CampaignSettings {
    CampaignSettings { name: "Winter renewals".into(), ..CampaignSettings::default() }
}

fn created() -> CampaignEvent {
    CampaignEvent::CampaignCreated { settings: settings(), origin: CampaignOrigin::Blank, at: at(0) }
}

fn ready() -> Readiness {
    Readiness { dialable_contacts: 10, configured_providers: vec![VoiceProvider::Openai] }
}

fn started() -> CampaignEvent {
    CampaignEvent::CampaignStarted { dialable_contacts: 10, at: at(1) }
}

fn paused() -> CampaignEvent {
    CampaignEvent::CampaignPaused { reason: None, at: at(2) }
}

fn completed() -> CampaignEvent {
    CampaignEvent::CampaignCompleted { reason: None, at: at(3) }
}

fn patch(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    v.as_object().cloned().expect("object")
}

fn transition(from: CampaignStatus, action: &'static str) -> CampaignError {
    CampaignError::InvalidTransition { from, action }
}

#[test]
fn a_campaign_is_created_as_a_draft_with_checked_settings() {
    let mut raw = settings();
    raw.name = "  Winter renewals ".into();
    Given::with(())
        .given_no_previous_events()
        .when(CampaignCommand::CreateCampaign { settings: raw, origin: CampaignOrigin::Blank, at: at(0) })
        .then_expect_events(vec![created()]);
}

#[test]
fn invalid_settings_are_refused_with_every_problem() {
    let mut bad = settings();
    bad.name = " ".into();
    bad.max_attempts = 0;
    bad.calling_window.start = "07:00".into();
    bad.retry_delays.abandoned = 60;
    bad.caller_id = Some("12".into());
    let result = Given::with(())
        .given_no_previous_events()
        .when(CampaignCommand::CreateCampaign { settings: bad, origin: CampaignOrigin::Blank, at: at(0) })
        .inspect_result();
    let Err(CampaignError::InvalidSettings(problems)) = result else { panic!("expected invalid settings") };
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_ref()).collect();
    assert_eq!(fields, ["name", "calling_window", "max_attempts", "retry_delays.abandoned", "caller_id"]);
}

#[test]
fn a_campaign_is_created_once() {
    Given::with(())
        .given(vec![created()])
        .when(CampaignCommand::CreateCampaign {
            settings: settings(),
            origin: CampaignOrigin::Blank,
            at: at(1),
        })
        .then_expect_error(CampaignError::AlreadyExists);
}

#[test]
fn a_draft_with_contacts_and_a_configured_provider_starts() {
    Given::with(())
        .given(vec![created()])
        .when(CampaignCommand::StartCampaign { readiness: ready(), at: at(1) })
        .then_expect_events(vec![started()]);
}

#[test]
fn no_start_without_dialable_contacts() {
    Given::with(())
        .given(vec![created()])
        .when(CampaignCommand::StartCampaign {
            readiness: Readiness { dialable_contacts: 0, ..ready() },
            at: at(1),
        })
        .then_expect_error(CampaignError::NoContacts);
}

#[test]
fn an_inbound_campaign_starts_without_contacts() {
    let mut inbound = settings();
    inbound.campaign_type = CampaignType::InboundSupport;
    Given::with(())
        .given(vec![CampaignEvent::CampaignCreated {
            settings: inbound,
            origin: CampaignOrigin::Blank,
            at: at(0),
        }])
        .when(CampaignCommand::StartCampaign {
            readiness: Readiness { dialable_contacts: 0, ..ready() },
            at: at(1),
        })
        .then_expect_events(vec![CampaignEvent::CampaignStarted { dialable_contacts: 0, at: at(1) }]);
}

#[test]
fn no_start_when_the_provider_has_no_key() {
    Given::with(())
        .given(vec![created()])
        .when(CampaignCommand::StartCampaign {
            readiness: Readiness { configured_providers: vec![VoiceProvider::Gemini], ..ready() },
            at: at(1),
        })
        .then_expect_error(CampaignError::ProviderNotConfigured(VoiceProvider::Openai));
}

#[test]
fn no_start_after_the_end_time() {
    let mut ended = settings();
    ended.end_time = Some(at(0) + Duration::minutes(30));
    Given::with(())
        .given(vec![CampaignEvent::CampaignCreated {
            settings: ended,
            origin: CampaignOrigin::Blank,
            at: at(0),
        }])
        .when(CampaignCommand::StartCampaign { readiness: ready(), at: at(45) })
        .then_expect_error(CampaignError::EndTimePassed);
}

#[test]
fn starting_an_active_campaign_records_nothing() {
    Given::with(())
        .given(vec![created(), started()])
        .when(CampaignCommand::StartCampaign { readiness: ready(), at: at(2) })
        .then_expect_events(vec![]);
}

#[test]
fn an_active_campaign_pauses_and_a_paused_one_pauses_again_as_a_no_op() {
    Given::with(())
        .given(vec![created(), started()])
        .when(CampaignCommand::PauseCampaign { reason: None, at: at(2) })
        .then_expect_events(vec![paused()]);
    Given::with(())
        .given(vec![created(), started(), paused()])
        .when(CampaignCommand::PauseCampaign { reason: None, at: at(3) })
        .then_expect_events(vec![]);
}

#[test]
fn a_draft_cannot_be_paused() {
    Given::with(())
        .given(vec![created()])
        .when(CampaignCommand::PauseCampaign { reason: None, at: at(1) })
        .then_expect_error(transition(CampaignStatus::Draft, "paused"));
}

#[test]
fn a_paused_campaign_resumes_after_the_same_checks_as_a_start() {
    Given::with(())
        .given(vec![created(), started(), paused()])
        .when(CampaignCommand::ResumeCampaign { readiness: ready(), at: at(3) })
        .then_expect_events(vec![CampaignEvent::CampaignResumed { at: at(3) }]);
    Given::with(())
        .given(vec![created(), started(), paused()])
        .when(CampaignCommand::ResumeCampaign {
            readiness: Readiness { dialable_contacts: 0, ..ready() },
            at: at(3),
        })
        .then_expect_error(CampaignError::NoContacts);
    Given::with(())
        .given(vec![created(), started(), paused()])
        .when(CampaignCommand::StartCampaign { readiness: ready(), at: at(3) })
        .then_expect_events(vec![CampaignEvent::CampaignResumed { at: at(3) }]);
}

#[test]
fn a_draft_cannot_be_resumed() {
    Given::with(())
        .given(vec![created()])
        .when(CampaignCommand::ResumeCampaign { readiness: ready(), at: at(1) })
        .then_expect_error(transition(CampaignStatus::Draft, "resumed"));
}

#[test]
fn active_and_paused_campaigns_complete_and_a_draft_does_not() {
    Given::with(())
        .given(vec![created(), started()])
        .when(CampaignCommand::CompleteCampaign { reason: None, at: at(3) })
        .then_expect_events(vec![completed()]);
    Given::with(())
        .given(vec![created(), started(), paused()])
        .when(CampaignCommand::CompleteCampaign { reason: None, at: at(3) })
        .then_expect_events(vec![completed()]);
    Given::with(())
        .given(vec![created()])
        .when(CampaignCommand::CompleteCampaign { reason: None, at: at(3) })
        .then_expect_error(transition(CampaignStatus::Draft, "completed"));
}

#[test]
fn a_completed_campaign_never_starts_again() {
    Given::with(())
        .given(vec![created(), started(), completed()])
        .when(CampaignCommand::StartCampaign { readiness: ready(), at: at(4) })
        .then_expect_error(transition(CampaignStatus::Completed, "started"));
}

#[test]
fn cancel_from_draft_active_or_paused_only() {
    let cancelled = CampaignEvent::CampaignCancelled { reason: Some("budget".into()), at: at(4) };
    for given in [vec![created()], vec![created(), started()], vec![created(), started(), paused()]] {
        Given::with(())
            .given(given)
            .when(CampaignCommand::CancelCampaign { reason: Some("budget".into()), at: at(4) })
            .then_expect_events(vec![cancelled.clone()]);
    }
    Given::with(())
        .given(vec![created(), started(), completed()])
        .when(CampaignCommand::CancelCampaign { reason: None, at: at(4) })
        .then_expect_error(transition(CampaignStatus::Completed, "cancelled"));
}

#[test]
fn archive_only_what_is_not_dialing() {
    Given::with(())
        .given(vec![created(), started(), completed()])
        .when(CampaignCommand::ArchiveCampaign { at: at(5) })
        .then_expect_events(vec![CampaignEvent::CampaignArchived { at: at(5) }]);
    Given::with(())
        .given(vec![created(), started()])
        .when(CampaignCommand::ArchiveCampaign { at: at(5) })
        .then_expect_error(transition(CampaignStatus::Active, "archived"));
}

#[test]
fn an_archived_campaign_is_read_only() {
    let archived = vec![created(), started(), completed(), CampaignEvent::CampaignArchived { at: at(5) }];
    Given::with(())
        .given(archived.clone())
        .when(CampaignCommand::UpdateCampaign { patch: patch(json!({"name": "x"})), at: at(6) })
        .then_expect_error(transition(CampaignStatus::Archived, "edited"));
    Given::with(())
        .given(archived)
        .when(CampaignCommand::StartCampaign { readiness: ready(), at: at(6) })
        .then_expect_error(transition(CampaignStatus::Archived, "started"));
}

#[test]
fn a_running_campaign_accepts_pacing_and_text_changes() {
    let mut after = settings();
    after.calls_per_hour = 250;
    after.instructions = Some("Be brief.".into());
    Given::with(())
        .given(vec![created(), started()])
        .when(CampaignCommand::UpdateCampaign {
            patch: patch(json!({"calls_per_hour": 250, "instructions": "Be brief."})),
            at: at(2),
        })
        .then_expect_events(vec![CampaignEvent::CampaignUpdated {
            settings: after,
            changed: vec!["calls_per_hour".into(), "instructions".into()],
            at: at(2),
        }]);
}

#[test]
fn a_running_campaign_refuses_provider_mode_and_window_changes() {
    Given::with(())
        .given(vec![created(), started()])
        .when(CampaignCommand::UpdateCampaign {
            patch: patch(json!({"primary_provider": "gemini", "dialing_mode": "predictive"})),
            at: at(2),
        })
        .then_expect_error(CampaignError::LockedWhileActive(vec![
            "dialing_mode".into(),
            "primary_provider".into(),
        ]));
}

#[test]
fn a_paused_campaign_accepts_those_changes() {
    let mut after = settings();
    after.primary_provider = VoiceProvider::Gemini;
    Given::with(())
        .given(vec![created(), started(), paused()])
        .when(CampaignCommand::UpdateCampaign {
            patch: patch(json!({"primary_provider": "gemini"})),
            at: at(3),
        })
        .then_expect_events(vec![CampaignEvent::CampaignUpdated {
            settings: after,
            changed: vec!["primary_provider".into()],
            at: at(3),
        }]);
}

#[test]
fn an_update_that_changes_nothing_records_nothing() {
    Given::with(())
        .given(vec![created()])
        .when(CampaignCommand::UpdateCampaign { patch: patch(json!({"name": "Winter renewals"})), at: at(1) })
        .then_expect_events(vec![]);
}

#[test]
fn an_update_with_a_wrong_type_or_unknown_field_names_it() {
    let result = Given::with(())
        .given(vec![created()])
        .when(CampaignCommand::UpdateCampaign { patch: patch(json!({"max_attempts": "three"})), at: at(1) })
        .inspect_result();
    let Err(CampaignError::InvalidSettings(p)) = result else { panic!("expected invalid") };
    assert_eq!(p[0].field, "max_attempts");
    let result = Given::with(())
        .given(vec![created()])
        .when(CampaignCommand::UpdateCampaign { patch: patch(json!({"max_atempts": 3})), at: at(1) })
        .inspect_result();
    assert!(matches!(result, Err(CampaignError::InvalidSettings(_))));
}

#[test]
fn delete_only_when_not_dialing_and_then_it_is_gone() {
    Given::with(())
        .given(vec![created(), started()])
        .when(CampaignCommand::DeleteCampaign { at: at(2) })
        .then_expect_error(CampaignError::StillRunning);
    Given::with(())
        .given(vec![created()])
        .when(CampaignCommand::DeleteCampaign { at: at(2) })
        .then_expect_events(vec![CampaignEvent::CampaignDeleted { at: at(2) }]);
    Given::with(())
        .given(vec![created(), CampaignEvent::CampaignDeleted { at: at(2) }])
        .when(CampaignCommand::StartCampaign { readiness: ready(), at: at(3) })
        .then_expect_error(CampaignError::NotFound);
}

#[test]
fn an_unknown_campaign_is_not_found() {
    Given::with(())
        .given_no_previous_events()
        .when(CampaignCommand::PauseCampaign { reason: None, at: at(1) })
        .then_expect_error(CampaignError::NotFound);
}

#[test]
fn the_calling_window_holds_in_every_zone_of_the_contact() {
    use chrono::TimeZone;
    let s = settings();
    // Wednesday 25 November 2026, 15:00 UTC: Prague 16:00, New York 10:00, Los Angeles 07:00.
    let now = Utc.with_ymd_and_hms(2026, 11, 25, 15, 0, 0).single().expect("time");
    let zones = |z: &[&str]| z.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(s.may_call_at(&zones(&["Europe/Prague"]), now));
    assert!(s.may_call_at(&zones(&["America/New_York"]), now));
    assert!(!s.may_call_at(&zones(&["America/Los_Angeles"]), now));
    assert!(!s.may_call_at(&zones(&["America/New_York", "America/Los_Angeles"]), now), "every zone");
    assert!(!s.may_call_at(&zones(&["Mars/Base"]), now));
    assert!(!s.may_call_at(&[], now));
    let mut weekdays = settings();
    weekdays.business_hours_only = true;
    let saturday = Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).single().expect("time");
    assert!(!weekdays.may_call_at(&zones(&["Europe/Prague"]), saturday));
    assert!(weekdays.may_call_at(&zones(&["Europe/Prague"]), now));
}
