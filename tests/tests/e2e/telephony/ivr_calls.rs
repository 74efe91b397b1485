//! IVR flows on live Twilio calls: a caller enters the published flow of the campaign their
//! number reaches, answers a menu with a key and a question by voice, the flow looks them up
//! at a (local, allow-listed) CRM webhook and hands them to the AI agent with what it learnt.
//! Every TwiML answer is checked against the `twilio` package's TwiML classes, every step is
//! on the call's event stream, and a webhook Twilio repeats is answered the same, once. The
//! same flow by keys over Telnyx Call Control, every command checked against the `telnyx`
//! package's own methods.

use std::sync::{Arc, Mutex};

use axum::extract::Path;
use axum::routing::get;

use super::*;

/// A CRM the flow's webhook node asks: `GET /crm/{account}` answers the account's tier.
struct Crm {
    url: String,
    asked: Arc<Mutex<Vec<String>>>,
}

impl Crm {
    async fn start() -> Self {
        let asked: Arc<Mutex<Vec<String>>> = Arc::default();
        let log = asked.clone();
        let moved = asked.clone();
        let app = axum::Router::new()
            .route(
                "/crm/{account}",
                get(move |Path(account): Path<String>| {
                    let log = log.clone();
                    async move {
                        log.lock().unwrap().push(account.clone());
                        let tier = if account == "1234" { "gold" } else { "basic" };
                        axum::Json(json!({"data": {"tier": tier, "account": account}}))
                    }
                }),
            )
            // Sends the caller's data on to a host that is not on the allow-list.
            .route(
                "/moved/{account}",
                get(move |Path(account): Path<String>| {
                    let log = moved.clone();
                    async move {
                        log.lock().unwrap().push(format!("moved {account}"));
                        axum::response::Redirect::temporary(&format!(
                            "http://evil.example.net/take/{account}"
                        ))
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, asked }
    }
}

/// menu (key 1 or "sales") → gather by voice → conditional → CRM webhook → the AI agent;
/// anything else says goodbye.
fn front_desk(campaign: &str, hook: &str) -> Value {
    json!({
        "name": "Front desk",
        "campaign_id": campaign,
        "entry_node_id": "main",
        "languages": ["en"],
        "max_retries": 1,
        "nodes": {
            "main": {"type": "menu", "message": "Press 1 or say sales.", "input_type": "both",
                     "options": {"1": "account", "2": "bye"}, "option_phrases": {"1": ["sales"]},
                     "timeout_node": "bye", "error_node": "bye"},
            "account": {"type": "gather_input", "message": "Say your account number.", "input_type": "speech",
                        "variable_name": "account", "next_node": "check", "timeout_node": "bye", "error_node": "bye"},
            "check": {"type": "conditional", "condition": "account == '1234'", "true_node": "lookup",
                      "false_node": "bye", "error_node": "bye"},
            "lookup": {"type": "webhook", "webhook_url": format!("{hook}/{{{{account}}}}"), "webhook_method": "GET",
                       "response_mapping": {"tier": "data.tier"}, "next_node": "sales", "error_node": "bye"},
            "sales": {"type": "transfer", "transfer_type": "ai_agent", "timeout_node": "bye", "error_node": "bye"},
            "bye": {"type": "end_call", "message": "Goodbye.", "disposition": "ivr_done"}
        }
    })
}

/// The path and query of the TwiML's `<Gather>` action (what Twilio posts the input to).
fn gather_action(twiml: &str) -> String {
    let action = twiml.split("<Gather action=\"").nth(1).unwrap_or_else(|| panic!("no <Gather>: {twiml}"));
    let action = action.split('"').next().unwrap().replace("&amp;", "&");
    action.strip_prefix(PUBLIC).unwrap_or_else(|| panic!("not our URL: {action}")).to_owned()
}

/// The IVR steps on the call's stream, as (type, node) pairs, from its events endpoint.
async fn ivr_steps(app: &TestApp, call_id: &str) -> Vec<(String, Value)> {
    let r = app.client.get(app.url(&format!("/api/v1/calls/{call_id}/events"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event_type"] == "IvrStepTaken")
        .map(|e| {
            let step = &e["payload"]["IvrStepTaken"]["step"];
            (step["type"].as_str().unwrap().to_owned(), step.clone())
        })
        .collect()
}

/// A server taking Twilio's webhooks, its IVR webhooks allowed to reach this machine, with
/// `openai`'s AI agent (or one never reached).
async fn twilio_ivr_app(openai: Option<&FakeOpenAi>) -> TestApp {
    let realtime = openai.map(|o| o.config().base_url);
    spawn_app_with(
        move |s| {
            s.providers.openai_api_key = Some(SecretString::from(FakeOpenAi::API_KEY));
            s.providers.openai_realtime_url = realtime;
            s.providers.twilio_auth_token = Some(SecretString::from(TOKEN));
            s.providers.public_base_url = Some(PUBLIC.into());
            s.ivr.webhook_allowed_hosts = Some(vec!["127.0.0.1".into()]);
            s.ivr.webhook_allow_private = true;
        },
        Vec::new(),
    )
    .await
}

/// A Twilio call `sid` from `from` to `to` comes in: the voice webhook's TwiML, checked.
async fn incoming(app: &TestApp, sid: &str, from: &str, to: &str) -> String {
    let params = [("CallSid", sid), ("From", from), ("To", to), ("Direction", "inbound")];
    twiml_checked(&webhook(app, "/api/telephony/twilio/voice", &params, None).await.text().await.unwrap())
}

async fn published(app: &TestApp, flow: Value) -> String {
    let r = app.post_json("/api/ivr/flows", flow).await;
    let created: Value = r.json().await.unwrap();
    let id = created["id"].as_str().unwrap_or_else(|| panic!("{created}")).to_owned();
    let r = app.client.post(app.url(&format!("/api/ivr/flows/{id}/publish"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    app.caught_up().await;
    id
}

#[tokio::test]
async fn a_twilio_caller_goes_through_the_flow_by_key_and_voice_to_the_ai_agent_with_what_it_learnt() {
    let openai = FakeOpenAi::start().await.unwrap();
    let crm = Crm::start().await;
    let app = twilio_ivr_app(Some(&openai)).await;
    let campaign = voice_campaign(&app, "+14155550177", "openai", "Hello from sales.").await;
    let flow = published(&app, front_desk(&campaign, &format!("{}/crm", crm.url))).await;

    // The call comes in: the menu, listening for a key or a word.
    let menu = incoming(&app, "CA0177", "+420603123456", "+14155550177").await;
    assert!(menu.contains("input=\"dtmf speech\""), "{menu}");
    assert!(menu.contains("Press 1 or say sales."), "{menu}");
    assert!(menu.contains("actionOnEmptyResult=\"true\""), "{menu}");
    let action = gather_action(&menu);
    assert!(action.contains("seq=2") && action.contains("kind=gather"), "{action}");

    // A key: the account question, by voice.
    let keyed = [("CallSid", "CA0177"), ("Digits", "1")];
    let r = webhook(&app, &action, &keyed, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let question = twiml_checked(&r.text().await.unwrap());
    assert!(
        question.contains("input=\"speech\"") && question.contains("Say your account number."),
        "{question}"
    );
    // Twilio repeats the request: the same answer, nothing recorded twice.
    let again = webhook(&app, &action, &keyed, None).await.text().await.unwrap();
    assert_eq!(again, question);
    // A forged callback is refused.
    let r = webhook(&app, &action, &keyed, Some("bm90IGEgc2lnbmF0dXJl".into())).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // The account number, spoken: looked up at the CRM, then the AI agent's stream.
    let spoken = [("CallSid", "CA0177"), ("SpeechResult", "1234"), ("Confidence", "0.91")];
    let handed =
        twiml_checked(&webhook(&app, &gather_action(&question), &spoken, None).await.text().await.unwrap());
    assert!(handed.contains("<Connect><Stream"), "{handed}");
    assert_eq!(crm.asked.lock().unwrap().clone(), ["1234"]);
    let parameters = stream_parameters(&handed);
    let call_id = parameters.iter().find(|(k, _)| k == "call_id").unwrap().1.clone();

    // The AI agent is told what the flow learnt.
    let mut dialect = TwilioDialect::new("CA0177", "MZ0177");
    for (k, v) in &parameters {
        dialect = dialect.parameter(k.clone(), v.clone());
    }
    let ws = format!("ws://{}/api/telephony/twilio/media", app.app().addr());
    let phone = FakeMediaClient::connect(&ws, dialect, Playout::Instant).await.unwrap();
    let update = openai
        .wait_for_json(Duration::from_secs(10), |v| v["type"] == "session.update")
        .await
        .expect("the agent's session is set up");
    let instructions = update["session"]["instructions"].as_str().unwrap().to_owned();
    assert!(instructions.contains("Help the caller."), "{instructions}");
    assert!(
        instructions.contains("- account: 1234") && instructions.contains("- tier: gold"),
        "{instructions}"
    );
    phone.stop().unwrap();

    // Every step is on the call: the nodes in order, the input, the branch, the webhook, the end.
    let steps = ivr_steps(&app, &call_id).await;
    let entered: Vec<&str> = steps
        .iter()
        .filter(|(t, _)| t == "node_entered")
        .map(|(_, s)| s["node_id"].as_str().unwrap())
        .collect();
    assert_eq!(entered, ["main", "account", "check", "lookup", "sales"]);
    let find = |ty: &str| steps.iter().filter(|(t, _)| t == ty).map(|(_, s)| s.clone()).collect::<Vec<_>>();
    let inputs = find("input_received");
    assert_eq!(inputs[0]["kind"], "digits");
    assert_eq!(inputs[0]["value"], "1");
    assert_eq!(inputs[1]["kind"], "speech");
    assert_eq!(inputs[1]["value"], "1234");
    assert!(
        find("branch_taken").iter().any(|b| b["node_id"] == "check" && b["branch"] == "true"),
        "{steps:?}"
    );
    let hook = &find("webhook_completed")[0];
    assert_eq!((hook["ok"].clone(), hook["status"].clone()), (json!(true), json!(200)));
    assert!(find("variable_set").iter().any(|v| v["name"] == "tier" && v["value"] == "gold"), "{steps:?}");
    let ended = find("flow_ended");
    assert_eq!(ended.len(), 1, "{steps:?}");
    assert_eq!(ended[0]["reason"]["reason"], "transferred");
    assert_eq!(ended[0]["reason"]["node_id"], "sales");
    let events = call_events(&app, &call_id).await;
    let advanced: Vec<i64> = events
        .iter()
        .filter(|(t, _)| t == "IvrAdvanced")
        .map(|(_, p)| p["IvrAdvanced"]["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(advanced, [1, 2, 3, 4, 5], "start, key, speech, webhook result, transfer connected");

    // The flow's analytics count the same steps.
    let figures = analytics(&app, &flow, "").await;
    assert_eq!(figures["calls"], 1, "{figures}");
    assert_eq!(figures["outcomes"], json!({"transferred": 1}));
    assert_eq!(figures["completion_rate"], 1.0);
    let node =
        |id: &str| figures["nodes"].as_array().unwrap().iter().find(|n| n["node_id"] == id).cloned().unwrap();
    let order: Vec<&str> =
        figures["nodes"].as_array().unwrap().iter().map(|n| n["node_id"].as_str().unwrap()).collect();
    assert_eq!(order, entered);
    assert_eq!(node("main")["exits"], json!({"option:1": 1}));
    assert_eq!(node("check")["exits"], json!({"true": 1}));
    assert_eq!(
        (node("lookup")["visits"].clone(), node("lookup")["node_type"].clone()),
        (json!(1), json!("webhook"))
    );
    assert!(node("main")["median_seconds"].as_f64().is_some(), "{figures}");
    assert_eq!(node("sales")["drop_offs"], 0);
    app.cleanup().await;
}

#[tokio::test]
async fn a_hang_up_in_the_menu_ends_the_flow_and_a_redirect_off_the_allow_list_takes_the_error_path() {
    let crm = Crm::start().await;
    let app = twilio_ivr_app(None).await;
    let campaign = voice_campaign(&app, "+14155550178", "openai", "Hello.").await;
    let flow = published(&app, front_desk(&campaign, &format!("{}/moved", crm.url))).await;

    // Hung up at the menu: the status callback closes the flow.
    incoming(&app, "CA0178", "+420603123456", "+14155550178").await;
    let status =
        [("CallSid", "CA0178"), ("CallStatus", "completed"), ("SequenceNumber", "1"), ("CallDuration", "4")];
    assert_eq!(
        webhook(&app, "/api/telephony/twilio/status", &status, None).await.status(),
        StatusCode::NO_CONTENT
    );
    let call_id = kraliki_voice::calls::call_uuid("twilio", "CA0178").to_string();
    let steps = ivr_steps(&app, &call_id).await;
    let ended: Vec<&Value> = steps.iter().filter(|(t, _)| t == "flow_ended").map(|(_, s)| s).collect();
    assert_eq!(ended.len(), 1, "{steps:?}");
    assert_eq!(ended[0]["reason"]["reason"], "caller_hung_up");
    assert_eq!(ended[0]["reason"]["node_id"], "main");

    // The CRM redirects off the allow-list: not followed, the flow's error path says goodbye
    // and the flow's disposition is on the call.
    let menu = incoming(&app, "CA0179", "+420603123457", "+14155550178").await;
    let question =
        webhook(&app, &gather_action(&menu), &[("CallSid", "CA0179"), ("Digits", "1")], None).await;
    let question = question.text().await.unwrap();
    let spoken = [("CallSid", "CA0179"), ("SpeechResult", "1234")];
    let bye =
        twiml_checked(&webhook(&app, &gather_action(&question), &spoken, None).await.text().await.unwrap());
    assert!(bye.contains("Goodbye.") && bye.contains("<Hangup/>") && !bye.contains("<Connect>"), "{bye}");
    assert_eq!(crm.asked.lock().unwrap().clone(), ["moved 1234"]);
    let call_id = kraliki_voice::calls::call_uuid("twilio", "CA0179").to_string();
    let steps = ivr_steps(&app, &call_id).await;
    let hook = steps
        .iter()
        .find(|(t, _)| t == "webhook_completed")
        .map(|(_, s)| s.clone())
        .expect("the webhook step");
    assert_eq!(hook["ok"], false, "{hook}");
    let error = hook["error"].as_str().unwrap();
    assert!(error.contains("redirect refused") && error.contains("evil.example.net"), "{error}");
    let events = call_events(&app, &call_id).await;
    let set = events.iter().find(|(t, _)| t == "CallDispositionSet").expect("the flow's disposition");
    assert_eq!(set.1["CallDispositionSet"]["disposition"], "ivr_done");

    // Two calls: one dropped at the menu, one completed by the goodbye.
    let figures = analytics(&app, &flow, "").await;
    assert_eq!(figures["calls"], 2, "{figures}");
    assert_eq!(figures["outcomes"], json!({"caller_hung_up": 1, "completed": 1}));
    assert_eq!(figures["completion_rate"], 0.5);
    let main = figures["nodes"].as_array().unwrap().iter().find(|n| n["node_id"] == "main").cloned().unwrap();
    assert_eq!((main["visits"].clone(), main["drop_offs"].clone()), (json!(2), json!(1)), "{main}");
    assert_eq!(main["drop_off_rate"], 0.5);
    let lookup =
        figures["nodes"].as_array().unwrap().iter().find(|n| n["node_id"] == "lookup").cloned().unwrap();
    assert_eq!(lookup["exits"], json!({"error": 1}), "{lookup}");
    // Only version 1 ran; a period before the calls has none; a backwards period is refused.
    assert_eq!(analytics(&app, &flow, "?version=2").await["calls"], 0);
    assert_eq!(analytics(&app, &flow, "?to=2026-01-01T00:00:00Z").await["calls"], 0);
    let r = app
        .client
        .get(app.url(&format!(
            "/api/ivr/flows/{flow}/analytics?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    app.cleanup().await;
}

async fn analytics(app: &TestApp, flow: &str, query: &str) -> Value {
    app.caught_up().await;
    let r = app.client.get(app.url(&format!("/api/ivr/flows/{flow}/analytics{query}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

/// Checks each Telnyx command against the `telnyx` package: the action is one of its call
/// actions and every field of the body a parameter that method declares.
fn telnyx_checked(commands: &[kraliki_voice::telephony::testing::api::RecordedCommand]) {
    let python = std::env::var("KRALIKI_TEST_PYTHON").expect("KRALIKI_TEST_PYTHON (scripts/test sets it)");
    let script = r#"
import inspect, json, sys
from telnyx import Telnyx
actions = Telnyx(api_key="KEY", base_url="http://127.0.0.1:9").calls.actions
# The SDK's names for the endpoints whose names read the other way round.
names = {"record_start": "start_recording", "streaming_start": "start_streaming", "playback_start": "start_playback"}
for c in json.loads(sys.argv[1]):
    method = getattr(actions, names.get(c["action"], c["action"]), None)
    if method is None:
        sys.exit(f"the SDK has no call action {c['action']}")
    params = inspect.signature(method).parameters
    for field in c["body"]:
        if field not in params and field + "_" not in params:
            sys.exit(f"{c['action']} has no parameter {field} (takes {list(params)})")
"#;
    let list: Vec<Value> = commands.iter().map(|c| json!({"action": c.action, "body": c.body})).collect();
    let out = Command::new(python).args(["-c", script]).arg(Value::Array(list).to_string()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn a_telnyx_caller_goes_through_the_flow_by_keys_to_the_ai_agent() {
    use kraliki_voice::telephony::testing::api::FakeTelnyxApi;
    use kraliki_voice::telnyx::TelnyxSigner;

    use super::telnyx::{initiated, post, signed, telnyx_app, KEY};

    let telnyx = FakeTelnyxApi::start(KEY).await.unwrap();
    let crm = Crm::start().await;
    let signer = TelnyxSigner::from_secret_bytes(&[9u8; 32]);
    let app = telnyx_app(&telnyx, &signer, |s| {
        s.providers.openai_api_key = Some(SecretString::from(FakeOpenAi::API_KEY));
        s.ivr.webhook_allowed_hosts = Some(vec!["127.0.0.1".into()]);
        s.ivr.webhook_allow_private = true;
    })
    .await;
    let campaign = voice_campaign(&app, "+14155550180", "openai", "Hello.").await;
    let mut flow = front_desk(&campaign, &format!("{}/crm", crm.url));
    // By keys: a welcome said first, the account number keyed in.
    flow["entry_node_id"] = json!("welcome");
    flow["nodes"]["welcome"] = json!({"type": "play_message", "message": "Welcome.", "next_node": "main"});
    flow["nodes"]["account"]["input_type"] = json!("dtmf");
    flow["nodes"]["account"]["num_digits"] = json!(4);
    let flow_id = published(&app, flow).await;

    let call = telnyx.incoming_call();
    let ccid = call.call_control_id.clone();
    let deliver =
        |event: &str, id: u32, extra: Value| telnyx_event(&call, event, &format!("6b{id:010}"), extra);
    let send = |body: String| {
        let app = &app;
        let signer = &signer;
        async move {
            let r = post(app, &body, &signed(signer, &body, chrono::Utc::now().timestamp())).await;
            assert_eq!(r.status(), StatusCode::NO_CONTENT, "{}", r.text().await.unwrap());
        }
    };
    // The last command for this call, and its client_state.
    let last = |action: &str| last_command(&telnyx, &ccid, action);

    // In: answered without a stream; once answered, the welcome is said.
    send(initiated(&call, "6b1e4f2c-0000-4000-8000-100000000000", "+14155550180")).await;
    let answer = last("answer");
    assert!(answer.body.get("stream_url").is_none(), "the flow comes first: {}", answer.body);
    // Once answered: the welcome and the menu, said by the gather itself (one command).
    send(deliver("call.answered", 1, json!({}))).await;
    let menu = last("gather_using_speak");
    assert_eq!(menu.body["payload"], "Welcome. Press 1 or say sales.");
    assert_eq!(menu.body["language"], "en-US");
    // A key: the account number. Delivered twice: the same command, ignored by Telnyx.
    let pressed = deliver(
        "call.gather.ended",
        3,
        json!({"client_state": menu.body["client_state"], "digits": "1", "status": "valid"}),
    );
    send(pressed.clone()).await;
    let account = last("gather_using_speak");
    assert_eq!(account.body["payload"], "Say your account number.");
    assert_eq!(account.body["maximum_digits"], 4);
    send(pressed).await;
    let repeats: Vec<_> =
        telnyx.commands().into_iter().filter(|c| c.command_id == account.command_id).collect();
    assert_eq!(repeats.len(), 2);
    assert!(repeats[1].duplicate, "the repeat is the same command");
    // The number: looked up at the CRM, then the AI agent's stream.
    let keyed = json!({"client_state": account.body["client_state"], "digits": "1234", "status": "valid"});
    send(deliver("call.gather.ended", 4, keyed)).await;
    let stream = last("streaming_start");
    assert!(stream.body["stream_url"]
        .as_str()
        .unwrap()
        .starts_with("wss://voice.example.com/api/telephony/telnyx/media?"));
    assert_eq!(crm.asked.lock().unwrap().clone(), ["1234"]);
    telnyx_checked(&telnyx.commands());

    let call_id = kraliki_voice::calls::call_uuid("telnyx", &ccid).to_string();
    let steps = ivr_steps(&app, &call_id).await;
    let entered: Vec<&str> = steps
        .iter()
        .filter(|(t, _)| t == "node_entered")
        .map(|(_, s)| s["node_id"].as_str().unwrap())
        .collect();
    assert_eq!(entered, ["welcome", "main", "account", "check", "lookup", "sales"]);
    let ended: Vec<&Value> = steps.iter().filter(|(t, _)| t == "flow_ended").map(|(_, s)| s).collect();
    assert_eq!(ended[0]["reason"]["reason"], "transferred", "{steps:?}");
    // Another caller presses 2: goodbye is said, and once said, the call is hung up.
    let call = telnyx.incoming_call();
    let ccid = call.call_control_id.clone();
    let deliver =
        |event: &str, id: u32, extra: Value| telnyx_event(&call, event, &format!("7c{id:010}"), extra);
    let last = |action: &str| last_command(&telnyx, &ccid, action);
    send(initiated(&call, "7c1e4f2c-0000-4000-8000-100000000000", "+14155550180")).await;
    send(deliver("call.answered", 1, json!({}))).await;
    let menu = last("gather_using_speak");
    send(deliver(
        "call.gather.ended",
        2,
        json!({"client_state": menu.body["client_state"], "digits": "2", "status": "valid"}),
    ))
    .await;
    let goodbye = last("speak");
    assert_eq!(goodbye.body["payload"], "Goodbye.");
    send(deliver("call.speak.ended", 3, json!({"client_state": goodbye.body["client_state"]}))).await;
    last("hangup");
    telnyx_checked(&telnyx.commands());

    let figures = analytics(&app, &flow_id, "").await;
    assert_eq!(figures["outcomes"], json!({"transferred": 1, "completed": 1}), "{figures}");
    app.cleanup().await;
}

#[tokio::test]
async fn the_flow_puts_a_caller_in_a_queue_of_the_company_and_takes_a_voicemail_from_another() {
    let app = twilio_ivr_app(None).await;
    let r = app.post_json("/api/v1/queues", json!({"name": "Billing", "offer_timeout_seconds": 30})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let queue: Value = r.json().await.unwrap();
    let campaign = voice_campaign(&app, "+14155550181", "openai", "Hello.").await;
    let flow = json!({
        "name": "Billing line", "campaign_id": campaign, "entry_node_id": "main", "languages": ["en"],
        "nodes": {
            "main": {"type": "menu", "message": "Press 1 for billing, 2 to leave a message.",
                     "options": {"1": "billing", "2": "message"}, "timeout_node": "bye", "error_node": "bye"},
            "billing": {"type": "transfer", "transfer_type": "queue", "transfer_to": "Billing", "priority": 5,
                        "timeout_node": "bye", "error_node": "bye"},
            "message": {"type": "voicemail", "message": "Leave a message after the tone.", "max_length_seconds": 60,
                        "next_node": "thanks", "error_node": "bye"},
            "thanks": {"type": "end_call", "message": "Thank you.", "disposition": "voicemail_left"},
            "bye": {"type": "end_call", "message": "Goodbye."}
        }
    });
    published(&app, flow).await;

    // 1: into the company's queue, held at Twilio in a queue of its own with announcements.
    let menu = incoming(&app, "CA0181", "+420603123456", "+14155550181").await;
    let held = webhook(&app, &gather_action(&menu), &[("CallSid", "CA0181"), ("Digits", "1")], None).await;
    let held = twiml_checked(&held.text().await.unwrap());
    let call_id = kraliki_voice::calls::call_uuid("twilio", "CA0181").to_string();
    assert!(held.contains(&format!("/api/telephony/twilio/queue/wait?call_id={call_id}")), "{held}");
    assert!(held.contains("<Enqueue "), "{held}");
    app.caught_up().await;
    let r = app
        .client
        .get(app.url(&format!("/api/v1/queues/{}/calls", queue["id"].as_str().unwrap())))
        .send()
        .await
        .unwrap();
    let waiting: Value = r.json().await.unwrap();
    let entry = waiting.as_array().unwrap().iter().find(|c| c["call_id"] == call_id.as_str()).cloned();
    let entry = entry.unwrap_or_else(|| panic!("the call waits in the queue: {waiting}"));
    assert_eq!(entry["priority"], 5, "{entry}");
    let ended = ivr_steps(&app, &call_id).await;
    let end = ended.iter().find(|(t, _)| t == "flow_ended").expect("the flow ended").1.clone();
    assert_eq!(
        (end["reason"]["reason"].clone(), end["reason"]["node_id"].clone()),
        (json!("transferred"), json!("billing"))
    );

    // 2: a voicemail: the prompt, <Record>, the recording back to the flow, thanks and goodbye.
    let menu = incoming(&app, "CA0182", "+420603123457", "+14155550181").await;
    let record = webhook(&app, &gather_action(&menu), &[("CallSid", "CA0182"), ("Digits", "2")], None).await;
    let record = twiml_checked(&record.text().await.unwrap());
    assert!(
        record.contains("Leave a message after the tone.") && record.contains("maxLength=\"60\""),
        "{record}"
    );
    let action =
        record.split("<Record action=\"").nth(1).unwrap().split('"').next().unwrap().replace("&amp;", "&");
    let action = action.strip_prefix(PUBLIC).unwrap().to_owned();
    assert!(action.contains("kind=record"), "{action}");
    let recorded = [
        ("CallSid", "CA0182"),
        ("RecordingUrl", "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1"),
        ("RecordingDuration", "14"),
    ];
    let thanks = twiml_checked(&webhook(&app, &action, &recorded, None).await.text().await.unwrap());
    assert!(thanks.contains("Thank you.") && thanks.contains("<Hangup/>"), "{thanks}");
    let call_id = kraliki_voice::calls::call_uuid("twilio", "CA0182").to_string();
    let steps = ivr_steps(&app, &call_id).await;
    let voicemail =
        steps.iter().find(|(t, _)| t == "voicemail_completed").expect("the voicemail step").1.clone();
    assert_eq!(voicemail["recording_url"], "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1");
    app.cleanup().await;
}

/// A Telnyx Call Control event for `call`, its id ending in `id`.
fn telnyx_event(
    call: &kraliki_voice::telephony::testing::api::FakeTelnyxCall,
    event: &str,
    id: &str,
    extra: Value,
) -> String {
    let mut payload = json!({"call_control_id": call.call_control_id, "call_leg_id": call.call_leg_id,
        "call_session_id": call.call_session_id, "connection_id": "c1"});
    payload.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    json!({"data": {"record_type": "event", "event_type": event, "id": format!("6b1e4f2c-0000-4000-8000-{id:0>12}"),
        "occurred_at": "2026-12-06T10:00:00Z", "payload": payload}, "meta": {"attempt": 1}})
    .to_string()
}

/// The last command Telnyx took (not a repeat) for `ccid`, which must be `action`.
fn last_command(
    telnyx: &kraliki_voice::telephony::testing::api::FakeTelnyxApi,
    ccid: &str,
    action: &str,
) -> kraliki_voice::telephony::testing::api::RecordedCommand {
    let c = telnyx.commands().into_iter().rev().find(|c| c.call_control_id == ccid && !c.duplicate).unwrap();
    assert_eq!(c.action, action, "{:?}", telnyx.commands());
    c
}
