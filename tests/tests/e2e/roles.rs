//! The role × endpoint matrix for companies, users, service accounts, the admin API and the
//! caller's own session: every cell asserted.

use kraliki_domain::values::Role;
use kraliki_tests::{client_with, spawn_app, TestApp};
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

/// A real user of `company` with `role` and a password (made by the operator), logged in:
/// their id and a client sending their access token.
async fn logged_in(app: &TestApp, company: Uuid, role: Role, password: &str) -> (Uuid, reqwest::Client) {
    let email = format!("{}@caller.example", Uuid::now_v7().simple());
    let r = app
        .post_json(
            &format!("/api/v1/companies/{company}/users"),
            json!({"email": email, "password": password, "full_name": "Caller", "roles": [role.as_str()]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED, "{role:?}");
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().parse().unwrap();
    let r = app.post_json("/api/v1/auth/login", json!({"email": email, "password": password})).await;
    assert_eq!(r.status(), StatusCode::OK, "{role:?} logs in");
    let token = r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
    (id, client_with(&token))
}

/// A service account of `company` (made by the operator): its id and its first key's id.
async fn new_account(app: &TestApp, company: Uuid) -> (Uuid, Uuid) {
    let r = app
        .post_json(
            &format!("/api/v1/companies/{company}/service-accounts"),
            json!({"name": "Robot", "roles": ["agent"]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let body: Value = r.json().await.unwrap();
    let id = body["id"].as_str().unwrap().parse().unwrap();
    let key = body["keys"][0]["key_id"].as_str().unwrap_or_else(|| panic!("{body}")).parse().unwrap();
    (id, key)
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
        let password = format!("password-of-{caller}");
        let (me, client) = match role {
            Some(role) => logged_in(&app, company, role, &password).await,
            None => (Uuid::now_v7(), app.anon.clone()),
        };
        let index = callers().iter().position(|(c, _)| *c == caller).unwrap();
        // Fresh targets per caller, so destructive cells do not interfere.
        let user = new_user(&app, company).await;
        let victim = new_user(&app, company).await;
        let doomed = new_company(&app, &format!("doomed{index}")).await;
        let (account, key) = new_account(&app, company).await;
        let (doomed_account, _) = new_account(&app, company).await;
        // Tenants try their own company (others' are not found); the operator a spare one.
        let target = if role == Some(Role::PlatformOperator) { doomed } else { company };
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
            (Method::DELETE, format!("/api/v1/companies/{target}"), None, [anon, no, no, no, no, no, gone]),
            (
                Method::POST,
                format!("/api/v1/companies/{target}/reactivate"),
                None,
                [anon, no, no, no, no, no, ok],
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
            // Everyone may read their own user.
            (
                Method::GET,
                format!("/api/v1/companies/{company}/users/{me}"),
                None,
                [anon, ok, ok, ok, ok, ok, ok],
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
            (
                Method::POST,
                format!("/api/v1/companies/{company}/service-accounts"),
                Some(json!({"name": format!("Robot of {caller}"), "roles": ["agent"]})),
                [anon, no, no, no, no, created, created],
            ),
            (
                Method::POST,
                format!("/api/v1/companies/{company}/service-accounts/{account}/keys"),
                None,
                [anon, no, no, no, no, created, created],
            ),
            (
                Method::DELETE,
                format!("/api/v1/companies/{company}/service-accounts/{account}/keys/{key}"),
                None,
                [anon, no, no, no, no, gone, gone],
            ),
            (
                Method::DELETE,
                format!("/api/v1/companies/{company}/service-accounts/{doomed_account}"),
                None,
                [anon, no, no, no, no, gone, gone],
            ),
            (Method::GET, "/api/v1/admin/projections".into(), None, [anon, no, no, no, no, no, ok]),
            // The caller's own session (last: the password change ends their other sessions).
            (Method::GET, "/api/v1/auth/me".into(), None, [anon, ok, ok, ok, ok, ok, ok]),
            (Method::POST, "/api/v1/auth/logout".into(), None, [anon, gone, gone, gone, gone, gone, gone]),
            (
                Method::POST,
                "/api/v1/auth/password".into(),
                Some(json!({"current_password": password, "new_password": format!("{password}-2")})),
                [anon, gone, gone, gone, gone, gone, gone],
            ),
        ];
        for (method, path, body, expected) in cases {
            let mut req = client.request(method.clone(), app.url(&path));
            if let Some(b) = &body {
                req = req.json(b);
            }
            let got = req.send().await.unwrap().status();
            assert_eq!(got, expected[index], "{caller}: {method} {path}");
        }
        // "own" and "all": which companies the list holds.
        if role.is_some() {
            let r = client.get(app.url("/api/v1/companies?limit=500")).send().await.unwrap();
            let listed: Vec<Uuid> = r
                .json::<Value>()
                .await
                .unwrap()
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_str().unwrap().parse().unwrap())
                .collect();
            if role == Some(Role::PlatformOperator) {
                assert!(listed.contains(&company) && listed.contains(&doomed), "{caller}: all, {listed:?}");
            } else {
                assert_eq!(listed, [company], "{caller}: own");
            }
        }
    }
    app.cleanup().await;
}
