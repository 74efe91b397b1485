//! Given/when/then for alert rules (validation, versions, enable/disable), every path of the
//! evaluator (for-duration, cancelled breaches, one alert per crossing, hysteresis, cooldown,
//! stale and non-finite values, stopping), and properties: never two firings within the
//! cooldown, never a firing before the breach has held for its duration.

use chrono::{DateTime, Duration, TimeZone, Utc};
use cqrs_es::test::TestFramework;
use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::metric::MetricType;

type Given = TestFramework<AlertRule>;

fn at(minute: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).single().expect("valid time") + Duration::minutes(minute)
}

fn secs(s: i64) -> DateTime<Utc> {
    at(0) + Duration::seconds(s)
}

fn settings() -> AlertRuleSettings {
    AlertRuleSettings {
        name: "Abandonment high".into(),
        metric_type: MetricType::Call,
        metric_name: "abandonment_rate".into(),
        threshold_value: 0.2,
        operator: Comparator::Gt,
        severity: Severity::Critical,
        notification_channels: vec![NotificationChannel::Email, NotificationChannel::Webhook],
        notification_recipients: vec!["ops@example.com".into(), "https://hooks.example.com/alerts".into()],
        ..AlertRuleSettings::default()
    }
}

fn created() -> AlertRuleEvent {
    AlertRuleEvent::AlertRuleCreated { version: 1, settings: settings(), at: at(0) }
}

fn patch(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().cloned().expect("object")
}

fn fields(problems: &[crate::values::InvalidValue]) -> Vec<String> {
    problems.iter().map(|p| p.field.to_string()).collect()
}

fn problems_of(s: AlertRuleSettings) -> Vec<String> {
    fields(&s.validated().expect_err("invalid"))
}

// ---- the aggregate ----

#[test]
fn defaults_are_the_seeds() {
    let s = AlertRuleSettings::default();
    assert_eq!((s.operator, s.severity, s.cooldown_minutes), (Comparator::Gt, Severity::Warning, 60));
    assert_eq!((s.window_seconds, s.for_seconds, s.clear_value), (300, 0, None));
}

#[test]
fn a_rule_is_created_enabled_as_version_1() {
    let mut raw = settings();
    raw.name = "  Abandonment high ".into();
    raw.notification_recipients = vec![" Ops@Example.com".into(), "https://hooks.example.com/alerts ".into()];
    Given::with(())
        .given_no_previous_events()
        .when(AlertRuleCommand::CreateAlertRule { settings: raw, at: at(0) })
        .then_expect_events(vec![created()]);
    let mut rule = AlertRule::default();
    cqrs_es::Aggregate::apply(&mut rule, created());
    assert!(rule.enabled && rule.version == 1);
    assert_eq!(
        rule.settings.recipients(),
        vec![
            Recipient::Email("ops@example.com".into()),
            Recipient::Webhook("https://hooks.example.com/alerts".into())
        ]
    );
    Given::with(())
        .given(vec![created()])
        .when(AlertRuleCommand::CreateAlertRule { settings: settings(), at: at(1) })
        .then_expect_error(AlertRuleError::AlreadyExists);
}

#[test]
fn every_rule_problem_is_reported_by_field() {
    let bad = AlertRuleSettings {
        name: "".into(),
        metric_name: "Service Level".into(),
        threshold_value: f64::INFINITY,
        clear_value: Some(f64::NAN),
        team_id: Some(uuid::Uuid::nil()),
        dimension_filters: patch(json!({"region": ["eu"]})),
        window_seconds: 10,
        for_seconds: 100_000,
        cooldown_minutes: 20_000,
        notification_channels: vec![NotificationChannel::Webhook, NotificationChannel::Webhook],
        notification_recipients: vec!["ftp://files.example.com".into(), "not an address".into()],
        ..settings()
    };
    assert_eq!(
        problems_of(bad),
        [
            "name",
            "metric_name",
            "threshold_value",
            "clear_value",
            "team_id",
            "dimension_filters.region",
            "window_seconds",
            "for_seconds",
            "cooldown_minutes",
            "notification_channels[1]",
            "notification_recipients[0]",
            "notification_recipients[1]",
        ]
    );
}

#[test]
fn hysteresis_must_lie_on_the_good_side() {
    let gt = |clear| AlertRuleSettings { clear_value: Some(clear), ..settings() };
    assert!(gt(0.1).validated().is_ok() && gt(0.2).validated().is_ok());
    assert_eq!(problems_of(gt(0.3)), ["clear_value"]);
    let lt = |clear| AlertRuleSettings { operator: Comparator::Lt, clear_value: Some(clear), ..settings() };
    assert!(lt(0.3).validated().is_ok());
    assert_eq!(problems_of(lt(0.1)), ["clear_value"]);
    let eq = AlertRuleSettings { operator: Comparator::Eq, clear_value: Some(0.2), ..settings() };
    assert_eq!(eq.validated().expect_err("eq")[0].code, "not_allowed");
}

#[test]
fn recipients_and_channels_must_match() {
    let only_email =
        AlertRuleSettings { notification_channels: vec![NotificationChannel::Email], ..settings() };
    let problems = only_email.validated().expect_err("webhook not listed");
    assert_eq!(
        (problems[0].field.as_ref(), problems[0].code),
        ("notification_recipients[1]", "channel_not_listed")
    );
    let no_recipient =
        AlertRuleSettings { notification_recipients: vec!["ops@example.com".into()], ..settings() };
    assert_eq!(no_recipient.validated().expect_err("no hook")[0].code, "required");
    for bad in ["http://", "https://user:pw@example.com/x", "https://exa mple.com", "mailto://a@b.c"] {
        assert!(settings::webhook_url("u", bad).is_err(), "{bad}");
    }
    assert!(settings::webhook_url("u", "http://localhost:8080/hook?x=1").is_ok());
    let silent =
        AlertRuleSettings { notification_channels: vec![], notification_recipients: vec![], ..settings() };
    assert!(silent.validated().is_ok());
}

#[test]
fn unknown_enum_values_are_all_reported_from_json() {
    let body = json!({"name": "x", "metric_name": "asa", "operator": "greater_than", "severity": "fatal",
        "metric_type": "money", "notification_channels": ["sms"]});
    let problems = AlertRuleSettings::from_json(body).expect_err("invalid");
    assert_eq!(fields(&problems), ["metric_type", "operator", "severity", "notification_channels[0]"]);
    let seed = json!({"name": "Long waits", "metric_type": "call", "metric_name": "queue_wait_time",
        "threshold_value": 120, "operator": "gte", "severity": "warning", "cooldown_minutes": 15,
        "notification_channels": [], "notification_recipients": []});
    let s = AlertRuleSettings::from_json(seed).expect("the seed's body");
    assert_eq!((s.operator, s.threshold_value, s.cooldown_minutes), (Comparator::Gte, 120.0, 15));
}

#[test]
fn every_update_is_the_next_version() {
    let mut v2 = settings();
    v2.threshold_value = 0.25;
    v2.clear_value = Some(0.15);
    Given::with(())
        .given(vec![created()])
        .when(AlertRuleCommand::UpdateAlertRule {
            patch: patch(json!({"threshold_value": 0.25, "clear_value": 0.15})),
            at: at(1),
        })
        .then_expect_events(vec![AlertRuleEvent::AlertRuleUpdated {
            version: 2,
            settings: v2,
            changed: vec!["clear_value".into(), "threshold_value".into()],
            at: at(1),
        }]);
    Given::with(())
        .given(vec![created()])
        .when(AlertRuleCommand::UpdateAlertRule { patch: patch(json!({"severity": "critical"})), at: at(1) })
        .then_expect_events(vec![]);
    let result = Given::with(())
        .given(vec![created()])
        .when(AlertRuleCommand::UpdateAlertRule { patch: patch(json!({"clear_value": 0.9})), at: at(1) })
        .inspect_result();
    assert!(matches!(result, Err(AlertRuleError::InvalidSettings(p)) if fields(&p) == ["clear_value"]));
}

#[test]
fn a_rule_is_disabled_and_enabled_once_each() {
    let disabled = AlertRuleEvent::AlertRuleDisabled { version: 1, at: at(1) };
    Given::with(())
        .given(vec![created()])
        .when(AlertRuleCommand::DisableAlertRule { at: at(1) })
        .then_expect_events(vec![disabled.clone()]);
    Given::with(())
        .given(vec![created(), disabled.clone()])
        .when(AlertRuleCommand::DisableAlertRule { at: at(2) })
        .then_expect_events(vec![]);
    Given::with(())
        .given(vec![created(), disabled.clone()])
        .when(AlertRuleCommand::EnableAlertRule { at: at(2) })
        .then_expect_events(vec![AlertRuleEvent::AlertRuleEnabled { version: 1, at: at(2) }]);
    Given::with(())
        .given(vec![created()])
        .when(AlertRuleCommand::EnableAlertRule { at: at(2) })
        .then_expect_events(vec![]);
}

#[test]
fn a_deleted_rule_is_gone() {
    let deleted = AlertRuleEvent::AlertRuleDeleted { version: 1, at: at(1) };
    Given::with(())
        .given(vec![created()])
        .when(AlertRuleCommand::DeleteAlertRule { at: at(1) })
        .then_expect_events(vec![deleted.clone()]);
    for command in [
        AlertRuleCommand::DeleteAlertRule { at: at(2) },
        AlertRuleCommand::EnableAlertRule { at: at(2) },
        AlertRuleCommand::DisableAlertRule { at: at(2) },
        AlertRuleCommand::UpdateAlertRule { patch: patch(json!({"threshold_value": 1})), at: at(2) },
    ] {
        Given::with(())
            .given(vec![created(), deleted.clone()])
            .when(command)
            .then_expect_error(AlertRuleError::NotFound);
    }
    Given::with(())
        .given_no_previous_events()
        .when(AlertRuleCommand::DisableAlertRule { at: at(0) })
        .then_expect_error(AlertRuleError::NotFound);
}

// ---- the evaluator ----

/// Runs observations `(seconds from 09:00, value)` from a fresh state.
fn run(rule: &AlertRuleSettings, observations: &[(i64, f64)]) -> (AlertState, Vec<AlertTransition>) {
    let mut state = AlertState::default();
    let mut all = Vec::new();
    for (s, value) in observations {
        let e = evaluate(rule, &state, Observation { value: *value, at: secs(*s) });
        state = e.state;
        all.extend(e.transitions);
    }
    (state, all)
}

use AlertTransition as T;

#[test]
fn a_breach_with_no_duration_fires_at_once() {
    let (state, t) = run(&settings(), &[(0, 0.1), (10, 0.3)]);
    assert_eq!(
        t,
        vec![
            T::Pending { value: 0.3, at: secs(10) },
            T::Fired { value: 0.3, breached_since: secs(10), at: secs(10) }
        ]
    );
    assert_eq!((state.status, state.last_fired_at), (AlertStatus::Firing, Some(secs(10))));
}

#[test]
fn a_breach_fires_once_it_has_held_for_its_duration() {
    let rule = AlertRuleSettings { for_seconds: 60, ..settings() };
    let (state, t) = run(&rule, &[(0, 0.3), (30, 0.4)]);
    assert_eq!(t, vec![T::Pending { value: 0.3, at: secs(0) }]);
    assert_eq!(next_check_at(&rule, &state), Some(secs(60)));
    let (_, t) = run(&rule, &[(0, 0.3), (30, 0.4), (60, 0.35)]);
    assert_eq!(t[1], T::Fired { value: 0.35, breached_since: secs(0), at: secs(60) });
}

#[test]
fn a_breach_that_ends_before_its_duration_never_fires() {
    let rule = AlertRuleSettings { for_seconds: 60, ..settings() };
    let (state, t) = run(&rule, &[(0, 0.3), (30, 0.2), (40, 0.3), (90, 0.3), (100, 0.3)]);
    assert_eq!(
        t,
        vec![
            T::Pending { value: 0.3, at: secs(0) },
            T::PendingCleared { value: Some(0.2), at: secs(30) },
            T::Pending { value: 0.3, at: secs(40) },
            T::Fired { value: 0.3, breached_since: secs(40), at: secs(100) },
        ]
    );
    assert_eq!(state.status, AlertStatus::Firing);
}

#[test]
fn a_firing_alert_stays_one_alert_until_it_clears() {
    let (_, t) = run(&settings(), &[(0, 0.3), (10, 0.5), (20, 0.9), (30, 0.21)]);
    assert_eq!(t.iter().filter(|t| matches!(t, T::Fired { .. })).count(), 1);
    let (state, t) = run(&settings(), &[(0, 0.3), (10, 0.2)]);
    // At the threshold is not above it: cleared (no hysteresis configured).
    assert_eq!(t[2], T::Resolved { value: Some(0.2), fired_at: secs(0), at: secs(10) });
    assert_eq!((state.status, state.breached_since), (AlertStatus::Ok, None));
}

#[test]
fn hysteresis_holds_the_alert_until_the_clear_value() {
    let rule = AlertRuleSettings { clear_value: Some(0.1), ..settings() };
    let (state, t) = run(&rule, &[(0, 0.3), (10, 0.15), (20, 0.19)]);
    assert_eq!(t.len(), 2, "{t:?}");
    assert_eq!(state.status, AlertStatus::Firing);
    let (_, t) = run(&rule, &[(0, 0.3), (10, 0.15), (20, 0.1)]);
    assert_eq!(t[2], T::Resolved { value: Some(0.1), fired_at: secs(0), at: secs(20) });
    // Below the threshold but above the clear value does not start a breach either.
    let (_, t) = run(&rule, &[(0, 0.15), (10, 0.2)]);
    assert!(t.is_empty());
}

#[test]
fn the_cooldown_delays_a_second_firing() {
    let rule = AlertRuleSettings { cooldown_minutes: 60, ..settings() };
    let first = [(0, 0.3), (60, 0.1), (120, 0.3)];
    let (state, t) = run(&rule, &first);
    assert_eq!(&t[3..], &[T::Pending { value: 0.3, at: secs(120) }]);
    assert_eq!(next_check_at(&rule, &state), Some(at(60)));
    let (_, t) = run(&rule, &[(0, 0.3), (60, 0.1), (120, 0.3), (1800, 0.4), (3599, 0.4)]);
    assert_eq!(t.len(), 4, "no firing within the hour: {t:?}");
    let (_, t) = run(&rule, &[(0, 0.3), (60, 0.1), (120, 0.3), (1800, 0.4), (3600, 0.4)]);
    assert_eq!(t[4], T::Fired { value: 0.4, breached_since: secs(120), at: secs(3600) });
}

#[test]
fn below_threshold_rules_fire_low_and_clear_high() {
    let rule = AlertRuleSettings {
        metric_name: "service_level".into(),
        operator: Comparator::Lt,
        threshold_value: 0.8,
        clear_value: Some(0.85),
        ..settings()
    };
    let (state, t) = run(&rule, &[(0, 0.9), (10, 0.79), (20, 0.84), (30, 0.85)]);
    assert!(matches!(t[1], T::Fired { value, .. } if value == 0.79));
    assert_eq!(t[2], T::Resolved { value: Some(0.85), fired_at: secs(10), at: secs(30) });
    assert_eq!(state.status, AlertStatus::Ok);
    let lte = AlertRuleSettings { operator: Comparator::Lte, ..rule.clone() };
    assert_eq!(run(&lte, &[(0, 0.8)]).0.status, AlertStatus::Firing);
    let gte = AlertRuleSettings { operator: Comparator::Gte, ..settings() };
    assert_eq!(run(&gte, &[(0, 0.2)]).0.status, AlertStatus::Firing);
    let eq = AlertRuleSettings { operator: Comparator::Eq, threshold_value: 3.0, ..settings() };
    let (state, t) = run(&eq, &[(0, 3.0), (10, 3.0), (20, 2.0)]);
    assert_eq!((t.len(), state.status), (3, AlertStatus::Ok));
}

#[test]
fn stale_and_non_finite_observations_change_nothing() {
    let (state, _) = run(&settings(), &[(100, 0.1)]);
    for (s, v) in [(50, 0.9), (200, f64::NAN), (200, f64::INFINITY)] {
        let e = evaluate(&settings(), &state, Observation { value: v, at: secs(s) });
        assert_eq!((e.state, e.transitions.len()), (state, 0), "{s} {v}");
    }
    // The same instant again is not stale.
    let e = evaluate(&settings(), &state, Observation { value: 0.9, at: secs(100) });
    assert_eq!(e.state.status, AlertStatus::Firing);
}

#[test]
fn stopping_a_rule_resolves_or_drops_its_alert() {
    let (firing, _) = run(&settings(), &[(0, 0.3)]);
    let e = stop(&firing, secs(5));
    assert_eq!(e.transitions, vec![T::Resolved { value: None, fired_at: secs(0), at: secs(5) }]);
    assert_eq!((e.state.status, e.state.last_fired_at), (AlertStatus::Ok, Some(secs(0))));
    let rule = AlertRuleSettings { for_seconds: 60, ..settings() };
    let (pending, _) = run(&rule, &[(0, 0.3)]);
    assert_eq!(stop(&pending, secs(5)).transitions, vec![T::PendingCleared { value: None, at: secs(5) }]);
    assert!(stop(&AlertState::default(), secs(5)).transitions.is_empty());
}

#[test]
fn transitions_serialize_with_a_type_tag() {
    let json = serde_json::to_value(T::Pending { value: 0.3, at: secs(0) }).expect("json");
    assert_eq!(json["type"], "pending");
    assert_eq!(
        serde_json::from_value::<AlertState>(serde_json::to_value(AlertState::default()).expect("json")).ok(),
        Some(AlertState::default())
    );
}

// ---- properties ----

proptest! {
    #[test]
    fn never_twice_within_the_cooldown_nor_before_the_duration(
        steps in prop::collection::vec((1i64..400, prop_oneof![Just(0.05), Just(0.1), Just(0.15), Just(0.2), Just(0.25), Just(0.5)]), 1..200),
        for_seconds in 0u32..600,
        cooldown_minutes in 0u32..30,
        clear in prop::option::of(prop_oneof![Just(0.1), Just(0.15), Just(0.2)]),
    ) {
        let rule = AlertRuleSettings { for_seconds, cooldown_minutes, clear_value: clear, ..settings() };
        let mut t = 0;
        let observations: Vec<(i64, f64)> = steps.iter().map(|(gap, v)| { t += gap; (t, *v) }).collect();
        let (_, transitions) = run(&rule, &observations);
        let mut last_fired: Option<DateTime<Utc>> = None;
        let mut firing = false;
        for tr in &transitions {
            match *tr {
                T::Fired { at, breached_since, .. } => {
                    prop_assert!(!firing, "fired while firing");
                    firing = true;
                    if let Some(prev) = last_fired {
                        prop_assert!(at - prev >= Duration::minutes(i64::from(cooldown_minutes)));
                    }
                    last_fired = Some(at);
                    prop_assert!(at - breached_since >= Duration::seconds(i64::from(for_seconds)));
                    // Every observation from the breach's start to the firing breached.
                    for (s, v) in &observations {
                        if secs(*s) >= breached_since && secs(*s) <= at {
                            prop_assert!(*v > 0.2, "{v} at {s} inside a breach");
                        }
                    }
                }
                T::Resolved { value, .. } => {
                    prop_assert!(firing, "resolved while not firing");
                    firing = false;
                    prop_assert!(value.is_some_and(|v| v <= rule.clear_threshold()));
                }
                T::Pending { .. } | T::PendingCleared { .. } => prop_assert!(!firing),
            }
        }
    }
}
