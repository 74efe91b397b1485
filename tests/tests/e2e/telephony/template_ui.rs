//! What the template UI and the seed's other clients call beside the core API: calls on
//! request, the dashboard's figures, providers and their health, live AI sessions, the
//! company's defaults, and the unversioned aliases — each over real HTTP, against real calls.

use kraliki_domain::values::Role;
use kraliki_voice::telephony::testing::api::FakeTwilioApi;
use uuid::Uuid;

use super::*;

/// A number (of a one-zone country) where it is daytime now, so the ad-hoc calling window
/// (08:00–21:00 in the number's zones) holds whenever the test runs.
fn number_where_it_is_day() -> &'static str {
    use chrono::Timelike;
    // Prague, Tokyo, Kolkata, São Paulo, Auckland: far enough apart that one is always in 09–19.
    let candidates = [
        ("+420603555001", "Europe/Prague"),
        ("+81355550001", "Asia/Tokyo"),
        ("+919855500001", "Asia/Kolkata"),
        ("+5511955550001", "America/Sao_Paulo"),
        ("+6495550001", "Pacific/Auckland"),
    ];
    candidates
        .into_iter()
        .find(|(_, zone)| {
            let tz: chrono_tz::Tz = zone.parse().unwrap();
            (9..19).contains(&chrono::Utc::now().with_timezone(&tz).hour())
        })
        .expect("one of them is in daytime")
        .0
}

async fn json_of(r: reqwest::Response, status: StatusCode) -> Value {
    let got = r.status();
    let body = r.text().await.unwrap();
    assert_eq!(got, status, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Twilio's status callback for the call it placed to `to` (at the URL it was given).
async fn twilio_reports(app: &TestApp, twilio: &FakeTwilioApi, to: &str, status: &str, sequence: &str) {
    let call = twilio.calls().into_iter().find(|c| c.to == to).unwrap();
    let url = call.params.iter().find(|(n, _)| n == "StatusCallback").unwrap().1.clone();
    let path = url.strip_prefix(PUBLIC).unwrap();
    let params = [
        ("CallSid", call.sid.as_str()),
        ("AccountSid", ACCOUNT),
        ("CallStatus", status),
        ("SequenceNumber", sequence),
        ("CallDuration", "42"),
        ("From", call.from.as_str()),
        ("To", to),
    ];
    assert_eq!(webhook(app, path, &params, None).await.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn calls_on_request_reach_the_carrier_and_the_dashboard_counts_them() {
    let twilio = FakeTwilioApi::start(ACCOUNT, TOKEN).await.unwrap();
    let openai = FakeOpenAi::start().await.unwrap();
    let app = outbound_app(&twilio, &openai, None).await;
    let company = Uuid::now_v7();
    let admin = app.as_user(&[Role::Admin], company).await;
    let post = |path: &'static str, body: Value| {
        let (admin, url) = (admin.clone(), app.url(path));
        async move { admin.post(url).json(&body).send().await.unwrap() }
    };
    // The company's caller id is its campaign's.
    let r = post("/api/campaigns", json!({"name": "Callbacks", "caller_id": "+14155550100"})).await;
    let campaign = json_of(r, StatusCode::CREATED).await["id"].as_str().unwrap().to_owned();
    let number = number_where_it_is_day();

    let r = post("/api/telephony/call", json!({"to_number": number, "metadata": {"ticket": "T-1"}})).await;
    let placed = json_of(r, StatusCode::CREATED).await;
    assert_eq!(
        (placed["provider"].as_str(), placed["from"].as_str()),
        (Some("twilio"), Some("+14155550100"))
    );
    assert_eq!(placed["to"], number);
    let id = placed["call_id"].as_str().unwrap().to_owned();
    assert_eq!(twilio.calls().len(), 1, "the carrier was asked once");
    let r = admin.get(app.url(&format!("/api/telephony/call/{id}"))).send().await.unwrap();
    let call = json_of(r, StatusCode::OK).await;
    assert_eq!((call["id"].as_str(), call["metadata"]["ticket"].as_str()), (Some(id.as_str()), Some("T-1")));
    assert_eq!(call["campaign_id"], Value::Null);

    // The seed's outbound: 202 with the call id; a stream URL of the client's is refused.
    let r = post("/api/v1/telephony/outbound", json!({"to_number": number, "telephony_provider": "twilio"}))
        .await;
    let accepted = json_of(r, StatusCode::ACCEPTED).await;
    assert!(accepted["call_id"].as_str().is_some_and(|c| c != id));
    let r =
        post("/api/v1/telephony/outbound", json!({"to_number": number, "stream_url": "wss://evil.example/"}))
            .await;
    let refused = json_of(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(refused["errors"][0]["field"], "stream_url", "{refused}");
    // A caller id that is not the company's, no callee, a listed number: refused, nothing dialled.
    let r = post("/api/telephony/call", json!({"to_number": number, "from_number": "+14155550199"})).await;
    assert_eq!(json_of(r, StatusCode::UNPROCESSABLE_ENTITY).await["errors"][0]["field"], "from_number");
    let r = post("/api/v1/calls/start", json!({"metadata": {}})).await;
    assert_eq!(json_of(r, StatusCode::UNPROCESSABLE_ENTITY).await["errors"][0]["field"], "to_number");
    let r = post("/api/v1/do-not-call", json!({"phone_number": "+420603555999"})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = post("/api/v1/calls/start", json!({"to_number": "+420603555999"})).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(twilio.calls().len(), 2);

    // An AI call to a contact, and the MCP client's outbound alias for a campaign's contact.
    let r =
        post("/api/v1/contacts", json!({"phone_number": "+420603555002", "timezone": zone_where_it_is(12)}))
            .await;
    let contact = json_of(r, StatusCode::CREATED).await["id"].as_str().unwrap().to_owned();
    let r =
        post("/api/v1/calls/start", json!({"contact_id": contact, "metadata": {"why": "training"}})).await;
    assert_eq!(json_of(r, StatusCode::CREATED).await["to"], "+420603555002");
    let r = post("/api/v1/call-lists", json!({"campaign_id": campaign, "name": "all"})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = admin.post(app.url(&format!("/api/v1/campaigns/{campaign}/start"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = post("/api/calls/outbound", json!({"campaign_id": campaign, "contact_id": contact})).await;
    assert_eq!(json_of(r, StatusCode::CREATED).await["to"], "+420603555002");
    assert_eq!(twilio.calls().len(), 4);

    // The dashboard: four calls, all live, all through Twilio.
    let stats =
        json_of(admin.get(app.url("/api/telephony/stats")).send().await.unwrap(), StatusCode::OK).await;
    assert_eq!(
        (stats["total_calls"].as_i64(), stats["active_calls"].as_i64()),
        (Some(4), Some(4)),
        "{stats}"
    );
    assert_eq!((stats["completed_calls"].as_i64(), stats["outbound_calls"].as_i64()), (Some(0), Some(4)));
    assert_eq!(stats["by_provider"][0]["provider"], "twilio");
    assert_eq!(stats["success_rate"], Value::Null, "no call ended yet");

    // One is answered and ends: the figures follow.
    twilio_reports(&app, &twilio, number, "in-progress", "1").await;
    let placed_first = twilio.calls().into_iter().filter(|c| c.to == number).count();
    assert_eq!(placed_first, 2);
    twilio_reports(&app, &twilio, number, "completed", "3").await;
    app.caught_up().await;
    let summary =
        json_of(admin.get(app.url("/analytics/summary")).send().await.unwrap(), StatusCode::OK).await;
    assert_eq!(summary["calls_today"], 4, "{summary}");
    assert_eq!(summary["completed_calls"], 1);
    assert_eq!(summary["answered_calls"], 1);
    let realtime =
        json_of(admin.get(app.url("/analytics/metrics/realtime")).send().await.unwrap(), StatusCode::OK)
            .await;
    assert_eq!((realtime["active_calls"].as_i64(), realtime["active_sessions"].as_i64()), (Some(3), Some(0)));

    // Another company sees none of it.
    let other = app.as_user(&[Role::Admin], Uuid::now_v7()).await;
    let theirs =
        json_of(other.get(app.url("/api/telephony/stats")).send().await.unwrap(), StatusCode::OK).await;
    assert_eq!(theirs["total_calls"], 0);
    let r = other.get(app.url(&format!("/api/telephony/call/{id}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Agents do not place calls.
    let agent = app.as_user(&[Role::Agent], company).await;
    let r =
        agent.post(app.url("/api/telephony/call")).json(&json!({"to_number": number})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    app.cleanup().await;
}

#[tokio::test]
async fn the_unversioned_aliases_reach_the_same_data() {
    let app = spawn_app_with(|_| {}, Vec::new()).await;
    let company = Uuid::now_v7();
    let admin = app.as_user(&[Role::Admin], company).await;
    for name in ["A", "B", "C"] {
        let r = admin.post(app.url("/api/campaigns")).json(&json!({"name": name})).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let ids = |v: &Value| -> Vec<String> {
        v["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_owned()).collect()
    };
    let versioned =
        kraliki_tests::listed(admin.get(app.url("/api/v1/campaigns")).send().await.unwrap()).await;
    let alias = kraliki_tests::listed(admin.get(app.url("/api/campaigns")).send().await.unwrap()).await;
    assert_eq!(ids(&alias), ids(&versioned));
    assert_eq!(ids(&alias).len(), 3);
    // Paged through the alias: the Link keeps its path.
    let first =
        kraliki_tests::listed(admin.get(app.url("/api/campaigns?limit=2")).send().await.unwrap()).await;
    let link = first["link"].as_str().unwrap();
    assert!(link.starts_with("</api/campaigns?"), "{link}");
    let next = link.trim_start_matches('<').split('>').next().unwrap();
    let second = kraliki_tests::listed(admin.get(app.url(next)).send().await.unwrap()).await;
    assert_eq!([ids(&first), ids(&second)].concat(), ids(&versioned));
    assert!(second["link"].is_null());

    let versioned =
        kraliki_tests::listed(admin.get(app.url("/api/v1/companies")).send().await.unwrap()).await;
    let alias = kraliki_tests::listed(admin.get(app.url("/api/companies")).send().await.unwrap()).await;
    assert_eq!(ids(&alias), ids(&versioned));
    assert_eq!(ids(&alias), [company.to_string()]);
    let r = app.anon.get(app.url("/api/companies")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    app.cleanup().await;
}

#[tokio::test]
async fn the_companys_defaults_are_events_and_refuse_what_providers_do_not_offer() {
    let app = spawn_app_with(|_| {}, Vec::new()).await;
    let company = Uuid::now_v7();
    let admin = app.as_user(&[Role::Admin], company).await;
    let get = |path: &str| admin.get(app.url(path)).send();
    let defaults = json_of(get("/api/v1/settings/provider").await.unwrap(), StatusCode::OK).await;
    assert_eq!((defaults["ai_provider"].as_str(), &defaults["updated_at"]), (Some("openai"), &Value::Null));

    let wanted = json!({"ai_provider": "gemini", "model": "models/gemini-live-2.5-flash-preview", "voice": "Puck", "telephony_provider": "telnyx"});
    let r = admin.put(app.url("/api/v1/settings/provider")).json(&wanted).send().await.unwrap();
    let saved = json_of(r, StatusCode::OK).await;
    assert_eq!(
        (saved["voice"].as_str(), saved["telephony_provider"].as_str()),
        (Some("Puck"), Some("telnyx"))
    );
    assert!(saved["updated_at"].is_string());
    let config = json_of(get("/api/v1/providers/voice-config").await.unwrap(), StatusCode::OK).await;
    assert_eq!((config["provider"].as_str(), config["source"].as_str()), (Some("gemini"), Some("company")));
    assert!(config["offer"]["voices"].as_array().unwrap().contains(&json!("Puck")));
    // The same again records nothing; a voice of another provider is refused, the rest kept.
    let before = app.count_events().await;
    let r = admin.put(app.url("/api/v1/settings/provider")).json(&wanted).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = admin
        .put(app.url("/api/v1/settings/provider"))
        .json(&json!({"ai_provider": "openai", "voice": "Puck"}))
        .send()
        .await
        .unwrap();
    let refused = json_of(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(
        (refused["errors"][0]["field"].as_str(), refused["errors"][0]["code"].as_str()),
        (Some("voice"), Some("not_offered")),
        "{refused}"
    );
    assert_eq!(app.count_events().await, before);
    let kept = json_of(get("/api/v1/settings/provider").await.unwrap(), StatusCode::OK).await;
    assert_eq!(kept["ai_provider"], "gemini");
    // Only admins change them; everyone reads them.
    let supervisor = app.as_user(&[Role::Supervisor], company).await;
    let r = supervisor.put(app.url("/api/v1/settings/provider")).json(&wanted).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let agent = app.as_user(&[Role::Agent], company).await;
    assert_eq!(
        agent.get(app.url("/api/v1/settings/provider")).send().await.unwrap().status(),
        StatusCode::OK
    );

    let r = supervisor
        .post(app.url("/api/v1/sessions/config"))
        .json(&json!({"instructions": "Rehearse a refund call.\nBe brief.", "greeting": "Hi!", "language": "cs"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r, StatusCode::OK).await["language"], "cs");
    let session = json_of(get("/api/v1/sessions/config").await.unwrap(), StatusCode::OK).await;
    assert_eq!(session["instructions"], "Rehearse a refund call.\nBe brief.");
    let r = supervisor
        .post(app.url("/api/v1/sessions/config"))
        .json(&json!({"greeting": "a\u{7}"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r, StatusCode::UNPROCESSABLE_ENTITY).await["errors"][0]["field"], "greeting");

    // What each provider offers.
    let voices =
        json_of(get("/api/v1/providers/voices?provider=gemini").await.unwrap(), StatusCode::OK).await;
    assert_eq!(voices.as_array().unwrap().len(), 1);
    assert_eq!(voices[0]["default_voice"], "Puck");
    let models = json_of(get("/api/v1/providers/models").await.unwrap(), StatusCode::OK).await;
    let providers: Vec<&str> =
        models.as_array().unwrap().iter().map(|m| m["provider"].as_str().unwrap()).collect();
    assert_eq!(providers, ["openai", "gemini", "deepgram"]);
    assert_eq!(
        get("/api/v1/providers/voices?provider=skype").await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    // A campaign's own choice shows as the campaign's.
    let r = admin
        .post(app.url("/api/v1/campaigns"))
        .json(&json!({"name": "Deepgram line", "primary_provider": "deepgram", "voice": "aura-2-helena-en"}))
        .send()
        .await
        .unwrap();
    let campaign = json_of(r, StatusCode::CREATED).await["id"].as_str().unwrap().to_owned();
    let config = json_of(
        get(&format!("/api/v1/providers/voice-config?campaign_id={campaign}")).await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (config["source"].as_str(), config["voice"].as_str()),
        (Some("campaign"), Some("aura-2-helena-en"))
    );
    app.cleanup().await;
}

#[tokio::test]
async fn provider_health_and_live_sessions_follow_real_sessions() {
    let openai = FakeOpenAi::start().await.unwrap();
    let base = openai.config().base_url;
    let app = spawn_app_with(
        move |s| {
            s.providers.openai_api_key = Some(SecretString::from(FakeOpenAi::API_KEY));
            s.providers.openai_realtime_url = Some(base);
            // A Gemini Live that nobody answers.
            s.providers.gemini_api_key = Some(SecretString::from("gemini-key"));
            s.providers.gemini_live_url = Some("ws://127.0.0.1:9/live".into());
            s.providers.twilio_auth_token = Some(SecretString::from(TOKEN));
            s.providers.public_base_url = Some(PUBLIC.into());
        },
        Vec::new(),
    )
    .await;
    let health = |path: &'static str| {
        let (client, url) = (app.client.clone(), app.url(path));
        async move {
            let all = json_of(client.get(url).send().await.unwrap(), StatusCode::OK).await;
            let of =
                |name: &str| all.as_array().unwrap().iter().find(|p| p["provider"] == name).unwrap().clone();
            (of("openai"), of("gemini"), of("deepgram"))
        }
    };
    let (o, g, d) = health("/providers/health").await;
    assert_eq!((o["status"].as_str(), g["status"].as_str()), (Some("unknown"), Some("unknown")));
    assert_eq!((o["configured"].as_bool(), d["configured"].as_bool()), (Some(true), Some(false)));

    // A Gemini line: the session cannot open, the call fails, Gemini is down.
    voice_campaign(&app, "+14155550111", "gemini", "Hello.").await;
    let (failed, _phone) =
        inbound_twilio_call(&app, "CA00000000000000000000000000000111", "+14155550111").await;
    events_until(&app, &failed, "CallFailed").await;
    let (o, g, _) = health("/api/v1/providers/health").await;
    assert_eq!((g["status"].as_str(), g["failures"].as_u64()), (Some("down"), Some(1)), "{g}");
    assert!(g["last_error"].as_str().is_some_and(|e| !e.is_empty()));
    assert_eq!(o["status"], "unknown");

    // An OpenAI line: the session opens, it is live, OpenAI is healthy with its latency.
    openai.push_all(FakeOpenAi::greeting_script("resp_1", "item_greet", &[0x55u8; 160], "Hello."));
    inbound_campaign(&app, "+14155550112").await;
    let (live, phone) = inbound_twilio_call(&app, "CA00000000000000000000000000000112", "+14155550112").await;
    events_until(&app, &live, "AgentConnected").await;
    let (o, _, _) = health("/providers/health").await;
    assert_eq!((o["status"].as_str(), o["successes"].as_u64()), (Some("healthy"), Some(1)), "{o}");
    assert!(o["last_latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0));
    app.caught_up().await;
    let sessions = kraliki_tests::eventually(Duration::from_secs(10), "the live session", || async {
        let s =
            json_of(app.client.get(app.url("/api/v1/sessions")).send().await.unwrap(), StatusCode::OK).await;
        (s.as_array().unwrap().len() == 1).then_some(s)
    })
    .await;
    let s = &sessions[0];
    assert_eq!((s["call_id"].as_str(), s["provider"].as_str()), (Some(live.as_str()), Some("openai")));
    assert_eq!((s["model"].as_str(), s["voice"].as_str()), (Some("gpt-realtime"), Some("marin")));
    assert_eq!(s["telephony_provider"], "twilio");
    let providers =
        json_of(app.client.get(app.url("/api/v1/providers")).send().await.unwrap(), StatusCode::OK).await;
    let openai_entry = providers.as_array().unwrap().iter().find(|p| p["name"] == "openai").unwrap();
    assert_eq!(
        (openai_entry["is_default"].as_bool(), openai_entry["health"]["status"].as_str()),
        (Some(true), Some("healthy"))
    );
    assert_eq!(openai_entry["offer"]["default_model"], "gpt-realtime");

    // The caller hangs up: the session is gone.
    phone.stop().unwrap();
    events_until(&app, &live, "CallCompleted").await;
    app.caught_up().await;
    let after =
        json_of(app.client.get(app.url("/api/v1/sessions")).send().await.unwrap(), StatusCode::OK).await;
    assert_eq!(after, json!([]));
    app.cleanup().await;
}

#[tokio::test]
async fn a_browser_session_talks_with_the_ai_agent_through_the_bridge() {
    use base64::Engine as _;
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let openai = FakeOpenAi::start().await.unwrap();
    let greeting = vec![0x55u8; 1600]; // 200 ms of μ-law
    openai.push_all(FakeOpenAi::greeting_script(
        "resp_1",
        "item_greet",
        &greeting,
        "Hello, let us rehearse.",
    ));
    openai.push(Step::wait_for_type("input_audio_buffer.append"));
    openai.push(Step::Json(FakeOpenAi::speech_started("item_caller", 100)));
    openai.push(Step::Json(FakeOpenAi::input_transcription_completed("item_caller", "I want a refund.")));
    openai.push(Step::Json(FakeOpenAi::function_call_arguments_done(
        "resp_2",
        "item_fc",
        "call_1",
        "end_call",
        &json!({"disposition": "training_done"}),
    )));
    let app = spawn(&openai).await;
    let company = Uuid::now_v7();
    let (_, supervisor) = app.token_for(&[Role::Supervisor], company).await;
    let r = kraliki_tests::client_with(&supervisor)
        .post(app.url("/api/v1/sessions/config"))
        .json(&json!({"instructions": "Rehearse a refund call.", "greeting": "Greet the trainee.", "language": "en"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (_, agent) = app.token_for(&[Role::Agent], company).await;
    let base = format!("ws://{}/ws/session", app.app().addr());

    // No token, no session.
    let refused = tokio_tungstenite::connect_async(base.as_str()).await.unwrap_err();
    assert!(refused.to_string().contains("401"), "{refused}");

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{base}?access_token={agent}")).await.unwrap();
    ws.send(Message::text(json!({"type": "start"}).to_string())).await.unwrap();
    let mut frames: Vec<Value> = Vec::new();
    let mut audio_bytes = 0usize;
    let mut sent_audio = false;
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(Ok(msg)) = ws.next().await {
            let Message::Text(text) = msg else { continue };
            let frame: Value = serde_json::from_str(&text).unwrap();
            match frame["type"].as_str().unwrap() {
                "audio" => {
                    audio_bytes += base64::engine::general_purpose::STANDARD
                        .decode(frame["audio"].as_str().unwrap())
                        .unwrap()
                        .len();
                    assert_eq!(frame["sample_rate"], 16_000);
                }
                // The page echoes every mark once what came before it has played.
                "mark" => ws
                    .send(Message::text(json!({"type": "mark", "name": frame["name"]}).to_string()))
                    .await
                    .unwrap(),
                "ended" => {
                    frames.push(frame);
                    break;
                }
                _ => {}
            }
            if !sent_audio && audio_bytes > 0 {
                // 60 ms of the microphone: PCM16 at 16 kHz.
                let pcm: Vec<u8> = (0..960i16).flat_map(|i| ((i % 64) * 200).to_le_bytes()).collect();
                for chunk in pcm.chunks(640) {
                    let audio = base64::engine::general_purpose::STANDARD.encode(chunk);
                    ws.send(Message::text(json!({"type": "audio", "audio": audio}).to_string()))
                        .await
                        .unwrap();
                }
                sent_audio = true;
            }
            if let Some(last) = serde_json::from_str::<Value>(&text).ok().filter(|f| f["type"] != "audio") {
                frames.push(last);
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the session ended in time: {frames:?}");
    let kinds: Vec<&str> = frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"started"), "{kinds:?}");
    assert_eq!(frames.last().unwrap()["reason"], "completed");
    // The agent's 200 ms reached the page at 16 kHz: twice the samples, two bytes each.
    assert_eq!(audio_bytes, 1600 * 2 * 2);
    let said: Vec<(&str, &str)> = frames
        .iter()
        .filter(|f| f["type"] == "transcript")
        .map(|f| (f["speaker"].as_str().unwrap(), f["text"].as_str().unwrap()))
        .collect();
    assert!(said.contains(&("caller", "I want a refund.")), "{said:?}");
    assert!(said.contains(&("agent", "Hello, let us rehearse.")), "{said:?}");
    // The microphone's audio reached the provider as μ-law at 8 kHz: each 20 ms frame of
    // 16 kHz PCM (640 bytes) as 160 bytes (the call may end before the last frame is passed on).
    let appended: Vec<usize> = openai
        .received_json()
        .into_iter()
        .filter(|v| v["type"] == "input_audio_buffer.append")
        .map(|v| {
            base64::engine::general_purpose::STANDARD.decode(v["audio"].as_str().unwrap()).unwrap().len()
        })
        .collect();
    assert!(
        !appended.is_empty() && appended.len() <= 3 && appended.iter().all(|n| *n == 160),
        "{appended:?}"
    );
    // The session talked as the company's defaults say.
    let update = openai.received_json().into_iter().find(|v| v["type"] == "session.update").unwrap();
    assert!(
        update["session"]["instructions"].as_str().unwrap().contains("Rehearse a refund call."),
        "{update}"
    );

    // Recorded as a call of the company with provider `browser`.
    let call_id = frames[0]["call_id"].as_str().unwrap().to_owned();
    let events = events_until(&app, &call_id, "CallCompleted").await;
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        &types[..4],
        ["CallInitiated", "CallAnswered", "MediaStreamStarted", "AgentConnected"],
        "{types:?}"
    );
    assert_eq!(events[0].1["CallInitiated"]["provider"], "browser");
    let (_, done) = events.last().unwrap();
    assert_eq!(done["CallCompleted"]["disposition"], "training_done");
    let reader = kraliki_tests::client_with(&agent);
    let call = kraliki_tests::eventually(Duration::from_secs(20), "the call in the read model", || async {
        let r = reader.get(app.url(&format!("/api/v1/calls/{call_id}"))).send().await.unwrap();
        let call: Value = r.json().await.unwrap();
        (call["status"] == "completed").then_some(call)
    })
    .await;
    assert_eq!((call["provider"].as_str(), call["ai_provider"].as_str()), (Some("browser"), Some("openai")));
    app.cleanup().await;
}
