//! Deepgram Voice Agent adapter against the fake server.

use std::time::Duration;

use kraliki_voice::ai::{
    self, codes, AgentEvent, AgentSession, AiError, DeepgramAgentSession, Provider, ProviderConfig,
    SessionConfig, Speaker,
};
use kraliki_voice::testing::{ClientFrame, FakeDeepgramAgent, Step};
use serde_json::{json, Value};

use crate::helpers::*;

fn types(messages: &[Value]) -> Vec<&str> {
    messages.iter().filter_map(|m| m["type"].as_str()).collect()
}

fn error_codes(events: &[AgentEvent]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Error { code, .. } => Some(code.as_str()),
            _ => None,
        })
        .collect()
}

/// Waits for `n` keep-alives while reading the session's events (a link may send keep-alives
/// only while [`AgentSession::next_event`] waits), failing the test if the session ends.
async fn keepalives(fake: &FakeDeepgramAgent, session: &mut dyn AgentSession, n: usize) -> Vec<ClientFrame> {
    let wait = fake.wait_for_frames(WAIT, n, |f| f.json_type() == Some("KeepAlive"));
    while_reading(session, wait).await.expect("keep-alives")
}

fn agent_said(text: &str) -> AgentEvent {
    AgentEvent::Transcript { speaker: Speaker::Agent, text: text.into(), is_final: true }
}

fn caller_said(text: &str) -> AgentEvent {
    AgentEvent::Transcript { speaker: Speaker::Caller, text: text.into(), is_final: true }
}

#[tokio::test]
async fn connects_with_token_auth_and_configures_mulaw_the_agent_and_its_functions() {
    let fake = FakeDeepgramAgent::start().await.unwrap();
    let mut config = session_config(Some("Dobrý den, tady Kraliki."));
    config.voice = Some("aura-2-odysseus-en".into());
    let session = DeepgramAgentSession::connect(&fake.config(), &config).await.unwrap();
    assert_eq!(session.provider(), Provider::Deepgram);

    let conn = &fake.connections()[0];
    assert_eq!(conn.path, "/v1/agent/converse");
    assert_eq!(conn.header("authorization"), Some("Token test-fake-deepgram-agent-key"));
    assert_eq!(types(&fake.sent_json())[..2], ["Welcome", "SettingsApplied"]);
    let first = &fake.received_json()[0];
    assert_eq!(Some(first), fake.settings().as_ref(), "Settings go first");
    assert_eq!(
        *first,
        json!({
            "type": "Settings",
            "audio": {
                "input": { "encoding": "mulaw", "sample_rate": 8000 },
                "output": { "encoding": "mulaw", "sample_rate": 8000, "container": "none" },
            },
            "agent": {
                "listen": { "provider": { "version": "v1", "type": "deepgram", "model": "nova-3", "language": "cs-CZ" } },
                "think": {
                    "provider": { "type": "open_ai", "model": "gpt-4o-mini" },
                    "prompt": config.instructions,
                    "functions": [{
                        "name": "lookup_order",
                        "description": "Finds an order by its number.",
                        "parameters": config.tools[0].parameters,
                    }],
                },
                "speak": { "provider": { "type": "deepgram", "model": "aura-2-odysseus-en" } },
                "greeting": "Dobrý den, tady Kraliki.",
            },
        })
    );
    drop(session);
}

#[tokio::test]
async fn greeting_is_spoken_by_deepgram_and_arrives_byte_exact_as_one_turn() {
    let fake = FakeDeepgramAgent::start().await.unwrap();
    let speech = tone_ulaw(440.0, 1500); // 12 000 bytes, 15 binary frames
    fake.set_speech(speech.clone());
    let mut session =
        DeepgramAgentSession::connect(&fake.config(), &session_config(Some("Dobrý den, tady Kraliki.")))
            .await
            .unwrap();
    let events = events_until(&mut session, |e| *e == AgentEvent::ResponseDone).await;
    assert_eq!(events[0], agent_said("Dobrý den, tady Kraliki."));
    assert_eq!(events.len(), 1 + 15 + 1, "{events:?}");
    assert_eq!(audio_out(&events, Some("agent_turn_1")), speech, "μ-law must pass through untouched");
    assert!(fake.injected().is_empty(), "the greeting is part of the settings, not injected");
}

#[tokio::test]
async fn caller_audio_reaches_deepgram_as_binary_mulaw_unchanged() {
    let fake = FakeDeepgramAgent::start().await.unwrap();
    let mut session = DeepgramAgentSession::connect(&fake.config(), &session_config(None)).await.unwrap();
    let caller = tone_ulaw(1000.0, 200);
    for frame in caller.chunks(160) {
        session.send_audio(frame).await.unwrap();
    }
    session.send_audio(&[]).await.unwrap(); // nothing to send
    let frames =
        fake.wait_for_frames(WAIT, 10, |f| matches!(f, ClientFrame::Binary(_))).await.expect("10 frames");
    assert!(frames.iter().all(|f| matches!(f, ClientFrame::Binary(b) if b.len() == 160)));
    assert_eq!(fake.audio_received(), caller);
    assert!(!fake.received().iter().any(|f| matches!(f, ClientFrame::Binary(b) if b.is_empty())));
}

#[tokio::test]
async fn barge_in_reports_speech_started_and_the_next_turn_is_a_new_item() {
    let fake = FakeDeepgramAgent::start().await.unwrap();
    let first = tone_ulaw(440.0, 200);
    fake.push_all([
        Step::Json(FakeDeepgramAgent::conversation_text("assistant", "Dobrý den, jak vám mohu pomoci?")),
        Step::Json(FakeDeepgramAgent::agent_started_speaking()),
        Step::Binary(first[..800].to_vec()),
        Step::Binary(first[800..].to_vec()),
        // The caller cuts in before the agent is done: Deepgram stops and sends no AgentAudioDone.
        Step::Json(FakeDeepgramAgent::user_started_speaking()),
        Step::Json(FakeDeepgramAgent::conversation_text("user", "Kde je moje zásilka?")),
    ]);
    fake.push_all(FakeDeepgramAgent::agent_turn("Podívám se.", &[0x7F; 800]));
    let mut session = DeepgramAgentSession::connect(&fake.config(), &session_config(None)).await.unwrap();

    let before = events_until(&mut session, |e| *e == AgentEvent::SpeechStarted).await;
    assert_eq!(before[0], agent_said("Dobrý den, jak vám mohu pomoci?"));
    assert_eq!(audio_out(&before, Some("agent_turn_1")), first);
    // The bridge truncates what the caller heard; Deepgram already stopped, so nothing goes out.
    session.truncate("agent_turn_1", 100).await.unwrap();
    let after = events_until(&mut session, |e| *e == AgentEvent::ResponseDone).await;
    assert_eq!(after[..2], [caller_said("Kde je moje zásilka?"), agent_said("Podívám se.")]);
    assert_eq!(audio_out(&after, Some("agent_turn_2")), vec![0x7F; 800]);
    assert_eq!(types(&fake.received_json()), ["Settings"]);
}

#[tokio::test]
async fn conversation_text_becomes_final_transcripts_and_the_rest_is_ignored() {
    let fake = FakeDeepgramAgent::start().await.unwrap();
    fake.push_all([
        Step::Json(FakeDeepgramAgent::conversation_text("user", "Dobrý den, volám kvůli objednávce.")),
        Step::Json(FakeDeepgramAgent::agent_thinking("The caller asks about an order.")),
        Step::Json(FakeDeepgramAgent::history("user", "Dobrý den, volám kvůli objednávce.")),
        Step::Json(FakeDeepgramAgent::conversation_text("assistant", "Jaké je číslo objednávky?")),
        Step::Json(FakeDeepgramAgent::prompt_updated()),
        Step::Json(FakeDeepgramAgent::speak_updated()),
        Step::Json(json!({ "type": "LatencyReport", "total_latency": 0.8 })),
        Step::Json(json!({ "type": "SomethingFromTheFuture", "x": [1, 2] })),
        Step::Json(FakeDeepgramAgent::agent_audio_done()),
    ]);
    let mut session = DeepgramAgentSession::connect(&fake.config(), &session_config(None)).await.unwrap();
    let events = events_until(&mut session, |e| *e == AgentEvent::ResponseDone).await;
    assert_eq!(
        events,
        [
            caller_said("Dobrý den, volám kvůli objednávce."),
            agent_said("Jaké je číslo objednávky?"),
            AgentEvent::ResponseDone
        ]
    );
}

#[tokio::test]
async fn function_call_round_trip() {
    let fake = FakeDeepgramAgent::start().await.unwrap();
    let args = json!({ "order_id": "A-17" });
    fake.push(fake.client_function_call("fc_1", "lookup_order", &args));
    fake.push(Step::wait_for_type("FunctionCallResponse"));
    fake.push_all(FakeDeepgramAgent::agent_turn("Objednávka A-17 je na cestě.", &[0xFF; 800]));
    let mut session = DeepgramAgentSession::connect(&fake.config(), &session_config(None)).await.unwrap();

    let call = next_event(&mut session).await;
    assert_eq!(
        call,
        AgentEvent::ToolCall { call_id: "fc_1".into(), name: "lookup_order".into(), arguments: args }
    );
    session.send_tool_result("fc_1", json!({ "status": "shipped" })).await.unwrap();
    let answer = events_until(&mut session, |e| *e == AgentEvent::ResponseDone).await;
    assert_eq!(answer[0], agent_said("Objednávka A-17 je na cestě."));
    assert_eq!(audio_out(&answer, Some("agent_turn_1")), vec![0xFF; 800]);

    assert_eq!(
        fake.function_call_responses(),
        [
            json!({ "type": "FunctionCallResponse", "id": "fc_1", "name": "lookup_order", "content": "{\"status\":\"shipped\"}" })
        ]
    );
    assert!(fake.pending_function_calls().is_empty());
    assert!(!types(&fake.sent_json()).contains(&"Error"), "the fake accepted the response");
    // Answered once; a second answer is refused here rather than sent.
    let again = session.send_tool_result("fc_1", json!({})).await;
    assert!(matches!(again, Err(AiError::Unsupported { .. })), "{again:?}");
}

#[tokio::test]
async fn server_side_calls_are_left_to_deepgram_and_cancelled_calls_are_reported() {
    let fake = FakeDeepgramAgent::start().await.unwrap();
    fake.push(Step::Json(FakeDeepgramAgent::function_call_request("srv_1", "get_weather", "{}", false)));
    fake.push(fake.client_function_call("fc_2", "lookup_order", &json!({ "order_id": "B-2" })));
    fake.push(Step::Json(FakeDeepgramAgent::function_call_cancelled("fc_2", "lookup_order")));
    fake.push(fake.client_function_call("fc_3", "lookup_order", &json!({ "order_id": "C-3" })));
    let mut session = DeepgramAgentSession::connect(&fake.config(), &session_config(None)).await.unwrap();

    let events = events_until(
        &mut session,
        |e| matches!(e, AgentEvent::ToolCall { call_id, .. } if call_id == "fc_3"),
    )
    .await;
    assert_eq!(events.len(), 3, "the server-side call is not ours: {events:?}");
    assert!(matches!(&events[0], AgentEvent::ToolCall { call_id, .. } if call_id == "fc_2"));
    assert_eq!(events[1], AgentEvent::ToolCallsCancelled { call_ids: vec!["fc_2".into()] });
    assert!(matches!(session.send_tool_result("fc_2", json!({})).await, Err(AiError::Unsupported { .. })));
    assert!(matches!(session.send_tool_result("srv_1", json!({})).await, Err(AiError::Unsupported { .. })));
    // A string result is the content as is.
    session.send_tool_result("fc_3", json!("not found")).await.unwrap();
    let response = fake.wait_for_json(WAIT, |m| m["type"] == "FunctionCallResponse").await.unwrap();
    assert_eq!(
        response,
        json!({ "type": "FunctionCallResponse", "id": "fc_3", "name": "lookup_order", "content": "not found" })
    );
}

#[tokio::test]
async fn say_injects_an_agent_message_and_a_refusal_is_an_error_event() {
    let fake = FakeDeepgramAgent::start().await.unwrap();
    fake.set_speech(vec![0x55; 1600]);
    let mut session = DeepgramAgentSession::connect(&fake.config(), &session_config(None)).await.unwrap();
    session.say("Děkujeme, nashledanou.").await.unwrap();
    let events = events_until(&mut session, |e| *e == AgentEvent::ResponseDone).await;
    assert_eq!(events[0], agent_said("Děkujeme, nashledanou."));
    assert_eq!(audio_out(&events, Some("agent_turn_1")), vec![0x55; 1600]);
    assert_eq!(fake.injected(), ["Děkujeme, nashledanou."]);
    assert_eq!(
        fake.received_json()[1],
        json!({ "type": "InjectAgentMessage", "message": "Děkujeme, nashledanou." })
    );

    fake.push(Step::Json(FakeDeepgramAgent::injection_refused("The user is currently speaking.")));
    assert_eq!(
        next_event(&mut session).await,
        AgentEvent::Error {
            code: codes::INJECTION_REFUSED.into(),
            message: "The user is currently speaking.".into()
        }
    );
}

#[tokio::test]
async fn rejected_settings_fail_the_connect_with_deepgrams_reason() {
    let fake = FakeDeepgramAgent::start().await.unwrap();
    fake.reject_settings("INVALID_SETTINGS", "think provider unavailable");
    let err =
        DeepgramAgentSession::connect(&fake.config(), &session_config(None)).await.err().expect("rejected");
    assert!(
        matches!(&err, AiError::Rejected { provider: Provider::Deepgram, message }
            if message == "INVALID_SETTINGS: think provider unavailable"),
        "{err}"
    );

    // Settings the fake itself finds wrong.
    let fake = FakeDeepgramAgent::start().await.unwrap();
    let mut cfg = fake.config();
    cfg.think_model = String::new();
    let err = DeepgramAgentSession::connect(&cfg, &session_config(None)).await.err().expect("rejected");
    assert!(
        matches!(&err, AiError::Rejected { message, .. } if message.contains("/agent/think/provider/model")),
        "{err}"
    );
}

#[tokio::test]
async fn wrong_api_key_fails_to_connect_with_the_status() {
    let fake = FakeDeepgramAgent::start().await.unwrap();
    let mut cfg = fake.config();
    cfg.api_key = "dg-wrong".into();
    let err = DeepgramAgentSession::connect(&cfg, &session_config(None)).await.err().expect("refused");
    assert!(
        matches!(&err, AiError::Connect { message, .. } if message.contains("401") && message.contains("INVALID_AUTH")),
        "{err}"
    );
    assert!(!err.to_string().contains("dg-wrong"), "the key must not leak into errors");
}

#[tokio::test]
async fn provider_dropping_mid_call_yields_closed_with_a_reason_then_nothing() {
    let fake = FakeDeepgramAgent::start().await.unwrap();
    fake.push_all([
        Step::Json(FakeDeepgramAgent::agent_started_speaking()),
        Step::Binary(vec![0xFF; 160]),
        Step::Drop,
    ]);
    let mut session = DeepgramAgentSession::connect(&fake.config(), &session_config(None)).await.unwrap();
    let events = events_until(&mut session, |e| matches!(e, AgentEvent::Closed { .. })).await;
    assert_eq!(audio_out(&events, Some("agent_turn_1")), vec![0xFF; 160]);
    let Some(AgentEvent::Closed { reason }) = events.last() else { unreachable!() };
    assert!(reason.starts_with("connection lost"), "{reason}");
    assert_eq!(session.next_event().await, None);
    assert!(matches!(session.send_audio(&[0xFF; 160]).await, Err(AiError::Closed { .. })));
    assert!(matches!(session.say("haló").await, Err(AiError::Closed { .. })));
}

#[tokio::test]
async fn provider_close_frame_reason_is_reported() {
    let fake = FakeDeepgramAgent::start().await.unwrap();
    fake.push(Step::close(1011, "agent crashed"));
    let mut session = DeepgramAgentSession::connect(&fake.config(), &session_config(None)).await.unwrap();
    assert_eq!(
        next_event(&mut session).await,
        AgentEvent::Closed { reason: "provider closed the connection (1011): agent crashed".into() }
    );
}

#[tokio::test]
async fn malformed_frames_and_provider_errors_become_error_events_not_a_dead_call() {
    let fake = FakeDeepgramAgent::start().await.unwrap();
    fake.push_all([
        Step::Text("{not json".into()),
        Step::Json(json!({ "type": "ConversationText", "role": "user" })),
        Step::Json(json!({ "no_type": true })),
        Step::Json(json!({ "type": "FunctionCallRequest", "functions": "lookup_order" })),
        Step::Json(FakeDeepgramAgent::function_call_request("fc_bad", "lookup_order", "[1", true)),
        Step::Json(FakeDeepgramAgent::error("FAILED_TO_THINK", "the LLM did not answer")),
        Step::Json(FakeDeepgramAgent::warning("SLOW_TTS", "speech is delayed")),
        Step::Json(json!({ "type": "SomethingNew" })),
        Step::Json(FakeDeepgramAgent::conversation_text("user", "haló")),
    ]);
    let mut session = DeepgramAgentSession::connect(&fake.config(), &session_config(None)).await.unwrap();
    let events = events_until(&mut session, |e| matches!(e, AgentEvent::Transcript { .. })).await;
    assert_eq!(
        error_codes(&events),
        [
            codes::MALFORMED_FRAME,
            codes::MALFORMED_FRAME,
            codes::MALFORMED_FRAME,
            codes::MALFORMED_FRAME,
            codes::BAD_TOOL_ARGUMENTS,
            "FAILED_TO_THINK",
            "SLOW_TTS"
        ]
    );
    assert_eq!(events.len(), 8, "the unknown message is ignored: {events:?}");
    assert!(events.contains(&AgentEvent::Error {
        code: "FAILED_TO_THINK".into(),
        message: "the LLM did not answer".into()
    }));
    assert_eq!(events[7], caller_said("haló"));
    // Still usable.
    session.send_audio(&[0xFF; 160]).await.unwrap();
    fake.wait_for_frames(WAIT, 1, |f| matches!(f, ClientFrame::Binary(_)))
        .await
        .expect("audio after garbage");
}

#[tokio::test]
async fn keepalive_is_sent_while_nothing_else_goes_out() {
    let fake = FakeDeepgramAgent::start().await.unwrap();
    let mut cfg = fake.config();
    cfg.keepalive_every = Duration::from_millis(50);
    let mut session = DeepgramAgentSession::connect(&cfg, &session_config(None)).await.unwrap();
    let keepalives = keepalives(&fake, &mut session, 2).await;
    assert_eq!(keepalives[0], ClientFrame::Json(json!({ "type": "KeepAlive" })));
    assert!(!types(&fake.sent_json()).contains(&"Error"));
}

#[tokio::test]
async fn close_sends_a_close_frame_and_ends_the_stream() {
    let fake = FakeDeepgramAgent::start().await.unwrap();
    let mut session = DeepgramAgentSession::connect(&fake.config(), &session_config(None)).await.unwrap();
    session.send_audio(&[0xFF; 160]).await.unwrap();
    session.close().await.unwrap();
    assert_eq!(next_event(&mut session).await, AgentEvent::Closed { reason: "closed by client".into() });
    assert_eq!(session.next_event().await, None);
    fake.wait_for_frames(WAIT, 1, |f| matches!(f, ClientFrame::Close(Some((1000, _)))))
        .await
        .expect("a normal close frame");
    assert_eq!(fake.audio_received(), vec![0xFF; 160]);
}

#[tokio::test]
async fn connect_picks_the_voice_agent_from_the_provider_config() {
    let fake = FakeDeepgramAgent::start().await.unwrap();
    let provider = ProviderConfig::DeepgramAgent(fake.config());
    assert_eq!(provider.provider(), Provider::Deepgram);
    let mut session = ai::connect(&provider, &session_config(Some("Ahoj"))).await.unwrap();
    assert_eq!(session.provider(), Provider::Deepgram);
    let events = events_until(session.as_mut(), |e| *e == AgentEvent::ResponseDone).await;
    assert_eq!(events[0], agent_said("Ahoj"));
    assert_eq!(fake.connections()[0].path, FakeDeepgramAgent::PATH);
}

/// Everything the adapter sends in a whole call (and a bare configuration), and everything the
/// fake sends back, must be valid to deepgram-sdk's agent v1 types.
#[tokio::test]
async fn every_message_validates_against_the_deepgram_agent_sdk() {
    let fake = FakeDeepgramAgent::start().await.unwrap();
    fake.set_speech(tone_ulaw(440.0, 300));
    fake.push_all([
        Step::Json(FakeDeepgramAgent::user_started_speaking()),
        Step::Json(FakeDeepgramAgent::conversation_text("user", "Objednávka A-17")),
        Step::Json(FakeDeepgramAgent::history("user", "Objednávka A-17")),
        Step::Json(FakeDeepgramAgent::agent_thinking("Looking it up.")),
        fake.client_function_call("fc_1", "lookup_order", &json!({ "order_id": "A-17" })),
        Step::wait_for_type("FunctionCallResponse"),
        Step::Json(FakeDeepgramAgent::function_call_request("srv_1", "get_weather", "{}", false)),
        Step::Json(FakeDeepgramAgent::function_call_cancelled("srv_1", "get_weather")),
        Step::Json(FakeDeepgramAgent::prompt_updated()),
        Step::Json(FakeDeepgramAgent::speak_updated()),
        Step::Json(FakeDeepgramAgent::injection_refused("busy")),
        Step::Json(FakeDeepgramAgent::warning("SLOW_TTS", "x")),
        Step::Json(FakeDeepgramAgent::error("FAILED_TO_THINK", "x")),
    ]);
    fake.push_all(FakeDeepgramAgent::agent_turn("Je na cestě.", &[0xFF; 400]));
    let mut cfg = fake.config();
    cfg.keepalive_every = Duration::from_millis(50);
    let mut session = DeepgramAgentSession::connect(&cfg, &session_config(Some("Dobrý den"))).await.unwrap();
    for frame in tone_ulaw(300.0, 60).chunks(160) {
        session.send_audio(frame).await.unwrap();
    }
    events_until(&mut session, |e| matches!(e, AgentEvent::ToolCall { .. })).await;
    session.send_tool_result("fc_1", json!({ "status": "shipped" })).await.unwrap();
    events_until(
        &mut session,
        |e| matches!(e, AgentEvent::Transcript { text, .. } if text == "Je na cestě."),
    )
    .await;
    session.say("Děkujeme, nashledanou.").await.unwrap();
    events_until(&mut session, |e| *e == AgentEvent::ResponseDone).await;
    keepalives(&fake, &mut session, 1).await;
    session.close().await.unwrap();
    // A bare configuration (no prompt, tools, language, voice or greeting) must be valid too.
    let bare = DeepgramAgentSession::connect(&fake.config(), &SessionConfig::default()).await.unwrap();
    drop(bare);

    let sent = fake.received_json();
    let mut kinds = types(&sent);
    kinds.sort_unstable();
    kinds.dedup();
    assert_eq!(kinds, ["FunctionCallResponse", "InjectAgentMessage", "KeepAlive", "Settings"]);
    assert_eq!(types(&sent).iter().filter(|t| **t == "Settings").count(), 2);
    let mut records = tagged("client", sent);
    records.extend(tagged("server", fake.sent_json()));
    let bad = json!({ "direction": "client", "message": { "type": "InjectAgentMessage", "content": "hi" } });
    assert_oracle_accepts(Oracle::DeepgramAgent, &records, bad);
}
