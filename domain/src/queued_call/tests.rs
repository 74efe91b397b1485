//! Given/when/then for a call in a queue: enqueue, decisions (recorded with their input, the
//! aggregate's own call part, no double offer), offers ending, assignment, abandonment and
//! overflow, and a replay of a recorded decision.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use cqrs_es::test::TestFramework;
use uuid::Uuid;

use super::*;
use crate::agent::AgentState;
use crate::queue::OverflowTarget;
use crate::routing::{Candidate, RoutingInput, Strategy, StrategyConfig};

type Given = TestFramework<QueuedCall>;

fn t(s: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, 0).single().expect("valid time") + Duration::seconds(s)
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

const CALL: u128 = 900;
const QUEUE: u128 = 800;

fn call() -> CallToRoute {
    CallToRoute {
        call_id: id(CALL),
        queue_id: None,
        priority: 5,
        arrived_at: t(0),
        waited_ms: 0,
        required_skills: BTreeMap::from([("billing".to_owned(), 3)]),
        required_language: Some("cs".into()),
        vip: false,
        preferred_agent: None,
        attributes: serde_json::Map::new(),
    }
}

fn agent(n: u128) -> Candidate {
    Candidate {
        agent_id: id(n),
        state: AgentState::Available,
        capacity: 1,
        active_calls: 0,
        has_offer: false,
        rejected_this_call: false,
        skills: BTreeMap::from([("billing".to_owned(), 4)]),
        languages: BTreeMap::from([("cs".to_owned(), 5)]),
        last_call_ended_at: None,
        available_since: Some(t(-100 * n as i64)),
        calls_answered_today: 0,
        occupancy: 0.0,
        rating: 0.0,
        attributes: serde_json::Map::new(),
        member_index: n as usize,
    }
}

fn queued() -> QueuedCallEvent {
    let mut c = call();
    (c.queue_id, c.arrived_at) = (Some(id(QUEUE)), t(0));
    QueuedCallEvent::CallQueued {
        visit: 1,
        queue_id: id(QUEUE),
        call: c,
        overflow_at: Some(t(300)),
        at: t(0),
    }
}

/// The router's part of an input: candidates, strategy, pointer; the call part is the
/// aggregate's.
fn input(now: i64, candidates: Vec<Candidate>) -> RoutingInput {
    RoutingInput {
        now: t(now),
        call: CallToRoute { call_id: Uuid::nil(), ..call() },
        candidates,
        strategy: Strategy::LongestIdle,
        config: StrategyConfig::default(),
        rr_pointer: None,
        seed: 0,
        rule: None,
    }
}

/// What the aggregate records for `input` as decision `number` of visit 1.
fn decided(now: i64, candidates: Vec<Candidate>, number: u32) -> QueuedCallEvent {
    let state = {
        let mut s = QueuedCall::default();
        s.apply(queued());
        s.decisions = number - 1;
        s
    };
    let events = state
        .decide(QueuedCallCommand::Decide {
            input: input(now, candidates),
            offer_timeout_seconds: 15,
            expected: None,
        })
        .expect("decided");
    events.into_iter().next().expect("one event")
}

fn offer_of(e: &QueuedCallEvent) -> Uuid {
    match e {
        QueuedCallEvent::RoutingDecided { offer_id: Some(o), .. } => *o,
        other => panic!("no offer in {other:?}"),
    }
}

#[test]
fn enqueuing_records_the_call_with_its_arrival_and_max_wait() {
    Given::with(())
        .given_no_previous_events()
        .when(QueuedCallCommand::Enqueue {
            queue_id: id(QUEUE),
            call: call(),
            max_wait_seconds: 300,
            at: t(0),
        })
        .then_expect_events(vec![queued()]);
}

#[test]
fn a_call_waiting_in_a_queue_cannot_be_queued_again() {
    Given::with(())
        .given(vec![queued()])
        .when(QueuedCallCommand::Enqueue { queue_id: id(7), call: call(), max_wait_seconds: 0, at: t(1) })
        .then_expect_error(QueuedCallError::AlreadyQueued {
            queue_id: id(QUEUE),
            status: QueueStatus::Waiting,
        });
}

#[test]
fn bad_requirements_are_every_one_named() {
    let mut c = call();
    c.priority = 101;
    c.required_skills.insert("x".into(), 9);
    c.required_language = Some("english!".into());
    let err = QueuedCall::default()
        .decide(QueuedCallCommand::Enqueue { queue_id: id(QUEUE), call: c, max_wait_seconds: 0, at: t(0) })
        .expect_err("invalid");
    let QueuedCallError::Invalid(problems) = err else { panic!("{err:?}") };
    let fields: Vec<_> = problems.iter().map(|p| p.field.to_string()).collect();
    assert_eq!(fields, ["priority", "required_skills.x", "language"]);
}

#[test]
fn a_decision_uses_the_aggregates_call_and_wait_and_names_a_derived_offer() {
    let e = decided(12, vec![agent(1), agent(2)], 1);
    let QueuedCallEvent::RoutingDecided { visit, number, input, decision, offer_id, offer_expires_at, at } =
        &e
    else {
        panic!("{e:?}")
    };
    assert_eq!((*visit, *number, *at), (1, 1, t(12)));
    assert_eq!(input.call.call_id, id(CALL));
    assert_eq!(input.call.waited_ms, 12_000, "the wait is the aggregate's, at the decision's clock");
    assert_eq!(input.seed, seed(id(CALL), 1, 1));
    assert_eq!(decision.winner, Some(id(2)), "longest idle: agent 2 has been available longer");
    assert_eq!(*offer_id, Some(super::offer_id(id(CALL), 1, 1)));
    assert_eq!(*offer_expires_at, Some(t(27)));
    assert_eq!(&crate::routing::decide(input), decision.as_ref(), "replaying the input gives the decision");
}

#[test]
fn a_call_with_an_offer_pending_is_not_decided_again() {
    let d = decided(1, vec![agent(1)], 1);
    Given::with(())
        .given(vec![queued(), d])
        .when(QueuedCallCommand::Decide {
            input: input(2, vec![agent(2)]),
            offer_timeout_seconds: 15,
            expected: None,
        })
        .then_expect_error(QueuedCallError::NotWaiting { status: QueueStatus::Offered });
}

#[test]
fn nobody_eligible_is_recorded_once_while_it_holds() {
    let mut busy = agent(1);
    busy.state = AgentState::Break;
    let first = decided(1, vec![busy.clone()], 1);
    assert!(
        matches!(&first, QueuedCallEvent::RoutingDecided { offer_id: None, decision, .. } if decision.winner.is_none())
    );
    Given::with(())
        .given(vec![queued(), first])
        .when(QueuedCallCommand::Decide {
            input: input(5, vec![busy]),
            offer_timeout_seconds: 15,
            expected: None,
        })
        .then_expect_events(vec![]);
}

#[test]
fn a_rejected_offer_puts_the_call_back_and_the_agent_is_never_offered_it_again() {
    let d = decided(1, vec![agent(1)], 1);
    let offer = offer_of(&d);
    let ended = QueuedCallEvent::CallOfferEnded {
        offer_id: offer,
        agent_id: id(1),
        outcome: OfferOutcome::Rejected,
        at: t(3),
    };
    Given::with(())
        .given(vec![queued(), d.clone()])
        .when(QueuedCallCommand::EndOffer {
            offer_id: offer,
            agent_id: id(1),
            outcome: OfferOutcome::Rejected,
            at: t(3),
        })
        .then_expect_events(vec![ended.clone()]);

    let mut state = QueuedCall::default();
    for e in [queued(), d, ended] {
        state.apply(e);
    }
    // A decision made for a number the call is past is refused (its offer id would be wrong).
    let stale = state.decide(QueuedCallCommand::Decide {
        input: input(4, vec![agent(1), agent(2)]),
        offer_timeout_seconds: 15,
        expected: Some((1, 1)),
    });
    assert_eq!(stale, Err(QueuedCallError::StaleDecision { visit: 1, number: 2 }));
    let events = state
        .decide(QueuedCallCommand::Decide {
            input: input(4, vec![agent(1), agent(2)]),
            offer_timeout_seconds: 15,
            expected: Some((1, 2)),
        })
        .expect("decided");
    let QueuedCallEvent::RoutingDecided { decision, number, offer_id, .. } = &events[0] else { panic!() };
    assert_eq!(*offer_id, Some(super::offer_id(id(CALL), 1, 2)));
    assert_eq!(*number, 2);
    assert_eq!(decision.winner, Some(id(2)));
    assert_eq!(
        decision.candidates[0].why_not.as_ref().map(ToString::to_string).as_deref(),
        Some("rejected_this_call")
    );
}

#[test]
fn an_agent_who_could_not_be_reserved_may_be_offered_again() {
    let d = decided(1, vec![agent(1)], 1);
    let offer = offer_of(&d);
    let mut state = QueuedCall::default();
    for e in [
        queued(),
        d,
        QueuedCallEvent::CallOfferEnded {
            offer_id: offer,
            agent_id: id(1),
            outcome: OfferOutcome::Unavailable,
            at: t(2),
        },
    ] {
        state.apply(e);
    }
    assert!(state.turned_down.is_empty());
    assert_eq!(state.status, Some(QueueStatus::Waiting));
}

#[test]
fn only_the_pending_offer_can_end_or_be_accepted() {
    let d = decided(1, vec![agent(1)], 1);
    Given::with(())
        .given(vec![queued(), d.clone()])
        .when(QueuedCallCommand::Assign { offer_id: id(5), agent_id: id(1), at: t(2) })
        .then_expect_error(QueuedCallError::OfferNotCurrent { offer_id: id(5) });
    let offer = offer_of(&d);
    // Another agent answering under the offer's id (a reservation withdrawn as not the
    // decision's) neither assigns the call nor ends its offer.
    Given::with(())
        .given(vec![queued(), d.clone()])
        .when(QueuedCallCommand::Assign { offer_id: offer, agent_id: id(2), at: t(2) })
        .then_expect_error(QueuedCallError::OfferNotCurrent { offer_id: offer });
    Given::with(())
        .given(vec![queued(), d.clone()])
        .when(QueuedCallCommand::EndOffer {
            offer_id: offer,
            agent_id: id(2),
            outcome: OfferOutcome::Cancelled,
            at: t(2),
        })
        .then_expect_error(QueuedCallError::OfferNotCurrent { offer_id: offer });
    Given::with(())
        .given(vec![queued(), d])
        .when(QueuedCallCommand::Assign { offer_id: offer, agent_id: id(1), at: t(7) })
        .then_expect_events(vec![QueuedCallEvent::CallAssigned {
            visit: 1,
            offer_id: offer,
            agent_id: id(1),
            queue_id: id(QUEUE),
            waited_ms: 7000,
            at: t(7),
        }]);
}

#[test]
fn abandoning_names_the_offer_to_withdraw() {
    let d = decided(1, vec![agent(1)], 1);
    let offer = offer_of(&d);
    Given::with(())
        .given(vec![queued(), d])
        .when(QueuedCallCommand::Abandon { reason: "caller_hung_up".into(), at: t(9) })
        .then_expect_events(vec![QueuedCallEvent::CallAbandoned {
            visit: 1,
            queue_id: id(QUEUE),
            reason: "caller_hung_up".into(),
            offer_id: Some(offer),
            agent_id: Some(id(1)),
            waited_ms: 9000,
            short: false,
            at: t(9),
        }]);
}

#[test]
fn overflow_waits_for_a_pending_offer_and_a_left_call_cannot_overflow() {
    let d = decided(1, vec![agent(1)], 1);
    Given::with(())
        .given(vec![queued(), d])
        .when(QueuedCallCommand::Overflow { target: OverflowTarget::Voicemail, at: t(300) })
        .then_expect_error(QueuedCallError::NotWaiting { status: QueueStatus::Offered });
    Given::with(())
        .given(vec![queued()])
        .when(QueuedCallCommand::Overflow { target: OverflowTarget::Voicemail, at: t(300) })
        .then_expect_events(vec![QueuedCallEvent::CallOverflowed {
            visit: 1,
            queue_id: id(QUEUE),
            target: OverflowTarget::Voicemail,
            waited_ms: 300_000,
            at: t(300),
        }]);
    let overflowed = QueuedCallEvent::CallOverflowed {
        visit: 1,
        queue_id: id(QUEUE),
        target: OverflowTarget::Voicemail,
        waited_ms: 1,
        at: t(300),
    };
    Given::with(())
        .given(vec![queued(), overflowed])
        .when(QueuedCallCommand::Abandon { reason: "caller_hung_up".into(), at: t(301) })
        .then_expect_error(QueuedCallError::NotQueued);
}

#[test]
fn an_overflow_into_another_queue_is_the_next_visit() {
    let overflowed = QueuedCallEvent::CallOverflowed {
        visit: 1,
        queue_id: id(QUEUE),
        target: OverflowTarget::Queue { queue_id: id(801) },
        waited_ms: 1,
        at: t(300),
    };
    let mut again = call();
    (again.queue_id, again.arrived_at) = (Some(id(801)), t(300));
    Given::with(())
        .given(vec![queued(), overflowed])
        .when(QueuedCallCommand::Enqueue { queue_id: id(801), call: call(), max_wait_seconds: 0, at: t(300) })
        .then_expect_events(vec![QueuedCallEvent::CallQueued {
            visit: 2,
            queue_id: id(801),
            call: again,
            overflow_at: None,
            at: t(300),
        }]);
}

#[test]
fn a_recorded_decision_replays_from_its_json() {
    let e = decided(20, vec![agent(1), agent(2), agent(3)], 1);
    let json = serde_json::to_string(&e).expect("serialize");
    let back: QueuedCallEvent = serde_json::from_str(&json).expect("parse");
    let QueuedCallEvent::RoutingDecided { input, decision, .. } = back else { panic!() };
    assert_eq!(crate::routing::decide(&input), *decision);
}

#[test]
fn a_caller_leaving_within_five_seconds_is_a_short_abandon() {
    Given::with(())
        .given(vec![queued()])
        .when(QueuedCallCommand::Abandon {
            reason: "caller_hung_up".into(),
            at: t(0) + Duration::milliseconds(4_999),
        })
        .then_expect_events(vec![QueuedCallEvent::CallAbandoned {
            visit: 1,
            queue_id: id(QUEUE),
            reason: "caller_hung_up".into(),
            offer_id: None,
            agent_id: None,
            waited_ms: 4_999,
            short: true,
            at: t(0) + Duration::milliseconds(4_999),
        }]);
}
