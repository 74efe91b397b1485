//! Agents, teams, queues and routing rules end to end over HTTP: create/list/read/update/delete
//! for each, paging walked through `Link`, field-level 422s, roles (agents read and set their
//! own state; supervisors and admins manage), another tenant's ids are not found, and every
//! agent state change is an event and a timeline entry.

use chrono::{Duration, Utc};
use kraliki_commands::CommandContext;
use kraliki_domain::agent::{Agent, AgentCommand};
use kraliki_domain::values::Role;
use kraliki_tests::{listed, spawn_app, TestApp};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

async fn json_of(r: reqwest::Response, status: StatusCode) -> Value {
    let got = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "{body}");
    body
}

/// The fields a 422 names.
async fn fields_of(r: reqwest::Response) -> Vec<String> {
    let body = json_of(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap().to_owned()).collect()
}

struct Company {
    id: Uuid,
    admin: Client,
}

async fn company(app: &TestApp) -> Company {
    let id = Uuid::now_v7();
    let admin = app.as_user(&[Role::Admin], id).await;
    Company { id, admin }
}

async fn post(c: &Client, app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    c.post(app.url(path)).json(&body).send().await.unwrap()
}

async fn put(c: &Client, app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    c.put(app.url(path)).json(&body).send().await.unwrap()
}

async fn get(c: &Client, app: &TestApp, path: &str) -> reqwest::Response {
    c.get(app.url(path)).send().await.unwrap()
}

/// Every item of a list, walking `Link` page by page; also the number of pages.
async fn walk(c: &Client, app: &TestApp, first: &str) -> (Vec<Value>, usize) {
    let (mut items, mut pages, mut next) = (Vec::new(), 0, Some(first.to_owned()));
    while let Some(path) = next.take() {
        let page = listed(get(c, app, &path).await).await;
        pages += 1;
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        next = page["link"].as_str().map(|l| l.trim_start_matches('<').split('>').next().unwrap().to_owned());
        assert!(pages < 50, "paging ends");
    }
    (items, pages)
}

/// An agent user of the company with a client of their own, and their agent profile.
async fn agent(app: &TestApp, co: &Company, name: &str, extra: Value) -> (Uuid, Client, Value) {
    let (user_id, token) = app.token_for(&[Role::Agent], co.id).await;
    app.caught_up().await;
    let mut body = json!({"user_id": user_id, "display_name": name});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let created = json_of(post(&co.admin, app, "/api/v1/agents", body).await, StatusCode::CREATED).await;
    (user_id, kraliki_tests::client_with(&token), created)
}

#[tokio::test]
async fn an_agent_is_created_read_updated_skilled_sets_its_state_and_is_deleted() {
    let app = spawn_app().await;
    let co = company(&app).await;
    let team = json_of(
        post(&co.admin, &app, "/api/v1/teams", json!({"name": "Billing", "timezone": "Europe/Prague"})).await,
        StatusCode::CREATED,
    )
    .await;
    let team_id = team["id"].as_str().unwrap().to_owned();

    let (user_id, me, created) = agent(
        &app,
        &co,
        "Ann Agent",
        json!({"skills": {"Billing": 4}, "languages": {"cs": 5}, "team_ids": [team_id],
               "endpoint": {"type": "sip", "uri": "sip:ann@pbx.example"}}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["user_id"], user_id.to_string());
    assert_eq!(created["status"], "offline");
    assert_eq!(created["skills"], json!({"billing": 4}), "skill names are normalized");
    assert_eq!(created["capacity"], 1, "the default capacity");
    assert!(created["status_since"].is_string());

    let read = json_of(get(&co.admin, &app, &format!("/api/v1/agents/{id}")).await, StatusCode::OK).await;
    assert_eq!(read["display_name"], "Ann Agent");
    let team_agents = listed(get(&co.admin, &app, &format!("/api/v1/teams/{team_id}/agents")).await).await;
    assert_eq!(team_agents["items"].as_array().unwrap().len(), 1);
    assert_eq!(team_agents["items"][0]["id"], id.as_str());

    // The MCP client's unversioned list.
    let alias = listed(get(&co.admin, &app, "/api/agents").await).await;
    assert_eq!(alias["items"][0]["id"], id.as_str());

    let updated = json_of(
        put(
            &co.admin,
            &app,
            &format!("/api/v1/agents/{id}"),
            json!({"display_name": "Ann B.", "capacity": 2}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(updated["display_name"], "Ann B.");
    assert_eq!(updated["capacity"], 2);
    assert_eq!(updated["skills"], json!({"billing": 4}), "a merge patch keeps what it does not name");

    let skilled = json_of(
        post(
            &co.admin,
            &app,
            &format!("/api/v1/agents/{id}/skills"),
            json!({"skills": [{"name": "sales", "proficiency": 3}]}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(skilled["skills"], json!({"billing": 4, "sales": 3}));
    let bad = post(
        &co.admin,
        &app,
        &format!("/api/v1/agents/{id}/skills"),
        json!({"skills": [{"name": "x", "proficiency": 7}]}),
    )
    .await;
    assert_eq!(fields_of(bad).await, vec!["skills[0].proficiency"]);
    let removed =
        co.admin.delete(app.url(&format!("/api/v1/agents/{id}/skills/sales"))).send().await.unwrap();
    assert_eq!(json_of(removed, StatusCode::OK).await["skills"], json!({"billing": 4}));

    // The agent sets their own state; a state only calls set is refused by field.
    let available = json_of(
        put(&me, &app, &format!("/api/v1/agents/{id}/status"), json!({"status": "available"})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(available["status"], "available");
    assert!(available["available_since"].is_string());
    let reserved =
        put(&me, &app, &format!("/api/v1/agents/{id}/status"), json!({"status": "reserved"})).await;
    assert_eq!(fields_of(reserved).await, vec!["status"]);
    let unknown = put(&me, &app, &format!("/api/v1/agents/{id}/status"), json!({"status": "napping"})).await;
    assert_eq!(fields_of(unknown).await, vec!["status"]);
    let lunch = json_of(
        put(
            &co.admin,
            &app,
            &format!("/api/v1/agents/{id}/status"),
            json!({"status": "break", "reason": "lunch"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!((lunch["status"].as_str(), lunch["status_reason"].as_str()), (Some("break"), Some("lunch")));
    assert!(lunch["available_since"].is_null());

    // Each change is an event, and the timeline shows them in order.
    let changes: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT payload->'AgentStateChanged'->>'state', payload->'AgentStateChanged'->>'reason' FROM events \
         WHERE aggregate_type = 'Agent' AND aggregate_id = $1 AND event_type = 'AgentStateChanged' ORDER BY sequence",
    )
    .bind(&id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(changes, vec![("available".to_owned(), None), ("break".to_owned(), Some("lunch".to_owned()))]);
    let (timeline, pages) = walk(&co.admin, &app, &format!("/api/v1/agents/{id}/states?limit=1")).await;
    assert_eq!(pages, 3, "one entry a page, three entries");
    let states: Vec<_> = timeline.iter().map(|s| (s["from_state"].clone(), s["state"].clone())).collect();
    assert_eq!(
        states,
        vec![
            (json!("offline"), json!("offline")),
            (json!("offline"), json!("available")),
            (json!("available"), json!("break"))
        ]
    );
    assert_eq!(timeline[2]["reason"], "lunch");
    assert_eq!(timeline[2]["event_type"], "AgentStateChanged");

    let r = co.admin.delete(app.url(&format!("/api/v1/agents/{id}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(get(&co.admin, &app, &format!("/api/v1/agents/{id}")).await.status(), StatusCode::NOT_FOUND);
    app.cleanup().await;
}

#[tokio::test]
async fn agent_input_roles_and_tenants_are_checked() {
    let app = spawn_app().await;
    let co = company(&app).await;
    let other = company(&app).await;
    let (_, ann, created) = agent(&app, &co, "Ann", json!({})).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let (_, bob, _) = agent(&app, &co, "Bob", json!({})).await;
    let before = app.count_events().await;

    // Every field problem at once; unknown fields refused; references checked.
    let r = post(&co.admin, &app, "/api/v1/agents", json!({"capacity": 0, "rating": 9.5})).await;
    let mut fields = fields_of(r).await;
    fields.sort();
    assert_eq!(fields, vec!["capacity", "display_name", "rating", "user_id"]);
    let r = post(
        &co.admin,
        &app,
        "/api/v1/agents",
        json!({"user_id": Uuid::now_v7(), "display_name": "X", "skills": {"x": 9}}),
    )
    .await;
    assert_eq!(fields_of(r).await, vec!["skills.x"], "a proficiency outside 1–5");
    let one = post(
        &co.admin,
        &app,
        &format!("/api/v1/agents/{id}/skills"),
        json!({"name": "vip care", "proficiency": 0}),
    )
    .await;
    assert_eq!(fields_of(one).await, vec!["skills[0].proficiency"]);
    let r = post(
        &co.admin,
        &app,
        "/api/v1/agents",
        json!({"user_id": Uuid::now_v7(), "display_name": "X", "colour": "red"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let (foreign_user, _) = app.token_for(&[Role::Agent], other.id).await;
    app.caught_up().await;
    let r =
        post(&co.admin, &app, "/api/v1/agents", json!({"user_id": foreign_user, "display_name": "X"})).await;
    assert_eq!(fields_of(r).await, vec!["user_id"], "a user of another company");
    let r = post(
        &co.admin,
        &app,
        "/api/v1/agents",
        json!({"user_id": created["user_id"], "display_name": "Ann again"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CONFLICT, "one agent per user");
    let (free_user, _) = app.token_for(&[Role::Agent], co.id).await;
    app.caught_up().await;
    let r = post(
        &co.admin,
        &app,
        "/api/v1/agents",
        json!({"user_id": free_user, "display_name": "Y", "team_ids": [Uuid::now_v7()]}),
    )
    .await;
    assert_eq!(fields_of(r).await, vec!["team_ids[0]"]);

    // Roles: agents and auditors read; only supervisors and admins manage; an agent sets only
    // their own state.
    let auditor = app.as_user(&[Role::Auditor], co.id).await;
    assert_eq!(get(&auditor, &app, &format!("/api/v1/agents/{id}")).await.status(), StatusCode::OK);
    assert_eq!(get(&ann, &app, "/api/v1/agents").await.status(), StatusCode::OK);
    let r = post(&ann, &app, "/api/v1/agents", json!({"user_id": free_user, "display_name": "Z"})).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        put(&auditor, &app, &format!("/api/v1/agents/{id}"), json!({"rating": 5})).await.status(),
        StatusCode::FORBIDDEN
    );
    let r = put(&bob, &app, &format!("/api/v1/agents/{id}/status"), json!({"status": "available"})).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "not another agent's state");
    let r = put(&auditor, &app, &format!("/api/v1/agents/{id}/status"), json!({"status": "available"})).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = ann.delete(app.url(&format!("/api/v1/agents/{id}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Another tenant sees nothing.
    for path in [format!("/api/v1/agents/{id}"), format!("/api/v1/agents/{id}/states")] {
        assert_eq!(get(&other.admin, &app, &path).await.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let r =
        put(&other.admin, &app, &format!("/api/v1/agents/{id}/status"), json!({"status": "available"})).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = put(&other.admin, &app, &format!("/api/v1/agents/{id}"), json!({"rating": 1})).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.count_events().await, before, "refusals append nothing");

    // Reserved by the router, the agent cannot take a break, log out or be deleted: 409 naming
    // the current state.
    let r = put(&ann, &app, &format!("/api/v1/agents/{id}/status"), json!({"status": "available"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let ctx = CommandContext::new(co.id.to_string(), "system:test-router");
    let reserve = AgentCommand::ReserveAgent {
        offer_id: Uuid::now_v7(),
        call_id: Uuid::now_v7(),
        queue_id: None,
        expires_at: Utc::now() + Duration::seconds(60),
        at: Utc::now(),
    };
    app.app().state().dispatcher.execute::<Agent>(&id, reserve, &ctx).await.unwrap();
    app.caught_up().await;
    let read = json_of(get(&ann, &app, &format!("/api/v1/agents/{id}")).await, StatusCode::OK).await;
    assert_eq!(read["status"], "reserved");
    assert!(read["current_offer"]["offer_id"].is_string());
    for (status, needle) in [("break", "from reserved"), ("offline", "reserved cannot go offline")] {
        let r = put(&ann, &app, &format!("/api/v1/agents/{id}/status"), json!({"status": status})).await;
        let body = json_of(r, StatusCode::CONFLICT).await;
        assert_eq!(body["code"], "invalid_state", "{body}");
        assert!(body["detail"].as_str().unwrap().contains(needle), "{body}");
    }
    let r = co.admin.delete(app.url(&format!("/api/v1/agents/{id}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    app.cleanup().await;
}

#[tokio::test]
async fn lists_page_through_link_for_agents_teams_queues_and_rules() {
    let app = spawn_app().await;
    let co = company(&app).await;
    for i in 0..5 {
        agent(&app, &co, &format!("Agent {i}"), json!({})).await;
        let r = post(&co.admin, &app, "/api/v1/teams", json!({"name": format!("Team {i}")})).await;
        json_of(r, StatusCode::CREATED).await;
        let r = post(&co.admin, &app, "/api/v1/queues", json!({"name": format!("Queue {i}")})).await;
        json_of(r, StatusCode::CREATED).await;
        let r = post(
            &co.admin,
            &app,
            "/api/routing/rules",
            json!({"name": format!("Rule {i}"), "strategy": "round_robin", "target_type": "voicemail"}),
        )
        .await;
        json_of(r, StatusCode::CREATED).await;
    }
    for path in ["/api/v1/agents", "/api/v1/teams", "/api/v1/queues", "/api/routing/rules"] {
        let (items, pages) = walk(&co.admin, &app, &format!("{path}?limit=2")).await;
        assert_eq!(pages, 3, "{path}: 2 + 2 + 1");
        let mut ids: Vec<_> = items.iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect();
        let listed_order = ids.clone();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 5, "{path}: each once");
        let mut newest_first = listed_order.clone();
        newest_first.sort_by(|a, b| b.cmp(a));
        assert_eq!(listed_order, newest_first, "{path}: newest first (v7 ids)");
    }
    let r = get(&co.admin, &app, "/api/v1/agents?cursor=nonsense").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = get(&co.admin, &app, "/api/v1/agents?status=napping").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let available = listed(get(&co.admin, &app, "/api/v1/agents?status=offline&limit=500").await).await;
    assert_eq!(available["items"].as_array().unwrap().len(), 5);
    app.cleanup().await;
}

#[tokio::test]
async fn teams_have_members_and_are_checked_and_private() {
    let app = spawn_app().await;
    let co = company(&app).await;
    let other = company(&app).await;
    let (supervisor, _) = app.token_for(&[Role::Supervisor], co.id).await;
    let (outsider, _) = app.token_for(&[Role::Agent], other.id).await;
    app.caught_up().await;

    let r = post(&co.admin, &app, "/api/v1/teams", json!({"name": "", "timezone": "Mars/Base", "colour": 1}))
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = post(&co.admin, &app, "/api/v1/teams", json!({"name": "", "timezone": "Mars/Base"})).await;
    let mut fields = fields_of(r).await;
    fields.sort();
    assert_eq!(fields, vec!["name", "timezone"]);
    let r = post(&co.admin, &app, "/api/v1/teams", json!({"name": "Sales", "supervisor_id": outsider})).await;
    assert_eq!(fields_of(r).await, vec!["supervisor_id"]);

    let team = json_of(
        post(
            &co.admin,
            &app,
            "/api/v1/teams",
            json!({"name": "Sales", "supervisor_id": supervisor, "timezone": "Europe/Prague"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let id = team["id"].as_str().unwrap().to_owned();
    assert_eq!(team["members"], json!([]));
    let added = json_of(
        post(
            &co.admin,
            &app,
            &format!("/api/v1/teams/{id}/members"),
            json!({"user_id": supervisor, "role": "supervisor"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(added["members"], json!([{"user_id": supervisor, "role": "supervisor"}]));
    let r = post(
        &co.admin,
        &app,
        &format!("/api/v1/teams/{id}/members"),
        json!({"user_id": supervisor, "role": "viewer"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CONFLICT, "a member already, with another role");
    let r = post(
        &co.admin,
        &app,
        &format!("/api/v1/teams/{id}/members"),
        json!({"user_id": outsider, "role": "agent"}),
    )
    .await;
    assert_eq!(fields_of(r).await, vec!["user_id"]);
    let r = post(
        &co.admin,
        &app,
        &format!("/api/v1/teams/{id}/members"),
        json!({"user_id": supervisor, "role": "boss"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let updated = json_of(
        put(&co.admin, &app, &format!("/api/v1/teams/{id}"), json!({"description": "Outbound sales"})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (updated["name"].as_str(), updated["description"].as_str()),
        (Some("Sales"), Some("Outbound sales"))
    );
    assert_eq!(updated["timezone"], "Europe/Prague");

    let agent_client = app.as_user(&[Role::Agent], co.id).await;
    assert_eq!(get(&agent_client, &app, &format!("/api/v1/teams/{id}")).await.status(), StatusCode::OK);
    let r = put(&agent_client, &app, &format!("/api/v1/teams/{id}"), json!({"name": "Mine"})).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    for path in [format!("/api/v1/teams/{id}"), format!("/api/v1/teams/{id}/agents")] {
        assert_eq!(get(&other.admin, &app, &path).await.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let r = other.admin.delete(app.url(&format!("/api/v1/teams/{id}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let r =
        co.admin.delete(app.url(&format!("/api/v1/teams/{id}/members/{supervisor}"))).send().await.unwrap();
    assert_eq!(json_of(r, StatusCode::OK).await["members"], json!([]));
    let r = co.admin.delete(app.url(&format!("/api/v1/teams/{id}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(get(&co.admin, &app, &format!("/api/v1/teams/{id}")).await.status(), StatusCode::NOT_FOUND);
    app.cleanup().await;
}

#[tokio::test]
async fn queues_take_agents_and_teams_as_members_and_refuse_unknown_ones() {
    let app = spawn_app().await;
    let co = company(&app).await;
    let other = company(&app).await;
    let (_, _, ann) = agent(&app, &co, "Ann", json!({})).await;
    let ann = ann["id"].as_str().unwrap().to_owned();
    let team = json_of(
        post(&co.admin, &app, "/api/v1/teams", json!({"name": "Support"})).await,
        StatusCode::CREATED,
    )
    .await;
    let team = team["id"].as_str().unwrap().to_owned();

    let r = post(&co.admin, &app, "/api/v1/queues", json!({"name": "Q", "strategy": "telepathy"})).await;
    assert_eq!(fields_of(r).await, vec!["strategy"]);
    let r = post(
        &co.admin,
        &app,
        "/api/v1/queues",
        json!({"name": "Q", "members": [{"type": "agent", "id": Uuid::now_v7()}]}),
    )
    .await;
    assert_eq!(fields_of(r).await, vec!["members[0].id"]);
    let r = post(
        &co.admin,
        &app,
        "/api/v1/queues",
        json!({"name": "Q", "overflow": {"type": "queue", "queue_id": Uuid::now_v7()}}),
    )
    .await;
    assert_eq!(fields_of(r).await, vec!["overflow.queue_id"]);
    let r = post(&co.admin, &app, "/api/v1/queues", json!({"name": "Q", "required_skills": {"billing": 6}}))
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let q = json_of(
        post(
            &co.admin,
            &app,
            "/api/v1/queues",
            json!({"name": "Billing", "strategy": "skill_based", "required_skills": {"Billing": 2}, "language": "cs",
                   "service_level": {"threshold_seconds": 30, "target_percent": 90},
                   "members": [{"type": "agent", "id": ann}, {"type": "team", "id": team}]}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let id = q["id"].as_str().unwrap().to_owned();
    assert_eq!(q["strategy"], "skill_based");
    assert_eq!(q["required_skills"], json!({"billing": 2}));
    assert_eq!(q["offer_timeout_seconds"], 15, "the default reservation timeout");
    assert_eq!(q["members"].as_array().unwrap().len(), 2);

    let updated = json_of(
        put(
            &co.admin,
            &app,
            &format!("/api/v1/queues/{id}"),
            json!({"members": [{"type": "team", "id": team}], "max_wait_seconds": 120}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(updated["members"], json!([{"type": "team", "id": team}]));
    assert_eq!(updated["max_wait_seconds"], 120);
    let r = put(
        &co.admin,
        &app,
        &format!("/api/v1/queues/{id}"),
        json!({"overflow": {"type": "queue", "queue_id": id}}),
    )
    .await;
    assert_eq!(fields_of(r).await, vec!["overflow.queue_id"]);

    let calls =
        json_of(get(&co.admin, &app, &format!("/api/v1/queues/{id}/calls")).await, StatusCode::OK).await;
    assert_eq!(calls, json!([]));
    let agent_client = app.as_user(&[Role::Agent], co.id).await;
    let r = post(&agent_client, &app, "/api/v1/queues", json!({"name": "Mine"})).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    for path in [format!("/api/v1/queues/{id}"), format!("/api/v1/queues/{id}/calls")] {
        assert_eq!(get(&other.admin, &app, &path).await.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let r = co.admin.delete(app.url(&format!("/api/v1/queues/{id}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(get(&co.admin, &app, &format!("/api/v1/queues/{id}")).await.status(), StatusCode::NOT_FOUND);
    app.cleanup().await;
}

#[tokio::test]
async fn routing_rules_are_versioned_checked_tested_and_route_calls() {
    let app = spawn_app().await;
    let co = company(&app).await;
    let other = company(&app).await;
    let q =
        json_of(post(&co.admin, &app, "/api/v1/queues", json!({"name": "VIP"})).await, StatusCode::CREATED)
            .await;
    let queue = q["id"].as_str().unwrap().to_owned();

    let r = post(
        &co.admin,
        &app,
        "/api/routing/rules",
        json!({"name": "R", "strategy": "psychic", "conditions": [{"field": "vip", "operator": "approximately", "value": 1}]}),
    )
    .await;
    let mut fields = fields_of(r).await;
    fields.sort();
    assert_eq!(fields, vec!["conditions[0].operator", "strategy"]);
    let r = post(
        &co.admin,
        &app,
        "/api/routing/rules",
        json!({"name": "R", "target_type": "voicemail",
               "conditions": [{"field": "caller_number", "operator": "matches_regex", "value": "(+"}]}),
    )
    .await;
    assert_eq!(fields_of(r).await, vec!["conditions[0].value"]);
    let r = post(
        &co.admin,
        &app,
        "/api/routing/rules",
        json!({"name": "R", "target_type": "queue", "target_id": Uuid::now_v7()}),
    )
    .await;
    assert_eq!(fields_of(r).await, vec!["target_id"], "a queue that does not exist");
    let (other_queue, _) = (
        json_of(
            post(&other.admin, &app, "/api/v1/queues", json!({"name": "Theirs"})).await,
            StatusCode::CREATED,
        )
        .await,
        (),
    );
    let r = post(
        &co.admin,
        &app,
        "/api/routing/rules",
        json!({"name": "R", "target_type": "queue", "target_id": other_queue["id"]}),
    )
    .await;
    assert_eq!(fields_of(r).await, vec!["target_id"], "another tenant's queue");

    let rule = json_of(
        post(
            &co.admin,
            &app,
            "/api/routing/rules",
            json!({"name": "VIP callers", "strategy": "vip", "priority": 200,
                   "conditions": [{"field": "vip", "operator": "equals", "value": true}],
                   "active_hours": {}, "target_type": "queue", "target_id": queue, "target_name": "VIP"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let id = rule["id"].as_str().unwrap().to_owned();
    assert_eq!(rule["rule_version"], 1);
    assert_eq!(rule["priority"], 200);

    let routed =
        json_of(post(&co.admin, &app, "/api/routing/route", json!({"vip": true})).await, StatusCode::OK)
            .await;
    assert_eq!(routed["success"], true, "{routed}");
    assert_eq!(routed["rule_used"], id.as_str());
    assert_eq!(routed["rule_version"], 1);
    assert_eq!(
        (routed["target_type"].as_str(), routed["target_id"].as_str()),
        (Some("queue"), Some(queue.as_str()))
    );
    assert_eq!(routed["strategy"], "vip");
    assert_eq!(routed["fallback_used"], false);
    assert!(routed["route_time_ms"].is_number());
    let missed =
        json_of(post(&co.admin, &app, "/api/routing/route", json!({"vip": false})).await, StatusCode::OK)
            .await;
    assert_eq!(missed["success"], false);
    let theirs =
        json_of(post(&other.admin, &app, "/api/routing/route", json!({"vip": true})).await, StatusCode::OK)
            .await;
    assert_eq!(theirs["success"], false, "another tenant's rules do not route its calls");

    let updated = json_of(
        put(
            &co.admin,
            &app,
            &format!("/api/routing/rules/{id}"),
            json!({"conditions": [{"field": "vip", "operator": "equals", "value": "yes"}]}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(updated["rule_version"], 2, "an update is a new version");
    assert_eq!(updated["name"], "VIP callers");
    let tested = json_of(
        post(&co.admin, &app, &format!("/api/routing/rules/{id}/test"), json!({"vip": "yes"})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(tested["conditions"], json!([true]));
    assert_eq!(tested["result"]["version"], 2);
    let routed =
        json_of(post(&co.admin, &app, "/api/routing/route", json!({"vip": "yes"})).await, StatusCode::OK)
            .await;
    assert_eq!(routed["rule_version"], 2, "the decision names the version it used");

    let strategies = json_of(get(&co.admin, &app, "/api/routing/strategies").await, StatusCode::OK).await;
    let names: Vec<_> = strategies.as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 8);
    for n in
        ["skill_based", "least_busy", "longest_idle", "round_robin", "priority", "language", "vip", "custom"]
    {
        assert!(names.contains(&n), "{n}");
    }

    let agent_client = app.as_user(&[Role::Agent], co.id).await;
    assert_eq!(get(&agent_client, &app, &format!("/api/routing/rules/{id}")).await.status(), StatusCode::OK);
    let r = put(&agent_client, &app, &format!("/api/routing/rules/{id}"), json!({"priority": 1})).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        get(&other.admin, &app, &format!("/api/routing/rules/{id}")).await.status(),
        StatusCode::NOT_FOUND
    );
    let r = post(&other.admin, &app, &format!("/api/routing/rules/{id}/test"), json!({})).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let r = co.admin.delete(app.url(&format!("/api/routing/rules/{id}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let gone =
        json_of(post(&co.admin, &app, "/api/routing/route", json!({"vip": "yes"})).await, StatusCode::OK)
            .await;
    assert_eq!(gone["success"], false);
    let versions: Vec<i64> = sqlx::query_scalar(
        "SELECT (payload->(event_type)->>'version')::bigint FROM events WHERE aggregate_type = 'RoutingRule' \
         AND aggregate_id = $1 ORDER BY sequence",
    )
    .bind(&id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(versions, vec![1, 2, 2], "created, updated, deleted at its last version");
    app.cleanup().await;
}

#[tokio::test]
async fn performance_comes_from_the_agent_events() {
    let app = spawn_app().await;
    let co = company(&app).await;
    let other = company(&app).await;
    let team =
        json_of(post(&co.admin, &app, "/api/v1/teams", json!({"name": "Care"})).await, StatusCode::CREATED)
            .await;
    let team = team["id"].as_str().unwrap().to_owned();
    let (_, me, created) = agent(&app, &co, "Ann", json!({"team_ids": [team], "wrap_up_seconds": 0})).await;
    let id = created["id"].as_str().unwrap().to_owned();
    agent(&app, &co, "Bob", json!({"team_ids": [team]})).await;
    let r = put(&me, &app, &format!("/api/v1/agents/{id}/status"), json!({"status": "available"})).await;
    assert_eq!(r.status(), StatusCode::OK);

    // Two offers through the aggregate: one declined, one taken to the end of the call.
    let dispatcher = &app.app().state().dispatcher;
    let ctx = CommandContext::new(co.id.to_string(), "system:test-router");
    for accept in [false, true] {
        let (offer_id, call_id) = (Uuid::now_v7(), Uuid::now_v7());
        let reserve = AgentCommand::ReserveAgent {
            offer_id,
            call_id,
            queue_id: None,
            expires_at: Utc::now() + Duration::seconds(60),
            at: Utc::now(),
        };
        dispatcher.execute::<Agent>(&id, reserve, &ctx).await.unwrap();
        if accept {
            let connect = AgentCommand::ConnectCall { call_id, at: Utc::now() };
            dispatcher.execute::<Agent>(&id, connect, &ctx).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            dispatcher
                .execute::<Agent>(&id, AgentCommand::EndCall { call_id, at: Utc::now() }, &ctx)
                .await
                .unwrap();
        } else {
            let reject = AgentCommand::RejectOffer { offer_id, reason: Some("busy".into()), at: Utc::now() };
            dispatcher.execute::<Agent>(&id, reject, &ctx).await.unwrap();
        }
    }
    app.caught_up().await;

    let p = json_of(get(&co.admin, &app, &format!("/api/v1/agents/{id}/performance")).await, StatusCode::OK)
        .await;
    assert_eq!(
        (p["offers"].as_i64(), p["accepted"].as_i64(), p["rejected"].as_i64()),
        (Some(2), Some(1), Some(1)),
        "{p}"
    );
    assert_eq!(p["calls_handled"], 1);
    assert_eq!(p["acceptance_rate"], 0.5);
    assert!(p["talk_seconds"].as_f64().unwrap() >= 0.05, "{p}");
    assert!(p["aht_seconds"].as_f64().unwrap() >= 0.05, "{p}");
    let states: f64 = p["seconds_in_state"].as_object().unwrap().values().map(|v| v.as_f64().unwrap()).sum();
    let offline = p["seconds_in_state"]["offline"].as_f64().unwrap_or(0.0);
    assert!((states - offline - p["logged_in_seconds"].as_f64().unwrap()).abs() < 1e-6, "{p}");

    let t = json_of(get(&co.admin, &app, &format!("/api/v1/teams/{team}/performance")).await, StatusCode::OK)
        .await;
    assert_eq!(t["agents"], 2);
    assert_eq!(t["offers"], 2, "the team sums its agents");
    assert_eq!(t["per_agent"].as_array().unwrap().len(), 2);

    // Before the agent existed there is nothing; a backwards period is refused.
    let r = get(&co.admin, &app, &format!("/api/v1/agents/{id}/performance?to=2020-01-01T00:00:00Z")).await;
    let early = json_of(r, StatusCode::OK).await;
    assert_eq!((early["offers"].as_i64(), early["logged_in_seconds"].as_f64()), (Some(0), Some(0.0)));
    let r = get(
        &co.admin,
        &app,
        &format!("/api/v1/agents/{id}/performance?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        get(&other.admin, &app, &format!("/api/v1/agents/{id}/performance")).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&other.admin, &app, &format!("/api/v1/teams/{team}/performance")).await.status(),
        StatusCode::NOT_FOUND
    );
    app.cleanup().await;
}

#[tokio::test]
async fn reservations_time_out_pause_the_agent_and_wrap_up_ends_by_itself() {
    let app = spawn_app().await;
    let co = company(&app).await;
    let (_, me, created) =
        agent(&app, &co, "Ann", json!({"max_missed_offers": 2, "wrap_up_seconds": 1})).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let status = |path: String| {
        let (c, app) = (me.clone(), &app);
        async move { json_of(get(&c, app, &path).await, StatusCode::OK).await }
    };
    let r = put(&me, &app, &format!("/api/v1/agents/{id}/status"), json!({"status": "available"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let dispatcher = &app.app().state().dispatcher;
    let ctx = CommandContext::new(co.id.to_string(), "system:test-router");
    let reserve = |seconds: i64| AgentCommand::ReserveAgent {
        offer_id: Uuid::now_v7(),
        call_id: Uuid::now_v7(),
        queue_id: None,
        expires_at: Utc::now() + Duration::seconds(seconds),
        at: Utc::now(),
    };

    // Two offers nobody answers: each times out (a miss), the second pauses the agent.
    for (n, want) in [(1, "available"), (2, "away")] {
        dispatcher.execute::<Agent>(&id, reserve(1), &ctx).await.unwrap();
        app.caught_up().await;
        let read = kraliki_tests::eventually(std::time::Duration::from_secs(15), "the offer expires", || {
            let read = status(format!("/api/v1/agents/{id}"));
            async move {
                let a = read.await;
                (a["status"] != "reserved").then_some(a)
            }
        })
        .await;
        assert_eq!(read["status"], want, "after miss {n}: {read}");
    }
    let read = status(format!("/api/v1/agents/{id}")).await;
    assert_eq!(read["status_reason"], "missed_offers");
    let kinds: Vec<String> = sqlx::query_scalar(
        "SELECT event_type FROM events WHERE aggregate_type = 'Agent' AND aggregate_id = $1 \
         AND event_type IN ('AgentOfferExpired', 'AgentAutoPaused') ORDER BY sequence",
    )
    .bind(&id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(kinds, vec!["AgentOfferExpired", "AgentOfferExpired", "AgentAutoPaused"]);

    // A call taken and ended: wrap-up for a second, then available by itself.
    let r = put(&me, &app, &format!("/api/v1/agents/{id}/status"), json!({"status": "available"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let call_id = Uuid::now_v7();
    dispatcher
        .execute::<Agent>(&id, AgentCommand::ConnectCall { call_id, at: Utc::now() }, &ctx)
        .await
        .unwrap();
    dispatcher.execute::<Agent>(&id, AgentCommand::EndCall { call_id, at: Utc::now() }, &ctx).await.unwrap();
    app.caught_up().await;
    kraliki_tests::eventually(std::time::Duration::from_secs(15), "wrap-up ends", || {
        let read = status(format!("/api/v1/agents/{id}"));
        async move { (read.await["status"] == "available").then_some(()) }
    })
    .await;
    let last: Vec<(String, String)> = sqlx::query_as(
        "SELECT event_type, payload->(event_type)->>'state' FROM events WHERE aggregate_type = 'Agent'          AND aggregate_id = $1 ORDER BY sequence DESC LIMIT 2",
    )
    .bind(&id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        last,
        vec![
            ("AgentWrapUpEnded".to_owned(), "available".to_owned()),
            ("AgentCallEnded".to_owned(), "wrap_up".to_owned())
        ]
    );
    app.cleanup().await;
}
