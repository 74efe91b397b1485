//! Given/when/then, one test per rule.
#![cfg(test)]

use std::collections::BTreeSet;

use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::test::TestFramework;

use super::*;

type Given = TestFramework<ServiceAccount>;

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 9, minute, 0).single().expect("valid time")
}

fn created() -> ServiceAccountEvent {
    ServiceAccountEvent::ServiceAccountCreated {
        company_id: "c1".into(),
        name: "dialer".into(),
        roles: vec![Role::Agent],
        at: at(0),
    }
}

fn issued(key: &str) -> ServiceAccountEvent {
    ServiceAccountEvent::ApiKeyIssued { key_id: key.into(), prefix: "kvk_1234".into(), at: at(1) }
}

#[test]
fn an_account_needs_a_role() {
    Given::with(())
        .given_no_previous_events()
        .when(ServiceAccountCommand::CreateServiceAccount {
            company_id: "c1".into(),
            name: "x".into(),
            roles: BTreeSet::new(),
            at: at(0),
        })
        .then_expect_error(ServiceAccountError::NoRole);
}

#[test]
fn keys_are_issued_and_revoked() {
    Given::with(())
        .given(vec![created(), issued("k1")])
        .when(ServiceAccountCommand::RevokeApiKey { key_id: "k1".into(), at: at(2) })
        .then_expect_events(vec![ServiceAccountEvent::ApiKeyRevoked { key_id: "k1".into(), at: at(2) }]);
}

#[test]
fn an_unknown_or_revoked_key_cannot_be_revoked() {
    Given::with(())
        .given(vec![
            created(),
            issued("k1"),
            ServiceAccountEvent::ApiKeyRevoked { key_id: "k1".into(), at: at(2) },
        ])
        .when(ServiceAccountCommand::RevokeApiKey { key_id: "k1".into(), at: at(3) })
        .then_expect_error(ServiceAccountError::UnknownKey);
}

#[test]
fn deactivation_revokes_every_key() {
    Given::with(())
        .given(vec![created(), issued("k1"), issued("k2")])
        .when(ServiceAccountCommand::DeactivateServiceAccount { at: at(4) })
        .then_expect_events(vec![
            ServiceAccountEvent::ApiKeyRevoked { key_id: "k1".into(), at: at(4) },
            ServiceAccountEvent::ApiKeyRevoked { key_id: "k2".into(), at: at(4) },
            ServiceAccountEvent::ServiceAccountDeactivated { at: at(4) },
        ]);
}

#[test]
fn a_deactivated_account_gets_no_keys() {
    Given::with(())
        .given(vec![created(), ServiceAccountEvent::ServiceAccountDeactivated { at: at(4) }])
        .when(ServiceAccountCommand::IssueApiKey { key_id: "k9".into(), prefix: "kvk_9".into(), at: at(5) })
        .then_expect_error(ServiceAccountError::Deactivated);
}
