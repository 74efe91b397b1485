//! A repeated idempotency key returns the first outcome and appends nothing, also when the
//! duplicates arrive at the same time.

use kraliki_tests::spawn_app;
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn sequential_duplicates_return_the_first_outcome() {
    let app = spawn_app().await;
    let body = json!({"name": "Once", "domain": "once.example"});
    let send = || {
        app.client
            .post(app.url("/api/v1/companies"))
            .header("idempotency-key", "create-once-1")
            .json(&body)
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    for _ in 0..3 {
        let again = send().await.unwrap();
        assert_eq!(again.status(), StatusCode::CREATED);
        assert_eq!(again.headers()["idempotent-replayed"], "true");
        let again: Value = again.json().await.unwrap();
        assert_eq!(again["id"], first["id"]);
    }
    assert_eq!(app.count_events().await, 1);

    // The same key with another request is refused, and still appends nothing.
    let other = app
        .client
        .post(app.url("/api/v1/companies"))
        .header("idempotency-key", "create-once-1")
        .json(&json!({"name": "Other", "domain": "other.example"}))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(other.json::<Value>().await.unwrap()["code"], "idempotency_key_reused");

    // A no-op command's outcome is remembered too: the key is taken even though nothing was
    // appended, so a different request under it is refused rather than executed.
    let id = first["id"].as_str().unwrap();
    let put = |name: &str| {
        app.client
            .put(app.url(&format!("/api/v1/companies/{id}")))
            .header("idempotency-key", "rename-1")
            .json(&json!({ "name": name }))
            .send()
    };
    assert_eq!(put("Once").await.unwrap().status(), StatusCode::OK);
    assert_eq!(put("Once").await.unwrap().status(), StatusCode::OK);
    assert_eq!(put("Changed").await.unwrap().status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.count_events().await, 1);
    app.cleanup().await;
}

#[tokio::test]
async fn concurrent_duplicates_append_one_set_of_events() {
    let app = spawn_app().await;
    let body = json!({"name": "Racer", "domain": "racer.example"});
    let requests = (0..12).map(|_| {
        app.client.post(app.url("/api/v1/companies")).header("idempotency-key", "race-key").json(&body).send()
    });
    let responses = futures::future::join_all(requests).await;
    let mut ids = std::collections::HashSet::new();
    for r in responses {
        let r = r.unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        ids.insert(r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "every duplicate got the first company");
    assert_eq!(app.count_events().await, 1);
    let keyed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE metadata ->> 'idempotency_key' = 'race-key'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(keyed, 1);

    // Concurrent duplicates of a multi-event command on an existing aggregate.
    let id = ids.into_iter().next().unwrap();
    let update = json!({"name": "Racer 2", "industry": "Sport"});
    let requests = (0..8).map(|_| {
        app.client
            .put(app.url(&format!("/api/v1/companies/{id}")))
            .header("idempotency-key", "race-update")
            .json(&update)
            .send()
    });
    for r in futures::future::join_all(requests).await {
        assert_eq!(r.unwrap().status(), StatusCode::OK);
    }
    assert_eq!(app.count_events().await, 3, "created + renamed + profile updated, once");
    app.cleanup().await;
}

#[tokio::test]
async fn a_key_whose_outcome_was_lost_in_a_crash_is_recovered_from_the_events() {
    // The process died after appending and before recording the outcome: the events carry the
    // key, and a retry must find them instead of appending again.
    let app = spawn_app().await;
    let id = uuid::Uuid::now_v7().to_string();
    let body = json!({"name": "Crashy", "domain": "crashy.example"});
    let raw = serde_json::to_vec(&body).unwrap();
    let fp = kraliki_api::extract::fingerprint(&reqwest::Method::POST, "/api/v1/companies", &raw);
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('Company', $1, 1, 'CompanyCreated', '1.0', $2, $3)",
    )
    .bind(&id)
    .bind(json!({"CompanyCreated": {"name": "Crashy", "domain": "crashy.example", "size": null, "industry": null,
        "description": null, "website": null, "at": "2026-11-24T09:00:00Z"}}))
    .bind(json!({"event_id": uuid::Uuid::now_v7().to_string(), "tenant_id": id, "actor": "anonymous",
        "correlation_id": "c", "causation_id": "c", "occurred_at": "2026-11-24T09:00:00Z",
        "idempotency_key": "lost-outcome", "idempotency_scope": app.operator_company.to_string(),
        "request_fingerprint": fp}))
    .execute(&app.pool)
    .await
    .unwrap();
    let r = app
        .client
        .post(app.url("/api/v1/companies"))
        .header("idempotency-key", "lost-outcome")
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    assert_eq!(r.json::<Value>().await.unwrap()["id"], id.as_str());
    assert_eq!(app.count_events().await, 1);
    app.cleanup().await;
}

/// Sends `body` to `path` twice with one key; both answer `status` with the same id, the
/// second marked as a replay, and the second appends nothing.
async fn retried(
    app: &kraliki_tests::TestApp,
    path: &str,
    key: &str,
    body: Value,
    status: StatusCode,
) -> Value {
    let send = || app.client.post(app.url(path)).header("idempotency-key", key).json(&body).send();
    let first = send().await.unwrap();
    assert_eq!(first.status(), status, "{path}");
    let first: Value = first.json().await.unwrap();
    let before = app.count_events().await;
    let again = send().await.unwrap();
    assert_eq!(again.status(), status, "{path}: a retry gets the first answer");
    assert_eq!(again.headers()["idempotent-replayed"], "true", "{path}");
    let again: Value = again.json().await.unwrap();
    let id = |v: &Value| v.get("id").or_else(|| v.get("phone_number")).cloned();
    assert_eq!(id(&again), id(&first), "{path}: the same resource");
    assert_eq!(app.count_events().await, before, "{path}: nothing appended by the retry");
    first
}

#[tokio::test]
async fn every_keyed_create_answers_a_retry_with_its_first_outcome() {
    let app = spawn_app().await;
    retried(
        &app,
        "/api/v1/companies",
        "k-company",
        json!({"name": "K", "domain": "k.example"}),
        StatusCode::CREATED,
    )
    .await;
    let campaign =
        retried(&app, "/api/v1/campaigns", "k-campaign", json!({"name": "Keyed"}), StatusCode::CREATED).await;
    let campaign_id = campaign["id"].as_str().unwrap();
    // The contact's retry used to meet its own duplicate-number check (409 already_exists).
    retried(
        &app,
        "/api/v1/contacts",
        "k-contact",
        json!({"phone_number": "+14155550101"}),
        StatusCode::CREATED,
    )
    .await;
    retried(
        &app,
        "/api/v1/call-lists",
        "k-list",
        json!({"name": "All", "campaign_id": campaign_id}),
        StatusCode::CREATED,
    )
    .await;
    retried(&app, "/api/v1/campaign-templates", "k-template", json!({"name": "T"}), StatusCode::CREATED)
        .await;
    retried(
        &app,
        "/api/v1/do-not-call",
        "k-dnc",
        json!({"phone_number": "+14155550102"}),
        StatusCode::CREATED,
    )
    .await;
    retried(
        &app,
        &format!("/api/v1/campaigns/{campaign_id}/clone"),
        "k-clone",
        json!({}),
        StatusCode::CREATED,
    )
    .await;
    app.cleanup().await;
}

#[tokio::test]
async fn concurrent_keyed_commands_with_duplicates_never_starve_a_small_pool() {
    // 200 keyed commands at once (each of 50 keys four times) through a pool of 10: every key
    // takes effect exactly once and nothing times out waiting for a connection.
    let app = kraliki_tests::spawn_app_with(|s| s.database.max_connections = 10, vec![]).await;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let (client, url) = (app.client.clone(), app.url("/api/v1/companies"));
            let key = format!("burst-{}", i % 50);
            let body = json!({"name": format!("Burst {}", i % 50), "domain": format!("b{}.example", i % 50)});
            tokio::spawn(async move {
                client.post(url).header("idempotency-key", key).json(&body).send().await.unwrap().status()
            })
        })
        .collect();
    for task in tasks {
        let status = task.await.unwrap();
        assert!(status == StatusCode::CREATED || status == StatusCode::ACCEPTED, "{status}");
    }
    let created: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'CompanyCreated'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(created, 50, "each key's effect exactly once");
    app.cleanup().await;
}
