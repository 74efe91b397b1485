//! Twilio status callbacks and Telnyx call events mapped to `TelephonyEvent`.

use kraliki_voice::telephony::webhooks::{
    AmdOutcome, AnsweredBy, CallDirection, Disposition, MachinePhase, Provider, TelephonyEvent,
    TelnyxWebhook, TwilioCallStatus, TwilioStatusCallback, WebhookError,
};
use kraliki_voice::telnyx::TelnyxVerifier;
use serde_json::{json, Value};

const SID: &str = "CA1234567890abcdef1234567890abcdef";

fn twilio(fields: &[(&str, &str)]) -> TwilioStatusCallback {
    let mut pairs = vec![
        ("CallSid", SID),
        ("AccountSid", "AC00000000000000000000000000000000"),
        ("From", "+12025550100"),
        ("To", "+420777123456"),
        ("Direction", "outbound-api"),
        ("ApiVersion", "2010-04-01"),
    ];
    pairs.extend_from_slice(fields);
    TwilioStatusCallback::from_form(&pairs).unwrap()
}

fn twilio_event(fields: &[(&str, &str)]) -> TelephonyEvent {
    let webhook = twilio(fields).to_event().unwrap();
    assert_eq!(webhook.provider, Provider::Twilio);
    assert_eq!(webhook.call_id, SID);
    webhook.event
}

#[test]
fn maps_every_twilio_call_status() {
    for status in ["queued", "initiated"] {
        assert_eq!(
            twilio_event(&[("CallStatus", status)]),
            TelephonyEvent::Initiated {
                direction: Some(CallDirection::Outbound),
                from: Some("+12025550100".into()),
                to: Some("+420777123456".into()),
            }
        );
    }
    assert_eq!(twilio_event(&[("CallStatus", "ringing")]), TelephonyEvent::Ringing);
    assert_eq!(
        twilio_event(&[("CallStatus", "in-progress")]),
        TelephonyEvent::Answered { answered_by: None }
    );
    assert_eq!(
        twilio_event(&[("CallStatus", "completed"), ("CallDuration", "42")]),
        TelephonyEvent::Completed {
            disposition: Disposition::Normal,
            duration_secs: Some(42),
            hangup_cause: Some("completed".into())
        }
    );
    for (status, disposition) in [
        ("busy", Disposition::Busy),
        ("no-answer", Disposition::NoAnswer),
        ("canceled", Disposition::Canceled),
    ] {
        assert_eq!(
            twilio_event(&[("CallStatus", status), ("CallDuration", "0")]),
            TelephonyEvent::Completed {
                disposition,
                duration_secs: Some(0),
                hangup_cause: Some(status.into())
            },
            "{status}"
        );
    }
    match twilio_event(&[("CallStatus", "failed"), ("SipResponseCode", "404"), ("ErrorCode", "13224")]) {
        TelephonyEvent::Failed { reason } => {
            assert!(reason.contains("404") && reason.contains("13224"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    let inbound = TwilioStatusCallback::from_form(&[
        ("CallSid", SID),
        ("CallStatus", "ringing"),
        ("Direction", "inbound"),
    ])
    .unwrap();
    assert_eq!(inbound.call_status, Some(TwilioCallStatus::Ringing));
    let inbound = TwilioStatusCallback::from_form(&[
        ("CallSid", SID),
        ("CallStatus", "queued"),
        ("Direction", "inbound"),
    ])
    .unwrap()
    .to_event()
    .unwrap();
    assert!(matches!(
        inbound.event,
        TelephonyEvent::Initiated { direction: Some(CallDirection::Inbound), .. }
    ));
}

#[test]
fn maps_twilio_answered_by_per_the_domain_rules() {
    let cases = [
        ("human", AnsweredBy::Human, AmdOutcome::Human),
        ("machine_start", AnsweredBy::Machine(MachinePhase::Detected), AmdOutcome::Machine),
        ("machine_end_beep", AnsweredBy::Machine(MachinePhase::GreetingEndedBeep), AmdOutcome::Machine),
        ("machine_end_silence", AnsweredBy::Machine(MachinePhase::GreetingEndedSilence), AmdOutcome::Machine),
        ("machine_end_other", AnsweredBy::Machine(MachinePhase::GreetingEndedOther), AmdOutcome::Machine),
        ("fax", AnsweredBy::Fax, AmdOutcome::Fax),
        // Unknown is treated as human: an agent hearing a machine beats dropping a person.
        ("unknown", AnsweredBy::Unknown, AmdOutcome::Human),
        ("something_new", AnsweredBy::Unknown, AmdOutcome::Human),
    ];
    for (value, answered_by, outcome) in cases {
        assert_eq!(answered_by.outcome(), outcome, "{value}");
        // Synchronous detection: AnsweredBy on the answered callback.
        assert_eq!(
            twilio_event(&[("CallStatus", "in-progress"), ("AnsweredBy", value)]),
            TelephonyEvent::Answered { answered_by: Some(answered_by) },
            "{value}"
        );
        // Asynchronous detection: AnsweredBy alone, to AsyncAmdStatusCallback.
        let amd = TwilioStatusCallback::from_form(&[
            ("CallSid", SID),
            ("AnsweredBy", value),
            ("MachineDetectionDuration", "2700"),
        ])
        .unwrap()
        .to_event()
        .unwrap();
        assert_eq!(amd.event, TelephonyEvent::MachineDetection { answered_by }, "{value}");
        assert_eq!(amd.idempotency_key, format!("twilio:{SID}:amd:{value}"));
    }
}

#[test]
fn twilio_idempotency_keys_survive_redelivery_and_tell_events_apart() {
    let first = twilio(&[
        ("CallStatus", "completed"),
        ("SequenceNumber", "3"),
        ("Timestamp", "Mon, 16 Aug 2010 03:45:01 +0000"),
    ]);
    let redelivered = twilio(&[
        ("CallStatus", "completed"),
        ("SequenceNumber", "3"),
        ("Timestamp", "Mon, 16 Aug 2010 03:45:09 +0000"),
    ]);
    assert_eq!(first.idempotency_key(), format!("twilio:{SID}:completed:3"));
    assert_eq!(first.idempotency_key(), redelivered.idempotency_key());
    let later = twilio(&[("CallStatus", "completed"), ("SequenceNumber", "4")]);
    assert_ne!(first.idempotency_key(), later.idempotency_key());
    let ringing = twilio(&[("CallStatus", "ringing"), ("SequenceNumber", "3")]);
    assert_ne!(first.idempotency_key(), ringing.idempotency_key());
    assert_eq!(twilio(&[("CallStatus", "ringing")]).idempotency_key(), format!("twilio:{SID}:ringing"));
    assert_eq!(first.to_event().unwrap().occurred_at.as_deref(), Some("Mon, 16 Aug 2010 03:45:01 +0000"));
}

#[test]
fn twilio_recording_and_gather_callbacks() {
    let recording = TwilioStatusCallback::from_form(&[
        ("CallSid", SID),
        ("RecordingSid", "RE0123"),
        ("RecordingUrl", "https://api.twilio.com/2010-04-01/Accounts/AC/Recordings/RE0123"),
        ("RecordingStatus", "completed"),
    ])
    .unwrap()
    .to_event()
    .unwrap();
    assert_eq!(
        recording.event,
        TelephonyEvent::RecordingAvailable {
            url: "https://api.twilio.com/2010-04-01/Accounts/AC/Recordings/RE0123".into()
        }
    );
    assert_eq!(recording.idempotency_key, format!("twilio:{SID}:recording:RE0123:completed"));
    let gather = twilio(&[("CallStatus", "in-progress"), ("Digits", "1234#")]).to_event().unwrap();
    assert_eq!(gather.event, TelephonyEvent::Dtmf { digits: "1234#".into() });
    assert_eq!(gather.idempotency_key, format!("twilio:{SID}:digits:1234#"));
}

#[test]
fn twilio_bodies_are_form_decoded() {
    let body = format!("CallSid={SID}&CallStatus=in-progress&From=%2B12025550100&To=%2B420777123456&CallerName=Jan+Nov%C3%A1k&AnsweredBy=human");
    let callback = TwilioStatusCallback::from_body(body.as_bytes()).unwrap();
    assert_eq!(callback.from.as_deref(), Some("+12025550100"));
    assert_eq!(callback.answered_by.as_deref(), Some("human"));
    assert_eq!(
        callback.to_event().unwrap().event,
        TelephonyEvent::Answered { answered_by: Some(AnsweredBy::Human) }
    );
}

#[test]
fn bad_twilio_callbacks_are_typed_errors() {
    assert!(matches!(
        TwilioStatusCallback::from_form(&[("CallStatus", "ringing")]),
        Err(WebhookError::MissingField("CallSid"))
    ));
    assert!(matches!(
        TwilioStatusCallback::from_form(&[("CallSid", SID), ("CallStatus", "exploded")]),
        Err(WebhookError::InvalidValue { field: "CallStatus", .. })
    ));
    assert!(matches!(
        TwilioStatusCallback::from_form(&[
            ("CallSid", SID),
            ("CallStatus", "completed"),
            ("CallDuration", "-1")
        ]),
        Err(WebhookError::InvalidValue { field: "CallDuration", .. })
    ));
    assert!(matches!(
        TwilioStatusCallback::from_form(&[("CallSid", SID), ("SequenceNumber", "x")]),
        Err(WebhookError::InvalidValue { field: "SequenceNumber", .. })
    ));
    assert!(matches!(TwilioStatusCallback::from_body(&[0xFF, b'=', 0xFE]), Err(WebhookError::Form)));
    // Nothing to say what happened.
    assert!(matches!(
        TwilioStatusCallback::from_form(&[("CallSid", SID)]).unwrap().to_event(),
        Err(WebhookError::MissingField("CallStatus"))
    ));
}

fn telnyx(event_type: &str, payload: Value) -> TelnyxWebhook {
    let mut full = json!({
        "call_control_id": "v3:abc",
        "call_leg_id": "leg-1",
        "call_session_id": "session-1",
        "client_state": "dGVuYW50PTQy",
        "connection_id": "1494404757140276705",
    });
    if let (Some(full), Some(extra)) = (full.as_object_mut(), payload.as_object()) {
        full.extend(extra.clone());
    }
    let body = json!({
        "data": {"record_type": "event", "event_type": event_type, "id": "0ccc7b54-4df3-4bca-a65a-3da1ecc777f0",
                 "occurred_at": "2026-01-01T10:00:42.500Z", "payload": full},
        "meta": {"attempt": 1, "delivered_to": "https://voice.example.com/api/telephony/telnyx/webhook"}
    });
    TelnyxWebhook::parse(body.to_string().as_bytes()).unwrap()
}

fn telnyx_event(event_type: &str, payload: Value) -> TelephonyEvent {
    let webhook = telnyx(event_type, payload).to_event().unwrap();
    assert_eq!(webhook.provider, Provider::Telnyx);
    assert_eq!(webhook.call_id, "v3:abc");
    assert_eq!(webhook.session_id.as_deref(), Some("session-1"));
    assert_eq!(webhook.client_state.as_deref(), Some("dGVuYW50PTQy"));
    assert_eq!(webhook.idempotency_key, "telnyx:0ccc7b54-4df3-4bca-a65a-3da1ecc777f0");
    webhook.event
}

#[test]
fn parses_the_protocols_envelope() {
    let body = r#"{"data":{"record_type":"event","event_type":"call.initiated","id":"6e4a1a5c-3c2b-4d8f-9a47-0d7f1f3c2e11","occurred_at":"2026-01-01T10:00:00.000000Z","payload":{"call_control_id":"v3:abc","call_leg_id":"leg","call_session_id":"sess","client_state":null,"connection_id":"conn","from":"+12025550100","to":"+420777123456","direction":"incoming","state":"parked"}},"meta":{"attempt":1,"delivered_to":"https://voice.example.com/hook"}}"#;
    let webhook = TelnyxWebhook::parse(body.as_bytes()).unwrap();
    assert_eq!(webhook.meta.as_ref().unwrap().attempt, Some(1));
    let event = webhook.to_event().unwrap();
    assert_eq!(event.idempotency_key, "telnyx:6e4a1a5c-3c2b-4d8f-9a47-0d7f1f3c2e11");
    assert_eq!(event.client_state, None);
    assert_eq!(
        event.event,
        TelephonyEvent::Initiated {
            direction: Some(CallDirection::Inbound),
            from: Some("+12025550100".into()),
            to: Some("+420777123456".into())
        }
    );
}

#[test]
fn the_signed_protocols_vector_verifies_and_maps() {
    // PROTOCOLS.md's signature vector: verify the bytes, then read them.
    let body = r#"{"data":{"event_type":"call.hangup","payload":{"call_control_id":"v3:abc","hangup_cause":"normal_clearing"}}}"#;
    let verifier = TelnyxVerifier::from_base64_key("11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=").unwrap();
    let signature =
        "va1gK/EmJSsJhHQiHMlqlYeGNCJoPL3s2+N4lM6o6HVpNtz7uy7FbidwJNPg1YiJF0Y+6XH6k+Yy/zObKAvmAQ==";
    verifier.verify(signature, "1767225600", body.as_bytes(), 1_767_225_600).unwrap();
    let event = TelnyxWebhook::parse(body.as_bytes()).unwrap().to_event().unwrap();
    assert_eq!(
        event.event,
        TelephonyEvent::Completed {
            disposition: Disposition::Normal,
            duration_secs: None,
            hangup_cause: Some("normal_clearing".into())
        }
    );
    // No `data.id`: the key falls back to what a redelivery keeps.
    assert_eq!(event.idempotency_key, "telnyx:call.hangup:v3:abc:");
}

#[test]
fn maps_telnyx_call_events() {
    assert_eq!(
        telnyx_event(
            "call.initiated",
            json!({"direction": "outgoing", "from": "+1", "to": "+2", "state": "bridging"})
        ),
        TelephonyEvent::Initiated {
            direction: Some(CallDirection::Outbound),
            from: Some("+1".into()),
            to: Some("+2".into())
        }
    );
    assert_eq!(telnyx_event("call.answered", json!({})), TelephonyEvent::Answered { answered_by: None });
    assert_eq!(
        telnyx_event("call.dtmf.received", json!({"digit": "#"})),
        TelephonyEvent::Dtmf { digits: "#".into() }
    );
    assert_eq!(
        telnyx_event("call.gather.ended", json!({"digits": "1234", "status": "valid"})),
        TelephonyEvent::GatherEnded { digits: "1234".into(), status: "valid".into() }
    );
    assert_eq!(
        telnyx_event(
            "call.recording.saved",
            json!({"recording_urls": {"mp3": "https://s3.example/r.mp3", "wav": "https://s3.example/r.wav"},
                   "public_recording_urls": {"mp3": null, "wav": null}, "channels": "dual"})
        ),
        TelephonyEvent::RecordingAvailable { url: "https://s3.example/r.mp3".into() }
    );
    assert_eq!(
        telnyx_event(
            "call.recording.saved",
            json!({"recording_urls": {}, "public_recording_urls": {"wav": "https://p/r.wav"}})
        ),
        TelephonyEvent::RecordingAvailable { url: "https://p/r.wav".into() }
    );
    assert_eq!(
        telnyx_event("streaming.started", json!({"stream_url": "wss://x"})),
        TelephonyEvent::StreamStarted
    );
    assert_eq!(telnyx_event("streaming.stopped", json!({})), TelephonyEvent::StreamStopped);
    assert_eq!(
        telnyx_event("streaming.failed", json!({"failure_reason": "connection refused"})),
        TelephonyEvent::StreamFailed { reason: Some("connection refused".into()) }
    );
    assert_eq!(
        telnyx_event("call.bridged", json!({})),
        TelephonyEvent::Unhandled { event_type: "call.bridged".into() }
    );
}

#[test]
fn maps_telnyx_hangup_causes() {
    let cases = [
        ("normal_clearing", Disposition::Normal),
        ("time_limit", Disposition::Normal),
        ("user_busy", Disposition::Busy),
        ("no_answer", Disposition::NoAnswer),
        ("timeout", Disposition::NoAnswer),
        ("originator_cancel", Disposition::Canceled),
        ("call_rejected", Disposition::Rejected),
        ("unspecified", Disposition::Other),
    ];
    for (cause, disposition) in cases {
        assert_eq!(
            telnyx_event(
                "call.hangup",
                json!({"hangup_cause": cause, "hangup_source": "callee", "start_time": "2026-01-01T09:59:30.000Z"})
            ),
            TelephonyEvent::Completed {
                disposition,
                duration_secs: Some(72),
                hangup_cause: Some(cause.into())
            },
            "{cause}"
        );
    }
    assert_eq!(
        telnyx_event("call.hangup", json!({"hangup_cause": "not_found"})),
        TelephonyEvent::Failed { reason: "not_found".into() }
    );
}

#[test]
fn maps_telnyx_machine_detection_per_the_domain_rules() {
    let cases = [
        ("call.machine.detection.ended", "human", AnsweredBy::Human, AmdOutcome::Human),
        (
            "call.machine.detection.ended",
            "machine",
            AnsweredBy::Machine(MachinePhase::Detected),
            AmdOutcome::Machine,
        ),
        ("call.machine.detection.ended", "not_sure", AnsweredBy::Unknown, AmdOutcome::Human),
        ("call.machine.premium.detection.ended", "human_residence", AnsweredBy::Human, AmdOutcome::Human),
        ("call.machine.premium.detection.ended", "human_business", AnsweredBy::Human, AmdOutcome::Human),
        (
            "call.machine.premium.detection.ended",
            "machine",
            AnsweredBy::Machine(MachinePhase::Detected),
            AmdOutcome::Machine,
        ),
        ("call.machine.premium.detection.ended", "silence", AnsweredBy::Unknown, AmdOutcome::Human),
        ("call.machine.premium.detection.ended", "fax_detected", AnsweredBy::Fax, AmdOutcome::Fax),
        (
            "call.machine.greeting.ended",
            "beep_detected",
            AnsweredBy::Machine(MachinePhase::GreetingEndedBeep),
            AmdOutcome::Machine,
        ),
        (
            "call.machine.greeting.ended",
            "ended",
            AnsweredBy::Machine(MachinePhase::GreetingEndedOther),
            AmdOutcome::Machine,
        ),
    ];
    for (event_type, result, answered_by, outcome) in cases {
        assert_eq!(
            telnyx_event(event_type, json!({"result": result})),
            TelephonyEvent::MachineDetection { answered_by },
            "{event_type} {result}"
        );
        assert_eq!(answered_by.outcome(), outcome);
    }
}

#[test]
fn telnyx_redeliveries_share_the_key() {
    let first = telnyx("call.answered", json!({}));
    let mut again = first.clone();
    again.meta.as_mut().unwrap().attempt = Some(2);
    assert_eq!(first.idempotency_key(), again.idempotency_key());
    let mut other = first.clone();
    other.data.id = Some("11111111-2222-3333-4444-555555555555".into());
    assert_ne!(first.idempotency_key(), other.idempotency_key());
}

#[test]
fn bad_telnyx_webhooks_are_typed_errors() {
    for body in [&b""[..], b"{", b"[]", br#"{"data":{}}"#, br#"{"data":{"event_type":7}}"#] {
        assert!(
            matches!(TelnyxWebhook::parse(body), Err(WebhookError::Json(_))),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    let no_call = TelnyxWebhook::parse(br#"{"data":{"event_type":"call.answered","payload":{}}}"#).unwrap();
    assert!(matches!(no_call.to_event(), Err(WebhookError::MissingField("data.payload.call_control_id"))));
    // Odd payload shapes do not break parsing; the fields just read as absent.
    let odd = TelnyxWebhook::parse(
        br#"{"data":{"event_type":"call.dtmf.received","id":"e1","payload":{"call_control_id":"v3:x","digit":5}}}"#,
    )
    .unwrap();
    assert!(matches!(odd.to_event(), Err(WebhookError::MissingField("data.payload.digit"))));
}
