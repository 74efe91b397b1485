//! Bad input gets a clear problem+json answer and appends nothing.

use kraliki_tests::spawn_app;
use reqwest::StatusCode;
use serde_json::Value;

async fn problem(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(ct, "application/problem+json", "status {status}");
    let body: Value = resp.json().await.expect("problem body");
    assert_eq!(body["status"], status.as_u16());
    assert!(body["title"].is_string() && body["code"].is_string() && body["type"].is_string(), "{body}");
    (status, body)
}

#[tokio::test]
async fn malformed_unknown_oversize_and_wrongly_typed_bodies_are_refused_and_append_nothing() {
    let app = spawn_app().await;
    let url = app.url("/api/v1/companies");
    let c = &app.client;

    let r = c
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"name\": \"A\",")
        .send()
        .await
        .unwrap();
    let (s, b) = problem(r).await;
    assert_eq!((s, b["code"].as_str()), (StatusCode::BAD_REQUEST, Some("malformed_json")));
    assert_eq!(b["instance"], "/api/v1/companies");

    let r = c
        .post(&url)
        .json(&serde_json::json!({"name": "A", "domain": "a.example", "colour": "red"}))
        .send()
        .await
        .unwrap();
    let (s, b) = problem(r).await;
    assert_eq!((s, b["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_body")));
    assert_eq!(b["errors"][0]["field"], "colour");
    assert_eq!(b["errors"][0]["code"], "unknown_field");

    let r = c.post(&url).json(&serde_json::json!({"name": 7, "domain": "a.example"})).send().await.unwrap();
    let (s, b) = problem(r).await;
    assert_eq!((s, b["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("name")));

    let r = c.post(&url).json(&serde_json::json!({"domain": "a.example"})).send().await.unwrap();
    let (_, b) = problem(r).await;
    assert_eq!(b["errors"][0]["code"], "required");

    let r = c.post(&url).header("content-type", "text/plain").body("{}").send().await.unwrap();
    let (s, b) = problem(r).await;
    assert_eq!((s, b["code"].as_str()), (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("unsupported_media_type")));

    let r = c.post(&url).body("{}").send().await.unwrap();
    assert_eq!(problem(r).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let huge = format!("{{\"name\": \"{}\", \"domain\": \"a.example\"}}", "x".repeat(2 * 1024 * 1024));
    let r = c.post(&url).header("content-type", "application/json").body(huge).send().await.unwrap();
    let (s, b) = problem(r).await;
    assert_eq!((s, b["code"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large")));

    let r = c
        .post(&url)
        .json(&serde_json::json!({"name": " ", "domain": "not a domain", "website": "ftp://x"}))
        .send()
        .await
        .unwrap();
    let (s, b) = problem(r).await;
    assert_eq!((s, b["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed")));
    let fields: Vec<&str> =
        b["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["name", "domain", "website"], "every bad field is reported at once");

    let r = c
        .post(&url)
        .json(&serde_json::json!({"name": "A", "domain": "a.example", "size": "huge"}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await.0, StatusCode::UNPROCESSABLE_ENTITY);

    assert_eq!(app.count_events().await, 0, "nothing appended by refused requests");
    app.cleanup().await;
}

#[tokio::test]
async fn unknown_routes_methods_ids_and_queries_answer_problems() {
    let app = spawn_app().await;
    let c = &app.client;
    let (s, b) = problem(c.get(app.url("/api/v1/nothing-here")).send().await.unwrap()).await;
    assert_eq!((s, b["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    let (s, _) = problem(c.patch(app.url("/health")).send().await.unwrap()).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    let (s, _) = problem(c.get(app.url("/api/v1/companies/not-a-uuid")).send().await.unwrap()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) =
        problem(c.get(app.url(&format!("/api/v1/companies/{}", uuid::Uuid::now_v7()))).send().await.unwrap())
            .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    for q in
        ["limit=0", "limit=abc", "sort=colour", "order=sideways", "cursor=zzz", "min_position=-1", "bogus=1"]
    {
        let (s, b) = problem(c.get(app.url(&format!("/api/v1/companies?{q}"))).send().await.unwrap()).await;
        assert_eq!((s, b["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_query")), "{q}");
    }
    let (s, b) = problem(c.get(app.url("/api/v1/companies?min_position=999999")).send().await.unwrap()).await;
    assert_eq!((s, b["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown_position")));
    let r = c
        .post(app.url("/api/v1/companies"))
        .header("idempotency-key", "")
        .json(&serde_json::json!({"name": "A", "domain": "a.example"}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await.1["code"], "invalid_idempotency_key");
    assert_eq!(app.count_events().await, 0);
    app.cleanup().await;
}

#[tokio::test]
async fn problems_speak_english_spanish_and_czech() {
    let app = spawn_app().await;
    let body = serde_json::json!({"name": "", "domain": "x"});
    let cases = [
        (None, "en", "Some fields are invalid", "must not be empty"),
        (Some("es-ES,es;q=0.9"), "es", "Algunos campos no son válidos", "es obligatorio"),
        (Some("cs-CZ,cs;q=0.9,en;q=0.5"), "cs", "Některá pole jsou neplatná", "je povinné"),
        (Some("de, fr;q=0.8"), "en", "Some fields are invalid", "must not be empty"),
    ];
    for (accept, lang, title, message) in cases {
        let mut req = app.client.post(app.url("/api/v1/companies")).json(&body);
        if let Some(a) = accept {
            req = req.header("accept-language", a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.headers()["content-language"], lang);
        let (_, b) = problem(r).await;
        assert_eq!(b["code"], "validation_failed", "codes never change with the language");
        assert_eq!(b["title"], title);
        assert_eq!(b["errors"][0]["field"], "name");
        assert_eq!(b["errors"][0]["message"], message);
    }
    let r = app.anon.get(app.url("/api/v1/auth/me")).header("accept-language", "cs").send().await.unwrap();
    let (s, b) = problem(r).await;
    assert_eq!((s, b["title"].as_str()), (StatusCode::UNAUTHORIZED, Some("Je vyžadováno přihlášení")));
    let r = app.anon.get(app.url("/nowhere")).header("accept-language", "es").send().await.unwrap();
    assert_eq!(problem(r).await.1["title"], "No encontrado");
    app.cleanup().await;
}

#[tokio::test]
async fn nul_characters_trailing_garbage_duplicate_keys_and_non_objects_are_refused_at_the_edge() {
    let app = spawn_app().await;
    let c = &app.client;
    let raw = |method: reqwest::Method, path: &str, body: &str| {
        c.request(method, app.url(path))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
    };
    // U+0000 anywhere in a body: 422 naming the field (it used to reach PostgreSQL and 500).
    let r = app
        .anon
        .post(app.url("/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body(r#"{"email":"x\u0000@example.com","password":"whatever1"}"#)
        .send()
        .await
        .unwrap();
    let (s, b) = problem(r).await;
    assert_eq!((s, b["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("email")));
    assert_eq!(b["errors"][0]["code"], "invalid_characters");
    for (path, body, field) in [
        ("/api/v1/campaigns", r#"{"name":"C","description":"a\u0000b"}"#, "description"),
        ("/api/v1/campaigns", r#"{"name":"C","instructions":"\u0000"}"#, "instructions"),
        (
            "/api/v1/contacts",
            r#"{"phone_number":"+14155550111","custom_fields":{"k":"v\u0000"}}"#,
            "custom_fields.k",
        ),
        ("/api/v1/do-not-call", r#"{"phone_number":"+14155550112","reason":"\u0000"}"#, "reason"),
    ] {
        let (s, b) = problem(raw(reqwest::Method::POST, path, body).await.unwrap()).await;
        assert_eq!(
            (s, b["errors"][0]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{path}"
        );
    }
    // ... and in a query: 400 naming the parameter.
    for path in ["/api/v1/contacts?q=a%00b", "/api/v1/campaigns?q=%00", "/api/v1/companies?q=a%00"] {
        let (s, b) = problem(c.get(app.url(path)).send().await.unwrap()).await;
        assert_eq!((s, b["errors"][0]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("q")), "{path}");
    }
    // Trailing garbage after the JSON value.
    let (s, b) = problem(
        raw(reqwest::Method::POST, "/api/v1/contacts", r#"{"phone_number":"+14155554321"} <script>garbage"#)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (StatusCode::BAD_REQUEST, Some("malformed_json")));
    // A key twice (the last one would silently win).
    let (s, b) =
        problem(raw(reqwest::Method::POST, "/api/v1/campaigns", r#"{"name":"A","name":"B"}"#).await.unwrap())
            .await;
    assert_eq!((s, b["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("name")));
    assert_eq!(b["errors"][0]["code"], "duplicate_key");
    // An array where an object is expected (a struct would take its fields in order).
    let r =
        app.post_json("/api/v1/companies", serde_json::json!({"name": "Arr", "domain": "arr.example"})).await;
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let (s, b) = problem(
        raw(reqwest::Method::PUT, &format!("/api/v1/companies/{id}"), r#"["Renamed"]"#).await.unwrap(),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_body")));
    assert_eq!(app.count_events().await, 1, "only the company made for the PUT");
    app.cleanup().await;
}

#[tokio::test]
async fn a_path_id_that_cannot_exist_is_not_found_on_every_route() {
    let app = spawn_app().await;
    let r = app.post_json("/api/v1/companies", serde_json::json!({"name": "P", "domain": "p.example"})).await;
    let company = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let c = &app.client;
    for (method, path) in [
        (reqwest::Method::POST, format!("/api/v1/companies/{company}/service-accounts/not-a-uuid/keys")),
        (reqwest::Method::DELETE, format!("/api/v1/companies/{company}/service-accounts/not-a-uuid")),
        (reqwest::Method::DELETE, format!("/api/v1/companies/{company}/service-accounts/nope/keys/nope")),
        (reqwest::Method::GET, format!("/api/v1/companies/{company}/users/not-a-uuid")),
        (reqwest::Method::GET, "/api/v1/companies/not-a-uuid/users".to_owned()),
        (reqwest::Method::GET, "/api/v1/campaigns/not-a-uuid".to_owned()),
        (reqwest::Method::GET, "/api/v1/companies/not-a-uuid".to_owned()),
    ] {
        let (s, b) = problem(c.request(method, app.url(&path)).send().await.unwrap()).await;
        assert_eq!((s, b["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{path}");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn the_json_bulk_route_is_held_to_its_own_limit() {
    let app = kraliki_tests::spawn_app_with(|s| s.imports.max_bulk_bytes = 64 * 1024, vec![]).await;
    let contacts: Vec<Value> =
        (0..3000).map(|i| serde_json::json!({"phone_number": format!("+1415555{i:04}")})).collect();
    let r = app.post_json("/api/v1/contacts/bulk", serde_json::json!({"contacts": contacts})).await;
    let (s, b) = problem(r).await;
    assert_eq!((s, b["code"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large")));
    let r = app
        .post_json(
            "/api/v1/contacts/bulk",
            serde_json::json!({"contacts": [{"phone_number": "+14155550100"}]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    app.cleanup().await;
}
