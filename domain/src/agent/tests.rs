//! Given/when/then, one test per rule of the agent state machine, and a property test over
//! random command sequences.

use chrono::{DateTime, Duration, TimeZone, Utc};
use cqrs_es::test::TestFramework;
use proptest::prelude::*;
use serde_json::json;
use uuid::Uuid;

use super::AgentState::*;
use super::*;

type Given = TestFramework<Agent>;

fn at(s: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).single().expect("valid time") + Duration::seconds(s)
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn profile() -> AgentProfile {
    AgentProfile { user_id: id(1), display_name: "Ann Novak".into(), ..AgentProfile::default() }
}

fn created() -> AgentEvent {
    AgentEvent::AgentCreated { profile: profile(), state: Offline, from: Offline, at: at(0) }
}

fn created_with(p: AgentProfile) -> AgentEvent {
    AgentEvent::AgentCreated { profile: p, state: Offline, from: Offline, at: at(0) }
}

fn logged_in() -> AgentEvent {
    AgentEvent::AgentStateChanged { reason: None, state: Available, from: Offline, at: at(1) }
}

const OFFER: u128 = 100;
const CALL: u128 = 200;
const QUEUE: u128 = 300;

/// Offer `n` made at 10 + 100n s, expiring 15 s later.
fn reserved(n: u128) -> AgentEvent {
    let t = 10 + 100 * n as i64;
    AgentEvent::AgentReserved {
        offer_id: id(OFFER + n),
        call_id: id(CALL + n),
        queue_id: Some(id(QUEUE)),
        expires_at: at(t + 15),
        state: Reserved,
        from: Available,
        at: at(t),
    }
}

fn reserve(n: u128) -> AgentCommand {
    let t = 10 + 100 * n as i64;
    AgentCommand::ReserveAgent {
        offer_id: id(OFFER + n),
        call_id: id(CALL + n),
        queue_id: Some(id(QUEUE)),
        expires_at: at(t + 15),
        at: at(t),
    }
}

fn expired(n: u128, missed: u32) -> AgentEvent {
    AgentEvent::AgentOfferExpired {
        offer_id: id(OFFER + n),
        call_id: id(CALL + n),
        queue_id: Some(id(QUEUE)),
        missed_in_a_row: missed,
        state: Available,
        from: Reserved,
        at: at(25 + 100 * n as i64),
    }
}

fn accepted(n: u128) -> AgentEvent {
    AgentEvent::AgentOfferAccepted {
        offer_id: id(OFFER + n),
        call_id: id(CALL + n),
        queue_id: Some(id(QUEUE)),
        state: OnCall,
        from: Reserved,
        at: at(12 + 100 * n as i64),
    }
}

fn ended(n: u128, wrap: Option<i64>) -> AgentEvent {
    let t = 60 + 100 * n as i64;
    AgentEvent::AgentCallEnded {
        call_id: id(CALL + n),
        offer_id: Some(id(OFFER + n)),
        connected_at: None,
        active_calls: 0,
        wrap_up_until: wrap.map(|w| at(t + w)),
        state: if wrap.is_some() { WrapUp } else { Available },
        from: OnCall,
        at: at(t),
    }
}

fn wrap_up_ended(n: u128) -> AgentEvent {
    AgentEvent::AgentWrapUpEnded {
        call_id: Some(id(CALL + n)),
        state: Available,
        from: WrapUp,
        at: at(90 + 100 * n as i64),
    }
}

fn patch(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    v.as_object().cloned().expect("object")
}

fn fields(e: AgentError) -> Vec<String> {
    match e {
        AgentError::Invalid(problems) => problems.iter().map(|p| p.field.to_string()).collect(),
        other => panic!("expected field problems, got {other:?}"),
    }
}

// ---- profile ----

#[test]
fn an_agent_is_created_offline_with_a_normalized_profile() {
    let mut raw = profile();
    raw.display_name = "  Ann Novak ".into();
    raw.skills = [(" Billing ".to_owned(), 4)].into();
    raw.languages = [("CS".to_owned(), 5)].into();
    raw.endpoint = Some(AgentEndpoint::Phone { number: "+1 (415) 555-0123".into() });
    let mut expected = profile();
    expected.skills = [("billing".to_owned(), 4)].into();
    expected.languages = [("cs".to_owned(), 5)].into();
    expected.endpoint = Some(AgentEndpoint::Phone { number: "+14155550123".into() });
    Given::with(())
        .given_no_previous_events()
        .when(AgentCommand::CreateAgent { profile: raw, at: at(0) })
        .then_expect_events(vec![created_with(expected)]);
}

#[test]
fn profile_defaults_are_the_documented_ones() {
    let p = AgentProfile::default();
    assert_eq!((p.capacity, p.wrap_up_seconds, p.max_missed_offers, p.rating), (1, 30, 3, 0.0));
}

#[test]
fn every_profile_problem_is_reported_by_field() {
    let bad = AgentProfile {
        user_id: Uuid::nil(),
        display_name: " ".into(),
        skills: [("".to_owned(), 3), ("sales".to_owned(), 7)].into(),
        languages: [("english".to_owned(), 3)].into(),
        capacity: 0,
        rating: 5.5,
        wrap_up_seconds: 4000,
        max_missed_offers: 101,
        endpoint: Some(AgentEndpoint::Sip { uri: "tel:123".into() }),
        ..AgentProfile::default()
    };
    let err = Given::with(())
        .given_no_previous_events()
        .when(AgentCommand::CreateAgent { profile: bad, at: at(0) })
        .inspect_result()
        .expect_err("invalid");
    assert_eq!(
        fields(err),
        [
            "user_id",
            "display_name",
            "skills.",
            "skills.sales",
            "languages.english",
            "capacity",
            "rating",
            "wrap_up_seconds",
            "max_missed_offers",
            "endpoint.uri"
        ]
    );
}

#[test]
fn endpoints_are_phone_numbers_sip_uris_or_client_identities() {
    let check = |e: serde_json::Value| {
        AgentProfile::from_json(json!({"user_id": id(1), "display_name": "Ann", "endpoint": e}))
            .map(|p| p.endpoint)
            .map_err(|p| p.into_iter().map(|p| (p.field.to_string(), p.code)).collect::<Vec<_>>())
    };
    assert_eq!(
        check(json!({"type": "sip", "uri": " sips:ann@pbx.example "})),
        Ok(Some(AgentEndpoint::Sip { uri: "sips:ann@pbx.example".into() }))
    );
    assert_eq!(
        check(json!({"type": "client", "identity": "ann_1"})),
        Ok(Some(AgentEndpoint::Client { identity: "ann_1".into() }))
    );
    assert_eq!(
        check(json!({"type": "phone", "number": "12"})),
        Err(vec![("endpoint.number".into(), "invalid_phone")])
    );
    assert_eq!(
        check(json!({"type": "pager", "id": "1"})),
        Err(vec![("endpoint.type".into(), "unknown_value")])
    );
    assert_eq!(
        check(json!({"type": "client", "identity": "a b"})),
        Err(vec![("endpoint.identity".into(), "invalid_identity")])
    );
}

#[test]
fn json_profiles_report_every_bad_level_at_once() {
    let problems = AgentProfile::from_json(json!({
        "user_id": id(1), "display_name": "Ann",
        "skills": {"billing": 9, "sales": -1, "support": 3},
        "languages": {"en": "fluent"}
    }))
    .expect_err("invalid");
    let named: Vec<String> = problems.iter().map(|p| p.field.to_string()).collect();
    assert_eq!(named, ["skills.billing", "skills.sales", "languages.en"]);
}

#[test]
fn an_agent_is_created_once() {
    Given::with(())
        .given(vec![created()])
        .when(AgentCommand::CreateAgent { profile: profile(), at: at(1) })
        .then_expect_error(AgentError::AlreadyExists);
}

#[test]
fn an_update_merges_fields_and_names_what_changed() {
    let mut after = profile();
    after.capacity = 2;
    after.skills = [("billing".to_owned(), 3)].into();
    Given::with(())
        .given(vec![created()])
        .when(AgentCommand::UpdateAgent {
            patch: patch(json!({"capacity": 2, "skills": {"Billing": 3}})),
            at: at(5),
        })
        .then_expect_events(vec![AgentEvent::AgentUpdated {
            profile: after,
            changed: vec!["capacity".into(), "skills".into()],
            state: Offline,
            from: Offline,
            at: at(5),
        }]);
}

#[test]
fn an_update_that_changes_nothing_records_nothing() {
    Given::with(())
        .given(vec![created()])
        .when(AgentCommand::UpdateAgent { patch: patch(json!({"display_name": "Ann Novak"})), at: at(5) })
        .then_expect_events(vec![]);
}

#[test]
fn an_agents_user_cannot_change() {
    let err = Given::with(())
        .given(vec![created()])
        .when(AgentCommand::UpdateAgent { patch: patch(json!({"user_id": id(2)})), at: at(5) })
        .inspect_result()
        .expect_err("immutable");
    assert_eq!(fields(err), ["user_id"]);
}

#[test]
fn skills_are_added_or_changed_by_name() {
    let mut p = profile();
    p.skills = [("billing".to_owned(), 2)].into();
    Given::with(())
        .given(vec![created_with(p)])
        .when(AgentCommand::SetSkills {
            skills: vec![
                SkillLevel { name: "Billing".into(), proficiency: 4 },
                SkillLevel { name: "sales".into(), proficiency: 1 },
            ],
            at: at(5),
        })
        .then_expect_events(vec![AgentEvent::AgentSkillsSet {
            skills: [("billing".to_owned(), 4), ("sales".to_owned(), 1)].into(),
            changed: [("billing".to_owned(), 4), ("sales".to_owned(), 1)].into(),
            state: Offline,
            from: Offline,
            at: at(5),
        }]);
}

#[test]
fn skills_need_a_name_and_a_proficiency_from_1_to_5() {
    let err = Given::with(())
        .given(vec![created()])
        .when(AgentCommand::SetSkills {
            skills: vec![
                SkillLevel { name: " ".into(), proficiency: 3 },
                SkillLevel { name: "sales".into(), proficiency: 0 },
                SkillLevel { name: "billing".into(), proficiency: 6 },
            ],
            at: at(5),
        })
        .inspect_result()
        .expect_err("invalid");
    assert_eq!(fields(err), ["skills[0].name", "skills[1].proficiency", "skills[2].proficiency"]);
}

#[test]
fn a_skill_is_removed_by_name_and_an_unknown_one_is_not_found() {
    let mut p = profile();
    p.skills = [("billing".to_owned(), 2)].into();
    Given::with(())
        .given(vec![created_with(p.clone())])
        .when(AgentCommand::RemoveSkill { name: " BILLING".into(), at: at(5) })
        .then_expect_events(vec![AgentEvent::AgentSkillRemoved {
            skill: "billing".into(),
            state: Offline,
            from: Offline,
            at: at(5),
        }]);
    Given::with(())
        .given(vec![created_with(p)])
        .when(AgentCommand::RemoveSkill { name: "sales".into(), at: at(5) })
        .then_expect_error(AgentError::SkillNotFound("sales".into()));
}

// ---- states set by people ----

#[test]
fn a_person_logs_the_agent_in() {
    Given::with(())
        .given(vec![created()])
        .when(AgentCommand::ChangeState { to: Available, reason: None, at: at(1) })
        .then_expect_events(vec![logged_in()]);
}

#[test]
fn a_break_keeps_its_reason_code() {
    Given::with(())
        .given(vec![created(), logged_in()])
        .when(AgentCommand::ChangeState { to: Break, reason: Some(" lunch ".into()), at: at(5) })
        .then_expect_events(vec![AgentEvent::AgentStateChanged {
            reason: Some("lunch".into()),
            state: Break,
            from: Available,
            at: at(5),
        }]);
}

#[test]
fn the_same_state_and_reason_again_changes_nothing() {
    Given::with(())
        .given(vec![created(), logged_in()])
        .when(AgentCommand::ChangeState { to: Available, reason: None, at: at(5) })
        .then_expect_events(vec![]);
}

#[test]
fn every_person_state_is_reachable_from_available_and_back() {
    for to in [Offline, Break, Training, Away, Busy] {
        Given::with(())
            .given(vec![created(), logged_in()])
            .when(AgentCommand::ChangeState { to, reason: None, at: at(5) })
            .then_expect_events(vec![AgentEvent::AgentStateChanged {
                reason: None,
                state: to,
                from: Available,
                at: at(5),
            }]);
        Given::with(())
            .given(vec![
                created(),
                logged_in(),
                AgentEvent::AgentStateChanged { reason: None, state: to, from: Available, at: at(5) },
            ])
            .when(AgentCommand::ChangeState { to: Available, reason: None, at: at(6) })
            .then_expect_events(vec![AgentEvent::AgentStateChanged {
                reason: None,
                state: Available,
                from: to,
                at: at(6),
            }]);
    }
}

#[test]
fn a_person_cannot_set_reserved_on_call_or_wrap_up() {
    for to in [Reserved, OnCall, WrapUp] {
        Given::with(())
            .given(vec![created(), logged_in()])
            .when(AgentCommand::ChangeState { to, reason: None, at: at(5) })
            .then_expect_error(AgentError::NotSettableByHand { to });
    }
}

#[test]
fn going_offline_while_reserved_is_refused_with_the_state() {
    Given::with(())
        .given(vec![created(), logged_in(), reserved(0)])
        .when(AgentCommand::ChangeState { to: Offline, reason: None, at: at(12) })
        .then_expect_error(AgentError::OfflineWhileBusy { state: Reserved });
}

#[test]
fn going_offline_while_on_a_call_is_refused_with_the_state() {
    Given::with(())
        .given(vec![created(), logged_in(), reserved(0), accepted(0)])
        .when(AgentCommand::ChangeState { to: Offline, reason: None, at: at(30) })
        .then_expect_error(AgentError::OfflineWhileBusy { state: OnCall });
}

#[test]
fn a_break_while_reserved_is_not_a_transition_of_the_machine() {
    Given::with(())
        .given(vec![created(), logged_in(), reserved(0)])
        .when(AgentCommand::ChangeState { to: Break, reason: None, at: at(12) })
        .then_expect_error(AgentError::InvalidTransition { from: Reserved, to: Break });
}

#[test]
fn a_person_may_end_wrap_up_early() {
    Given::with(())
        .given(vec![created(), logged_in(), reserved(0), accepted(0), ended(0, Some(30))])
        .when(AgentCommand::ChangeState { to: Available, reason: None, at: at(70) })
        .then_expect_events(vec![AgentEvent::AgentStateChanged {
            reason: None,
            state: Available,
            from: WrapUp,
            at: at(70),
        }]);
}

// ---- reservations ----

#[test]
fn an_available_agent_is_reserved_for_an_offer() {
    Given::with(())
        .given(vec![created(), logged_in()])
        .when(reserve(0))
        .then_expect_events(vec![reserved(0)]);
}

#[test]
fn an_agent_who_is_not_available_cannot_be_reserved() {
    Given::with(())
        .given(vec![created()])
        .when(reserve(0))
        .then_expect_error(AgentError::NotAvailable { state: Offline });
    Given::with(())
        .given(vec![created(), logged_in(), reserved(0), accepted(0), ended(0, Some(30))])
        .when(reserve(1))
        .then_expect_error(AgentError::NotAvailable { state: WrapUp });
}

#[test]
fn a_second_reservation_is_refused() {
    // Two dispatchers decided from the same view; the second arrives after the first.
    Given::with(())
        .given(vec![created(), logged_in(), reserved(0)])
        .when(AgentCommand::ReserveAgent {
            offer_id: id(999),
            call_id: id(998),
            queue_id: None,
            expires_at: at(40),
            at: at(11),
        })
        .then_expect_error(AgentError::AlreadyReserved { offer_id: id(OFFER) });
}

#[test]
fn the_same_reservation_again_changes_nothing() {
    Given::with(())
        .given(vec![created(), logged_in(), reserved(0)])
        .when(reserve(0))
        .then_expect_events(vec![]);
}

#[test]
fn a_resolved_offer_cannot_reserve_again() {
    Given::with(())
        .given(vec![created(), logged_in(), reserved(0), expired(0, 1)])
        .when(reserve(0))
        .then_expect_error(AgentError::OfferNotCurrent { offer_id: id(OFFER) });
}

#[test]
fn a_reservation_must_expire_after_it_is_made() {
    let err = Given::with(())
        .given(vec![created(), logged_in()])
        .when(AgentCommand::ReserveAgent {
            offer_id: id(1),
            call_id: id(2),
            queue_id: None,
            expires_at: at(5),
            at: at(5),
        })
        .inspect_result()
        .expect_err("invalid");
    assert_eq!(fields(err), ["expires_at"]);
}

#[test]
fn an_agent_with_spare_capacity_is_reserved_while_on_a_call() {
    let mut p = profile();
    p.capacity = 2;
    let second = AgentCommand::ReserveAgent {
        offer_id: id(OFFER + 9),
        call_id: id(CALL + 9),
        queue_id: None,
        expires_at: at(60),
        at: at(30),
    };
    Given::with(())
        .given(vec![created_with(p.clone()), logged_in(), reserved(0), accepted(0)])
        .when(second.clone())
        .then_expect_events(vec![AgentEvent::AgentReserved {
            offer_id: id(OFFER + 9),
            call_id: id(CALL + 9),
            queue_id: None,
            expires_at: at(60),
            state: OnCall,
            from: OnCall,
            at: at(30),
        }]);
    Given::with(())
        .given(vec![created(), logged_in(), reserved(0), accepted(0)])
        .when(second)
        .then_expect_error(AgentError::NoFreeCapacity { active_calls: 1, capacity: 1 });
}

// ---- answers to an offer ----

#[test]
fn an_accepted_offer_puts_the_agent_on_the_call() {
    Given::with(())
        .given(vec![created(), logged_in(), reserved(0)])
        .when(AgentCommand::AcceptOffer { offer_id: id(OFFER), at: at(12) })
        .then_expect_events(vec![accepted(0)]);
}

#[test]
fn a_stale_or_unknown_offer_is_not_current() {
    for cmd in [
        AgentCommand::AcceptOffer { offer_id: id(7), at: at(12) },
        AgentCommand::RejectOffer { offer_id: id(7), reason: None, at: at(12) },
        AgentCommand::ExpireOffer { offer_id: id(7), at: at(30) },
        AgentCommand::CancelOffer { offer_id: id(7), reason: None, at: at(12) },
    ] {
        Given::with(())
            .given(vec![created(), logged_in(), reserved(0)])
            .when(cmd)
            .then_expect_error(AgentError::OfferNotCurrent { offer_id: id(7) });
    }
}

#[test]
fn an_offer_cannot_be_accepted_after_it_expired() {
    Given::with(())
        .given(vec![created(), logged_in(), reserved(0), expired(0, 1)])
        .when(AgentCommand::AcceptOffer { offer_id: id(OFFER), at: at(26) })
        .then_expect_error(AgentError::OfferNotCurrent { offer_id: id(OFFER) });
    // Past its time even before the expiry is recorded.
    Given::with(())
        .given(vec![created(), logged_in(), reserved(0)])
        .when(AgentCommand::AcceptOffer { offer_id: id(OFFER), at: at(25) })
        .then_expect_error(AgentError::OfferNotCurrent { offer_id: id(OFFER) });
}

#[test]
fn accepting_twice_changes_nothing() {
    Given::with(())
        .given(vec![created(), logged_in(), reserved(0), accepted(0)])
        .when(AgentCommand::AcceptOffer { offer_id: id(OFFER), at: at(13) })
        .then_expect_events(vec![]);
}

#[test]
fn a_rejected_offer_is_a_miss_and_frees_the_agent() {
    Given::with(())
        .given(vec![created(), logged_in(), reserved(0)])
        .when(AgentCommand::RejectOffer {
            offer_id: id(OFFER),
            reason: Some("not my topic".into()),
            at: at(12),
        })
        .then_expect_events(vec![AgentEvent::AgentOfferRejected {
            offer_id: id(OFFER),
            call_id: id(CALL),
            queue_id: Some(id(QUEUE)),
            reason: Some("not my topic".into()),
            missed_in_a_row: 1,
            state: Available,
            from: Reserved,
            at: at(12),
        }]);
}

#[test]
fn a_reservation_times_out_as_a_miss() {
    Given::with(())
        .given(vec![created(), logged_in(), reserved(0)])
        .when(AgentCommand::ExpireOffer { offer_id: id(OFFER), at: at(25) })
        .then_expect_events(vec![expired(0, 1)]);
}

#[test]
fn a_reservation_does_not_time_out_early() {
    Given::with(())
        .given(vec![created(), logged_in(), reserved(0)])
        .when(AgentCommand::ExpireOffer { offer_id: id(OFFER), at: at(24) })
        .then_expect_error(AgentError::OfferNotExpired { expires_at: at(25) });
}

#[test]
fn a_repeated_expiry_changes_nothing() {
    Given::with(())
        .given(vec![created(), logged_in(), reserved(0), expired(0, 1)])
        .when(AgentCommand::ExpireOffer { offer_id: id(OFFER), at: at(26) })
        .then_expect_events(vec![]);
}

#[test]
fn the_third_miss_in_a_row_pauses_the_agent() {
    Given::with(())
        .given(vec![
            created(),
            logged_in(),
            reserved(0),
            expired(0, 1),
            reserved(1),
            expired(1, 2),
            reserved(2),
        ])
        .when(AgentCommand::ExpireOffer { offer_id: id(OFFER + 2), at: at(225) })
        .then_expect_events(vec![
            expired(2, 3),
            AgentEvent::AgentAutoPaused {
                reason: MISSED_OFFERS.into(),
                missed_offers: 3,
                state: Away,
                from: Available,
                at: at(225),
            },
        ]);
}

#[test]
fn rejections_count_towards_the_pause_too() {
    let events = Given::with(())
        .given(vec![
            created(),
            logged_in(),
            reserved(0),
            expired(0, 1),
            reserved(1),
            expired(1, 2),
            reserved(2),
        ])
        .when(AgentCommand::RejectOffer { offer_id: id(OFFER + 2), reason: None, at: at(215) })
        .inspect_result()
        .expect("rejected");
    assert_eq!(events.iter().map(AgentEvent::state).collect::<Vec<_>>(), [Available, Away]);
}

#[test]
fn an_accepted_offer_resets_the_missed_count() {
    Given::with(())
        .given(vec![
            created(),
            logged_in(),
            reserved(0),
            expired(0, 1),
            reserved(1),
            expired(1, 2),
            reserved(2),
            accepted(2),
            ended(2, None),
            reserved(3),
        ])
        .when(AgentCommand::ExpireOffer { offer_id: id(OFFER + 3), at: at(325) })
        .then_expect_events(vec![expired(3, 1)]);
}

#[test]
fn the_number_of_misses_that_pauses_is_the_agents() {
    let mut once = profile();
    once.max_missed_offers = 1;
    let events = Given::with(())
        .given(vec![created_with(once), logged_in(), reserved(0)])
        .when(AgentCommand::ExpireOffer { offer_id: id(OFFER), at: at(25) })
        .inspect_result()
        .expect("expired");
    assert_eq!(events.len(), 2);
    let mut never = profile();
    never.max_missed_offers = 0;
    Given::with(())
        .given(vec![
            created_with(never),
            logged_in(),
            reserved(0),
            expired(0, 1),
            reserved(1),
            expired(1, 2),
            reserved(2),
        ])
        .when(AgentCommand::ExpireOffer { offer_id: id(OFFER + 2), at: at(225) })
        .then_expect_events(vec![expired(2, 3)]);
}

#[test]
fn a_paused_agent_comes_back_with_a_fresh_count() {
    let paused = AgentEvent::AgentAutoPaused {
        reason: MISSED_OFFERS.into(),
        missed_offers: 3,
        state: Away,
        from: Available,
        at: at(225),
    };
    let mut agent = Agent::default();
    for e in [
        created(),
        logged_in(),
        reserved(0),
        expired(0, 1),
        reserved(1),
        expired(1, 2),
        reserved(2),
        expired(2, 3),
        paused,
    ] {
        agent.apply(e);
    }
    assert_eq!((agent.state, agent.reason.as_deref(), agent.missed_in_a_row), (Away, Some(MISSED_OFFERS), 0));
}

#[test]
fn a_withdrawn_offer_is_not_a_miss() {
    Given::with(())
        .given(vec![
            created(),
            logged_in(),
            reserved(0),
            expired(0, 1),
            reserved(1),
            expired(1, 2),
            reserved(2),
        ])
        .when(AgentCommand::CancelOffer {
            offer_id: id(OFFER + 2),
            reason: Some("caller_hung_up".into()),
            at: at(215),
        })
        .then_expect_events(vec![AgentEvent::AgentOfferCancelled {
            offer_id: id(OFFER + 2),
            call_id: id(CALL + 2),
            queue_id: Some(id(QUEUE)),
            reason: Some("caller_hung_up".into()),
            state: Available,
            from: Reserved,
            at: at(215),
        }]);
}

// ---- calls ----

#[test]
fn an_accepted_call_is_connected() {
    Given::with(())
        .given(vec![created(), logged_in(), reserved(0), accepted(0)])
        .when(AgentCommand::ConnectCall { call_id: id(CALL), at: at(14) })
        .then_expect_events(vec![AgentEvent::AgentCallConnected {
            call_id: id(CALL),
            offer_id: Some(id(OFFER)),
            active_calls: 1,
            state: OnCall,
            from: OnCall,
            at: at(14),
        }]);
}

#[test]
fn answering_an_offered_call_accepts_it() {
    let mut accept = accepted(0);
    if let AgentEvent::AgentOfferAccepted { at: t, .. } = &mut accept {
        *t = at(14);
    }
    Given::with(())
        .given(vec![created(), logged_in(), reserved(0)])
        .when(AgentCommand::ConnectCall { call_id: id(CALL), at: at(14) })
        .then_expect_events(vec![
            accept,
            AgentEvent::AgentCallConnected {
                call_id: id(CALL),
                offer_id: Some(id(OFFER)),
                active_calls: 1,
                state: OnCall,
                from: OnCall,
                at: at(14),
            },
        ]);
}

#[test]
fn an_available_agent_takes_a_direct_call() {
    Given::with(())
        .given(vec![created(), logged_in()])
        .when(AgentCommand::ConnectCall { call_id: id(5), at: at(3) })
        .then_expect_events(vec![AgentEvent::AgentCallConnected {
            call_id: id(5),
            offer_id: None,
            active_calls: 1,
            state: OnCall,
            from: Available,
            at: at(3),
        }]);
}

#[test]
fn an_agent_on_break_takes_no_call() {
    Given::with(())
        .given(vec![
            created(),
            logged_in(),
            AgentEvent::AgentStateChanged { reason: None, state: Break, from: Available, at: at(2) },
        ])
        .when(AgentCommand::ConnectCall { call_id: id(5), at: at(3) })
        .then_expect_error(AgentError::InvalidTransition { from: Break, to: OnCall });
}

#[test]
fn a_call_ends_in_wrap_up_for_the_agents_wrap_up_time() {
    Given::with(())
        .given(vec![created(), logged_in(), reserved(0), accepted(0)])
        .when(AgentCommand::EndCall { call_id: id(CALL), at: at(60) })
        .then_expect_events(vec![ended(0, Some(30))]);
}

#[test]
fn without_wrap_up_time_a_call_ends_in_available() {
    let mut p = profile();
    p.wrap_up_seconds = 0;
    Given::with(())
        .given(vec![created_with(p), logged_in(), reserved(0), accepted(0)])
        .when(AgentCommand::EndCall { call_id: id(CALL), at: at(60) })
        .then_expect_events(vec![ended(0, None)]);
}

#[test]
fn ending_a_call_the_agent_is_not_on_is_refused_and_a_repeat_is_ignored() {
    Given::with(())
        .given(vec![created(), logged_in()])
        .when(AgentCommand::EndCall { call_id: id(9), at: at(60) })
        .then_expect_error(AgentError::CallNotActive { call_id: id(9) });
    Given::with(())
        .given(vec![created(), logged_in(), reserved(0), accepted(0), ended(0, Some(30))])
        .when(AgentCommand::EndCall { call_id: id(CALL), at: at(61) })
        .then_expect_events(vec![]);
}

#[test]
fn wrap_up_ends_in_available_at_its_time() {
    Given::with(())
        .given(vec![created(), logged_in(), reserved(0), accepted(0), ended(0, Some(30))])
        .when(AgentCommand::EndWrapUp { at: at(90) })
        .then_expect_events(vec![wrap_up_ended(0)]);
}

#[test]
fn wrap_up_does_not_end_early_or_when_not_in_wrap_up() {
    Given::with(())
        .given(vec![created(), logged_in(), reserved(0), accepted(0), ended(0, Some(30))])
        .when(AgentCommand::EndWrapUp { at: at(89) })
        .then_expect_error(AgentError::WrapUpNotOver { until: at(90) });
    Given::with(())
        .given(vec![created(), logged_in()])
        .when(AgentCommand::EndWrapUp { at: at(89) })
        .then_expect_error(AgentError::InvalidTransition { from: Available, to: Available });
}

#[test]
fn misses_during_a_call_pause_the_agent_when_the_call_ends() {
    let mut p = profile();
    p.capacity = 2;
    p.max_missed_offers = 1;
    let second = AgentEvent::AgentReserved {
        offer_id: id(9),
        call_id: id(8),
        queue_id: None,
        expires_at: at(40),
        state: OnCall,
        from: OnCall,
        at: at(20),
    };
    let miss = AgentEvent::AgentOfferExpired {
        offer_id: id(9),
        call_id: id(8),
        queue_id: None,
        missed_in_a_row: 1,
        state: OnCall,
        from: OnCall,
        at: at(40),
    };
    let events = Given::with(())
        .given(vec![created_with(p), logged_in(), reserved(0), accepted(0), second, miss])
        .when(AgentCommand::EndCall { call_id: id(CALL), at: at(60) })
        .inspect_result()
        .expect("ended");
    assert_eq!(
        events.iter().map(|e| (e.from(), e.state())).collect::<Vec<_>>(),
        [(OnCall, WrapUp), (WrapUp, Away)]
    );
}

// ---- deletion ----

#[test]
fn an_agent_on_a_call_cannot_be_deleted() {
    Given::with(())
        .given(vec![created(), logged_in(), reserved(0), accepted(0)])
        .when(AgentCommand::DeleteAgent { at: at(30) })
        .then_expect_error(AgentError::InUse { state: OnCall });
}

#[test]
fn a_deleted_agent_is_logged_out_and_gone() {
    Given::with(())
        .given(vec![created(), logged_in()])
        .when(AgentCommand::DeleteAgent { at: at(30) })
        .then_expect_events(vec![AgentEvent::AgentDeleted { state: Offline, from: Available, at: at(30) }]);
    Given::with(())
        .given(vec![created(), AgentEvent::AgentDeleted { state: Offline, from: Offline, at: at(30) }])
        .when(AgentCommand::ChangeState { to: Available, reason: None, at: at(31) })
        .then_expect_error(AgentError::NotFound);
}

// ---- time in state ----

#[test]
fn time_in_each_state_follows_from_the_events() {
    let events = vec![created(), logged_in(), reserved(0), accepted(0), ended(0, Some(30)), wrap_up_ended(0)];
    let times = state_durations(&events, at(100));
    assert_eq!(times.get(&Offline), Some(&1_000));
    assert_eq!(times.get(&Available), Some(&(9_000 + 10_000)));
    assert_eq!(times.get(&Reserved), Some(&2_000));
    assert_eq!(times.get(&OnCall), Some(&48_000));
    assert_eq!(times.get(&WrapUp), Some(&30_000));
    assert_eq!(logged_in_ms(&events, at(100)), 99_000);
}

#[test]
fn events_serialize_with_the_seed_state_names() {
    let v = serde_json::to_value(accepted(0)).expect("json");
    assert_eq!(v["AgentOfferAccepted"]["state"], "on_call");
    assert_eq!(v["AgentOfferAccepted"]["from"], "reserved");
    let names: Vec<String> = AgentState::ALL
        .iter()
        .map(|s| serde_json::to_value(s).expect("json").as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        names,
        ["offline", "available", "reserved", "on_call", "wrap_up", "break", "training", "away", "busy"]
    );
}

#[test]
fn only_reservations_are_not_retried_on_conflict() {
    use crate::CommandPolicy;
    assert!(!reserve(0).retry_on_conflict());
    assert!(AgentCommand::AcceptOffer { offer_id: id(1), at: at(0) }.retry_on_conflict());
    assert_eq!(reserve(0).name(), "ReserveAgent");
}

// ---- random command sequences ----

fn command(kind: u8, n: u8, t: DateTime<Utc>) -> AgentCommand {
    let offer_id = id(OFFER + u128::from(n));
    let call_id = id(CALL + u128::from(n));
    match kind {
        0 => AgentCommand::ChangeState { to: Available, reason: None, at: t },
        1 => AgentCommand::ChangeState { to: AgentState::ALL[usize::from(n) % 9], reason: None, at: t },
        2 | 3 => AgentCommand::ReserveAgent {
            offer_id,
            call_id,
            queue_id: None,
            expires_at: t + Duration::seconds(15),
            at: t,
        },
        4 => AgentCommand::AcceptOffer { offer_id, at: t },
        5 => AgentCommand::RejectOffer { offer_id, reason: None, at: t },
        6 => AgentCommand::ExpireOffer { offer_id, at: t },
        7 => AgentCommand::CancelOffer { offer_id, reason: None, at: t },
        8 => AgentCommand::ConnectCall { call_id, at: t },
        9 => AgentCommand::EndCall { call_id, at: t },
        10 => AgentCommand::EndWrapUp { at: t },
        _ => AgentCommand::DeleteAgent { at: t },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_command_sequences_keep_the_state_machine_sound(
        capacity in 1u32..=2,
        ops in proptest::collection::vec((0u8..12, 0u8..4, 0i64..20), 1..80),
    ) {
        let mut agent = Agent::default();
        let p = AgentProfile { capacity, ..profile() };
        for e in agent.decide(AgentCommand::CreateAgent { profile: p, at: at(0) }).expect("created") {
            agent.apply(e);
        }
        let mut t = at(0);
        for (kind, n, dt) in ops {
            t += Duration::seconds(dt);
            let cmd = command(kind, n, t);
            let answers_offer = matches!(
                cmd,
                AgentCommand::AcceptOffer { .. } | AgentCommand::RejectOffer { .. }
                    | AgentCommand::ExpireOffer { .. } | AgentCommand::CancelOffer { .. }
            );
            let Ok(events) = agent.decide(cmd) else { continue };
            for e in &events {
                // The chain of states is unbroken: each event starts where the last ended.
                prop_assert_eq!(e.from(), agent.state);
                if matches!(e, AgentEvent::AgentReserved { .. }) {
                    prop_assert!(agent.offer.is_none(), "reserved twice at once");
                }
                agent.apply(e.clone());
                prop_assert_eq!(Some(agent.state), AgentState::parse(agent.state.as_str()));
            }
            if answers_offer && !events.is_empty() {
                prop_assert!(agent.offer.is_none());
                prop_assert_ne!(agent.state, Reserved);
            }
            prop_assert_eq!(agent.state == Reserved, agent.offer.is_some() && agent.calls.is_empty());
            if agent.state == OnCall {
                prop_assert!(!agent.calls.is_empty());
            }
            prop_assert!(agent.calls.len() as u32 <= capacity);
            if agent.deleted {
                break;
            }
        }
    }
}
