//! The NATS publisher: every event on its subject once, in per-aggregate order, across a
//! restart, a lost checkpoint (crash after publishing) and a rebuild.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use kraliki_projections::builds::{self, BuildStatus};
use kraliki_projections::publisher::{self, decode_position};
use kraliki_tests::{eventually, nats_url, spawn_app, spawn_app_with, test_nats, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn create_companies(app: &TestApp, n: usize, tag: &str) {
    for i in 0..n {
        let r = app
            .post_json(
                "/api/v1/companies",
                json!({"name": format!("{tag} {i}"), "domain": format!("{tag}{i}.example")}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
        let r = app
            .client
            .put(app.url(&format!("/api/v1/companies/{id}")))
            .json(&json!({"name": format!("{tag} {i} renamed")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
}

struct Published {
    msg_id: String,
    subject: String,
    position: kraliki_projections::Position,
    aggregate_id: String,
    sequence: i64,
}

async fn read_stream(js: &async_nats::jetstream::Context, stream: &str) -> Vec<Published> {
    let mut s = js.get_stream(stream).await.unwrap();
    let last = s.info().await.unwrap().state.last_sequence;
    let mut out = Vec::new();
    for seq in 1..=last {
        let m = s.get_raw_message(seq).await.unwrap();
        let body: Value = serde_json::from_slice(&m.payload).unwrap();
        out.push(Published {
            msg_id: m.headers.get("Nats-Msg-Id").unwrap().as_str().to_owned(),
            subject: m.subject.to_string(),
            position: decode_position(m.headers.get(publisher::POSITION_HEADER).unwrap().as_str()).unwrap(),
            aggregate_id: body["aggregate_id"].as_str().unwrap().to_owned(),
            sequence: body["sequence"].as_i64().unwrap(),
        });
    }
    out
}

async fn wait_published(app: &TestApp, js: &async_nats::jetstream::Context, stream: &str) {
    let expected = app.count_events().await as u64;
    let stream = stream.to_owned();
    eventually(Duration::from_secs(30), "every event published", || {
        let (js, stream) = (js.clone(), stream.clone());
        async move {
            let mut s = js.get_stream(&stream).await.ok()?;
            let n = s.info().await.ok()?.state.messages;
            (n >= expected).then_some(())
        }
    })
    .await;
}

/// Waits until JetStream's duplicate window (1 s in tests) has passed for every message in the
/// stream: the newest one was stored more than 1.5 s ago by the server's clock. After this a
/// message sent again is stored again, so only the publisher's own skip logic can keep the
/// stream free of duplicates.
async fn past_duplicate_window(js: &async_nats::jetstream::Context, stream: &str) {
    let stream = stream.to_owned();
    eventually(Duration::from_secs(30), "the newest message is older than the duplicate window", || {
        let (js, stream) = (js.clone(), stream.clone());
        async move {
            let mut s = js.get_stream(&stream).await.ok()?;
            let last = s.info().await.ok()?.state.last_sequence;
            let newest = s.get_raw_message(last).await.ok()?;
            let now = chrono::Utc::now().timestamp_nanos_opt()? as i128;
            (now - newest.time.unix_timestamp_nanos() > 1_500_000_000).then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn each_event_is_published_once_in_order_across_restart_lost_checkpoint_and_rebuild() {
    let mut nats = None;
    let mut app = spawn_app_with(|s| nats = Some(test_nats(s)), vec![]).await;
    let nats = nats.unwrap();
    let client = async_nats::connect(nats_url()).await.unwrap();
    let js = async_nats::jetstream::new(client);

    create_companies(&app, 4, "a").await;
    wait_published(&app, &js, &nats.stream).await;

    // Every replay below re-sends messages only after the duplicate window has passed for them.
    past_duplicate_window(&js, &nats.stream).await;

    // Restart.
    app.stop().await;
    app.start().await;
    create_companies(&app, 3, "b").await;
    wait_published(&app, &js, &nats.stream).await;
    app.caught_up().await;

    // A crash after publishing but before the checkpoint committed: the checkpoint goes back
    // to the start while the runner is live; the replay must publish nothing twice.
    past_duplicate_window(&js, &nats.stream).await;
    sqlx::query("UPDATE projection_builds SET last_tx = '0', last_position = 0 WHERE name = $1")
        .bind(publisher::NAME)
        .execute(&app.pool)
        .await
        .unwrap();
    app.app().state().wake.appended();
    create_companies(&app, 1, "c").await;
    app.caught_up().await;

    // Rebuild.
    past_duplicate_window(&js, &nats.stream).await;
    let r =
        app.client.post(app.url("/api/v1/admin/projections/event_publisher/rebuild")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let build_id = r.json::<Value>().await.unwrap()["build_id"].as_i64().unwrap() as i32;
    let pool = app.pool.clone();
    eventually(Duration::from_secs(30), "the publisher rebuild switches over", || {
        let pool = pool.clone();
        async move {
            let mut conn = pool.acquire().await.ok()?;
            let b = builds::get(&mut conn, publisher::NAME, build_id).await.ok()??;
            (b.status == BuildStatus::Active).then_some(())
        }
    })
    .await;
    create_companies(&app, 1, "d").await;
    wait_published(&app, &js, &nats.stream).await;
    app.caught_up().await;

    let published = read_stream(&js, &nats.stream).await;
    let events: Vec<(String, String, i64, String)> = sqlx::query_as(
        "SELECT metadata ->> 'event_id', aggregate_id, sequence, metadata ->> 'tenant_id' FROM events ORDER BY tx_id, global_position",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(events.len() as i64, 18 + app.fixture_events().await);
    assert_eq!(published.len(), events.len(), "one message per event, no duplicates");
    let ids: HashSet<&str> = published.iter().map(|p| p.msg_id.as_str()).collect();
    assert_eq!(ids.len(), published.len());
    let expected: HashSet<&str> = events.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(ids, expected, "Nats-Msg-Id is the event id");
    let fixtures: HashSet<String> =
        sqlx::query_scalar("SELECT aggregate_id FROM events WHERE aggregate_type = 'User'")
            .fetch_all(&app.pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
    let mut last: HashMap<&str, i64> = HashMap::new();
    for (i, p) in published.iter().enumerate() {
        if i > 0 {
            assert!(p.position > published[i - 1].position, "stream order is log order");
        }
        let prev = last.insert(&p.aggregate_id, p.sequence).unwrap_or(0);
        assert_eq!(p.sequence, prev + 1, "per-aggregate order kept for {}", p.aggregate_id);
        let event = events.iter().find(|e| e.0 == p.msg_id).unwrap();
        let kind = if fixtures.contains(&p.aggregate_id) { "User" } else { "Company" };
        assert_eq!(p.subject, format!("{}.{}.{kind}.{}", nats.subject_prefix, event.3, p.aggregate_id));
    }
    js.delete_stream(&nats.stream).await.unwrap();
    app.cleanup().await;
}

#[tokio::test]
async fn without_nats_events_fan_out_in_process() {
    let app = spawn_app().await;
    let mut feed = app.app().state().live.as_ref().expect("in-process feed without NATS_URL").subscribe();
    let r = app.post_json("/api/v1/companies", json!({"name": "Local", "domain": "local.example"})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    // The first event on the feed may be the test operator's own registration.
    let event = loop {
        let event = tokio::time::timeout(Duration::from_secs(10), feed.recv()).await.unwrap().unwrap();
        if event.aggregate_type == "Company" {
            break event;
        }
    };
    assert_eq!(event.event_type, "CompanyCreated");
    assert_eq!(event.meta("tenant_id"), Some(event.aggregate_id.as_str()));
    app.cleanup().await;
}
