//! Whole calls: Twilio's webhooks (signed by the official SDK's RequestValidator) and its
//! media stream (a fake Twilio media client) bridged to a fake OpenAI Realtime server that
//! speaks the real protocol: greeting, caller speech, barge-in, a function call, the end.

use std::process::Command;
use std::time::Duration;

use kraliki_tests::{spawn_app_with, TestApp};
use kraliki_voice::telephony::testing::media::{FakeMediaClient, Pace, Playout, ServerFrame, TwilioDialect};
use kraliki_voice::testing::FakeOpenAi;
use kraliki_voice::testing::{ClientFrame, Step};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{json, Value};

pub(crate) const PUBLIC: &str = "https://voice.example.com";
pub(crate) const TOKEN: &str = "twilio-test-auth-token";
pub(crate) const ACCOUNT: &str = "AC00000000000000000000000000000001";

async fn spawn(openai: &FakeOpenAi) -> TestApp {
    let base = openai.config().base_url;
    spawn_app_with(
        move |s| {
            s.providers.openai_api_key = Some(SecretString::from(FakeOpenAi::API_KEY));
            s.providers.openai_realtime_url = Some(base);
            s.providers.twilio_auth_token = Some(SecretString::from(TOKEN));
            s.providers.public_base_url = Some(PUBLIC.into());
        },
        Vec::new(),
    )
    .await
}

/// An inbound Twilio call from +420603123456 to `to`: our voice webhook answers with its stream,
/// and the phone connects to it. Returns the call id and the phone.
pub(crate) async fn inbound_twilio_call(
    app: &TestApp,
    call_sid: &str,
    to: &str,
) -> (String, FakeMediaClient<TwilioDialect>) {
    let params = [("CallSid", call_sid), ("From", "+420603123456"), ("To", to), ("Direction", "inbound")];
    let twiml = webhook(app, "/api/telephony/twilio/voice", &params, None).await.text().await.unwrap();
    let parameters = stream_parameters(&twiml);
    let call_id = parameters.iter().find(|(k, _)| k == "call_id").unwrap().1.clone();
    let mut dialect = TwilioDialect::new(call_sid, format!("MZ{}", &call_sid[2..]));
    for (k, v) in &parameters {
        dialect = dialect.parameter(k.clone(), v.clone());
    }
    let ws = format!("ws://{}/api/telephony/twilio/media", app.app().addr());
    (call_id, FakeMediaClient::connect(&ws, dialect, Playout::Instant).await.unwrap())
}

/// A server that places calls through `twilio` with `openai`'s agent; `dialer` turns the
/// background dialer on with that round interval (ms).
async fn outbound_app(
    twilio: &kraliki_voice::telephony::testing::api::FakeTwilioApi,
    openai: &FakeOpenAi,
    dialer: Option<u64>,
) -> TestApp {
    let (twilio_url, openai_url) = (twilio.base_url(), openai.config().base_url);
    spawn_app_with(
        move |s| {
            s.providers.openai_api_key = Some(SecretString::from(FakeOpenAi::API_KEY));
            s.providers.openai_realtime_url = Some(openai_url);
            s.providers.twilio_account_sid = Some(ACCOUNT.into());
            s.providers.twilio_auth_token = Some(SecretString::from(TOKEN));
            s.providers.twilio_api_url = Some(twilio_url);
            s.providers.public_base_url = Some(PUBLIC.into());
            if let Some(tick_ms) = dialer {
                s.dialer.enabled = true;
                s.dialer.tick_ms = tick_ms;
            }
        },
        Vec::new(),
    )
    .await
}

/// X-Twilio-Signature computed by the `twilio` package's RequestValidator.
fn twilio_signature(url: &str, params: &[(&str, &str)]) -> String {
    let python = std::env::var("KRALIKI_TEST_PYTHON").expect("KRALIKI_TEST_PYTHON (scripts/test sets it)");
    let params: serde_json::Map<String, Value> =
        params.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    let out = Command::new(python)
        .args([
            "-c",
            "import json, sys\nfrom twilio.request_validator import RequestValidator\n\
             a = json.loads(sys.argv[1])\nprint(RequestValidator(a['token']).compute_signature(a['url'], a['params']))",
        ])
        .arg(json!({"token": TOKEN, "url": url, "params": params}).to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn webhook(
    app: &TestApp,
    path: &str,
    params: &[(&str, &str)],
    signature: Option<String>,
) -> reqwest::Response {
    let signature = signature.unwrap_or_else(|| twilio_signature(&format!("{PUBLIC}{path}"), params));
    app.anon.post(app.url(path)).header("x-twilio-signature", signature).form(params).send().await.unwrap()
}

/// Checks TwiML against the `twilio` package's own TwiML classes: every verb and noun is one
/// its parent can nest (a method of the parent's class), every attribute one that method
/// declares. Returns the document.
pub(crate) fn twiml_checked(twiml: &str) -> String {
    let python = std::env::var("KRALIKI_TEST_PYTHON").expect("KRALIKI_TEST_PYTHON (scripts/test sets it)");
    let script = r#"
import inspect, re, sys, xml.etree.ElementTree as ET
from twilio.twiml import voice_response as vr
snake = lambda n: re.sub(r'(?<!^)(?=[A-Z])', '_', n).lower()
def check(el, cls):
    for child in el:
        method = getattr(cls, snake(child.tag), None)
        if method is None:
            sys.exit(f"<{el.tag}> cannot hold <{child.tag}> ({cls.__name__} has no {snake(child.tag)})")
        params = inspect.signature(method).parameters
        for attr in child.attrib:
            if snake(attr) not in params:
                sys.exit(f"<{child.tag}> has no attribute {attr} ({cls.__name__}.{snake(child.tag)} takes {list(params)})")
        check(child, getattr(vr, child.tag))
root = ET.fromstring(sys.argv[1])
if root.tag != 'Response':
    sys.exit(f"the root is <{root.tag}>")
check(root, vr.VoiceResponse)
"#;
    let out = Command::new(python).args(["-c", script]).arg(twiml).output().unwrap();
    assert!(out.status.success(), "{twiml}\n{}", String::from_utf8_lossy(&out.stderr));
    twiml.to_owned()
}

/// The `<Parameter>`s of the TwiML's `<Stream>`.
fn stream_parameters(twiml: &str) -> Vec<(String, String)> {
    twiml
        .split("<Parameter ")
        .skip(1)
        .map(|p| {
            let attr = |name: &str| {
                p.split(&format!("{name}=\"")).nth(1).unwrap().split('"').next().unwrap().to_owned()
            };
            (attr("name"), attr("value"))
        })
        .collect()
}

async fn inbound_campaign(app: &TestApp, number: &str) -> String {
    voice_campaign(app, number, "openai", "Hello, this is Acme.").await
}

/// An active inbound campaign answering `number` with the `provider`'s agent.
pub(crate) async fn voice_campaign(app: &TestApp, number: &str, provider: &str, greeting: &str) -> String {
    let r = app
        .post_json(
            "/api/v1/campaigns",
            json!({"name": format!("Support line ({provider})"), "campaign_type": "inbound_support", "caller_id": number,
                   "primary_provider": provider, "instructions": "Help the caller.", "configuration": {"greeting": greeting}}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let r = app.client.post(app.url(&format!("/api/v1/campaigns/{id}/start"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    id
}

/// A fixed-offset zone where it is now about `hour` o'clock (calling windows hold there or not,
/// whenever the test runs).
pub(crate) fn zone_where_it_is(hour: i32) -> String {
    use chrono::Timelike;
    let offset = match hour - chrono::Utc::now().hour() as i32 {
        o if o < -12 => o + 24,
        o if o > 14 => o - 24,
        o => o,
    };
    match offset {
        0 => "Etc/GMT".to_owned(),
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    }
}

async fn call_events(app: &TestApp, call_id: &str) -> Vec<(String, Value)> {
    sqlx::query_as("SELECT event_type, payload FROM events WHERE aggregate_type = 'Call' AND aggregate_id = $1 ORDER BY sequence")
        .bind(call_id)
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

/// A call list's next contacts as of `at`.
async fn next_at(app: &TestApp, list: &str, at: chrono::DateTime<chrono::Utc>) -> Vec<Value> {
    let url = app.url(&format!("/api/v1/call-lists/{list}/next"));
    let r = app.client.get(url).query(&[("at", at.to_rfc3339())]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let page: Value = r.json().await.unwrap();
    page["items"].as_array().unwrap().clone()
}

pub(crate) async fn events_until(app: &TestApp, call_id: &str, last: &str) -> Vec<(String, Value)> {
    kraliki_tests::eventually(Duration::from_secs(20), last, || async {
        let events = call_events(app, call_id).await;
        events.iter().any(|(t, _)| t == last).then_some(events)
    })
    .await
}

#[tokio::test]
async fn an_inbound_twilio_call_talks_with_the_ai_agent_from_greeting_to_disposition() {
    let openai = FakeOpenAi::start().await.unwrap();
    let greeting = vec![0x55u8; 1600]; // 200 ms
    openai.push_all(FakeOpenAi::greeting_script("resp_1", "item_greet", &greeting, "Hello, this is Acme."));
    openai.push(Step::wait_for_type("input_audio_buffer.append"));
    openai.push(Step::Json(FakeOpenAi::speech_started("item_caller", 100)));
    openai.push(Step::wait_for_type("conversation.item.truncate"));
    openai.push(Step::Json(FakeOpenAi::input_transcription_completed("item_caller", "I'd like to buy it.")));
    openai.push(Step::Json(FakeOpenAi::function_call_arguments_done(
        "resp_2",
        "item_fc",
        "call_1",
        "lookup_contact",
        &json!({}),
    )));
    openai.push(Step::wait_for_type("response.create"));
    openai.push(Step::Json(FakeOpenAi::function_call_arguments_done(
        "resp_3",
        "item_end",
        "call_2",
        "end_call",
        &json!({"disposition": "Sale", "summary": "Bought the annual plan."}),
    )));
    let app = spawn(&openai).await;
    inbound_campaign(&app, "+14155550100").await;

    let params = [
        ("CallSid", "CA0001"),
        ("AccountSid", "AC1"),
        ("From", "+420603123456"),
        ("To", "+14155550100"),
        ("Direction", "inbound"),
        ("CallStatus", "ringing"),
    ];
    // A forged or missing signature changes nothing.
    let r = webhook(&app, "/api/telephony/twilio/voice", &params, Some("bm90IGEgc2lnbmF0dXJl".into())).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = app.anon.post(app.url("/api/telephony/twilio/voice")).form(&params).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let tampered = twilio_signature(&format!("{PUBLIC}/api/telephony/twilio/voice"), &params);
    let mut other = params;
    other[2] = ("From", "+420603000000");
    assert_eq!(
        webhook(&app, "/api/telephony/twilio/voice", &other, Some(tampered)).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(app.count_events().await, 2, "only the campaign's own events (created, started)");

    let r = webhook(&app, "/api/telephony/twilio/voice", &params, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/xml"));
    let twiml = r.text().await.unwrap();
    assert!(
        twiml.contains("<Connect><Stream url=\"wss://voice.example.com/api/telephony/twilio/media\">"),
        "{twiml}"
    );
    // Twilio retries the webhook: the same answer, no second call.
    let again = webhook(&app, "/api/telephony/twilio/voice", &params, None).await.text().await.unwrap();
    assert_eq!(stream_parameters(&again), stream_parameters(&twiml));
    let parameters = stream_parameters(&twiml);
    let call_id = parameters.iter().find(|(k, _)| k == "call_id").unwrap().1.clone();

    let mut dialect = TwilioDialect::new("CA0001", "MZ0001");
    for (k, v) in &parameters {
        dialect = dialect.parameter(k.clone(), v.clone());
    }
    let ws = format!("ws://{}/api/telephony/twilio/media", app.app().addr());
    let mut phone = FakeMediaClient::connect(&ws, dialect, Playout::Instant).await.unwrap();

    // The greeting reaches the caller as μ-law, each chunk followed by a mark.
    let played = phone.wait_for(Duration::from_secs(10), |f| matches!(f, ServerFrame::Mark(_))).await;
    assert!(played.is_some(), "greeting audio with marks");
    phone.send_audio(&[0xffu8; 1600], Pace::AsFastAsPossible).await.unwrap();
    // Barge-in: the phone's queue is cleared and the provider learns what was heard.
    assert!(
        phone.wait_for(Duration::from_secs(10), |f| *f == ServerFrame::Clear).await.is_some(),
        "clear on barge-in"
    );
    let truncate = openai
        .wait_for_json(Duration::from_secs(10), |v| v["type"] == "conversation.item.truncate")
        .await
        .expect("truncate");
    assert_eq!(truncate["item_id"], "item_greet");
    // At a mark the phone echoed (this phone plays instantly; timing is checked with a phone
    // that plays in real time below).
    let heard = truncate["audio_end_ms"].as_u64().unwrap();
    assert!(heard > 0 && phone.echoed_marks().contains(&format!("item_greet@{heard}")), "{truncate}");
    // Caller audio reached the provider unchanged.
    let appended: Vec<Value> =
        openai.received_json().into_iter().filter(|v| v["type"] == "input_audio_buffer.append").collect();
    assert!(!appended.is_empty());

    let events = events_until(&app, &call_id, "CallCompleted").await;
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(&types[..3], ["CallInitiated", "CallAnswered", "MediaStreamStarted"], "{types:?}");
    assert_eq!(
        types.iter().filter(|t| **t == "CallInitiated").count(),
        1,
        "the retried webhook added nothing"
    );
    assert!(types.contains(&"TranscriptSegmentAdded"), "{types:?}");
    let transcript: Vec<(String, String)> = events
        .iter()
        .filter(|(t, _)| t == "TranscriptSegmentAdded")
        .map(|(_, p)| {
            (
                p["TranscriptSegmentAdded"]["speaker"].as_str().unwrap().to_owned(),
                p["TranscriptSegmentAdded"]["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(transcript.contains(&("agent".into(), "Hello, this is Acme.".into())), "{transcript:?}");
    assert!(transcript.contains(&("caller".into(), "I'd like to buy it.".into())), "{transcript:?}");
    // Timed on the call's clock: the greeting as far as it was heard before the barge-in, the
    // caller from the moment the provider heard them start.
    let timing = |text: &str| {
        let (_, p) = events
            .iter()
            .find(|(t, p)| t == "TranscriptSegmentAdded" && p["TranscriptSegmentAdded"]["text"] == text)
            .unwrap();
        let ms = |k: &str| p["TranscriptSegmentAdded"][k].as_u64().unwrap();
        (ms("start_ms"), ms("end_ms"))
    };
    let (greeting, caller) = (timing("Hello, this is Acme."), timing("I'd like to buy it."));
    assert!(greeting.0 <= greeting.1 && greeting.1 - greeting.0 <= 200, "{greeting:?}");
    assert!(greeting.0 <= caller.0 && caller.0 <= caller.1, "{greeting:?} {caller:?}");
    let functions: Vec<&Value> =
        events.iter().filter(|(t, _)| t == "AiFunctionCalled").map(|(_, p)| &p["AiFunctionCalled"]).collect();
    assert_eq!(functions.len(), 2);
    assert_eq!(functions[0]["name"], "lookup_contact");
    assert_eq!(functions[0]["result"]["ok"], false, "an inbound caller is not a contact");
    assert_eq!(functions[1]["name"], "end_call");
    let output = openai
        .wait_for_json(Duration::from_secs(5), |v| v["item"]["type"] == "function_call_output")
        .await
        .expect("tool result sent");
    assert_eq!(output["item"]["call_id"], "call_1");
    let (_, completed) = events.iter().find(|(t, _)| t == "CallCompleted").unwrap();
    assert_eq!(completed["CallCompleted"]["outcome"], "connected");
    assert_eq!(completed["CallCompleted"]["disposition"], "sale");
    assert!(types.contains(&"MediaStreamStopped"));
    kraliki_tests::eventually(Duration::from_secs(5), "the bridge hangs up the stream", || async {
        phone.closed_by_server().then_some(())
    })
    .await;

    // Twilio's own completion callback, delivered twice: nothing more happens.
    let status = [
        ("CallSid", "CA0001"),
        ("AccountSid", "AC1"),
        ("CallStatus", "completed"),
        ("CallDuration", "12"),
        ("SequenceNumber", "3"),
        ("From", "+420603123456"),
        ("To", "+14155550100"),
    ];
    let before = call_events(&app, &call_id).await.len();
    for _ in 0..2 {
        let r = webhook(&app, "/api/telephony/twilio/status", &status, None).await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }
    assert_eq!(call_events(&app, &call_id).await.len(), before);
    // The agent's summary is on the call, for supervisors and auditors.
    app.caught_up().await;
    let r = app.client.get(app.url(&format!("/api/v1/calls/{call_id}"))).send().await.unwrap();
    let detail: Value = r.json().await.unwrap();
    assert_eq!(detail["summary"], "Bought the annual plan.", "{detail}");
    assert_eq!(detail["disposition"], "sale");
    // Every client event we sent validated against the openai package elsewhere; here, none was
    // unexpected for a call.
    assert!(openai.received().iter().all(|f| !matches!(f, ClientFrame::Binary(_))));
    app.cleanup().await;
}

#[tokio::test]
async fn a_provider_that_drops_mid_call_fails_the_call_with_its_reason() {
    let openai = FakeOpenAi::start().await.unwrap();
    openai.push(Step::wait_for_type("input_audio_buffer.append"));
    openai.push(Step::Drop);
    let app = spawn(&openai).await;
    inbound_campaign(&app, "+14155550101").await;
    let params =
        [("CallSid", "CA0002"), ("From", "+420603123456"), ("To", "+14155550101"), ("Direction", "inbound")];
    let twiml = webhook(&app, "/api/telephony/twilio/voice", &params, None).await.text().await.unwrap();
    let parameters = stream_parameters(&twiml);
    let call_id = parameters.iter().find(|(k, _)| k == "call_id").unwrap().1.clone();
    let mut dialect = TwilioDialect::new("CA0002", "MZ0002");
    for (k, v) in &parameters {
        dialect = dialect.parameter(k.clone(), v.clone());
    }
    let ws = format!("ws://{}/api/telephony/twilio/media", app.app().addr());
    let mut phone = FakeMediaClient::connect(&ws, dialect, Playout::Instant).await.unwrap();
    // Malformed frames and bad base64 on the phone side are skipped, not fatal.
    phone.send_raw("{not json").unwrap();
    phone.send_raw(r#"{"event":"media","streamSid":"MZ0002","media":{"track":"inbound","chunk":"1","timestamp":"0","payload":"@@@"}}"#).unwrap();
    phone.send_raw(r#"{"event":"who-knows"}"#).unwrap();
    phone.send_audio(&[0xffu8; 320], Pace::AsFastAsPossible).await.unwrap();
    let events = events_until(&app, &call_id, "CallFailed").await;
    let (_, failed) = events.iter().find(|(t, _)| t == "CallFailed").unwrap();
    let reason = failed["CallFailed"]["reason"].as_str().unwrap();
    assert!(reason.starts_with("voice provider closed"), "{reason}");
    kraliki_tests::eventually(Duration::from_secs(5), "the stream is closed", || async {
        phone.closed_by_server().then_some(())
    })
    .await;

    // A stream whose token does not match its call is refused and records nothing.
    let mut forged = TwilioDialect::new("CA0003", "MZ0003");
    for (k, v) in &parameters {
        forged = forged.parameter(k.clone(), if k == "token" { "00".repeat(32) } else { v.clone() });
    }
    let count = app.count_events().await;
    let mut intruder = FakeMediaClient::connect(&ws, forged, Playout::Instant).await.unwrap();
    kraliki_tests::eventually(Duration::from_secs(5), "the forged stream is closed", || async {
        intruder.closed_by_server().then_some(())
    })
    .await;
    assert!(intruder.next_frame(Duration::from_millis(10)).await.is_none());
    assert_eq!(app.count_events().await, count);
    app.cleanup().await;
}

/// A transfer the provider cannot carry out (here: no Twilio account for its REST API) fails
/// the call with the reason, after the request was recorded.
#[tokio::test]
async fn a_transfer_the_provider_cannot_make_fails_the_call_with_the_reason() {
    let openai = FakeOpenAi::start().await.unwrap();
    openai.push(Step::wait_for_type("input_audio_buffer.append"));
    openai.push(Step::Json(FakeOpenAi::function_call_arguments_done(
        "r1",
        "i1",
        "c1",
        "transfer_to_queue",
        &json!({"queue": "billing"}),
    )));
    let app = spawn(&openai).await;
    inbound_campaign(&app, "+14155550105").await;
    let (call_id, mut phone) = inbound_twilio_call(&app, "CA0005", "+14155550105").await;
    phone.send_audio(&[0xffu8; 320], Pace::AsFastAsPossible).await.unwrap();
    let events = events_until(&app, &call_id, "CallFailed").await;
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert!(types.contains(&"TransferRequested"), "{types:?}");
    assert!(!types.contains(&"CallCompleted"), "{types:?}");
    let (_, failed) = events.iter().find(|(t, _)| t == "CallFailed").unwrap();
    let reason = failed["CallFailed"]["reason"].as_str().unwrap();
    assert!(reason.starts_with("the transfer to queue billing failed: TWILIO_ACCOUNT_SID"), "{reason}");
    app.cleanup().await;
}

/// When the provider's `response.output_audio_transcript.done` for the interrupted greeting
/// reaches the bridge, relative to the marks the phone returns because of `clear`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TranscriptDone {
    BeforeClearedMarks,
    AfterClearedMarks,
}

/// A 2 s greeting played by a phone in real time, interrupted after about 550 ms: the truncate
/// says what the echoed marks reported played (within one mark), and the agent's transcript
/// segment spans exactly that, whichever comes first of the transcript and the cleared marks.
async fn barge_in_while_the_phone_plays_in_real_time(order: TranscriptDone) {
    use base64::Engine;
    use kraliki_voice::bridge::MARK_EVERY_MS;
    use kraliki_voice::telephony::testing::media::EchoCause;
    const SID: &str = "CA0007";
    // Sent by the caller once the cleared marks are on their way: on one socket, so the bridge
    // has read those marks when this frame reaches the provider.
    let after_marks = [0x7fu8; 160];
    let after_marks_b64 = base64::engine::general_purpose::STANDARD.encode(after_marks);

    let openai = FakeOpenAi::start().await.unwrap();
    // 2 s of greeting in 100 ms deltas: the bridge puts a mark after each (`item_greet@100`,
    // `@200`, …), and a phone playing in real time echoes each as its audio ends.
    let greeting = vec![0x55u8; 16_000];
    openai.push(Step::wait_for_type("response.create"));
    openai.push(Step::Json(FakeOpenAi::response_created("resp_1")));
    for chunk in greeting.chunks(800) {
        openai.push(Step::Json(FakeOpenAi::audio_delta("resp_1", "item_greet", chunk)));
    }
    openai.push(Step::wait_for_type("input_audio_buffer.append"));
    openai.push(Step::Json(FakeOpenAi::speech_started("item_caller", 0)));
    openai.push(Step::wait_for_type("conversation.item.truncate"));
    if order == TranscriptDone::AfterClearedMarks {
        openai.push(Step::wait_for_json(move |v| {
            v["type"] == "input_audio_buffer.append" && v["audio"] == after_marks_b64.as_str()
        }));
    }
    openai.push(Step::Json(FakeOpenAi::audio_transcript_done(
        "resp_1",
        "item_greet",
        "Hello, this is Acme.",
    )));
    openai.push(Step::Json(FakeOpenAi::response_done("resp_1", "cancelled")));
    let app = spawn(&openai).await;
    inbound_campaign(&app, "+14155550107").await;
    let params =
        [("CallSid", SID), ("From", "+420603123456"), ("To", "+14155550107"), ("Direction", "inbound")];
    let twiml = webhook(&app, "/api/telephony/twilio/voice", &params, None).await.text().await.unwrap();
    let parameters = stream_parameters(&twiml);
    let call_id = parameters.iter().find(|(k, _)| k == "call_id").unwrap().1.clone();
    let mut dialect = TwilioDialect::new(SID, "MZ0007");
    for (k, v) in &parameters {
        dialect = dialect.parameter(k.clone(), v.clone());
    }
    let ws = format!("ws://{}/api/telephony/twilio/media", app.app().addr());
    let mut phone = FakeMediaClient::connect(&ws, dialect, Playout::RealTime).await.unwrap();
    if order == TranscriptDone::BeforeClearedMarks {
        phone.hold_cleared_marks();
    }

    // The caller speaks up halfway between two marks (the one at 500 ms is back, the one at
    // 600 ms not yet), so the truncate's figure does not depend on a race with an echo.
    let barge_at = Duration::from_millis(550);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while phone.played() < barge_at {
        assert!(tokio::time::Instant::now() < deadline, "the greeting never played {barge_at:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    phone.send_audio(&[0xffu8; 160], Pace::AsFastAsPossible).await.unwrap();
    assert!(phone.wait_for(Duration::from_secs(10), |f| *f == ServerFrame::Clear).await.is_some());
    let truncate = openai
        .wait_for_json(Duration::from_secs(10), |v| v["type"] == "conversation.item.truncate")
        .await
        .expect("truncate");
    assert_eq!(truncate["item_id"], "item_greet");
    let audio_end_ms = truncate["audio_end_ms"].as_u64().unwrap();

    // What the phone reported played: the marks it echoed as played before the clear.
    let echoes = phone.echoes();
    let played: Vec<u64> = echoes
        .iter()
        .filter(|e| e.cause == EchoCause::Played)
        .map(|e| e.name.strip_prefix("item_greet@").unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        played.last().copied(),
        Some(audio_end_ms),
        "the truncate is at the last mark played: {echoes:?}"
    );
    // And what it actually played when the clear came, to one mark's precision.
    let heard = phone.played_at_clears()[0].as_millis() as u64;
    assert!(
        audio_end_ms <= heard && heard - audio_end_ms <= u64::from(MARK_EVERY_MS),
        "truncated at {audio_end_ms} ms, the phone had played {heard} ms"
    );

    match order {
        TranscriptDone::BeforeClearedMarks => {
            // The transcript is recorded while the cleared marks are still held back.
            events_until(&app, &call_id, "TranscriptSegmentAdded").await;
            assert!(phone.echoes().iter().all(|e| e.cause == EchoCause::Played));
            assert!(phone.release_held_marks() > 0, "the clear had marks to return");
        }
        TranscriptDone::AfterClearedMarks => {
            assert!(echoes.iter().any(|e| e.cause == EchoCause::Cleared), "{echoes:?}");
            phone.send_audio(&after_marks, Pace::AsFastAsPossible).await.unwrap();
        }
    }
    let events = events_until(&app, &call_id, "TranscriptSegmentAdded").await;
    let (_, segment) = events.iter().find(|(t, _)| t == "TranscriptSegmentAdded").unwrap();
    let segment = &segment["TranscriptSegmentAdded"];
    assert_eq!(
        (segment["speaker"].as_str(), segment["text"].as_str()),
        (Some("agent"), Some("Hello, this is Acme."))
    );
    let span = segment["end_ms"].as_u64().unwrap() - segment["start_ms"].as_u64().unwrap();
    assert_eq!(span, audio_end_ms, "the agent's segment is what the truncate said was heard: {segment}");

    phone.stop().unwrap();
    events_until(&app, &call_id, "CallCompleted").await;
    app.cleanup().await;
}

#[tokio::test]
async fn a_barge_in_truncates_at_the_audio_played_and_the_transcript_says_so_when_it_comes_first() {
    barge_in_while_the_phone_plays_in_real_time(TranscriptDone::BeforeClearedMarks).await;
}

#[tokio::test]
async fn a_barge_in_truncates_at_the_audio_played_and_the_transcript_says_so_when_it_comes_last() {
    barge_in_while_the_phone_plays_in_real_time(TranscriptDone::AfterClearedMarks).await;
}

/// The value of a counter in /metrics with these labels (0 when not there yet).
async fn counter(app: &TestApp, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = app.anon.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Twilio resends status callbacks (the same SequenceNumber on a retry, a new one when it
/// reports a status again): each (CallSid, status, sequence) is applied once, a step already
/// passed records nothing, and a callback the ended call refuses is counted, not dropped.
#[tokio::test]
async fn twilio_status_callbacks_apply_once_per_call_status_and_sequence() {
    use kraliki_voice::telephony::testing::api::FakeTwilioApi;
    let twilio = FakeTwilioApi::start(ACCOUNT, TOKEN).await.unwrap();
    let openai = FakeOpenAi::start().await.unwrap();
    let app = outbound_app(&twilio, &openai, None).await;
    let r = app
        .post_json(
            "/api/v1/contacts",
            json!({"phone_number": "+420603123459", "timezone": zone_where_it_is(12)}),
        )
        .await;
    let contact = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let r =
        app.post_json("/api/v1/campaigns", json!({"name": "Statuses", "caller_id": "+14155550100"})).await;
    let campaign = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let r = app.post_json("/api/v1/call-lists", json!({"campaign_id": campaign, "name": "all"})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app.client.post(app.url(&format!("/api/v1/campaigns/{campaign}/start"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let r = app
        .post_json("/api/v1/calls/outbound", json!({"campaign_id": campaign, "contact_id": contact}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    let placed: Value = r.json().await.unwrap();
    let (sid, call_id) = (
        placed["provider_call_id"].as_str().unwrap().to_owned(),
        placed["call_id"].as_str().unwrap().to_owned(),
    );
    // Twilio calls back the status URL it was given (it names our call).
    let status_url = twilio
        .calls()
        .into_iter()
        .find(|c| c.sid == sid)
        .unwrap()
        .params
        .into_iter()
        .find(|(n, _)| n == "StatusCallback")
        .unwrap()
        .1;
    let status_path = status_url.strip_prefix(PUBLIC).unwrap().to_owned();

    let callback = |extra: &[(&'static str, &'static str)]| {
        let mut params = vec![
            ("CallSid", sid.clone()),
            ("AccountSid", ACCOUNT.to_owned()),
            ("From", "+14155550100".to_owned()),
            ("To", "+420603123459".to_owned()),
        ];
        params.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        let (app, path) = (&app, status_path.as_str());
        async move {
            let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let r = webhook(app, path, &params, None).await;
            assert_eq!(r.status(), StatusCode::NO_CONTENT, "{params:?}");
        }
    };
    let refused_before = counter(
        &app,
        "kraliki_webhook_commands_refused_total",
        &[("provider", "twilio"), ("command", "ReceiveDtmf")],
    )
    .await;
    for extra in [
        &[("CallStatus", "ringing"), ("SequenceNumber", "0")][..],
        // A retry of the same callback.
        &[("CallStatus", "ringing"), ("SequenceNumber", "0")],
        &[("CallStatus", "in-progress"), ("SequenceNumber", "1")],
        &[("CallStatus", "in-progress"), ("SequenceNumber", "1")],
        // The same status reported again under a new sequence number: a step already passed.
        &[("CallStatus", "in-progress"), ("SequenceNumber", "2")],
        // Callbacks the call would apply every time (digits, a recording): only the key
        // keeps them once.
        &[("Digits", "42")],
        &[("Digits", "42")],
        &[
            ("RecordingSid", "RE0001"),
            ("RecordingUrl", "https://api.twilio.com/rec/RE0001"),
            ("RecordingStatus", "completed"),
        ],
        &[
            ("RecordingSid", "RE0001"),
            ("RecordingUrl", "https://api.twilio.com/rec/RE0001"),
            ("RecordingStatus", "completed"),
        ],
        &[("CallStatus", "completed"), ("CallDuration", "7"), ("SequenceNumber", "3")],
        &[("CallStatus", "completed"), ("CallDuration", "7"), ("SequenceNumber", "3")],
        // Late: digits for a call that has ended, which the call refuses.
        &[("Digits", "9")],
        // A late `ringing` after the end: a step already passed.
        &[("CallStatus", "ringing"), ("SequenceNumber", "0")],
    ] {
        callback(extra).await;
    }

    let rows: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT event_type, metadata ->> 'idempotency_key' FROM events WHERE aggregate_type = 'Call' AND aggregate_id = $1 ORDER BY sequence",
    )
    .bind(&call_id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let key = |rest: &str| Some(format!("twilio:{sid}:{rest}"));
    assert_eq!(
        rows,
        [
            ("CallRequested".to_owned(), None),
            ("CallPlaced".to_owned(), None),
            ("CallRinging".to_owned(), key("ringing:0")),
            ("CallAnswered".to_owned(), key("in-progress:1")),
            ("DtmfReceived".to_owned(), key("digits:42")),
            ("RecordingAvailable".to_owned(), key("recording:RE0001:completed")),
            ("CallCompleted".to_owned(), key("completed:3")),
        ],
        "one event per (CallSid, status, sequence), none for a step already passed"
    );
    let refused_after = counter(
        &app,
        "kraliki_webhook_commands_refused_total",
        &[("provider", "twilio"), ("command", "ReceiveDtmf")],
    )
    .await;
    assert_eq!(refused_after - refused_before, 1.0, "the late digits were refused and counted");
    app.cleanup().await;
}

mod agent_legs;
mod ivr_calls;
mod template_ui;

mod telnyx {
    use super::*;
    use kraliki_voice::telephony::testing::api::{FakeTelnyxApi, FakeTelnyxCall};
    use kraliki_voice::telephony::testing::media::{FrameOrder, TelnyxDialect};
    use kraliki_voice::telnyx::TelnyxSigner;

    pub(super) const KEY: &str = "KEYtelnyx-test";

    pub(super) fn signed(signer: &TelnyxSigner, body: &str, timestamp: i64) -> (String, String) {
        let ts = timestamp.to_string();
        (signer.sign(&ts, body.as_bytes()), ts)
    }

    pub(super) async fn post(
        app: &TestApp,
        body: &str,
        (signature, ts): &(String, String),
    ) -> reqwest::Response {
        app.anon
            .post(app.url("/api/telephony/telnyx/webhook"))
            .header("content-type", "application/json")
            .header("telnyx-signature-ed25519", signature)
            .header("telnyx-timestamp", ts)
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }

    /// A server that takes Telnyx calls (Call Control at `telnyx`, webhooks signed by `signer`)
    /// with the voice provider `voice` sets up.
    pub(super) async fn telnyx_app(
        telnyx: &FakeTelnyxApi,
        signer: &TelnyxSigner,
        voice: impl FnOnce(&mut kraliki_api::Settings) + Send + 'static,
    ) -> TestApp {
        let (public_key, telnyx_url) = (signer.public_key_base64(), telnyx.base_url());
        spawn_app_with(
            move |s| {
                voice(s);
                s.providers.telnyx_api_key = Some(SecretString::from(KEY));
                s.providers.telnyx_public_key = Some(public_key);
                s.providers.telnyx_api_url = Some(telnyx_url);
                s.providers.public_base_url = Some(PUBLIC.into());
            },
            Vec::new(),
        )
        .await
    }

    /// Telnyx's `call.initiated` for a call to `to`.
    pub(super) fn initiated(call: &FakeTelnyxCall, event_id: &str, to: &str) -> String {
        json!({"data": {"record_type": "event", "event_type": "call.initiated", "id": event_id,
            "occurred_at": "2026-11-24T10:00:00Z", "payload": {"call_control_id": call.call_control_id, "call_leg_id": call.call_leg_id,
            "call_session_id": call.call_session_id, "client_state": null, "connection_id": "c1", "from": "+420603123456",
            "to": to, "direction": "incoming", "state": "parked"}}, "meta": {"attempt": 1, "delivered_to": "https://voice.example.com"}})
        .to_string()
    }

    /// Telnyx delivers frames out of order: the agent still hears them in order.
    #[tokio::test]
    async fn an_inbound_telnyx_call_is_answered_with_streaming_and_its_audio_arrives_in_order() {
        let telnyx = FakeTelnyxApi::start(KEY).await.unwrap();
        let openai = FakeOpenAi::start().await.unwrap();
        let signer = TelnyxSigner::from_secret_bytes(&[7u8; 32]);
        let openai_url = openai.config().base_url;
        let app = telnyx_app(&telnyx, &signer, move |s| {
            s.providers.openai_api_key = Some(SecretString::from(FakeOpenAi::API_KEY));
            s.providers.openai_realtime_url = Some(openai_url);
        })
        .await;
        inbound_campaign(&app, "+14155550102").await;
        let call = telnyx.incoming_call();
        let body = initiated(&call, "5a1e4f2c-0000-4000-8000-000000000001", "+14155550102");
        let now = chrono::Utc::now().timestamp();

        // Stale, tampered and unsigned deliveries are refused.
        let r = post(&app, &body, &signed(&signer, &body, now - 400)).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let r =
            post(&app, &body.replace("+420603123456", "+420603000000"), &signed(&signer, &body, now)).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let r =
            app.anon.post(app.url("/api/telephony/telnyx/webhook")).body(body.clone()).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(telnyx.commands().is_empty());

        // Delivered twice: answered once (the same command_id both times).
        for _ in 0..2 {
            let r = post(&app, &body, &signed(&signer, &body, now)).await;
            assert_eq!(r.status(), StatusCode::NO_CONTENT);
        }
        let answers: Vec<_> = telnyx.commands().into_iter().filter(|c| c.action == "answer").collect();
        assert_eq!(answers.len(), 2);
        assert_eq!(answers[0].command_id, answers[1].command_id);
        assert!(answers[1].duplicate, "Telnyx ignores the repeat");
        let stream_url = answers[0].body["stream_url"].as_str().unwrap().to_owned();
        assert!(
            stream_url.starts_with("wss://voice.example.com/api/telephony/telnyx/media?"),
            "{stream_url}"
        );
        assert_eq!(answers[0].body["stream_bidirectional_codec"], "PCMU");

        let ws = stream_url.replace("wss://voice.example.com", &format!("ws://{}", app.app().addr()));
        let dialect = TelnyxDialect::new(call.call_control_id.clone(), "stream-1");
        let mut phone = FakeMediaClient::connect(&ws, dialect, Playout::Instant).await.unwrap();
        // 24 frames, frame i filled with byte i, sent shuffled in blocks of 6.
        let audio: Vec<u8> = (0..24u8).flat_map(|i| std::iter::repeat_n(i + 1, 160)).collect();
        phone
            .send_audio_ordered(&audio, Pace::AsFastAsPossible, FrameOrder::Shuffled { block: 6, seed: 42 })
            .await
            .unwrap();
        let heard = kraliki_tests::eventually(
            Duration::from_secs(10),
            "all caller audio at the provider",
            || async {
                use base64::Engine;
                let bytes: Vec<u8> = openai
                    .received_json()
                    .iter()
                    .filter(|v| v["type"] == "input_audio_buffer.append")
                    .flat_map(|v| {
                        base64::engine::general_purpose::STANDARD
                            .decode(v["audio"].as_str().unwrap())
                            .unwrap()
                    })
                    .collect();
                (bytes.len() >= audio.len()).then_some(bytes)
            },
        )
        .await;
        assert_eq!(heard, audio, "in order");

        // The caller hangs up: the stream stops, the call completes, Telnyx's hangup webhook
        // changes nothing more.
        phone.stop().unwrap();
        let call_id = kraliki_voice::calls::call_uuid("telnyx", &call.call_control_id).to_string();
        let events = events_until(&app, &call_id, "CallCompleted").await;
        assert_eq!(events.first().unwrap().0, "CallInitiated");
        let hangup = json!({"data": {"record_type": "event", "event_type": "call.hangup", "id": "5a1e4f2c-0000-4000-8000-000000000002",
            "occurred_at": "2026-11-24T10:01:00Z", "payload": {"call_control_id": call.call_control_id, "hangup_cause": "normal_clearing",
            "hangup_source": "caller", "start_time": "2026-11-24T10:00:00Z", "end_time": "2026-11-24T10:01:00Z"}}}).to_string();
        let r = post(&app, &hangup, &signed(&signer, &hangup, chrono::Utc::now().timestamp())).await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert_eq!(call_events(&app, &call_id).await.len(), events.len());
        app.cleanup().await;
    }

    /// An outbound call placed through Telnyx: dialed with AMD, and when Telnyx reports it
    /// answered its stream to the AI agent starts (once, however often the webhook comes).
    #[tokio::test]
    async fn an_outbound_call_is_placed_through_telnyx_and_streams_once_answered() {
        let telnyx = FakeTelnyxApi::start(KEY).await.unwrap();
        let openai = FakeOpenAi::start().await.unwrap();
        openai.push(Step::wait_for_type("input_audio_buffer.append"));
        // The person asks to be called back later (well after the server is up and the call
        // placed, however slow the run: the list is then asked as of instants around it).
        let callback_at = (chrono::Utc::now() + chrono::Duration::minutes(30)).to_rfc3339();
        openai.push(Step::Json(FakeOpenAi::function_call_arguments_done(
            "r1",
            "i0",
            "c0",
            "schedule_callback",
            &json!({"at": callback_at, "note": "after lunch"}),
        )));
        openai.push(Step::wait_for_type("conversation.item.create"));
        openai.push(Step::Json(FakeOpenAi::function_call_arguments_done(
            "r1",
            "i1",
            "c1",
            "end_call",
            &json!({"disposition": "callback_requested"}),
        )));
        let signer = TelnyxSigner::from_secret_bytes(&[7u8; 32]);
        let openai_url = openai.config().base_url;
        let app = telnyx_app(&telnyx, &signer, move |s| {
            s.providers.openai_api_key = Some(SecretString::from(FakeOpenAi::API_KEY));
            s.providers.openai_realtime_url = Some(openai_url);
            s.providers.telnyx_connection_id = Some("1494404757140276705".into());
        })
        .await;
        let r = app
            .post_json(
                "/api/v1/contacts",
                json!({"phone_number": "+420603123456", "timezone": zone_where_it_is(12)}),
            )
            .await;
        let contact = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
        let r = app
            .post_json("/api/v1/campaigns", json!({"name": "Telnyx outbound", "caller_id": "+14155550100"}))
            .await;
        let body: Value = r.json().await.unwrap();
        let campaign = body["id"].as_str().unwrap_or_else(|| panic!("{body}")).to_owned();
        let r = app.post_json("/api/v1/call-lists", json!({"campaign_id": campaign, "name": "all"})).await;
        let list = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
        let r =
            app.client.post(app.url(&format!("/api/v1/campaigns/{campaign}/start"))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());

        let r = app
            .post_json(
                "/api/v1/calls/outbound",
                json!({"campaign_id": campaign, "contact_id": contact, "detect_machine": true, "provider": "telnyx"}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
        let placed: Value = r.json().await.unwrap();
        assert_eq!(placed["provider"], "telnyx");
        let ccid = placed["provider_call_id"].as_str().unwrap().to_owned();
        let dial = telnyx.requests().into_iter().find(|r| r.path == "/v2/calls").expect("dialed").json();
        assert_eq!(
            (&dial["connection_id"], &dial["to"], &dial["from"], &dial["answering_machine_detection"]),
            (
                &json!("1494404757140276705"),
                &json!("+420603123456"),
                &json!("+14155550100"),
                &json!("detect")
            )
        );
        assert!(
            telnyx.commands().iter().all(|c| c.action != "streaming_start"),
            "no stream before the answer"
        );

        // Telnyx echoes the dial's client_state (our call id) in the call's webhooks.
        let client_state = dial["client_state"].clone();
        assert!(client_state.is_string(), "{dial}");
        let answered = json!({"data": {"record_type": "event", "event_type": "call.answered", "id": "5a1e4f2c-0000-4000-8000-000000000021",
            "occurred_at": "2026-11-24T10:00:05Z", "payload": {"call_control_id": ccid, "call_leg_id": "l", "call_session_id": "s",
            "client_state": client_state, "connection_id": "1494404757140276705", "from": "+14155550100", "to": "+420603123456",
            "direction": "outgoing", "state": "answered"}}})
        .to_string();
        for _ in 0..2 {
            let r = post(&app, &answered, &signed(&signer, &answered, chrono::Utc::now().timestamp())).await;
            assert_eq!(r.status(), StatusCode::NO_CONTENT);
        }
        let streams: Vec<_> =
            telnyx.commands().into_iter().filter(|c| c.action == "streaming_start").collect();
        // Redelivered: the same command id, which Telnyx ignores the second time.
        assert_eq!(streams.len(), 2, "{streams:?}");
        assert_eq!(streams[0].command_id, streams[1].command_id);
        assert!(!streams[0].duplicate && streams[1].duplicate);
        assert_eq!(streams[0].body["stream_bidirectional_codec"], "PCMU");
        let stream_url = streams[0].body["stream_url"].as_str().unwrap().to_owned();
        let ws = stream_url.replace("wss://voice.example.com", &format!("ws://{}", app.app().addr()));
        let mut phone =
            FakeMediaClient::connect(&ws, TelnyxDialect::new(ccid.clone(), "stream-3"), Playout::Instant)
                .await
                .unwrap();
        phone.send_audio(&[0xffu8; 320], Pace::AsFastAsPossible).await.unwrap();
        let call_id = placed["call_id"].as_str().unwrap().to_owned();
        let events = events_until(&app, &call_id, "CallCompleted").await;
        let (_, done) = events.iter().find(|(t, _)| t == "CallCompleted").unwrap();
        assert_eq!(done["CallCompleted"]["disposition"], "callback_requested");
        // Requested first (before Telnyx was asked), then placed with Telnyx's call id.
        assert_eq!(events[0].0, "CallRequested");
        assert_eq!(events[0].1["CallRequested"]["direction"], "outbound");
        assert_eq!(events[0].1["CallRequested"]["contact_id"], json!(contact));
        assert_eq!(events[1].1["CallPlaced"]["provider_call_id"], json!(ccid));
        let (_, callback) = events
            .iter()
            .find(|(t, _)| t == "CallbackScheduled")
            .unwrap_or_else(|| panic!("no callback scheduled: {events:?}"));
        assert_eq!(callback["CallbackScheduled"]["note"], "after lunch");

        // Connected, but the callback reopens the contact: not before its time, then first. The
        // list is asked as of a given instant, so this holds however slow the run.
        let callback_at = chrono::DateTime::parse_from_rfc3339(&callback_at).unwrap().to_utc();
        app.caught_up().await;
        let before = next_at(&app, &list, callback_at - chrono::Duration::seconds(1)).await;
        assert!(
            before.iter().all(|m| m["id"] != contact.as_str()),
            "the callback is not due yet: {before:?}"
        );
        let after = next_at(&app, &list, callback_at + chrono::Duration::seconds(1)).await;
        let due = after.first().unwrap_or_else(|| panic!("the callback is due: {after:?}"));
        assert_eq!(due["id"], contact.as_str(), "a due callback comes first");
        assert_eq!(due["callback_note"], "after lunch");
        assert_eq!(due["campaign_last_outcome"], "connected");
        app.cleanup().await;
    }

    /// A Deepgram campaign's call talks to the Deepgram Voice Agent (μ-law both ways, no
    /// resampling); the agent hands the caller to a human queue, which Telnyx `enqueue`s.
    #[tokio::test]
    async fn a_deepgram_agent_call_over_telnyx_is_enqueued_for_a_human() {
        use kraliki_voice::testing::FakeDeepgramAgent;
        let telnyx = FakeTelnyxApi::start(KEY).await.unwrap();
        let agent = FakeDeepgramAgent::start().await.unwrap();
        agent.set_speech(vec![0x2a; 800]);
        // After the caller's first audio: their words, then the agent's function call.
        agent.push(Step::wait_for(|f| matches!(f, kraliki_voice::testing::ClientFrame::Binary(_))));
        agent.push(Step::Json(FakeDeepgramAgent::conversation_text("user", "I need a person, please.")));
        agent.push(agent.client_function_call("fc_1", "transfer_to_queue", &json!({"queue": "sales"})));
        let signer = TelnyxSigner::from_secret_bytes(&[7u8; 32]);
        let agent_url = agent.config().url;
        let app = telnyx_app(&telnyx, &signer, move |s| {
            s.providers.deepgram_api_key = Some(SecretString::from(FakeDeepgramAgent::API_KEY));
            s.providers.deepgram_agent_url = Some(agent_url);
        })
        .await;
        voice_campaign(&app, "+14155550104", "deepgram", "Hello from Deepgram.").await;
        let call = telnyx.incoming_call();
        let body = initiated(&call, "5a1e4f2c-0000-4000-8000-000000000011", "+14155550104");
        let r = post(&app, &body, &signed(&signer, &body, chrono::Utc::now().timestamp())).await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let answer = telnyx.commands().into_iter().find(|c| c.action == "answer").expect("answered");
        let stream_url = answer.body["stream_url"].as_str().unwrap().to_owned();
        let ws = stream_url.replace("wss://voice.example.com", &format!("ws://{}", app.app().addr()));
        let dialect = TelnyxDialect::new(call.call_control_id.clone(), "stream-2");
        let mut phone = FakeMediaClient::connect(&ws, dialect, Playout::Instant).await.unwrap();
        // The greeting's μ-law reaches the phone as it left Deepgram.
        assert!(phone
            .wait_for(Duration::from_secs(10), |f| matches!(f, ServerFrame::Mark(_)))
            .await
            .is_some());
        phone.send_audio(&[0x11u8; 320], Pace::AsFastAsPossible).await.unwrap();

        let call_id = kraliki_voice::calls::call_uuid("telnyx", &call.call_control_id).to_string();
        let events = events_until(&app, &call_id, "CallCompleted").await;
        let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
        let (_, completed) = events.iter().find(|(t, _)| t == "CallCompleted").unwrap();
        assert_eq!(completed["CallCompleted"]["disposition"], "transferred", "{types:?}");
        assert!(phone.received_audio().starts_with(&[0x2a; 800]), "greeting passed through");
        assert_eq!(agent.settings().unwrap()["audio"]["input"]["encoding"], "mulaw");
        assert!(agent.audio_received().starts_with(&[0x11; 320]), "caller audio passed through");
        assert!(events.iter().any(|(t, p)| t == "TranscriptSegmentAdded"
            && p["TranscriptSegmentAdded"]["text"] == "I need a person, please."));
        let enqueue = telnyx.commands().into_iter().find(|c| c.action == "enqueue").expect("enqueued");
        assert_eq!(enqueue.call_control_id, call.call_control_id);
        assert_eq!(enqueue.body["queue_name"], format!("{}:sales", app.operator_company));
        assert_eq!(enqueue.command_id.as_deref(), Some(format!("enqueue-{call_id}").as_str()));
        app.cleanup().await;
    }
}

/// The same call path with Gemini Live: its 24 kHz audio reaches the phone as 8 kHz μ-law, an
/// interruption clears the phone, and a transfer request ends the AI's part of the call.
#[tokio::test]
async fn a_gemini_call_is_resampled_interrupted_and_transferred_to_a_queue() {
    use kraliki_voice::testing::FakeGemini;
    let gemini = FakeGemini::start().await.unwrap();
    let tone: Vec<i16> = (0..4800).map(|i| ((i as f64 * 0.1).sin() * 8000.0) as i16).collect(); // 200 ms at 24 kHz
    gemini.push_all(FakeGemini::greeting_script(&tone, "Hello from Gemini."));
    gemini.push(Step::wait_for_key("realtimeInput"));
    gemini.push(Step::Json(FakeGemini::interrupted()));
    // In chunks and never `finished`, as Gemini's native-audio models send it.
    gemini.push(Step::Json(FakeGemini::input_transcription("Put me through ", false)));
    gemini.push(Step::Json(FakeGemini::input_transcription("to billing.", false)));
    gemini.push(Step::Json(FakeGemini::tool_call(
        "fc_1",
        "transfer_to_queue",
        &json!({"queue": "billing", "reason": "asked", "summary": "Disputes the November invoice."}),
    )));
    let twilio = kraliki_voice::telephony::testing::api::FakeTwilioApi::start(ACCOUNT, TOKEN).await.unwrap();
    twilio.incoming_call("CA0100", "+420603123456", "+14155550103");
    let (url, twilio_url) = (gemini.config().url, twilio.base_url());
    let app = spawn_app_with(
        move |s| {
            s.providers.gemini_api_key = Some(SecretString::from(FakeGemini::API_KEY));
            s.providers.gemini_live_url = Some(url);
            s.providers.twilio_account_sid = Some(ACCOUNT.into());
            s.providers.twilio_api_url = Some(twilio_url);
            s.providers.twilio_auth_token = Some(SecretString::from(TOKEN));
            s.providers.public_base_url = Some(PUBLIC.into());
        },
        Vec::new(),
    )
    .await;
    voice_campaign(&app, "+14155550103", "gemini", "Hello from Gemini.").await;
    let (call_id, mut phone) = inbound_twilio_call(&app, "CA0100", "+14155550103").await;
    assert!(phone.wait_for(Duration::from_secs(10), |f| matches!(f, ServerFrame::Mark(_))).await.is_some());
    phone.send_audio(&[0xffu8; 320], Pace::AsFastAsPossible).await.unwrap();
    assert!(
        phone.wait_for(Duration::from_secs(10), |f| *f == ServerFrame::Clear).await.is_some(),
        "clear on interruption"
    );
    // 200 ms at 24 kHz became 200 ms at 8 kHz: 1,600 μ-law bytes (give or take the filter's edge).
    let heard = phone.received_audio().len();
    assert!((1400..=1800).contains(&heard), "{heard} bytes of greeting");
    // The caller's 8 kHz audio reached Gemini as 16 kHz PCM.
    let sent =
        gemini.wait_for_json(Duration::from_secs(5), |v| v.get("realtimeInput").is_some()).await.unwrap();
    assert_eq!(sent["realtimeInput"]["audio"]["mimeType"], "audio/pcm;rate=16000");

    let events = events_until(&app, &call_id, "CallCompleted").await;
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    let (_, transfer) =
        events.iter().find(|(t, _)| t == "TransferRequested").unwrap_or_else(|| panic!("{types:?}"));
    assert_eq!(transfer["TransferRequested"]["target"], json!({"type": "queue", "queue": "billing"}));
    let (_, note) = events.iter().find(|(t, _)| t == "CallSummarized").unwrap_or_else(|| panic!("{types:?}"));
    assert_eq!(note["CallSummarized"]["summary"], "Disputes the November invoice.", "a warm transfer");
    let (_, completed) = events.iter().find(|(t, _)| t == "CallCompleted").unwrap();
    assert_eq!(completed["CallCompleted"]["disposition"], "transferred");
    assert!(
        events.iter().any(|(t, p)| t == "TranscriptSegmentAdded"
            && p["TranscriptSegmentAdded"]["text"] == "Put me through to billing."),
        "{types:?}"
    );
    // Twilio was told to run <Enqueue> on the live call: the tenant's billing queue.
    let redirect = twilio
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/Calls/CA0100.json"))
        .expect("the call was redirected");
    let twiml = redirect.form_values("Twiml").pop().expect("TwiML");
    assert!(twiml.contains(&format!("<Enqueue>{}:billing</Enqueue>", app.operator_company)), "{twiml}");
    app.cleanup().await;
}

/// An outbound call for a campaign: placed through Twilio's REST API (a fake that answers like
/// it), Twilio then fetches our voice URL (signed), the stream runs, the status callbacks end it,
/// and the contact's attempt shows in the dialer's view.
#[tokio::test]
async fn an_outbound_call_is_placed_through_twilio_and_counts_as_an_attempt() {
    use kraliki_voice::telephony::testing::api::FakeTwilioApi;
    let twilio = FakeTwilioApi::start(ACCOUNT, TOKEN).await.unwrap();
    let openai = FakeOpenAi::start().await.unwrap();
    openai.push(Step::wait_for_type("input_audio_buffer.append"));
    openai.push(Step::Json(FakeOpenAi::function_call_arguments_done(
        "r1",
        "i1",
        "c1",
        "end_call",
        &json!({"disposition": "not_interested"}),
    )));
    let app = outbound_app(&twilio, &openai, None).await;
    let c = &app.client;
    // A zone where it is now around noon, so the calling window holds whenever this runs, and
    // one where it is around midnight.
    let (noon, midnight) = (zone_where_it_is(12), zone_where_it_is(0));
    let r = app
        .post_json(
            "/api/v1/contacts",
            json!({"phone_number": "+420603123456", "first_name": "Ada", "timezone": noon}),
        )
        .await;
    let contact = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let r = app
        .post_json("/api/v1/contacts", json!({"phone_number": "+420603123458", "timezone": midnight}))
        .await;
    let sleeping = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let r = app
        .post_json("/api/v1/contacts", json!({"phone_number": "+420603123457", "do_not_call": true}))
        .await;
    let blocked = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let r =
        app.post_json("/api/v1/campaigns", json!({"name": "Outbound", "caller_id": "+14155550100"})).await;
    let campaign = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let r = app.post_json("/api/v1/call-lists", json!({"campaign_id": campaign, "name": "all"})).await;
    let list = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();

    let place = |contact: &str| {
        app.post_json(
            "/api/v1/calls/outbound",
            json!({"campaign_id": campaign, "contact_id": contact, "detect_machine": true}),
        )
    };
    let r = place(&contact).await;
    assert_eq!(r.status(), StatusCode::CONFLICT, "a draft campaign does not dial");
    let r = c.post(app.url(&format!("/api/v1/campaigns/{campaign}/start"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = place(&blocked).await;
    assert_eq!(r.status(), StatusCode::CONFLICT, "do-not-call");
    let r = place(&sleeping).await;
    let problem: Value = r.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("calling window"), "{problem}");
    assert!(twilio.calls().is_empty());

    let r = place(&contact).await;
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    let placed: Value = r.json().await.unwrap();
    let sid = placed["provider_call_id"].as_str().unwrap().to_owned();
    let created = twilio.calls().into_iter().find(|c| c.sid == sid).unwrap();
    assert_eq!((created.to.as_str(), created.from.as_str()), ("+420603123456", "+14155550100"));
    let param = |k: &str| created.params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(param("MachineDetection").as_deref(), Some("Enable"));
    let voice_url = param("Url").unwrap();
    assert!(voice_url.starts_with(&format!("{PUBLIC}/api/telephony/twilio/voice?")), "{voice_url}");

    // Twilio fetches the URL it was given, signed over exactly that URL.
    let path = voice_url.strip_prefix(PUBLIC).unwrap();
    let params = [
        ("CallSid", sid.as_str()),
        ("From", "+14155550100"),
        ("To", "+420603123456"),
        ("Direction", "outbound-api"),
        ("AnsweredBy", "human"),
    ];
    let r = webhook(&app, path, &params, Some(twilio_signature(&voice_url, &params))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let twiml = r.text().await.unwrap();
    let parameters = stream_parameters(&twiml);
    assert!(parameters.iter().any(|(k, v)| k == "contact_id" && *v == contact));
    let mut dialect = TwilioDialect::new(sid.clone(), "MZ0200");
    for (k, v) in &parameters {
        dialect = dialect.parameter(k.clone(), v.clone());
    }
    let ws = format!("ws://{}/api/telephony/twilio/media", app.app().addr());
    let mut phone = FakeMediaClient::connect(&ws, dialect, Playout::Instant).await.unwrap();
    phone.send_audio(&[0xffu8; 320], Pace::AsFastAsPossible).await.unwrap();
    let call_id = placed["call_id"].as_str().unwrap().to_owned();
    let events = events_until(&app, &call_id, "CallCompleted").await;
    let (_, done) = events.iter().find(|(t, _)| t == "CallCompleted").unwrap();
    assert_eq!(done["CallCompleted"]["disposition"], "not_interested");
    assert_eq!(events[0].1["CallRequested"]["direction"], "outbound");
    assert_eq!(events[1].1["CallPlaced"]["provider_call_id"], json!(sid));

    // The dialer sees the attempt: connected, so the contact is done for this campaign.
    app.caught_up().await;
    let r = c.get(app.url(&format!("/api/v1/call-lists/{list}/contacts"))).send().await.unwrap();
    let members = kraliki_tests::listed(r).await;
    let ada = members["items"].as_array().unwrap().iter().find(|m| m["id"] == contact.as_str()).unwrap();
    assert_eq!(
        (ada["campaign_attempts"].as_i64(), ada["campaign_last_outcome"].as_str()),
        (Some(1), Some("connected"))
    );
    let r = c.get(app.url(&format!("/api/v1/campaigns/{campaign}/analytics"))).send().await.unwrap();
    let stats: Value = r.json().await.unwrap();
    assert_eq!((stats["total_calls"].as_i64(), stats["connected_calls"].as_i64()), (Some(1), Some(1)));
    assert_eq!(twilio.calls().len(), 1, "exactly the one call was placed");
    app.cleanup().await;
}

/// The dialer keeps a progressive campaign at its concurrency: two calls in flight, the third
/// contact dialed once one of them ends; a contact that did not answer waits for its retry
/// delay. Rounds are driven here one by one (the background loop is off in tests).
#[tokio::test]
async fn the_dialer_keeps_a_progressive_campaign_at_its_concurrency() {
    use kraliki_voice::telephony::testing::api::FakeTwilioApi;
    let twilio = FakeTwilioApi::start(ACCOUNT, TOKEN).await.unwrap();
    let openai = FakeOpenAi::start().await.unwrap();
    let app = outbound_app(&twilio, &openai, None).await;
    let noon = zone_where_it_is(12);
    for number in ["+420603100001", "+420603100002", "+420603100003"] {
        let r = app.post_json("/api/v1/contacts", json!({"phone_number": number, "timezone": noon})).await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let r = app
        .post_json(
            "/api/v1/campaigns",
            json!({"name": "Renewals", "caller_id": "+14155550100", "max_concurrent_calls": 2,
                   "dialing_mode": "progressive"}),
        )
        .await;
    let campaign = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let r = app.post_json("/api/v1/call-lists", json!({"campaign_id": campaign, "name": "all"})).await;
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    let state = app.app().state().clone();
    assert_eq!(
        state.dialer.round_now(&state.managers, &uuid::Uuid::now_v7().to_string()).await.unwrap(),
        0,
        "a draft campaign is not dialed"
    );
    let r = app.client.post(app.url(&format!("/api/v1/campaigns/{campaign}/start"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    assert_eq!(
        state.dialer.round_now(&state.managers, &uuid::Uuid::now_v7().to_string()).await.unwrap(),
        2,
        "up to max_concurrent_calls"
    );
    assert_eq!(
        state.dialer.round_now(&state.managers, &uuid::Uuid::now_v7().to_string()).await.unwrap(),
        0,
        "both lines busy"
    );
    let calls = twilio.calls();
    let mut dialed: Vec<&str> = calls.iter().map(|c| c.to.as_str()).collect();
    dialed.sort();
    assert_eq!(dialed, ["+420603100001", "+420603100002"], "in the list's order");
    assert!(calls.iter().all(|c| c.from == "+14155550100"));

    // The first is not answered: the line frees, the third contact is dialed, and the first
    // waits for its retry delay.
    // Twilio's final status callback for the call to `to`.
    let ended = |to: &'static str, status: &'static str| {
        let call = twilio.calls().into_iter().find(|c| c.to == to).unwrap();
        let callback = call.params.iter().find(|(n, _)| n == "StatusCallback").unwrap().1.clone();
        // Twilio calls back the status URL it was given (it names our call).
        let path = callback.strip_prefix(PUBLIC).unwrap().to_owned();
        let (app, sid) = (&app, call.sid);
        async move {
            let params = [
                ("CallSid", sid.as_str()),
                ("AccountSid", ACCOUNT),
                ("CallStatus", status),
                ("SequenceNumber", "2"),
                ("From", "+14155550100"),
                ("To", to),
            ];
            let r = webhook(app, &path, &params, None).await;
            assert_eq!(r.status(), StatusCode::NO_CONTENT);
        }
    };
    ended("+420603100001", "no-answer").await;
    assert_eq!(state.dialer.round_now(&state.managers, &uuid::Uuid::now_v7().to_string()).await.unwrap(), 1);
    assert_eq!(state.dialer.round_now(&state.managers, &uuid::Uuid::now_v7().to_string()).await.unwrap(), 0);
    let mut dialed: Vec<String> = twilio.calls().into_iter().map(|c| c.to).collect();
    dialed.sort();
    assert_eq!(dialed, ["+420603100001", "+420603100002", "+420603100003"]);

    // Paused: nothing more is dialed, whatever frees up.
    let r = app.client.post(app.url(&format!("/api/v1/campaigns/{campaign}/pause"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    ended("+420603100002", "busy").await;
    assert_eq!(state.dialer.round_now(&state.managers, &uuid::Uuid::now_v7().to_string()).await.unwrap(), 0);
    assert_eq!(twilio.calls().len(), 3);
    app.cleanup().await;
}

/// With the dialer on, an active progressive campaign is dialed by itself.
#[tokio::test]
async fn the_dialer_runs_by_itself_on_a_server() {
    use kraliki_voice::telephony::testing::api::FakeTwilioApi;
    let twilio = FakeTwilioApi::start(ACCOUNT, TOKEN).await.unwrap();
    let openai = FakeOpenAi::start().await.unwrap();
    let app = outbound_app(&twilio, &openai, Some(50)).await;
    let contact = json!({"phone_number": "+420603100009", "timezone": zone_where_it_is(12)});
    assert_eq!(app.post_json("/api/v1/contacts", contact).await.status(), StatusCode::CREATED);
    let r = app.post_json("/api/v1/campaigns", json!({"name": "Auto", "caller_id": "+14155550100"})).await;
    let campaign = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    app.post_json("/api/v1/call-lists", json!({"campaign_id": campaign, "name": "all"})).await;
    let r = app.client.post(app.url(&format!("/api/v1/campaigns/{campaign}/start"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let call = kraliki_tests::eventually(Duration::from_secs(30), "the dialer placed the call", || async {
        twilio.calls().into_iter().next()
    })
    .await;
    assert_eq!(call.to, "+420603100009");
    app.cleanup().await;
}

/// The media loop never waits on the database: with the event store locked against writes, a
/// caller's DTMF is queued for the call's writer while the agent's audio keeps reaching the
/// phone; once the lock goes, the DTMF is written — nothing dropped.
#[tokio::test]
async fn a_slow_database_does_not_stop_the_audio() {
    let openai = FakeOpenAi::start().await.unwrap();
    openai.push_all(FakeOpenAi::greeting_script("resp_1", "item_greet", &[0x55u8; 160], "Hi."));
    // After the caller's DTMF and first audio: a second of agent audio, 20 ms a message.
    openai.push(Step::wait_for_type("input_audio_buffer.append"));
    for _ in 0..50 {
        openai.push(Step::Json(FakeOpenAi::audio_delta("resp_2", "item_2", &[0x22u8; 160])));
    }
    let app = spawn(&openai).await;
    inbound_campaign(&app, "+14155550100").await;
    let (call_id, mut phone) = inbound_twilio_call(&app, "CA0777", "+14155550100").await;
    assert!(phone.wait_for(Duration::from_secs(10), |f| matches!(f, ServerFrame::Mark(_))).await.is_some());
    events_until(&app, &call_id, "MediaStreamStarted").await;

    // Nobody may append to the log now.
    let mut blocker = app.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE events IN EXCLUSIVE MODE").execute(&mut *blocker).await.unwrap();
    phone.send_dtmf("5").unwrap();
    phone.send_audio(&[0xffu8; 160], Pace::AsFastAsPossible).await.unwrap();
    let started = std::time::Instant::now();
    let heard = kraliki_tests::eventually(Duration::from_secs(5), "the agent's second of audio", || async {
        let agent: usize = phone.received_audio().iter().filter(|b| **b == 0x22).count();
        (agent >= 50 * 160).then_some(agent)
    })
    .await;
    assert_eq!(heard, 50 * 160);
    assert!(started.elapsed() < Duration::from_secs(3), "the audio did not wait for the database");
    let dtmf: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_id = $1 AND event_type = 'DtmfReceived'",
    )
    .bind(&call_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(dtmf, 0, "still locked: not written yet");
    blocker.rollback().await.unwrap();
    events_until(&app, &call_id, "DtmfReceived").await;
    phone.stop().unwrap();
    events_until(&app, &call_id, "CallCompleted").await;
    app.cleanup().await;
}
