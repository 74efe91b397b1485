use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::test::TestFramework;

use super::*;

type Given = TestFramework<Call>;

fn at(second: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, second).single().expect("valid time")
}

fn initiated() -> CallEvent {
    CallEvent::CallInitiated {
        direction: CallDirection::Outbound,
        provider: "twilio".into(),
        provider_call_id: Some("CA1".into()),
        from: "+14155550100".into(),
        to: "+14155550123".into(),
        campaign_id: None,
        contact_id: None,
        at: at(0),
    }
}

#[test]
fn completion_records_the_talk_time_and_a_repeated_callback_records_nothing() {
    let completed = CallEvent::CallCompleted {
        outcome: CallOutcome::Connected,
        disposition: Some("sale".into()),
        duration_seconds: 30,
        hangup_cause: None,
        campaign_id: None,
        contact_id: None,
        at: at(40),
    };
    Given::with(())
        .given(vec![initiated(), CallEvent::CallAnswered { answered_by: Some("human".into()), at: at(10) }])
        .when(CallCommand::CompleteCall {
            outcome: CallOutcome::Connected,
            disposition: Some("sale".into()),
            hangup_cause: None,
            at: at(40),
        })
        .then_expect_events(vec![completed.clone()]);
    Given::with(())
        .given(vec![initiated(), CallEvent::CallAnswered { answered_by: None, at: at(10) }, completed])
        .when(CallCommand::CompleteCall {
            outcome: CallOutcome::Connected,
            disposition: None,
            hangup_cause: None,
            at: at(41),
        })
        .then_expect_events(vec![]);
}

#[test]
fn nothing_is_said_on_an_ended_or_unknown_call() {
    Given::with(())
        .given(vec![
            initiated(),
            CallEvent::CallFailed {
                reason: "provider dropped".into(),
                campaign_id: None,
                contact_id: None,
                at: at(5),
            },
        ])
        .when(CallCommand::ReceiveDtmf { digits: "1".into(), at: at(6) })
        .then_expect_error(CallError::Ended);
    Given::with(())
        .given_no_previous_events()
        .when(CallCommand::AnswerCall { answered_by: None, at: at(1) })
        .then_expect_error(CallError::NotFound);
}

#[test]
fn a_callback_is_scheduled_for_a_campaigns_contact_in_the_future_only() {
    let (campaign, contact) = (Uuid::from_u128(7), Uuid::from_u128(8));
    let for_contact = CallEvent::CallInitiated {
        direction: CallDirection::Outbound,
        provider: "twilio".into(),
        provider_call_id: Some("CA2".into()),
        from: "+14155550100".into(),
        to: "+14155550123".into(),
        campaign_id: Some(campaign),
        contact_id: Some(contact),
        at: at(0),
    };
    let tomorrow = at(5) + chrono::Duration::days(1);
    let schedule =
        |callback_at| CallCommand::ScheduleCallback { callback_at, note: Some("after 10".into()), at: at(5) };
    Given::with(()).given(vec![for_contact.clone()]).when(schedule(tomorrow)).then_expect_events(vec![
        CallEvent::CallbackScheduled {
            callback_at: tomorrow,
            note: Some("after 10".into()),
            campaign_id: campaign,
            contact_id: contact,
            at: at(5),
        },
    ]);
    Given::with(())
        .given(vec![for_contact.clone()])
        .when(schedule(at(5)))
        .then_expect_error(CallError::CallbackInThePast);
    Given::with(())
        .given(vec![initiated()])
        .when(schedule(tomorrow))
        .then_expect_error(CallError::NoContactToCallBack);
    Given::with(())
        .given(vec![
            for_contact,
            CallEvent::CallFailed {
                reason: "x".into(),
                campaign_id: Some(campaign),
                contact_id: Some(contact),
                at: at(3),
            },
        ])
        .when(schedule(tomorrow))
        .then_expect_error(CallError::Ended);
}

#[test]
fn a_summary_is_recorded_while_the_call_lives_and_an_empty_one_is_nothing() {
    let summarize = |summary: &str| CallCommand::SummarizeCall { summary: summary.into(), at: at(9) };
    Given::with(())
        .given(vec![initiated()])
        .when(summarize("  Wants a quote for 3 seats. "))
        .then_expect_events(vec![CallEvent::CallSummarized {
            summary: "Wants a quote for 3 seats.".into(),
            at: at(9),
        }]);
    Given::with(()).given(vec![initiated()]).when(summarize("   ")).then_expect_events(vec![]);
    Given::with(()).given(vec![]).when(summarize("x")).then_expect_error(CallError::NotFound);
}

fn requested() -> CallEvent {
    CallEvent::CallRequested {
        direction: CallDirection::Outbound,
        provider: "twilio".into(),
        from: "+14155550100".into(),
        to: "+14155550123".into(),
        campaign_id: None,
        contact_id: None,
        detect_machine: false,
        metadata: None,
        at: at(0),
    }
}

#[test]
fn a_requested_call_is_placed_once_and_a_request_is_made_once() {
    let request = || CallCommand::RequestCall {
        provider: "twilio".into(),
        from: "+14155550100".into(),
        to: "+14155550123".into(),
        campaign_id: None,
        contact_id: None,
        detect_machine: false,
        metadata: None,
        at: at(0),
    };
    Given::with(()).given_no_previous_events().when(request()).then_expect_events(vec![requested()]);
    Given::with(()).given(vec![requested()]).when(request()).then_expect_error(CallError::AlreadyExists);
    let place = || CallCommand::RecordPlacement { provider_call_id: "CA9".into(), at: at(1) };
    Given::with(())
        .given(vec![requested()])
        .when(place())
        .then_expect_events(vec![CallEvent::CallPlaced { provider_call_id: "CA9".into(), at: at(1) }]);
    let placed = CallEvent::CallPlaced { provider_call_id: "CA9".into(), at: at(1) };
    Given::with(()).given(vec![requested(), placed]).when(place()).then_expect_events(vec![]);
    // The carrier's ringing may overtake the placement's answer; it still counts.
    Given::with(())
        .given(vec![requested()])
        .when(CallCommand::MarkRinging { at: at(1) })
        .then_expect_events(vec![CallEvent::CallRinging { at: at(1) }]);
    // A carrier that refuses fails the request.
    Given::with(())
        .given(vec![requested()])
        .when(CallCommand::FailCall { reason: "refused".into(), at: at(1) })
        .then_expect_events(vec![CallEvent::CallFailed {
            reason: "refused".into(),
            campaign_id: None,
            contact_id: None,
            at: at(1),
        }]);
}

#[test]
fn transfer_targets_read_back_from_the_typed_and_the_legacy_shape() {
    let typed: TransferTarget =
        serde_json::from_value(serde_json::json!({"type": "queue", "queue": "billing"})).expect("typed");
    let legacy: TransferTarget = serde_json::from_value(serde_json::json!("queue:billing")).expect("legacy");
    assert_eq!(typed, TransferTarget::Queue { queue: "billing".into() });
    assert_eq!(legacy, typed);
    assert_eq!(
        serde_json::to_value(&typed).expect("json"),
        serde_json::json!({"type": "queue", "queue": "billing"})
    );
    let ai: TransferTarget = serde_json::from_value(serde_json::json!({"type": "ai_agent"})).expect("ai");
    assert_eq!(ai, TransferTarget::AiAgent);
}

#[test]
fn the_voice_agent_joins_a_live_call_only() {
    let connect = || CallCommand::ConnectAgent {
        provider: "openai".into(),
        model: Some("gpt-realtime".into()),
        voice: Some("marin".into()),
        connect_ms: 140,
        at: at(3),
    };
    Given::with(()).given(vec![initiated()]).when(connect()).then_expect_events(vec![
        CallEvent::AgentConnected {
            provider: "openai".into(),
            model: Some("gpt-realtime".into()),
            voice: Some("marin".into()),
            connect_ms: 140,
            at: at(3),
        },
    ]);
    Given::with(())
        .given(vec![
            initiated(),
            CallEvent::CallFailed { reason: "x".into(), campaign_id: None, contact_id: None, at: at(2) },
        ])
        .when(connect())
        .then_expect_error(CallError::Ended);
    Given::with(()).given_no_previous_events().when(connect()).then_expect_error(CallError::NotFound);
}

#[test]
fn a_disposition_is_a_code_a_repeat_records_nothing_and_a_completion_carries_it() {
    let set = |disposition: &str, previous: Option<&str>, outcome: Option<CallOutcome>| {
        CallEvent::CallDispositionSet {
            disposition: disposition.into(),
            notes: None,
            agent_id: None,
            previous: previous.map(Into::into),
            outcome,
            campaign_id: None,
            contact_id: None,
            started_at: Some(at(0)),
            at: at(20),
        }
    };
    let command = |d: &str| CallCommand::SetDisposition {
        disposition: d.into(),
        notes: None,
        agent_id: None,
        at: at(20),
    };
    Given::with(()).given(vec![initiated()]).when(command(" Sale  Made ")).then_expect_events(vec![set(
        "sale_made",
        None,
        None,
    )]);
    Given::with(())
        .given(vec![initiated(), set("sale", None, None)])
        .when(command("SALE"))
        .then_expect_events(vec![]);
    Given::with(()).given(vec![]).when(command("sale")).then_expect_error(CallError::NotFound);
    for bad in ["", "  ", "sale!", &"x".repeat(65)] {
        let problem = disposition_code(bad).expect_err(bad);
        assert_eq!(problem.field, "disposition");
        Given::with(())
            .given(vec![initiated()])
            .when(command(bad))
            .then_expect_error(CallError::InvalidDisposition(problem));
    }
    // Set during the call: the completion carries it; set after: it names the outcome and what
    // it replaced.
    Given::with(())
        .given(vec![initiated(), set("sale", None, None)])
        .when(CallCommand::CompleteCall {
            outcome: CallOutcome::Connected,
            disposition: None,
            hangup_cause: None,
            at: at(30),
        })
        .then_expect_events(vec![CallEvent::CallCompleted {
            outcome: CallOutcome::Connected,
            disposition: Some("sale".into()),
            duration_seconds: 0,
            hangup_cause: None,
            campaign_id: None,
            contact_id: None,
            at: at(30),
        }]);
    let completed = CallEvent::CallCompleted {
        outcome: CallOutcome::Voicemail,
        disposition: Some("left_message".into()),
        duration_seconds: 0,
        hangup_cause: None,
        campaign_id: None,
        contact_id: None,
        at: at(30),
    };
    Given::with(())
        .given(vec![initiated(), completed])
        .when(command("no_interest"))
        .then_expect_events(vec![set("no_interest", Some("left_message"), Some(CallOutcome::Voicemail))]);
}
