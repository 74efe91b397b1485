//! The router end to end: a call put in a queue over the API is offered to the agent the
//! queue's strategy picks; rejections, missed offers (the reservation timer), abandonment and
//! overflow (the max-wait timer) behave; a router stopped mid-offer resumes without a second
//! offer or a stuck agent; and every `RoutingDecided` in the log re-decides to its winner from
//! its payload alone.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use kraliki_commands::CommandContext;
use kraliki_domain::call::{Call, CallCommand, CallDirection};
use kraliki_domain::queued_call::QueuedCallEvent;
use kraliki_domain::routing::decide;
use kraliki_domain::values::Role;
use kraliki_tests::{client_with, eventually, spawn_app, TestApp};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(20);

async fn json_of(r: reqwest::Response, status: StatusCode) -> Value {
    let got = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "{body}");
    body
}

struct Company {
    id: Uuid,
    admin: Client,
}

async fn company(app: &TestApp) -> Company {
    let id = Uuid::now_v7();
    Company { id, admin: app.as_user(&[Role::Admin], id).await }
}

async fn post(c: &Client, app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    c.post(app.url(path)).json(&body).send().await.unwrap()
}

async fn get(c: &Client, app: &TestApp, path: &str) -> Value {
    json_of(c.get(app.url(path)).send().await.unwrap(), StatusCode::OK).await
}

/// An agent of the company (its own client), available when `available`.
struct AgentUser {
    id: String,
    client: Client,
}

async fn agent(app: &TestApp, co: &Company, name: &str, extra: Value, available: bool) -> AgentUser {
    let (user_id, token) = app.token_for(&[Role::Agent], co.id).await;
    app.caught_up().await;
    let mut body = json!({"user_id": user_id, "display_name": name});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let created = json_of(post(&co.admin, app, "/api/v1/agents", body).await, StatusCode::CREATED).await;
    let agent = AgentUser { id: created["id"].as_str().unwrap().to_owned(), client: client_with(&token) };
    if available {
        set_status(app, &agent, "available").await;
    }
    agent
}

async fn set_status(app: &TestApp, a: &AgentUser, status: &str) {
    let r = a
        .client
        .put(app.url(&format!("/api/v1/agents/{}/status", a.id)))
        .json(&json!({"status": status}))
        .send()
        .await
        .unwrap();
    json_of(r, StatusCode::OK).await;
}

async fn queue(app: &TestApp, co: &Company, body: Value) -> String {
    let q = json_of(post(&co.admin, app, "/api/v1/queues", body).await, StatusCode::CREATED).await;
    q["id"].as_str().unwrap().to_owned()
}

fn members(agents: &[&AgentUser]) -> Value {
    agents.iter().map(|a| json!({"type": "agent", "id": a.id})).collect()
}

/// An inbound call of the company, as the carrier's webhook records it.
async fn inbound_call(app: &TestApp, co: &Company) -> Uuid {
    let id = Uuid::now_v7();
    let ctx = CommandContext::new(co.id.to_string(), "system:test-telephony");
    let command = CallCommand::InitiateCall {
        direction: CallDirection::Inbound,
        provider: "twilio".into(),
        provider_call_id: Some(format!("CA{}", id.simple())),
        from: "+420603123456".into(),
        to: "+14155550100".into(),
        campaign_id: None,
        contact_id: None,
        at: Utc::now(),
    };
    app.app().state().dispatcher.execute::<Call>(&id.to_string(), command, &ctx).await.unwrap();
    app.caught_up().await;
    id
}

async fn enqueue(app: &TestApp, co: &Company, queue: &str, body: Value) -> Value {
    let r = post(&co.admin, app, &format!("/api/v1/queues/{queue}/calls"), body).await;
    json_of(r, StatusCode::CREATED).await
}

/// Waits until the agent holds an offer for `call`; its offer id.
async fn offered_to(app: &TestApp, co: &Company, a: &AgentUser, call: Uuid) -> String {
    let path = format!("/api/v1/agents/{}", a.id);
    eventually(WAIT, "the agent is offered the call", || async {
        let read = get(&co.admin, app, &path).await;
        (read["status"] == "reserved" && read["current_offer"]["call_id"] == call.to_string())
            .then(|| read["current_offer"]["offer_id"].as_str().unwrap().to_owned())
    })
    .await
}

async fn answer(app: &TestApp, a: &AgentUser, offer: &str, verb: &str) -> reqwest::Response {
    a.client.post(app.url(&format!("/api/v1/agents/{}/offers/{offer}/{verb}", a.id))).send().await.unwrap()
}

async fn status_of(app: &TestApp, co: &Company, a: &AgentUser) -> Value {
    get(&co.admin, app, &format!("/api/v1/agents/{}", a.id)).await
}

/// The QueuedCall events of `call`, in order.
async fn call_events(app: &TestApp, call: Uuid) -> Vec<QueuedCallEvent> {
    let rows: Vec<Value> = sqlx::query_scalar(
        "SELECT payload FROM events WHERE aggregate_type = 'QueuedCall' AND aggregate_id = $1 ORDER BY sequence",
    )
    .bind(call.to_string())
    .fetch_all(&app.pool)
    .await
    .unwrap();
    rows.into_iter().map(|p| serde_json::from_value(p).unwrap()).collect()
}

fn kinds(events: &[QueuedCallEvent]) -> Vec<String> {
    events.iter().map(cqrs_es::DomainEvent::event_type).collect()
}

/// Every `RoutingDecided` in the log re-decided from its payload alone gives its decision (and
/// so its winner); the number checked.
async fn replay_every_decision(app: &TestApp) -> usize {
    let rows: Vec<Value> = sqlx::query_scalar(
        "SELECT payload FROM events WHERE event_type = 'RoutingDecided' ORDER BY sequence",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    for row in &rows {
        let Ok(QueuedCallEvent::RoutingDecided { input, decision, .. }) = serde_json::from_value(row.clone())
        else {
            panic!("not a decision: {row}")
        };
        assert_eq!(decide(&input), *decision, "a decision replays to itself");
    }
    rows.len()
}

#[tokio::test]
async fn a_queued_call_is_offered_by_skill_then_to_the_next_agent_after_a_rejection_and_assigned() {
    let app = spawn_app().await;
    let co = company(&app).await;
    let expert = agent(&app, &co, "Expert", json!({"skills": {"billing": 5}}), true).await;
    let junior = agent(&app, &co, "Junior", json!({"skills": {"billing": 3}}), true).await;
    let outsider = agent(&app, &co, "Outsider", json!({"skills": {"sales": 5}}), true).await;
    let q = queue(
        &app,
        &co,
        json!({"name": "Billing", "strategy": "skill_based", "required_skills": {"billing": 3},
               "members": members(&[&outsider, &junior, &expert])}),
    )
    .await;
    let call = inbound_call(&app, &co).await;

    let queued = enqueue(&app, &co, &q, json!({"call_id": call, "priority": 5})).await;
    assert_eq!(queued["call_id"], call.to_string());
    assert_eq!(queued["required_skills"], json!({"billing": 3}), "the queue's requirements apply");

    // Skill based: the highest total proficiency among those with billing ≥ 3.
    let offer = offered_to(&app, &co, &expert, call).await;
    // The agent is reserved as the decision is recorded; the queue's view follows the log.
    let listed = eventually(WAIT, "the queue shows the call offered", || async {
        let listed = get(&co.admin, &app, &format!("/api/v1/queues/{q}/calls")).await;
        (listed[0]["status"] == "offered").then_some(listed)
    })
    .await;
    assert_eq!(listed[0]["offer"]["agent_id"], expert.id);
    assert_eq!(listed[0]["position"], 1);

    // Another agent cannot answer the expert's offer; the expert declines.
    let path = format!("/api/v1/agents/{}/offers/{offer}/accept", expert.id);
    let r = junior.client.post(app.url(&path)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    json_of(answer(&app, &expert, &offer, "reject").await, StatusCode::OK).await;
    // The call goes to the next eligible agent, never back to the one who declined.
    let second = offered_to(&app, &co, &junior, call).await;
    assert_ne!(second, offer);
    json_of(answer(&app, &junior, &second, "accept").await, StatusCode::OK).await;
    eventually(WAIT, "the call leaves the queue", || async {
        let listed = get(&co.admin, &app, &format!("/api/v1/queues/{q}/calls")).await;
        listed.as_array().unwrap().is_empty().then_some(())
    })
    .await;
    // A stale offer is refused with the agent's current state.
    let r = answer(&app, &expert, &offer, "accept").await;
    assert_eq!(json_of(r, StatusCode::CONFLICT).await["code"], "invalid_state");

    // The agent who took the call dispositions it; the one who declined may not; bad codes are
    // refused with the field; a supervisor may correct it.
    let path = format!("/api/v1/calls/{call}/disposition");
    let r = post(&expert.client, &app, &path, json!({"disposition": "sale"})).await;
    assert_eq!(json_of(r, StatusCode::FORBIDDEN).await["code"], "forbidden");
    let r = post(&junior.client, &app, &path, json!({"disposition": "sale made!"})).await;
    let problem = json_of(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(problem["errors"][0]["field"], "disposition", "{problem}");
    let body = json!({"disposition": " Sale Made ", "notes": "wants the yearly plan"});
    let set = json_of(post(&junior.client, &app, &path, body.clone()).await, StatusCode::OK).await;
    assert_eq!(set["disposition"], "sale_made");
    assert_eq!(set["disposition_notes"], "wants the yearly plan");
    assert_eq!(set["disposition_agent_id"], junior.id);
    json_of(post(&junior.client, &app, &path, body).await, StatusCode::OK).await;
    let fixed = json!({"disposition": "callback_requested"});
    let fixed = json_of(post(&co.admin, &app, &path, fixed).await, StatusCode::OK).await;
    assert_eq!(fixed["disposition"], "callback_requested");
    assert!(fixed["disposition_agent_id"].is_null(), "a supervisor is not an agent");
    let detail = get(&co.admin, &app, &format!("/api/v1/calls/{call}")).await;
    let steps: Vec<_> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "CallDispositionSet")
        .map(|s| (s["detail"]["disposition"].clone(), s["detail"]["previous"].clone()))
        .collect();
    assert_eq!(
        steps,
        [(json!("sale_made"), Value::Null), (json!("callback_requested"), json!("sale_made"))],
        "a repeat records nothing; a correction names what it replaced: {detail}"
    );

    let events = call_events(&app, call).await;
    assert_eq!(
        kinds(&events),
        ["CallQueued", "RoutingDecided", "CallOfferEnded", "RoutingDecided", "CallAssigned"],
        "{events:#?}"
    );
    let QueuedCallEvent::RoutingDecided { decision, .. } = &events[3] else { panic!() };
    let why: Vec<_> =
        decision.candidates.iter().map(|c| c.why_not.as_ref().map(ToString::to_string)).collect();
    assert_eq!(
        why,
        [Some("missing_skill:billing".to_owned()), None, Some("rejected_this_call".to_owned())],
        "every candidate with why not, in member order"
    );
    assert_eq!(status_of(&app, &co, &outsider).await["status"], "available", "never offered");
    assert!(replay_every_decision(&app).await >= 2);

    // The router's metrics saw it (the recorder is the process's: other tests add to it).
    let text = app.anon.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for series in [
        "kraliki_router_decisions_total{outcome=\"offered\"}",
        "kraliki_router_offers_total{outcome=\"rejected\"}",
        "kraliki_router_offers_total{outcome=\"accepted\"}",
        "kraliki_router_queue_wait_seconds_count{outcome=\"assigned\"}",
        "kraliki_router_offer_latency_seconds_count",
    ] {
        assert!(text.contains(series), "{series} in /metrics");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn a_call_waits_for_an_agent_a_missed_offer_moves_on_and_removing_the_call_withdraws_its_offer() {
    let app = spawn_app().await;
    let co = company(&app).await;
    let first = agent(&app, &co, "First", json!({}), false).await;
    let second = agent(&app, &co, "Second", json!({}), false).await;
    let q = queue(
        &app,
        &co,
        json!({"name": "Support", "strategy": "round_robin", "offer_timeout_seconds": 5,
               "members": members(&[&first, &second])}),
    )
    .await;
    let call = inbound_call(&app, &co).await;
    let queued = enqueue(&app, &co, &q, json!({"call_id": call})).await;
    assert_eq!(queued["status"], "waiting");
    let path = format!("/api/v1/queues/{q}/calls");
    eventually(WAIT, "the call waits because nobody is available", || async {
        let listed = get(&co.admin, &app, &path).await;
        (listed[0]["waiting_because"] == "none_eligible").then_some(())
    })
    .await;

    // An agent becoming available is offered the waiting call; nobody answers within the
    // queue's offer timeout (5 s, a durable timer), so it is a missed offer and goes to the other.
    set_status(&app, &first, "available").await;
    let missed = offered_to(&app, &co, &first, call).await;
    set_status(&app, &second, "available").await;
    let offer = offered_to(&app, &co, &second, call).await;
    assert_ne!(offer, missed);
    let states = get(&co.admin, &app, &format!("/api/v1/agents/{}/states", first.id)).await;
    let kinds_of: Vec<_> = states.as_array().unwrap().iter().map(|s| s["event_type"].clone()).collect();
    assert!(kinds_of.contains(&json!("AgentOfferExpired")), "{states}");

    // Taken out of the queue while offered: the agent's offer is withdrawn.
    let r = co.admin.delete(app.url(&format!("{path}/{call}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    eventually(WAIT, "the offer is withdrawn", || async {
        let read = status_of(&app, &co, &second).await;
        (read["status"] == "available" && read["current_offer"].is_null()).then_some(())
    })
    .await;
    let r = co.admin.delete(app.url(&format!("{path}/{call}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "not in the queue any more");
    let events = call_events(&app, call).await;
    assert_eq!(
        kinds(&events),
        [
            "CallQueued",
            "RoutingDecided",
            "RoutingDecided",
            "CallOfferEnded",
            "RoutingDecided",
            "CallAbandoned"
        ],
        "nobody, the first agent, missed, the second, removed: {events:#?}"
    );
    replay_every_decision(&app).await;
    app.cleanup().await;
}

#[tokio::test]
async fn a_call_past_its_max_wait_overflows_into_the_next_queue_and_is_offered_there() {
    let app = spawn_app().await;
    let co = company(&app).await;
    let busy = agent(&app, &co, "On break", json!({}), false).await;
    let spare = agent(&app, &co, "Spare", json!({}), true).await;
    let second = queue(&app, &co, json!({"name": "Overflow", "members": members(&[&spare])})).await;
    let first = queue(
        &app,
        &co,
        json!({"name": "Front", "max_wait_seconds": 1, "overflow": {"type": "queue", "queue_id": second},
               "members": members(&[&busy])}),
    )
    .await;
    let call = inbound_call(&app, &co).await;
    let queued = enqueue(&app, &co, &first, json!({"call_id": call, "vip": true})).await;
    assert!(queued["overflow_at"].is_string());
    offered_to(&app, &co, &spare, call).await;
    let listed = get(&co.admin, &app, &format!("/api/v1/queues/{second}/calls")).await;
    assert_eq!(listed[0]["visit"], 2, "{listed}");
    assert_eq!(listed[0]["vip"], true, "the call keeps what it requires");
    let events = call_events(&app, call).await;
    assert_eq!(kinds(&events)[..4], ["CallQueued", "RoutingDecided", "CallOverflowed", "CallQueued"]);
    app.cleanup().await;
}

#[tokio::test]
async fn a_router_stopped_mid_offer_resumes_without_a_second_offer_or_a_stuck_agent() {
    let mut app = spawn_app().await;
    let co = company(&app).await;
    let a = agent(&app, &co, "A", json!({}), true).await;
    let b = agent(&app, &co, "B", json!({}), true).await;
    let q = queue(&app, &co, json!({"name": "Q", "offer_timeout_seconds": 5, "members": members(&[&a, &b])}))
        .await;
    let calls = [inbound_call(&app, &co).await, inbound_call(&app, &co).await, inbound_call(&app, &co).await];
    for call in &calls {
        enqueue(&app, &co, &q, json!({"call_id": call})).await;
    }
    // Stopped right away: some decisions and reservations may be made, others not yet.
    app.stop().await;
    // Forget the router's checkpoint and timers' progress: a restart replays everything it had
    // handled (the worst case for duplicates).
    sqlx::query("UPDATE projection_builds SET last_tx = '0', last_position = 0 WHERE name = 'router'")
        .execute(&app.pool)
        .await
        .unwrap();
    app.start().await;
    // Both agents get one call each; the third waits; nobody is reserved twice.
    let mut offers = Vec::new();
    for who in [&a, &b] {
        let offer = eventually(WAIT, "each agent is offered a call", || async {
            let read = status_of(&app, &co, who).await;
            (read["status"] == "reserved").then(|| read["current_offer"].clone())
        })
        .await;
        offers.push(offer);
    }
    let offered: BTreeSet<_> = offers.iter().map(|o| o["call_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(offered.len(), 2, "two different calls: {offers:?}");
    // Nobody answers: the offers expire and each call is decided again; nothing stays reserved
    // for a call that is not offered to that agent.
    app.caught_up().await;
    let reserved: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'AgentReserved'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let decided: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'RoutingDecided' AND payload->'RoutingDecided'->>'offer_id' IS NOT NULL",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(reserved <= decided, "a reservation per offer at most ({reserved} of {decided})");
    for row in sqlx::query_scalar::<_, Value>(
        "SELECT payload FROM events WHERE aggregate_type = 'QueuedCall' ORDER BY global_position",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap()
    {
        let _: QueuedCallEvent = serde_json::from_value(row).unwrap();
    }
    // Two offers of one call never overlap.
    for call in &calls {
        let events = call_events(&app, *call).await;
        let mut pending = false;
        for e in &events {
            match e {
                QueuedCallEvent::RoutingDecided { offer_id: Some(_), .. } => {
                    assert!(!pending, "a second offer while one is pending: {events:#?}");
                    pending = true;
                }
                QueuedCallEvent::CallOfferEnded { .. }
                | QueuedCallEvent::CallAssigned { .. }
                | QueuedCallEvent::CallAbandoned { .. } => pending = false,
                _ => {}
            }
        }
    }
    // The calls taken out of the queue: every reservation ends, nobody stays reserved.
    for call in &calls {
        let r = co.admin.delete(app.url(&format!("/api/v1/queues/{q}/calls/{call}"))).send().await.unwrap();
        assert!(matches!(r.status(), StatusCode::NO_CONTENT | StatusCode::NOT_FOUND), "{}", r.status());
    }
    for who in [&a, &b] {
        eventually(WAIT, "no agent stays reserved", || async {
            let read = status_of(&app, &co, who).await;
            (read["status"] == "available" && read["current_offer"].is_null()).then_some(())
        })
        .await;
    }
    replay_every_decision(&app).await;
    app.cleanup().await;
}

#[tokio::test]
async fn bad_calls_for_a_queue_are_refused_with_the_field_and_nothing_appended() {
    let app = spawn_app().await;
    let co = company(&app).await;
    let other = company(&app).await;
    let a = agent(&app, &co, "A", json!({}), false).await;
    let q = queue(&app, &co, json!({"name": "Q", "members": members(&[&a])})).await;
    let call = inbound_call(&app, &co).await;
    let before = app.count_events().await;
    let path = format!("/api/v1/queues/{q}/calls");
    for (body, field) in [
        (json!({"call_id": Uuid::now_v7()}), "call_id"),
        (json!({"call_id": call, "priority": 500}), "priority"),
        (json!({"call_id": call, "required_skills": {"billing": 9}}), "required_skills.billing"),
        (json!({"call_id": call, "language": "english!"}), "language"),
        (json!({"call_id": call, "preferred_agent_id": Uuid::now_v7()}), "preferred_agent_id"),
    ] {
        let r = post(&co.admin, &app, &path, body.clone()).await;
        let problem = json_of(r, StatusCode::UNPROCESSABLE_ENTITY).await;
        let fields: Vec<_> =
            problem["errors"].as_array().unwrap().iter().map(|e| e["field"].clone()).collect();
        assert_eq!(fields, [json!(field)], "{body}: {problem}");
    }
    let r = post(&co.admin, &app, &path, json!({"call_id": call, "colour": "red"})).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Another tenant's queue does not exist for them; an agent cannot queue calls.
    let r = post(&other.admin, &app, &path, json!({"call_id": call})).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = other.admin.get(app.url(&path)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = post(&a.client, &app, &path, json!({"call_id": call})).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.count_events().await, before, "refusals append nothing");

    enqueue(&app, &co, &q, json!({"call_id": call})).await;
    let r = post(&co.admin, &app, &path, json!({"call_id": call})).await;
    let problem = json_of(r, StatusCode::CONFLICT).await;
    assert_eq!(problem["code"], "invalid_state", "{problem}");
    // Agents read the queue; an unknown offer is not the agent's.
    let listed = get(&a.client, &app, &path).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let r = answer(&app, &a, &Uuid::now_v7().to_string(), "accept").await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    app.cleanup().await;
}

/// A deterministic stream (SplitMix64) choosing what the racing dispatchers do.
struct Mix(u64);

impl Mix {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

#[tokio::test]
async fn two_dispatchers_offering_at_once_never_reserve_an_agent_twice() {
    use kraliki_domain::agent::{Agent, AgentCommand};
    let app = spawn_app().await;
    let co = company(&app).await;
    let mut agents = Vec::new();
    for i in 0..4 {
        agents.push(agent(&app, &co, &format!("A{i}"), json!({"capacity": 1 + (i % 2)}), true).await.id);
    }
    // Two dispatchers on pools of their own, as two server instances would be.
    let second_pool =
        sqlx::postgres::PgPoolOptions::new().max_connections(4).connect(&app.db.url).await.unwrap();
    let dispatchers = [
        app.app().state().dispatcher.clone(),
        kraliki_commands::Dispatcher::new(second_pool, kraliki_projections::Wake::new()),
    ];
    let agents = std::sync::Arc::new(agents);
    for seed in [1u64, 2, 3] {
        let mut racers = Vec::new();
        for (n, dispatcher) in dispatchers.iter().enumerate() {
            let (dispatcher, agents, tenant) = (dispatcher.clone(), agents.clone(), co.id);
            racers.push(tokio::spawn(async move {
                let mut rng = Mix(seed * 10 + n as u64);
                let ctx = CommandContext::new(tenant.to_string(), format!("system:racer-{n}"));
                for _ in 0..60 {
                    let agent = &agents[rng.below(agents.len() as u64) as usize];
                    let (state, _) = dispatcher.load::<Agent>(agent).await.unwrap();
                    let now = Utc::now();
                    let command = match (rng.below(4), state.offer) {
                        (0, Some(o)) => {
                            AgentCommand::RejectOffer { offer_id: o.offer_id, reason: None, at: now }
                        }
                        (1, Some(o)) => AgentCommand::ConnectCall { call_id: o.call_id, at: now },
                        (2, _) if !state.calls.is_empty() => {
                            AgentCommand::EndCall { call_id: state.calls[0].call_id, at: now }
                        }
                        _ => AgentCommand::ReserveAgent {
                            offer_id: Uuid::now_v7(),
                            call_id: Uuid::now_v7(),
                            queue_id: None,
                            expires_at: now + chrono::Duration::seconds(60),
                            at: now,
                        },
                    };
                    // Refusals and lost races are the point: only what was appended counts.
                    let _ = dispatcher.execute::<Agent>(agent, command, &ctx).await;
                }
            }));
        }
        for r in racers {
            r.await.unwrap();
        }
    }
    // Walk every agent's stream: a reservation only while none is held.
    for agent in agents.iter() {
        let kinds: Vec<String> = sqlx::query_scalar(
            "SELECT event_type FROM events WHERE aggregate_type = 'Agent' AND aggregate_id = $1 ORDER BY sequence",
        )
        .bind(agent)
        .fetch_all(&app.pool)
        .await
        .unwrap();
        let (mut held, mut reservations) = (false, 0);
        for kind in &kinds {
            match kind.as_str() {
                "AgentReserved" => {
                    assert!(!held, "agent {agent} reserved twice at once: {kinds:?}");
                    held = true;
                    reservations += 1;
                }
                "AgentOfferAccepted" | "AgentOfferRejected" | "AgentOfferExpired" | "AgentOfferCancelled" => {
                    held = false
                }
                _ => {}
            }
        }
        assert!(reservations > 0, "the race reserved agent {agent} at least once");
    }
    app.cleanup().await;
}
