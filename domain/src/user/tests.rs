//! Given/when/then, one test per rule.

use std::collections::BTreeSet;

use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::test::TestFramework;

use super::*;
use crate::values::{Email, PersonName, Role};

type Given = TestFramework<User>;

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 9, minute, 0).single().expect("valid time")
}

fn registered() -> UserEvent {
    UserEvent::UserRegistered {
        company_id: "c1".into(),
        email: "ann@example.com".into(),
        full_name: "Ann".into(),
        roles: vec![Role::Agent],
        at: at(0),
    }
}

fn register(roles: &[Role]) -> UserCommand {
    UserCommand::RegisterUser {
        company_id: "c1".into(),
        email: Email::parse("ann@example.com").expect("email"),
        full_name: PersonName::parse("Ann").expect("name"),
        roles: roles.iter().copied().collect::<BTreeSet<_>>(),
        at: at(0),
    }
}

#[test]
fn a_user_is_registered_with_roles() {
    Given::with(())
        .given_no_previous_events()
        .when(register(&[Role::Agent]))
        .then_expect_events(vec![registered()]);
}

#[test]
fn a_user_needs_a_role() {
    Given::with(()).given_no_previous_events().when(register(&[])).then_expect_error(UserError::NoRole);
}

#[test]
fn a_user_is_registered_once() {
    Given::with(())
        .given(vec![registered()])
        .when(register(&[Role::Agent]))
        .then_expect_error(UserError::AlreadyExists);
}

#[test]
fn granting_a_held_role_records_nothing() {
    Given::with(())
        .given(vec![registered()])
        .when(UserCommand::GrantRole { role: Role::Agent, at: at(1) })
        .then_expect_events(vec![]);
}

#[test]
fn roles_are_granted_and_revoked() {
    Given::with(())
        .given(vec![registered(), UserEvent::RoleGranted { role: Role::Supervisor, at: at(1) }])
        .when(UserCommand::RevokeRole { role: Role::Agent, at: at(2) })
        .then_expect_events(vec![UserEvent::RoleRevoked { role: Role::Agent, at: at(2) }]);
}

#[test]
fn the_last_role_stays() {
    Given::with(())
        .given(vec![registered()])
        .when(UserCommand::RevokeRole { role: Role::Agent, at: at(2) })
        .then_expect_error(UserError::LastRole);
}

#[test]
fn a_deactivated_user_cannot_change_password() {
    Given::with(())
        .given(vec![registered(), UserEvent::UserDeactivated { at: at(3) }])
        .when(UserCommand::RecordPasswordChange { at: at(4) })
        .then_expect_error(UserError::Deactivated);
}

#[test]
fn a_deactivated_user_can_be_reactivated() {
    Given::with(())
        .given(vec![registered(), UserEvent::UserDeactivated { at: at(3) }])
        .when(UserCommand::ReactivateUser { at: at(4) })
        .then_expect_events(vec![UserEvent::UserReactivated { at: at(4) }]);
}

#[test]
fn the_primary_role_is_the_most_powerful() {
    let mut user = User::default();
    user.apply(registered());
    user.apply(UserEvent::RoleGranted { role: Role::Admin, at: at(1) });
    assert_eq!(user.primary_role(), Some(Role::Admin));
}
