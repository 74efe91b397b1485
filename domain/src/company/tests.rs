//! Given/when/then, one test per rule.

use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::test::TestFramework;

use super::*;
use crate::values::{CompanyName, CompanySize};

type Given = TestFramework<Company>;

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 9, minute, 0).single().expect("valid time")
}

fn name(s: &str) -> CompanyName {
    CompanyName::parse(s).expect("valid name")
}

fn created() -> CompanyEvent {
    CompanyEvent::CompanyCreated {
        name: "Acme".into(),
        domain: "acme.example".into(),
        size: Some(CompanySize::Small),
        industry: None,
        description: None,
        website: None,
        at: at(0),
    }
}

fn profile() -> CompanyProfile {
    CompanyProfile {
        domain: "acme.example".into(),
        size: Some(CompanySize::Small),
        industry: None,
        description: None,
        website: None,
    }
}

#[test]
fn a_new_company_is_created() {
    Given::with(())
        .given_no_previous_events()
        .when(CompanyCommand::CreateCompany { name: name("Acme"), profile: profile(), at: at(0) })
        .then_expect_events(vec![created()]);
}

#[test]
fn a_company_is_created_once() {
    Given::with(())
        .given(vec![created()])
        .when(CompanyCommand::CreateCompany { name: name("Acme"), profile: profile(), at: at(1) })
        .then_expect_error(CompanyError::AlreadyExists);
}

#[test]
fn renaming_records_the_previous_name() {
    Given::with(())
        .given(vec![created()])
        .when(CompanyCommand::RenameCompany { name: name("Acme Corp"), at: at(2) })
        .then_expect_events(vec![CompanyEvent::CompanyRenamed {
            name: "Acme Corp".into(),
            previous: "Acme".into(),
            at: at(2),
        }]);
}

#[test]
fn renaming_to_the_same_name_records_nothing() {
    Given::with(())
        .given(vec![created()])
        .when(CompanyCommand::RenameCompany { name: name("Acme"), at: at(2) })
        .then_expect_events(vec![]);
}

#[test]
fn an_unknown_company_cannot_be_renamed() {
    Given::with(())
        .given_no_previous_events()
        .when(CompanyCommand::RenameCompany { name: name("X"), at: at(2) })
        .then_expect_error(CompanyError::NotFound);
}

#[test]
fn updating_changes_only_what_was_given() {
    let patch = ProfilePatch {
        size: Some(Some(CompanySize::Large)),
        website: Some(Some("https://acme.example".into())),
        ..ProfilePatch::default()
    };
    Given::with(())
        .given(vec![created()])
        .when(CompanyCommand::UpdateCompany { name: Some(name("Acme 2")), profile: patch, at: at(3) })
        .then_expect_events(vec![
            CompanyEvent::CompanyRenamed { name: "Acme 2".into(), previous: "Acme".into(), at: at(3) },
            CompanyEvent::CompanyProfileUpdated {
                domain: "acme.example".into(),
                size: Some(CompanySize::Large),
                industry: None,
                description: None,
                website: Some("https://acme.example".into()),
                at: at(3),
            },
        ]);
}

#[test]
fn an_update_that_changes_nothing_records_nothing() {
    let patch = ProfilePatch { domain: Some("acme.example".into()), ..ProfilePatch::default() };
    Given::with(())
        .given(vec![created()])
        .when(CompanyCommand::UpdateCompany { name: Some(name("Acme")), profile: patch, at: at(3) })
        .then_expect_events(vec![]);
}

#[test]
fn a_deactivated_company_cannot_be_changed() {
    Given::with(())
        .given(vec![created(), CompanyEvent::CompanyDeactivated { reason: None, at: at(4) }])
        .when(CompanyCommand::RenameCompany { name: name("Other"), at: at(5) })
        .then_expect_error(CompanyError::Deactivated);
}

#[test]
fn deactivation_happens_once() {
    Given::with(())
        .given(vec![created(), CompanyEvent::CompanyDeactivated { reason: None, at: at(4) }])
        .when(CompanyCommand::DeactivateCompany { reason: None, at: at(5) })
        .then_expect_error(CompanyError::AlreadyDeactivated);
}

#[test]
fn a_deactivated_company_can_be_reactivated() {
    Given::with(())
        .given(vec![created(), CompanyEvent::CompanyDeactivated { reason: Some("unpaid".into()), at: at(4) }])
        .when(CompanyCommand::ReactivateCompany { at: at(6) })
        .then_expect_events(vec![CompanyEvent::CompanyReactivated { at: at(6) }]);
}

#[test]
fn an_active_company_cannot_be_reactivated() {
    Given::with(())
        .given(vec![created()])
        .when(CompanyCommand::ReactivateCompany { at: at(6) })
        .then_expect_error(CompanyError::NotDeactivated);
}
