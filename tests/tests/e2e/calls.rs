//! The call log end to end: calls driven through the dispatcher as telephony and voice sessions
//! drive them, read back over HTTP from `call_view` / `call_timeline_view` (every step, the
//! transcript as JSON and text, the raw event history), failures, filters and pagination,
//! duplicate commands, and tenant isolation.

use chrono::{DateTime, Duration as ChronoDuration, TimeZone, Utc};
use kraliki_commands::{CommandContext, Outcome};
use kraliki_domain::call::{Call, CallCommand, CallDirection, CallOutcome, Speaker};
use kraliki_domain::values::Role;
use kraliki_tests::{spawn_app, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

async fn json_of(r: reqwest::Response, status: StatusCode) -> Value {
    let got = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "{body}");
    body
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).single().unwrap()
}

fn secs(n: i64) -> ChronoDuration {
    ChronoDuration::seconds(n)
}

fn time(v: &Value) -> DateTime<Utc> {
    serde_json::from_value(v.clone()).unwrap_or_else(|_| panic!("not a time: {v}"))
}

/// The telephony side's context: the operator's company is the tenant.
fn ctx_of(company: Uuid) -> CommandContext {
    CommandContext::new(company.to_string(), "system:test-telephony")
}

async fn exec(app: &TestApp, ctx: &CommandContext, id: Uuid, command: CallCommand) -> Outcome {
    app.app().state().dispatcher.execute::<Call>(&id.to_string(), command, ctx).await.unwrap()
}

struct NewCall {
    direction: CallDirection,
    provider_call_id: Option<&'static str>,
    campaign_id: Option<Uuid>,
    contact_id: Option<Uuid>,
    at: DateTime<Utc>,
}

impl NewCall {
    fn at(at: DateTime<Utc>) -> Self {
        Self {
            direction: CallDirection::Outbound,
            provider_call_id: None,
            campaign_id: None,
            contact_id: None,
            at,
        }
    }
}

async fn initiate(app: &TestApp, ctx: &CommandContext, call: NewCall) -> (Uuid, Outcome) {
    let id = Uuid::now_v7();
    let (from, to) = match call.direction {
        CallDirection::Outbound => ("+14155550100", "+420603123456"),
        CallDirection::Inbound => ("+420603123456", "+14155550100"),
    };
    let command = CallCommand::InitiateCall {
        direction: call.direction,
        provider: "twilio".into(),
        provider_call_id: call.provider_call_id.map(str::to_owned),
        from: from.into(),
        to: to.into(),
        campaign_id: call.campaign_id,
        contact_id: call.contact_id,
        at: call.at,
    };
    let outcome = exec(app, ctx, id, command).await;
    (id, outcome)
}

fn segment(speaker: Speaker, text: &str, start_ms: u64, end_ms: u64, at: DateTime<Utc>) -> CallCommand {
    CallCommand::AddTranscriptSegment { speaker, text: text.into(), start_ms, end_ms, at }
}

fn kinds(timeline: &Value) -> Vec<&str> {
    timeline.as_array().unwrap().iter().map(|s| s["kind"].as_str().unwrap()).collect()
}

fn ids(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn a_whole_call_reads_back_with_every_step_its_transcript_and_its_events() {
    let app = spawn_app().await;
    let c = &app.client;
    let ctx = ctx_of(app.operator_company);
    let (campaign, contact) = (Uuid::now_v7(), Uuid::now_v7());
    let start = t0();
    let (id, _) = initiate(
        &app,
        &ctx,
        NewCall {
            provider_call_id: Some("CA0123456789abcdef0123456789abcdef"),
            campaign_id: Some(campaign),
            contact_id: Some(contact),
            ..NewCall::at(start)
        },
    )
    .await;
    let steps = [
        CallCommand::MarkRinging { at: start + secs(2) },
        CallCommand::AnswerCall { answered_by: Some("human".into()), at: start + secs(7) },
        CallCommand::StartMediaStream {
            stream_id: "MZ1".into(),
            codec: "pcmu".into(),
            sample_rate: 8000,
            at: start + secs(8),
        },
        segment(Speaker::Agent, "Hello, this is Kraliki.", 0, 1500, start + secs(9)),
        segment(Speaker::Agent, "Let me check your plan.", 4000, 5200, start + secs(13)),
        // The caller's words, transcribed after the agent's reply had started: recorded later,
        // spoken earlier.
        segment(Speaker::Caller, "Hi, I would like to\nrenew my plan.", 1800, 3600, start + secs(14)),
        CallCommand::ReceiveDtmf { digits: "1#".into(), at: start + secs(15) },
        CallCommand::RecordFunctionCall {
            name: "lookup_plan".into(),
            call_id: "fc_1".into(),
            arguments: json!({"phone": "+420603123456"}),
            result: json!({"plan": "gold", "renewable": true}),
            at: start + secs(16),
        },
        CallCommand::RequestTransfer {
            target: kraliki_domain::call::TransferTarget::Number { number: "+420222333444".into() },
            reason: Some("wants a human".into()),
            at: start + secs(18),
        },
        CallCommand::StopMediaStream { stream_id: "MZ1".into(), at: start + secs(19) },
        CallCommand::CompleteCall {
            outcome: CallOutcome::Connected,
            disposition: Some("renewed".into()),
            hangup_cause: Some("normal_clearing".into()),
            at: start + secs(67),
        },
    ];
    for step in steps {
        assert_eq!(exec(&app, &ctx, id, step).await.events, 1);
    }
    // The recording arrives after the call has ended.
    let recording = CallCommand::AttachRecording {
        url: "https://api.twilio.com/recordings/RE1.wav".into(),
        duration_seconds: Some(59),
        at: start + secs(90),
    };
    let position = exec(&app, &ctx, id, recording).await.position.unwrap();

    let r = c.get(app.url(&format!("/api/v1/calls?min_position={position}"))).send().await.unwrap();
    let page = kraliki_tests::listed(r).await;
    assert_eq!(ids(&page), [id.to_string()]);
    assert_eq!(page["next_cursor"], Value::Null);
    let listed = &page["items"][0];
    assert!(listed.get("timeline").is_none(), "the list carries no timelines");

    let r = c.get(app.url(&format!("/api/v1/calls/{id}?min_position={position}"))).send().await.unwrap();
    let call = json_of(r, StatusCode::OK).await;
    for (field, expected) in [
        ("direction", json!("outbound")),
        ("provider", json!("twilio")),
        ("provider_call_id", json!("CA0123456789abcdef0123456789abcdef")),
        ("from_number", json!("+14155550100")),
        ("to_number", json!("+420603123456")),
        ("campaign_id", json!(campaign)),
        ("contact_id", json!(contact)),
        ("status", json!("completed")),
        ("answered_by", json!("human")),
        ("outcome", json!("connected")),
        ("disposition", json!("renewed")),
        ("hangup_cause", json!("normal_clearing")),
        ("failure_reason", Value::Null),
        // Talk time from the answer (7 s) to the end (67 s); the whole call took 67 s.
        ("duration_seconds", json!(60)),
        ("total_seconds", json!(67)),
        ("recording_url", json!("https://api.twilio.com/recordings/RE1.wav")),
        ("transfer_target", json!("number:+420222333444")),
        ("version", json!(13)),
    ] {
        assert_eq!(call[field], expected, "{field}: {call}");
        if field != "version" {
            assert_eq!(listed[field], expected, "list {field}");
        }
    }
    assert_eq!(time(&call["started_at"]), start);
    assert_eq!(time(&call["answered_at"]), start + secs(7));
    assert_eq!(time(&call["ended_at"]), start + secs(67));
    assert_eq!(time(&call["updated_at"]), start + secs(90));

    // Every step, in order, each with its own time and facts.
    let timeline = &call["timeline"];
    assert_eq!(
        kinds(timeline),
        [
            "CallInitiated",
            "CallRinging",
            "CallAnswered",
            "MediaStreamStarted",
            "TranscriptSegmentAdded",
            "TranscriptSegmentAdded",
            "TranscriptSegmentAdded",
            "DtmfReceived",
            "AiFunctionCalled",
            "TransferRequested",
            "MediaStreamStopped",
            "CallCompleted",
            "RecordingAvailable",
        ]
    );
    let at_offsets = [0, 2, 7, 8, 9, 13, 14, 15, 16, 18, 19, 67, 90];
    for (n, step) in timeline.as_array().unwrap().iter().enumerate() {
        assert_eq!(step["seq"], n as i64 + 1);
        assert_eq!(time(&step["at"]), start + secs(at_offsets[n]), "{step}");
        assert!(step["detail"].get("at").is_none(), "{step}");
    }
    let detail = |n: usize| &timeline[n]["detail"];
    assert_eq!(detail(0)["direction"], "outbound");
    assert_eq!(detail(0)["campaign_id"], json!(campaign));
    assert_eq!(*detail(1), json!({}));
    assert_eq!(*detail(2), json!({"answered_by": "human"}));
    assert_eq!(*detail(3), json!({"stream_id": "MZ1", "codec": "pcmu", "sample_rate": 8000}));
    assert_eq!(
        *detail(5),
        json!({"speaker": "agent", "text": "Let me check your plan.", "start_ms": 4000, "end_ms": 5200})
    );
    assert_eq!(*detail(7), json!({"digits": "1#"}));
    assert_eq!(
        *detail(8),
        json!({"name": "lookup_plan", "call_id": "fc_1", "arguments": {"phone": "+420603123456"},
               "result": {"plan": "gold", "renewable": true}})
    );
    assert_eq!(
        *detail(9),
        json!({"target": {"type": "number", "number": "+420222333444"}, "reason": "wants a human"})
    );
    assert_eq!(*detail(10), json!({"stream_id": "MZ1"}));
    assert_eq!(
        *detail(11),
        json!({"outcome": "connected", "disposition": "renewed", "duration_seconds": 60,
               "hangup_cause": "normal_clearing"}),
        "the end step drops the call's own campaign and contact"
    );
    assert_eq!(
        *detail(12),
        json!({"url": "https://api.twilio.com/recordings/RE1.wav", "duration_seconds": 59})
    );

    // The transcript: only segments, in spoken order (not recording order).
    let spoken = [
        ("agent", "Hello, this is Kraliki.", 0, 1500, 5),
        ("caller", "Hi, I would like to\nrenew my plan.", 1800, 3600, 7),
        ("agent", "Let me check your plan.", 4000, 5200, 6),
    ];
    let check = |segments: &Value| {
        let segments = segments.as_array().unwrap();
        assert_eq!(segments.len(), spoken.len(), "{segments:?}");
        for (s, (speaker, text, start_ms, end_ms, seq)) in segments.iter().zip(spoken) {
            assert_eq!(
                (&s["speaker"], &s["text"], &s["start_ms"], &s["end_ms"], &s["seq"]),
                (&json!(speaker), &json!(text), &json!(start_ms), &json!(end_ms), &json!(seq))
            );
        }
    };
    check(&call["transcript"]);
    let r = c.get(app.url(&format!("/api/v1/calls/{id}/transcript"))).send().await.unwrap();
    let transcript = json_of(r, StatusCode::OK).await;
    assert_eq!(transcript["call_id"], json!(id));
    check(&transcript["segments"]);
    let r = c.get(app.url(&format!("/api/v1/calls/{id}/transcript?format=text"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    assert_eq!(
        r.text().await.unwrap(),
        "Agent: Hello, this is Kraliki.\nCaller: Hi, I would like to renew my plan.\nAgent: Let me check your plan.\n"
    );
    let r = c.get(app.url(&format!("/api/v1/calls/{id}/transcript?format=pdf"))).send().await.unwrap();
    assert_eq!(json_of(r, StatusCode::BAD_REQUEST).await["code"], "invalid_query");

    // The raw history, for auditors: the stream as stored, with its metadata.
    let r = c.get(app.url(&format!("/api/v1/calls/{id}/events"))).send().await.unwrap();
    let history = json_of(r, StatusCode::OK).await;
    assert_eq!(history["call_id"], json!(id));
    let events = history["events"].as_array().unwrap();
    let types: Vec<&str> = events.iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(types, kinds(timeline));
    let mut last_position = 0;
    for (n, e) in events.iter().enumerate() {
        assert_eq!(e["sequence"], n as i64 + 1);
        assert_eq!(e["event_version"], "1");
        assert_eq!(e["metadata"]["tenant_id"], app.operator_company.to_string());
        assert_eq!(e["metadata"]["actor"], "system:test-telephony");
        assert!(e["metadata"]["event_id"].is_string(), "{e}");
        assert!(e["payload"].get(types[n]).is_some(), "payload tagged by its type: {e}");
        let global = e["global_position"].as_i64().unwrap();
        assert!(global > last_position, "log order");
        last_position = global;
    }
    assert_eq!(last_position, position);
    assert_eq!(events[11]["payload"]["CallCompleted"]["duration_seconds"], 60);
    assert_eq!(events[11]["payload"]["CallCompleted"]["campaign_id"], json!(campaign));

    // Provider callbacks arrive twice: a repeated end or answer records nothing, and the
    // timeline keeps one row per step.
    let again = CallCommand::CompleteCall {
        outcome: CallOutcome::Connected,
        disposition: Some("renewed".into()),
        hangup_cause: Some("normal_clearing".into()),
        at: start + secs(68),
    };
    assert_eq!(exec(&app, &ctx, id, again).await.events, 0);
    let answer_again = CallCommand::AnswerCall { answered_by: Some("human".into()), at: start + secs(8) };
    assert_eq!(exec(&app, &ctx, id, answer_again).await.events, 0);
    // One more real step after the duplicates, to wait on.
    let late = CallCommand::AttachRecording {
        url: "https://api.twilio.com/recordings/RE2.wav".into(),
        duration_seconds: None,
        at: start + secs(95),
    };
    let position = exec(&app, &ctx, id, late).await.position.unwrap();
    let r = c.get(app.url(&format!("/api/v1/calls/{id}?min_position={position}"))).send().await.unwrap();
    let call = json_of(r, StatusCode::OK).await;
    let kinds_now = kinds(&call["timeline"]);
    assert_eq!(kinds_now.iter().filter(|k| **k == "CallCompleted").count(), 1);
    assert_eq!(kinds_now.iter().filter(|k| **k == "CallAnswered").count(), 1);
    assert_eq!(kinds_now.len(), 14);
    assert_eq!(call["recording_url"], "https://api.twilio.com/recordings/RE2.wav");
    assert_eq!(call["status"], "completed");
    assert_eq!(time(&call["ended_at"]), start + secs(67), "the repeated end changed nothing");
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM call_timeline_view WHERE call_id = $1 AND kind = 'CallCompleted'",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(stored, 1);

    // Every role of the company reads calls.
    for role in [Role::Agent, Role::Auditor, Role::Analyst, Role::Supervisor, Role::Admin] {
        let user = app.as_user(&[role], app.operator_company).await;
        let r = user.get(app.url(&format!("/api/v1/calls/{id}/events"))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{role:?}");
        let r = user.get(app.url("/api/v1/calls")).send().await.unwrap();
        assert_eq!(ids(&kraliki_tests::listed(r).await), [id.to_string()], "{role:?}");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn a_failed_call_shows_failed_with_its_reason_and_takes_no_more_steps() {
    let app = spawn_app().await;
    let c = &app.client;
    let ctx = ctx_of(app.operator_company);
    let campaign = Uuid::now_v7();

    // Never answered: the carrier refused it.
    let (refused, _) =
        initiate(&app, &ctx, NewCall { campaign_id: Some(campaign), ..NewCall::at(t0()) }).await;
    exec(&app, &ctx, refused, CallCommand::MarkRinging { at: t0() + secs(1) }).await;
    let fail = CallCommand::FailCall { reason: "carrier rejected: 503".into(), at: t0() + secs(4) };
    let position = exec(&app, &ctx, refused, fail).await.position.unwrap();
    let late_words = segment(Speaker::Caller, "hello?", 0, 500, t0() + secs(5));
    let rejected = app.app().state().dispatcher.execute::<Call>(&refused.to_string(), late_words, &ctx).await;
    assert!(rejected.is_err(), "an ended call takes no transcript");

    let r = c.get(app.url(&format!("/api/v1/calls/{refused}?min_position={position}"))).send().await.unwrap();
    let call = json_of(r, StatusCode::OK).await;
    assert_eq!(call["status"], "failed");
    assert_eq!(call["outcome"], "failed");
    assert_eq!(call["failure_reason"], "carrier rejected: 503");
    assert_eq!(call["answered_at"], Value::Null);
    assert_eq!((call["duration_seconds"].as_i64(), call["total_seconds"].as_i64()), (Some(0), Some(4)));
    assert_eq!(time(&call["ended_at"]), t0() + secs(4));
    assert_eq!(kinds(&call["timeline"]), ["CallInitiated", "CallRinging", "CallFailed"]);
    assert_eq!(call["timeline"][2]["detail"], json!({"reason": "carrier rejected: 503"}));
    assert_eq!(call["transcript"], json!([]));
    let r = c.get(app.url(&format!("/api/v1/calls/{refused}/transcript?format=text"))).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "");

    // Answered, then the media bridge broke 20 s in: that is the talk time it got.
    let (dropped, _) = initiate(&app, &ctx, NewCall::at(t0() + secs(60))).await;
    exec(&app, &ctx, dropped, CallCommand::AnswerCall { answered_by: None, at: t0() + secs(65) }).await;
    let fail = CallCommand::FailCall { reason: "media stream lost".into(), at: t0() + secs(85) };
    let position = exec(&app, &ctx, dropped, fail).await.position.unwrap();
    let r =
        c.get(app.url(&format!("/api/v1/calls?status=failed&min_position={position}"))).send().await.unwrap();
    let page = kraliki_tests::listed(r).await;
    assert_eq!(ids(&page), [dropped.to_string(), refused.to_string()]);
    let call = &page["items"][0];
    assert_eq!(call["failure_reason"], "media stream lost");
    assert_eq!((call["duration_seconds"].as_i64(), call["total_seconds"].as_i64()), (Some(20), Some(25)));
    app.cleanup().await;
}

#[tokio::test]
async fn filters_pagination_and_tenant_isolation() {
    let app = spawn_app().await;
    let c = &app.client;
    let ctx = ctx_of(app.operator_company);
    let day = |d: u32, h: u32| Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).single().unwrap();
    let (campaign_a, campaign_b) = (Uuid::now_v7(), Uuid::now_v7());
    let (contact_x, contact_y) = (Uuid::now_v7(), Uuid::now_v7());

    let (c1, _) = initiate(
        &app,
        &ctx,
        NewCall { campaign_id: Some(campaign_a), contact_id: Some(contact_x), ..NewCall::at(day(20, 9)) },
    )
    .await;
    exec(&app, &ctx, c1, CallCommand::AnswerCall { answered_by: None, at: day(20, 9) + secs(3) }).await;
    let complete = CallCommand::CompleteCall {
        outcome: CallOutcome::Connected,
        disposition: None,
        hangup_cause: None,
        at: day(20, 9) + secs(33),
    };
    exec(&app, &ctx, c1, complete).await;
    let (c2, _) =
        initiate(&app, &ctx, NewCall { direction: CallDirection::Inbound, ..NewCall::at(day(21, 12)) }).await;
    exec(&app, &ctx, c2, CallCommand::AnswerCall { answered_by: None, at: day(21, 12) + secs(1) }).await;
    let (c3, _) = initiate(
        &app,
        &ctx,
        NewCall { campaign_id: Some(campaign_a), contact_id: Some(contact_y), ..NewCall::at(day(22, 8)) },
    )
    .await;
    exec(&app, &ctx, c3, CallCommand::FailCall { reason: "busy signal".into(), at: day(22, 8) + secs(2) })
        .await;
    let (c4, _) = initiate(
        &app,
        &ctx,
        NewCall { campaign_id: Some(campaign_b), contact_id: Some(contact_x), ..NewCall::at(day(22, 18)) },
    )
    .await;
    exec(&app, &ctx, c4, CallCommand::MarkRinging { at: day(22, 18) + secs(1) }).await;
    let (c5, _) = initiate(
        &app,
        &ctx,
        NewCall {
            direction: CallDirection::Inbound,
            provider_call_id: Some("v3:inbound-abc"),
            ..NewCall::at(day(23, 7))
        },
    )
    .await;
    // Another company's call, at the newest time of all.
    let other_company = Uuid::now_v7();
    let (theirs, outcome) = initiate(&app, &ctx_of(other_company), NewCall::at(day(24, 7))).await;
    let position = outcome.position.unwrap();

    let list = |query: String| {
        let url = app.url(&format!("/api/v1/calls?min_position={position}&{query}"));
        async move { kraliki_tests::listed(c.get(url).send().await.unwrap()).await }
    };
    let s = |ids: &[Uuid]| ids.iter().map(Uuid::to_string).collect::<Vec<_>>();

    assert_eq!(ids(&list(String::new()).await), s(&[c5, c4, c3, c2, c1]), "newest first, ours only");
    let statuses =
        [("initiated", c5), ("ringing", c4), ("in_progress", c2), ("completed", c1), ("failed", c3)];
    for (status, id) in statuses {
        assert_eq!(ids(&list(format!("status={status}")).await), s(&[id]), "{status}");
    }
    assert_eq!(ids(&list("direction=inbound".into()).await), s(&[c5, c2]));
    assert_eq!(ids(&list(format!("campaign_id={campaign_a}")).await), s(&[c3, c1]));
    assert_eq!(ids(&list(format!("contact_id={contact_x}")).await), s(&[c4, c1]));
    assert_eq!(ids(&list(format!("campaign_id={campaign_a}&status=completed")).await), s(&[c1]));
    assert_eq!(ids(&list("provider_call_id=v3:inbound-abc".into()).await), s(&[c5]));
    assert_eq!(ids(&list("from=2026-11-22&to=2026-11-22".into()).await), s(&[c4, c3]), "a whole day");
    assert_eq!(
        ids(&list("from=2026-11-21T12:00:00Z&to=2026-11-22T18:00:00Z".into()).await),
        s(&[c3, c2]),
        "from inclusive, to exclusive"
    );
    // 19:00 in UTC+1 is c4's start, 18:00 UTC.
    assert_eq!(ids(&list("from=2026-11-22T19:00:00%2B01:00".into()).await), s(&[c5, c4]));

    // Pages: the cursor continues exactly where the last page ended.
    let mut seen = Vec::new();
    let mut query = "limit=2".to_owned();
    let mut pages = 0;
    loop {
        let page = list(query.clone()).await;
        assert!(page["items"].as_array().unwrap().len() <= 2);
        seen.extend(ids(&page));
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!((seen, pages), (s(&[c5, c4, c3, c2, c1]), 3));
    let first = list("direction=outbound&limit=2".into()).await;
    assert_eq!(ids(&first), s(&[c4, c3]));
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = list(format!("direction=outbound&limit=2&cursor={cursor}")).await;
    assert_eq!((ids(&rest), &rest["next_cursor"]), (s(&[c1]), &Value::Null));

    // Bad queries name the parameter.
    for (query, field) in [
        ("status=ended", Some("status")),
        ("direction=sideways", Some("direction")),
        ("from=yesterday", Some("from")),
        ("to=2026-13-01", Some("to")),
        ("cursor=nonsense", Some("cursor")),
        ("limit=0", Some("limit")),
        ("campaign_id=not-a-uuid", None),
        ("colour=blue", None),
    ] {
        let r = c.get(app.url(&format!("/api/v1/calls?{query}"))).send().await.unwrap();
        let problem = json_of(r, StatusCode::BAD_REQUEST).await;
        assert_eq!(problem["code"], "invalid_query", "{query}");
        if let Some(field) = field {
            assert_eq!(problem["errors"][0]["field"], field, "{query}: {problem}");
        }
    }

    // Another company sees only its own call; ours are not found, not forbidden.
    let other = app.as_user(&[Role::Admin], other_company).await;
    let r = other.get(app.url(&format!("/api/v1/calls?min_position={position}"))).send().await.unwrap();
    assert_eq!(ids(&kraliki_tests::listed(r).await), s(&[theirs]));
    let stranger = app.as_user(&[Role::Admin], Uuid::now_v7()).await;
    let r = stranger.get(app.url("/api/v1/calls")).send().await.unwrap();
    assert_eq!(kraliki_tests::listed(r).await["items"], json!([]));
    for path in ["", "/transcript", "/transcript?format=text", "/events"] {
        let r = other.get(app.url(&format!("/api/v1/calls/{c1}{path}"))).send().await.unwrap();
        assert_eq!(json_of(r, StatusCode::NOT_FOUND).await["code"], "not_found", "{path}");
        let r = c.get(app.url(&format!("/api/v1/calls/{theirs}{path}"))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "theirs {path}");
        let r = c.get(app.url(&format!("/api/v1/calls/{}{path}", Uuid::now_v7()))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "unknown {path}");
    }
    let r = app.anon.get(app.url("/api/v1/calls")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    app.cleanup().await;
}
