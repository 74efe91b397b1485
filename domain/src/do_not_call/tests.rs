//! Given/when/then, one test per rule.

use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::test::TestFramework;

use super::*;

type Given = TestFramework<DoNotCallNumber>;

const NUMBER: &str = "+420603123456";

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 9, minute, 0).single().expect("valid time")
}

fn add(minute: u32) -> DoNotCallCommand {
    DoNotCallCommand::AddNumber {
        phone_number: NUMBER.into(),
        reason: Some("asked on the phone".into()),
        source: Some("agent".into()),
        at: at(minute),
    }
}

fn added(minute: u32) -> DoNotCallEvent {
    DoNotCallEvent::DoNotCallNumberAdded {
        phone_number: NUMBER.into(),
        reason: Some("asked on the phone".into()),
        source: Some("agent".into()),
        at: at(minute),
    }
}

fn removed(minute: u32) -> DoNotCallEvent {
    DoNotCallEvent::DoNotCallNumberRemoved {
        phone_number: NUMBER.into(),
        reason: Some("consent given".into()),
        at: at(minute),
    }
}

fn remove(minute: u32) -> DoNotCallCommand {
    DoNotCallCommand::RemoveNumber { reason: Some("consent given".into()), at: at(minute) }
}

#[test]
fn a_number_is_listed_with_who_and_why() {
    Given::with(()).given_no_previous_events().when(add(0)).then_expect_events(vec![added(0)]);
}

#[test]
fn listing_a_listed_number_again_records_nothing() {
    Given::with(()).given(vec![added(0)]).when(add(1)).then_expect_events(vec![]);
}

#[test]
fn a_listed_number_is_removed_and_the_removal_names_it() {
    Given::with(()).given(vec![added(0)]).when(remove(2)).then_expect_events(vec![removed(2)]);
}

#[test]
fn a_number_never_listed_cannot_be_removed() {
    Given::with(()).given_no_previous_events().when(remove(2)).then_expect_error(DoNotCallError::NotListed);
}

#[test]
fn a_removed_number_cannot_be_removed_again() {
    Given::with(())
        .given(vec![added(0), removed(2)])
        .when(remove(3))
        .then_expect_error(DoNotCallError::NotListed);
}

#[test]
fn a_removed_number_can_be_listed_again() {
    Given::with(()).given(vec![added(0), removed(2)]).when(add(4)).then_expect_events(vec![added(4)]);
}

#[test]
fn its_stream_is_the_tenant_and_the_number() {
    assert_eq!(DoNotCallNumber::stream_id("t1", NUMBER), "t1:+420603123456");
}
