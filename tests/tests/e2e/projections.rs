//! Projection runs, crashes and rebuilds: a runner aborted mid-batch resumes to the same read
//! model a rebuild gives; a rebuild under writes switches over without readers ever seeing a
//! half-built model; a graceful stop finishes the batch in flight.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use kraliki_commands::CommandContext;
use kraliki_domain::company::Company;
use kraliki_domain::team::{Team, TeamCommand, TeamSettings};
use kraliki_projections::builds::{self, BuildStatus};
use kraliki_projections::{position, EventFilter, Position, Projection, RunnerSettings, Supervisor};
use kraliki_tests::{eventually, spawn_app_with, EventLog, Gate, TestApp, EVENT_LOG};
use reqwest::StatusCode;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::event_store::{create, rename};

async fn write_companies(app: &TestApp, companies: usize, renames: usize) -> Vec<String> {
    let dispatcher = app.app().state().dispatcher.clone();
    let mut ids = Vec::new();
    for c in 0..companies {
        let id = Uuid::now_v7().to_string();
        let ctx = CommandContext::new(id.clone(), "test");
        dispatcher.execute::<Company>(&id, create(&format!("C{c}")), &ctx).await.unwrap();
        for r in 0..renames {
            dispatcher.execute::<Company>(&id, rename(&format!("C{c}-{r}")), &ctx).await.unwrap();
        }
        ids.push(id);
    }
    ids
}

async fn rows(app: &TestApp, sql: &str) -> Vec<Value> {
    sqlx::query_scalar::<_, Value>(&format!("SELECT to_jsonb(t) FROM ({sql}) t"))
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

async fn build_of(app: &TestApp, name: &str, build_id: i32) -> builds::Build {
    let mut conn = app.pool.acquire().await.unwrap();
    builds::get(&mut conn, name, build_id).await.unwrap().expect("build exists")
}

async fn wait_active(app: &TestApp, name: &str, build_id: i32) {
    let pool = app.pool.clone();
    eventually(Duration::from_secs(60), "the build serves reads", || {
        let pool = pool.clone();
        async move {
            let mut conn = pool.acquire().await.ok()?;
            let b = builds::get(&mut conn, name, build_id).await.ok()??;
            (b.status == BuildStatus::Active).then_some(())
        }
    })
    .await;
}

/// The newest event below the barrier, as the runner's checkpoint names it.
async fn head(app: &TestApp) -> Position {
    let (tx, pos): (i64, i64) = sqlx::query_as(
        "SELECT tx_id::text::bigint, global_position FROM events ORDER BY tx_id DESC, global_position DESC LIMIT 1",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    Position { tx, pos }
}

/// Whether the build's checkpoint is the newest event.
async fn at_head(app: &TestApp, build_id: i32) -> Option<()> {
    let target = head(app).await;
    (build_of(app, EVENT_LOG, build_id).await.checkpoint == target).then_some(())
}

#[tokio::test]
async fn a_runner_reads_only_what_its_projection_wants_and_moves_over_the_rest() {
    let app = spawn_app_with(|s| s.projections.run = false, vec![]).await;
    write_companies(&app, 5, 4).await;
    let projection: Arc<dyn Projection> =
        Arc::new(EventLog { gate: None, reads: Some(EventFilter::events("Company", &["CompanyCreated"])) });
    // Batches smaller than what it wants: a full batch stops at its last event, not the head.
    // No poll and no end to a linger: after a partial batch the runner reads again only when a
    // reader waiting for it hurries it; once idle, only when something it reads is appended.
    let settings = RunnerSettings {
        batch_size: 2,
        rebuild_batch_size: 2,
        poll_interval: Duration::from_secs(3600),
        linger: Duration::from_secs(3600),
        ..RunnerSettings::default()
    };
    let state = app.app().state();
    let supervisor =
        Supervisor::new(app.pool.clone(), state.wake.clone(), settings, vec![projection.clone()]);
    let build = builds::ensure(&app.pool, projection.as_ref()).await.unwrap().pop().unwrap();
    let stop = CancellationToken::new();
    let run = {
        let (s, p, b, stop) = (supervisor.clone(), projection.clone(), build.clone(), stop.clone());
        tokio::spawn(async move { s.run_build(p, b, stop).await })
    };
    let wanted = || async {
        rows(&app, "SELECT global_position FROM events WHERE event_type = 'CompanyCreated' ORDER BY tx_id, global_position").await
    };
    let applied = || async {
        rows(&app, &format!("SELECT global_position FROM {EVENT_LOG} ORDER BY applied_order")).await
    };
    let build_id = build.build_id;
    eventually(Duration::from_secs(20), "the runner reaches the head of the log", || at_head(&app, build_id))
        .await;
    wait_active(&app, EVENT_LOG, build_id).await;
    let expected = wanted().await;
    assert!(expected.len() >= 5);
    assert_eq!(applied().await, expected, "exactly the events it wants, in log order, once each");

    // Events it does not want move its checkpoint (a read waiting on them returns) and nothing
    // else.
    let dispatcher = state.dispatcher.clone();
    let company = Uuid::now_v7().to_string();
    let ctx = CommandContext::new(company.clone(), "test");
    dispatcher.execute::<Company>(&company, create("Late"), &ctx).await.unwrap();
    let last = dispatcher.execute::<Company>(&company, rename("Late 2"), &ctx).await.unwrap();
    assert_eq!(build_of(&app, EVENT_LOG, build.build_id).await.status, BuildStatus::Active);
    let last = last.position.expect("a rename appends");
    position::wait_for(&app.pool, &state.wake, EVENT_LOG, last, Duration::from_secs(20))
        .await
        .expect("the checkpoint moves over an event it does not read");
    eventually(Duration::from_secs(20), "the runner reaches the new head", || at_head(&app, build_id)).await;
    assert_eq!(applied().await, wanted().await);
    assert_eq!(applied().await.len(), expected.len() + 1);

    // An append of a type it does not read does not wake it: its checkpoint stays behind, and
    // a read waiting on that append returns all the same (nothing it reads lies in between).
    let before = build_of(&app, EVENT_LOG, build_id).await.checkpoint;
    let team = Uuid::now_v7().to_string();
    let settings = TeamSettings { name: "Ignored".into(), ..TeamSettings::default() };
    let ignored = dispatcher
        .execute::<Team>(&team, TeamCommand::CreateTeam { settings, at: chrono::Utc::now() }, &ctx)
        .await
        .unwrap()
        .position
        .expect("a team appends");
    position::wait_for(&app.pool, &state.wake, EVENT_LOG, ignored, Duration::from_secs(20))
        .await
        .expect("a read model behind only on what it ignores is not behind");
    assert_eq!(build_of(&app, EVENT_LOG, build_id).await.checkpoint, before, "the runner slept through it");
    // Its lag counts what it reads: none (every event, as a rebuild's progress counts: one).
    let lag = |status: kraliki_projections::status::ReadSideStatus| {
        let build = status.builds.into_iter().find(|b| b.build.name == EVENT_LOG).expect("the build");
        build.lag_events
    };
    let reads = kraliki_projections::status::read_side(&app.pool, Some(&state.wake)).await.unwrap();
    assert_eq!(lag(reads), 0, "behind on nothing it reads");
    let all = kraliki_projections::status::read_side(&app.pool, None).await.unwrap();
    assert_eq!(lag(all), 1, "one event of the log after its checkpoint");
    // A read waiting for what it reads gets it, and the checkpoint moves over both.
    let later =
        dispatcher.execute::<Company>(&Uuid::now_v7().to_string(), create("Later"), &ctx).await.unwrap();
    let later = later.position.expect("a company appends");
    position::wait_for(&app.pool, &state.wake, EVENT_LOG, later, Duration::from_secs(20))
        .await
        .expect("the runner reads what it reads");
    assert!(at_head(&app, build_id).await.is_some());
    assert_eq!(applied().await, wanted().await);
    stop.cancel();
    run.await.unwrap();
    app.cleanup().await;
}

#[tokio::test]
async fn a_runner_aborted_mid_batch_resumes_to_what_a_rebuild_gives() {
    // Runners are driven by the test here, not by the server.
    let app = spawn_app_with(|s| s.projections.run = false, vec![]).await;
    write_companies(&app, 20, 4).await;
    let gate = Arc::new(Gate::default());
    gate.armed.store(true, Ordering::SeqCst);
    let projection: Arc<dyn Projection> = Arc::new(EventLog { gate: Some(gate.clone()), reads: None });
    let settings = RunnerSettings { batch_size: 40, rebuild_batch_size: 40, ..RunnerSettings::default() };
    let state = app.app().state();
    let supervisor =
        Supervisor::new(app.pool.clone(), state.wake.clone(), settings, vec![projection.clone()]);
    let build = builds::ensure(&app.pool, projection.as_ref()).await.unwrap().pop().unwrap();

    // The runner writes its first batch and is killed before it commits.
    let held = gate.held.notified();
    let run = {
        let (s, p, b) = (supervisor.clone(), projection.clone(), build.clone());
        tokio::spawn(async move { s.run_build(p, b, CancellationToken::new()).await })
    };
    held.await;
    run.abort();
    let _ = run.await;
    let table = format!("{EVENT_LOG}_b{}", build.build_id);
    let pool = app.pool.clone();
    let t = table.clone();
    eventually(Duration::from_secs(10), "the aborted batch rolls back and its lock is released", || {
        let (pool, t) = (pool.clone(), t.clone());
        async move {
            let n: i64 =
                sqlx::query_scalar(&format!("SELECT count(*) FROM {t}")).fetch_one(&pool).await.ok()?;
            let locked: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            )
            .fetch_one(&pool)
            .await
            .ok()?;
            (n == 0 && locked == 0).then_some(())
        }
    })
    .await;
    assert_eq!(build_of(&app, EVENT_LOG, build.build_id).await.checkpoint.pos, 0, "checkpoint did not move");

    // Restarted, it finishes from where the last commit left it.
    gate.armed.store(false, Ordering::SeqCst);
    gate.open.add_permits(1);
    let stop = CancellationToken::new();
    let run = {
        let (s, p, b, stop) = (supervisor.clone(), projection.clone(), build.clone(), stop.clone());
        tokio::spawn(async move { s.run_build(p, b, stop).await })
    };
    wait_active(&app, EVENT_LOG, build.build_id).await;
    // It serves from the head of the log as it stood (transactions of other databases in
    // flight can hold the barrier back) and goes on to the end.
    let expected = 100 + app.fixture_events().await;
    let resumed = eventually(Duration::from_secs(10), "the resumed runner reaches the end", || async {
        let r = rows(&app, &format!("SELECT global_position, aggregate_id, sequence, event_id FROM {EVENT_LOG} ORDER BY global_position")).await;
        (r.len() as i64 == expected).then_some(r)
    })
    .await;
    assert_eq!(resumed.len() as i64, expected);

    // A rebuild from scratch gives the same read model.
    let rebuild = builds::request_rebuild(&app.pool, projection.as_ref()).await.unwrap();
    let stop2 = CancellationToken::new();
    let run2 = {
        let (s, p, b, stop) = (supervisor.clone(), projection.clone(), rebuild.clone(), stop2.clone());
        tokio::spawn(async move { s.run_build(p, b, stop).await })
    };
    wait_active(&app, EVENT_LOG, rebuild.build_id).await;
    let rebuilt = rows(&app, &format!("SELECT global_position, aggregate_id, sequence, event_id FROM {EVENT_LOG} ORDER BY global_position")).await;
    assert_eq!(resumed, rebuilt);
    let pool = app.pool.clone();
    eventually(Duration::from_secs(20), "the retired build's table is dropped", || {
        let (pool, table) = (pool.clone(), table.clone());
        async move {
            let old: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
                .bind(&table)
                .fetch_one(&pool)
                .await
                .ok()?;
            old.is_none().then_some(())
        }
    })
    .await;
    stop.cancel();
    stop2.cancel();
    let _ = tokio::join!(run, run2);
    app.cleanup().await;
}

#[tokio::test]
async fn a_rebuild_under_writes_switches_over_without_readers_seeing_a_partial_model() {
    let app = spawn_app_with(
        |s| {
            s.projections.batch_size = 200;
            s.projections.rebuild_batch_size = 200;
        },
        vec![],
    )
    .await;
    let ids = write_companies(&app, 300, 3).await;
    app.caught_up().await;

    // Writers keep going during the rebuild; a reader checks the model never shrinks.
    let stop = CancellationToken::new();
    let writer = {
        let dispatcher = app.app().state().dispatcher.clone();
        let stop = stop.clone();
        let ids = ids.clone();
        tokio::spawn(async move {
            let mut created = Vec::new();
            let mut i = 0;
            while !stop.is_cancelled() {
                let id = Uuid::now_v7().to_string();
                let ctx = CommandContext::new(id.clone(), "test");
                dispatcher.execute::<Company>(&id, create(&format!("Live {i}")), &ctx).await.unwrap();
                let old = &ids[i % ids.len()];
                let ctx = CommandContext::new(old.clone(), "test");
                dispatcher.execute::<Company>(old, rename(&format!("Renamed {i}")), &ctx).await.unwrap();
                created.push(id);
                i += 1;
            }
            created
        })
    };
    let reader = {
        let pool = app.pool.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut last, mut reads) = (0i64, 0u64);
            while !stop.is_cancelled() {
                let n: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM company_view").fetch_one(&pool).await.unwrap();
                assert!(n >= last, "the read model shrank from {last} to {n}: a partial build was served");
                last = n;
                reads += 1;
            }
            reads
        })
    };
    let r = app.client.post(app.url("/api/v1/admin/projections/company_view/rebuild")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let build: Value = r.json().await.unwrap();
    let build_id = build["build_id"].as_i64().unwrap() as i32;
    let first: i32 =
        sqlx::query_scalar("SELECT min(build_id) FROM projection_builds WHERE name = 'company_view'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(build_id > first, "a new build: {build_id} after {first}");
    let r: Value =
        app.client.get(app.url("/api/v1/admin/projections")).send().await.unwrap().json().await.unwrap();
    assert!(
        r["builds"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["build_id"] == build_id && b["name"] == "company_view"),
        "{r}"
    );
    wait_active(&app, "company_view", build_id).await;
    stop.cancel();
    let live = writer.await.unwrap();
    assert!(reader.await.unwrap() > 0);
    assert!(!live.is_empty());
    app.caught_up().await;

    // The rebuilt table got the template's indexes (the secondary ones after catching up).
    let rebuilt = format!("company_view_b{build_id}");
    let indexes = |t: String| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM pg_indexes WHERE tablename = $1")
                .bind(t)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(indexes(rebuilt).await, indexes("company_view_template".into()).await);
    // The rebuilt model equals the state the aggregates decide from.
    let dispatcher = app.app().state().dispatcher.clone();
    let view =
        rows(&app, "SELECT id::text AS id, name, is_active, version FROM company_view ORDER BY id").await;
    assert_eq!(view.len(), ids.len() + live.len());
    for row in view {
        let id = row["id"].as_str().unwrap();
        let (company, version) = dispatcher.load::<Company>(id).await.unwrap();
        assert_eq!(row["name"], company.name.as_str(), "{id}");
        assert_eq!(row["is_active"], company.is_active);
        assert_eq!(row["version"], version);
    }
    let pool = app.pool.clone();
    let retired = format!("company_view_b{first}");
    eventually(Duration::from_secs(20), "the retired build's table is dropped", || {
        let (pool, retired) = (pool.clone(), retired.clone());
        async move {
            let old: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
                .bind(retired)
                .fetch_one(&pool)
                .await
                .ok()?;
            old.is_none().then_some(())
        }
    })
    .await;
    app.cleanup().await;
}

#[tokio::test]
async fn a_graceful_stop_finishes_the_batch_in_flight() {
    let gate = Arc::new(Gate::default());
    let mut app =
        spawn_app_with(|_| {}, vec![Arc::new(EventLog { gate: Some(gate.clone()), reads: None })]).await;
    app.caught_up().await;
    gate.armed.store(true, Ordering::SeqCst);
    let held = gate.held.notified();
    // Three events in one transaction, so they arrive in one batch.
    let mut tx = app.pool.begin().await.unwrap();
    for _ in 0..3 {
        crate::event_store::insert_created(&mut tx, &Uuid::now_v7().to_string()).await;
    }
    tx.commit().await.unwrap();
    app.app().state().wake.appended();
    held.await;
    let stopping = {
        let app = app.app.take().unwrap();
        tokio::spawn(async move { app.stop().await })
    };
    // The stop waits for the held batch; let it finish.
    tokio::task::yield_now().await;
    assert!(!stopping.is_finished());
    gate.armed.store(false, Ordering::SeqCst);
    gate.open.add_permits(1);
    tokio::time::timeout(Duration::from_secs(20), stopping).await.expect("stop completes").unwrap();
    let n: i64 =
        sqlx::query_scalar(&format!("SELECT count(*) FROM {EVENT_LOG}")).fetch_one(&app.pool).await.unwrap();
    assert_eq!(n, 3 + app.fixture_events().await, "the batch in flight was committed, not dropped");
    let checkpoint: i64 = sqlx::query_scalar(
        "SELECT last_position FROM projection_builds WHERE name = $1 AND status = 'active'",
    )
    .bind(EVENT_LOG)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let max: i64 =
        sqlx::query_scalar("SELECT max(global_position) FROM events").fetch_one(&app.pool).await.unwrap();
    assert_eq!(checkpoint, max);
    app.cleanup().await;
}
