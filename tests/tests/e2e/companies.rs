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

/// Tuples PostgreSQL read from the company read model's tables so far (its own statistics,
/// which it publishes a little after each statement).
async fn company_tuples_read(app: &kraliki_tests::TestApp) -> i64 {
    let mut conn = app.pool.acquire().await.unwrap();
    sqlx::query("SELECT pg_stat_clear_snapshot()").execute(&mut *conn).await.unwrap();
    sqlx::query_scalar(
        "SELECT (coalesce(sum(seq_tup_read), 0) + coalesce(sum(idx_tup_fetch), 0))::bigint \
         FROM pg_stat_user_tables WHERE relname LIKE 'company_view%'",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap()
}

/// A page costs its rows, not the table: with 100,000 companies in the read model, the first
/// page and a deep one (by cursor) in either order read a few hundred tuples, where a scan and
/// sort of the table would read all 100,000.
#[tokio::test]
async fn a_company_page_reads_its_rows_not_the_table() {
    let app = spawn_app().await;
    app.caught_up().await;
    // The set-up's own reads must not count: its connection publishes its statistics at once.
    let mut setup = app.pool.acquire().await.unwrap();
    sqlx::query("SELECT pg_stat_force_next_flush()").execute(&mut *setup).await.unwrap();
    sqlx::query(
        "INSERT INTO company_view (id, name, domain, is_active, version, created_at, updated_at) \
         SELECT gen_random_uuid(), 'Company ' || g, 'c' || g || '.example', true, 1, \
                now() - g * interval '1 second', now() FROM generate_series(1, 100000) g",
    )
    .execute(&mut *setup)
    .await
    .unwrap();
    let table: String = sqlx::query_scalar(
        "SELECT relname::text FROM pg_class WHERE relname LIKE 'company_view_b%' AND relkind = 'r' LIMIT 1",
    )
    .fetch_one(&mut *setup)
    .await
    .unwrap();
    sqlx::query(&format!("ANALYZE {table}")).execute(&mut *setup).await.unwrap();
    // A cursor deep in each order: the 90,000th row's key.
    let (at, id): (chrono::DateTime<chrono::Utc>, uuid::Uuid) = sqlx::query_as(
        "SELECT created_at, id FROM company_view ORDER BY created_at, id OFFSET 90000 LIMIT 1",
    )
    .fetch_one(&mut *setup)
    .await
    .unwrap();
    let by_time = format!("{}~{id}", at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
    let (name, id): (String, uuid::Uuid) = sqlx::query_as(
        "SELECT lower(name), id FROM company_view ORDER BY lower(name), id OFFSET 90000 LIMIT 1",
    )
    .fetch_one(&mut *setup)
    .await
    .unwrap();
    let by_name = format!("{name}~{id}");
    sqlx::query("SELECT pg_stat_force_next_flush()").execute(&mut *setup).await.unwrap();
    drop(setup);
    for query in [
        vec![("limit", "50".to_owned())],
        vec![("limit", "50".to_owned()), ("cursor", by_time)],
        vec![("limit", "50".to_owned()), ("sort", "name".into())],
        vec![("limit", "50".to_owned()), ("sort", "name".into()), ("cursor", by_name)],
        vec![("limit", "50".to_owned()), ("order", "desc".into())],
    ] {
        let before = company_tuples_read(&app).await;
        let r = app.client.get(app.url("/api/v1/companies")).query(&query).send().await.unwrap();
        let page = kraliki_tests::listed(r).await;
        assert_eq!(page["items"].as_array().unwrap().len(), 50, "{query:?}");
        let read =
            kraliki_tests::eventually(std::time::Duration::from_secs(30), "the statistics", || async {
                let now = company_tuples_read(&app).await;
                (now > before).then_some(now - before)
            })
            .await;
        assert!(read < 2_000, "{query:?} read {read} tuples of 100,000");
    }
    app.cleanup().await;
}

/// A build is analyzed as it starts serving, and the server's connections plan every statement
/// with its values: no plan or statistics from when a read model was empty outlive its growth.
#[tokio::test]
async fn serving_builds_are_analyzed_and_statements_planned_with_their_values() {
    let app = spawn_app().await;
    app.caught_up().await;
    let unanalyzed: Vec<String> =
        kraliki_tests::eventually(std::time::Duration::from_secs(10), "the statistics", || async {
            let rows: Vec<(String, bool)> = sqlx::query_as(
                "SELECT b.relname::text, s.last_analyze IS NOT NULL FROM pg_class b \
             LEFT JOIN pg_stat_user_tables s ON s.relid = b.oid \
             WHERE b.relkind = 'r' AND b.relname ~ '^(company|campaign|contact|call)_view_b[0-9]+$'",
            )
            .fetch_all(&app.pool)
            .await
            .unwrap();
            (rows.len() >= 4).then(|| rows.into_iter().filter(|(_, done)| !done).map(|(t, _)| t).collect())
        })
        .await;
    assert!(unanalyzed.is_empty(), "serving without statistics: {unanalyzed:?}");
    let mode: String =
        sqlx::query_scalar("SHOW plan_cache_mode").fetch_one(&app.app().state().pool).await.unwrap();
    assert_eq!(mode, "force_custom_plan");
    app.cleanup().await;
}
