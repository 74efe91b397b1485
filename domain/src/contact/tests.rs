use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::test::TestFramework;
use serde_json::json;

use super::*;

type Given = TestFramework<Contact>;

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 9, minute, 0).single().expect("valid time")
}

fn data() -> ContactData {
    ContactInput {
        phone_number: Some("+1 415 555 0123".into()),
        first_name: Some("Ada".into()),
        ..Default::default()
    }
    .parse(None)
    .expect("valid")
}

#[test]
fn input_is_checked_and_the_time_zone_comes_from_the_number() {
    let d = data();
    assert_eq!(d.phone_number, "+14155550123");
    assert_eq!(d.timezone.as_deref(), Some("America/Los_Angeles"));
    assert_eq!(d.timezone_source, TimeZoneSource::Number);
    assert_eq!(d.max_attempts, 3);
    let problems = ContactInput {
        phone_number: Some("555".into()),
        email: Some("not-an-email".into()),
        timezone: Some("Nowhere/Else".into()),
        ..Default::default()
    }
    .parse(None)
    .expect_err("invalid");
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_ref()).collect();
    assert_eq!(fields, ["phone_number", "email", "timezone"]);
}

#[test]
fn a_contact_is_created_once() {
    Given::with(())
        .given(vec![ContactEvent::ContactCreated { data: data(), at: at(0) }])
        .when(ContactCommand::CreateContact { data: data(), at: at(1) })
        .then_expect_error(ContactError::AlreadyExists);
}

#[test]
fn an_imported_contact_is_changed_from_the_data_its_import_gave() {
    let mut after = data();
    after.last_name = Some("Lovelace".into());
    Given::with(())
        .given_no_previous_events()
        .when(ContactCommand::UpdateContact {
            patch: json!({"last_name": "Lovelace"}).as_object().cloned().expect("object"),
            known: Some(data()),
            at: at(1),
        })
        .then_expect_events(vec![ContactEvent::ContactUpdated {
            data: after,
            changed: vec!["last_name".into()],
            at: at(1),
        }]);
}

#[test]
fn an_unknown_contact_is_not_found() {
    Given::with(())
        .given_no_previous_events()
        .when(ContactCommand::SetDoNotCall { reason: None, known: None, at: at(1) })
        .then_expect_error(ContactError::NotFound);
}

#[test]
fn do_not_call_is_set_once_and_a_deleted_contact_is_gone() {
    let dnc = ContactData { do_not_call: true, ..data() };
    Given::with(())
        .given(vec![ContactEvent::ContactCreated { data: data(), at: at(0) }])
        .when(ContactCommand::SetDoNotCall { reason: Some("asked".into()), known: None, at: at(1) })
        .then_expect_events(vec![ContactEvent::ContactMarkedDoNotCall {
            data: dnc.clone(),
            reason: Some("asked".into()),
            at: at(1),
        }]);
    Given::with(())
        .given(vec![ContactEvent::ContactCreated { data: dnc, at: at(0) }])
        .when(ContactCommand::SetDoNotCall { reason: None, known: None, at: at(1) })
        .then_expect_events(vec![]);
    Given::with(())
        .given(vec![
            ContactEvent::ContactCreated { data: data(), at: at(0) },
            ContactEvent::ContactDeleted { phone_number: "+14155550123".into(), at: at(1) },
        ])
        .when(ContactCommand::UpdateContact { patch: Default::default(), known: Some(data()), at: at(2) })
        .then_expect_error(ContactError::NotFound);
}
