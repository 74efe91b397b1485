//! The Twilio REST and Telnyx Call Control clients against the fake APIs.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use kraliki_voice::telephony::telnyx_control::{
    Answer, AnsweringMachineDetection, Bridge, ClientState, CommandId, Dial as TelnyxDial, DigitRules,
    Gather, GatherUsingSpeak, Hangup, RecordStart, RecordingChannels, RecordingFormat, RetryPolicy, Speak,
    StreamParams, TelnyxClient, TelnyxError, Transfer,
};
use kraliki_voice::telephony::testing::api::{FakeTelnyxApi, FakeTwilioApi};
use kraliki_voice::telephony::twilio_rest::{
    CallInstructions, CallProgressEvent, CreateCall, MachineDetection, TwilioRestClient, TwilioRestError,
};
use kraliki_voice::telephony::twiml::{Connect, Stream, VoiceResponse};
use secrecy::SecretString;
use serde_json::{json, Value};

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "twilio-auth-token";
const KEY: &str = "KEY0123_telnyx_api_key";

async fn twilio() -> (FakeTwilioApi, TwilioRestClient) {
    let fake = FakeTwilioApi::start(ACCOUNT, TOKEN).await.unwrap();
    let client = TwilioRestClient::new(ACCOUNT, SecretString::from(TOKEN))
        .unwrap()
        .with_base_url(&fake.base_url())
        .unwrap();
    (fake, client)
}

async fn telnyx() -> (FakeTelnyxApi, TelnyxClient) {
    let fake = FakeTelnyxApi::start(KEY).await.unwrap();
    let client = TelnyxClient::new(SecretString::from(KEY))
        .unwrap()
        .with_base_url(&fake.base_url())
        .unwrap()
        .with_retry(RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
        });
    (fake, client)
}

fn id(s: &str) -> CommandId {
    CommandId::parse(s).unwrap()
}

fn ai_twiml() -> VoiceResponse {
    VoiceResponse::new().connect(Connect::stream(
        Stream::new("wss://voice.example.com/api/telephony/twilio/media").unwrap().parameter("tenant", "42"),
    ))
}

fn outbound_call() -> CreateCall {
    CreateCall {
        status_callback: Some("https://voice.example.com/api/telephony/twilio/status".into()),
        status_callback_events: CallProgressEvent::ALL.to_vec(),
        machine_detection: Some(MachineDetection::DetectMessageEnd),
        async_amd_status_callback: Some("https://voice.example.com/api/telephony/twilio/amd".into()),
        timeout_secs: Some(25),
        ..CreateCall::new("+420777123456", "+12025550100", CallInstructions::from(&ai_twiml()))
    }
}

#[tokio::test]
async fn twilio_create_call_posts_the_form_with_basic_auth() {
    let (fake, client) = twilio().await;
    let call = client.create_call(&outbound_call()).await.unwrap();
    assert!(call.sid.starts_with("CA") && call.sid.len() == 34, "{}", call.sid);
    assert_eq!(call.status, "queued");
    assert_eq!(call.account_sid, ACCOUNT);
    assert_eq!(call.to.as_deref(), Some("+420777123456"));

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, format!("/2010-04-01/Accounts/{ACCOUNT}/Calls.json"));
    assert_eq!(
        request.header("authorization").unwrap(),
        format!("Basic {}", BASE64.encode(format!("{ACCOUNT}:{TOKEN}")))
    );
    assert_eq!(request.header("content-type"), Some("application/x-www-form-urlencoded"));
    let field = |name: &str| request.form_values(name);
    assert_eq!(field("To"), ["+420777123456"]);
    assert_eq!(field("From"), ["+12025550100"]);
    assert_eq!(field("Twiml"), [ai_twiml().to_xml()]);
    assert!(field("Url").is_empty());
    assert_eq!(field("StatusCallback"), ["https://voice.example.com/api/telephony/twilio/status"]);
    assert_eq!(field("StatusCallbackEvent"), ["initiated", "ringing", "answered", "completed"]);
    assert_eq!(field("MachineDetection"), ["DetectMessageEnd"]);
    assert_eq!(field("AsyncAmd"), ["true"]);
    assert_eq!(field("AsyncAmdStatusCallback"), ["https://voice.example.com/api/telephony/twilio/amd"]);
    assert_eq!(field("Timeout"), ["25"]);
    assert_eq!(fake.calls()[0].sid, call.sid);
}

#[tokio::test]
async fn twilio_update_call_redirects_and_hangs_up() {
    let (fake, client) = twilio().await;
    let call = client.create_call(&outbound_call()).await.unwrap();
    fake.set_call_status(&call.sid, "in-progress");

    let redirected = client
        .redirect_call(&call.sid, CallInstructions::Url("https://ex.com/transfer".into()))
        .await
        .unwrap();
    assert_eq!(redirected.status, "in-progress");
    let hung_up = client.hangup_call(&call.sid).await.unwrap();
    assert_eq!(hung_up.status, "completed");

    let requests = fake.requests();
    let path = format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/{}.json", call.sid);
    assert_eq!(requests[1].path, path);
    assert_eq!(requests[1].form(), vec![("Url".to_owned(), "https://ex.com/transfer".to_owned())]);
    assert_eq!(requests[2].path, path);
    assert_eq!(requests[2].form(), vec![("Status".to_owned(), "completed".to_owned())]);
    assert_eq!(fake.calls()[0].status, "completed");
}

#[tokio::test]
async fn twilio_errors_are_parsed_from_the_error_body() {
    let (fake, client) = twilio().await;
    // Unknown call: the fake answers as Twilio does.
    match client.hangup_call("CA00000000000000000000000000000404").await.unwrap_err() {
        TwilioRestError::Api(e) => {
            assert_eq!((e.status, e.code), (404, Some(20404)));
            assert_eq!(e.more_info.as_deref(), Some("https://www.twilio.com/docs/errors/20404"));
        }
        other => panic!("{other:?}"),
    }
    // A scripted validation error.
    fake.respond_next(
        400,
        json!({"code": 21211, "message": "The 'To' number +1555 is not a valid phone number.",
               "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}),
    );
    let err = client.create_call(&outbound_call()).await.unwrap_err();
    let TwilioRestError::Api(e) = &err else { panic!("{err:?}") };
    assert_eq!(e.code, Some(21211));
    assert!(e.message.contains("not a valid phone number"));
    assert!(err.to_string().contains("21211"), "{err}");
    // A body that is not Twilio's error shape still gives the status and the text.
    fake.respond_next(502, Value::String("Bad Gateway".into()));
    match client.create_call(&outbound_call()).await.unwrap_err() {
        TwilioRestError::Api(e) => {
            assert_eq!((e.status, e.code, e.message.as_str()), (502, None, "\"Bad Gateway\""))
        }
        other => panic!("{other:?}"),
    }
    // Creating a call is not retried: a retry could ring the callee twice.
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn twilio_wrong_credentials_are_an_authentication_error() {
    let fake = FakeTwilioApi::start(ACCOUNT, TOKEN).await.unwrap();
    let client = TwilioRestClient::new(ACCOUNT, SecretString::from("wrong"))
        .unwrap()
        .with_base_url(&fake.base_url())
        .unwrap();
    match client.create_call(&outbound_call()).await.unwrap_err() {
        TwilioRestError::Api(e) => {
            assert_eq!((e.status, e.code, e.message.as_str()), (401, Some(20003), "Authenticate"))
        }
        other => panic!("{other:?}"),
    }
    assert!(fake.calls().is_empty());
}

#[tokio::test]
async fn twilio_client_checks_its_input_and_base_url() {
    assert!(matches!(
        TwilioRestClient::new(ACCOUNT, SecretString::from(TOKEN)).unwrap().with_base_url("not a url"),
        Err(TwilioRestError::InvalidBaseUrl(_))
    ));
    assert!(TwilioRestClient::new("", SecretString::from(TOKEN)).is_err());
    let (fake, client) = twilio().await;
    let mut call = outbound_call();
    call.to.clear();
    assert!(matches!(client.create_call(&call).await, Err(TwilioRestError::InvalidArgument(_))));
    assert!(matches!(client.hangup_call("").await, Err(TwilioRestError::InvalidArgument(_))));
    assert!(fake.requests().is_empty());
    let debug = format!("{client:?}");
    assert!(!debug.contains(TOKEN), "{debug}");
}

#[tokio::test]
async fn telnyx_answer_streams_bidirectional_pcmu_with_bearer_auth() {
    let (fake, client) = telnyx().await;
    let call = fake.incoming_call();
    let answer = Answer {
        stream: Some(StreamParams::bidirectional_pcmu("wss://voice.example.com/api/telephony/telnyx/media")),
        client_state: Some(ClientState::from_bytes(b"tenant=42")),
    };
    let ack = client.answer(&call.call_control_id, &answer, &id("answer-1")).await.unwrap();
    assert_eq!(ack.result, "ok");

    let request = &fake.requests()[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, format!("/v2/calls/{}/actions/answer", call.call_control_id));
    assert_eq!(request.header("authorization"), Some(format!("Bearer {KEY}").as_str()));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.json(),
        json!({
            "stream_url": "wss://voice.example.com/api/telephony/telnyx/media",
            "stream_track": "inbound_track",
            "stream_bidirectional_mode": "rtp",
            "stream_bidirectional_codec": "PCMU",
            "client_state": "dGVuYW50PTQy",
            "command_id": "answer-1",
        })
    );
    assert!(fake.call(&call.call_control_id).unwrap().answered);
}

#[tokio::test]
async fn telnyx_every_command_goes_to_its_action_with_its_body() {
    let (fake, client) = telnyx().await;
    let call = fake.incoming_call();
    let other = fake.incoming_call();
    let ccid = call.call_control_id.as_str();
    client.answer(ccid, &Answer::default(), &id("c1")).await.unwrap();
    client
        .speak(
            ccid,
            &Speak { language: Some("cs-CZ".into()), ..Speak::new("Dobrý den", "female") },
            &id("c2"),
        )
        .await
        .unwrap();
    let digits = DigitRules {
        minimum_digits: Some(1),
        maximum_digits: Some(4),
        terminating_digit: Some("#".into()),
        timeout_millis: Some(5000),
        ..DigitRules::default()
    };
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
    client
        .streaming_start(ccid, &StreamParams::bidirectional_pcmu("wss://ex.com/m"), &id("c8"))
        .await
        .unwrap();
    client.hangup(ccid, &Hangup::default(), &id("c9")).await.unwrap();

    let commands = fake.commands();
    let actions: Vec<&str> = commands.iter().map(|c| c.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "answer",
            "speak",
            "gather_using_speak",
            "gather",
            "transfer",
            "bridge",
            "record_start",
            "streaming_start",
            "hangup"
        ]
    );
    let ids: Vec<&str> = commands.iter().map(|c| c.command_id.as_deref().unwrap()).collect();
    assert_eq!(ids, ["c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"]);
    assert_eq!(commands[0].body, json!({"command_id": "c1"}));
    assert_eq!(
        commands[1].body,
        json!({"payload": "Dobrý den", "voice": "female", "language": "cs-CZ", "command_id": "c2"})
    );
    assert_eq!(
        commands[2].body,
        json!({"payload": "Press 1", "voice": "female", "minimum_digits": 1, "maximum_digits": 4,
               "timeout_millis": 5000, "terminating_digit": "#", "command_id": "c3"})
    );
    assert_eq!(
        commands[3].body,
        json!({"minimum_digits": 1, "maximum_digits": 4, "timeout_millis": 5000, "terminating_digit": "#", "command_id": "c4"})
    );
    assert_eq!(
        commands[4].body,
        json!({"to": "+420777000111", "from": "+12025550100", "answering_machine_detection": "detect", "command_id": "c5"})
    );
    assert_eq!(commands[5].body, json!({"call_control_id": other.call_control_id, "command_id": "c6"}));
    assert_eq!(
        commands[6].body,
        json!({"channels": "dual", "format": "mp3", "play_beep": false, "command_id": "c7"})
    );
    assert_eq!(commands[7].body["stream_url"], "wss://ex.com/m");
    assert_eq!(commands[8].body, json!({"command_id": "c9"}));
    assert!(commands.iter().all(|c| !c.duplicate && c.call_control_id == ccid));
    assert!(fake.call(ccid).unwrap().ended);
}

#[tokio::test]
async fn telnyx_dial_places_an_outbound_call_with_amd_and_a_stream() {
    let (fake, client) = telnyx().await;
    let dial = TelnyxDial {
        answering_machine_detection: Some(AnsweringMachineDetection::Premium),
        stream: Some(StreamParams::bidirectional_pcmu("wss://voice.example.com/api/telephony/telnyx/media")),
        timeout_secs: Some(30),
        client_state: Some(ClientState::from_bytes(b"campaign=7")),
        ..TelnyxDial::new("1494404757140276705", "+420777123456", "+12025550100")
    };
    let call = client.dial(&dial, &id("dial-campaign-7-contact-9-attempt-1")).await.unwrap();
    assert!(call.call_control_id.starts_with("v3:"));
    assert!(!call.is_alive);
    assert!(fake.call(&call.call_control_id).is_some());
    let request = &fake.requests()[0];
    assert_eq!(request.path, "/v2/calls");
    assert_eq!(
        request.json(),
        json!({
            "connection_id": "1494404757140276705",
            "to": "+420777123456",
            "from": "+12025550100",
            "answering_machine_detection": "premium",
            "stream_url": "wss://voice.example.com/api/telephony/telnyx/media",
            "stream_track": "inbound_track",
            "stream_bidirectional_mode": "rtp",
            "stream_bidirectional_codec": "PCMU",
            "timeout_secs": 30,
            "client_state": "Y2FtcGFpZ249Nw==",
            "command_id": "dial-campaign-7-contact-9-attempt-1",
        })
    );
}

#[tokio::test]
async fn telnyx_retries_server_errors_with_the_same_command_id() {
    let (fake, client) = telnyx().await;
    let call = fake.incoming_call();
    fake.respond_next(503, json!({"errors": [{"code": "10007", "title": "Unexpected error"}]}));
    fake.respond_next(429, json!({"errors": [{"code": "10011", "title": "Too many requests"}]}));
    let ack =
        client.speak(&call.call_control_id, &Speak::new("Hello", "female"), &id("speak-42")).await.unwrap();
    assert_eq!(ack.result, "ok");
    let requests = fake.requests();
    assert_eq!(requests.len(), 3);
    let bodies: Vec<Value> = requests.iter().map(|r| r.json()).collect();
    assert!(bodies.iter().all(|b| b["command_id"] == "speak-42"), "{bodies:?}");
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "every attempt sends the same body");
    assert_eq!(fake.commands().len(), 1);
}

#[tokio::test]
async fn telnyx_a_repeated_command_id_is_ignored_by_telnyx() {
    let (fake, client) = telnyx().await;
    let call = fake.incoming_call();
    let command = id("hangup-after-goodbye");
    client.hangup(&call.call_control_id, &Hangup::default(), &command).await.unwrap();
    // A caller retrying on its own (e.g. after a crash) reuses the id; Telnyx ignores it.
    let fresh_call = fake.incoming_call();
    client.hangup(&fresh_call.call_control_id, &Hangup::default(), &command).await.unwrap();
    let again = fake.incoming_call();
    client.answer(&again.call_control_id, &Answer::default(), &id("a")).await.unwrap();
    client.answer(&again.call_control_id, &Answer::default(), &id("a")).await.unwrap();
    let duplicates: Vec<bool> = fake.commands().iter().map(|c| c.duplicate).collect();
    assert_eq!(duplicates, [false, false, false, true], "the same id counts once per call");
}

#[tokio::test]
async fn telnyx_gives_up_after_max_attempts_and_does_not_retry_client_errors() {
    let (fake, client) = telnyx().await;
    let call = fake.incoming_call();
    for _ in 0..3 {
        fake.respond_next(
            500,
            json!({"errors": [{"code": "10007", "title": "Unexpected error", "detail": "boom"}]}),
        );
    }
    let err = client.hangup(&call.call_control_id, &Hangup::default(), &id("h1")).await.unwrap_err();
    assert!(
        matches!(&err, TelnyxError::Api { status: 500, errors } if errors[0].detail.as_deref() == Some("boom"))
    );
    assert!(err.is_retryable());
    assert_eq!(fake.requests().len(), 3);

    fake.end_call(&call.call_control_id);
    let err = client.speak(&call.call_control_id, &Speak::new("x", "female"), &id("s1")).await.unwrap_err();
    assert!(err.is_call_ended(), "{err}");
    assert!(!err.is_retryable());
    assert_eq!(fake.requests().len(), 4, "a 422 is not retried");
    let TelnyxError::Api { status, errors } = err else { panic!() };
    assert_eq!(
        (status, errors[0].code.as_str(), errors[0].title.as_str()),
        (422, "90018", "Call has already ended")
    );
}

#[tokio::test]
async fn telnyx_errors_are_parsed_from_the_errors_body() {
    let (fake, client) = telnyx().await;
    let call = fake.incoming_call();
    // The API checks required fields as the real one does.
    let err = client.speak(&call.call_control_id, &Speak::new("", "female"), &id("s")).await.unwrap_err();
    let TelnyxError::Api { status, errors } = &err else { panic!("{err:?}") };
    assert_eq!((*status, errors[0].code.as_str()), (422, "10004"));
    assert!(err.to_string().contains("payload"), "{err}");
    // Numeric codes are read as well.
    fake.respond_next(400, json!({"errors": [{"code": 10015, "title": "Bad Request"}]}));
    let err = client.hangup(&call.call_control_id, &Hangup::default(), &id("h")).await.unwrap_err();
    assert!(matches!(err, TelnyxError::Api { status: 400, ref errors } if errors[0].code == "10015"));
    // Wrong key.
    let stranger =
        TelnyxClient::new(SecretString::from("nope")).unwrap().with_base_url(&fake.base_url()).unwrap();
    match stranger.answer(&call.call_control_id, &Answer::default(), &id("x")).await.unwrap_err() {
        TelnyxError::Api { status: 401, errors } => assert_eq!(errors[0].code, "10009"),
        other => panic!("{other:?}"),
    }
    // A success body that is not Telnyx's shape.
    fake.respond_next(200, json!({"result": "ok"}));
    assert!(matches!(
        client.hangup(&call.call_control_id, &Hangup::default(), &id("h2")).await.unwrap_err(),
        TelnyxError::Decode { status: 200, .. }
    ));
}

#[tokio::test]
async fn telnyx_ids_cannot_change_the_path_and_bad_input_is_refused_locally() {
    let (fake, client) = telnyx().await;
    let err = client.hangup("v3:a/../../calls?x=1", &Hangup::default(), &id("h")).await.unwrap_err();
    assert!(matches!(err, TelnyxError::Api { status: 422, .. }), "{err:?}");
    assert_eq!(fake.requests()[0].path, "/v2/calls/v3:a%2F..%2F..%2Fcalls%3Fx=1/actions/hangup");
    assert!(matches!(
        client.hangup("", &Hangup::default(), &id("h")).await,
        Err(TelnyxError::InvalidArgument(_))
    ));
    assert!(matches!(
        client.command("v3:x", "../calls", &Hangup::default(), &id("h")).await,
        Err(TelnyxError::InvalidArgument(_))
    ));
    assert!(matches!(
        client.dial(&TelnyxDial::new("", "+1", "+2"), &id("d")).await,
        Err(TelnyxError::InvalidArgument(_))
    ));
    assert_eq!(fake.requests().len(), 1);
    for bad in ["", " ", "a b", &"x".repeat(257)] {
        assert!(CommandId::parse(bad).is_err(), "{bad:?}");
    }
    assert!(TelnyxClient::new(SecretString::from("")).is_err());
    assert!(TelnyxClient::new(SecretString::from(KEY)).unwrap().with_base_url("mailto:x@y").is_err());
}

#[tokio::test]
async fn telnyx_connection_failures_are_retryable_transport_errors() {
    // A port nothing listens on: bind one, then free it.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = TelnyxClient::new(SecretString::from(KEY))
        .unwrap()
        .with_base_url(&format!("http://127.0.0.1:{port}/v2"))
        .unwrap()
        .with_retry(RetryPolicy {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
        });
    let err = client.hangup("v3:x", &Hangup::default(), &id("h")).await.unwrap_err();
    assert!(matches!(err, TelnyxError::Transport(_)), "{err:?}");
    assert!(err.is_retryable());
}
