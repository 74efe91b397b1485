//! The role × endpoint matrix for companies and users: every cell asserted.

use kraliki_domain::values::Role;
use kraliki_tests::{spawn_app, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

/// Who calls: each role alone, and nobody.
fn callers() -> Vec<(&'static str, Option<Role>)> {
    vec![
        ("anonymous", None),
        ("agent", Some(Role::Agent)),
        ("auditor", Some(Role::Auditor)),
        ("analyst", Some(Role::Analyst)),
        ("supervisor", Some(Role::Supervisor)),
        ("admin", Some(Role::Admin)),
        ("platform_operator", Some(Role::PlatformOperator)),
    ]
}

async fn new_company(app: &TestApp, tag: &str) -> Uuid {
    let r =
        app.post_json("/api/v1/companies", json!({"name": tag, "domain": format!("{tag}.example")})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json::<Value>().await.unwrap()["id"].as_str().unwrap().parse().unwrap()
}

async fn new_user(app: &TestApp, company: Uuid) -> Uuid {
    let r = app
        .client
        .post(app.url(&format!("/api/v1/companies/{company}/users")))
        .json(&json!({"email": format!("{}@m.example", Uuid::now_v7().simple()), "password": "password-1", "full_name": "M", "roles": ["agent"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json::<Value>().await.unwrap()["id"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn every_role_gets_exactly_its_rights() {
    let app = spawn_app().await;
    let company = new_company(&app, "matrix").await;
    // (method, path, body, statuses for anonymous, agent, auditor, analyst, supervisor, admin, operator)
    let ok = StatusCode::OK;
    let (no, anon, created, gone) =
        (StatusCode::FORBIDDEN, StatusCode::UNAUTHORIZED, StatusCode::CREATED, StatusCode::NO_CONTENT);
    for (caller, role) in callers() {
        let client = match role {
            Some(role) => app.as_user(&[role], company).await,
            None => app.anon.clone(),
        };
        let index = callers().iter().position(|(c, _)| *c == caller).unwrap();
        // Fresh targets per caller, so destructive cells do not interfere.
        let user = new_user(&app, company).await;
        let victim = new_user(&app, company).await;
        let doomed = new_company(&app, &format!("doomed{index}")).await;
        let cases: Vec<(Method, String, Option<Value>, [StatusCode; 7])> = vec![
            (Method::GET, "/api/v1/companies".into(), None, [anon, ok, ok, ok, ok, ok, ok]),
            (
                Method::POST,
                "/api/v1/companies".into(),
                Some(json!({"name": "N", "domain": "n.example"})),
                [anon, no, no, no, no, no, created],
            ),
            (Method::GET, format!("/api/v1/companies/{company}"), None, [anon, ok, ok, ok, ok, ok, ok]),
            (
                Method::PUT,
                format!("/api/v1/companies/{company}"),
                Some(json!({"industry": caller})),
                [anon, no, no, no, no, ok, ok],
            ),
            // Tenants try their own company (others' are not found); the operator a spare one.
            (
                Method::DELETE,
                format!(
                    "/api/v1/companies/{}",
                    if role == Some(Role::PlatformOperator) { doomed } else { company }
                ),
                None,
                [anon, no, no, no, no, no, gone],
            ),
            (Method::GET, format!("/api/v1/companies/{company}/users"), None, [anon, no, ok, no, ok, ok, ok]),
            (
                Method::POST,
                format!("/api/v1/companies/{company}/users"),
                Some(
                    json!({"email": format!("{caller}@new.example"), "password": "password-2", "full_name": "New", "roles": ["agent"]}),
                ),
                [anon, no, no, no, no, created, created],
            ),
            (
                Method::GET,
                format!("/api/v1/companies/{company}/users/{user}"),
                None,
                [anon, no, ok, no, ok, ok, ok],
            ),
            (
                Method::PUT,
                format!("/api/v1/companies/{company}/users/{user}"),
                Some(json!({"full_name": "Renamed"})),
                [anon, no, no, no, no, ok, ok],
            ),
            (
                Method::DELETE,
                format!("/api/v1/companies/{company}/users/{victim}"),
                None,
                [anon, no, no, no, no, gone, gone],
            ),
            (
                Method::GET,
                format!("/api/v1/companies/{company}/service-accounts"),
                None,
                [anon, no, ok, no, no, ok, ok],
            ),
            (Method::GET, "/api/v1/admin/projections".into(), None, [anon, no, no, no, no, no, ok]),
        ];
        for (method, path, body, expected) in cases {
            let mut req = client.request(method.clone(), app.url(&path));
            if let Some(b) = &body {
                req = req.json(b);
            }
            let got = req.send().await.unwrap().status();
            assert_eq!(got, expected[index], "{caller}: {method} {path}");
        }
    }
    app.cleanup().await;
}
