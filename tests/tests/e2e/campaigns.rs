//! Campaigns end to end: create → import → build a call list → start → dial outcomes → pause →
//! clone, reading each projection over HTTP; the start/pause race; malformed imports; the
//! dialer's next-contacts query; tenant isolation.

use chrono::{DateTime, Duration as ChronoDuration, TimeZone, Utc};
use kraliki_commands::CommandContext;
use kraliki_domain::call::{Call, CallCommand, CallDirection, CallOutcome};
use kraliki_domain::values::Role;
use kraliki_tests::{spawn_app_with, TestApp};
use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{json, Value};
use uuid::Uuid;

async fn spawn() -> TestApp {
    spawn_app_with(|s| s.providers.openai_api_key = Some(SecretString::from("sk-test")), Vec::new()).await
}

/// Wednesday 25 November 2026, 10:00 UTC = 11:00 in Prague: inside the default window.
fn morning() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).single().unwrap()
}

async fn json_of(r: reqwest::Response, status: StatusCode) -> Value {
    let got = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "{body}");
    body
}

async fn import_csv(app: &TestApp, csv: impl Into<Vec<u8>>, fields: &[(&str, &str)]) -> Value {
    let mut form = Form::new()
        .part("file", Part::bytes(csv.into()).file_name("contacts.csv").mime_str("text/csv").unwrap());
    for (k, v) in fields {
        form = form.text(k.to_string(), v.to_string());
    }
    let r =
        app.client.post(app.url("/api/v1/contacts/import?wait=true")).multipart(form).send().await.unwrap();
    json_of(r, StatusCode::OK).await
}

async fn contact_count(app: &TestApp) -> usize {
    let r = app.client.get(app.url("/api/v1/contacts?limit=500")).send().await.unwrap();
    kraliki_tests::listed(r).await["items"].as_array().unwrap().len()
}

/// One dial attempt as the telephony side records it: initiated at `at`, ended 30 s later.
async fn dial(
    app: &TestApp,
    campaign: &str,
    contact: &str,
    outcome: CallOutcome,
    disposition: Option<&str>,
    at: DateTime<Utc>,
) -> i64 {
    let dispatcher = &app.app().state().dispatcher;
    let ctx = CommandContext::new(app.operator_company.to_string(), "system:test-dialer");
    let id = Uuid::now_v7().to_string();
    let start = CallCommand::InitiateCall {
        direction: CallDirection::Outbound,
        provider: "twilio".into(),
        provider_call_id: None,
        from: "+14155550100".into(),
        to: "+420603123456".into(),
        campaign_id: Some(campaign.parse().unwrap()),
        contact_id: Some(contact.parse().unwrap()),
        at,
    };
    dispatcher.execute::<Call>(&id, start, &ctx).await.unwrap();
    if outcome == CallOutcome::Connected {
        let answer = CallCommand::AnswerCall {
            answered_by: Some("human".into()),
            at: at + ChronoDuration::seconds(5),
        };
        dispatcher.execute::<Call>(&id, answer, &ctx).await.unwrap();
    }
    let end = CallCommand::CompleteCall {
        outcome,
        disposition: disposition.map(str::to_owned),
        hangup_cause: None,
        at: at + ChronoDuration::seconds(30),
    };
    let position = dispatcher.execute::<Call>(&id, end, &ctx).await.unwrap().position.unwrap();
    app.caught_up().await;
    position
}

fn names(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["first_name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn create_import_build_a_list_start_dial_pause_and_clone() {
    let app = spawn().await;
    let c = &app.client;

    // A number already on the tenant's do-not-call list.
    let r = app
        .post_json("/api/v1/do-not-call", json!({"phone_number": "+420 603 123 459", "reason": "asked"}))
        .await;
    json_of(r, StatusCode::CREATED).await;

    let r = app
        .post_json(
            "/api/v1/campaigns",
            json!({"name": "Winter renewals", "campaign_type": "outbound_sales", "primary_provider": "openai",
                   "instructions": "Offer the renewal.", "max_attempts": 3, "retry_delays": {"no_answer": 60}}),
        )
        .await;
    let campaign = json_of(r, StatusCode::CREATED).await;
    let id = campaign["id"].as_str().unwrap().to_owned();
    assert_eq!(campaign["status"], "draft");
    assert_eq!(campaign["max_concurrent_calls"], 10, "the seed's default");
    assert_eq!(campaign["calling_window"]["start"], "08:00");
    assert_eq!(campaign["retry_delays"]["busy"], 15, "unset delays keep their defaults");

    // No call list yet: nothing to dial.
    let r = c.post(app.url(&format!("/api/v1/campaigns/{id}/start"))).send().await.unwrap();
    assert_eq!(json_of(r, StatusCode::CONFLICT).await["code"], "campaign_not_ready");

    let csv = "phone,first_name,last_name,timezone,tags,score\n\
               +420603123456,Ada,Lovelace,Europe/Prague,vip,10\n\
               +420603123457,Bob,Marley,Europe/Prague,vip;west,30\n\
               +420603123458,Cyd,Charisse,Europe/Prague,,20\n\
               not-a-number,Dan,Brown,Europe/Prague,vip,1\n\
               +420 603 123 456,Eve,Again,Europe/Prague,vip,99\n\
               +420603123459,Fay,Wray,Europe/Prague,vip,5\n";
    let import = import_csv(&app, csv, &[("contact_list_id", "winter")]).await;
    assert_eq!(import["status"], "completed", "{import}");
    assert_eq!(
        (import["total"].as_i64(), import["successful"].as_i64(), import["failed"].as_i64()),
        (Some(6), Some(4), Some(2))
    );
    assert_eq!(import["duplicates"], 1);
    assert_eq!(import["do_not_call"], 1);
    let errors = import["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    assert_eq!((errors[0]["row"].as_i64(), errors[0]["code"].as_str()), (Some(5), Some("invalid_phone")));
    assert_eq!((errors[1]["row"].as_i64(), errors[1]["code"].as_str()), (Some(6), Some("duplicate_phone")));
    let import_id = import["id"].as_str().unwrap();

    // The downloadable report has every problem.
    let r = c.get(app.url(&format!("/api/v1/contacts/imports/{import_id}/report"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let report = r.text().await.unwrap();
    assert_eq!(report.lines().count(), 3, "{report}");
    assert!(report.lines().nth(1).unwrap().starts_with("5,phone_number,invalid_phone,"), "{report}");

    let r =
        c.get(app.url(&format!("/api/v1/contacts?import_id={import_id}&list=winter"))).send().await.unwrap();
    let contacts = kraliki_tests::listed(r).await;
    assert_eq!(names(&contacts), ["Ada", "Bob", "Cyd", "Fay"]);
    let fay = &contacts["items"][3];
    assert_eq!((fay["do_not_call"].as_bool(), fay["status"].as_str()), (Some(true), Some("do_not_call")));
    assert_eq!(contacts["items"][1]["custom_fields"]["score"], "30");
    assert_eq!(contacts["items"][1]["tags"], json!(["vip", "west"]));
    let id_of = |name: &str| {
        contacts["items"].as_array().unwrap().iter().find(|c| c["first_name"] == name).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    let r = app
        .post_json(
            "/api/v1/call-lists",
            json!({"campaign_id": id, "name": "VIPs by score", "filter": {"tags_any": ["VIP"]},
                   "order": [{"field": "custom.score", "direction": "desc"}]}),
        )
        .await;
    let list = json_of(r, StatusCode::CREATED).await;
    let list_id = list["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (list["contacts"].as_i64(), list["dialable"].as_i64()),
        (Some(3), Some(2)),
        "Fay is on the DNC list"
    );

    let next = |at: DateTime<Utc>| {
        let url =
            app.url(&format!("/api/v1/call-lists/{list_id}/next?at={}", at.to_rfc3339().replace('+', "%2B")));
        async move { json_of(c.get(url).send().await.unwrap(), StatusCode::OK).await }
    };
    let before = next(morning()).await;
    assert_eq!(before["blocked_reason"], "campaign_not_active");
    assert_eq!(names(&before), Vec::<String>::new());

    let r = c.post(app.url(&format!("/api/v1/campaigns/{id}/start"))).send().await.unwrap();
    assert_eq!(json_of(r, StatusCode::OK).await["status"], "active");

    // Best first (score 30, then 10); nobody at 03:00 local time.
    assert_eq!(names(&next(morning()).await), ["Bob", "Ada"]);
    assert_eq!(names(&next(morning() - ChronoDuration::hours(8)).await), Vec::<String>::new());

    // Locked while active; pacing may change.
    let r = c
        .put(app.url(&format!("/api/v1/campaigns/{id}")))
        .json(&json!({"primary_provider": "gemini"}))
        .send()
        .await
        .unwrap();
    let problem = json_of(r, StatusCode::CONFLICT).await;
    assert_eq!(problem["code"], "locked_while_active");
    assert_eq!(problem["errors"][0]["field"], "primary_provider");
    let r = c
        .patch(app.url(&format!("/api/v1/campaigns/{id}")))
        .json(&json!({"calls_per_hour": 250}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r, StatusCode::OK).await["calls_per_hour"], 250);

    // Bob does not answer: he waits out the 60-minute retry delay; Ada connects and converts.
    dial(&app, &id, &id_of("Bob"), CallOutcome::NoAnswer, None, morning()).await;
    assert_eq!(names(&next(morning() + ChronoDuration::minutes(10)).await), ["Ada"]);
    let position = dial(
        &app,
        &id,
        &id_of("Ada"),
        CallOutcome::Connected,
        Some("Sale"),
        morning() + ChronoDuration::minutes(11),
    )
    .await;
    let later = next(morning() + ChronoDuration::minutes(75)).await;
    assert_eq!(names(&later), ["Bob"], "Ada is done; Bob's delay has passed");
    assert_eq!(later["items"][0]["campaign_attempts"], 1);

    let r = c
        .get(app.url(&format!("/api/v1/campaigns/{id}/analytics?min_position={position}")))
        .send()
        .await
        .unwrap();
    let stats = json_of(r, StatusCode::OK).await;
    assert_eq!(
        (
            stats["total_calls"].as_i64(),
            stats["connected_calls"].as_i64(),
            stats["successful_calls"].as_i64()
        ),
        (Some(2), Some(1), Some(1))
    );
    assert_eq!(
        (
            stats["contacts_total"].as_i64(),
            stats["contacts_attempted"].as_i64(),
            stats["contacts_connected"].as_i64()
        ),
        (Some(3), Some(2), Some(1))
    );
    assert_eq!(stats["conversion_rate"], 1.0);
    assert_eq!(stats["average_talk_seconds"], 25.0);
    let outcomes = stats["outcomes"].as_array().unwrap();
    assert!(outcomes.contains(&json!({"outcome": "no_answer", "disposition": null, "calls": 1})), "{stats}");
    assert!(
        outcomes.contains(&json!({"outcome": "connected", "disposition": "sale", "calls": 1})),
        "{stats}"
    );
    // Fay (DNC) and Ada (connected) are finished; Bob remains.
    assert_eq!(stats["contacts_remaining"], 1);
    assert_eq!(stats["completion_percent"], 66.7);
    let r = c.get(app.url(&format!("/api/v1/campaigns/{id}"))).send().await.unwrap();
    let read = json_of(r, StatusCode::OK).await;
    assert_eq!((read["total_calls"].as_i64(), read["conversion_rate"].as_f64()), (Some(2), Some(1.0)));

    let r = c
        .post(app.url(&format!("/api/v1/campaigns/{id}/pause")))
        .json(&json!({"reason": "lunch"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r, StatusCode::OK).await["status"], "paused");
    assert_eq!(next(morning() + ChronoDuration::minutes(75)).await["blocked_reason"], "campaign_not_active");
    let r = c
        .put(app.url(&format!("/api/v1/campaigns/{id}")))
        .json(&json!({"primary_provider": "gemini"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r, StatusCode::OK).await["primary_provider"], "gemini");
    // Gemini has no key here: resuming is refused with a clear error.
    let r = c.post(app.url(&format!("/api/v1/campaigns/{id}/resume"))).send().await.unwrap();
    assert_eq!(json_of(r, StatusCode::CONFLICT).await["code"], "provider_not_configured");

    let r = c.post(app.url(&format!("/api/v1/campaigns/{id}/clone"))).send().await.unwrap();
    let copy = json_of(r, StatusCode::CREATED).await;
    let copy_id = copy["id"].as_str().unwrap();
    assert_eq!(copy["name"], "Winter renewals (copy)");
    assert_eq!((copy["status"].as_str(), copy["total_calls"].as_i64()), (Some("draft"), Some(0)));
    assert_eq!(copy["origin"], json!({"kind": "clone", "campaign_id": id, "include_call_lists": true}));
    assert_eq!(copy["calls_per_hour"], 250);
    let r = c.get(app.url(&format!("/api/v1/call-lists?campaign_id={copy_id}"))).send().await.unwrap();
    let lists = kraliki_tests::listed(r).await;
    assert_eq!(lists["items"][0]["name"], "VIPs by score");
    assert_eq!(lists["items"][0]["dialable"], 2, "the copy has dialed no one yet");

    // Save as a template, and make a campaign from it.
    let r = app
        .post_json("/api/v1/campaign-templates", json!({"from_campaign_id": id, "name": "Renewals template"}))
        .await;
    let template = json_of(r, StatusCode::CREATED).await;
    assert_eq!(template["settings"]["instructions"], "Offer the renewal.");
    let r = app
        .post_json(
            &format!("/api/v1/campaign-templates/{}/campaigns", template["id"].as_str().unwrap()),
            json!({"name": "Spring renewals"}),
        )
        .await;
    let spring = json_of(r, StatusCode::CREATED).await;
    assert_eq!(
        (spring["name"].as_str(), spring["instructions"].as_str()),
        (Some("Spring renewals"), Some("Offer the renewal."))
    );
    let r =
        app.post_json("/api/v1/campaigns", json!({"template_id": template["id"], "name": "Summer"})).await;
    assert_eq!(json_of(r, StatusCode::CREATED).await["origin"]["kind"], "template");

    let r = c.get(app.url("/api/v1/campaigns?status=draft")).send().await.unwrap();
    let drafts = kraliki_tests::listed(r).await;
    assert_eq!(drafts["items"].as_array().unwrap().len(), 3);

    // A running campaign cannot be deleted; a completed one is archived, read-only.
    let r = c.post(app.url(&format!("/api/v1/campaigns/{id}/complete"))).send().await.unwrap();
    assert_eq!(json_of(r, StatusCode::OK).await["status"], "completed");
    let r = c.post(app.url(&format!("/api/v1/campaigns/{id}/archive"))).send().await.unwrap();
    assert_eq!(json_of(r, StatusCode::OK).await["status"], "archived");
    let r =
        c.put(app.url(&format!("/api/v1/campaigns/{id}"))).json(&json!({"name": "x"})).send().await.unwrap();
    assert_eq!(json_of(r, StatusCode::CONFLICT).await["code"], "invalid_state");
    let r = c.delete(app.url(&format!("/api/v1/campaigns/{copy_id}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = c.get(app.url(&format!("/api/v1/campaigns/{copy_id}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    app.cleanup().await;
}

/// Start and pause sent at the same moment: one order or the other wins, each answer tells
/// which, and the log never holds an impossible sequence.
#[tokio::test]
async fn start_and_pause_racing_end_in_a_consistent_state() {
    let app = spawn().await;
    import_csv(&app, "phone_number\n+420603123456\n+420603123457\n", &[]).await;
    for round in 0..8 {
        let r = app.post_json("/api/v1/campaigns", json!({"name": format!("Race {round}")})).await;
        let id = json_of(r, StatusCode::CREATED).await["id"].as_str().unwrap().to_owned();
        let r = app.post_json("/api/v1/call-lists", json!({"campaign_id": id, "name": "all"})).await;
        json_of(r, StatusCode::CREATED).await;
        let start = app.client.post(app.url(&format!("/api/v1/campaigns/{id}/start"))).send();
        let pause = app.client.post(app.url(&format!("/api/v1/campaigns/{id}/pause"))).send();
        let (start, pause) = tokio::join!(start, pause);
        let (start, pause) = (start.unwrap(), pause.unwrap());
        assert_eq!(start.status(), StatusCode::OK, "a start from draft always succeeds");
        let pause_status = pause.status();
        let pause_body: Value = pause.json().await.unwrap();
        let r = app.client.get(app.url(&format!("/api/v1/campaigns/{id}"))).send().await.unwrap();
        let status = json_of(r, StatusCode::OK).await["status"].as_str().unwrap().to_owned();
        match pause_status {
            StatusCode::OK => assert_eq!(status, "paused", "round {round}"),
            StatusCode::CONFLICT => {
                assert_eq!(pause_body["code"], "invalid_state", "round {round}: {pause_body}");
                assert_eq!(status, "active", "round {round}");
            }
            other => panic!("round {round}: pause answered {other}: {pause_body}"),
        }
        let types: Vec<String> = sqlx::query_scalar(
            "SELECT event_type FROM events WHERE aggregate_type = 'Campaign' AND aggregate_id = $1 ORDER BY sequence",
        )
        .bind(&id)
        .fetch_all(&app.pool)
        .await
        .unwrap();
        let expected: Vec<&str> = if status == "paused" {
            vec!["CampaignCreated", "CampaignStarted", "CampaignPaused"]
        } else {
            vec!["CampaignCreated", "CampaignStarted"]
        };
        assert_eq!(types, expected, "round {round}");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn malformed_imports_are_reported_and_import_nothing() {
    let app = spawn_app_with(|s| s.imports.max_upload_bytes = 16 * 1024 * 1024, Vec::new()).await;
    let failed = |v: &Value| {
        (
            v["status"].as_str().unwrap_or_default().to_owned(),
            v["error"]["code"].as_str().unwrap_or_default().to_owned(),
        )
    };

    // Latin-1, not UTF-8 (the é of "José" as one byte).
    let latin1 = b"phone_number,first_name\n+420603123456,Jos\xe9\n".to_vec();
    let v = import_csv(&app, latin1, &[]).await;
    assert_eq!(failed(&v), ("failed".into(), "invalid_encoding".into()), "{v}");
    assert_eq!(v["error"]["row"], 2);

    let v = import_csv(&app, "name,email\nAda,ada@example.com\n", &[]).await;
    assert_eq!(failed(&v), ("failed".into(), "missing_column".into()), "{v}");

    let v = import_csv(&app, "", &[]).await;
    assert_eq!(failed(&v), ("failed".into(), "empty_file".into()), "{v}");
    let v = import_csv(&app, "phone_number\n", &[]).await;
    assert_eq!(failed(&v), ("failed".into(), "empty_file".into()), "{v}");

    // A good row, then a line of 10 MB: the good row is not kept either.
    let mut huge = b"phone_number,notes\n+420603123456,ok\n+420603123457,".to_vec();
    huge.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
    huge.push(b'\n');
    let v = import_csv(&app, huge, &[]).await;
    assert_eq!(failed(&v), ("failed".into(), "line_too_long".into()), "{v}");
    assert_eq!(v["error"]["row"], 3);

    // Not CSV at all: a PNG.
    let png = [
        &[0x89u8, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a][..],
        &[0u8, 0, 0, 13, b'I', b'H', b'D', b'R', 0xff, 0xfe],
    ]
    .concat();
    let v = import_csv(&app, png, &[]).await;
    assert_eq!(failed(&v).0, "failed", "{v}");
    assert!(["invalid_encoding", "invalid_csv", "missing_column"].contains(&failed(&v).1.as_str()), "{v}");

    // A mapping that names a field that does not exist.
    let v = import_csv(&app, "tel\n+420603123456\n", &[("mapping", r#"{"tel": "telephone"}"#)]).await;
    assert_eq!(failed(&v), ("failed".into(), "unknown_field".into()), "{v}");

    // Broken JSON.
    let form = Form::new().part(
        "file",
        Part::bytes(br#"[{"phone_number": "+420603123456"}, {"phone_number": "#.to_vec()).file_name("c.json"),
    );
    let r =
        app.client.post(app.url("/api/v1/contacts/import?wait=true")).multipart(form).send().await.unwrap();
    let v = json_of(r, StatusCode::OK).await;
    assert_eq!(failed(&v), ("failed".into(), "invalid_json".into()), "{v}");

    assert_eq!(contact_count(&app).await, 0, "nothing half-imported");

    // Row problems only: every row reported, the good ones kept.
    let v = import_csv(
        &app,
        "phone_number,max_attempts\n12345,3\n+420603123456,many\n+420603123457,2\n+420603123457,2\n",
        &[],
    )
    .await;
    assert_eq!(v["status"], "completed", "{v}");
    assert_eq!((v["successful"].as_i64(), v["failed"].as_i64()), (Some(1), Some(3)));
    let codes: Vec<&str> =
        v["errors"].as_array().unwrap().iter().map(|e| e["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["invalid_phone", "invalid_number", "duplicate_phone"]);

    // Bad requests never start an import.
    let form = Form::new().text("format", "csv");
    let r = app.client.post(app.url("/api/v1/contacts/import")).multipart(form).send().await.unwrap();
    assert_eq!(json_of(r, StatusCode::UNPROCESSABLE_ENTITY).await["errors"][0]["field"], "file");
    let form = Form::new()
        .part("file", Part::bytes(b"phone_number\n+420603123458\n".to_vec()))
        .text("format", "xlsx");
    let r = app.client.post(app.url("/api/v1/contacts/import")).multipart(form).send().await.unwrap();
    assert_eq!(json_of(r, StatusCode::UNPROCESSABLE_ENTITY).await["errors"][0]["field"], "format");
    let too_big = vec![b'a'; 17 * 1024 * 1024];
    let r = app
        .client
        .post(app.url("/api/v1/contacts/import"))
        .header("content-type", "text/csv")
        .body(too_big)
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r, StatusCode::PAYLOAD_TOO_LARGE).await["code"], "payload_too_large");
    assert_eq!(contact_count(&app).await, 1);
    app.cleanup().await;
}

#[tokio::test]
async fn an_import_cut_off_by_a_crash_is_failed_at_restart_and_its_contacts_dropped() {
    use kraliki_domain::contact::ContactInput;
    use kraliki_domain::contact_import::*;
    let mut app = spawn().await;
    let dispatcher = app.app().state().dispatcher.clone();
    let ctx = CommandContext::new(app.operator_company.to_string(), "system:test");
    let id = Uuid::now_v7();
    let start = ContactImportCommand::StartImport {
        format: ImportFormat::Csv,
        file_name: None,
        size_bytes: 100,
        contact_list: None,
        default_region: None,
        mapping: ColumnMapping::default(),
        at: Utc::now(),
    };
    dispatcher.execute::<ContactImport>(&id.to_string(), start, &ctx).await.unwrap();
    let validated = ContactImportCommand::MarkValidated { total_rows: 10_000, at: Utc::now() };
    dispatcher.execute::<ContactImport>(&id.to_string(), validated, &ctx).await.unwrap();
    let data = ContactInput { phone_number: Some("+420603123456".into()), ..Default::default() }
        .parse(None)
        .unwrap();
    let batch = ContactBatchCommand::RecordBatch {
        import_id: id,
        batch: 1,
        contacts: vec![ImportedContact { id: Uuid::now_v7(), row: 2, data }],
        rejected: vec![],
        at: Utc::now(),
    };
    dispatcher.execute::<ContactBatch>(&ContactBatch::stream_id(id, 1), batch, &ctx).await.unwrap();
    app.caught_up().await;
    assert_eq!(contact_count(&app).await, 1, "visible while importing");

    // The process that ran it is gone; the next start fails it.
    app.stop().await;
    app.start().await;
    app.caught_up().await;
    let r = app.client.get(app.url(&format!("/api/v1/contacts/imports/{id}"))).send().await.unwrap();
    let v = json_of(r, StatusCode::OK).await;
    assert_eq!(
        (v["status"].as_str(), v["error"]["code"].as_str()),
        (Some("failed"), Some("interrupted")),
        "{v}"
    );
    app.caught_up().await;
    assert_eq!(contact_count(&app).await, 0);
    app.cleanup().await;
}

/// One event per 5,000 rows (the default batch), each batch its own stream: 12,001 rows are
/// three batch events of 5,000, 5,000 and 2,001 contacts, between the import's own events.
#[tokio::test]
async fn an_import_records_one_event_per_5000_rows() {
    let app = spawn().await;
    assert_eq!(app.settings.imports.batch_size, 5_000, "the default");
    let mut csv = String::from("phone_number,first_name\n");
    for i in 0..12_001 {
        csv.push_str(&format!("+420603{i:06},P{i}\n"));
    }
    let v = import_csv(&app, csv, &[]).await;
    assert_eq!((v["status"].as_str(), v["successful"].as_i64()), (Some("completed"), Some(12_001)), "{v}");
    let import_id = v["id"].as_str().unwrap();

    let events: Vec<(String, String, String, Option<i32>)> = sqlx::query_as(
        "SELECT aggregate_type, aggregate_id, event_type, jsonb_array_length(payload -> 'ContactBatchImported' -> 'contacts') \
         FROM events WHERE aggregate_id <> ALL($1) ORDER BY global_position",
    )
    .bind(
        sqlx::query_scalar::<_, String>("SELECT aggregate_id FROM events WHERE aggregate_type IN ('User', 'Company')")
            .fetch_all(&app.pool)
            .await
            .unwrap(),
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let batch = |n: u64, contacts: i32| {
        (
            "ContactBatch".to_owned(),
            format!("{import_id}:{n}"),
            "ContactBatchImported".to_owned(),
            Some(contacts),
        )
    };
    let own = |event: &str| ("ContactImport".to_owned(), import_id.to_owned(), event.to_owned(), None);
    assert_eq!(
        events,
        [
            own("ContactImportStarted"),
            own("ContactImportValidated"),
            batch(1, 5_000),
            batch(2, 5_000),
            batch(3, 2_001),
            own("ContactImportCompleted"),
        ],
        "the whole log of the import"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn json_bulk_answers_the_seed_result_and_ndjson_streams() {
    let app = spawn().await;
    let r = app
        .post_json(
            "/api/v1/contacts/bulk",
            json!({"contact_list_id": "spring", "default_region": "CZ", "contacts": [
                {"phone_number": "603 123 456", "first_name": "Ada", "plan": "gold"},
                {"phone_number": "+1 555 0100"},
                {"phone_number": "603123457", "max_attempts": 2, "do_not_call": true}
            ]}),
        )
        .await;
    let v = json_of(r, StatusCode::OK).await;
    assert_eq!(
        (v["total"].as_i64(), v["successful"].as_i64(), v["failed"].as_i64()),
        (Some(3), Some(2), Some(1)),
        "{v}"
    );
    assert_eq!(v["errors"][0]["row"], 2);
    assert!(v["errors"][0]["error"].as_str().unwrap().contains("not a valid number"), "{v}");
    let r = app.client.get(app.url("/api/v1/contacts?list=spring")).send().await.unwrap();
    let list = kraliki_tests::listed(r).await;
    assert_eq!(list["items"][0]["phone_number"], "+420603123456");
    assert_eq!(list["items"][0]["timezone"], "Europe/Prague", "from the number");
    assert_eq!(list["items"][0]["custom_fields"]["plan"], "gold");
    assert_eq!(list["items"][1]["status"], "do_not_call");

    let ndjson = "{\"phone_number\": \"+442079460018\", \"first_name\": \"Lon\"}\n\nnot json\n";
    let r = app
        .client
        .post(app.url("/api/v1/contacts/import?wait=true&format=ndjson"))
        .header("content-type", "application/x-ndjson")
        .body(ndjson)
        .send()
        .await
        .unwrap();
    let v = json_of(r, StatusCode::OK).await;
    assert_eq!(
        (v["status"].as_str(), v["successful"].as_i64(), v["failed"].as_i64()),
        (Some("completed"), Some(1), Some(1)),
        "{v}"
    );
    assert_eq!(v["errors"][0]["code"], "invalid_json");
    assert_eq!(v["errors"][0]["row"], 3);
    app.cleanup().await;
}

#[tokio::test]
async fn the_next_contacts_respect_do_not_call_attempts_and_every_zone_of_the_number() {
    let app = spawn().await;
    let c = &app.client;
    // +1 555… spans every North American zone; +1 415 is Los Angeles only.
    let csv = "phone_number,first_name,timezone,max_attempts\n+14155550123,West,,2\n+12125550100,East,,3\n+420603123456,Praha,Europe/Prague,3\n";
    let v = import_csv(&app, csv, &[]).await;
    assert_eq!(v["successful"], 3, "{v}");
    let r = app.post_json("/api/v1/campaigns", json!({"name": "Zones", "calling_window": {"start": "09:00", "end": "17:00", "days": [1,2,3,4,5]}})).await;
    let id = json_of(r, StatusCode::CREATED).await["id"].as_str().unwrap().to_owned();
    let r = app
        .post_json(
            "/api/v1/call-lists",
            json!({"campaign_id": id, "name": "all", "order": [{"field": "first_name"}]}),
        )
        .await;
    let list_id = json_of(r, StatusCode::CREATED).await["id"].as_str().unwrap().to_owned();
    let r = c.post(app.url(&format!("/api/v1/campaigns/{id}/start"))).send().await.unwrap();
    json_of(r, StatusCode::OK).await;
    let next = |at: DateTime<Utc>| {
        let url =
            app.url(&format!("/api/v1/call-lists/{list_id}/next?at={}", at.to_rfc3339().replace('+', "%2B")));
        async move { names(&json_of(c.get(url).send().await.unwrap(), StatusCode::OK).await) }
    };
    // Wednesday 15:00 UTC: Prague 16:00, New York 10:00, Los Angeles 07:00.
    let wed_15 = Utc.with_ymd_and_hms(2026, 11, 25, 15, 0, 0).single().unwrap();
    assert_eq!(next(wed_15).await, ["East", "Praha"]);
    // 18:00 UTC: Prague 19:00 (closed), New York 13:00, Los Angeles 10:00.
    let wed_18 = wed_15 + ChronoDuration::hours(3);
    assert_eq!(next(wed_18).await, ["East", "West"]);
    // Saturday: nobody.
    assert_eq!(next(wed_18 + ChronoDuration::days(3)).await, Vec::<String>::new());

    // West has two attempts at most; the campaign's delays apply between them.
    let contacts = kraliki_tests::listed(c.get(app.url("/api/v1/contacts")).send().await.unwrap()).await;
    let west = contacts["items"].as_array().unwrap().iter().find(|c| c["first_name"] == "West").unwrap()
        ["id"]
        .as_str()
        .unwrap()
        .to_owned();
    dial(&app, &id, &west, CallOutcome::Busy, None, wed_18 - ChronoDuration::hours(2)).await;
    dial(&app, &id, &west, CallOutcome::Busy, None, wed_18 - ChronoDuration::hours(1)).await;
    assert_eq!(next(wed_18).await, ["East"]);

    // A number put on the do-not-call list disappears at once.
    let r = app.post_json("/api/v1/do-not-call", json!({"phone_number": "+12125550100"})).await;
    json_of(r, StatusCode::CREATED).await;
    assert_eq!(next(wed_18).await, Vec::<String>::new());
    let r = c.delete(app.url("/api/v1/do-not-call/+12125550100")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(next(wed_18).await, ["East"]);
    let r = c.delete(app.url("/api/v1/do-not-call/+12125550100")).send().await.unwrap();
    assert_eq!(json_of(r, StatusCode::NOT_FOUND).await["code"], "not_found");
    app.cleanup().await;
}

#[tokio::test]
async fn campaigns_and_contacts_stay_inside_their_company_and_roles_apply() {
    let app = spawn().await;
    let r = app.post_json("/api/v1/campaigns", json!({"name": "Ours"})).await;
    let id = json_of(r, StatusCode::CREATED).await["id"].as_str().unwrap().to_owned();
    let r = app
        .post_json("/api/v1/contacts", json!({"phone_number": "+420603123456", "first_name": "Ada"}))
        .await;
    let contact = json_of(r, StatusCode::CREATED).await["id"].as_str().unwrap().to_owned();
    let r = app.post_json("/api/v1/contacts", json!({"phone_number": "+420 603 123 456"})).await;
    assert_eq!(json_of(r, StatusCode::CONFLICT).await["errors"][0]["code"], "duplicate_phone");

    let other = app.as_user(&[Role::Admin], Uuid::now_v7()).await;
    for path in [
        format!("/api/v1/campaigns/{id}"),
        format!("/api/v1/contacts/{contact}"),
        format!("/api/v1/campaigns/{id}/analytics"),
    ] {
        let r = other.get(app.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let r = other.post(app.url(&format!("/api/v1/campaigns/{id}/start"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = other.get(app.url("/api/v1/campaigns")).send().await.unwrap();
    assert_eq!(kraliki_tests::listed(r).await["items"], json!([]));
    let r = other
        .post(app.url("/api/v1/call-lists"))
        .json(&json!({"campaign_id": id, "name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r, StatusCode::UNPROCESSABLE_ENTITY).await["errors"][0]["field"], "campaign_id");

    let agent = app.as_user(&[Role::Agent], app.operator_company).await;
    let r = agent.get(app.url(&format!("/api/v1/campaigns/{id}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = agent.post(app.url("/api/v1/campaigns")).json(&json!({"name": "Mine"})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = agent
        .post(app.url(&format!("/api/v1/contacts/{contact}/do-not-call")))
        .json(&json!({"reason": "asked on the call"}))
        .send()
        .await
        .unwrap();
    let flagged = json_of(r, StatusCode::OK).await;
    assert_eq!(flagged["status"], "do_not_call");
    let r = app.client.get(app.url("/api/v1/do-not-call")).send().await.unwrap();
    let listed = kraliki_tests::listed(r).await;
    assert_eq!(listed["items"][0]["phone_number"], "+420603123456");
    assert_eq!(listed["items"][0]["reason"], "asked on the call");

    // Settings problems come back all at once, by field.
    let r = app
        .post_json(
            "/api/v1/campaigns",
            json!({"name": "", "max_attempts": 0, "calling_window": {"start": "7 am"}}),
        )
        .await;
    let problem = json_of(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    let fields: Vec<&str> =
        problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["name", "calling_window.start", "max_attempts"], "{problem}");
    let r = app.post_json("/api/v1/campaigns", json!({"name": "x", "primary_provder": "openai"})).await;
    assert_eq!(json_of(r, StatusCode::UNPROCESSABLE_ENTITY).await["code"], "validation_failed");
    app.cleanup().await;
}

#[tokio::test]
async fn the_import_queue_is_bounded_per_tenant_and_fails_an_upload_no_server_can_reach() {
    use kraliki_domain::contact_import::*;
    let app = spawn().await;
    let tenant = app.operator_company;
    let dispatcher = app.app().state().dispatcher.clone();
    let ctx = CommandContext::new(tenant.to_string(), "system:test");
    // An import another server took ten minutes ago, its upload on that server's own spool.
    let lost = Uuid::now_v7();
    let start = ContactImportCommand::StartImport {
        format: ImportFormat::Csv,
        file_name: Some("elsewhere.csv".into()),
        size_bytes: 100,
        contact_list: None,
        default_region: None,
        mapping: ColumnMapping::default(),
        at: Utc::now(),
    };
    dispatcher.execute::<ContactImport>(&lost.to_string(), start, &ctx).await.unwrap();
    let job = json!({"id": lost, "tenant": tenant, "actor": "system:test", "correlation_id": null, "format": "csv",
        "path": "/nonexistent/spool/elsewhere.upload", "mapping": {}, "contact_list": null, "default_region": null});
    sqlx::query(
        "INSERT INTO import_jobs (import_id, tenant_id, job, spool_path, state, queued_at) \
         VALUES ($1, $2, $3, '/nonexistent/spool/elsewhere.upload', 'queued', now() - interval '10 minutes')",
    )
    .bind(lost)
    .bind(tenant)
    .bind(&job)
    .execute(&app.pool)
    .await
    .unwrap();
    let status = kraliki_tests::eventually(
        std::time::Duration::from_secs(10),
        "the unreachable import fails",
        || async {
            let r = app.client.get(app.url(&format!("/api/v1/contacts/imports/{lost}"))).send().await.ok()?;
            let v: Value = r.json().await.ok()?;
            (v["status"] == "failed").then_some(v)
        },
    )
    .await;
    assert_eq!(status["error"]["code"], "spool_unreachable", "{status}");

    // Twenty waiting imports of one tenant (uploads of another server, just queued): the next is
    // refused, and nothing is recorded for it.
    for _ in 0..20 {
        sqlx::query(
            "INSERT INTO import_jobs (import_id, tenant_id, job, spool_path, state) VALUES ($1, $2, '{}', '/nonexistent', 'queued')",
        )
        .bind(Uuid::now_v7())
        .bind(tenant)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    let before = app.count_events().await;
    let r = app
        .client
        .post(app.url("/api/v1/contacts/import"))
        .header("content-type", "text/csv")
        .body("phone_number\n+420603123456\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(app.count_events().await, before);
    app.cleanup().await;
}
