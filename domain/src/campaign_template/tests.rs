//! Given/when/then, one test per rule.

use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::test::TestFramework;
use serde_json::json;

use super::*;

type Given = TestFramework<CampaignTemplate>;

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 9, minute, 0).single().expect("valid time")
}

fn settings(name: &str) -> CampaignSettings {
    CampaignSettings { name: name.into(), ..CampaignSettings::default() }
}

fn created() -> TemplateEvent {
    TemplateEvent::CampaignTemplateCreated {
        settings: settings("Winter renewals"),
        source_campaign: None,
        at: at(0),
    }
}

fn patch(value: serde_json::Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => panic!("a patch is an object"),
    }
}

fn invalid(problems: &[(&'static str, &'static str)]) -> Vec<(String, &'static str)> {
    problems.iter().map(|(field, code)| ((*field).to_owned(), *code)).collect()
}

/// The fields and codes of an `InvalidSettings` refusal (messages are for people).
fn problems(result: Result<Vec<TemplateEvent>, TemplateError>) -> Vec<(String, &'static str)> {
    match result {
        Err(TemplateError::InvalidSettings(problems)) => {
            problems.into_iter().map(|p| (p.field.into_owned(), p.code)).collect()
        }
        other => panic!("expected invalid settings, got {other:?}"),
    }
}

#[test]
fn a_template_is_created_with_its_settings_cleaned() {
    Given::with(())
        .given_no_previous_events()
        .when(TemplateCommand::CreateTemplate {
            settings: settings("  Winter renewals \n"),
            source_campaign: None,
            at: at(0),
        })
        .then_expect_events(vec![created()]);
}

#[test]
fn a_template_saved_from_a_campaign_names_it() {
    let campaign = Uuid::now_v7();
    Given::with(())
        .given_no_previous_events()
        .when(TemplateCommand::CreateTemplate {
            settings: settings("From the winter campaign"),
            source_campaign: Some(campaign),
            at: at(0),
        })
        .then_expect_events(vec![TemplateEvent::CampaignTemplateCreated {
            settings: settings("From the winter campaign"),
            source_campaign: Some(campaign),
            at: at(0),
        }]);
}

#[test]
fn a_template_is_created_once() {
    Given::with(())
        .given(vec![created()])
        .when(TemplateCommand::CreateTemplate {
            settings: settings("Again"),
            source_campaign: None,
            at: at(1),
        })
        .then_expect_error(TemplateError::AlreadyExists);
}

#[test]
fn a_template_with_invalid_settings_is_refused_with_every_problem_named() {
    let bad = CampaignSettings { max_attempts: 0, calls_per_hour: 0, ..settings(" ") };
    let result = Given::with(())
        .given_no_previous_events()
        .when(TemplateCommand::CreateTemplate { settings: bad, source_campaign: None, at: at(0) })
        .inspect_result();
    let mut got = problems(result);
    got.sort();
    let want = invalid(&[("calls_per_hour", "out_of_range"), ("max_attempts", "out_of_range")]);
    assert!(got.iter().any(|(field, _)| field == "name"), "the empty name is named: {got:?}");
    got.retain(|(field, _)| field != "name");
    assert_eq!(got, want);
}

#[test]
fn an_update_records_the_new_settings_and_what_changed() {
    let updated = CampaignSettings {
        max_attempts: 5,
        description: Some("Renew before March".into()),
        ..settings("Winter renewals")
    };
    Given::with(())
        .given(vec![created()])
        .when(TemplateCommand::UpdateTemplate {
            patch: patch(json!({"max_attempts": 5, "description": "Renew before March"})),
            at: at(2),
        })
        .then_expect_events(vec![TemplateEvent::CampaignTemplateUpdated {
            settings: updated,
            changed: vec!["description".into(), "max_attempts".into()],
            at: at(2),
        }]);
}

#[test]
fn an_update_that_changes_nothing_records_nothing() {
    Given::with(())
        .given(vec![created()])
        .when(TemplateCommand::UpdateTemplate {
            patch: patch(json!({"name": "Winter renewals", "max_attempts": 3})),
            at: at(2),
        })
        .then_expect_events(vec![]);
}

#[test]
fn an_update_that_would_make_the_settings_invalid_is_refused() {
    let result = Given::with(())
        .given(vec![created()])
        .when(TemplateCommand::UpdateTemplate { patch: patch(json!({"max_attempts": 21})), at: at(2) })
        .inspect_result();
    assert_eq!(problems(result), invalid(&[("max_attempts", "out_of_range")]));
}

#[test]
fn an_unknown_template_cannot_be_updated() {
    Given::with(())
        .given_no_previous_events()
        .when(TemplateCommand::UpdateTemplate { patch: patch(json!({"max_attempts": 5})), at: at(2) })
        .then_expect_error(TemplateError::NotFound);
}

#[test]
fn a_deleted_template_cannot_be_updated() {
    Given::with(())
        .given(vec![created(), TemplateEvent::CampaignTemplateDeleted { at: at(3) }])
        .when(TemplateCommand::UpdateTemplate { patch: patch(json!({"max_attempts": 5})), at: at(4) })
        .then_expect_error(TemplateError::NotFound);
}

#[test]
fn a_template_is_deleted() {
    Given::with(())
        .given(vec![created()])
        .when(TemplateCommand::DeleteTemplate { at: at(3) })
        .then_expect_events(vec![TemplateEvent::CampaignTemplateDeleted { at: at(3) }]);
}

#[test]
fn a_template_is_deleted_once() {
    Given::with(())
        .given(vec![created(), TemplateEvent::CampaignTemplateDeleted { at: at(3) }])
        .when(TemplateCommand::DeleteTemplate { at: at(4) })
        .then_expect_error(TemplateError::NotFound);
}

#[test]
fn an_unknown_template_cannot_be_deleted() {
    Given::with(())
        .given_no_previous_events()
        .when(TemplateCommand::DeleteTemplate { at: at(3) })
        .then_expect_error(TemplateError::NotFound);
}
