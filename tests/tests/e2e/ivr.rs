//! IVR flows end to end: a draft with several node types saved and read back, an invalid draft
//! saved but refused at publishing with every finding's code, versions 1 and 2, a rollback to
//! 1, simulated calls with digits and timeouts, tenant isolation, roles, and paging.

use kraliki_domain::values::Role;
use kraliki_tests::{listed, spawn_app, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

async fn json_of(r: reqwest::Response, status: StatusCode) -> Value {
    let got = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "{body}");
    body
}

/// play_message → menu (1: AI agent, 2: account) → gather_input → conditional → set_variable
/// → end_call; every failure and no input say goodbye.
fn support_flow(name: &str) -> Value {
    json!({
        "name": name,
        "entry_node_id": "welcome",
        "languages": ["en"],
        "max_retries": 1,
        "nodes": {
            "welcome": {"type": "play_message", "message": "Welcome to Kraliki.", "next_node": "main"},
            "main": {"type": "menu", "message": "Press 1 for sales, 2 for your account.",
                     "options": {"1": "sales", "2": "account"}, "timeout_node": "bye", "error_node": "bye"},
            "sales": {"type": "transfer", "transfer_type": "ai_agent", "timeout_node": "bye", "error_node": "bye"},
            "account": {"type": "gather_input", "message": "Enter your account number.", "num_digits": 4,
                        "variable_name": "account", "next_node": "check", "timeout_node": "bye", "error_node": "bye"},
            "check": {"type": "conditional", "condition": "account == '1234'", "true_node": "vip",
                      "false_node": "bye", "error_node": "bye"},
            "vip": {"type": "set_variable", "variable_name": "tier", "variable_value": "gold {{account}}",
                    "next_node": "bye"},
            "bye": {"type": "end_call", "message": "Goodbye.", "disposition": "ivr_done"}
        }
    })
}

async fn create(app: &TestApp, flow: Value) -> Value {
    json_of(app.post_json("/api/ivr/flows", flow).await, StatusCode::CREATED).await
}

fn codes(problem: &Value) -> Vec<String> {
    problem["errors"].as_array().unwrap().iter().map(|e| e["code"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn a_flow_is_drafted_published_edited_republished_and_deleted() {
    let app = spawn_app().await;
    let flow = create(&app, support_flow("Support line")).await;
    let id = flow["id"].as_str().unwrap().to_owned();
    assert_eq!(flow["status"], "draft");
    assert_eq!(flow["latest_version"], 0);
    assert_eq!(flow["live_version"], Value::Null);
    assert_eq!(flow["publishable"], true, "{flow}");
    assert_eq!(flow["issues"], json!([]), "{flow}");
    assert_eq!(flow["nodes"]["main"]["options"], json!({"1": "sales", "2": "account"}));
    assert_eq!(flow["nodes"]["check"]["type"], "conditional");
    assert_eq!(flow["finish_on_key"], Value::Null, "node fields stay in nodes");
    let r = app.client.get(app.url(&format!("/api/ivr/flows/{id}"))).send().await.unwrap();
    let read = json_of(r, StatusCode::OK).await;
    assert_eq!(read["nodes"], flow["nodes"]);
    assert_eq!(read["name"], "Support line");

    // Published: version 1, live.
    let r = app.client.post(app.url(&format!("/api/ivr/flows/{id}/publish"))).send().await.unwrap();
    let published = json_of(r, StatusCode::OK).await;
    assert_eq!(published["status"], "published");
    assert_eq!(published["latest_version"], 1);
    assert_eq!(published["live_version"], 1);
    assert_eq!(published["draft_changed"], false);
    // Publishing an unchanged live draft makes no version.
    let r = app.client.post(app.url(&format!("/api/ivr/flows/{id}/publish"))).send().await.unwrap();
    assert_eq!(json_of(r, StatusCode::OK).await["latest_version"], 1);

    // Edited (PUT the whole draft): the live version stays 1 until published; then 2.
    let mut edited = support_flow("Support line");
    edited["nodes"]["welcome"]["message"] = json!("Welcome back to Kraliki.");
    let r = app.client.put(app.url(&format!("/api/ivr/flows/{id}"))).json(&edited).send().await.unwrap();
    let saved = json_of(r, StatusCode::OK).await;
    assert_eq!(saved["draft_changed"], true);
    assert_eq!(saved["live_version"], 1);
    assert_eq!(saved["nodes"]["welcome"]["message"], "Welcome back to Kraliki.");
    let r = app.client.post(app.url(&format!("/api/ivr/flows/{id}/publish"))).send().await.unwrap();
    let second = json_of(r, StatusCode::OK).await;
    assert_eq!((second["latest_version"].clone(), second["live_version"].clone()), (json!(2), json!(2)));

    // A merge patch edits one node.
    let r = app
        .client
        .patch(app.url(&format!("/api/ivr/flows/{id}")))
        .json(&json!({"nodes": {"bye": {"message": "See you."}}}))
        .send()
        .await
        .unwrap();
    let patched = json_of(r, StatusCode::OK).await;
    assert_eq!(patched["nodes"]["bye"]["message"], "See you.");
    assert_eq!(patched["nodes"]["bye"]["disposition"], "ivr_done");
    assert_eq!(patched["draft_changed"], true);

    // The versions, newest first, each as published.
    let r = app.client.get(app.url(&format!("/api/ivr/flows/{id}/versions"))).send().await.unwrap();
    let versions = listed(r).await;
    let items = versions["items"].as_array().unwrap();
    assert_eq!(items.iter().map(|v| v["version"].clone()).collect::<Vec<_>>(), [json!(2), json!(1)]);
    assert_eq!(items[0]["live"], true);
    assert_eq!(items[1]["flow"]["nodes"]["welcome"]["message"], "Welcome to Kraliki.");
    assert!(items[1]["published_by"].as_str().unwrap().contains(':'), "{}", items[1]);
    let r = app.client.get(app.url(&format!("/api/ivr/flows/{id}/versions?limit=1"))).send().await.unwrap();
    let page = listed(r).await;
    assert_eq!(page["items"][0]["version"], 2);
    let link = page["link"].as_str().unwrap().trim_start_matches('<').split('>').next().unwrap().to_owned();
    let page2 = listed(app.client.get(app.url(&link)).send().await.unwrap()).await;
    assert_eq!(page2["items"][0]["version"], 1);
    assert_eq!(page2["next_cursor"], Value::Null);

    // Rollback: version 1 is live again; the draft and the versions stay.
    let r =
        app.client.post(app.url(&format!("/api/ivr/flows/{id}/versions/1/republish"))).send().await.unwrap();
    let rolled = json_of(r, StatusCode::OK).await;
    assert_eq!((rolled["latest_version"].clone(), rolled["live_version"].clone()), (json!(2), json!(1)));
    assert_eq!(rolled["nodes"]["bye"]["message"], "See you.");
    let r = app.client.get(app.url(&format!("/api/ivr/flows/{id}/versions/1"))).send().await.unwrap();
    let one = json_of(r, StatusCode::OK).await;
    assert_eq!(one["live"], true);
    assert_eq!(one["flow"]["nodes"]["welcome"]["message"], "Welcome to Kraliki.");
    for missing in ["versions/3", "versions/0", "versions/x"] {
        let r = app.client.get(app.url(&format!("/api/ivr/flows/{id}/{missing}"))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{missing}");
    }
    let r =
        app.client.post(app.url(&format!("/api/ivr/flows/{id}/versions/7/republish"))).send().await.unwrap();
    assert_eq!(json_of(r, StatusCode::NOT_FOUND).await["code"], "not_found");

    // Deleted: gone from reads and lists; its events stay.
    let r = app.client.delete(app.url(&format!("/api/ivr/flows/{id}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app.client.get(app.url(&format!("/api/ivr/flows/{id}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app.client.get(app.url("/api/ivr/flows")).send().await.unwrap();
    assert_eq!(listed(r).await["items"], json!([]));
    let r = app.client.delete(app.url(&format!("/api/ivr/flows/{id}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_type = 'IvrFlow'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(events, 7, "created, published, edited, published, patched, republished, archived");
    app.cleanup().await;
}

#[tokio::test]
async fn an_invalid_draft_is_saved_but_not_published_and_every_finding_is_named() {
    let app = spawn_app().await;
    let broken = json!({
        "name": "Broken",
        "entry_node_id": "main",
        "languages": ["en"],
        "nodes": {
            "main": {"type": "menu", "message": "Choose.", "options": {"1": "spin", "#": "nowhere"},
                     "timeout_node": "spin", "error_node": "spin"},
            "spin": {"type": "play_message", "message": "Again.", "next_node": "spin2"},
            "spin2": {"type": "play_message", "message": "And again.", "next_node": "spin"}
        }
    });
    let flow = create(&app, broken).await;
    let id = flow["id"].as_str().unwrap().to_owned();
    assert_eq!(flow["publishable"], false);
    let found: Vec<&str> =
        flow["issues"].as_array().unwrap().iter().map(|i| i["code"].as_str().unwrap()).collect();
    for code in ["dangling_link", "option_key_is_finish_key", "loop_without_input"] {
        assert!(found.contains(&code), "{code} in {found:?}");
    }
    let dangling = flow["issues"].as_array().unwrap().iter().find(|i| i["code"] == "dangling_link").unwrap();
    assert_eq!(dangling["node_id"], "main");
    assert_eq!(dangling["severity"], "error");

    let r = app.client.post(app.url(&format!("/api/ivr/flows/{id}/publish"))).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let problem = json_of(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(problem["code"], "flow_not_publishable");
    let refused = codes(&problem);
    for code in ["dangling_link", "option_key_is_finish_key", "loop_without_input"] {
        assert!(refused.contains(&code.to_owned()), "{code} in {problem}");
    }
    assert_eq!(refused.len(), found.len(), "every finding: {problem}");
    let field = problem["errors"].as_array().unwrap().iter().find(|e| e["code"] == "dangling_link").unwrap();
    assert!(field["field"].as_str().unwrap().starts_with("nodes.main."), "{field}");
    // Nothing was published.
    let r = app.client.get(app.url(&format!("/api/ivr/flows/{id}/versions"))).send().await.unwrap();
    assert_eq!(listed(r).await["items"], json!([]));
    let r = app.client.get(app.url(&format!("/api/ivr/flows/{id}"))).send().await.unwrap();
    assert_eq!(json_of(r, StatusCode::OK).await["status"], "draft");

    // Fixed by a PUT: publishable, published.
    let r = app
        .client
        .put(app.url(&format!("/api/ivr/flows/{id}")))
        .json(&support_flow("Fixed"))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r, StatusCode::OK).await["publishable"], true);
    let r = app.client.post(app.url(&format!("/api/ivr/flows/{id}/publish"))).send().await.unwrap();
    assert_eq!(json_of(r, StatusCode::OK).await["live_version"], 1);

    // Not a flow at all: refused before anything is saved.
    let r = app.post_json("/api/ivr/flows", json!({"name": "", "entry_node_id": "a", "nodes": {}})).await;
    let problem = json_of(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(problem["code"], "validation_failed");
    assert_eq!(problem["errors"][0]["field"], "name");
    let r = app
        .post_json(
            "/api/ivr/flows",
            json!({"name": "x", "entry_node_id": "a", "nodes": {"a": {"type": "teleport"}}}),
        )
        .await;
    let problem = json_of(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(problem["errors"][0]["field"], "nodes.a.type", "{problem}");
    // A repeated node id is refused, not collapsed into one.
    let r = app
        .client
        .post(app.url("/api/ivr/flows"))
        .header("content-type", "application/json")
        .body(r#"{"name": "x", "entry_node_id": "a", "nodes": {"a": {"type": "end_call"}, "a": {"type": "menu"}}}"#)
        .send()
        .await
        .unwrap();
    let problem = json_of(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(problem["errors"][0]["code"], "duplicate_key", "{problem}");
    // A field no flow or node has is named, not dropped (a mistyped link would vanish).
    let mut typo = support_flow("Typo");
    typo["nodes"]["welcome"]["nxt_node"] = json!("main");
    typo["colour"] = json!("blue");
    let problem =
        json_of(app.post_json("/api/ivr/flows", typo.clone()).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(problem["code"], "invalid_body");
    let fields: Vec<&str> =
        problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["colour", "nodes.welcome.nxt_node"], "{problem}");
    assert_eq!(problem["errors"][0]["code"], "unknown_field");
    let r = app.client.put(app.url(&format!("/api/ivr/flows/{id}"))).json(&typo).send().await.unwrap();
    assert_eq!(json_of(r, StatusCode::UNPROCESSABLE_ENTITY).await["code"], "invalid_body");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'IvrFlowCreated'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
    app.cleanup().await;
}

#[tokio::test]
async fn a_simulated_call_follows_digits_and_timeouts() {
    let app = spawn_app().await;
    let id = create(&app, support_flow("Simulated")).await["id"].as_str().unwrap().to_owned();
    let test = |body: Value| {
        let (app, id) = (&app, &id);
        async move {
            let r = app
                .client
                .post(app.url(&format!("/api/ivr/flows/{id}/test")))
                .json(&body)
                .send()
                .await
                .unwrap();
            json_of(r, StatusCode::OK).await
        }
    };

    // No input once (re-prompted), then 2, then the account number.
    let trace = test(json!({
        "call": {"caller_number": "+420603123456"},
        "start_at": "2026-11-24T09:00:00Z",
        "inputs": [
            {"type": "timeout", "after_seconds": 10},
            {"type": "digits", "digits": "2"},
            {"type": "digits", "digits": "1234", "after_seconds": 5}
        ]
    }))
    .await;
    assert_eq!(trace["path"], json!(["welcome", "main", "account", "check", "vip", "bye"]), "{trace}");
    assert_eq!(trace["status"], "ended");
    assert_eq!(trace["ended"]["reason"], "completed");
    assert_eq!(trace["ended"]["disposition"], "ivr_done");
    assert_eq!(trace["variables"]["account"], "1234");
    assert_eq!(trace["variables"]["tier"], "gold 1234");
    assert_eq!(trace["unused_inputs"], 0);
    let steps = trace["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 4, "call_started plus three inputs");
    assert_eq!(steps[1]["input"]["type"], "timeout");
    assert_eq!(steps[1]["at"], "2026-11-24T09:00:10Z");
    let timed_out = steps[1]["steps"].as_array().unwrap();
    assert!(timed_out.iter().any(|s| s["type"] == "input_timed_out" && s["attempt"] == 1), "{}", steps[1]);
    let effects = steps[1]["effects"].as_array().unwrap();
    assert!(effects.iter().any(|e| e["type"] == "gather" && e["attempt"] == 2), "re-prompted: {}", steps[1]);
    let branch = steps[2]["steps"].as_array().unwrap();
    assert!(branch.iter().any(|s| s["type"] == "branch_taken" && s["to"] == "account"), "{}", steps[2]);
    let last = steps[3]["effects"].as_array().unwrap();
    assert!(last.iter().any(|e| e["type"] == "hangup"), "{}", steps[3]);

    // No input twice: the retries run out and the timeout branch says goodbye.
    let trace = test(
        json!({"inputs": [{"type": "timeout"}, {"type": "timeout"}, {"type": "digits", "digits": "1"}]}),
    )
    .await;
    assert_eq!(trace["path"], json!(["welcome", "main", "bye"]), "{trace}");
    assert_eq!(trace["status"], "ended");
    assert_eq!(trace["unused_inputs"], 1);

    // The script runs out first: the trace says what the call waits for.
    let trace = test(json!({"inputs": []})).await;
    assert_eq!(trace["status"], "waiting");
    assert_eq!(trace["node_id"], "main");
    assert_eq!(trace["waiting_for"], "caller_input");

    // A published version runs as published, whatever the draft became.
    let r = app.client.post(app.url(&format!("/api/ivr/flows/{id}/publish"))).send().await.unwrap();
    json_of(r, StatusCode::OK).await;
    let mut edited = support_flow("Simulated");
    edited["entry_node_id"] = json!("bye");
    let r = app.client.put(app.url(&format!("/api/ivr/flows/{id}"))).json(&edited).send().await.unwrap();
    json_of(r, StatusCode::OK).await;
    assert_eq!(test(json!({})).await["path"], json!(["bye"]));
    assert_eq!(test(json!({"version": 1})).await["path"], json!(["welcome", "main"]));
    let r = app
        .client
        .post(app.url(&format!("/api/ivr/flows/{id}/test")))
        .json(&json!({"version": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app
        .client
        .post(app.url(&format!("/api/ivr/flows/{id}/test")))
        .json(&json!({"inputs": [], "speed": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r, StatusCode::UNPROCESSABLE_ENTITY).await["errors"][0]["code"], "unknown_field");
    app.cleanup().await;
}

#[tokio::test]
async fn flows_are_the_tenants_own_roles_decide_who_changes_them_and_lists_page() {
    let app = spawn_app().await;
    let tenant = Uuid::now_v7();
    let admin = app.as_user(&[Role::Admin], tenant).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let r = admin
            .post(app.url("/api/ivr/flows"))
            .header("idempotency-key", format!("flow-{n}"))
            .json(&support_flow(&format!("Flow {n}")))
            .send()
            .await
            .unwrap();
        ids.push(json_of(r, StatusCode::CREATED).await["id"].as_str().unwrap().to_owned());
    }
    // A repeated key answers the first flow again.
    let r = admin
        .post(app.url("/api/ivr/flows"))
        .header("idempotency-key", "flow-0")
        .json(&support_flow("Flow 0"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers().get("idempotent-replayed").unwrap(), "true");
    assert_eq!(json_of(r, StatusCode::CREATED).await["id"], ids[0].as_str());

    // Pages of two, newest first, through the Link header.
    let first = listed(admin.get(app.url("/api/ivr/flows?limit=2")).send().await.unwrap()).await;
    let names = |page: &Value| -> Vec<String> {
        page["items"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(names(&first), ["Flow 2", "Flow 1"]);
    let link = first["link"].as_str().unwrap().trim_start_matches('<').split('>').next().unwrap().to_owned();
    assert!(link.starts_with("/api/ivr/flows?limit=2&cursor="), "{link}");
    let second = listed(admin.get(app.url(&link)).send().await.unwrap()).await;
    assert_eq!(names(&second), ["Flow 0"]);
    assert_eq!(second["next_cursor"], Value::Null);
    let r = admin.get(app.url("/api/ivr/flows?q=flow%201")).send().await.unwrap();
    assert_eq!(names(&listed(r).await), ["Flow 1"]);
    let r = admin.get(app.url("/api/ivr/flows?status=live")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = admin.get(app.url("/api/ivr/flows?cursor=nonsense")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Another company sees none of them and changes none of them.
    let other = app.as_user(&[Role::Admin], Uuid::now_v7()).await;
    let id = &ids[0];
    assert_eq!(listed(other.get(app.url("/api/ivr/flows")).send().await.unwrap()).await["items"], json!([]));
    for (method, path) in [
        ("GET", format!("/api/ivr/flows/{id}")),
        ("GET", format!("/api/ivr/flows/{id}/versions")),
        ("POST", format!("/api/ivr/flows/{id}/publish")),
        ("POST", format!("/api/ivr/flows/{id}/test")),
        ("POST", format!("/api/ivr/flows/{id}/versions/1/republish")),
        ("DELETE", format!("/api/ivr/flows/{id}")),
    ] {
        let r = other.request(method.parse().unwrap(), app.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{method} {path}");
    }
    let r =
        other.put(app.url(&format!("/api/ivr/flows/{id}"))).json(&support_flow("Mine")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Everyone in the company reads and tests; only supervisors and admins change.
    for role in [Role::Agent, Role::Auditor, Role::Analyst] {
        let reader = app.as_user(&[role], tenant).await;
        let r = reader.get(app.url(&format!("/api/ivr/flows/{id}"))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{role:?} reads");
        let r = reader.post(app.url(&format!("/api/ivr/flows/{id}/test"))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{role:?} tests");
        let r = reader.post(app.url("/api/ivr/flows")).json(&support_flow("No")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{role:?} creates");
        let r = reader
            .put(app.url(&format!("/api/ivr/flows/{id}")))
            .json(&support_flow("No"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{role:?} edits");
        let r = reader.post(app.url(&format!("/api/ivr/flows/{id}/publish"))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{role:?} publishes");
        let r = reader.delete(app.url(&format!("/api/ivr/flows/{id}"))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{role:?} deletes");
    }
    let supervisor = app.as_user(&[Role::Supervisor], tenant).await;
    let r = supervisor.post(app.url(&format!("/api/ivr/flows/{id}/publish"))).send().await.unwrap();
    assert_eq!(json_of(r, StatusCode::OK).await["live_version"], 1);
    let r = app.anon.get(app.url("/api/ivr/flows")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    app.cleanup().await;
}

#[tokio::test]
async fn publishing_refuses_webhooks_the_configuration_does_not_allow() {
    let app = kraliki_tests::spawn_app_with(
        |s| s.ivr.webhook_allowed_hosts = Some(vec!["hooks.example.com".into(), "127.0.0.1".into()]),
        Vec::new(),
    )
    .await;
    let with_hook = |url: &str| {
        let mut flow = support_flow("Lookup");
        flow["nodes"]["welcome"]["next_node"] = json!("lookup");
        flow["nodes"]["lookup"] = json!({"type": "webhook", "webhook_url": url, "webhook_method": "GET",
            "response_mapping": {"vip": "data.vip"}, "next_node": "main", "error_node": "bye"});
        flow
    };
    for (url, code) in [
        ("https://evil.example.net/hook", "webhook_host_not_allowed"),
        ("http://127.0.0.1:9/hook", "webhook_private_address"),
    ] {
        let flow = create(&app, with_hook(url)).await;
        assert_eq!(flow["publishable"], false, "{url}: {flow}");
        let id = flow["id"].as_str().unwrap();
        let r = app.client.post(app.url(&format!("/api/ivr/flows/{id}/publish"))).send().await.unwrap();
        let problem = json_of(r, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(codes(&problem), [code], "{url}: {problem}");
        assert_eq!(problem["errors"][0]["field"], "nodes.lookup.webhook_url");
    }
    let flow = create(&app, with_hook("https://hooks.example.com/crm?caller={{caller_number}}")).await;
    assert_eq!(flow["issues"], json!([]), "{flow}");
    let id = flow["id"].as_str().unwrap();
    let r = app.client.post(app.url(&format!("/api/ivr/flows/{id}/publish"))).send().await.unwrap();
    assert_eq!(json_of(r, StatusCode::OK).await["live_version"], 1);
    app.cleanup().await;
}
