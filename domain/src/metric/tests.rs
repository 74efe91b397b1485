//! Given/when/then for metric definitions (validation, versions, the fixed name), what a
//! definition extracts from an event, and the seed's posted metric values.

use chrono::{DateTime, Duration, TimeZone, Utc};
use cqrs_es::test::TestFramework;
use serde_json::{json, Value};

use super::*;
use crate::routing_rule::Operator;

type Given = TestFramework<MetricDefinition>;

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 9, minute, 0).single().expect("valid time")
}

fn settings() -> MetricDefinitionSettings {
    MetricDefinitionSettings {
        metric_name: "sales_call_seconds".into(),
        metric_type: MetricType::Call,
        unit: Some("seconds".into()),
        source_events: vec!["CallCompleted".into()],
        aggregation: Aggregation::Percentile95,
        value_field: Some("duration_seconds".into()),
        filters: vec![MetricFilter {
            field: "outcome".into(),
            operator: Operator::Equals,
            value: json!("completed"),
        }],
        dimensions: vec!["campaign_id".into()],
        ..MetricDefinitionSettings::default()
    }
}

fn created() -> MetricDefinitionEvent {
    MetricDefinitionEvent::MetricDefinitionCreated { version: 1, settings: settings(), at: at(0) }
}

fn patch(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().cloned().expect("object")
}

fn fields(problems: &[crate::values::InvalidValue]) -> Vec<String> {
    problems.iter().map(|p| p.field.to_string()).collect()
}

fn invalid(result: Result<MetricDefinitionSettings, Vec<crate::values::InvalidValue>>) -> Vec<String> {
    fields(&result.expect_err("invalid"))
}

// ---- the aggregate ----

#[test]
fn a_definition_is_created_as_version_1_with_normalized_settings() {
    let mut raw = settings();
    raw.metric_name = "  sales_call_seconds ".into();
    raw.source_events = vec![" CallCompleted".into()];
    raw.description = Some("   ".into());
    Given::with(())
        .given_no_previous_events()
        .when(MetricDefinitionCommand::CreateMetricDefinition { settings: raw, at: at(0) })
        .then_expect_events(vec![created()]);
    Given::with(())
        .given(vec![created()])
        .when(MetricDefinitionCommand::CreateMetricDefinition { settings: settings(), at: at(1) })
        .then_expect_error(MetricDefinitionError::AlreadyExists);
}

#[test]
fn every_definition_problem_is_reported_by_field() {
    let bad = MetricDefinitionSettings {
        metric_name: "Sales Calls".into(),
        unit: Some("u".repeat(51)),
        source_events: vec!["callCompleted".into(), "CallCompleted".into(), "CallCompleted".into()],
        aggregation: Aggregation::Sum,
        value_field: None,
        filters: vec![
            MetricFilter { field: "a..b".into(), operator: Operator::InList, value: json!([]) },
            MetricFilter { field: "x".into(), operator: Operator::MatchesRegex, value: json!("(") },
            MetricFilter { field: "y".into(), operator: Operator::Equals, value: json!({"k": 1}) },
        ],
        dimensions: vec!["agent_id".into(), "agent_id".into(), "bad field".into()],
        ..MetricDefinitionSettings::default()
    };
    let result = Given::with(())
        .given_no_previous_events()
        .when(MetricDefinitionCommand::CreateMetricDefinition { settings: bad, at: at(0) })
        .inspect_result();
    let Err(MetricDefinitionError::InvalidSettings(problems)) = result else { panic!("expected problems") };
    assert_eq!(
        fields(&problems),
        [
            "metric_name",
            "unit",
            "source_events[0]",
            "source_events[2]",
            "value_field",
            "filters[0].field",
            "filters[0].value",
            "filters[1].value",
            "filters[2].value",
            "dimensions[1]",
            "dimensions[2]",
        ]
    );
    assert_eq!(
        invalid(MetricDefinitionSettings { source_events: vec![], ..settings() }.validated()),
        ["source_events"]
    );
    let count_with_value = MetricDefinitionSettings { aggregation: Aggregation::Count, ..settings() };
    assert_eq!(count_with_value.validated().expect_err("count")[0].code, "not_allowed");
}

#[test]
fn built_in_metric_and_kpi_names_are_reserved() {
    for name in ["call_duration", "agent_utilization", "service_level", "aht"] {
        let s = MetricDefinitionSettings { metric_name: name.into(), ..settings() };
        assert_eq!(s.validated().expect_err(name)[0].code, "reserved");
    }
    assert!(!is_reserved_name("sales_call_seconds"));
}

#[test]
fn unknown_enum_values_are_all_reported_from_json() {
    let body = json!({
        "metric_name": "x", "metric_type": "finance", "aggregation": "p90",
        "source_events": ["CallCompleted"], "filters": [{"field": "a", "operator": "like", "value": 1}]
    });
    let problems = MetricDefinitionSettings::from_json(body).expect_err("invalid");
    assert_eq!(fields(&problems), ["metric_type", "aggregation", "filters[0].operator"]);
    let ok = json!({"metric_name": "transfers_per_call", "source_events": ["TransferRequested"],
        "aggregation": "count"});
    assert_eq!(MetricDefinitionSettings::from_json(ok).map(|s| s.metric_type), Ok(MetricType::Business));
    assert!(MetricDefinitionSettings::from_json(json!({"metric_name": "x", "colour": "red"})).is_err());
}

#[test]
fn every_update_is_the_next_version() {
    let mut v2 = settings();
    v2.aggregation = Aggregation::Median;
    Given::with(())
        .given(vec![created()])
        .when(MetricDefinitionCommand::UpdateMetricDefinition {
            patch: patch(json!({"aggregation": "median"})),
            at: at(1),
        })
        .then_expect_events(vec![MetricDefinitionEvent::MetricDefinitionUpdated {
            version: 2,
            settings: v2.clone(),
            changed: vec!["aggregation".into()],
            at: at(1),
        }]);
    let mut v3 = v2.clone();
    v3.filters.clear();
    v3.unit = None;
    Given::with(())
        .given(vec![
            created(),
            MetricDefinitionEvent::MetricDefinitionUpdated {
                version: 2,
                settings: v2,
                changed: vec![],
                at: at(1),
            },
        ])
        .when(MetricDefinitionCommand::UpdateMetricDefinition {
            patch: patch(json!({"filters": [], "unit": null})),
            at: at(2),
        })
        .then_expect_events(vec![MetricDefinitionEvent::MetricDefinitionUpdated {
            version: 3,
            settings: v3,
            changed: vec!["filters".into(), "unit".into()],
            at: at(2),
        }]);
}

#[test]
fn an_update_that_changes_nothing_makes_no_version() {
    Given::with(())
        .given(vec![created()])
        .when(MetricDefinitionCommand::UpdateMetricDefinition {
            patch: patch(json!({"unit": "seconds"})),
            at: at(1),
        })
        .then_expect_events(vec![]);
}

#[test]
fn a_metric_keeps_its_name_and_bad_patches_are_refused() {
    let result = Given::with(())
        .given(vec![created()])
        .when(MetricDefinitionCommand::UpdateMetricDefinition {
            patch: patch(json!({"metric_name": "renamed"})),
            at: at(1),
        })
        .inspect_result();
    let Err(MetricDefinitionError::InvalidSettings(problems)) = result else { panic!("expected a refusal") };
    assert_eq!((problems[0].field.as_ref(), problems[0].code), ("metric_name", "immutable"));
    let result = Given::with(())
        .given(vec![created()])
        .when(MetricDefinitionCommand::UpdateMetricDefinition {
            patch: patch(json!({"value_field": null})),
            at: at(1),
        })
        .inspect_result();
    let Err(MetricDefinitionError::InvalidSettings(problems)) = result else { panic!("expected a refusal") };
    assert_eq!(fields(&problems), ["value_field"]);
}

#[test]
fn a_deletion_names_the_last_version_and_ends_the_definition() {
    Given::with(())
        .given(vec![created()])
        .when(MetricDefinitionCommand::DeleteMetricDefinition { at: at(1) })
        .then_expect_events(vec![MetricDefinitionEvent::MetricDefinitionDeleted { version: 1, at: at(1) }]);
    let deleted = vec![created(), MetricDefinitionEvent::MetricDefinitionDeleted { version: 1, at: at(1) }];
    Given::with(())
        .given(deleted.clone())
        .when(MetricDefinitionCommand::DeleteMetricDefinition { at: at(2) })
        .then_expect_error(MetricDefinitionError::NotFound);
    Given::with(())
        .given(deleted)
        .when(MetricDefinitionCommand::UpdateMetricDefinition {
            patch: patch(json!({"unit": "s"})),
            at: at(2),
        })
        .then_expect_error(MetricDefinitionError::NotFound);
    Given::with(())
        .given_no_previous_events()
        .when(MetricDefinitionCommand::DeleteMetricDefinition { at: at(0) })
        .then_expect_error(MetricDefinitionError::NotFound);
}

#[test]
fn event_names_are_stable() {
    use cqrs_es::DomainEvent;
    assert_eq!(created().event_type(), "MetricDefinitionCreated");
    assert_eq!(<MetricDefinition as cqrs_es::Aggregate>::TYPE, "MetricDefinition");
    let stored = serde_json::to_value(created()).expect("json");
    assert_eq!(stored["MetricDefinitionCreated"]["settings"]["aggregation"], "percentile_95");
}

// ---- extraction ----

#[test]
fn a_definition_takes_values_from_the_events_it_reads() {
    let s = settings();
    let campaign = "0190a0a0-0000-7000-8000-000000000001";
    let event = json!({"outcome": "completed", "duration_seconds": 95, "campaign_id": campaign, "at": "x"});
    let input = s.extract("CallCompleted", &event).expect("read");
    assert_eq!(input.value, 95.0);
    assert_eq!(input.dimensions.get("campaign_id").map(String::as_str), Some(campaign));
    // The stored, externally tagged form reads the same.
    assert_eq!(s.extract("CallCompleted", &json!({"CallCompleted": event.clone()})), Some(input));
    // Another event type, a failing filter, a missing or non-numeric value: nothing.
    assert_eq!(s.extract("CallFailed", &event), None);
    assert_eq!(s.extract("CallCompleted", &json!({"outcome": "failed", "duration_seconds": 5})), None);
    assert_eq!(s.extract("CallCompleted", &json!({"outcome": "completed"})), None);
    assert_eq!(
        s.extract("CallCompleted", &json!({"outcome": "completed", "duration_seconds": "long"})),
        None
    );
    // A numeric string is a number; a missing dimension is left out.
    let input = s.extract("CallCompleted", &json!({"outcome": "completed", "duration_seconds": "12.5"}));
    assert_eq!(input.map(|i| (i.value, i.dimensions.len())), Some((12.5, 0)));
}

#[test]
fn a_count_counts_matching_events_and_paths_reach_inside() {
    let s = MetricDefinitionSettings {
        metric_name: "lookups".into(),
        source_events: vec!["AiFunctionCalled".into()],
        aggregation: Aggregation::Count,
        value_field: None,
        filters: vec![MetricFilter {
            field: "result.ok".into(),
            operator: Operator::Equals,
            value: json!(true),
        }],
        dimensions: vec!["name".into()],
        ..MetricDefinitionSettings::default()
    }
    .validated()
    .expect("valid");
    let hit = json!({"name": "lookup_order", "result": {"ok": true}});
    assert_eq!(s.extract("AiFunctionCalled", &hit).map(|i| i.value), Some(1.0));
    assert_eq!(s.extract("AiFunctionCalled", &json!({"name": "x", "result": {"ok": false}})), None);
    assert_eq!(field_at(&hit, "result.ok"), Some(&json!(true)));
    assert_eq!(Aggregation::Percentile99.quantile(), Some(0.99));
    assert_eq!(Aggregation::Average.quantile(), None);
}

// ---- posted values ----

fn now() -> DateTime<Utc> {
    at(30)
}

#[test]
fn a_posted_value_is_checked_and_stamped() {
    let body = json!({"metric_type": "call", "metric_name": "call_duration", "value": 42.5,
        "tags": {"region": "eu"}, "dimensions": {"queue": "support"}, "metadata": {"any": [1, 2]}});
    let sample = MetricSample::from_json(body, now(), Duration::minutes(5)).expect("valid");
    assert_eq!((sample.metric_type, sample.value, sample.timestamp), (MetricType::Call, 42.5, Some(now())));
    // Unknown names are custom metrics, and allowed.
    let custom = json!({"metric_type": "business", "metric_name": "upsells", "value": 1,
        "timestamp": "2026-11-24T09:34:00Z"});
    assert!(MetricSample::from_json(custom, now(), Duration::minutes(5)).is_ok());
}

#[test]
fn every_posted_value_problem_is_named() {
    let body = json!({"metric_type": "finance", "metric_name": "x", "value": 1});
    assert_eq!(
        fields(&MetricSample::from_json(body, now(), Duration::minutes(5)).expect_err("type")),
        ["metric_type"]
    );
    let body = json!({"metric_name": "x", "value": 1});
    assert_eq!(
        MetricSample::from_json(body, now(), Duration::minutes(5)).expect_err("type")[0].code,
        "required"
    );
    let body = json!({"metric_type": "call", "metric_name": "Bad Name", "value": 1,
        "tags": {"t": {"nested": 1}}, "timestamp": "2026-11-24T09:36:00Z",
        "agent_id": "00000000-0000-0000-0000-000000000000"});
    let problems = MetricSample::from_json(body, now(), Duration::minutes(5)).expect_err("invalid");
    assert_eq!(fields(&problems), ["metric_name", "agent_id", "tags.t", "timestamp"]);
    let sample = MetricSample::from_json(
        json!({"metric_type": "call", "metric_name": "x", "value": 1}),
        now(),
        Duration::zero(),
    )
    .expect("valid");
    let not_finite = MetricSample { value: f64::INFINITY, ..sample };
    assert_eq!(not_finite.validated(now(), Duration::zero()).expect_err("inf")[0].code, "not_finite");
}

#[test]
fn a_batch_names_each_problem_by_position() {
    let batch = json!([
        {"metric_type": "call", "metric_name": "a", "value": 1},
        {"metric_type": "call", "metric_name": "b"},
        {"metric_type": "nope", "metric_name": "c", "value": 3}
    ]);
    let problems = MetricSample::batch_from_json(batch, now(), Duration::minutes(5)).expect_err("invalid");
    assert_eq!(fields(&problems), ["[1].value", "[2].metric_type"]);
    let ok = json!([{"metric_type": "call", "metric_name": "a", "value": 1}]);
    assert_eq!(MetricSample::batch_from_json(ok, now(), Duration::minutes(5)).map(|v| v.len()), Ok(1));
    assert!(MetricSample::batch_from_json(json!([]), now(), Duration::minutes(5)).is_err());
    assert!(MetricSample::batch_from_json(json!({"value": 1}), now(), Duration::minutes(5)).is_err());
}
