//! Test support: a fresh Postgres database per test, the real server on port 0, NATS with a
//! subject prefix and stream per test, and polling with deadlines (never sleep-and-hope).

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kraliki_api::config::{LogFormat, NatsSettings};
use kraliki_api::{Application, Settings};
use kraliki_domain::values::Role;
use kraliki_projections::{BuildTables, Projection, StoredEvent};
use secrecy::SecretString;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use tokio::sync::Semaphore;
use uuid::Uuid;

/// Admin URL of the server tests create their databases on.
pub fn admin_url() -> String {
    std::env::var("KRALIKI_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

pub fn nats_url() -> String {
    std::env::var("KRALIKI_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A unique name per test: `<prefix>_<pid>_<n>`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Databases of earlier runs (other pids) are dropped once per process.
async fn sweep(admin: &mut PgConnection) {
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    SWEPT
        .get_or_init(|| async {
            let mine = format!("kraliki_test_{}_%", std::process::id());
            let stale: Vec<String> = sqlx::query_scalar(
                "SELECT datname FROM pg_database WHERE datname LIKE 'kraliki\\_test\\_%' AND datname NOT LIKE $1",
            )
            .bind(mine)
            .fetch_all(&mut *admin)
            .await
            .unwrap_or_default();
            for db in stale {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).execute(&mut *admin).await;
            }
        })
        .await;
}

/// Creating databases concurrently contends on the template; a few at a time is faster.
static CREATE: Semaphore = Semaphore::const_new(4);

pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn create() -> Self {
        let _permit = CREATE.acquire().await.expect("semaphore");
        let admin: PgConnectOptions = admin_url().parse().expect("KRALIKI_TEST_DATABASE_URL");
        let mut conn = PgConnection::connect_with(&admin).await.expect("connect to the test PostgreSQL");
        sweep(&mut conn).await;
        let name = unique("kraliki_test");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let url = admin.database(&name).to_url_lossy().to_string();
        Self { name, url }
    }

    pub async fn drop_now(&self) {
        let admin: PgConnectOptions = admin_url().parse().expect("admin url");
        if let Ok(mut conn) = PgConnection::connect_with(&admin).await {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
                .execute(&mut conn)
                .await;
        }
    }
}

#[allow(clippy::field_reassign_with_default)] // reads better as "defaults, then these"
pub fn test_settings(db: &TestDb) -> Settings {
    let mut s = Settings::default();
    s.bind = "127.0.0.1:0".parse().expect("addr");
    s.database_url = SecretString::from(db.url.clone());
    s.nats_url = None;
    s.log_format = LogFormat::Text;
    s.log_level = "warn".into();
    s.database.max_connections = 20;
    s.projections.poll_interval_ms = 200;
    s.http.read_wait_max_ms = 10_000;
    s.data_dir = std::env::temp_dir().join(&db.name);
    // The lowest bcrypt cost: tests check behaviour, not hashing strength.
    s.auth.bcrypt_cost = 4;
    // Calls are placed by hand in tests; the dialer's own test turns it on.
    s.dialer.enabled = false;
    s
}

/// Per-test NATS names: a subject prefix and a stream of their own.
pub fn test_nats(settings: &mut Settings) -> NatsSettings {
    let id = unique("t");
    let nats = NatsSettings {
        subject_prefix: format!("{id}.kraliki.events"),
        stream: format!("KRALIKI_{}", id.to_uppercase()),
    };
    settings.nats_url = Some(nats_url());
    settings.nats = nats.clone();
    nats
}

pub struct TestApp {
    pub app: Option<Application>,
    pub base: String,
    /// Sends a platform operator's bearer token.
    pub client: reqwest::Client,
    /// Sends no credentials.
    pub anon: reqwest::Client,
    /// The company of `client`'s operator (their idempotency-key scope).
    pub operator_company: Uuid,
    pub pool: PgPool,
    pub db: TestDb,
    pub settings: Settings,
    pub extra: Vec<Arc<dyn Projection>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}, Vec::new()).await
}

/// The real server on port 0 against a fresh database, with optional settings changes and extra
/// projections.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Settings), extra: Vec<Arc<dyn Projection>>) -> TestApp {
    let db = TestDb::create().await;
    let mut settings = test_settings(&db);
    tweak(&mut settings);
    kraliki_api::telemetry::init_logging(&settings);
    let pool = PgPoolOptions::new().max_connections(10).connect(&db.url).await.expect("test pool");
    kraliki_api::db::migrate(&pool).await.expect("migrations");
    create_test_templates(&pool).await;
    let app = Application::build_with(settings.clone(), extra.clone()).await.expect("application starts");
    let base = format!("http://{}", app.addr());
    let operator_company = Uuid::now_v7();
    let operator = mint(&app, &[Role::PlatformOperator], Uuid::now_v7(), operator_company);
    let client = client_with(&operator);
    TestApp {
        app: Some(app),
        base,
        client,
        anon: reqwest::Client::new(),
        operator_company,
        pool,
        db,
        settings,
        extra,
    }
}

/// A client that sends `token` as its bearer token.
pub fn client_with(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).expect("header");
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder().default_headers(headers).build().expect("client")
}

/// A valid access token signed by the app's own key, for a (possibly synthetic) user.
pub fn mint(app: &Application, roles: &[Role], user_id: Uuid, company_id: Uuid) -> String {
    let state = app.state();
    let names: Vec<String> = roles.iter().map(|r| r.as_str().to_owned()).collect();
    let top = roles.iter().max().map(|r| r.as_str()).unwrap_or("agent");
    let issued = kraliki_api::auth::tokens::issue(
        &state.keys,
        &state.settings.auth,
        user_id,
        "someone@example.com",
        &names,
        top,
        &company_id.to_string(),
    )
    .expect("token");
    issued.access_token
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn app(&self) -> &Application {
        self.app.as_ref().expect("running")
    }

    /// Graceful stop (in-flight batches finish).
    pub async fn stop(&mut self) {
        if let Some(app) = self.app.take() {
            app.stop().await;
        }
    }

    /// Starts the server again on the same database (a restart).
    pub async fn start(&mut self) {
        assert!(self.app.is_none(), "already running");
        let app = Application::build_with(self.settings.clone(), self.extra.clone()).await.expect("restart");
        self.base = format!("http://{}", app.addr());
        self.app = Some(app);
    }

    pub async fn cleanup(mut self) {
        self.stop().await;
        self.pool.close().await;
        self.db.drop_now().await;
    }

    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.client.post(self.url(path)).json(&body).send().await.expect("request")
    }

    /// A client acting as a user with these roles in `company_id`.
    pub fn as_user(&self, roles: &[Role], company_id: Uuid) -> reqwest::Client {
        client_with(&mint(self.app(), roles, Uuid::now_v7(), company_id))
    }

    pub async fn count_events(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&self.pool).await.expect("count")
    }

    /// Waits until every serving build has applied everything in the log.
    pub async fn caught_up(&self) {
        let pool = self.pool.clone();
        eventually(Duration::from_secs(30), "projections catch up", || {
            let pool = pool.clone();
            async move {
                let status = kraliki_projections::status::read_side(&pool).await.ok()?;
                let active: Vec<_> = status
                    .builds
                    .iter()
                    .filter(|b| b.build.status == kraliki_projections::builds::BuildStatus::Active)
                    .collect();
                // Every projection serving (none still on its first build), none behind.
                let names = |builds: &[&kraliki_projections::status::BuildStatusReport]| {
                    builds.iter().map(|b| b.build.name.clone()).collect::<std::collections::BTreeSet<_>>()
                };
                let all: Vec<_> = status.builds.iter().collect();
                (!active.is_empty()
                    && names(&all) == names(&active)
                    && active.iter().all(|b| b.lag_events == 0))
                .then_some(())
            }
        })
        .await;
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` at the deadline.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Schema of the test-only projection below (test schema lives with the tests).
async fn create_test_templates(pool: &PgPool) {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS test_event_log_template (
            applied_order bigint GENERATED ALWAYS AS IDENTITY,
            global_position bigint NOT NULL,
            aggregate_id text NOT NULL,
            sequence bigint NOT NULL,
            event_id text NOT NULL
        )",
    )
    .execute(pool)
    .await
    .expect("test template");
}

/// A projection that records every event it applies, in the order applied: "exactly once" and
/// "in order" become countable. An optional gate holds a batch open mid-transaction.
pub struct EventLog {
    pub gate: Option<Arc<Gate>>,
}

/// Holds `apply` after it wrote its rows, until opened; tells when a batch is held.
pub struct Gate {
    pub held: tokio::sync::Notify,
    pub open: tokio::sync::Semaphore,
    pub armed: std::sync::atomic::AtomicBool,
}

impl Default for Gate {
    fn default() -> Self {
        Self { held: Default::default(), open: Semaphore::new(0), armed: Default::default() }
    }
}

pub const EVENT_LOG: &str = "test_event_log";

#[async_trait]
impl Projection for EventLog {
    fn name(&self) -> &'static str {
        EVENT_LOG
    }
    fn version(&self) -> i32 {
        1
    }
    fn tables(&self) -> &'static [&'static str] {
        &[EVENT_LOG]
    }
    async fn apply(
        &self,
        conn: &mut PgConnection,
        tables: &BuildTables,
        events: &[StoredEvent],
    ) -> anyhow::Result<()> {
        let table = tables.get(EVENT_LOG);
        for e in events {
            sqlx::query(&format!(
                "INSERT INTO {table} (global_position, aggregate_id, sequence, event_id) VALUES ($1, $2, $3, $4)"
            ))
            .bind(e.global_position)
            .bind(&e.aggregate_id)
            .bind(e.sequence)
            .bind(e.meta("event_id").unwrap_or_default())
            .execute(&mut *conn)
            .await?;
        }
        if let Some(gate) = &self.gate {
            if gate.armed.load(Ordering::SeqCst) {
                gate.held.notify_one();
                gate.open.acquire().await?.forget();
            }
        }
        Ok(())
    }
}
