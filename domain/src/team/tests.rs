//! Given/when/then for teams: settings, lifecycle, members.

use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::test::TestFramework;
use serde_json::json;
use uuid::Uuid;

use super::*;

type Given = TestFramework<Team>;

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 9, minute, 0).single().expect("valid time")
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn settings() -> TeamSettings {
    TeamSettings { name: "Billing".into(), timezone: "Europe/Prague".into(), ..TeamSettings::default() }
}

fn created() -> TeamEvent {
    TeamEvent::TeamCreated { settings: settings(), at: at(0) }
}

fn added(user: u128, role: MemberRole) -> TeamEvent {
    TeamEvent::TeamMemberAdded { user_id: id(user), role, at: at(1) }
}

fn patch(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    v.as_object().cloned().expect("object")
}

fn problem_fields(result: Result<Vec<TeamEvent>, TeamError>) -> Vec<String> {
    match result {
        Err(TeamError::InvalidSettings(p)) => p.iter().map(|p| p.field.to_string()).collect(),
        other => panic!("expected invalid settings, got {other:?}"),
    }
}

#[test]
fn a_team_is_created_with_checked_settings() {
    let raw = TeamSettings {
        name: " Billing ".into(),
        timezone: " Europe/Prague".into(),
        ..TeamSettings::default()
    };
    Given::with(())
        .given_no_previous_events()
        .when(TeamCommand::CreateTeam { settings: raw, at: at(0) })
        .then_expect_events(vec![created()]);
}

#[test]
fn every_settings_problem_is_reported_by_field() {
    let hours = serde_json::from_value(json!({
        "timezone": "Mars/Olympus",
        "hours": {"mon": [{"open": "09:00", "close": "12:00"}, {"open": "11:00", "close": "13:00"}]}
    }))
    .expect("shape");
    let bad = TeamSettings {
        name: "".into(),
        description: Some("x".repeat(2001)),
        supervisor_id: Some(Uuid::nil()),
        timezone: "Nowhere/City".into(),
        business_hours: Some(hours),
    };
    let result = Given::with(())
        .given_no_previous_events()
        .when(TeamCommand::CreateTeam { settings: bad, at: at(0) })
        .inspect_result();
    assert_eq!(
        problem_fields(result),
        [
            "name",
            "description",
            "supervisor_id",
            "timezone",
            "business_hours.timezone",
            "business_hours.hours.mon[1]"
        ]
    );
}

#[test]
fn unknown_settings_are_refused_by_name() {
    let problems =
        TeamSettings::from_json(json!({"name": "Billing", "colour": "red"})).expect_err("unknown key");
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].code, "invalid");
    assert!(problems[0].message.contains("colour"), "{}", problems[0].message);
}

#[test]
fn a_team_is_created_once() {
    Given::with(())
        .given(vec![created()])
        .when(TeamCommand::CreateTeam { settings: settings(), at: at(1) })
        .then_expect_error(TeamError::AlreadyExists);
}

#[test]
fn an_update_merges_and_names_the_changed_fields() {
    let mut after = settings();
    after.supervisor_id = Some(id(9));
    after.description = Some("Invoices and refunds".into());
    Given::with(())
        .given(vec![created()])
        .when(TeamCommand::UpdateTeam {
            patch: patch(json!({"supervisor_id": id(9), "description": "Invoices and refunds "})),
            at: at(2),
        })
        .then_expect_events(vec![TeamEvent::TeamUpdated {
            settings: after,
            changed: vec!["description".into(), "supervisor_id".into()],
            at: at(2),
        }]);
}

#[test]
fn an_update_is_checked_as_a_whole_and_a_no_op_records_nothing() {
    let result = Given::with(())
        .given(vec![created()])
        .when(TeamCommand::UpdateTeam { patch: patch(json!({"timezone": "Moon/Base"})), at: at(2) })
        .inspect_result();
    assert_eq!(problem_fields(result), ["timezone"]);
    Given::with(())
        .given(vec![created()])
        .when(TeamCommand::UpdateTeam { patch: patch(json!({"name": "Billing"})), at: at(2) })
        .then_expect_events(vec![]);
}

#[test]
fn a_deleted_team_is_gone() {
    Given::with(())
        .given(vec![created()])
        .when(TeamCommand::DeleteTeam { at: at(3) })
        .then_expect_events(vec![TeamEvent::TeamDeleted { at: at(3) }]);
    Given::with(())
        .given(vec![created(), TeamEvent::TeamDeleted { at: at(3) }])
        .when(TeamCommand::AddTeamMember { user_id: id(1), role: MemberRole::Agent, at: at(4) })
        .then_expect_error(TeamError::NotFound);
}

#[test]
fn a_member_joins_with_a_role() {
    Given::with(())
        .given(vec![created()])
        .when(TeamCommand::AddTeamMember { user_id: id(1), role: MemberRole::Agent, at: at(1) })
        .then_expect_events(vec![added(1, MemberRole::Agent)]);
}

#[test]
fn a_member_added_again_with_the_same_role_changes_nothing_and_with_another_is_refused() {
    Given::with(())
        .given(vec![created(), added(1, MemberRole::Agent)])
        .when(TeamCommand::AddTeamMember { user_id: id(1), role: MemberRole::Agent, at: at(2) })
        .then_expect_events(vec![]);
    Given::with(())
        .given(vec![created(), added(1, MemberRole::Agent)])
        .when(TeamCommand::AddTeamMember { user_id: id(1), role: MemberRole::Owner, at: at(2) })
        .then_expect_error(TeamError::AlreadyMember { user_id: id(1), role: MemberRole::Agent });
}

#[test]
fn a_members_role_changes() {
    Given::with(())
        .given(vec![created(), added(1, MemberRole::Agent)])
        .when(TeamCommand::ChangeMemberRole { user_id: id(1), role: MemberRole::Supervisor, at: at(2) })
        .then_expect_events(vec![TeamEvent::TeamMemberRoleChanged {
            user_id: id(1),
            role: MemberRole::Supervisor,
            from: MemberRole::Agent,
            at: at(2),
        }]);
    Given::with(())
        .given(vec![created()])
        .when(TeamCommand::ChangeMemberRole { user_id: id(1), role: MemberRole::Viewer, at: at(2) })
        .then_expect_error(TeamError::NotMember(id(1)));
}

#[test]
fn a_member_leaves_with_their_role_recorded() {
    Given::with(())
        .given(vec![created(), added(1, MemberRole::Manager)])
        .when(TeamCommand::RemoveTeamMember { user_id: id(1), at: at(2) })
        .then_expect_events(vec![TeamEvent::TeamMemberRemoved {
            user_id: id(1),
            role: MemberRole::Manager,
            at: at(2),
        }]);
    Given::with(())
        .given(vec![created()])
        .when(TeamCommand::RemoveTeamMember { user_id: id(1), at: at(2) })
        .then_expect_error(TeamError::NotMember(id(1)));
}

#[test]
fn roles_have_the_seed_names() {
    let names: Vec<&str> = MemberRole::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(names, ["owner", "manager", "supervisor", "agent", "viewer"]);
    for r in MemberRole::ALL {
        assert_eq!(serde_json::to_value(r).expect("json"), json!(r.as_str()));
        assert_eq!(MemberRole::parse(r.as_str()), Some(r));
    }
    assert_eq!(MemberRole::parse("admin"), None);
}
