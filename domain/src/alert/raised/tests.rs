//! Given/when/then for raised alerts: raised once, acknowledged once by a person, resolved once
//! (by the engine or a person), notifications recorded until delivered.

use chrono::{DateTime, Duration, TimeZone, Utc};
use cqrs_es::test::TestFramework;
use serde_json::Map;
use uuid::Uuid;

use super::*;
use crate::alert::settings::AlertRuleSettings;

type Given = TestFramework<Alert>;

fn at(minute: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).single().expect("valid time") + Duration::minutes(minute)
}

fn rule() -> AlertRuleSettings {
    AlertRuleSettings {
        name: "Abandonment high".into(),
        metric_name: "abandonment_rate".into(),
        threshold_value: 0.2,
        severity: Severity::Critical,
        queue_id: Some(Uuid::from_u128(7)),
        ..AlertRuleSettings::default()
    }
}

fn details() -> AlertDetails {
    AlertDetails::fired(Uuid::from_u128(1), 3, &rule(), 0.25, at(0), Map::new())
}

fn raised() -> AlertEvent {
    AlertEvent::AlertRaised { details: details(), at: at(1) }
}

fn supervisor() -> Uuid {
    Uuid::from_u128(42)
}

fn hook() -> Recipient {
    Recipient::Webhook("https://hooks.example.com/a".into())
}

#[test]
fn a_firing_raises_one_alert_that_says_what_fired() {
    let d = details();
    assert_eq!(d.message, "Abandonment high: abandonment_rate is 0.25 (> 0.2)");
    assert_eq!((d.rule_version, d.severity, d.queue_id), (3, Severity::Critical, Some(Uuid::from_u128(7))));
    Given::with(())
        .given_no_previous_events()
        .when(AlertCommand::RaiseAlert { details: details(), at: at(1) })
        .then_expect_events(vec![raised()]);
    Given::with(())
        .given(vec![raised()])
        .when(AlertCommand::RaiseAlert { details: details(), at: at(2) })
        .then_expect_error(AlertError::AlreadyRaised);
    let nan = AlertDetails { actual_value: f64::NAN, ..details() };
    Given::with(())
        .given_no_previous_events()
        .when(AlertCommand::RaiseAlert { details: nan, at: at(1) })
        .then_expect_error(AlertError::NotFinite);
}

#[test]
fn a_supervisor_acknowledges_it_once() {
    let ack = AlertEvent::AlertAcknowledged { by: supervisor(), note: Some("on it".into()), at: at(2) };
    Given::with(())
        .given(vec![raised()])
        .when(AlertCommand::AcknowledgeAlert { by: supervisor(), note: Some(" on it ".into()), at: at(2) })
        .then_expect_events(vec![ack.clone()]);
    Given::with(())
        .given(vec![raised(), ack])
        .when(AlertCommand::AcknowledgeAlert { by: Uuid::from_u128(43), note: None, at: at(3) })
        .then_expect_events(vec![]);
    Given::with(())
        .given_no_previous_events()
        .when(AlertCommand::AcknowledgeAlert { by: supervisor(), note: None, at: at(3) })
        .then_expect_error(AlertError::NotFound);
}

#[test]
fn it_resolves_once_by_the_engine_or_a_person() {
    let cleared =
        AlertEvent::AlertResolved { reason: ResolveReason::Cleared, by: None, value: Some(0.1), at: at(5) };
    Given::with(())
        .given(vec![raised()])
        .when(AlertCommand::ResolveAlert {
            reason: ResolveReason::Cleared,
            by: None,
            value: Some(0.1),
            at: at(5),
        })
        .then_expect_events(vec![cleared.clone()]);
    Given::with(())
        .given(vec![raised(), cleared.clone()])
        .when(AlertCommand::ResolveAlert {
            reason: ResolveReason::Manual,
            by: Some(supervisor()),
            value: None,
            at: at(6),
        })
        .then_expect_events(vec![]);
    Given::with(())
        .given(vec![raised(), cleared])
        .when(AlertCommand::AcknowledgeAlert { by: supervisor(), note: None, at: at(6) })
        .then_expect_error(AlertError::AlreadyResolved);
    Given::with(())
        .given(vec![raised()])
        .when(AlertCommand::ResolveAlert { reason: ResolveReason::Manual, by: None, value: None, at: at(6) })
        .then_expect_error(AlertError::ResolverRequired);
    let mut alert = Alert::default();
    for e in [raised(), AlertEvent::AlertAcknowledged { by: supervisor(), note: None, at: at(2) }] {
        cqrs_es::Aggregate::apply(&mut alert, e);
    }
    assert_eq!((alert.status, alert.acknowledged), (RaisedStatus::Acknowledged, Some((supervisor(), at(2)))));
}

#[test]
fn notification_attempts_are_recorded_until_one_is_delivered() {
    let failed = AlertEvent::AlertNotificationFailed {
        recipient: hook(),
        attempt: 1,
        error: "HTTP 503".into(),
        retry_at: Some(at(1) + Duration::seconds(5)),
        at: at(1),
    };
    Given::with(())
        .given(vec![raised()])
        .when(AlertCommand::RecordNotification {
            recipient: hook(),
            attempt: 1,
            outcome: DeliveryOutcome::Failed {
                error: "HTTP 503".into(),
                retry_at: Some(at(1) + Duration::seconds(5)),
            },
            at: at(1),
        })
        .then_expect_events(vec![failed.clone()]);
    let delivered = AlertEvent::AlertNotificationDelivered { recipient: hook(), attempt: 2, at: at(2) };
    Given::with(())
        .given(vec![raised(), failed.clone()])
        .when(AlertCommand::RecordNotification {
            recipient: hook(),
            attempt: 2,
            outcome: DeliveryOutcome::Delivered,
            at: at(2),
        })
        .then_expect_events(vec![delivered.clone()]);
    Given::with(())
        .given(vec![raised(), failed, delivered])
        .when(AlertCommand::RecordNotification {
            recipient: hook(),
            attempt: 3,
            outcome: DeliveryOutcome::Delivered,
            at: at(3),
        })
        .then_expect_events(vec![]);
}

#[test]
fn retries_back_off_and_give_up() {
    let delays: Vec<Option<i64>> = (1..=6).map(|a| retry_delay(a).map(|d| d.num_seconds())).collect();
    assert_eq!(delays, vec![Some(5), Some(20), Some(80), Some(320), Some(1280), None]);
    assert_eq!(retry_delay(0), None);
}

#[test]
fn event_names_are_stable() {
    use cqrs_es::DomainEvent;
    assert_eq!(raised().event_type(), "AlertRaised");
    assert_eq!(<Alert as cqrs_es::Aggregate>::TYPE, "Alert");
    let json = serde_json::to_value(raised()).expect("json");
    assert_eq!(json["AlertRaised"]["details"]["threshold_operator"], "gt");
}
