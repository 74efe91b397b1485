//! Given/when/then for queues: settings with every problem named, lifecycle, members.

use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::test::TestFramework;
use serde_json::json;
use uuid::Uuid;

use super::*;
use crate::routing::{QueueStrategy, RelaxationStep, Strategy};

type Given = TestFramework<Queue>;

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 9, minute, 0).single().expect("valid time")
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn agent(n: u128) -> QueueMember {
    QueueMember::Agent { id: id(n) }
}

fn settings() -> QueueSettings {
    QueueSettings { name: "Support".into(), members: vec![agent(1), agent(2)], ..QueueSettings::default() }
}

fn created() -> QueueEvent {
    QueueEvent::QueueCreated { settings: settings(), at: at(0) }
}

fn patch(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    v.as_object().cloned().expect("object")
}

fn fields(problems: &[crate::values::InvalidValue]) -> Vec<String> {
    problems.iter().map(|p| p.field.to_string()).collect()
}

#[test]
fn defaults_are_the_documented_ones() {
    let s = QueueSettings::default();
    assert_eq!(s.strategy, QueueStrategy::Fifo);
    assert_eq!((s.service_level.threshold_seconds, s.service_level.target_percent), (20, 80));
    assert_eq!((s.max_wait_seconds, s.announcement_interval_seconds, s.offer_timeout_seconds), (300, 30, 15));
    assert_eq!(s.overflow, OverflowTarget::None);
}

#[test]
fn a_queue_is_created_with_checked_settings() {
    let mut raw = settings();
    raw.name = " Support ".into();
    raw.required_skills = [(" Billing".to_owned(), 3)].into();
    raw.language = Some("ES".into());
    let mut expected = settings();
    expected.required_skills = [("billing".to_owned(), 3)].into();
    expected.language = Some("es".into());
    Given::with(())
        .given_no_previous_events()
        .when(QueueCommand::CreateQueue { settings: raw, at: at(0) })
        .then_expect_events(vec![QueueEvent::QueueCreated { settings: expected, at: at(0) }]);
}

#[test]
fn every_settings_problem_is_reported_by_field() {
    let mut bad = settings();
    bad.name = "".into();
    bad.required_skills = [("billing".to_owned(), 7), (" ".to_owned(), 2)].into();
    bad.language = Some("spanish".into());
    bad.service_level = ServiceLevel { threshold_seconds: 0, target_percent: 101 };
    bad.max_wait_seconds = 0;
    bad.overflow = OverflowTarget::Queue { queue_id: Uuid::nil() };
    bad.announcement_interval_seconds = 5;
    bad.offer_timeout_seconds = 1;
    bad.members = vec![agent(1), agent(1), QueueMember::Team { id: Uuid::nil() }];
    bad.strategy_config.relaxation_steps =
        vec![RelaxationStep { required_skills: [("sales".to_owned(), 0)].into(), expires_after_seconds: 0 }];
    bad.strategy_config.custom.rating = f64::NAN;
    bad.strategy_config.vip.sticky_days = 400;
    let result = Given::with(())
        .given_no_previous_events()
        .when(QueueCommand::CreateQueue { settings: bad, at: at(0) })
        .inspect_result();
    let Err(QueueError::InvalidSettings(problems)) = result else { panic!("expected invalid settings") };
    assert_eq!(
        fields(&problems),
        [
            "name",
            "required_skills. ",
            "required_skills.billing",
            "language",
            "service_level.threshold_seconds",
            "service_level.target_percent",
            "max_wait_seconds",
            "overflow.queue_id",
            "announcement_interval_seconds",
            "offer_timeout_seconds",
            "members[1]",
            "members[2].id",
            "strategy_config.relaxation_steps[0].required_skills.sales",
            "strategy_config.relaxation_steps[0].expires_after_seconds",
            "strategy_config.custom.rating",
            "strategy_config.vip.sticky_days",
        ]
    );
}

#[test]
fn unknown_strategies_types_and_bad_levels_in_json_are_all_reported() {
    let problems = QueueSettings::from_json(json!({
        "name": "Support",
        "strategy": "random",
        "routing_strategy": "telepathy",
        "required_skills": {"billing": 9, "sales": 2},
        "overflow": {"type": "sms"},
        "members": [{"type": "agent", "id": id(1)}, {"type": "robot", "id": id(2)}],
        "strategy_config": {"relaxation_steps": [{"required_skills": {"x": 0}, "expires_after_seconds": 5}]}
    }))
    .expect_err("invalid");
    assert_eq!(
        fields(&problems),
        [
            "strategy",
            "routing_strategy",
            "required_skills.billing",
            "overflow.type",
            "members[1].type",
            "strategy_config.relaxation_steps[0].required_skills.x"
        ]
    );
    assert!(problems.iter().all(|p| p.code == "unknown_value" || p.code == "out_of_range"));
}

#[test]
fn json_settings_parse_every_strategy_and_overflow() {
    let s = QueueSettings::from_json(json!({
        "name": "Sales",
        "strategy": "least_occupied",
        "routing_strategy": "vip",
        "overflow": {"type": "queue", "queue_id": id(5)},
        "members": [{"type": "team", "id": id(7)}],
        "announcement_interval_seconds": 0
    }))
    .expect("valid");
    assert_eq!(s.strategy, QueueStrategy::LeastOccupied);
    assert_eq!(s.routing_strategy, Some(Strategy::Vip));
    assert_eq!(s.overflow, OverflowTarget::Queue { queue_id: id(5) });
    assert_eq!(serde_json::to_value(s.members[0]).expect("json"), json!({"type": "team", "id": id(7)}));
    for q in QueueStrategy::ALL {
        let parsed = QueueSettings::from_json(json!({"name": "Q", "strategy": q.as_str()})).expect("valid");
        assert_eq!(parsed.strategy, q);
    }
}

#[test]
fn the_routing_strategy_overrides_the_queue_strategy() {
    let mut s = settings();
    s.strategy = QueueStrategy::RoundRobin;
    assert_eq!(s.effective_strategy(), Strategy::RoundRobin);
    s.strategy = QueueStrategy::Fifo;
    assert_eq!(s.effective_strategy(), Strategy::LongestIdle);
    s.routing_strategy = Some(Strategy::Language);
    assert_eq!(s.effective_strategy(), Strategy::Language);
}

#[test]
fn the_agent_order_expands_teams_in_place_and_keeps_each_agent_once() {
    let mut s = settings();
    s.members = vec![agent(1), QueueMember::Team { id: id(10) }, agent(2), agent(4)];
    let order = s.agent_order(|team| if team == id(10) { vec![id(3), id(2), id(1)] } else { vec![] });
    assert_eq!(order, [id(1), id(3), id(2), id(4)]);
}

#[test]
fn a_queue_is_created_once_and_deleted() {
    Given::with(())
        .given(vec![created()])
        .when(QueueCommand::CreateQueue { settings: settings(), at: at(1) })
        .then_expect_error(QueueError::AlreadyExists);
    Given::with(())
        .given(vec![created()])
        .when(QueueCommand::DeleteQueue { at: at(1) })
        .then_expect_events(vec![QueueEvent::QueueDeleted { at: at(1) }]);
    Given::with(())
        .given(vec![created(), QueueEvent::QueueDeleted { at: at(1) }])
        .when(QueueCommand::DeleteQueue { at: at(2) })
        .then_expect_error(QueueError::NotFound);
}

#[test]
fn an_update_merges_and_is_checked_as_a_whole() {
    let mut after = settings();
    after.strategy = QueueStrategy::SkillBased;
    after.max_wait_seconds = 120;
    Given::with(())
        .given(vec![created()])
        .when(QueueCommand::UpdateQueue {
            patch: patch(json!({"strategy": "skill_based", "max_wait_seconds": 120})),
            at: at(1),
        })
        .then_expect_events(vec![QueueEvent::QueueUpdated {
            settings: after,
            changed: vec!["max_wait_seconds".into(), "strategy".into()],
            at: at(1),
        }]);
    let result = Given::with(())
        .given(vec![created()])
        .when(QueueCommand::UpdateQueue {
            patch: patch(json!({"strategy": "random", "offer_timeout_seconds": 0})),
            at: at(1),
        })
        .inspect_result();
    let Err(QueueError::InvalidSettings(problems)) = result else { panic!("expected invalid settings") };
    assert_eq!(fields(&problems), ["strategy"]);
}

#[test]
fn a_member_is_added_at_a_position_or_at_the_end() {
    Given::with(())
        .given(vec![created()])
        .when(QueueCommand::AddQueueMember { member: agent(3), position: Some(1), at: at(1) })
        .then_expect_events(vec![QueueEvent::QueueMemberAdded {
            member: agent(3),
            position: 1,
            members: vec![agent(1), agent(3), agent(2)],
            at: at(1),
        }]);
    Given::with(())
        .given(vec![created()])
        .when(QueueCommand::AddQueueMember { member: agent(3), position: Some(99), at: at(1) })
        .then_expect_events(vec![QueueEvent::QueueMemberAdded {
            member: agent(3),
            position: 2,
            members: vec![agent(1), agent(2), agent(3)],
            at: at(1),
        }]);
}

#[test]
fn a_member_is_in_the_queue_once() {
    Given::with(())
        .given(vec![created()])
        .when(QueueCommand::AddQueueMember { member: agent(2), position: None, at: at(1) })
        .then_expect_error(QueueError::AlreadyMember(agent(2)));
}

#[test]
fn a_member_is_removed_and_an_unknown_one_is_not_a_member() {
    Given::with(())
        .given(vec![created()])
        .when(QueueCommand::RemoveQueueMember { member: agent(1), at: at(1) })
        .then_expect_events(vec![QueueEvent::QueueMemberRemoved {
            member: agent(1),
            position: 0,
            members: vec![agent(2)],
            at: at(1),
        }]);
    Given::with(())
        .given(vec![created()])
        .when(QueueCommand::RemoveQueueMember { member: QueueMember::Team { id: id(1) }, at: at(1) })
        .then_expect_error(QueueError::NotMember(QueueMember::Team { id: id(1) }));
}
