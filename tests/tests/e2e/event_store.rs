//! The event store under concurrency: gap-free catch-up across a transaction that commits late,
//! exactly-once projection, per-aggregate order, optimistic concurrency.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use kraliki_commands::{CommandContext, DispatchError};
use kraliki_domain::company::{Company, CompanyCommand, CompanyProfile};
use kraliki_domain::values::CompanyName;
use kraliki_tests::{eventually, spawn_app_with, EventLog, EVENT_LOG};
use serde_json::json;
use uuid::Uuid;

pub fn create(name: &str) -> CompanyCommand {
    let profile = CompanyProfile {
        domain: "x.example".into(),
        size: None,
        industry: None,
        description: None,
        website: None,
    };
    CompanyCommand::CreateCompany { name: CompanyName::parse(name).unwrap(), profile, at: Utc::now() }
}

pub fn rename(name: &str) -> CompanyCommand {
    CompanyCommand::RenameCompany { name: CompanyName::parse(name).unwrap(), at: Utc::now() }
}

/// A valid `CompanyCreated` row written straight into the log (bypassing the dispatcher), so a
/// test can hold its transaction open.
pub async fn insert_created(conn: &mut sqlx::PgConnection, id: &str) {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('Company', $1, 1, 'CompanyCreated', '1.0', $2, $3)",
    )
    .bind(id)
    .bind(json!({"CompanyCreated": {"name": "Held", "domain": "held.example", "size": null, "industry": null,
        "description": null, "website": null, "at": "2026-11-24T09:00:00Z"}}))
    .bind(json!({"event_id": Uuid::now_v7().to_string(), "tenant_id": id, "actor": "test"}))
    .execute(conn)
    .await
    .unwrap();
}

#[tokio::test]
async fn concurrent_writers_are_projected_exactly_once_in_order_across_a_late_commit() {
    let app = spawn_app_with(|_| {}, vec![Arc::new(EventLog { gate: None, reads: None })]).await;
    let dispatcher = app.app().state().dispatcher.clone();

    // An earlier transaction (a lower transaction id) that commits only once the others
    // have: when its event is projected, the runner has demonstrably read the log after
    // everything below was committed.
    let early_id = Uuid::now_v7().to_string();
    let mut early = app.pool.begin().await.unwrap();
    insert_created(&mut early, &early_id).await;

    // A transaction takes a low global_position and stays open while others commit after it.
    let held_id = Uuid::now_v7().to_string();
    let mut held = app.pool.begin().await.unwrap();
    insert_created(&mut held, &held_id).await;
    let held_position: i64 = sqlx::query_scalar("SELECT global_position FROM events WHERE aggregate_id = $1")
        .bind(&held_id)
        .fetch_one(&mut *held)
        .await
        .unwrap();

    let writers: Vec<_> = (0..16)
        .map(|w| {
            let dispatcher = dispatcher.clone();
            tokio::spawn(async move {
                let id = Uuid::now_v7().to_string();
                let ctx = CommandContext::new(id.clone(), "test");
                dispatcher.execute::<Company>(&id, create(&format!("W{w}")), &ctx).await.unwrap();
                for i in 0..15 {
                    dispatcher.execute::<Company>(&id, rename(&format!("W{w}-{i}")), &ctx).await.unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let committed = app.count_events().await;
    assert_eq!(committed, 16 * 16, "the held and the early event are not visible yet");
    let later: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE global_position > $1")
        .bind(held_position)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(later > 0, "later transactions drew higher positions and committed first");

    // While it is open the barrier holds: the log projection stops short of it, and the
    // barrier's age is visible.
    early.commit().await.unwrap();
    let status = kraliki_projections::status::read_side(&app.pool, None).await.unwrap();
    assert!(status.barrier_age_ms > 0.0);
    let log_count = |filter: &'static str, bind: String| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(&format!("SELECT count(*) FROM {EVENT_LOG} WHERE {filter}"))
                .bind(bind)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let (past_barrier, early_event) = ("global_position > $1::bigint", "aggregate_id = $1");
    // Wait until the runner has polled since every writer committed: the early event (below
    // the barrier) is projected — or, if the barrier failed, something past it is.
    eventually(Duration::from_secs(30), "the runner reads past the writers' commits", || async {
        let seen = log_count(early_event, early_id.clone()).await
            + log_count(past_barrier, held_position.to_string()).await;
        (seen > 0).then_some(())
    })
    .await;
    let past = log_count(past_barrier, held_position.to_string()).await;
    assert_eq!(past, 0, "nothing committed after the open transaction is projected yet");
    assert_eq!(
        log_count(early_event, early_id.clone()).await,
        1,
        "what is below the barrier is projected meanwhile"
    );
    let writers_in_view: i64 = sqlx::query_scalar("SELECT count(*) FROM company_view WHERE name LIKE 'W%'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(writers_in_view, 0, "the company read model holds at the barrier too");

    held.commit().await.unwrap();
    // The writers' events, the held and the early one, and the test's operator (a fixture user).
    let total = 16 * 16 + 2 + app.fixture_events().await;
    let pool = app.pool.clone();
    eventually(Duration::from_secs(30), "every event projected", || {
        let pool = pool.clone();
        async move {
            let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {EVENT_LOG}"))
                .fetch_one(&pool)
                .await
                .ok()?;
            (n >= total).then_some(())
        }
    })
    .await;
    app.caught_up().await;

    let (rows, distinct): (i64, i64) =
        sqlx::query_as(&format!("SELECT count(*), count(DISTINCT global_position) FROM {EVENT_LOG}"))
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((rows, distinct), (total, total), "each event exactly once, the late one included");
    let out_of_order: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM (SELECT sequence, lag(sequence) OVER (PARTITION BY aggregate_id ORDER BY applied_order) AS prev \
         FROM {EVENT_LOG}) s WHERE prev IS NOT NULL AND sequence <> prev + 1"
    ))
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(out_of_order, 0, "per-aggregate order kept");
    let held_row: i64 = sqlx::query_scalar("SELECT count(*) FROM company_view WHERE id = $1::uuid")
        .bind(&held_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(held_row, 1, "the late commit reached the company read model too");
    app.cleanup().await;
}

#[tokio::test]
async fn conflicting_appends_never_corrupt_a_stream() {
    let app = spawn_app_with(|s| s.projections.run = false, vec![]).await;
    let id = Uuid::now_v7().to_string();
    let ctx = CommandContext::new(id.clone(), "test");
    let dispatcher = app.app().state().dispatcher.clone();
    dispatcher.execute::<Company>(&id, create("Start"), &ctx).await.unwrap();

    // Without retries, racing writers see conflicts (409 at the edge), never a broken stream.
    let strict = dispatcher.clone().with_max_retries(0);
    let racers = (0..12).map(|i| {
        let (strict, id, ctx) = (strict.clone(), id.clone(), ctx.clone());
        tokio::spawn(async move { strict.execute::<Company>(&id, rename(&format!("R{i}")), &ctx).await })
    });
    let results: Vec<_> = futures::future::join_all(racers).await.into_iter().map(|r| r.unwrap()).collect();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let conflicts = results.iter().filter(|r| matches!(r, Err(DispatchError::Conflict))).count();
    assert_eq!(ok + conflicts, 12, "only successes and conflicts: {results:?}");
    assert!(ok >= 1);

    // With bounded retries, commands that are safe to re-decide all get through: each lost race
    // is another racer's win, so 6 racers lose at most 5 times, the default retry budget.
    let racers = (0..6).map(|i| {
        let (dispatcher, id, ctx) = (dispatcher.clone(), id.clone(), ctx.clone());
        tokio::spawn(async move { dispatcher.execute::<Company>(&id, rename(&format!("S{i}")), &ctx).await })
    });
    for r in futures::future::join_all(racers).await {
        r.unwrap().unwrap();
    }
    let sequences: Vec<i64> =
        sqlx::query_scalar("SELECT sequence FROM events WHERE aggregate_id = $1 ORDER BY sequence")
            .bind(&id)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    let expected: Vec<i64> = (1..=(1 + ok as i64 + 6)).collect();
    assert_eq!(sequences, expected, "contiguous, no gaps, no duplicates");
    let (state, version) = dispatcher.load::<Company>(&id).await.unwrap();
    assert_eq!(version, 1 + ok as i64 + 6);
    assert!(state.name.starts_with('S'));
    app.cleanup().await;
}

#[tokio::test]
async fn dispatchers_of_two_processes_see_each_others_appends() {
    // Each dispatcher caches the aggregates it loaded; another process's appends must be caught
    // up before deciding, not discovered as conflicts.
    let app = spawn_app_with(|s| s.projections.run = false, vec![]).await;
    let state = app.app().state();
    let here = state.dispatcher.clone().with_max_retries(0);
    let there = kraliki_commands::Dispatcher::new(app.pool.clone(), state.wake.clone()).with_max_retries(0);
    let id = Uuid::now_v7().to_string();
    let ctx = CommandContext::new(id.clone(), "test");
    here.execute::<Company>(&id, create("P0"), &ctx).await.unwrap();
    for i in 1..=10 {
        let (who, other) = if i % 2 == 0 { (&here, "here") } else { (&there, "there") };
        let outcome = who.execute::<Company>(&id, rename(&format!("P{i} {other}")), &ctx).await.unwrap();
        assert_eq!(outcome.version, i + 1);
    }
    let (state, version) = here.load::<Company>(&id).await.unwrap();
    assert_eq!((state.name.as_str(), version), ("P10 here", 11));
    // A rename to the current name is a no-op on the caught-up state, in both processes.
    assert_eq!(there.execute::<Company>(&id, rename("P10 here"), &ctx).await.unwrap().events, 0);
    app.cleanup().await;
}
