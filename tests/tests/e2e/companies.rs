//! Command → event → projection → query over HTTP, for the Company aggregate.

use kraliki_tests::spawn_app;
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn a_company_is_created_read_updated_deactivated_and_reactivated() {
    let app = spawn_app().await;
    let c = &app.client;

    let r = app
        .post_json(
            "/api/v1/companies",
            json!({"name": "  Acme ", "domain": "Acme.Example", "size": "medium", "industry": "Retail"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let position: i64 = r.headers()["kraliki-position"].to_str().unwrap().parse().unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = r.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/v1/companies/{id}"));
    assert_eq!(created["name"], "Acme");
    assert_eq!(created["domain"], "acme.example");
    assert_eq!(created["size"], "medium");
    assert_eq!(created["is_active"], true);
    assert_eq!(created["user_count"], 0);
    assert_eq!(created["version"], 1);

    // Read-your-writes: asking for the command's position answers with the write applied.
    let r = c.get(app.url(&format!("/api/v1/companies/{id}?min_position={position}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(etag, "\"v1\"");
    let r = c
        .get(app.url(&format!("/api/v1/companies/{id}")))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);

    // A partial update: name and website change, industry cleared with null, size kept.
    let r = c
        .put(app.url(&format!("/api/v1/companies/{id}")))
        .json(&json!({"name": "Acme Corp", "website": "https://acme.example", "industry": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let updated: Value = r.json().await.unwrap();
    assert_eq!(updated["name"], "Acme Corp");
    assert_eq!(updated["website"], "https://acme.example");
    assert_eq!(updated["industry"], Value::Null);
    assert_eq!(updated["size"], "medium");
    assert_eq!(updated["version"], 3, "a rename and a profile change: two events");
    let r = c
        .get(app.url(&format!("/api/v1/companies/{id}")))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the old ETag no longer matches");

    // Deactivate (DELETE), then changes are refused, then reactivate.
    let r = c.delete(app.url(&format!("/api/v1/companies/{id}?reason=unpaid"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let pos = r.headers()["kraliki-position"].to_str().unwrap().to_owned();
    let got: Value = c
        .get(app.url(&format!("/api/v1/companies/{id}?min_position={pos}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["is_active"], false);
    assert!(got["deactivated_at"].is_string());
    let r =
        c.put(app.url(&format!("/api/v1/companies/{id}"))).json(&json!({"name": "X"})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "invalid_state");
    let r = c.delete(app.url(&format!("/api/v1/companies/{id}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let r = c.post(app.url(&format!("/api/v1/companies/{id}/reactivate"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["is_active"], true);

    // The log holds the whole history with its metadata.
    let rows: Vec<(String, i64, Value)> = sqlx::query_as(
        "SELECT event_type, sequence, metadata FROM events WHERE aggregate_id = $1 ORDER BY sequence",
    )
    .bind(&id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let types: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        types,
        [
            "CompanyCreated",
            "CompanyRenamed",
            "CompanyProfileUpdated",
            "CompanyDeactivated",
            "CompanyReactivated"
        ]
    );
    let mut ids = std::collections::HashSet::new();
    for (_, _, meta) in &rows {
        for key in ["event_id", "tenant_id", "actor", "correlation_id", "causation_id", "occurred_at"] {
            assert!(meta[key].is_string(), "{key} missing in {meta}");
        }
        assert_eq!(meta["tenant_id"], id.as_str());
        assert!(ids.insert(meta["event_id"].as_str().unwrap().to_owned()), "event ids are unique");
        let event_id: uuid::Uuid = meta["event_id"].as_str().unwrap().parse().unwrap();
        assert_eq!(event_id.get_version_num(), 7, "event ids are UUID v7");
    }
    assert_eq!(rows[1].2["correlation_id"], rows[2].2["correlation_id"], "one request, one correlation id");
    app.cleanup().await;
}

#[tokio::test]
async fn lists_page_with_cursors_filter_and_sort() {
    let app = spawn_app().await;
    let mut last = 0;
    for i in 0..7 {
        let r = app
            .post_json(
                "/api/v1/companies",
                json!({"name": format!("Co {}", 7 - i), "domain": format!("c{i}.example")}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        last = r.headers()["kraliki-position"].to_str().unwrap().parse().unwrap();
    }
    let mut seen = Vec::new();
    // The body is the page's bare array; the next page is the `Link` (rel="next"), followed
    // as given to the end, as a client would.
    let mut url = app.url(&format!("/api/v1/companies?limit=3&min_position={last}"));
    let mut pages = 0;
    loop {
        let page = kraliki_tests::listed(app.client.get(&url).send().await.unwrap()).await;
        pages += 1;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(items.iter().map(|i| i["domain"].as_str().unwrap().to_owned()));
        match page["link"].as_str() {
            Some(link) => {
                let target = link.trim_start_matches('<').split('>').next().unwrap();
                assert!(
                    target.contains("limit=3") && target.contains("min_position="),
                    "other parameters kept: {target}"
                );
                url = app.url(target);
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..7).map(|i| format!("c{i}.example")).collect();
    assert_eq!(seen, expected, "creation order, each once");

    let page = kraliki_tests::listed(
        app.client.get(app.url("/api/v1/companies?sort=name&order=desc&limit=2")).send().await.unwrap(),
    )
    .await;
    let names: Vec<&str> =
        page["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Co 7", "Co 6"]);
    let page =
        kraliki_tests::listed(app.client.get(app.url("/api/v1/companies?q=c3.exa")).send().await.unwrap())
            .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let page = kraliki_tests::listed(
        app.client.get(app.url("/api/v1/companies?is_active=false")).send().await.unwrap(),
    )
    .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 0);
    app.cleanup().await;
}

#[tokio::test]
async fn a_company_counts_its_campaigns() {
    let app = spawn_app().await;
    let r = app.post_json("/api/v1/companies", json!({"name": "Counted", "domain": "counted.example"})).await;
    let company: uuid::Uuid = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().parse().unwrap();
    let admin = app.as_user(&[kraliki_domain::values::Role::Admin], company).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let r = admin
            .post(app.url("/api/v1/campaigns"))
            .json(&json!({"name": format!("C{i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        ids.push(r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    let r = admin.delete(app.url(&format!("/api/v1/campaigns/{}", ids[0]))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    app.caught_up().await;
    let got: Value = admin
        .get(app.url(&format!("/api/v1/companies/{company}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["campaign_count"], 2, "three created, one deleted");
    assert_eq!(got["user_count"], 1);
    app.cleanup().await;
}
