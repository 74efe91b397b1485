//! Calls reach people on Twilio: a caller the AI hands over to one of our queues is held at the
//! carrier in a queue of their own, hears their place in their language, and is bridged to the
//! agent the router picked when that agent answers their leg; an agent who does not answer (or
//! cannot be dialed) is a missed offer and the next one is dialed; the caller hanging up while
//! waiting leaves the queue. Every request we send Twilio is checked at the fake. On Telnyx the
//! same path (bridge instead of a dequeue), and a waiting caller told their place by `speak`.

use kraliki_domain::values::Role;
use kraliki_voice::telephony::testing::api::{twilio_error, FakeTelnyxApi, FakeTwilioApi};
use kraliki_voice::telnyx::TelnyxSigner;

use super::*;

const WAIT: Duration = Duration::from_secs(20);

struct Agent {
    id: String,
    client: reqwest::Client,
}

/// An agent of the operator's company reached at `phone`, in `status`.
async fn agent(app: &TestApp, name: &str, phone: &str, status: &str) -> Agent {
    let (user_id, token) = app.token_for(&[Role::Agent], app.operator_company).await;
    app.caught_up().await;
    let body = json!({"user_id": user_id, "display_name": name, "languages": {"cs": 5, "es": 4},
                      "wrap_up_seconds": 1, "endpoint": {"type": "phone", "number": phone}});
    let r = app.post_json("/api/v1/agents", body).await;
    let created: Value = r.json().await.unwrap();
    let id = created["id"].as_str().unwrap_or_else(|| panic!("{created}")).to_owned();
    let client = kraliki_tests::client_with(&token);
    let r = client
        .put(app.url(&format!("/api/v1/agents/{id}/status")))
        .json(&json!({"status": status}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    Agent { id, client }
}

async fn agent_state(app: &TestApp, a: &Agent) -> Value {
    a.client.get(app.url(&format!("/api/v1/agents/{}", a.id))).send().await.unwrap().json().await.unwrap()
}

/// The leg Twilio was asked to place to `phone`.
async fn leg_to(twilio: &FakeTwilioApi, phone: &str) -> (String, String, String) {
    eventually(WAIT, "the agent's leg is placed", || async {
        twilio.calls().into_iter().find(|c| c.to == phone).map(|c| {
            let get =
                |k: &str| c.params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
            (c.sid.clone(), get("Url"), get("StatusCallback"))
        })
    })
    .await
}

/// Waits until the agent missed an offer with `reason`.
async fn missed_with(app: &TestApp, a: &Agent, reason: &str, what: &str) {
    let path = format!("/api/v1/agents/{}/states", a.id);
    eventually(WAIT, what, || async {
        let states: Value = a.client.get(app.url(&path)).send().await.unwrap().json().await.unwrap();
        states
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["event_type"] == "AgentOfferRejected" && s["reason"] == reason)
            .then_some(())
    })
    .await;
}

fn path_of(url: &str) -> &str {
    url.strip_prefix(PUBLIC).expect("one of our URLs")
}

use kraliki_tests::eventually;

#[tokio::test]
async fn a_caller_the_ai_hands_over_waits_hears_their_place_and_is_bridged_to_the_free_agent() {
    let openai = FakeOpenAi::start().await.unwrap();
    openai.push(Step::wait_for_type("input_audio_buffer.append"));
    openai.push(Step::Json(FakeOpenAi::function_call_arguments_done(
        "r1",
        "i1",
        "c1",
        "transfer_to_queue",
        &json!({"queue": "billing", "summary": "Disputes the November invoice."}),
    )));
    let twilio = FakeTwilioApi::start(ACCOUNT, TOKEN).await.unwrap();
    twilio.incoming_call("CA0200", "+420603123456", "+14155550120");
    let app = outbound_app(&twilio, &openai, None).await;
    // Two agents speaking Czech: one on a break, one free; a Czech queue named Billing.
    let busy = agent(&app, "On break", "+420700000002", "break").await;
    let free = agent(&app, "Free", "+420700000001", "available").await;
    let r = app
        .post_json(
            "/api/v1/queues",
            json!({"name": "Billing", "language": "cs", "announcement_interval_seconds": 20, "offer_timeout_seconds": 30,
                   "members": [{"type": "agent", "id": busy.id}, {"type": "agent", "id": free.id}]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let queue = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    inbound_campaign(&app, "+14155550120").await;
    let (call_id, mut phone) = inbound_twilio_call(&app, "CA0200", "+14155550120").await;
    phone.send_audio(&[0xffu8; 320], Pace::AsFastAsPossible).await.unwrap();

    // The caller is held at the carrier in a queue of their own, with our wait URL.
    let hold = eventually(WAIT, "the caller is put on hold", || async {
        twilio
            .requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/Calls/CA0200.json"))
            .find_map(|r| r.form_values("Twiml").pop().filter(|t| t.contains("<Enqueue")))
    })
    .await;
    let wait_url = format!("{PUBLIC}/api/telephony/twilio/queue/wait?call_id={call_id}");
    assert!(hold.contains(&format!("<Enqueue waitUrl=\"{wait_url}\">q:{call_id}</Enqueue>")), "{hold}");

    // Twilio asks what the caller hears: their place, in Czech, then the announcement interval.
    let wait = [("CallSid", "CA0200"), ("QueuePosition", "1"), ("QueueTime", "3")];
    let r = webhook(&app, &format!("/api/telephony/twilio/queue/wait?call_id={call_id}"), &wait, None).await;
    let twiml = r.text().await.unwrap();
    assert!(twiml.contains("<Say language=\"cs-CZ\">Děkujeme za strpení. Jste 1. v pořadí."), "{twiml}");
    assert!(twiml.contains("<Pause length=\"20\"/>"), "{twiml}");
    let r = webhook(
        &app,
        &format!("/api/telephony/twilio/queue/wait?call_id={call_id}"),
        &wait,
        Some("forged".into()),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // The free agent is reserved and their phone dialed; the one on a break is not.
    let (leg, answer_url, status_url) = leg_to(&twilio, "+420700000001").await;
    assert!(twilio.calls().iter().all(|c| c.to != "+420700000002"), "the agent on a break is not dialed");
    eventually(WAIT, "the free agent is reserved", || async {
        (agent_state(&app, &free).await["status"] == "reserved").then_some(())
    })
    .await;
    // The agent answers: Twilio fetches the leg's TwiML, which dials the caller's queue.
    let answered = [("CallSid", leg.as_str()), ("CallStatus", "in-progress")];
    let twiml = webhook(&app, path_of(&answer_url), &answered, None).await.text().await.unwrap();
    assert!(twiml.contains(&format!("<Dial><Queue>q:{call_id}</Queue></Dial>")), "{twiml}");
    eventually(WAIT, "the agent is on the call and the call left the queue", || async {
        let state = agent_state(&app, &free).await;
        let r = app.client.get(app.url(&format!("/api/v1/queues/{queue}/calls"))).send().await.unwrap();
        let listed: Value = r.json().await.unwrap();
        (state["status"] == "on_call" && listed.as_array().unwrap().is_empty()).then_some(())
    })
    .await;
    // A warm transfer: the agent reads what the AI noted.
    let r = free.client.get(app.url(&format!("/api/v1/calls/{call_id}"))).send().await.unwrap();
    let call: Value = r.json().await.unwrap();
    assert_eq!(call["summary"], "Disputes the November invoice.", "{call}");

    // The agent hangs up: wrap-up, then available by itself.
    let done = [
        ("CallSid", leg.as_str()),
        ("CallStatus", "completed"),
        ("CallDuration", "42"),
        ("SequenceNumber", "4"),
    ];
    assert_eq!(webhook(&app, path_of(&status_url), &done, None).await.status(), StatusCode::NO_CONTENT);
    eventually(WAIT, "wrap-up ends", || async {
        let state = agent_state(&app, &free).await;
        (state["status"] == "available").then_some(())
    })
    .await;
    let states: Value = free
        .client
        .get(app.url(&format!("/api/v1/agents/{}/states", free.id)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kinds: Vec<&str> =
        states.as_array().unwrap().iter().map(|s| s["event_type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds[2..],
        ["AgentReserved", "AgentOfferAccepted", "AgentCallConnected", "AgentCallEnded", "AgentWrapUpEnded"],
        "offered, answered at the phone, ended, wrap-up, available: {states}"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn an_unanswered_or_refused_agent_leg_is_a_missed_offer_and_a_caller_who_hangs_up_leaves() {
    let openai = FakeOpenAi::start().await.unwrap();
    let twilio = FakeTwilioApi::start(ACCOUNT, TOKEN).await.unwrap();
    twilio.incoming_call("CA0201", "+420603123456", "+14155550121");
    let app = outbound_app(&twilio, &openai, None).await;
    let first = agent(&app, "First", "+420700000011", "available").await;
    let second = agent(&app, "Second", "+420700000012", "break").await;
    let r = app
        .post_json(
            "/api/v1/queues",
            json!({"name": "Sales", "strategy": "round_robin",
                   "members": [{"type": "agent", "id": first.id}, {"type": "agent", "id": second.id}]}),
        )
        .await;
    let queue = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    inbound_campaign(&app, "+14155550121").await;
    // The voice webhook records the call (answered); a supervisor puts it in the queue.
    let params =
        [("CallSid", "CA0201"), ("From", "+420603123456"), ("To", "+14155550121"), ("Direction", "inbound")];
    let twiml = webhook(&app, "/api/telephony/twilio/voice", &params, None).await.text().await.unwrap();
    let call_id = stream_parameters(&twiml).into_iter().find(|(k, _)| k == "call_id").unwrap().1;
    app.caught_up().await;
    let r = app
        .post_json(&format!("/api/v1/queues/{queue}/calls"), json!({"call_id": call_id, "language": "es"}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());

    // Not queued by the AI: the caller is held at the carrier all the same.
    eventually(WAIT, "the caller is put on hold", || async {
        twilio
            .requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/Calls/CA0201.json"))
            .find_map(|r| r.form_values("Twiml").pop().filter(|t| t.contains(&format!("q:{call_id}"))))
    })
    .await;
    let wait = [("CallSid", "CA0201"), ("QueuePosition", "1")];
    let twiml = webhook(&app, &format!("/api/telephony/twilio/queue/wait?call_id={call_id}"), &wait, None)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        twiml.contains("<Say language=\"es-ES\">Gracias por esperar. Usted es el número 1 en la cola."),
        "{twiml}"
    );

    // The first agent's phone rings out: a missed offer with the carrier's reason.
    let (leg, _, status_url) = leg_to(&twilio, "+420700000011").await;
    let rang_out = [("CallSid", leg.as_str()), ("CallStatus", "no-answer"), ("SequenceNumber", "2")];
    assert_eq!(webhook(&app, path_of(&status_url), &rang_out, None).await.status(), StatusCode::NO_CONTENT);
    missed_with(&app, &first, "carrier_no_answer", "the offer is missed").await;
    // The second agent becomes available; Twilio refuses to dial them: missed too, never stuck.
    let (status, body) = twilio_error(400, 21211, "Invalid 'To' Phone Number");
    twilio.respond_next(status, body);
    let r = second
        .client
        .put(app.url(&format!("/api/v1/agents/{}/status", second.id)))
        .json(&json!({"status": "available"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    missed_with(&app, &second, "carrier_refused", "the refused leg is a missed offer").await;

    // The caller hangs up while waiting: the call leaves the queue, abandoned.
    let gone = [
        ("CallSid", "CA0201"),
        ("AccountSid", "AC1"),
        ("CallStatus", "completed"),
        ("CallDuration", "30"),
        ("SequenceNumber", "5"),
        ("From", "+420603123456"),
        ("To", "+14155550121"),
    ];
    assert_eq!(
        webhook(&app, "/api/telephony/twilio/status", &gone, None).await.status(),
        StatusCode::NO_CONTENT
    );
    eventually(WAIT, "the caller left the queue", || async {
        let r = app.client.get(app.url(&format!("/api/v1/queues/{queue}/calls"))).send().await.unwrap();
        let listed: Value = r.json().await.unwrap();
        listed.as_array().unwrap().is_empty().then_some(())
    })
    .await;
    let reason: Option<String> = sqlx::query_scalar(
        "SELECT payload->'CallAbandoned'->>'reason' FROM events WHERE aggregate_id = $1 AND event_type = 'CallAbandoned'",
    )
    .bind(&call_id)
    .fetch_optional(&app.pool)
    .await
    .unwrap();
    assert_eq!(reason.as_deref(), Some("caller_hung_up"));
    app.cleanup().await;
}

/// The same path on Telnyx: the caller is held in a Telnyx queue of their own, the agent's leg
/// is dialed with the offer in its `client_state`, and its answer bridges it to the caller's
/// call control id; its hang-up ends the agent's call.
/// A server talking to a fake Telnyx (and a fake OpenAI for the AI's part of inbound calls).
async fn telnyx_app() -> (TestApp, FakeTelnyxApi, TelnyxSigner, FakeOpenAi) {
    const KEY: &str = "KEYtelnyx-test";
    let telnyx = FakeTelnyxApi::start(KEY).await.unwrap();
    let openai = FakeOpenAi::start().await.unwrap();
    let signer = TelnyxSigner::from_secret_bytes(&[9u8; 32]);
    let (public_key, telnyx_url, openai_url) =
        (signer.public_key_base64(), telnyx.base_url(), openai.config().base_url);
    let app = spawn_app_with(
        move |s| {
            s.providers.openai_api_key = Some(SecretString::from(FakeOpenAi::API_KEY));
            s.providers.openai_realtime_url = Some(openai_url);
            s.providers.telnyx_api_key = Some(SecretString::from(KEY));
            s.providers.telnyx_public_key = Some(public_key);
            s.providers.telnyx_api_url = Some(telnyx_url);
            s.providers.telnyx_connection_id = Some("1494404757140276705".into());
            s.providers.public_base_url = Some(PUBLIC.into());
        },
        Vec::new(),
    )
    .await;
    (app, telnyx, signer, openai)
}

/// Posts a signed Telnyx webhook; its status.
async fn telnyx_post(app: &TestApp, signer: &TelnyxSigner, body: String) -> StatusCode {
    let ts = chrono::Utc::now().timestamp().to_string();
    let signature = signer.sign(&ts, body.as_bytes());
    app.anon
        .post(app.url("/api/telephony/telnyx/webhook"))
        .header("content-type", "application/json")
        .header("telnyx-signature-ed25519", signature)
        .header("telnyx-timestamp", ts)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
}

/// A Telnyx call event for `ccid` (an inbound call's fields, `extra` on top).
fn telnyx_event(kind: &str, n: u32, ccid: &str, client_state: Value, extra: Value) -> String {
    let mut payload = json!({"call_control_id": ccid, "call_leg_id": "l", "call_session_id": "s",
        "client_state": client_state, "connection_id": "1494404757140276705", "from": "+420603123456",
        "to": "+14155550122", "direction": "incoming", "state": "parked"});
    payload.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    json!({"data": {"record_type": "event", "event_type": kind, "id": format!("5a1e4f2c-0000-4000-8000-{n:012}"),
        "occurred_at": "2026-12-03T10:00:00Z", "payload": payload}})
    .to_string()
}

#[tokio::test]
async fn on_telnyx_the_answered_agent_leg_is_bridged_to_the_held_caller() {
    let (app, telnyx, signer, _openai) = telnyx_app().await;
    let post = |body: String| telnyx_post(&app, &signer, body);
    let event = telnyx_event;
    let agent = agent(&app, "Telnyx agent", "+420700000021", "available").await;
    let r = app
        .post_json(
            "/api/v1/queues",
            json!({"name": "Support", "members": [{"type": "agent", "id": agent.id}]}),
        )
        .await;
    let queue = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    inbound_campaign(&app, "+14155550122").await;

    // The caller's call: initiated (answered with streaming), then answered.
    let caller = telnyx.incoming_call();
    let ccid = caller.call_control_id.clone();
    assert_eq!(post(event("call.initiated", 1, &ccid, Value::Null, json!({}))).await, StatusCode::NO_CONTENT);
    let answered = event("call.answered", 2, &ccid, Value::Null, json!({"state": "answered"}));
    assert_eq!(post(answered).await, StatusCode::NO_CONTENT);
    let call_id = kraliki_voice::calls::call_uuid("telnyx", &ccid).to_string();
    app.caught_up().await;
    let r = app.post_json(&format!("/api/v1/queues/{queue}/calls"), json!({"call_id": call_id})).await;
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());

    // Held in a Telnyx queue of its own; the agent's leg dialed with the offer in its state.
    eventually(WAIT, "the caller is held", || async {
        telnyx.commands().into_iter().find(|c| {
            c.action == "enqueue"
                && c.call_control_id == ccid
                && c.body["queue_name"] == format!("q:{call_id}")
        })
    })
    .await;
    let dial = eventually(WAIT, "the agent's leg is dialed", || async {
        telnyx.requests().into_iter().find(|r| r.path == "/v2/calls" && r.json()["to"] == "+420700000021")
    })
    .await
    .json();
    assert_eq!(dial["from"], "+14155550122", "the agent sees the number the caller dialed");
    let leg: String = eventually(WAIT, "the leg is recorded", || async {
        sqlx::query_scalar::<_, Option<String>>("SELECT leg_id FROM agent_legs LIMIT 1")
            .fetch_optional(&app.pool)
            .await
            .unwrap()
            .flatten()
    })
    .await;

    // The agent answers: the offer is accepted and the leg bridged to the caller.
    let state = dial["client_state"].clone();
    let answered =
        event("call.answered", 3, &leg, state.clone(), json!({"direction": "outgoing", "state": "answered"}));
    assert_eq!(post(answered).await, StatusCode::NO_CONTENT);
    let bridge = eventually(WAIT, "the legs are bridged", || async {
        telnyx.commands().into_iter().find(|c| c.action == "bridge" && c.call_control_id == leg)
    })
    .await;
    assert_eq!(bridge.body["call_control_id"], ccid);
    eventually(WAIT, "the agent is on the call", || async {
        (agent_state(&app, &agent).await["status"] == "on_call").then_some(())
    })
    .await;

    // The agent hangs up: wrap-up, then available.
    let hangup = event(
        "call.hangup",
        4,
        &leg,
        state,
        json!({"hangup_cause": "normal_clearing", "hangup_source": "callee", "start_time": "2026-12-03T10:00:00Z", "end_time": "2026-12-03T10:02:00Z"}),
    );
    assert_eq!(post(hangup).await, StatusCode::NO_CONTENT);
    eventually(WAIT, "wrap-up ends", || async {
        (agent_state(&app, &agent).await["status"] == "available").then_some(())
    })
    .await;
    app.cleanup().await;
}

#[tokio::test]
async fn on_telnyx_a_waiting_caller_is_told_their_place_at_the_queue_s_interval() {
    let (app, telnyx, signer, _openai) = telnyx_app().await;
    // Nobody free: the caller waits.
    let agent = agent(&app, "Away agent", "+420700000031", "break").await;
    let r = app
        .post_json(
            "/api/v1/queues",
            json!({"name": "Support", "members": [{"type": "agent", "id": agent.id}],
                   "announcement_interval_seconds": 10}),
        )
        .await;
    let queue = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    inbound_campaign(&app, "+14155550122").await;
    let caller = telnyx.incoming_call();
    let ccid = caller.call_control_id.clone();
    let answered = telnyx_event("call.answered", 2, &ccid, Value::Null, json!({"state": "answered"}));
    assert_eq!(
        telnyx_post(&app, &signer, telnyx_event("call.initiated", 1, &ccid, Value::Null, json!({}))).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(telnyx_post(&app, &signer, answered).await, StatusCode::NO_CONTENT);
    let call_id = kraliki_voice::calls::call_uuid("telnyx", &ccid).to_string();
    app.caught_up().await;
    let r = app
        .post_json(&format!("/api/v1/queues/{queue}/calls"), json!({"call_id": call_id, "language": "es"}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());

    // Held, then told their place in their language once the interval has passed.
    let speak = eventually(WAIT, "the caller hears their place", || async {
        telnyx.commands().into_iter().find(|c| c.action == "speak" && c.call_control_id == ccid)
    })
    .await;
    assert_eq!(speak.body["language"], "es-ES", "{}", speak.body);
    assert_eq!(speak.body["voice"], "female");
    let text = speak.body["payload"].as_str().unwrap();
    assert!(text.contains("1"), "{text}");
    let enqueued =
        telnyx.commands().into_iter().position(|c| c.action == "enqueue" && c.call_control_id == ccid);
    let spoken = telnyx.commands().into_iter().position(|c| c.action == "speak" && c.call_control_id == ccid);
    assert!(enqueued < spoken, "held first");
    // The next one is on the timer; the caller hanging up ends them.
    let next: i64 =
        sqlx::query_scalar("SELECT count(*) FROM process_timers WHERE timer_key LIKE 'announce:%'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(next, 1, "the next announcement is due");
    let hangup = telnyx_event(
        "call.hangup",
        3,
        &ccid,
        Value::Null,
        json!({"hangup_cause": "normal_clearing", "hangup_source": "caller", "start_time": "2026-12-03T10:00:00Z", "end_time": "2026-12-03T10:01:00Z"}),
    );
    assert_eq!(telnyx_post(&app, &signer, hangup).await, StatusCode::NO_CONTENT);
    eventually(WAIT, "the caller left the queue", || async {
        let r = app.client.get(app.url(&format!("/api/v1/queues/{queue}/calls"))).send().await.unwrap();
        let calls: Value = r.json().await.unwrap();
        calls.as_array().unwrap().is_empty().then_some(())
    })
    .await;
    app.cleanup().await;
}
