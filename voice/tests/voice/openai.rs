//! OpenAI Realtime adapter against the fake server.

use base64::Engine as _;
use kraliki_voice::ai::{codes, AgentEvent, AgentSession, AiError, OpenAiSession, SessionConfig, Speaker};
use kraliki_voice::testing::{ClientFrame, FakeOpenAi, Step};
use serde_json::{json, Value};

use crate::helpers::*;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn types(messages: &[Value]) -> Vec<&str> {
    messages.iter().filter_map(|m| m["type"].as_str()).collect()
}

#[tokio::test]
async fn connects_with_bearer_key_and_configures_pcmu_vad_and_tools() {
    let fake = FakeOpenAi::start().await.unwrap();
    let session = OpenAiSession::connect(&fake.config(), &session_config(None)).await.unwrap();

    let conn = &fake.connections()[0];
    assert_eq!(conn.path, "/v1/realtime");
    assert_eq!(conn.query_param("model"), Some("gpt-realtime"));
    assert_eq!(conn.header("authorization"), Some("Bearer sk-test-fake-openai"));
    let update = &fake.received_json()[0];
    assert_eq!(update["type"], "session.update");
    let s = &update["session"];
    assert_eq!(s["audio"]["input"]["format"], json!({ "type": "audio/pcmu" }));
    assert_eq!(s["audio"]["output"]["format"], json!({ "type": "audio/pcmu" }));
    assert_eq!(s["audio"]["input"]["turn_detection"]["type"], "server_vad");
    assert_eq!(s["audio"]["input"]["turn_detection"]["interrupt_response"], true);
    assert_eq!(s["audio"]["input"]["transcription"]["language"], "cs");
    assert_eq!(s["tools"][0]["name"], "lookup_order");
    assert_eq!(s["tools"][0]["parameters"]["required"], json!(["order_id"]));
    assert_eq!(s["instructions"], session_config(None).instructions);
    drop(session);
}

#[tokio::test]
async fn greeting_audio_arrives_as_the_same_ulaw_8k() {
    let fake = FakeOpenAi::start().await.unwrap();
    let greeting = tone_ulaw(440.0, 1000); // 1 s = 8000 μ-law bytes
    fake.push_all(FakeOpenAi::greeting_script("resp_1", "item_greet", &greeting, "Dobrý den"));
    let mut session =
        OpenAiSession::connect(&fake.config(), &session_config(Some("Dobrý den, tady Kraliki.")))
            .await
            .unwrap();

    let events = events_until(&mut session, |e| *e == AgentEvent::ResponseDone).await;
    let ulaw = audio_out(&events, Some("item_greet"));
    assert_eq!(ulaw.len(), 8000);
    assert_eq!(ulaw, greeting, "pcmu must pass through untouched");
    assert!(events.contains(&AgentEvent::Transcript {
        speaker: Speaker::Agent,
        text: "Dobrý den".into(),
        is_final: true
    }));
    let create = fake.wait_for_json(WAIT, |m| m["type"] == "response.create").await.unwrap();
    let instructions = create["response"]["instructions"].as_str().unwrap();
    assert!(instructions.contains("Dobrý den, tady Kraliki."), "{instructions}");
}

#[tokio::test]
async fn caller_audio_reaches_the_server_as_base64_pcmu_unchanged() {
    let fake = FakeOpenAi::start().await.unwrap();
    let mut session = OpenAiSession::connect(&fake.config(), &session_config(None)).await.unwrap();
    let caller = tone_ulaw(1000.0, 200); // 10 frames of 20 ms
    for frame in caller.chunks(160) {
        session.send_audio(frame).await.unwrap();
    }
    let appends = fake
        .wait_for_frames(WAIT, 10, |f| f.json_type() == Some("input_audio_buffer.append"))
        .await
        .expect("10 appends");
    let mut received = Vec::new();
    for append in &appends {
        let bytes = B64.decode(append.json().unwrap()["audio"].as_str().unwrap()).unwrap();
        assert_eq!(bytes.len(), 160, "one 20 ms frame per append");
        received.extend(bytes);
    }
    assert_eq!(received, caller);
}

#[tokio::test]
async fn barge_in_reports_speech_started_and_truncates_the_played_item() {
    let fake = FakeOpenAi::start().await.unwrap();
    fake.push_all(FakeOpenAi::greeting_script("resp_1", "item_greet", &tone_ulaw(440.0, 3000), "Dobrý den"));
    fake.push(Step::Json(FakeOpenAi::speech_started("item_caller", 1200)));
    fake.push(Step::wait_for_type("conversation.item.truncate"));
    fake.push(Step::Json(FakeOpenAi::speech_stopped("item_caller", 2000)));
    fake.push(Step::Json(FakeOpenAi::input_transcription_completed("item_caller", "Kde je moje zásilka?")));
    let mut session =
        OpenAiSession::connect(&fake.config(), &session_config(Some("Dobrý den"))).await.unwrap();

    events_until(&mut session, |e| *e == AgentEvent::SpeechStarted).await;
    // The bridge has played 640 ms of the greeting when the caller cuts in.
    session.truncate("item_greet", 640).await.unwrap();
    let rest =
        events_until(&mut session, |e| matches!(e, AgentEvent::Transcript { is_final: true, .. })).await;
    assert_eq!(
        rest,
        [
            AgentEvent::SpeechStopped,
            AgentEvent::Transcript {
                speaker: Speaker::Caller,
                text: "Kde je moje zásilka?".into(),
                is_final: true
            }
        ]
    );
    let truncate = fake.wait_for_json(WAIT, |m| m["type"] == "conversation.item.truncate").await.unwrap();
    assert_eq!(
        truncate,
        json!({ "type": "conversation.item.truncate", "item_id": "item_greet", "content_index": 0, "audio_end_ms": 640 })
    );
}

#[tokio::test]
async fn tool_call_round_trip() {
    let fake = FakeOpenAi::start().await.unwrap();
    let args = json!({ "order_id": "A-17" });
    fake.push(Step::Json(FakeOpenAi::function_call_arguments_done(
        "resp_2",
        "item_fc",
        "call_42",
        "lookup_order",
        &args,
    )));
    fake.push(Step::wait_for_type("conversation.item.create"));
    fake.push(Step::wait_for_type("response.create"));
    fake.push(Step::Json(FakeOpenAi::response_created("resp_3")));
    fake.push(Step::Json(FakeOpenAi::audio_delta("resp_3", "item_answer", &[0xFF; 160])));
    fake.push(Step::Json(FakeOpenAi::response_done("resp_3", "completed")));
    let mut session = OpenAiSession::connect(&fake.config(), &session_config(None)).await.unwrap();

    let call = next_event(&mut session).await;
    assert_eq!(
        call,
        AgentEvent::ToolCall { call_id: "call_42".into(), name: "lookup_order".into(), arguments: args }
    );
    session.send_tool_result("call_42", json!({ "status": "shipped" })).await.unwrap();
    let answer = events_until(&mut session, |e| *e == AgentEvent::ResponseDone).await;
    assert_eq!(audio_out(&answer, Some("item_answer")), vec![0xFF; 160]);

    let sent = fake.received_json();
    let tail: Vec<&Value> = sent.iter().skip_while(|m| m["type"] != "conversation.item.create").collect();
    assert_eq!(
        *tail[0],
        json!({ "type": "conversation.item.create", "item": {
            "type": "function_call_output", "call_id": "call_42", "output": "{\"status\":\"shipped\"}" } })
    );
    assert_eq!(*tail[1], json!({ "type": "response.create" }));
}

#[tokio::test]
async fn provider_dropping_the_connection_yields_closed_then_nothing() {
    let fake = FakeOpenAi::start().await.unwrap();
    fake.push(Step::Json(FakeOpenAi::audio_delta("r", "i", &[0xFF; 160])));
    fake.push(Step::Drop);
    let mut session = OpenAiSession::connect(&fake.config(), &session_config(None)).await.unwrap();
    let events = events_until(&mut session, |e| matches!(e, AgentEvent::Closed { .. })).await;
    let Some(AgentEvent::Closed { reason }) = events.last() else { unreachable!() };
    assert!(reason.starts_with("connection lost"), "{reason}");
    assert_eq!(session.next_event().await, None);
    assert!(matches!(session.send_audio(&[0xFF; 160]).await, Err(AiError::Closed { .. })));
}

#[tokio::test]
async fn provider_close_frame_reason_is_reported() {
    let fake = FakeOpenAi::start().await.unwrap();
    fake.push(Step::close(1011, "server overloaded"));
    let mut session = OpenAiSession::connect(&fake.config(), &session_config(None)).await.unwrap();
    assert_eq!(
        next_event(&mut session).await,
        AgentEvent::Closed { reason: "provider closed the connection (1011): server overloaded".into() }
    );
}

#[tokio::test]
async fn malformed_frames_unknown_events_and_bad_base64_do_not_end_the_call() {
    let fake = FakeOpenAi::start().await.unwrap();
    fake.push_all([
        Step::Text("{not json".into()),
        Step::Json(json!({ "type": "response.output_audio.delta", "event_id": "e", "item_id": "i", "delta": "%%%not base64" })),
        Step::Json(json!({ "type": "response.output_audio.delta", "event_id": "e", "item_id": "i" })),
        Step::Json(json!({ "type": "some.event_from_the_future", "event_id": "e", "x": [1, 2] })),
        Step::Json(json!({ "no_type": true })),
        Step::Binary(vec![0, 1, 2]),
        Step::Json(FakeOpenAi::error("invalid_request_error", "invalid_value", "bad audio_end_ms")),
        Step::Json(FakeOpenAi::audio_delta("r", "i", &[0x7F; 160])),
    ]);
    let mut session = OpenAiSession::connect(&fake.config(), &session_config(None)).await.unwrap();
    let events = events_until(&mut session, |e| matches!(e, AgentEvent::AudioOut { .. })).await;
    let codes: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Error { code, .. } => Some(code.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        codes,
        [
            codes::MALFORMED_FRAME,
            codes::BAD_AUDIO,
            codes::MALFORMED_FRAME,
            codes::MALFORMED_FRAME,
            codes::MALFORMED_FRAME,
            "invalid_value"
        ]
    );
    assert_eq!(events.len(), codes.len() + 1, "the unknown event is ignored: {events:?}");
    // Still usable.
    session.send_audio(&[0xFF; 160]).await.unwrap();
    fake.wait_for_json(WAIT, |m| m["type"] == "input_audio_buffer.append")
        .await
        .expect("audio after garbage");
}

#[tokio::test]
async fn wrong_api_key_fails_to_connect_with_the_status() {
    let fake = FakeOpenAi::start().await.unwrap();
    let mut cfg = fake.config();
    cfg.api_key = "sk-wrong".into();
    let err = OpenAiSession::connect(&cfg, &session_config(None)).await.err().expect("refused");
    assert!(matches!(&err, AiError::Connect { message, .. } if message.contains("401")), "{err}");
    assert!(!err.to_string().contains("sk-wrong"), "the key must not leak into errors");
}

#[tokio::test]
async fn close_sends_a_close_frame_and_ends_the_stream() {
    let fake = FakeOpenAi::start().await.unwrap();
    let mut session = OpenAiSession::connect(&fake.config(), &session_config(None)).await.unwrap();
    session.close().await.unwrap();
    assert_eq!(next_event(&mut session).await, AgentEvent::Closed { reason: "closed by client".into() });
    fake.wait_for_frames(WAIT, 1, |f| matches!(f, ClientFrame::Close(Some((1000, _)))))
        .await
        .expect("a normal close frame");
}

/// Everything the adapter sends in a whole call, and everything the fake sends back, must be
/// valid to the `openai` package's own event types.
#[tokio::test]
async fn every_message_validates_against_the_openai_sdk() {
    let fake = FakeOpenAi::start().await.unwrap();
    fake.push_all(FakeOpenAi::greeting_script("resp_1", "item_greet", &tone_ulaw(440.0, 300), "Dobrý den"));
    fake.push(Step::Json(FakeOpenAi::speech_started("item_caller", 100)));
    fake.push(Step::Json(FakeOpenAi::speech_stopped("item_caller", 900)));
    fake.push(Step::Json(FakeOpenAi::input_transcription_completed("item_caller", "Objednávka A-17")));
    fake.push(Step::Json(FakeOpenAi::function_call_arguments_done(
        "resp_2",
        "item_fc",
        "call_1",
        "lookup_order",
        &json!({ "order_id": "A-17" }),
    )));
    fake.push(Step::Json(FakeOpenAi::response_done("resp_2", "completed")));
    fake.push(Step::Json(FakeOpenAi::error("invalid_request_error", "invalid_value", "x")));
    let mut session =
        OpenAiSession::connect(&fake.config(), &session_config(Some("Dobrý den"))).await.unwrap();
    for frame in tone_ulaw(300.0, 60).chunks(160) {
        session.send_audio(frame).await.unwrap();
    }
    session.truncate("item_greet", 200).await.unwrap();
    let events = events_until(&mut session, |e| matches!(e, AgentEvent::ToolCall { .. })).await;
    assert!(events.contains(&AgentEvent::SpeechStarted));
    session.send_tool_result("call_1", json!({ "status": "shipped" })).await.unwrap();
    session.say("Děkujeme, nashledanou.").await.unwrap();
    let received = fake.wait_for_frames(WAIT, 9, |f| f.json().is_some()).await.expect("all client events");

    assert_eq!(
        types(&received.iter().filter_map(|f| f.json().cloned()).collect::<Vec<_>>()),
        [
            "session.update",
            "response.create",
            "input_audio_buffer.append",
            "input_audio_buffer.append",
            "input_audio_buffer.append",
            "conversation.item.truncate",
            "conversation.item.create",
            "response.create",
            "response.create",
        ]
    );
    // A bare configuration (no prompt, tools, language or greeting) must be valid too.
    let bare = OpenAiSession::connect(&fake.config(), &SessionConfig::default()).await.unwrap();
    drop(bare);
    let mut records = tagged("client", fake.received_json());
    records.extend(tagged("server", fake.sent_json()));
    assert_eq!(records.iter().filter(|r| r["message"]["type"] == "session.update").count(), 2);
    let bad = json!({ "direction": "client", "message": { "type": "input_audio_buffer.append", "audio": "AAAA", "sample_rate": 8000 } });
    assert_oracle_accepts(Oracle::OpenAi, &records, bad);
}
