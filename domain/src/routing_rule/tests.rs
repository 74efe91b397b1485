//! Given/when/then for routing rules (validation, versions) and the evaluator (each operator,
//! and/or logic, priority order, hours and fallback).

use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::test::TestFramework;
use serde_json::{json, Value};
use uuid::Uuid;

use super::*;
use crate::routing::Strategy;
use crate::schedule::BusinessHours;

type Given = TestFramework<RoutingRule>;

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 9, minute, 0).single().expect("valid time")
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn cond(field: &str, operator: Operator, value: Value, logic: Logic) -> Condition {
    Condition { field: field.into(), operator, value, logic }
}

fn settings() -> RuleSettings {
    RuleSettings {
        name: "Spanish VIPs".into(),
        strategy: Strategy::Language,
        conditions: vec![cond("language", Operator::Equals, json!("es"), Logic::And)],
        target_type: TargetType::Queue,
        target_id: Some(id(5).to_string()),
        ..RuleSettings::default()
    }
}

fn created() -> RoutingRuleEvent {
    RoutingRuleEvent::RoutingRuleCreated { version: 1, settings: settings(), at: at(0) }
}

fn patch(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().cloned().expect("object")
}

fn fields(problems: &[crate::values::InvalidValue]) -> Vec<String> {
    problems.iter().map(|p| p.field.to_string()).collect()
}

fn weekday_hours() -> BusinessHours {
    let day = json!([{"open": "09:00", "close": "17:00"}]);
    serde_json::from_value(json!({
        "timezone": "Europe/Prague",
        "hours": {"mon": day, "tue": day, "wed": day, "thu": day, "fri": day}
    }))
    .expect("hours")
}

// ---- the aggregate ----

#[test]
fn defaults_are_the_seeds() {
    let s = RuleSettings::default();
    assert_eq!((s.priority, s.enabled, s.fallback_enabled, s.business_hours_only), (100, true, false, false));
}

#[test]
fn a_rule_is_created_as_version_1() {
    Given::with(())
        .given_no_previous_events()
        .when(RoutingRuleCommand::CreateRoutingRule { settings: settings(), at: at(0) })
        .then_expect_events(vec![created()]);
}

#[test]
fn every_update_is_the_next_version() {
    let mut v2 = settings();
    v2.priority = 200;
    Given::with(())
        .given(vec![created()])
        .when(RoutingRuleCommand::UpdateRoutingRule { patch: patch(json!({"priority": 200})), at: at(1) })
        .then_expect_events(vec![RoutingRuleEvent::RoutingRuleUpdated {
            version: 2,
            settings: v2.clone(),
            changed: vec!["priority".into()],
            at: at(1),
        }]);
    let mut v3 = v2.clone();
    v3.enabled = false;
    Given::with(())
        .given(vec![
            created(),
            RoutingRuleEvent::RoutingRuleUpdated { version: 2, settings: v2, changed: vec![], at: at(1) },
        ])
        .when(RoutingRuleCommand::UpdateRoutingRule { patch: patch(json!({"enabled": false})), at: at(2) })
        .then_expect_events(vec![RoutingRuleEvent::RoutingRuleUpdated {
            version: 3,
            settings: v3,
            changed: vec!["enabled".into()],
            at: at(2),
        }]);
}

#[test]
fn an_update_that_changes_nothing_makes_no_version() {
    Given::with(())
        .given(vec![created()])
        .when(RoutingRuleCommand::UpdateRoutingRule { patch: patch(json!({"priority": 100})), at: at(1) })
        .then_expect_events(vec![]);
}

#[test]
fn a_deletion_names_the_last_version() {
    Given::with(())
        .given(vec![created()])
        .when(RoutingRuleCommand::DeleteRoutingRule { at: at(1) })
        .then_expect_events(vec![RoutingRuleEvent::RoutingRuleDeleted { version: 1, at: at(1) }]);
    Given::with(())
        .given(vec![created(), RoutingRuleEvent::RoutingRuleDeleted { version: 1, at: at(1) }])
        .when(RoutingRuleCommand::DeleteRoutingRule { at: at(2) })
        .then_expect_error(RoutingRuleError::NotFound);
}

#[test]
fn every_rule_problem_is_reported_by_field() {
    let bad = RuleSettings {
        name: " ".into(),
        conditions: vec![
            cond("caller number", Operator::Equals, json!("1"), Logic::And),
            cond("caller_number", Operator::MatchesRegex, json!("^(+420"), Logic::And),
            cond("language", Operator::InList, json!([]), Logic::Or),
            cond("vip", Operator::Equals, json!({"a": 1}), Logic::And),
        ],
        business_hours_only: true,
        target_type: TargetType::Queue,
        target_id: Some("queue-five".into()),
        fallback_enabled: true,
        ..RuleSettings::default()
    };
    let result = Given::with(())
        .given_no_previous_events()
        .when(RoutingRuleCommand::CreateRoutingRule { settings: bad, at: at(0) })
        .inspect_result();
    let Err(RoutingRuleError::InvalidSettings(problems)) = result else {
        panic!("expected invalid settings")
    };
    assert_eq!(
        fields(&problems),
        [
            "name",
            "conditions[0].field",
            "conditions[1].value",
            "conditions[2].value",
            "conditions[3].value",
            "business_hours",
            "target_id",
            "fallback_target_type"
        ]
    );
    assert_eq!(problems[2].code, "invalid_regex");
}

#[test]
fn unknown_operators_logic_strategies_and_targets_in_json_are_all_reported() {
    let problems = RuleSettings::from_json(json!({
        "name": "R",
        "strategy": "psychic",
        "target_type": "fax",
        "fallback_target_type": "pigeon",
        "conditions": [
            {"field": "language", "operator": "equals", "value": "es"},
            {"field": "vip", "operator": "is", "value": true},
            {"field": "x", "operator": "equals", "value": 1, "logic": "xor"},
            {"field": "y", "operator": "between", "value": 1}
        ]
    }))
    .expect_err("invalid");
    assert_eq!(
        fields(&problems),
        [
            "strategy",
            "target_type",
            "fallback_target_type",
            "conditions[1].operator",
            "conditions[2].logic",
            "conditions[3].operator"
        ]
    );
}

#[test]
fn targets_are_normalized_and_the_seeds_empty_active_hours_mean_none() {
    let s = RuleSettings::from_json(json!({
        "name": "After hours",
        "strategy": "longest_idle",
        "target_type": "external",
        "target_id": "+420 603 123 456",
        "active_hours": {},
        "fallback_enabled": true,
        "fallback_target_type": "voicemail"
    }))
    .expect("valid");
    assert_eq!(s.target_id.as_deref(), Some("+420603123456"));
    assert_eq!(s.active_hours, None);
    assert_eq!(s.fallback().map(|f| f.target_type), Some(TargetType::Voicemail));
    let problems =
        RuleSettings::from_json(json!({"name": "X", "target_type": "external", "target_id": "12"}))
            .expect_err("bad number");
    assert_eq!((problems[0].field.as_ref(), problems[0].code), ("target_id", "invalid_phone"));
    let problems = RuleSettings::from_json(json!({"name": "X", "target_type": "agent"})).expect_err("no id");
    assert_eq!((problems[0].field.as_ref(), problems[0].code), ("target_id", "required"));
}

// ---- the evaluator ----

#[test]
fn each_operator_compares_as_documented() {
    use Operator::*;
    let cases: Vec<(Operator, Value, Value, bool)> = vec![
        (Equals, json!("ES"), json!("es"), true),
        (Equals, json!(5), json!("5"), true),
        (Equals, json!("05"), json!(5), true),
        (Equals, json!("+420603"), json!("420603"), false),
        (Equals, json!(true), json!("true"), true),
        (NotEquals, json!("en"), json!("es"), true),
        (NotEquals, json!(3), json!(3.0), false),
        (Contains, json!("Premium Gold"), json!("gold"), true),
        (Contains, json!(["a", "B"]), json!("b"), true),
        (Contains, json!("silver"), json!("gold"), false),
        (StartsWith, json!("+420603123456"), json!("+420"), true),
        (StartsWith, json!("+1415"), json!("+420"), false),
        (EndsWith, json!("ann@example.com"), json!("@EXAMPLE.com"), true),
        (EndsWith, json!("ann@example.org"), json!(".com"), false),
        (GreaterThan, json!(10), json!(9), true),
        (GreaterThan, json!("10"), json!(9), true),
        (GreaterThan, json!("b"), json!("a"), true),
        (GreaterThan, json!(9), json!(9), false),
        (LessThan, json!(2), json!(10), true),
        (LessThan, json!("2026-01-01"), json!("2025-12-31"), false),
        (InList, json!("cs"), json!(["en", "cs"]), true),
        (InList, json!("cs"), json!("en, cs ,es"), true),
        (InList, json!(3), json!([1, 2, 3]), true),
        (InList, json!("de"), json!(["en", "cs"]), false),
        (NotInList, json!("de"), json!(["en", "cs"]), true),
        (NotInList, json!("en"), json!("en,cs"), false),
        (MatchesRegex, json!("+420603123456"), json!(r"^\+420\d{9}$"), true),
        (MatchesRegex, json!("+14155550123"), json!(r"^\+420"), false),
        (MatchesRegex, json!("ABC"), json!("abc"), false),
        (MatchesRegex, json!("ABC"), json!("(?i)abc"), true),
    ];
    for (op, actual, expected, holds) in cases {
        assert_eq!(compare(op, &actual, &expected), holds, "{actual} {} {expected}", op.as_str());
    }
}

fn rule_with(conditions: Vec<Condition>) -> RuleSettings {
    RuleSettings { conditions, ..settings() }
}

fn matches(s: &RuleSettings, ctx: &RouteContext) -> bool {
    evaluate_rule(&RuleRef { rule_id: id(1), version: 1, settings: s }, ctx, at(0)).conditions_met
}

#[test]
fn logic_combines_conditions_left_to_right() {
    let ctx = RouteContext::new().with("language", "es").with("vip", false).with("priority", 7);
    let lang = |logic| cond("language", Operator::Equals, json!("es"), logic);
    let vip = |logic| cond("vip", Operator::Equals, json!(true), logic);
    let high = |logic| cond("priority", Operator::GreaterThan, json!(5), logic);
    assert!(!matches(&rule_with(vec![lang(Logic::And), vip(Logic::And)]), &ctx));
    assert!(matches(&rule_with(vec![lang(Logic::And), vip(Logic::Or)]), &ctx));
    // (es AND vip) OR high = (true AND false) OR true
    assert!(matches(&rule_with(vec![lang(Logic::And), vip(Logic::And), high(Logic::Or)]), &ctx));
    // (vip OR es) AND not high = (false OR true) AND false
    let low = cond("priority", Operator::LessThan, json!(5), Logic::And);
    assert!(!matches(&rule_with(vec![vip(Logic::And), lang(Logic::Or), low]), &ctx));
    // No conditions: always.
    assert!(matches(&rule_with(vec![]), &ctx));
    let e = evaluate_rule(
        &RuleRef { rule_id: id(1), version: 1, settings: &rule_with(vec![lang(Logic::And), vip(Logic::Or)]) },
        &ctx,
        at(0),
    );
    assert_eq!(e.conditions, [true, false]);
}

#[test]
fn a_missing_field_makes_its_condition_false_whatever_the_operator() {
    let ctx = RouteContext::new().with("campaign_id", Value::Null);
    for op in Operator::ALL {
        let value =
            if matches!(op, Operator::InList | Operator::NotInList) { json!(["x"]) } else { json!("x") };
        assert!(
            !matches(&rule_with(vec![cond("caller_number", op, value.clone(), Logic::And)]), &ctx),
            "{op:?}"
        );
        assert!(!matches(&rule_with(vec![cond("campaign_id", op, value, Logic::And)]), &ctx), "{op:?}");
    }
}

#[test]
fn time_fields_come_from_now_in_the_rules_zone() {
    // 09:00 UTC on Tuesday 24 November 2026 is 10:00 in Prague.
    let mut s = rule_with(vec![
        cond("hour", Operator::Equals, json!(10), Logic::And),
        cond("weekday", Operator::Equals, json!("tue"), Logic::And),
        cond("day_of_week", Operator::Equals, json!(2), Logic::And),
        cond("time", Operator::StartsWith, json!("10:00"), Logic::And),
        cond("date", Operator::Equals, json!("2026-11-24"), Logic::And),
    ]);
    s.active_hours = Some(weekday_hours());
    assert!(matches(&s, &RouteContext::new()));
    // A value in the context wins over the derived one.
    assert!(!matches(&s, &RouteContext::new().with("hour", 11)));
    s.active_hours = None;
    assert!(!matches(&s, &RouteContext::new()), "UTC: hour 9");
}

fn rule(n: u128, priority: i32, target: u128) -> RuleSettings {
    RuleSettings {
        name: format!("rule {n}"),
        priority,
        target_id: Some(id(target).to_string()),
        ..settings()
    }
}

#[test]
fn rules_are_tried_highest_priority_first_then_by_id_and_disabled_ones_are_skipped() {
    let low = rule(1, 50, 51);
    let high = rule(2, 200, 52);
    let also_high = rule(3, 200, 53);
    let mut disabled = rule(4, 900, 54);
    disabled.enabled = false;
    let ctx = RouteContext::new().with("language", "es");
    let refs = [
        RuleRef { rule_id: id(1), version: 1, settings: &low },
        RuleRef { rule_id: id(3), version: 4, settings: &also_high },
        RuleRef { rule_id: id(2), version: 2, settings: &high },
        RuleRef { rule_id: id(4), version: 1, settings: &disabled },
    ];
    let m = evaluate_rules(&refs, &ctx, at(0)).expect("a match");
    assert_eq!((m.rule_id, m.version, m.fallback_used), (id(2), 2, false));
    assert_eq!(m.target.target_id, Some(id(52).to_string()));
    assert_eq!(m.rule_version(), crate::routing::RuleVersion { rule_id: id(2), version: 2 });
    assert_eq!(m.strategy, Strategy::Language);
    assert_eq!(evaluate_rules(&refs, &RouteContext::new().with("language", "en"), at(0)), None);
}

#[test]
fn outside_business_hours_a_rule_uses_its_fallback_or_is_skipped() {
    let mut after_hours = rule(1, 200, 61);
    after_hours.business_hours_only = true;
    after_hours.business_hours = Some(weekday_hours());
    let catch_all = rule(2, 10, 62);
    let ctx = RouteContext::new().with("language", "es");
    let saturday = Utc.with_ymd_and_hms(2026, 11, 28, 10, 0, 0).single().expect("time");
    let tuesday = at(0);
    {
        let refs = [
            RuleRef { rule_id: id(1), version: 1, settings: &after_hours },
            RuleRef { rule_id: id(2), version: 1, settings: &catch_all },
        ];
        assert_eq!(evaluate_rules(&refs, &ctx, tuesday).map(|m| m.rule_id), Some(id(1)));
        // Closed and no fallback: the next rule routes.
        assert_eq!(evaluate_rules(&refs, &ctx, saturday).map(|m| m.rule_id), Some(id(2)));
    }
    after_hours.fallback_enabled = true;
    after_hours.fallback_target_type = Some(TargetType::Voicemail);
    let refs = [
        RuleRef { rule_id: id(1), version: 1, settings: &after_hours },
        RuleRef { rule_id: id(2), version: 1, settings: &catch_all },
    ];
    let m = evaluate_rules(&refs, &ctx, saturday).expect("fallback");
    assert_eq!((m.rule_id, m.fallback_used, m.target.target_type), (id(1), true, TargetType::Voicemail));
    assert_eq!(m.fallback, None);
    // In hours the fallback travels along for the router.
    let m = evaluate_rules(&refs, &ctx, tuesday).expect("primary");
    assert_eq!((m.fallback_used, m.fallback.map(|f| f.target_type)), (false, Some(TargetType::Voicemail)));
}

#[test]
fn active_hours_limit_a_rule_like_business_hours() {
    let mut s = rule(1, 100, 71);
    s.active_hours = Some(weekday_hours());
    let r = RuleRef { rule_id: id(1), version: 1, settings: &s };
    let ctx = RouteContext::new().with("language", "es");
    let evening = Utc.with_ymd_and_hms(2026, 11, 24, 18, 0, 0).single().expect("time");
    let e = evaluate_rule(&r, &ctx, evening);
    assert_eq!((e.conditions_met, e.in_hours, e.result), (true, false, None));
    assert!(e.why.contains("active hours"), "{}", e.why);
    assert!(evaluate_rule(&r, &ctx, at(0)).result.is_some());
}

#[test]
fn the_aggregate_evaluates_its_current_version() {
    let mut rule = RoutingRule::default();
    rule.apply(created());
    let mut v2 = settings();
    v2.target_id = Some(id(6).to_string());
    rule.apply(RoutingRuleEvent::RoutingRuleUpdated { version: 2, settings: v2, changed: vec![], at: at(1) });
    let m = evaluate_rules(&[rule.as_ref(id(8))], &RouteContext::new().with("language", "es"), at(2))
        .expect("match");
    assert_eq!((m.version, m.target.target_id), (2, Some(id(6).to_string())));
}
