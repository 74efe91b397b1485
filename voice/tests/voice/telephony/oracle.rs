//! The vendors' own SDKs as oracles (Python, `KRALIKI_TEST_PYTHON`): Twilio's TwiML builder
//! and request validator, and both SDKs' REST clients sending the same requests as ours to
//! the same fake APIs.

use std::io::Write;
use std::process::{Command, Stdio};

use kraliki_voice::telephony::telnyx_control::{
    Answer, AnsweringMachineDetection, Bridge, ClientState, CommandId, Dial as TelnyxDial, DigitRules,
    Enqueue, Gather, GatherUsingSpeak, Hangup, RecordStart, RecordingChannels, RecordingFormat, Speak,
    StreamParams, TelnyxClient, Transfer,
};
use kraliki_voice::telephony::testing::api::{FakeTelnyxApi, FakeTwilioApi, RecordedRequest};
use kraliki_voice::telephony::twilio_rest::{
    CallInstructions, CallProgressEvent, CreateCall, MachineDetection, TwilioRestClient,
};
use kraliki_voice::telephony::twiml::{
    Connect, Dial, DialTarget, Gather as TwimlGather, HttpMethod, Prompt as GatherPrompt, Record, Say,
    Stream, VoiceResponse,
};
use kraliki_voice::twilio::TwilioValidator;
use secrecy::SecretString;
use serde_json::{json, Value};

use super::twiml::parse_xml;

const TWILIO_ORACLE: &str = include_str!("oracle_twilio.py");
const TELNYX_ORACLE: &str = include_str!("oracle_telnyx.py");

/// The interpreter with the SDKs (a run without one fails, as every oracle does).
fn python() -> String {
    crate::helpers::test_python()
}

fn run(python: &str, script: &str, input: &Value) -> Value {
    let mut child = Command::new(python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    child.stdin.take().unwrap().write_all(input.to_string().as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "oracle failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("oracle printed no JSON ({e}): {}", String::from_utf8_lossy(&output.stdout))
    })
}

/// Runs the oracle off the async runtime, so the fake servers keep answering it.
async fn run_async(python: String, script: &'static str, input: Value) -> Value {
    tokio::task::spawn_blocking(move || run(&python, script, &input)).await.unwrap()
}

const NASTY: &str = "a \"quoted\" & <tagged> 'value', tab\tand newline\n, ✓ žluťoučký";

#[test]
fn our_twiml_parses_equal_to_the_twilio_sdks() {
    let python = python();
    // (ours, the same verbs as the SDK script takes them)
    let cases: Vec<(VoiceResponse, Value)> = vec![
        (
            VoiceResponse::new().connect(
                Connect::stream(
                    Stream::new("wss://ex.com/media")
                        .unwrap()
                        .status_callback("https://ex.com/ss", None)
                        .unwrap()
                        .parameter("tenant", "42"),
                )
                .action("https://ex.com/after", None)
                .unwrap(),
            ),
            json!([{"kind": "connect", "action": "https://ex.com/after", "url": "wss://ex.com/media",
                    "status_callback": "https://ex.com/ss", "parameters": [["tenant", "42"]]}]),
        ),
        (
            VoiceResponse::new().connect(
                Connect::stream(
                    Stream::new("wss://voice.example.com/api/telephony/twilio/media?x=1&y=\"2\"")
                        .unwrap()
                        .name("ai-agent")
                        .status_callback("https://voice.example.com/ss?a=1&b=2", Some(HttpMethod::Post))
                        .unwrap()
                        .parameter("tenant", NASTY)
                        .parameter(NASTY, "x")
                        .parameter("empty", ""),
                )
                .action("https://voice.example.com/after?call=1&leg=2", Some(HttpMethod::Get))
                .unwrap(),
            ),
            json!([{"kind": "connect", "action": "https://voice.example.com/after?call=1&leg=2", "method": "GET",
                    "url": "wss://voice.example.com/api/telephony/twilio/media?x=1&y=\"2\"", "name": "ai-agent",
                    "status_callback": "https://voice.example.com/ss?a=1&b=2", "status_callback_method": "POST",
                    "parameters": [["tenant", NASTY], [NASTY, "x"], ["empty", ""]]}]),
        ),
        (
            VoiceResponse::new()
                .say(Say::new(NASTY).voice("Polly.Joanna").language("en-US").repeat(2))
                .pause(1)
                .dial(
                    Dial::new(DialTarget::Number("+420123456789".into()))
                        .caller_id("+12025550100")
                        .timeout(20)
                        .time_limit(600)
                        .answer_on_bridge(true)
                        .action("https://ex.com/dial?a=1&b=2", Some(HttpMethod::Post))
                        .unwrap(),
                )
                .dial(Dial::new(DialTarget::Sip("sip:agent@pbx.example.com".into())))
                .redirect("https://ex.com/next", Some(HttpMethod::Get))
                .unwrap()
                .enqueue(format!("t:{NASTY}"))
                .hangup(),
            json!([
                {"kind": "say", "text": NASTY, "voice": "Polly.Joanna", "language": "en-US", "loop": 2},
                {"kind": "pause", "length": 1},
                {"kind": "dial", "noun": "number", "target": "+420123456789", "caller_id": "+12025550100",
                 "timeout": 20, "time_limit": 600, "answer_on_bridge": true,
                 "action": "https://ex.com/dial?a=1&b=2", "method": "POST"},
                {"kind": "dial", "noun": "sip", "target": "sip:agent@pbx.example.com"},
                {"kind": "redirect", "url": "https://ex.com/next", "method": "GET"},
                                {"kind": "enqueue", "name": format!("t:{NASTY}")},
                {"kind": "hangup"},
            ]),
        ),
        // The contact center's own queue: the caller held with a wait URL, the agent's leg
        // dialing the caller out of it, the wait announcement.
        (
            VoiceResponse::new()
                .enqueue_waiting("q:0193", "https://ex.com/api/telephony/twilio/queue/wait?call_id=1&n=2")
                .unwrap()
                .dial(Dial::new(DialTarget::Queue("q:0193".into())).timeout(15))
                .say(Say::new("You are number 2 in the queue.").language("cs-CZ"))
                .pause(30),
            json!([
                {"kind": "enqueue", "name": "q:0193", "wait_url": "https://ex.com/api/telephony/twilio/queue/wait?call_id=1&n=2"},
                {"kind": "dial", "noun": "queue", "target": "q:0193", "timeout": 15},
                {"kind": "say", "text": "You are number 2 in the queue.", "language": "cs-CZ"},
                {"kind": "pause", "length": 30},
            ]),
        ),
        // The IVR: a prompt, a gather of keys and speech with its prompt, a voicemail.
        (
            VoiceResponse::new()
                .play("https://ex.com/welcome.mp3")
                .unwrap()
                .gather(
                    TwimlGather::new("https://ex.com/ivr?call_id=1&seq=2&kind=gather", "dtmf speech")
                        .unwrap()
                        .num_digits(4)
                        .finish_on_key("#")
                        .timeout(7)
                        .speech_timeout("auto")
                        .language("cs-CZ")
                        .hints(&["účet".to_owned(), "prodej".to_owned()])
                        .prompt(GatherPrompt::Say(Say::new(NASTY).language("cs-CZ")))
                        .prompt(GatherPrompt::Play("https://ex.com/menu.mp3".into())),
                )
                .record(
                    Record::new("https://ex.com/ivr?call_id=1&seq=3&kind=record")
                        .unwrap()
                        .max_length(120)
                        .timeout(5)
                        .finish_on_key("#")
                        .recording_status_callback("https://ex.com/rec?a=1&b=2")
                        .unwrap(),
                ),
            json!([
                {"kind": "play", "url": "https://ex.com/welcome.mp3"},
                {"kind": "gather", "action": "https://ex.com/ivr?call_id=1&seq=2&kind=gather", "method": "POST",
                 "input": "dtmf speech", "num_digits": 4, "finish_on_key": "#", "timeout": 7, "speech_timeout": "auto",
                 "language": "cs-CZ", "hints": "účet, prodej", "action_on_empty_result": true,
                 "prompts": [{"say": NASTY, "language": "cs-CZ"}, {"play": "https://ex.com/menu.mp3"}]},
                {"kind": "record", "action": "https://ex.com/ivr?call_id=1&seq=3&kind=record", "method": "POST",
                 "max_length": 120, "timeout": 5, "finish_on_key": "#", "play_beep": true,
                 "recording_status_callback": "https://ex.com/rec?a=1&b=2"},
            ]),
        ),
    ];
    let request = json!({ "twiml": cases.iter().map(|(_, verbs)| verbs.clone()).collect::<Vec<_>>() });
    let theirs = run(&python, TWILIO_ORACLE, &request);
    for ((ours, verbs), their_xml) in cases.iter().zip(theirs["twiml"].as_array().unwrap()) {
        let their_xml = their_xml.as_str().unwrap();
        assert_eq!(
            parse_xml(&ours.to_xml()),
            parse_xml(their_xml),
            "verbs {verbs}\nours:   {}\ntheirs: {their_xml}",
            ours.to_xml()
        );
    }
}

#[test]
fn twilio_sdk_signatures_validate_with_ours_and_tampering_does_not() {
    let python = python();
    let token = "12345";
    let upstream_params = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+14158675309"),
        ("Digits", "1234"),
        ("From", "+14158675309"),
        ("To", "+18005551212"),
    ];
    let cases: Vec<(String, Vec<(String, String)>)> = vec![
        ("https://mycompany.com/myapp.php?foo=1&bar=2".into(), own(&upstream_params)),
        (
            "https://voice.example.com/api/telephony/twilio/status?tenant=42".into(),
            own(&[
                ("CallSid", "CA42"),
                ("CallStatus", "completed"),
                ("CallerName", "Jan Novák & \"syn\""),
                ("SequenceNumber", "3"),
                ("StatusCallbackEvent", "completed"),
                ("StatusCallbackEvent", "answered"),
                ("Zeta", ""),
            ]),
        ),
        ("https://voice.example.com:8443/hook".into(), own(&[("A", "1"), ("a", "2"), ("B", "ü")])),
        ("https://voice.example.com/no-params".into(), Vec::new()),
    ];
    let validator = TwilioValidator::new(SecretString::from(token));
    let ours: Vec<String> = cases.iter().map(|(url, params)| validator.sign(url, params)).collect();
    let request = json!({"sign": {
        "token": token,
        "cases": cases.iter().map(|(url, params)| json!({"url": url, "params": params})).collect::<Vec<_>>(),
        "check": cases.iter().zip(&ours).map(|((url, params), sig)| json!({"url": url, "params": params, "signature": sig})).collect::<Vec<_>>(),
    }});
    let answer = run(&python, TWILIO_ORACLE, &request);
    let theirs: Vec<String> = serde_json::from_value(answer["signatures"].clone()).unwrap();
    assert_eq!(theirs[0], "RSOYDt4T1cUTdK1PDd93/VVr8B8=", "the upstream vector");
    assert_eq!(answer["valid"], json!([true, true, true, true]), "the SDK accepts our signatures");
    for ((url, params), signature) in cases.iter().zip(&theirs) {
        assert!(validator.validate_form(url, params, signature), "{url}");
        // With the default port spelled out, as Twilio sometimes signs.
        if let Some(rest) = url.strip_prefix("https://voice.example.com/") {
            assert!(validator.validate_form(
                &format!("https://voice.example.com:443/{rest}"),
                params,
                signature
            ));
        }
        // Tampered: a changed value, an added field, another URL, another token.
        if let Some(((name, value), rest)) = params.split_first() {
            let mut changed = vec![(name.clone(), format!("{value}x"))];
            changed.extend_from_slice(rest);
            assert!(!validator.validate_form(url, &changed, signature), "{url}: changed {name}");
        }
        let mut added = params.clone();
        added.push(("Injected".into(), "1".into()));
        assert!(!validator.validate_form(url, &added, signature), "{url}: added field");
        assert!(!validator.validate_form(&format!("{url}&evil=1"), params, signature), "{url}: other URL");
        assert!(!TwilioValidator::new(SecretString::from("54321")).validate_form(url, params, signature));
    }
}

fn own(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// A request as the oracle comparison sees it: method, path with ids replaced, sorted form.
fn shape(request: &RecordedRequest, sid: &str) -> (String, String, Vec<(String, String)>) {
    let mut form = request.form();
    form.sort();
    (request.method.clone(), request.path.replace(sid, "{CallSid}"), form)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_twilio_requests_match_the_twilio_sdks() {
    let python = python();
    let (account, token) = ("AC0123456789abcdef0123456789abcdef", "twilio-auth-token");
    let fake = FakeTwilioApi::start(account, token).await.unwrap();
    let twiml = VoiceResponse::new().connect(Connect::stream(
        Stream::new("wss://voice.example.com/media").unwrap().parameter("tenant", NASTY),
    ));
    let (status_callback, amd_callback) =
        ("https://voice.example.com/status?a=1&b=2", "https://voice.example.com/amd");

    let theirs = run_async(
        python,
        TWILIO_ORACLE,
        json!({"rest": {"base_url": fake.base_url(), "account_sid": account, "token": token,
                        "twiml": twiml.to_xml(), "status_callback": status_callback, "amd_callback": amd_callback}}),
    )
    .await;
    // The SDK read the fake's answers as Twilio's.
    assert_eq!(theirs["status"], "queued");
    assert_eq!(theirs["after_hangup"], "completed");

    let client = TwilioRestClient::new(account, SecretString::from(token))
        .unwrap()
        .with_base_url(&fake.base_url())
        .unwrap();
    let call = CreateCall {
        status_callback: Some(status_callback.into()),
        status_callback_events: CallProgressEvent::ALL.to_vec(),
        machine_detection: Some(MachineDetection::DetectMessageEnd),
        async_amd_status_callback: Some(amd_callback.into()),
        timeout_secs: Some(25),
        ..CreateCall::new("+420777123456", "+12025550100", CallInstructions::from(&twiml))
    };
    let our_sid = client.create_call(&call).await.unwrap().sid;
    client.redirect_call(&our_sid, CallInstructions::Url("https://ex.com/transfer".into())).await.unwrap();
    client.hangup_call(&our_sid).await.unwrap();

    let requests = fake.requests();
    assert_eq!(requests.len(), 6);
    let their_sid = theirs["sid"].as_str().unwrap();
    for (theirs, ours) in requests[..3].iter().zip(&requests[3..]) {
        assert_eq!(shape(theirs, their_sid), shape(ours, &our_sid));
        assert_eq!(theirs.header("authorization"), ours.header("authorization"));
        assert_eq!(theirs.header("content-type"), ours.header("content-type"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_telnyx_requests_match_the_telnyx_sdks() {
    let python = python();
    let key = "KEY_telnyx_oracle";
    let fake = FakeTelnyxApi::start(key).await.unwrap();
    let stream_url = "wss://voice.example.com/api/telephony/telnyx/media";
    let (their_call, their_other) = (fake.incoming_call(), fake.incoming_call());
    let theirs = run_async(
        python,
        TELNYX_ORACLE,
        json!({"base_url": fake.base_url(), "api_key": key, "call": their_call.call_control_id,
               "other": their_other.call_control_id, "stream_url": stream_url}),
    )
    .await;
    assert_eq!(theirs["results"], json!(vec!["ok"; 10]));
    assert!(theirs["dialed"]["call_control_id"].as_str().unwrap().starts_with("v3:"));
    assert_eq!(theirs["dialed"]["is_alive"], false);

    let (call, other) = (fake.incoming_call(), fake.incoming_call());
    let ccid = call.call_control_id.as_str();
    let client = TelnyxClient::new(SecretString::from(key)).unwrap().with_base_url(&fake.base_url()).unwrap();
    let id = |s: &str| CommandId::parse(s).unwrap();
    let digits = DigitRules {
        minimum_digits: Some(1),
        maximum_digits: Some(4),
        timeout_millis: Some(5000),
        terminating_digit: Some("#".into()),
        ..DigitRules::default()
    };
    client
        .answer(
            ccid,
            &Answer {
                stream: Some(StreamParams::bidirectional_pcmu(stream_url)),
                client_state: Some(ClientState::from_bytes(b"tenant=42")),
            },
            &id("c1"),
        )
        .await
        .unwrap();
    client
        .speak(
            ccid,
            &Speak { language: Some("cs-CZ".into()), ..Speak::new("Dobrý den", "female") },
            &id("c2"),
        )
        .await
        .unwrap();
    client
        .gather_using_speak(
            ccid,
            &GatherUsingSpeak { digits: digits.clone(), ..GatherUsingSpeak::new("Press 1", "female") },
            &id("c3"),
        )
        .await
        .unwrap();
    client.gather(ccid, &Gather { digits, ..Gather::default() }, &id("c4")).await.unwrap();
    client
        .transfer(
            ccid,
            &Transfer {
                from: Some("+12025550100".into()),
                answering_machine_detection: Some(AnsweringMachineDetection::Detect),
                ..Transfer::new("+420777000111")
            },
            &id("c5"),
        )
        .await
        .unwrap();
    client
        .bridge(
            ccid,
            &Bridge {
                call_control_id: other.call_control_id.clone(),
                park_after_unbridge: None,
                client_state: None,
            },
            &id("c6"),
        )
        .await
        .unwrap();
    client
        .record_start(
            ccid,
            &RecordStart {
                channels: RecordingChannels::Dual,
                format: RecordingFormat::Mp3,
                play_beep: Some(false),
                max_length: None,
                timeout_secs: None,
                client_state: None,
            },
            &id("c7"),
        )
        .await
        .unwrap();
    client.streaming_start(ccid, &StreamParams::bidirectional_pcmu(stream_url), &id("c8")).await.unwrap();
    let enqueue = Enqueue { max_wait_time_secs: Some(600), ..Enqueue::new("tenant-1:billing") };
    client.enqueue(ccid, &enqueue, &id("c8q")).await.unwrap();
    client.hangup(ccid, &Hangup::default(), &id("c9")).await.unwrap();
    let dial = TelnyxDial {
        answering_machine_detection: Some(AnsweringMachineDetection::Premium),
        stream: Some(StreamParams::bidirectional_pcmu(stream_url)),
        timeout_secs: Some(30),
        client_state: Some(ClientState::from_bytes(b"campaign=7")),
        ..TelnyxDial::new("1494404757140276705", "+420777123456", "+12025550100")
    };
    client.dial(&dial, &id("d1")).await.unwrap();

    let requests = fake.requests();
    assert_eq!(requests.len(), 22);
    let (their_requests, our_requests) = requests.split_at(11);
    for (theirs, ours) in their_requests.iter().zip(our_requests) {
        let normalize = |r: &RecordedRequest| {
            let path = r
                .path
                .replace(&their_call.call_control_id, "{call}")
                .replace(&call.call_control_id, "{call}");
            let mut body = r.json();
            if body.get("call_control_id").is_some() {
                body["call_control_id"] = json!("{other}");
            }
            (r.method.clone(), path, body)
        };
        assert_eq!(normalize(ours), normalize(theirs));
        assert_eq!(ours.header("authorization"), theirs.header("authorization"));
    }
}
