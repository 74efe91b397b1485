//! Process managers: every effect exactly once across replays, lost checkpoints, timers fired
//! again and two instances; timers survive a restart.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use kraliki_commands::{Effects, ProcessManager, Timer};
use kraliki_domain::company::{Company, CompanyCommand};
use kraliki_domain::values::CompanyName;
use kraliki_projections::{EventFilter, StoredEvent};
use kraliki_tests::{eventually, spawn_app_managing, TestApp};
use reqwest::StatusCode;
use serde_json::json;

/// On every company created: renamed now, and again a little later (a timer). A rename appends,
/// so an effect taken twice shows twice.
struct Reactor {
    delay: chrono::TimeDelta,
}

#[async_trait]
impl ProcessManager for Reactor {
    fn name(&self) -> &'static str {
        "test_reactor"
    }

    fn reads(&self) -> EventFilter {
        EventFilter::events("Company", &["CompanyCreated"])
    }

    async fn handle(&self, e: &StoredEvent, fx: &mut Effects<'_>) -> anyhow::Result<()> {
        rename(fx, &e.aggregate_id, "seen").await?;
        fx.set_timer(
            format!("later:{}", e.aggregate_id),
            Utc::now() + self.delay,
            json!({"company": e.aggregate_id}),
        );
        Ok(())
    }

    async fn on_timer(&self, timer: &Timer, fx: &mut Effects<'_>) -> anyhow::Result<()> {
        let company = timer.payload["company"].as_str().unwrap_or_default().to_owned();
        rename(fx, &company, "timer").await
    }
}

/// Appends `[mark]` to the company's name (loaded fresh, so a second rename would show).
async fn rename(fx: &mut Effects<'_>, company: &str, mark: &str) -> anyhow::Result<()> {
    let (current, _) = fx.dispatcher().load::<Company>(company).await?;
    let name = CompanyName::parse(&format!("{} [{mark}]", current.name))?;
    fx.execute::<Company>(company, CompanyCommand::RenameCompany { name, at: Utc::now() }).await?;
    Ok(())
}

async fn companies(app: &TestApp, n: usize, tag: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let r = app
            .post_json(
                "/api/v1/companies",
                json!({"name": format!("{tag}{i}"), "domain": format!("{tag}{i}.example")}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        ids.push(r.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    ids
}

/// The event types of a company's stream.
async fn stream(app: &TestApp, id: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT event_type FROM events WHERE aggregate_id = $1 ORDER BY sequence")
        .bind(id)
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

async fn all_reacted(app: &TestApp, ids: &[String]) {
    for id in ids {
        eventually(Duration::from_secs(20), "the manager and its timer acted", || async {
            (stream(app, id).await.len() >= 3).then_some(())
        })
        .await;
    }
}

fn reactor(ms: i64) -> Vec<Arc<dyn ProcessManager>> {
    vec![Arc::new(Reactor { delay: chrono::TimeDelta::milliseconds(ms) })]
}

#[tokio::test]
async fn a_manager_acts_once_per_event_and_timer_across_a_lost_checkpoint() {
    let app = spawn_app_managing(|_| {}, reactor(200)).await;
    let ids = companies(&app, 3, "pm").await;
    all_reacted(&app, &ids).await;
    let once = ["CompanyCreated", "CompanyRenamed", "CompanyRenamed"];
    for id in &ids {
        assert_eq!(stream(&app, id).await, once);
    }
    // Its commands name the event that caused them and carry the manager's key.
    let (causation, key): (String, String) = sqlx::query_as(
        "SELECT metadata->>'causation_id', metadata->>'idempotency_key' FROM events WHERE aggregate_id = $1 AND sequence = 2",
    )
    .bind(&ids[0])
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let created: String = sqlx::query_scalar(
        "SELECT metadata->>'event_id' FROM events WHERE aggregate_id = $1 AND sequence = 1",
    )
    .bind(&ids[0])
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        (causation.as_str(), key.as_str()),
        (created.as_str(), format!("test_reactor:{created}:0").as_str())
    );

    // The checkpoint is lost (back to the start of the log): every event is handled again,
    // which also sets each timer again (with the same cause), so it fires again — nothing is
    // done twice.
    sqlx::query("UPDATE projection_builds SET last_tx = '0', last_position = 0 WHERE name = 'test_reactor'")
        .execute(&app.pool)
        .await
        .unwrap();
    app.caught_up().await;
    eventually(Duration::from_secs(10), "the timers set again fired", || async {
        let left: i64 =
            sqlx::query_scalar("SELECT count(*) FROM process_timers WHERE manager = 'test_reactor'")
                .fetch_one(&app.pool)
                .await
                .ok()?;
        (left == 0).then_some(())
    })
    .await;
    for id in &ids {
        assert_eq!(stream(&app, id).await, once, "replayed, but each command once");
        let name: String = sqlx::query_scalar("SELECT name FROM company_view WHERE id = $1::uuid")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        assert!(name.ends_with("[seen] [timer]"), "{name}");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn a_timer_survives_a_restart_and_fires_once() {
    let mut app = spawn_app_managing(|_| {}, reactor(1500)).await;
    let ids = companies(&app, 1, "restart").await;
    eventually(Duration::from_secs(10), "the timer is set", || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM process_timers WHERE manager = 'test_reactor'")
            .fetch_one(&app.pool)
            .await
            .ok()?;
        (n == 1).then_some(())
    })
    .await;
    assert_eq!(stream(&app, &ids[0]).await.len(), 2, "not due yet");
    app.stop().await;
    app.start().await;
    all_reacted(&app, &ids).await;
    assert_eq!(stream(&app, &ids[0]).await.len(), 3);
    app.cleanup().await;
}

#[tokio::test]
async fn two_instances_run_one_manager_once() {
    let app = spawn_app_managing(|_| {}, reactor(100)).await;
    let second =
        kraliki_api::Application::build_full(app.settings.clone(), Vec::new(), reactor(100)).await.unwrap();
    let ids = companies(&app, 4, "two").await;
    all_reacted(&app, &ids).await;
    app.caught_up().await;
    for id in &ids {
        assert_eq!(stream(&app, id).await.len(), 3);
    }
    second.stop().await;
    app.cleanup().await;
}

/// A server answers only once every projection and process manager has its build: a manager
/// starting at the head of the log takes the head from before the first request, so a campaign
/// started by the first request is one its dialer sees (however late its runner gets going).
#[tokio::test]
async fn every_manager_has_its_start_before_the_server_answers() {
    let app = kraliki_tests::spawn_app().await;
    let names: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT name FROM projection_builds").fetch_all(&app.pool).await.unwrap();
    for name in kraliki_api::startup::projections(kraliki_projections::publisher::Sink::Local(
        tokio::sync::broadcast::channel(1).0,
    ))
    .iter()
    .map(|p| p.name().to_owned())
    .chain(["campaign_cloner", "agent_timers"].map(String::from))
    {
        assert!(names.contains(&name), "{name} has no build yet: {names:?}");
    }
    app.cleanup().await;
}
