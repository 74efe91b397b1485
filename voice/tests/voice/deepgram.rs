//! Deepgram adapter (streaming STT + REST TTS) against the fake server.

use std::time::Duration;

use kraliki_voice::ai::{codes, AgentEvent, AgentSession, AiError, DeepgramSession, Speaker};
use kraliki_voice::testing::{ClientFrame, FakeDeepgram, Step, TtsReply};
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn listen_url_asks_for_telephony_mulaw_with_token_auth() {
    let fake = FakeDeepgram::start().await.unwrap();
    let session = DeepgramSession::connect(&fake.config(), &session_config(None)).await.unwrap();
    let conn = &fake.connections()[0];
    assert_eq!(conn.path, "/v1/listen");
    assert_eq!(conn.header("authorization"), Some("Token test-fake-deepgram-key"));
    for (k, v) in [
        ("model", "nova-3"),
        ("encoding", "mulaw"),
        ("sample_rate", "8000"),
        ("channels", "1"),
        ("interim_results", "true"),
        ("vad_events", "true"),
        ("utterance_end_ms", "1000"),
        ("endpointing", "300"),
        ("language", "cs-CZ"),
    ] {
        assert_eq!(conn.query_param(k), Some(v), "{k}");
    }
    drop(session);
}

#[tokio::test]
async fn caller_audio_goes_out_as_binary_mulaw_frames() {
    let fake = FakeDeepgram::start().await.unwrap();
    let mut session = DeepgramSession::connect(&fake.config(), &session_config(None)).await.unwrap();
    let caller = tone_ulaw(1000.0, 200);
    for frame in caller.chunks(160) {
        session.send_audio(frame).await.unwrap();
    }
    session.send_audio(&[]).await.unwrap(); // must not be sent: it would end the stream
    let frames =
        fake.wait_for_frames(WAIT, 10, |f| matches!(f, ClientFrame::Binary(_))).await.expect("10 frames");
    let received: Vec<u8> = frames
        .iter()
        .flat_map(|f| match f {
            ClientFrame::Binary(b) => b.clone(),
            _ => Vec::new(),
        })
        .collect();
    assert_eq!(received, caller);
    assert!(fake.received().iter().all(|f| !matches!(f, ClientFrame::Binary(b) if b.is_empty())));
}

#[tokio::test]
async fn results_and_vad_events_become_transcripts_and_speech_events() {
    let fake = FakeDeepgram::start().await.unwrap();
    fake.push_all([
        Step::Json(FakeDeepgram::speech_started(0.42)),
        Step::Json(FakeDeepgram::results("dobrý", false, false)),
        Step::Json(FakeDeepgram::results("", false, false)),
        Step::Json(FakeDeepgram::results("dobrý den", true, true)),
        Step::Json(FakeDeepgram::utterance_end(1.3)),
    ]);
    let mut session = DeepgramSession::connect(&fake.config(), &session_config(None)).await.unwrap();
    let events = events_until(&mut session, |e| *e == AgentEvent::SpeechStopped).await;
    assert_eq!(
        events,
        [
            AgentEvent::SpeechStarted,
            AgentEvent::Transcript { speaker: Speaker::Caller, text: "dobrý".into(), is_final: false },
            AgentEvent::Transcript { speaker: Speaker::Caller, text: "dobrý den".into(), is_final: true },
            AgentEvent::SpeechStopped,
        ]
    );
}

#[tokio::test]
async fn greeting_is_synthesized_as_mulaw_8k_and_played_whole() {
    let fake = FakeDeepgram::start().await.unwrap();
    let speech = tone_ulaw(440.0, 1500);
    fake.set_tts_reply(TtsReply::Audio(speech.clone()));
    let mut session =
        DeepgramSession::connect(&fake.config(), &session_config(Some("Dobrý den, tady Kraliki.")))
            .await
            .unwrap();
    let events = events_until(&mut session, |e| *e == AgentEvent::ResponseDone).await;
    assert_eq!(audio_out(&events, None), speech);

    let request = &fake.http_requests()[0];
    assert_eq!(request.info.method, "POST");
    assert_eq!(request.info.path, "/v1/speak");
    assert_eq!(request.info.header("authorization"), Some("Token test-fake-deepgram-key"));
    assert_eq!(
        request.info.query,
        [
            ("model", "aura-2-thalia-en"),
            ("encoding", "mulaw"),
            ("sample_rate", "8000"),
            ("container", "none")
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
    assert_eq!(request.json(), Some(json!({ "text": "Dobrý den, tady Kraliki." })));
}

#[tokio::test]
async fn tts_failure_is_an_error_event_not_a_dead_session() {
    let fake = FakeDeepgram::start().await.unwrap();
    fake.set_tts_reply(TtsReply::Error {
        status: 400,
        err_code: "INVALID_QUERY_PARAMETER".into(),
        err_msg: "bad model".into(),
    });
    let mut session = DeepgramSession::connect(&fake.config(), &session_config(Some("Ahoj"))).await.unwrap();
    let event = next_event(&mut session).await;
    assert!(
        matches!(&event, AgentEvent::Error { code, message } if code == codes::TTS_FAILED && message.contains("400") && message.contains("bad model")),
        "{event:?}"
    );
    fake.set_tts_reply(TtsReply::Audio(vec![0x7F; 800]));
    session.say("Znovu").await.unwrap();
    let events = events_until(&mut session, |e| *e == AgentEvent::ResponseDone).await;
    assert_eq!(audio_out(&events, None), vec![0x7F; 800]);
}

/// On a current-thread runtime the TTS worker cannot run between these calls, so what was
/// queued before the barge-in is dropped deterministically.
#[tokio::test(flavor = "current_thread")]
async fn truncate_drops_speech_queued_before_the_barge_in() {
    let fake = FakeDeepgram::start().await.unwrap();
    fake.set_tts_reply(TtsReply::Audio(vec![0xEA; 1600]));
    let mut session = DeepgramSession::connect(&fake.config(), &session_config(Some("first"))).await.unwrap();
    session.say("second").await.unwrap();
    session.truncate("", 0).await.unwrap();
    session.say("third").await.unwrap();
    let events = events_until(&mut session, |e| *e == AgentEvent::ResponseDone).await;
    assert_eq!(audio_out(&events, None).len(), 1600);
    let texts: Vec<Value> =
        fake.http_requests().iter().filter_map(|r| r.json()).map(|b| b["text"].clone()).collect();
    assert_eq!(texts, [json!("third")]);
}

#[tokio::test]
async fn keepalive_is_sent_while_no_audio_flows() {
    let fake = FakeDeepgram::start().await.unwrap();
    let mut cfg = fake.config();
    cfg.keepalive_every = Duration::from_millis(50);
    let mut session = DeepgramSession::connect(&cfg, &session_config(None)).await.unwrap();
    let wait = fake.wait_for_frames(WAIT, 2, |f| f.json_type() == Some("KeepAlive"));
    let keepalives = while_reading(&mut session, wait).await;
    assert_eq!(keepalives.expect("keep-alives")[0], ClientFrame::Json(json!({ "type": "KeepAlive" })));
}

#[tokio::test]
async fn close_sends_close_stream_and_waits_for_deepgram_to_finish() {
    let fake = FakeDeepgram::start().await.unwrap();
    let mut session = DeepgramSession::connect(&fake.config(), &session_config(None)).await.unwrap();
    session.send_audio(&[0xFF; 160]).await.unwrap();
    session.close().await.unwrap();
    let frames = fake.received();
    assert_eq!(frames.first(), Some(&ClientFrame::Binary(vec![0xFF; 160])));
    assert!(frames.contains(&ClientFrame::Json(json!({ "type": "CloseStream" }))), "{frames:?}");
    assert_eq!(next_event(&mut session).await, AgentEvent::Closed { reason: "closed by client".into() });
    assert_eq!(session.next_event().await, None);
}

#[tokio::test]
async fn drop_malformed_and_error_messages_are_handled() {
    let fake = FakeDeepgram::start().await.unwrap();
    fake.push_all([
        Step::Text("{\"type\":\"Results\",".into()),
        Step::Json(json!({ "type": "Results", "channel": { "alternatives": [] } })),
        Step::Json(json!({ "type": "SomethingNew", "payload": 1 })),
        Step::Binary(vec![1, 2, 3]),
        Step::Json(FakeDeepgram::error("SchemaError", "could not parse the message")),
        Step::Json(FakeDeepgram::results("haló", true, true)),
        Step::Drop,
    ]);
    let mut session = DeepgramSession::connect(&fake.config(), &session_config(None)).await.unwrap();
    let events = events_until(&mut session, |e| matches!(e, AgentEvent::Closed { .. })).await;
    assert_eq!(events.len(), 6, "{events:?}");
    assert!(matches!(&events[0], AgentEvent::Error { code, .. } if code == codes::MALFORMED_FRAME));
    assert!(matches!(&events[1], AgentEvent::Error { code, .. } if code == codes::MALFORMED_FRAME));
    assert!(matches!(&events[2], AgentEvent::Error { code, .. } if code == codes::MALFORMED_FRAME));
    assert_eq!(
        events[3],
        AgentEvent::Error { code: "SchemaError".into(), message: "could not parse the message".into() }
    );
    assert_eq!(
        events[4],
        AgentEvent::Transcript { speaker: Speaker::Caller, text: "haló".into(), is_final: true }
    );
    assert!(matches!(&events[5], AgentEvent::Closed { reason } if reason.starts_with("connection lost")));
    assert!(matches!(session.send_audio(&[0xFF; 160]).await, Err(AiError::Closed { .. })));
}

#[tokio::test]
async fn tools_are_unsupported_and_bad_keys_are_refused() {
    let fake = FakeDeepgram::start().await.unwrap();
    let mut session = DeepgramSession::connect(&fake.config(), &session_config(None)).await.unwrap();
    assert!(matches!(session.send_tool_result("c", json!({})).await, Err(AiError::Unsupported { .. })));
    let mut cfg = fake.config();
    cfg.api_key = "nope".into();
    let err = DeepgramSession::connect(&cfg, &session_config(None)).await.err().expect("refused");
    assert!(
        matches!(&err, AiError::Connect { message, .. } if message.contains("401") && message.contains("INVALID_AUTH")),
        "{err}"
    );
}

/// Control messages, the listen query, TTS requests and the fake's own messages, checked
/// against deepgram-sdk's types and method signatures.
#[tokio::test]
async fn every_message_validates_against_the_deepgram_sdk() {
    let fake = FakeDeepgram::start().await.unwrap();
    fake.push_all([
        Step::Json(FakeDeepgram::speech_started(0.1)),
        Step::Json(FakeDeepgram::results("dobrý den", true, true)),
        Step::Json(FakeDeepgram::utterance_end(0.9)),
        Step::Json(FakeDeepgram::error("SchemaError", "x")),
    ]);
    let mut cfg = fake.config();
    cfg.keepalive_every = Duration::from_millis(50);
    let mut session = DeepgramSession::connect(&cfg, &session_config(Some("Dobrý den"))).await.unwrap();
    events_until(&mut session, |e| *e == AgentEvent::ResponseDone).await;
    let wait = fake.wait_for_frames(WAIT, 1, |f| f.json_type() == Some("KeepAlive"));
    while_reading(&mut session, wait).await.expect("a keep-alive");
    session.close().await.unwrap();

    let log = fake.log();
    let mut records = tagged("client", fake.received_json());
    records.extend(tagged("server", log.sent.clone()));
    records.push(json!({ "direction": "listen_query", "query": log.connections[0].query }));
    for request in &log.http {
        records.push(json!({ "direction": "speak", "query": request.info.query, "body": request.json() }));
    }
    assert!(records.iter().any(|r| r["message"]["type"] == "CloseStream"));
    let bad =
        json!({ "direction": "listen_query", "query": [["sample_rate", "8000"], ["encodings", "mulaw"]] });
    assert_oracle_accepts(Oracle::Deepgram, &records, bad);
}
