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

mod ivr {
    //! A call in an IVR flow: given a call, when inputs arrive, then every step is an event and
    //! the session follows; repeated and stale webhooks change nothing.
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::ivr::{CallStart, Effect, Flow, Input, IvrStep, SessionStatus};

    fn flow() -> Arc<Flow> {
        Arc::new(
            serde_json::from_value(json!({
                "name": "Front desk",
                "entry_node_id": "menu",
                "nodes": {
                    "menu": {"type": "menu", "message": "Press 1 for sales.", "options": {"1": "bye"},
                             "timeout_node": "bye", "error_node": "bye"},
                    "bye": {"type": "end_call", "message": "Goodbye.", "disposition": "self_served"}
                }
            }))
            .expect("a flow"),
        )
    }

    fn flow_id() -> Uuid {
        Uuid::from_u128(7)
    }

    fn step(seq: Option<u32>, input: Input, second: u32) -> CallCommand {
        CallCommand::StepIvr {
            flow_id: flow_id(),
            version: 1,
            flow: flow(),
            seq,
            input,
            chained: false,
            at: at(second),
        }
    }

    fn start() -> CallCommand {
        step(None, Input::CallStarted(CallStart::default()), 1)
    }

    /// What a call that entered the flow has recorded.
    fn entered() -> Vec<CallEvent> {
        let mut call = Call::default();
        call.apply(initiated());
        run(&mut call, start())
    }

    /// Runs a command on `call` and applies what it records.
    fn run(call: &mut Call, command: CallCommand) -> Vec<CallEvent> {
        let events =
            Given::with(()).given(history(call)).when(command.clone()).inspect_result().expect("accepted");
        for e in &events {
            call.apply(e.clone());
        }
        events
    }

    fn history(call: &Call) -> Vec<CallEvent> {
        // Rebuilt from what the tests recorded: the initiated call plus its IVR events.
        let mut out = vec![initiated()];
        if let Some(ivr) = &call.ivr {
            out.push(CallEvent::IvrFlowEntered { flow_id: ivr.flow_id, version: ivr.version, at: at(1) });
            out.push(CallEvent::IvrAdvanced {
                flow_id: ivr.flow_id,
                version: ivr.version,
                seq: ivr.seq,
                input: Input::CallStarted(CallStart::default()),
                session: ivr.session.clone(),
                effects: ivr.effects.clone(),
                chained: false,
                at: at(1),
            });
        }
        out
    }

    #[test]
    fn entering_a_flow_records_each_step_then_the_session_and_what_to_do() {
        let events = entered();
        assert_eq!(events[0], CallEvent::IvrFlowEntered { flow_id: flow_id(), version: 1, at: at(1) });
        let steps: Vec<&IvrStep> = events
            .iter()
            .filter_map(|e| match e {
                CallEvent::IvrStepTaken { step, .. } => Some(step),
                _ => None,
            })
            .collect();
        assert!(matches!(steps[0], IvrStep::NodeEntered { node_id, .. } if node_id == "menu"), "{steps:?}");
        let Some(CallEvent::IvrAdvanced { seq, session, effects, .. }) = events.last() else {
            panic!("the last event carries the session: {events:?}")
        };
        assert_eq!(*seq, 1);
        assert_eq!(session.status, SessionStatus::Waiting);
        assert!(matches!(&effects[..], [Effect::Gather { node_id, .. }] if node_id == "menu"), "{effects:?}");
    }

    #[test]
    fn an_input_moves_the_call_on_and_a_repeat_of_it_records_nothing() {
        let mut call = Call::default();
        call.apply(initiated());
        run(&mut call, start());
        let events = run(&mut call, step(Some(2), Input::Digits { digits: "1".into() }, 2));
        let last = events.last().expect("events");
        let CallEvent::IvrAdvanced { seq: 2, session, effects, .. } = last else { panic!("{last:?}") };
        assert_eq!(session.status, SessionStatus::Ended);
        assert!(effects
            .iter()
            .any(|e| matches!(e, Effect::Hangup { disposition: Some(d), .. } if d == "self_served")));
        // Twilio retries the webhook: same seq, nothing new.
        assert_eq!(run(&mut call, step(Some(2), Input::Digits { digits: "1".into() }, 3)), vec![]);
        // The caller hangs up afterwards: the flow has ended already.
        assert_eq!(run(&mut call, step(None, Input::Hangup, 4)), vec![]);
    }

    #[test]
    fn a_stale_input_a_repeated_start_and_another_flow_are_told_apart() {
        let mut call = Call::default();
        call.apply(initiated());
        run(&mut call, start());
        // A webhook for a step long answered.
        assert_eq!(run(&mut call, step(Some(1), Input::Timeout, 2)), vec![]);
        // The voice webhook again.
        assert_eq!(run(&mut call, start()), vec![]);
        let other = CallCommand::StepIvr {
            flow_id: Uuid::from_u128(8),
            version: 1,
            flow: flow(),
            seq: Some(2),
            input: Input::Timeout,
            chained: false,
            at: at(3),
        };
        Given::with(()).given(history(&call)).when(other).then_expect_error(CallError::IvrFlowMismatch);
    }

    #[test]
    fn input_without_a_flow_or_on_an_ended_call_is_refused_but_a_hang_up_closes_the_flow() {
        Given::with(())
            .given(vec![initiated()])
            .when(step(Some(1), Input::Timeout, 2))
            .then_expect_error(CallError::NotInIvr);
        let mut call = Call::default();
        call.apply(initiated());
        run(&mut call, start());
        let completed = CallEvent::CallCompleted {
            outcome: CallOutcome::Abandoned,
            disposition: None,
            duration_seconds: 0,
            hangup_cause: None,
            campaign_id: None,
            contact_id: None,
            at: at(5),
        };
        let mut given = history(&call);
        given.push(completed);
        Given::with(())
            .given(given.clone())
            .when(step(Some(2), Input::Digits { digits: "1".into() }, 6))
            .then_expect_error(CallError::Ended);
        let events =
            Given::with(()).given(given).when(step(None, Input::Hangup, 6)).inspect_result().expect("closes");
        assert!(
            events
                .iter()
                .any(|e| matches!(e, CallEvent::IvrStepTaken { step: IvrStep::FlowEnded { .. }, .. })),
            "{events:?}"
        );
    }

    #[test]
    fn a_chained_input_adds_to_what_the_carrier_is_told_and_an_unchained_one_replaces_it() {
        let hooked: Arc<Flow> = Arc::new(
            serde_json::from_value(json!({
                "name": "Lookup",
                "entry_node_id": "hi",
                "nodes": {
                    "hi": {"type": "play_message", "message": "Hello.", "next_node": "hook"},
                    "hook": {"type": "webhook", "webhook_url": "https://hooks.example.com/x", "webhook_method": "GET",
                             "next_node": "menu", "error_node": "menu"},
                    "menu": {"type": "menu", "message": "Press 1.", "options": {"1": "bye"},
                             "timeout_node": "bye", "error_node": "bye"},
                    "bye": {"type": "end_call", "message": "Goodbye."}
                }
            }))
            .expect("a flow"),
        );
        let command = |seq, input, chained| CallCommand::StepIvr {
            flow_id: flow_id(),
            version: 1,
            flow: hooked.clone(),
            seq,
            input,
            chained,
            at: at(2),
        };
        let mut call = Call::default();
        call.apply(initiated());
        for e in Given::with(())
            .given(vec![initiated()])
            .when(command(None, Input::CallStarted(CallStart::default()), false))
            .inspect_result()
            .expect("enters")
        {
            call.apply(e);
        }
        let kinds = |call: &Call| -> Vec<&'static str> {
            call.ivr.as_ref().expect("in the flow").effects.iter().map(effect_kind).collect()
        };
        assert_eq!(kinds(&call), ["play", "call_webhook"]);
        let answered = command(Some(2), Input::WebhookResult { status: 200, body: json!({}) }, true);
        let mut given = vec![initiated()];
        given.extend(history(&call).into_iter().skip(1));
        for e in Given::with(()).given(given).when(answered).inspect_result().expect("answered") {
            call.apply(e);
        }
        assert_eq!(kinds(&call), ["play", "call_webhook", "gather"]);
        let ivr = call.ivr.clone().expect("in the flow");
        call.apply(CallEvent::IvrAdvanced {
            flow_id: ivr.flow_id,
            version: 1,
            seq: ivr.seq + 1,
            input: Input::Digits { digits: "1".into() },
            session: ivr.session,
            effects: Vec::new(),
            chained: false,
            at: at(3),
        });
        assert_eq!(kinds(&call), Vec::<&str>::new());
    }

    fn effect_kind(e: &Effect) -> &'static str {
        match e {
            Effect::Play { .. } => "play",
            Effect::Gather { .. } => "gather",
            Effect::CallWebhook { .. } => "call_webhook",
            Effect::Transfer { .. } => "transfer",
            Effect::RecordVoicemail { .. } => "record_voicemail",
            Effect::Hangup { .. } => "hangup",
        }
    }
}
