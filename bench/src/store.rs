//! The event store's and the import's figures, each measured side by side with a baseline in one
//! run (the media bridge's are in [`crate::media`]).
//!
//! 1. Appends/s through the command dispatcher with N concurrent writers (projection runners
//!    running, as in production), against pgbench inserting the same row shape into a copy of
//!    the events table with the same number of clients (pgbench runs before and after; the
//!    baseline is their mean). Printed as a ratio.
//! 2. Full-rebuild throughput of the company projection over a log of exactly M events, M/10
//!    companies of 10 events each, interleaved by construction (in a database of its own).
//! 3. Projection lag (command answered → visible in the read model) under a steady rate.
//! 4. Contact import: a CSV of N contacts uploaded over HTTP until every contact is queryable,
//!    against PostgreSQL's `COPY` of the same file into a plain table (the floor for loading
//!    those bytes into this database).
//!
//! Everything runs in a scratch database created on the configured server and dropped after.

use std::collections::BTreeMap;
use std::process::Command as Process;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::Utc;
use clap::Args;
use kraliki_commands::{CommandContext, Dispatcher};
use kraliki_domain::company::{Company, CompanyCommand, CompanyProfile};
use kraliki_domain::user::{User, UserCommand};
use kraliki_domain::values::{CompanyName, Email, PersonName, Role};
use kraliki_projections::company::CompanyProjection;
use kraliki_projections::{builds, position, Projection, Supervisor, Wake};
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use kraliki_api::Settings;

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Measurements")]
pub struct BenchArgs {
    /// Concurrent writers (and pgbench clients).
    #[arg(long, default_value_t = 16)]
    pub writers: usize,
    /// Seconds per append measurement.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Events in the log for the rebuild measurement (a tenth as many companies, 10 events
    /// each).
    #[arg(long, default_value_t = 300_000)]
    pub rebuild_events: i64,
    /// Events per second for the lag measurement.
    #[arg(long, default_value_t = 1000)]
    pub lag_rate: u64,
    /// Seconds of the lag measurement.
    #[arg(long, default_value_t = 10)]
    pub lag_seconds: u64,
    /// Contacts in the import measurement.
    #[arg(long, default_value_t = 100_000)]
    pub import_contacts: usize,
    /// Concurrent calls in the media bridge measurement.
    #[arg(long, default_value_t = 300)]
    pub calls: usize,
    /// Seconds of each media measurement.
    #[arg(long, default_value_t = 10)]
    pub call_seconds: u64,
    /// Which measurements: all, event-store (1–3), rebuild (2), import (4), media (5),
    /// routing (6), pacing (7) or ivr (8).
    #[arg(long, value_enum, default_value_t = Which::All)]
    pub only: Which,
    #[command(flatten)]
    pub routing: crate::routing::RoutingArgs,
    #[command(flatten)]
    pub ivr: crate::ivr::IvrArgs,
    /// Keep the scratch database.
    #[arg(long)]
    pub keep: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    All,
    /// Appends, lag and the rebuild.
    EventStore,
    /// The rebuild alone.
    Rebuild,
    Import,
    Media,
    /// Routing decisions and offers end to end.
    Routing,
    /// The pacing simulation: predictive beside progressive.
    Pacing,
    /// IVR steps over Twilio webhooks.
    Ivr,
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// A writer's i-th command: the company's creation, then renames (one event each).
fn nth_command(label: &str, writer: u64, i: u64) -> anyhow::Result<CompanyCommand> {
    let name = CompanyName::parse(&format!("{label} {writer}-{i}"))?;
    Ok(if i == 0 {
        let profile = CompanyProfile {
            domain: "bench.example".into(),
            size: None,
            industry: None,
            description: None,
            website: None,
        };
        CompanyCommand::CreateCompany { name, profile, at: Utc::now() }
    } else {
        CompanyCommand::RenameCompany { name, at: Utc::now() }
    })
}

fn pgbench_binary() -> Option<String> {
    if Process::new("pgbench").arg("--version").output().is_ok() {
        return Some("pgbench".into());
    }
    let mut found: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin/pgbench"))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop().map(|p| p.display().to_string())
}

fn pgbench(url: &str, clients: usize, seconds: u64) -> anyhow::Result<f64> {
    let bin =
        pgbench_binary().context("pgbench not found (Debian: postgresql-contrib / postgresql-client)")?;
    let script = std::env::temp_dir().join(format!("kraliki-bench-{}.sql", std::process::id()));
    std::fs::write(
        &script,
        "INSERT INTO bench_rows (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('Company', gen_random_uuid()::text, 1, 'CompanyRenamed', '1.0', \
         '{\"CompanyRenamed\":{\"name\":\"Bench 1\",\"previous\":\"Bench 0\",\"at\":\"2026-11-24T09:00:00Z\"}}', \
         '{\"event_id\":\"0193\",\"tenant_id\":\"t\",\"actor\":\"bench\",\"correlation_id\":\"c\",\"causation_id\":\"c\",\"occurred_at\":\"2026-11-24T09:00:00Z\"}');\n",
    )?;
    let out = Process::new(bin)
        .args([
            "-n",
            "-c",
            &clients.to_string(),
            "-j",
            &clients.min(4).to_string(),
            "-T",
            &seconds.to_string(),
            "-f",
        ])
        .arg(&script)
        .arg(url)
        .output()
        .context("running pgbench")?;
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("pgbench failed: {}{}", text, String::from_utf8_lossy(&out.stderr));
    }
    text.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("tps = ")
                .and_then(|r| r.split_whitespace().next())
                .and_then(|n| n.parse().ok())
        })
        .context("pgbench printed no tps")
}

async fn appends(dispatcher: &Dispatcher, writers: usize, seconds: u64) -> anyhow::Result<(f64, Vec<f64>)> {
    let count = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let dispatcher = dispatcher.clone();
        let count = count.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = 0u64;
            let id = Uuid::now_v7().to_string();
            let ctx = CommandContext::new(id.clone(), "bench");
            while Instant::now() < deadline {
                let command = nth_command("Bench", w as u64, i)?;
                let t = Instant::now();
                dispatcher
                    .execute::<Company>(&id, command, &ctx)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                count.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let started = Instant::now();
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    Ok((count.load(Ordering::Relaxed) as f64 / elapsed, latencies))
}

async fn lag(dispatcher: &Dispatcher, wake: &Wake, rate: u64, seconds: u64) -> anyhow::Result<Vec<f64>> {
    let pool = dispatcher.pool().clone();
    let pending: Arc<tokio::sync::Mutex<BTreeMap<kraliki_projections::Position, Instant>>> =
        Default::default();
    let lags: Arc<tokio::sync::Mutex<Vec<f64>>> = Default::default();
    let stop = CancellationToken::new();
    let observer = {
        let (pool, pending, lags, stop, wake) =
            (pool.clone(), pending.clone(), lags.clone(), stop.clone(), wake.clone());
        tokio::spawn(async move {
            let mut projected = wake.subscribe_projected();
            loop {
                let done = stop.is_cancelled();
                if let Ok(Some(at)) =
                    position::active_checkpoint(&pool, kraliki_projections::company::NAME).await
                {
                    let now = Instant::now();
                    let mut p = pending.lock().await;
                    let reached: Vec<_> = p.range(..=at).map(|(k, _)| *k).collect();
                    let mut l = lags.lock().await;
                    for k in reached {
                        if let Some(t0) = p.remove(&k) {
                            l.push(now.duration_since(t0).as_secs_f64() * 1000.0);
                        }
                    }
                    if done && p.is_empty() {
                        break;
                    }
                }
                tokio::select! {
                    _ = projected.changed() => {}
                    _ = tokio::time::sleep(Duration::from_millis(5)) => {}
                }
            }
        })
    };
    // Writers share the rate; each command appends one event.
    let writers = 8u64;
    let interval = Duration::from_secs_f64(writers as f64 / rate as f64);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (dispatcher, pending, pool) = (dispatcher.clone(), pending.clone(), pool.clone());
        tasks.push(tokio::spawn(async move {
            let id = Uuid::now_v7().to_string();
            let ctx = CommandContext::new(id.clone(), "bench");
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut i = 0u64;
            while Instant::now() < deadline {
                ticker.tick().await;
                let command = nth_command("Lag", w, i)?;
                let outcome = dispatcher
                    .execute::<Company>(&id, command, &ctx)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let answered = Instant::now();
                if let Some(pos) = outcome.position {
                    if let Some(at) = position::locate(&pool, pos).await? {
                        pending.lock().await.insert(at, answered);
                    }
                }
                i += 1;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), observer).await.context("projection never caught up")??;
    let mut l = std::mem::take(&mut *lags.lock().await);
    l.sort_by(f64::total_cmp);
    Ok(l)
}

/// Company `n`'s id in the rebuild log (the same in every round).
const COMPANY_ID: &str = "md5('bench company ' || c.n)::uuid::text";

/// Fills the log with `companies` × 10 company events straight through SQL, in ten rounds: round
/// `r` appends event `r` of every company (its creation, then renames), so each company's
/// events are spread over the whole log and a batch of the rebuild touches many companies.
/// Returns the events written.
async fn fill(conn: &mut PgConnection, companies: i64) -> anyhow::Result<i64> {
    let chunk = 10_000i64;
    let mut written = 0;
    for round in 1..=EVENTS_PER_COMPANY {
        let mut start = 0;
        while start < companies {
            let end = (start + chunk).min(companies);
            let sql = format!(
                "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
                 SELECT 'Company', {COMPANY_ID}, $3, \
                        CASE WHEN $3 = 1 THEN 'CompanyCreated' ELSE 'CompanyRenamed' END, '1.0', \
                        CASE WHEN $3 = 1 THEN jsonb_build_object('CompanyCreated', jsonb_build_object( \
                            'name', 'Company ' || c.n, 'domain', 'c' || c.n || '.example', 'size', null, 'industry', null, \
                            'description', null, 'website', null, 'at', '2026-11-24T09:00:00Z')) \
                        ELSE jsonb_build_object('CompanyRenamed', jsonb_build_object('name', 'Company ' || c.n || '/' || $3, \
                            'previous', CASE WHEN $3 = 2 THEN 'Company ' || c.n ELSE 'Company ' || c.n || '/' || ($3 - 1) END, \
                            'at', '2026-11-24T09:00:00Z')) END, \
                        jsonb_build_object('event_id', gen_random_uuid(), 'tenant_id', {COMPANY_ID}, 'actor', 'bench') \
                 FROM generate_series($1::bigint, $2::bigint - 1) AS c(n) ORDER BY c.n"
            );
            let done = sqlx::query(&sql).bind(start).bind(end).bind(round).execute(&mut *conn).await?;
            written += done.rows_affected() as i64;
            start = end;
        }
    }
    Ok(written)
}

const EVENTS_PER_COMPANY: i64 = 10;

/// Creates database `name` on the server of `base` (dropping a leftover of that name).
async fn create_database(admin: &mut PgConnection, name: &str) -> anyhow::Result<()> {
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut *admin).await?;
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut *admin).await?;
    Ok(())
}

/// The configured URL pointed at database `name` (pgbench reads it too: no sqlx-only
/// parameters).
fn url_of(settings: &Settings, name: &str) -> anyhow::Result<String> {
    let mut url = url::Url::parse(settings.database_url.expose_secret()).context("DATABASE_URL")?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}

pub async fn run(settings: Settings, args: BenchArgs) -> anyhow::Result<()> {
    let base: PgConnectOptions = settings.database_url.expose_secret().parse().context("DATABASE_URL")?;
    let scratch = format!("kraliki_bench_{}", std::process::id());
    let rebuild_db = format!("{scratch}_rebuild");
    let mut admin = PgConnection::connect_with(&base.clone().database("postgres")).await?;
    let result = async {
        if matches!(args.only, Which::All | Which::Routing) {
            crate::routing::decisions(&args.routing);
        }
        if matches!(args.only, Which::All | Which::Pacing) {
            crate::pacing::run();
        }
        if !matches!(args.only, Which::Rebuild | Which::Pacing) {
            create_database(&mut admin, &scratch).await?;
            run_in(&settings, &args, &url_of(&settings, &scratch)?).await?;
        }
        if matches!(args.only, Which::All | Which::EventStore | Which::Rebuild) {
            create_database(&mut admin, &rebuild_db).await?;
            rebuild_measurement(&settings, &args, &url_of(&settings, &rebuild_db)?).await?;
        }
        anyhow::Ok(())
    }
    .await;
    if !args.keep {
        for db in [&scratch, &rebuild_db] {
            let _ =
                sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).execute(&mut admin).await;
        }
    }
    result
}

async fn run_in(settings: &Settings, args: &BenchArgs, url: &str) -> anyhow::Result<()> {
    let mut settings = settings.clone();
    settings.database_url = SecretString::from(url.to_owned());
    // A port of its own: a server may be running on the configured one.
    settings.bind = "127.0.0.1:0".parse()?;
    settings.database.max_connections = (args.writers as u32 * 2 + 8).max(24);
    settings.nats_url = None;
    // The benchmark's calls are its own; nothing else dials.
    settings.dialer.enabled = false;
    settings.imports.spool_dir =
        Some(std::env::temp_dir().join(format!("kraliki-bench-{}", std::process::id())));
    let mut echo = if matches!(args.only, Which::All | Which::Media) {
        let echo = crate::media::Echo::start()?;
        echo.configure(&mut settings);
        Some(echo)
    } else {
        None
    };
    if matches!(args.only, Which::All | Which::Ivr) {
        crate::ivr::configure(&mut settings);
        settings.database.max_connections =
            settings.database.max_connections.max(args.ivr.ivr_calls as u32 / 4);
    }
    let app = kraliki_api::Application::build(settings.clone()).await?;
    let measured = async {
        if matches!(args.only, Which::All | Which::Import) {
            import_measurement(&app, args).await?;
        }
        if let Some(echo) = echo.as_mut() {
            crate::media::run(&app, args.calls, args.call_seconds, echo).await?;
        }
        if matches!(args.only, Which::All | Which::EventStore) {
            live_measurements(&app, args, url).await?;
        }
        if matches!(args.only, Which::All | Which::Routing) {
            crate::routing::end_to_end(&app, &args.routing).await?;
        }
        if matches!(args.only, Which::All | Which::Ivr) {
            crate::ivr::run(&app, &args.ivr).await?;
        }
        anyhow::Ok(())
    }
    .await;
    app.stop().await;
    drop(echo);
    measured
}

/// A CSV of `n` distinct, valid contacts (San Francisco numbers, two tags, a custom field).
fn contacts_csv(n: usize) -> String {
    let mut out = String::with_capacity(n * 80 + 64);
    out.push_str("phone_number,first_name,last_name,email,tags,score\n");
    for i in 0..n {
        out.push_str(&format!(
            "+1415{:07},First{i},Last{i},person{i}@example.com,bench;{},{}\n",
            2_000_000 + i,
            if i % 2 == 0 { "even" } else { "odd" },
            i % 100
        ));
    }
    out
}

async fn import_measurement(app: &kraliki_api::Application, args: &BenchArgs) -> anyhow::Result<()> {
    let n = args.import_contacts;
    let csv = contacts_csv(n);
    let pool = app.state().pool.clone();

    // Baseline: COPY of the same bytes into a plain table.
    sqlx::query(
        "CREATE TABLE bench_contacts (phone_number text, first_name text, last_name text, email text, tags text, score text)",
    )
    .execute(&pool)
    .await?;
    let mut conn = pool.acquire().await?;
    let started = Instant::now();
    let mut copy = conn.copy_in_raw("COPY bench_contacts FROM STDIN (FORMAT csv, HEADER true)").await?;
    copy.send(csv.as_bytes()).await?;
    let copied = copy.finish().await?;
    let copy_secs = started.elapsed().as_secs_f64();
    drop(conn);

    // Ours: upload over HTTP, then wait until every contact is in the read model. The caller
    // is a real admin of a real company (the server checks who a token's holder is now).
    let state = app.state();
    let (company, admin) = (Uuid::now_v7(), Uuid::now_v7());
    let ctx = CommandContext::new(company.to_string(), "system:bench");
    let create = CompanyCommand::CreateCompany {
        name: CompanyName::parse("Bench imports")?,
        profile: CompanyProfile {
            domain: "imports.bench.example".into(),
            size: None,
            industry: None,
            description: None,
            website: None,
        },
        at: Utc::now(),
    };
    state
        .dispatcher
        .execute::<Company>(&company.to_string(), create, &ctx)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let register = UserCommand::RegisterUser {
        company_id: company.to_string(),
        email: Email::parse("bench@imports.bench.example")?,
        full_name: PersonName::parse("Bench")?,
        roles: [Role::Admin].into_iter().collect(),
        at: Utc::now(),
    };
    state
        .dispatcher
        .execute::<User>(&admin.to_string(), register, &ctx)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let token = kraliki_api::auth::tokens::issue(
        &state.keys,
        &state.settings.auth,
        admin,
        "bench@imports.bench.example",
        &["admin".to_owned()],
        "admin",
        &company.to_string(),
    )?
    .access_token;
    let client = reqwest::Client::new();
    let started = Instant::now();
    let response = client
        .post(format!("http://{}/api/v1/contacts/import?file_name=bench.csv", app.addr()))
        .bearer_auth(&token)
        .header("content-type", "text/csv")
        .body(csv.clone())
        .send()
        .await?;
    let accepted: serde_json::Value = response.json().await?;
    let id: Uuid = accepted["id"].as_str().context("no import id")?.parse()?;
    let upload_secs = started.elapsed().as_secs_f64();
    let mut status = String::new();
    while started.elapsed() < Duration::from_secs(600) {
        let row = kraliki_projections::contact_import::get_import(&pool, company, id).await?;
        status = row.map(|r| r.status).unwrap_or_default();
        if status == "completed" || status == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if status != "completed" {
        bail!("the import ended as {status:?}");
    }
    let visible: i64 = sqlx::query_scalar("SELECT count(*) FROM contact_view WHERE import_id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await?;
    let secs = started.elapsed().as_secs_f64();
    if visible as usize != n {
        bail!("{visible} of {n} contacts visible after the import");
    }
    println!(
        "import:   {n} contacts imported and queryable in {secs:.2} s ({:.0} contacts/s; upload answered in {upload_secs:.2} s; goal <= 10 s for 100,000)",
        n as f64 / secs
    );
    println!(
        "COPY:     {copied} rows of the same CSV in {copy_secs:.2} s; import takes {:.1}x COPY's time",
        secs / copy_secs
    );
    Ok(())
}

async fn live_measurements(
    app: &kraliki_api::Application,
    args: &BenchArgs,
    url: &str,
) -> anyhow::Result<()> {
    let pool = app.state().pool.clone();
    sqlx::query("CREATE TABLE bench_rows (LIKE events INCLUDING ALL)").execute(&pool).await?;

    // 1. Appends vs pgbench (baseline before and after, averaged).
    let pg_before = pgbench(url, args.writers, args.seconds)?;
    let (ours, latencies) = appends(&app.state().dispatcher, args.writers, args.seconds).await?;
    let pg_after = pgbench(url, args.writers, args.seconds)?;
    let baseline = (pg_before + pg_after) / 2.0;
    println!("appends:  {ours:>9.0} events/s through the dispatcher ({} writers, p50 {:.2} ms, p99 {:.2} ms per command)", args.writers, percentile(&latencies, 50.0), percentile(&latencies, 99.0));
    println!("pgbench:  {baseline:>9.0} inserts/s, same row shape, {} clients (runs: {pg_before:.0}, {pg_after:.0})", args.writers);
    println!("ratio:    {:>9.2} of pgbench (goal >= 0.60)", ours / baseline);

    // 3. Lag under a steady rate (before the big fill, so the runner is warm and current).
    let lags = lag(&app.state().dispatcher, &app.state().wake, args.lag_rate, args.lag_seconds).await?;
    println!("lag:      p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} events at {} events/s (goal p99 <= 100 ms)", percentile(&lags, 50.0), percentile(&lags, 99.0), lags.last().copied().unwrap_or(f64::NAN), lags.len(), args.lag_rate);
    Ok(())
}

async fn rebuild_measurement(settings: &Settings, args: &BenchArgs, url: &str) -> anyhow::Result<()> {
    // 2. Full rebuild, in a database holding exactly the log described.
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(8).connect(url).await?;
    kraliki_api::db::migrate(&pool).await?;
    let companies = (args.rebuild_events / EVENTS_PER_COMPANY).max(1);
    let mut conn = pool.acquire().await?;
    let written = fill(&mut conn, companies).await?;
    drop(conn);
    let (total, first_rounds): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE global_position <= (SELECT min(global_position) + $1 - 1 FROM events) AND sequence = 1) FROM events",
    )
    .bind(companies)
    .fetch_one(&pool)
    .await?;
    if total != written || total != companies * EVENTS_PER_COMPANY || first_rounds != companies {
        bail!("the rebuild log is not {companies} companies x {EVENTS_PER_COMPANY} events in rounds ({total} events)");
    }
    let projection: Arc<dyn Projection> = Arc::new(CompanyProjection);
    let supervisor = Supervisor::new(
        pool.clone(),
        Wake::new(),
        kraliki_api::startup::runner_settings(settings),
        vec![projection.clone()],
    );
    let build = builds::request_rebuild(&pool, projection.as_ref()).await?;
    let stop = CancellationToken::new();
    let started = Instant::now();
    let worker = {
        let (supervisor, projection, build, stop) =
            (supervisor.clone(), projection.clone(), build.clone(), stop.clone());
        tokio::spawn(async move { supervisor.run_build(projection, build, stop).await })
    };
    loop {
        let mut c = pool.acquire().await?;
        let b = builds::get(&mut c, kraliki_projections::company::NAME, build.build_id)
            .await?
            .context("build vanished")?;
        if b.status == builds::BuildStatus::Active {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("rebuild did not finish in 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    stop.cancel();
    let _ = worker.await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM company_view").fetch_one(&pool).await?;
    if rows != companies {
        bail!("the rebuilt company_view has {rows} rows for {companies} companies");
    }
    println!(
        "rebuild:  {:>9.0} events/s ({total} events in {secs:.2} s: {companies} companies x {EVENTS_PER_COMPANY} events, round by round, so each company's events span the whole log; goal >= 50,000)",
        total as f64 / secs
    );
    pool.close().await;
    Ok(())
}
