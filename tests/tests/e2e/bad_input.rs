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
