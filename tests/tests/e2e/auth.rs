//! Sign-up, login, tokens and their attacks, throttling, and tenant isolation.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use kraliki_api::auth::tokens::{self, AccessClaims};
use kraliki_domain::values::Role;
use kraliki_tests::{client_with, listed, spawn_app, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

async fn register(app: &TestApp, email: &str, org: &str) -> Value {
    let r = app
        .anon
        .post(app.url("/api/v1/auth/register"))
        .json(&json!({"email": email, "password": "s3cret-pass", "full_name": "Ann Admin", "organization": org}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json().await.unwrap()
}

async fn login(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.anon
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn sign_up_login_me_refresh_and_logout() {
    let app = spawn_app().await;
    let r = app
        .anon
        .post(app.url("/api/v1/auth/register"))
        .json(&json!({"email": "Ann@Acme.example", "password": "s3cret-pass", "full_name": "Ann", "organization": "Acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let cookies: Vec<String> =
        r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    assert!(cookies
        .iter()
        .any(|c| c.starts_with("auth_token=") && c.contains("HttpOnly") && c.contains("SameSite=Lax")));
    assert!(cookies.iter().any(|c| c.starts_with("refresh_token=") && c.contains("HttpOnly")));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(body["expires_at"].is_string());
    assert_eq!(body["user"]["email"], "ann@acme.example");
    assert_eq!(body["user"]["role"], "admin");
    assert_eq!(body["user"]["organization"], "Acme");

    // The access token is EdDSA with a kid and the seed's claims.
    let token = body["access_token"].as_str().unwrap();
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header["alg"], "EdDSA");
    assert!(header["kid"].is_string());
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap();
    for c in ["sub", "email", "role", "org_id", "exp", "iat", "jti"] {
        assert!(!claims[c].is_null(), "claim {c}");
    }

    // Duplicate e-mail: 409.
    let r = app
        .anon
        .post(app.url("/api/v1/auth/register"))
        .json(&json!({"email": "ann@acme.example", "password": "another-pass", "full_name": "Ann 2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "email_taken");

    // me, by bearer and by cookie.
    let me: Value =
        client_with(token).get(app.url("/api/v1/auth/me")).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["full_name"], "Ann");
    let r = app
        .anon
        .get(app.url("/api/v1/auth/me"))
        .header("cookie", format!("auth_token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        app.anon.get(app.url("/api/v1/auth/me")).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    // The new admin sees their company, and only it.
    let page = listed(client_with(token).get(app.url("/api/v1/companies")).send().await.unwrap()).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["name"], "Acme");

    // Login: the right password works; a wrong one and an unknown user answer the same.
    assert_eq!(login(&app, "ann@acme.example", "s3cret-pass").await.status(), StatusCode::OK);
    let wrong = login(&app, "ann@acme.example", "nope-nope").await;
    let unknown = login(&app, "nobody@acme.example", "nope-nope").await;
    assert_eq!((wrong.status(), unknown.status()), (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED));
    let (w, u): (Value, Value) = (wrong.json().await.unwrap(), unknown.json().await.unwrap());
    assert_eq!((&w["code"], &w["title"]), (&u["code"], &u["title"]));
    assert_eq!(w["title"], "Invalid email or password");

    // Refresh rotates; a used refresh token revokes its family.
    let first = body["refresh_token"].as_str().unwrap();
    let r = app
        .anon
        .post(app.url("/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": first}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let second: Value = r.json().await.unwrap();
    let second_refresh = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second_refresh, first);
    let replay = app
        .anon
        .post(app.url("/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": first}))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
    let after_theft = app
        .anon
        .post(app.url("/auth/refresh"))
        .header("cookie", format!("refresh_token={second_refresh}"))
        .send()
        .await
        .unwrap();
    assert_eq!(after_theft.status(), StatusCode::UNAUTHORIZED, "the family was revoked");

    // Logout revokes the sessions and clears the cookies.
    let fresh: Value = login(&app, "ann@acme.example", "s3cret-pass").await.json().await.unwrap();
    let r = client_with(fresh["access_token"].as_str().unwrap())
        .post(app.url("/api/v1/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(r.headers().get_all("set-cookie").iter().all(|c| c.to_str().unwrap().contains("Max-Age=0")));
    let r = app
        .anon
        .post(app.url("/auth/refresh"))
        .json(&json!({"refresh_token": fresh["refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    app.cleanup().await;
}

#[tokio::test]
async fn login_is_throttled_per_client_address_across_accounts() {
    let app = kraliki_tests::spawn_app_with(|s| s.auth.max_failures_per_address = 3, vec![]).await;
    register(&app, "dan@dan.example", "Dan Co").await;
    for who in ["x1@dan.example", "x2@dan.example", "x3@dan.example"] {
        assert_eq!(login(&app, who, "guessing-1").await.status(), StatusCode::UNAUTHORIZED);
    }
    let r = login(&app, "dan@dan.example", "s3cret-pass").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "this address guessed too often");
    assert!(r.headers().contains_key("retry-after"));
    app.cleanup().await;
}

#[tokio::test]
async fn login_is_throttled_per_account_and_recovers() {
    let app = spawn_app().await;
    register(&app, "bob@bob.example", "Bob Co").await;
    for _ in 0..5 {
        assert_eq!(login(&app, "bob@bob.example", "wrong-password").await.status(), StatusCode::UNAUTHORIZED);
    }
    let r = login(&app, "bob@bob.example", "s3cret-pass").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "even the right password waits");
    let retry: i64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry));
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "too_many_requests");
    // The window passes.
    sqlx::query("UPDATE login_failures SET failed_at = failed_at - interval '16 minutes'")
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(login(&app, "bob@bob.example", "s3cret-pass").await.status(), StatusCode::OK);
    app.cleanup().await;
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

#[tokio::test]
async fn forged_expired_and_misdirected_tokens_are_rejected() {
    let app = spawn_app().await;
    let body = register(&app, "eve@eve.example", "Eve Co").await;
    let good = body["access_token"].as_str().unwrap().to_owned();
    let me = |token: String| {
        let app = &app;
        async move { app.anon.get(app.url("/api/v1/auth/me")).bearer_auth(token).send().await.unwrap().status() }
    };
    assert_eq!(me(good.clone()).await, StatusCode::OK);

    let state = app.app().state();
    let auth = &state.settings.auth;
    let claims: AccessClaims = tokens::verify(&state.keys, auth, &good).unwrap();
    let parts: Vec<&str> = good.split('.').collect();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();

    // alg: none, with and without a signature.
    let none = format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT", "kid": header["kid"]})), parts[1]);
    assert_eq!(me(none).await, StatusCode::UNAUTHORIZED);
    // HS256 keyed with the public key (the classic confusion attack).
    let public = std::fs::read(
        app.settings.keys_dir().join(format!("{}.public.pem", header["kid"].as_str().unwrap())),
    )
    .unwrap();
    let mut hs = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs.kid = header["kid"].as_str().map(str::to_owned);
    let forged =
        jsonwebtoken::encode(&hs, &claims, &jsonwebtoken::EncodingKey::from_secret(&public)).unwrap();
    assert_eq!(me(forged).await, StatusCode::UNAUTHORIZED);
    // A key we never issued.
    let other_dir = std::env::temp_dir().join(format!("kraliki-other-keys-{}", Uuid::now_v7()));
    let other = kraliki_api::auth::KeyRing::load(&other_dir, true).unwrap();
    assert_eq!(me(tokens::sign(&other, &claims).unwrap()).await, StatusCode::UNAUTHORIZED);
    let _ = std::fs::remove_dir_all(&other_dir);
    // Expired, not yet valid, wrong audience, wrong issuer: all properly signed.
    let now = chrono::Utc::now().timestamp();
    let variants = [
        AccessClaims { exp: now - 120, iat: now - 1000, nbf: now - 1000, ..claims.clone() },
        AccessClaims { nbf: now + 600, exp: now + 1200, ..claims.clone() },
        AccessClaims { aud: "someone-else".into(), ..claims.clone() },
        AccessClaims { iss: "evil".into(), ..claims.clone() },
        AccessClaims { kind: "refresh".into(), ..claims.clone() },
    ];
    for v in variants {
        assert_eq!(me(tokens::sign(&state.keys, &v).unwrap()).await, StatusCode::UNAUTHORIZED, "{v:?}");
    }
    // Tampered payload (role raised) and tampered signature.
    let raised = AccessClaims { roles: vec!["platform_operator".into()], ..claims.clone() };
    let tampered = format!("{}.{}.{}", parts[0], b64(&serde_json::to_value(&raised).unwrap()), parts[2]);
    assert_eq!(me(tampered).await, StatusCode::UNAUTHORIZED);
    let mut sig = parts[2].to_owned();
    sig.replace_range(0..1, if sig.starts_with('A') { "B" } else { "A" });
    assert_eq!(me(format!("{}.{}.{sig}", parts[0], parts[1])).await, StatusCode::UNAUTHORIZED);
    // A refresh token is not an access token.
    assert_eq!(me(body["refresh_token"].as_str().unwrap().to_owned()).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me("garbage".into()).await, StatusCode::UNAUTHORIZED);
    app.cleanup().await;
}

#[tokio::test]
async fn rotated_keys_keep_verifying_old_tokens() {
    let mut app = spawn_app().await;
    let body = register(&app, "kim@kim.example", "Kim Co").await;
    let old = body["access_token"].as_str().unwrap().to_owned();
    let old_kid = app.app().state().keys.signing_kid.clone();
    // A new key appears (kraliki keys rotate, an hour later by its clock); the server restarts
    // with both and signs with the new one.
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let new_kid = kraliki_api::auth::keys::generate_at(&app.settings.keys_dir(), later).unwrap();
    assert_eq!(new_kid, format!("k{}", later.timestamp()));
    app.stop().await;
    app.start().await;
    assert_eq!(app.app().state().keys.signing_kid, new_kid, "the newest key signs");
    assert_ne!(new_kid, old_kid);
    let r = app.anon.get(app.url("/api/v1/auth/me")).bearer_auth(&old).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "tokens of the previous key still verify");
    let fresh: Value = login(&app, "kim@kim.example", "s3cret-pass").await.json().await.unwrap();
    let header = fresh["access_token"].as_str().unwrap().split('.').next().unwrap().to_owned();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    assert_eq!(header["kid"], app.app().state().keys.signing_kid.as_str());
    app.cleanup().await;
}

#[tokio::test]
async fn tenants_see_only_themselves_and_roles_are_enforced() {
    let app = spawn_app().await;
    let a: Value = register(&app, "a@a.example", "Tenant A").await;
    let b: Value = register(&app, "b@b.example", "Tenant B").await;
    let a_company: Uuid = a["user"]["company_id"].as_str().unwrap().parse().unwrap();
    let b_company: Uuid = b["user"]["company_id"].as_str().unwrap().parse().unwrap();
    let admin_a = client_with(a["access_token"].as_str().unwrap());
    let agent_a = app.as_user(&[Role::Agent], a_company).await;

    // Another tenant's ids are not found, on every id-taking company route.
    let b_url = app.url(&format!("/api/v1/companies/{b_company}"));
    assert_eq!(admin_a.get(&b_url).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(
        admin_a.put(&b_url).json(&json!({"name": "Mine"})).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(admin_a.delete(&b_url).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    let r = admin_a.post(app.url(&format!("/api/v1/companies/{b_company}/reactivate"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let companies = listed(admin_a.get(app.url("/api/v1/companies?limit=100")).send().await.unwrap()).await;
    let names: Vec<&str> =
        companies["items"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Tenant A"]);

    // Role × endpoint on the caller's own company.
    let a_url = app.url(&format!("/api/v1/companies/{a_company}"));
    assert_eq!(
        admin_a.put(&a_url).json(&json!({"industry": "Retail"})).send().await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(agent_a.get(&a_url).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        agent_a.put(&a_url).json(&json!({"industry": "X"})).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(admin_a.delete(&a_url).send().await.unwrap().status(), StatusCode::FORBIDDEN);
    let create = json!({"name": "New", "domain": "new.example"});
    assert_eq!(
        admin_a.post(app.url("/api/v1/companies")).json(&create).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.anon.post(app.url("/api/v1/companies")).json(&create).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.anon.get(&a_url).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        admin_a.get(app.url("/api/v1/admin/projections")).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );

    // The platform operator sees and manages every tenant.
    assert_eq!(app.client.get(&b_url).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        app.client.post(app.url("/api/v1/companies")).json(&create).send().await.unwrap().status(),
        StatusCode::CREATED
    );
    assert_eq!(
        app.client.get(app.url("/api/v1/admin/projections")).send().await.unwrap().status(),
        StatusCode::OK
    );

    // The company read model counts its users.
    app.caught_up().await;
    let got: Value = admin_a.get(&a_url).send().await.unwrap().json().await.unwrap();
    assert_eq!(got["user_count"], 2, "the admin who registered and the agent");
    app.cleanup().await;
}

#[tokio::test]
async fn company_admins_manage_their_people_and_no_one_elses() {
    let app = spawn_app().await;
    let a: Value = register(&app, "boss@a.example", "A").await;
    let b: Value = register(&app, "boss@b.example", "B").await;
    let a_company = a["user"]["company_id"].as_str().unwrap().to_owned();
    let b_company = b["user"]["company_id"].as_str().unwrap().to_owned();
    let admin_a = client_with(a["access_token"].as_str().unwrap());
    let admin_b = client_with(b["access_token"].as_str().unwrap());
    let users_a = app.url(&format!("/api/v1/companies/{a_company}/users"));

    let r = admin_a
        .post(&users_a)
        .json(&json!({"email": "agent@a.example", "password": "agent-pass-1", "full_name": "Agent A", "roles": ["agent"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let agent: Value = r.json().await.unwrap();
    let agent_url = format!("{users_a}/{}", agent["id"].as_str().unwrap());
    assert_eq!(agent["roles"], json!(["agent"]));

    // Admins may not mint platform operators.
    let r = admin_a
        .post(&users_a)
        .json(&json!({"email": "op@a.example", "password": "op-pass-123", "full_name": "Op", "roles": ["platform_operator"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // The agent logs in, reads itself, may not list or manage.
    let agent_login: Value = login(&app, "agent@a.example", "agent-pass-1").await.json().await.unwrap();
    let agent_client = client_with(agent_login["access_token"].as_str().unwrap());
    let r = agent_client.get(&agent_url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let r = agent_client.get(&agent_url).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(agent_client.get(&users_a).send().await.unwrap().status(), StatusCode::FORBIDDEN);
    let r = agent_client.put(&agent_url).json(&json!({"roles": ["admin"]})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // The admin lists, renames and changes roles.
    let page = listed(admin_a.get(&users_a).send().await.unwrap()).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let page = listed(admin_a.get(format!("{users_a}?role=agent")).send().await.unwrap()).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let page = listed(admin_a.get(format!("{users_a}?limit=1")).send().await.unwrap()).await;
    let next = page["next_cursor"].as_str().unwrap().to_owned();
    let rest = listed(
        admin_a.get(&users_a).query(&[("limit", "1"), ("cursor", next.as_str())]).send().await.unwrap(),
    )
    .await;
    assert_ne!(rest["items"][0]["id"], page["items"][0]["id"]);
    assert!(rest["next_cursor"].is_null());
    assert_eq!(
        admin_a.get(format!("{users_a}?role=king")).send().await.unwrap().status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let r = admin_a
        .put(&agent_url)
        .json(&json!({"full_name": "Agent Smith", "roles": ["supervisor"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let updated: Value = r.json().await.unwrap();
    assert_eq!(
        (updated["full_name"].as_str(), updated["roles"].clone()),
        (Some("Agent Smith"), json!(["supervisor"]))
    );
    assert_eq!(
        admin_a.put(&agent_url).json(&json!({"roles": []})).send().await.unwrap().status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );

    // Tenant B's admin finds none of it.
    let foreign = [
        admin_b.get(&users_a).send().await.unwrap().status(),
        admin_b.get(&agent_url).send().await.unwrap().status(),
        admin_b.put(&agent_url).json(&json!({"full_name": "Hijack"})).send().await.unwrap().status(),
        admin_b.delete(&agent_url).send().await.unwrap().status(),
        admin_b.post(&users_a).json(&json!({"email": "x@b.example", "password": "password-x", "full_name": "X", "roles": ["agent"]}))
            .send().await.unwrap().status(),
    ];
    assert!(foreign.iter().all(|s| *s == StatusCode::NOT_FOUND), "{foreign:?}");
    // A's user under B's path is not B's user either.
    let crossed = app.url(&format!("/api/v1/companies/{b_company}/users/{}", agent["id"].as_str().unwrap()));
    assert_eq!(admin_b.get(&crossed).send().await.unwrap().status(), StatusCode::NOT_FOUND);

    // Deactivation ends the agent's sessions and logins.
    let boss_id = a["user"]["id"].as_str().unwrap();
    let r = admin_a.delete(format!("{users_a}/{boss_id}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT, "no self-deactivation");
    assert_eq!(admin_a.delete(&agent_url).send().await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(login(&app, "agent@a.example", "agent-pass-1").await.status(), StatusCode::UNAUTHORIZED);
    let r = app
        .anon
        .post(app.url("/auth/refresh"))
        .json(&json!({"refresh_token": agent_login["refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let events: Vec<String> = sqlx::query_scalar(
        "SELECT event_type FROM events WHERE aggregate_type = 'User' AND aggregate_id = $1 ORDER BY sequence",
    )
    .bind(agent["id"].as_str().unwrap())
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(events, ["UserRegistered", "UserRenamed", "RoleGranted", "RoleRevoked", "UserDeactivated"]);
    let leaked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE payload::text LIKE '%$2b$%' OR payload::text LIKE '%agent-pass%'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(leaked, 0, "no password or hash in the log");
    app.cleanup().await;
}

#[tokio::test]
async fn service_accounts_call_with_api_keys_that_are_shown_once_and_revocable() {
    let app = spawn_app().await;
    let a: Value = register(&app, "ops@a.example", "A").await;
    let b: Value = register(&app, "ops@b.example", "B").await;
    let company = a["user"]["company_id"].as_str().unwrap().to_owned();
    let other = b["user"]["company_id"].as_str().unwrap().to_owned();
    let admin = client_with(a["access_token"].as_str().unwrap());
    let accounts = app.url(&format!("/api/v1/companies/{company}/service-accounts"));

    let r = admin.post(&accounts).json(&json!({"name": "dialer", "roles": ["agent"]})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.unwrap();
    let key = created["api_key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("kvk_"));
    let account = created["id"].as_str().unwrap().to_owned();
    let page = listed(admin.get(&accounts).send().await.unwrap()).await;
    let accounts_listed = &page["items"];
    assert!(accounts_listed[0]["api_key"].is_null(), "a key is shown once");
    assert_eq!(accounts_listed[0]["keys"].as_array().unwrap().len(), 1);
    assert!(key.starts_with(accounts_listed[0]["keys"][0]["prefix"].as_str().unwrap()));

    // The key authenticates as the account, within its company and roles.
    let own = app.url(&format!("/api/v1/companies/{company}"));
    let theirs = app.url(&format!("/api/v1/companies/{other}"));
    let with_header = |url: &str| app.anon.get(url).header("x-api-key", key.clone()).send();
    assert_eq!(with_header(&own).await.unwrap().status(), StatusCode::OK);
    assert_eq!(app.anon.get(&own).bearer_auth(&key).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(with_header(&theirs).await.unwrap().status(), StatusCode::NOT_FOUND);
    let r = app
        .anon
        .put(&own)
        .header("x-api-key", key.clone())
        .json(&json!({"industry": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "an agent-role account may not administer");
    let forged = format!("{}{}", &key[..key.len() - 2], if key.ends_with("AA") { "BB" } else { "AA" });
    assert_eq!(
        app.anon.get(&own).header("x-api-key", forged).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    // A second key; revoking the first leaves the second working; deactivation ends both.
    let r = admin.post(format!("{accounts}/{account}/keys")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let second = r.json::<Value>().await.unwrap()["api_key"].as_str().unwrap().to_owned();
    let first_id = created["keys"][0]["key_id"].as_str().unwrap().to_owned();
    let r = admin.delete(format!("{accounts}/{account}/keys/{first_id}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(with_header(&own).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.anon.get(&own).header("x-api-key", second.clone()).send().await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        admin.delete(format!("{accounts}/{account}")).send().await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.anon.get(&own).header("x-api-key", second.clone()).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    // Another tenant's admin cannot see or touch the account.
    let admin_b = client_with(b["access_token"].as_str().unwrap());
    assert_eq!(admin_b.get(&accounts).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(
        admin_b.post(format!("{accounts}/{account}/keys")).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );

    // Secrets are nowhere in the log or the database in clear.
    // `kvk_<key id>_<secret>`: the secret is base64url, so it may hold `_` itself (and LIKE
    // would read one as a wildcard): the whole of it, found as a plain substring.
    let secret = key.strip_prefix("kvk_").unwrap().split_once('_').unwrap().1.to_owned();
    assert!(secret.len() >= 43, "{secret}");
    let leaked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE strpos(payload::text, $1) > 0 OR strpos(metadata::text, $1) > 0",
    )
    .bind(&secret)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(leaked, 0);
    app.cleanup().await;
}

#[tokio::test]
async fn a_password_change_needs_the_old_one_and_ends_every_session() {
    let app = spawn_app().await;
    let body = register(&app, "pat@p.example", "P").await;
    let me = client_with(body["access_token"].as_str().unwrap());
    let url = app.url("/api/v1/auth/password");
    let r = me
        .post(&url)
        .json(&json!({"current_password": "wrong-one", "new_password": "brand-new-pass"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = me
        .post(&url)
        .json(&json!({"current_password": "s3cret-pass", "new_password": "short"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = me
        .post(&url)
        .json(&json!({"current_password": "s3cret-pass", "new_password": "brand-new-pass"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(login(&app, "pat@p.example", "s3cret-pass").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(login(&app, "pat@p.example", "brand-new-pass").await.status(), StatusCode::OK);
    let r = app
        .anon
        .post(app.url("/auth/refresh"))
        .json(&json!({"refresh_token": body["refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "the old session ended");
    let kinds: Vec<String> = sqlx::query_scalar(
        "SELECT event_type FROM events WHERE aggregate_type = 'User' AND aggregate_id = $1 ORDER BY sequence",
    )
    .bind(body["user"]["id"].as_str().unwrap())
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(kinds, ["UserRegistered", "PasswordChanged"]);
    app.cleanup().await;
}

#[tokio::test]
async fn the_demo_seed_creates_the_published_test_users_but_never_in_production() {
    let app = spawn_app().await;
    let mut production = app.settings.clone();
    production.environment = kraliki_api::config::Environment::Production;
    assert!(kraliki_api::cli::demo_seed(production).await.is_err());
    assert_eq!(login(&app, "testuser@example.com", "test123").await.status(), StatusCode::UNAUTHORIZED);
    kraliki_api::cli::demo_seed(app.settings.clone()).await.unwrap();
    kraliki_api::cli::demo_seed(app.settings.clone()).await.unwrap(); // a second run changes nothing
    for (email, password, role) in [
        ("testuser@example.com", "test123", "admin"),
        ("admin@example.com", "AdminPassword123!", "admin"),
        ("agent@example.com", "AgentPassword123!", "agent"),
    ] {
        let r = login(&app, email, password).await;
        assert_eq!(r.status(), StatusCode::OK, "{email}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["user"]["role"], role);
        assert_eq!(body["user"]["organization"], "Demo Company");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn the_ui_origin_may_call_with_credentials_and_responses_carry_security_headers() {
    let app = spawn_app().await;
    let r = app
        .anon
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/auth/login"))
        .header("origin", "http://localhost:3000")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "http://localhost:3000");
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
    let r = app.anon.get(app.url("/health")).header("origin", "https://evil.example").send().await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none(), "unknown origins get no CORS grant");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert!(r.headers().contains_key("x-request-id"));
    app.cleanup().await;
}

/// A new person in `company`, created by its admin, logged in: their access token.
async fn member_token(
    app: &TestApp,
    admin: &reqwest::Client,
    company: &str,
    email: &str,
    roles: &[&str],
) -> (String, String) {
    let r = admin
        .post(app.url(&format!("/api/v1/companies/{company}/users")))
        .json(&json!({"email": email, "password": "member-pass-1", "full_name": "Member", "roles": roles}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let r = login(app, email, "member-pass-1").await;
    assert_eq!(r.status(), StatusCode::OK);
    (id, r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_token_carries_no_authority_after_its_user_is_deactivated_or_demoted() {
    let app = spawn_app().await;
    let a: Value = register(&app, "boss@auth-state.example", "State").await;
    let company = a["user"]["company_id"].as_str().unwrap().to_owned();
    let admin = client_with(a["access_token"].as_str().unwrap());
    let users = app.url(&format!("/api/v1/companies/{company}/users"));
    let new_admin = |email: &str| json!({"email": email, "password": "back-door-1", "full_name": "X", "roles": ["admin"]});

    // Deactivated: the very next request with the old token is refused, everywhere.
    let (victim, token) = member_token(&app, &admin, &company, "gone@auth-state.example", &["admin"]).await;
    let old = client_with(&token);
    assert_eq!(old.get(app.url("/api/v1/auth/me")).send().await.unwrap().status(), StatusCode::OK);
    let r = admin.delete(format!("{users}/{victim}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = old.get(app.url("/api/v1/auth/me")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.json::<Value>().await.unwrap()["detail"], "the user is deactivated");
    let r = old.post(app.url("/api/v1/campaigns")).json(&json!({"name": "After"})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = old.post(&users).json(&new_admin("door@auth-state.example")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "no back door through a deactivated admin");
    assert_eq!(
        login(&app, "door@auth-state.example", "back-door-1").await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Demoted to agent: the old admin token no longer creates admins or service accounts.
    let (demoted, token) =
        member_token(&app, &admin, &company, "demoted@auth-state.example", &["admin"]).await;
    let old = client_with(&token);
    let r = admin.put(format!("{users}/{demoted}")).json(&json!({"roles": ["agent"]})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = old.post(&users).json(&new_admin("door2@auth-state.example")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = old
        .post(app.url(&format!("/api/v1/companies/{company}/service-accounts")))
        .json(&json!({"name": "sneaky", "roles": ["admin"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // What it may still do as an agent, it does.
    assert_eq!(old.get(app.url("/api/v1/campaigns")).send().await.unwrap().status(), StatusCode::OK);
    // Promoted again: in force on the next request too.
    let r =
        admin.put(format!("{users}/{demoted}")).json(&json!({"roles": ["supervisor"]})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = old.post(app.url("/api/v1/campaigns")).json(&json!({"name": "Promoted"})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    app.cleanup().await;
}

#[tokio::test]
async fn a_deactivated_company_is_suspended_for_its_people_and_service_accounts() {
    let app = spawn_app().await;
    let a: Value = register(&app, "owner@suspended.example", "Suspended").await;
    let company = a["user"]["company_id"].as_str().unwrap().to_owned();
    let refresh = a["refresh_token"].as_str().unwrap().to_owned();
    let admin = client_with(a["access_token"].as_str().unwrap());
    let r = admin
        .post(app.url(&format!("/api/v1/companies/{company}/service-accounts")))
        .json(&json!({"name": "bot", "roles": ["supervisor"]}))
        .send()
        .await
        .unwrap();
    let key = r.json::<Value>().await.unwrap()["api_key"].as_str().unwrap().to_owned();
    let campaigns = app.url("/api/v1/campaigns");
    assert_eq!(
        app.anon.get(&campaigns).header("x-api-key", &key).send().await.unwrap().status(),
        StatusCode::OK
    );

    let r = app.client.delete(app.url(&format!("/api/v1/companies/{company}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // Nothing works for its people: reads, writes, refresh, login — and its service accounts.
    let r = admin.get(&campaigns).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "company_inactive");
    let r = admin.post(&campaigns).json(&json!({"name": "X"})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = app
        .anon
        .post(app.url("/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = login(&app, "owner@suspended.example", "s3cret-pass").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "company_inactive");
    // A wrong password still says only that.
    assert_eq!(
        login(&app, "owner@suspended.example", "wrong-pass-9").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let r = app.anon.get(&campaigns).header("x-api-key", &key).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Reactivated by the operator: everything works again at once.
    let r =
        app.client.post(app.url(&format!("/api/v1/companies/{company}/reactivate"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(admin.get(&campaigns).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(login(&app, "owner@suspended.example", "s3cret-pass").await.status(), StatusCode::OK);
    app.cleanup().await;
}

#[tokio::test]
async fn another_instance_sees_a_deactivation_on_the_next_request() {
    // Two servers on one database: the change is made through one and checked on the other.
    let app = spawn_app().await;
    let a: Value = register(&app, "boss@two.example", "Two").await;
    let company = a["user"]["company_id"].as_str().unwrap().to_owned();
    let admin = client_with(a["access_token"].as_str().unwrap());
    let (victim, token) = member_token(&app, &admin, &company, "victim@two.example", &["supervisor"]).await;
    let second = kraliki_api::Application::build(app.settings.clone()).await.unwrap();
    let other = format!("http://{}", second.addr());
    let old = client_with(&token);
    // Cached on the second instance first.
    assert_eq!(old.get(format!("{other}/api/v1/campaigns")).send().await.unwrap().status(), StatusCode::OK);
    let r =
        admin.delete(app.url(&format!("/api/v1/companies/{company}/users/{victim}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    kraliki_tests::eventually(std::time::Duration::from_secs(2), "the other instance drops the user", || {
        let (old, other) = (old.clone(), other.clone());
        async move {
            let s = old.get(format!("{other}/api/v1/campaigns")).send().await.ok()?.status();
            (s == StatusCode::UNAUTHORIZED).then_some(())
        }
    })
    .await;
    second.stop().await;
    app.cleanup().await;
}
