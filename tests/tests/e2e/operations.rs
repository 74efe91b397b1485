//! Health, readiness, metrics, export and configuration as an operator sees them.

use kraliki_api::export::{export, ExportFilter};
use std::time::Duration;

use kraliki_tests::{eventually, spawn_app, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn health_readiness_and_metrics_report_the_real_state() {
    let app = spawn_app().await;
    let c = &app.client;
    for path in ["/health", "/api/health", "/live"] {
        assert_eq!(c.get(app.url(path)).send().await.unwrap().status(), StatusCode::OK, "{path}");
    }
    let r = app.post_json("/api/v1/companies", json!({"name": "M", "domain": "m.example"})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    app.caught_up().await;
    let r = c.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let ready: Value = r.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["checks"]["migrations"]["pending"], json!([]));
    let names: Vec<&str> = ready["checks"]["projections"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "company_view",
            "user_view",
            "service_account_view",
            "campaign_view",
            "campaign_template_view",
            "call_list_view",
            "contact_view",
            "contact_import_view",
            "do_not_call_view",
            "call_view",
            "tenant_settings_view",
            "ivr_flow_view",
            "ivr_visit_view",
            "agent_view",
            "team_view",
            "queue_view",
            "queue_entry_view",
            "routing_rule_view",
            "event_publisher",
            "campaign_cloner",
            "agent_timers",
            "router",
            "carrier_legs"
        ]
    );

    let metrics = c.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for name in [
        "kraliki_command_seconds",
        "kraliki_events_appended_total",
        "kraliki_projection_lag_events",
        "kraliki_projection_lag_seconds",
        "kraliki_barrier_age_seconds",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    app.cleanup().await;
}

/// Restarts `app` on the same database with no projection runners (events are appended, none
/// applied): reads wait at most `read_wait_ms`, `/ready` allows `ready_lag_ms` of lag.
async fn with_runners_stopped(app: &mut TestApp, read_wait_ms: u64, ready_lag_ms: f64) {
    app.caught_up().await;
    app.stop().await;
    app.settings.projections.run = false;
    app.settings.http.read_wait_max_ms = read_wait_ms;
    app.settings.projections.ready_max_lag_ms = ready_lag_ms;
    app.start().await;
}

/// And back with its runners (and the tests' usual read wait).
async fn with_runners_started(app: &mut TestApp) {
    app.stop().await;
    app.settings.projections.run = true;
    app.settings.http.read_wait_max_ms = 10_000;
    app.start().await;
}

async fn ready(app: &TestApp) -> (StatusCode, Value) {
    let r = app.anon.get(app.url("/ready")).send().await.unwrap();
    (r.status(), r.json().await.unwrap())
}

fn item<'a>(ready: &'a Value, name: &str) -> &'a Value {
    ready["checks"]["projections"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("{name} missing from {ready}"))
}

#[tokio::test]
async fn a_lagging_read_model_makes_the_instance_not_ready_until_it_catches_up() {
    let mut app = spawn_app().await;
    with_runners_stopped(&mut app, 200, 300.0).await;
    // Nothing appended since the runners stopped: nothing lags.
    let (status, body) = ready(&app).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("ready")), "{body}");

    // Appended, never applied: once the oldest unapplied event is older than the allowed lag,
    // the instance is out, and the answer names the read model.
    let r = app.post_json("/api/v1/companies", json!({"name": "Lag", "domain": "lag.example"})).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED, "the read model has not caught up");
    let body = eventually(Duration::from_secs(10), "/ready answers 503 for company_view", || async {
        let (status, body) = ready(&app).await;
        (status == StatusCode::SERVICE_UNAVAILABLE && item(&body, "company_view")["ok"] == false)
            .then_some(body)
    })
    .await;
    assert_eq!(body["status"], "not_ready", "{body}");
    assert_eq!(
        (body["checks"]["database"]["ok"].as_bool(), body["checks"]["migrations"]["ok"].as_bool()),
        (Some(true), Some(true))
    );
    let company = item(&body, "company_view");
    assert_eq!(
        (company["ok"].as_bool(), company["serves_reads"].as_bool()),
        (Some(false), Some(true)),
        "{body}"
    );
    assert!(company["lag_events"].as_i64().unwrap() >= 1, "{body}");
    assert!(company["lag_ms"].as_f64().unwrap() > 300.0, "{body}");

    // The runners come back and catch up: ready again.
    with_runners_started(&mut app).await;
    let body = eventually(Duration::from_secs(30), "/ready answers 200 ready", || async {
        let (status, body) = ready(&app).await;
        (status == StatusCode::OK && body["status"] == "ready").then_some(body)
    })
    .await;
    let company = item(&body, "company_view");
    assert_eq!((company["ok"].as_bool(), company["lag_events"].as_i64()), (Some(true), Some(0)), "{body}");
    app.cleanup().await;
}

#[tokio::test]
async fn a_read_past_what_the_read_model_has_applied_answers_503_projection_lagging() {
    let mut app = spawn_app().await;
    with_runners_stopped(&mut app, 300, 10_000.0).await;
    let r = app.post_json("/api/v1/companies", json!({"name": "Later", "domain": "later.example"})).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let position: i64 = r.headers()["kraliki-position"].to_str().unwrap().parse().unwrap();
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let by_query = app.url(&format!("/api/v1/companies/{id}?min_position={position}"));
    let list = app.url("/api/v1/companies");
    for request in [app.client.get(&by_query), app.client.get(&list).header("kraliki-min-position", position)]
    {
        let started = std::time::Instant::now();
        let r = request.send().await.unwrap();
        let took = started.elapsed();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()["retry-after"], "1");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/problem+json"));
        assert_eq!(r.json::<Value>().await.unwrap()["code"], "projection_lagging");
        assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(5), "waited {took:?}");
    }

    with_runners_started(&mut app).await;
    let by_query = app.url(&format!("/api/v1/companies/{id}?min_position={position}"));
    let r = app.client.get(&by_query).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the read waits for the position, then answers");
    assert_eq!(r.json::<Value>().await.unwrap()["name"], "Later");
    app.cleanup().await;
}

#[tokio::test]
async fn events_export_streams_the_filtered_log_as_ndjson() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let r = app
            .post_json(
                "/api/v1/companies",
                json!({"name": format!("E{i}"), "domain": format!("e{i}.example")}),
            )
            .await;
        ids.push(r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    app.client
        .put(app.url(&format!("/api/v1/companies/{}", ids[0])))
        .json(&json!({"name": "E0b"}))
        .send()
        .await
        .unwrap();

    let mut out = Vec::new();
    let n = export(&app.pool, &ExportFilter::default(), &mut out).await.unwrap();
    let all = 4 + app.fixture_events().await as usize;
    assert_eq!(n as usize, all);
    let lines: Vec<Value> =
        String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), all);
    assert!(lines.windows(2).all(|w| w[0]["global_position"].as_i64() < w[1]["global_position"].as_i64()));

    let mut out = Vec::new();
    let filter = ExportFilter { aggregate_id: Some(ids[0].clone()), ..ExportFilter::default() };
    assert_eq!(export(&app.pool, &filter, &mut out).await.unwrap(), 2);
    let mut out = Vec::new();
    let filter = ExportFilter { event_types: vec!["CompanyRenamed".into()], ..ExportFilter::default() };
    assert_eq!(export(&app.pool, &filter, &mut out).await.unwrap(), 1);
    let mut out = Vec::new();
    let filter = ExportFilter {
        since: Some(chrono::Utc::now() + chrono::Duration::hours(1)),
        ..ExportFilter::default()
    };
    assert_eq!(export(&app.pool, &filter, &mut out).await.unwrap(), 0);
    app.cleanup().await;
}

#[tokio::test]
async fn a_database_outage_answers_503_fast_and_the_server_recovers_by_itself() {
    let pg = kraliki_tests::PrivatePostgres::start();
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&pg.url("postgres")).await.unwrap();
    sqlx::query("CREATE DATABASE kraliki").execute(&mut admin).await.unwrap();
    drop(admin);
    let db = kraliki_tests::TestDb { name: "kraliki".into(), url: pg.url("kraliki") };
    let app = kraliki_tests::spawn_app_in(db, |_| {}, vec![]).await;
    let r = app.post_json("/api/v1/companies", json!({"name": "Outage", "domain": "outage.example"})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let read = app.url(&format!("/api/v1/companies/{id}"));
    app.pool.close().await;

    pg.down();
    for attempt in 0..3 {
        let started = std::time::Instant::now();
        let r = app.client.get(&read).send().await.unwrap();
        let took = started.elapsed();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "attempt {attempt}");
        assert!(r.headers().contains_key("retry-after"));
        assert_eq!(r.json::<Value>().await.unwrap()["code"], "database_unavailable");
        assert!(took < std::time::Duration::from_secs(4), "answered in {took:?}");
        let started = std::time::Instant::now();
        let r = app
            .client
            .post(app.url("/api/v1/companies"))
            .json(&json!({"name": "W", "domain": "w.example"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(started.elapsed() < std::time::Duration::from_secs(4));
    }
    let started = std::time::Instant::now();
    let r = app.client.get(app.url("/ready")).send().await.unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_millis(1500),
        "/ready took {:?}",
        started.elapsed()
    );
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json::<Value>().await.unwrap()["checks"]["database"]["ok"], false);

    // Back up: reads and writes work again without a restart.
    pg.up();
    kraliki_tests::eventually(std::time::Duration::from_secs(30), "reads recover", || async {
        (app.client.get(&read).send().await.ok()?.status() == StatusCode::OK).then_some(())
    })
    .await;
    kraliki_tests::eventually(std::time::Duration::from_secs(30), "writes recover", || async {
        let r = app
            .client
            .post(app.url("/api/v1/companies"))
            .json(&json!({"name": "After", "domain": "after.example"}))
            .send()
            .await
            .ok()?;
        (r.status() == StatusCode::CREATED).then_some(())
    })
    .await;
    let mut app = app;
    app.stop().await;
}

#[tokio::test]
async fn a_server_starts_while_nats_is_down_and_publishes_everything_once_when_it_comes() {
    // A port nothing listens on yet; a NATS server of the test's own is started there later.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut nats_settings = None;
    let app = kraliki_tests::spawn_app_with(
        |s| {
            nats_settings = Some(kraliki_tests::test_nats(s));
            s.nats_url = Some(format!("nats://127.0.0.1:{port}"));
            s.projections.ready_max_lag_ms = 200.0;
        },
        vec![],
    )
    .await;
    let nats = nats_settings.unwrap();
    for i in 0..3 {
        let r = app
            .post_json(
                "/api/v1/companies",
                json!({"name": format!("N{i}"), "domain": format!("n{i}.example")}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED, "the API works without NATS");
    }
    // The publisher lags: degraded, not unready (every instance would leave the load balancer).
    kraliki_tests::eventually(std::time::Duration::from_secs(10), "/ready says degraded", || async {
        let r = app.client.get(app.url("/ready")).send().await.ok()?;
        let ok = r.status() == StatusCode::OK;
        let body: Value = r.json().await.ok()?;
        (ok && body["status"] == "degraded").then_some(())
    })
    .await;

    let store = std::env::temp_dir().join(kraliki_tests::unique("nats_store"));
    let mut server = std::process::Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(&store)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nats-server (Debian's package)");
    let client = kraliki_tests::eventually(std::time::Duration::from_secs(10), "NATS up", || async {
        async_nats::connect(format!("nats://127.0.0.1:{port}")).await.ok()
    })
    .await;
    let js = async_nats::jetstream::new(client);
    let expected = 3 + app.fixture_events().await as u64;
    kraliki_tests::eventually(std::time::Duration::from_secs(30), "every event published once", || {
        let (js, stream) = (js.clone(), nats.stream.clone());
        async move {
            let mut s = js.get_stream(&stream).await.ok()?;
            (s.info().await.ok()?.state.messages == expected).then_some(())
        }
    })
    .await;
    kraliki_tests::eventually(std::time::Duration::from_secs(10), "/ready says ready", || async {
        let body: Value = app.client.get(app.url("/ready")).send().await.ok()?.json().await.ok()?;
        (body["status"] == "ready").then_some(())
    })
    .await;
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(store);
    app.cleanup().await;
}

#[tokio::test]
async fn provider_settings_that_would_break_every_webhook_stop_the_server_at_start() {
    let db = kraliki_tests::TestDb::create().await;
    type Tweak = fn(&mut kraliki_api::Settings);
    let cases: [(&str, Tweak); 3] = [
        ("PUBLIC_BASE_URL must be an https:// URL", |s| {
            s.providers.public_base_url = Some("http://voice.example.com".into())
        }),
        // A DER (SubjectPublicKeyInfo) encoding instead of the raw 32-byte key.
        ("TELNYX_PUBLIC_KEY must be the 32-byte Ed25519 public key", |s| {
            s.providers.telnyx_public_key =
                Some("MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=".into())
        }),
        ("OPENAI_REALTIME_URL must be a ws or wss URL", |s| {
            s.providers.openai_realtime_url = Some("realtime".into())
        }),
    ];
    for (expected, tweak) in cases {
        let mut settings = kraliki_tests::test_settings(&db);
        tweak(&mut settings);
        let error = match kraliki_api::Application::build(settings).await {
            Ok(_) => panic!("started with a bad setting ({expected})"),
            Err(e) => format!("{e:#}"),
        };
        assert!(error.contains(expected), "{error}");
    }
    db.drop_now().await;
}
