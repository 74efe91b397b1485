//! Gemini Live adapter against the fake server.

use std::time::Duration;

use base64::Engine as _;
use kraliki_voice::ai::{codes, AgentEvent, AgentSession, AiError, GeminiSession, SessionConfig, Speaker};
use kraliki_voice::audio;
use kraliki_voice::testing::{FakeGemini, Step};
use serde_json::{json, Value};

use crate::helpers::*;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

#[tokio::test]
async fn setup_carries_model_prompt_tools_audio_modality_and_key_header() {
    let fake = FakeGemini::start().await.unwrap();
    let mut config = session_config(None);
    config.voice = Some("Kore".into());
    let session = GeminiSession::connect(&fake.config(), &config).await.unwrap();

    let conn = &fake.connections()[0];
    assert_eq!(conn.path, FakeGemini::PATH);
    assert_eq!(conn.header("x-goog-api-key"), Some(FakeGemini::API_KEY));
    assert!(conn.query.is_empty(), "the key goes in the header, not the URL: {:?}", conn.query);
    let setup = &fake.received_json()[0]["setup"];
    assert!(setup["model"].as_str().unwrap().starts_with("models/"));
    assert_eq!(setup["generationConfig"]["responseModalities"], json!(["AUDIO"]));
    assert_eq!(
        setup["generationConfig"]["speechConfig"]["voiceConfig"]["prebuiltVoiceConfig"]["voiceName"],
        "Kore"
    );
    assert_eq!(setup["generationConfig"]["speechConfig"]["languageCode"], "cs-CZ");
    assert_eq!(setup["systemInstruction"]["parts"][0]["text"], config.instructions);
    assert_eq!(setup["tools"][0]["functionDeclarations"][0]["name"], "lookup_order");
    assert_eq!(
        setup["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"],
        config.tools[0].parameters
    );
    assert_eq!(setup["inputAudioTranscription"], json!({}));
    drop(session);
}

#[tokio::test]
async fn no_audio_is_sent_before_setup_complete() {
    let fake = FakeGemini::start_without_setup_reply().await.unwrap();
    let cfg = fake.config();
    let connecting = tokio::spawn(async move {
        let mut session = GeminiSession::connect(&cfg, &session_config(None)).await?;
        session.send_audio(&[0xFF; 160]).await?;
        Ok::<_, AiError>(session)
    });
    fake.wait_for_json(WAIT, |m| m.get("setup").is_some()).await.expect("setup");
    // A negative check needs a window: a client that did not wait would send at once.
    let early = fake.wait_for_json(Duration::from_millis(300), |m| m.get("setup").is_none()).await;
    assert_eq!(early, None, "sent before setupComplete");
    assert!(!connecting.is_finished(), "connect returned before setupComplete");
    fake.push(Step::Json(FakeGemini::setup_complete()));
    let _session = connecting.await.unwrap().unwrap();
    fake.wait_for_json(WAIT, |m| m.get("realtimeInput").is_some()).await.expect("audio after setupComplete");
}

#[tokio::test]
async fn setup_rejected_with_a_close_frame_fails_connect_with_the_reason() {
    let fake = FakeGemini::start_without_setup_reply().await.unwrap();
    fake.push(Step::wait_for_key("setup"));
    fake.push(Step::close(1007, "Request contains an invalid argument."));
    let err = GeminiSession::connect(&fake.config(), &session_config(None)).await.err().expect("rejected");
    assert!(
        matches!(&err, AiError::Rejected { message, .. } if message.contains("1007") && message.contains("invalid argument")),
        "{err}"
    );
}

#[tokio::test]
async fn a_provider_that_never_completes_setup_times_out() {
    let fake = FakeGemini::start_without_setup_reply().await.unwrap();
    let mut cfg = fake.config();
    cfg.connect_timeout = Duration::from_millis(300);
    let err = GeminiSession::connect(&cfg, &session_config(None)).await.err().expect("timed out");
    assert!(matches!(err, AiError::Timeout { .. }), "{err}");
}

#[tokio::test]
async fn greeting_audio_24k_arrives_as_ulaw_8k_of_a_third_the_samples() {
    let fake = FakeGemini::start().await.unwrap();
    let pcm24k = tone(440.0, 24_000, 24_000, 8_000.0); // 1 s
    fake.push_all(FakeGemini::greeting_script(&pcm24k, "Dobrý den"));
    let mut session =
        GeminiSession::connect(&fake.config(), &session_config(Some("Dobrý den, tady Kraliki.")))
            .await
            .unwrap();

    let events = events_until(&mut session, |e| *e == AgentEvent::ResponseDone).await;
    let ulaw = audio_out(&events, None);
    assert_eq!(ulaw.len(), 8_000, "1 s of 8 kHz μ-law");
    let pcm8k = audio::decode_ulaw(&ulaw);
    let f = frequency(&pcm8k, 8_000, 100);
    assert!((f - 440.0).abs() < 10.0, "the tone survives resampling: {f} Hz");
    let level = rms(&pcm8k[100..]) / rms(&pcm24k);
    assert!((0.95..1.05).contains(&level), "level kept: {level}");
    assert!(events.contains(&AgentEvent::Transcript {
        speaker: Speaker::Agent,
        text: "Dobrý den".into(),
        is_final: true
    }));
    let prompt = fake.wait_for_json(WAIT, |m| m.get("clientContent").is_some()).await.unwrap();
    assert_eq!(prompt["clientContent"]["turnComplete"], true);
    assert!(prompt["clientContent"]["turns"][0]["parts"][0]["text"]
        .as_str()
        .unwrap()
        .contains("tady Kraliki"));
}

#[tokio::test]
async fn caller_audio_reaches_the_server_as_16k_pcm_with_twice_the_samples() {
    let fake = FakeGemini::start().await.unwrap();
    let mut session = GeminiSession::connect(&fake.config(), &session_config(None)).await.unwrap();
    let caller = tone_ulaw(1000.0, 200);
    for frame in caller.chunks(160) {
        session.send_audio(frame).await.unwrap();
    }
    let inputs =
        fake.wait_for_frames(WAIT, 10, |f| f.json().is_some_and(|m| m.get("realtimeInput").is_some())).await;
    let mut pcm16k = Vec::new();
    for input in inputs.expect("10 realtimeInput messages") {
        let audio_in = &input.json().unwrap()["realtimeInput"]["audio"];
        assert_eq!(audio_in["mimeType"], "audio/pcm;rate=16000");
        let bytes = B64.decode(audio_in["data"].as_str().unwrap()).unwrap();
        assert_eq!(bytes.len(), 640, "160 μ-law samples → 320 PCM16 samples at 16 kHz");
        assert!(audio::pcm16_from_le_bytes(&bytes, &mut pcm16k));
    }
    assert_eq!(pcm16k.len(), 3_200);
    let f = frequency(&pcm16k, 16_000, 200);
    assert!((f - 1000.0).abs() < 15.0, "{f} Hz");
    let level = rms(&pcm16k[200..]) / rms(&audio::decode_ulaw(&caller));
    assert!((0.95..1.05).contains(&level), "level kept: {level}");
}

#[tokio::test]
async fn interruption_and_transcripts_are_reported() {
    let fake = FakeGemini::start().await.unwrap();
    fake.push_all([
        Step::Json(FakeGemini::audio(&tone(440.0, 24_000, 960, 8_000.0), 24_000)),
        Step::Json(FakeGemini::input_transcription("Počkejte", false)),
        Step::Json(FakeGemini::interrupted()),
        Step::Json(FakeGemini::input_transcription("Počkejte, prosím.", true)),
        Step::Json(FakeGemini::audio(&[0; 480], 24_000)),
        Step::Json(FakeGemini::turn_complete()),
    ]);
    let mut session = GeminiSession::connect(&fake.config(), &session_config(None)).await.unwrap();
    let events = events_until(&mut session, |e| *e == AgentEvent::ResponseDone).await;
    assert_eq!(events.len(), 7, "{events:?}");
    assert!(matches!(&events[0], AgentEvent::AudioOut { ulaw_8k, .. } if ulaw_8k.len() == 320));
    assert_eq!(
        events[1],
        AgentEvent::Transcript { speaker: Speaker::Caller, text: "Počkejte".into(), is_final: false }
    );
    assert_eq!(events[2], AgentEvent::Interrupted);
    assert_eq!(
        events[3],
        AgentEvent::Transcript {
            speaker: Speaker::Caller,
            text: "Počkejte, prosím.".into(),
            is_final: false
        }
    );
    // The closing chunk repeats the turn so far: the segment is that text, not twice over.
    assert_eq!(
        events[4],
        AgentEvent::Transcript {
            speaker: Speaker::Caller, text: "Počkejte, prosím.".into(), is_final: true
        }
    );
    // After the interruption the resampler starts from silence: zeros in, μ-law silence out.
    assert_eq!(events[5], AgentEvent::AudioOut { ulaw_8k: vec![0xFF; 160], item_id: None });
}

#[tokio::test]
async fn tool_call_round_trip_and_cancellation() {
    let fake = FakeGemini::start().await.unwrap();
    let args = json!({ "order_id": "A-17" });
    fake.push(Step::Json(FakeGemini::tool_call("fc_1", "lookup_order", &args)));
    fake.push(Step::wait_for_key("toolResponse"));
    fake.push(Step::Json(FakeGemini::tool_call("fc_2", "lookup_order", &json!({ "order_id": "B-2" }))));
    fake.push(Step::Json(FakeGemini::tool_call_cancellation(&["fc_2"])));
    let mut session = GeminiSession::connect(&fake.config(), &session_config(None)).await.unwrap();

    assert_eq!(
        next_event(&mut session).await,
        AgentEvent::ToolCall { call_id: "fc_1".into(), name: "lookup_order".into(), arguments: args }
    );
    session.send_tool_result("fc_1", json!("shipped")).await.unwrap();
    let response = fake.wait_for_json(WAIT, |m| m.get("toolResponse").is_some()).await.unwrap();
    assert_eq!(
        response,
        json!({ "toolResponse": { "functionResponses": [
            { "id": "fc_1", "name": "lookup_order", "response": { "output": "shipped" } }
        ] } })
    );
    assert!(
        matches!(next_event(&mut session).await, AgentEvent::ToolCall { call_id, .. } if call_id == "fc_2")
    );
    assert_eq!(
        next_event(&mut session).await,
        AgentEvent::ToolCallsCancelled { call_ids: vec!["fc_2".into()] }
    );
}

#[tokio::test]
async fn provider_drop_and_close_frames_end_the_stream_with_a_reason() {
    let fake = FakeGemini::start().await.unwrap();
    fake.push(Step::Json(FakeGemini::go_away("10s")));
    fake.push(Step::Drop);
    let mut session = GeminiSession::connect(&fake.config(), &session_config(None)).await.unwrap();
    assert!(
        matches!(next_event(&mut session).await, AgentEvent::Error { code, message } if code == codes::GOING_AWAY && message.contains("10s"))
    );
    assert!(
        matches!(next_event(&mut session).await, AgentEvent::Closed { reason } if reason.starts_with("connection lost"))
    );
    assert_eq!(session.next_event().await, None);

    let fake = FakeGemini::start().await.unwrap();
    fake.push(Step::close(1011, "Internal error encountered."));
    let mut session = GeminiSession::connect(&fake.config(), &session_config(None)).await.unwrap();
    assert_eq!(
        next_event(&mut session).await,
        AgentEvent::Closed {
            reason: "provider closed the connection (1011): Internal error encountered.".into()
        }
    );
}

#[tokio::test]
async fn malformed_messages_bad_base64_and_unknown_fields_do_not_end_the_call() {
    let fake = FakeGemini::start().await.unwrap();
    let bad_audio = json!({ "serverContent": { "modelTurn": { "parts": [
        { "inlineData": { "mimeType": "audio/pcm;rate=24000", "data": "***" } }
    ] } } });
    fake.push_all([
        Step::Text("definitely not json".into()),
        Step::Binary(vec![0xC3, 0x28]),
        Step::Json(bad_audio),
        Step::Json(json!({ "usageMetadata": { "totalTokenCount": 5 }, "somethingNew": {} })),
        Step::Json(json!([1, 2, 3])),
        Step::Json(FakeGemini::audio(&[0; 96], 24_000)),
    ]);
    let mut session = GeminiSession::connect(&fake.config(), &session_config(None)).await.unwrap();
    let events = events_until(&mut session, |e| matches!(e, AgentEvent::AudioOut { .. })).await;
    let codes_seen: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Error { code, .. } => Some(code.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        codes_seen,
        [codes::MALFORMED_FRAME, codes::MALFORMED_FRAME, codes::BAD_AUDIO, codes::MALFORMED_FRAME]
    );
    assert_eq!(events.len(), 5, "unknown fields are ignored: {events:?}");
    assert_eq!(events[4], AgentEvent::AudioOut { ulaw_8k: vec![0xFF; 32], item_id: None });
    session.send_audio(&[0xFF; 160]).await.unwrap();
    fake.wait_for_json(WAIT, |m| m.get("realtimeInput").is_some()).await.expect("still sending");
}

/// Everything the adapter sends in a whole call, and everything the fake sends, must be valid
/// to google-genai's `LiveClientMessage` / `LiveServerMessage` (camelCase, no unknown fields).
#[tokio::test]
async fn every_message_validates_against_google_genai() {
    let fake = FakeGemini::start().await.unwrap();
    fake.push_all(FakeGemini::greeting_script(&tone(440.0, 24_000, 2_400, 8_000.0), "Dobrý den"));
    fake.push(Step::Json(FakeGemini::input_transcription("Objednávka A-17", true)));
    fake.push(Step::Json(FakeGemini::interrupted()));
    fake.push(Step::Json(FakeGemini::tool_call("fc_1", "lookup_order", &json!({ "order_id": "A-17" }))));
    fake.push(Step::Json(FakeGemini::tool_call_cancellation(&["fc_0"])));
    fake.push(Step::Json(FakeGemini::go_away("5s")));
    let mut config = session_config(Some("Dobrý den"));
    config.voice = Some("Kore".into());
    let mut session = GeminiSession::connect(&fake.config(), &config).await.unwrap();
    for frame in tone_ulaw(300.0, 60).chunks(160) {
        session.send_audio(frame).await.unwrap();
    }
    events_until(&mut session, |e| matches!(e, AgentEvent::ToolCall { .. })).await;
    session.send_tool_result("fc_1", json!({ "status": "shipped" })).await.unwrap();
    session.send_tool_result("fc_unknown", json!(["a", 1])).await.unwrap();
    session.say("Děkujeme, nashledanou.").await.unwrap();
    let received = fake.wait_for_frames(WAIT, 8, |f| f.json().is_some()).await.expect("all client messages");
    let keys: Vec<String> =
        received.iter().filter_map(|f| f.json()?.as_object()?.keys().next().cloned()).collect();
    assert_eq!(
        keys,
        [
            "setup",
            "clientContent",
            "realtimeInput",
            "realtimeInput",
            "realtimeInput",
            "toolResponse",
            "toolResponse",
            "clientContent"
        ]
    );
    // A bare configuration (no prompt, tools, voice, language or greeting) must be valid too.
    let bare = GeminiSession::connect(&fake.config(), &SessionConfig::default()).await.unwrap();
    drop(bare);
    let mut records = tagged("client", fake.received_json());
    records.extend(tagged("server", fake.sent_json()));
    assert_eq!(records.iter().filter(|r| r["message"].get("setup").is_some()).count(), 2);
    let bad: Value = json!({ "direction": "client", "message": { "realtimeInput": { "audio": {
        "data": "AAAA", "mime_type": "audio/pcm;rate=16000" } } } });
    assert_oracle_accepts(Oracle::Gemini, &records, bad);
}
