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
use kraliki_projections::{BuildTables, EventFilter, Projection, StoredEvent};
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

/// Whether the test process that named a database `kraliki_test_<pid>_<n>` has ended (another
/// run's databases, on a server several checkouts share, are left alone while it runs).
fn stale(db: &str) -> bool {
    let pid = db.strip_prefix("kraliki_test_").and_then(|rest| rest.split('_').next());
    match pid.and_then(|p| p.parse::<u32>().ok()) {
        Some(pid) => !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        None => false,
    }
}

/// Databases of earlier runs (other pids, no longer running) are dropped once per process.
async fn sweep(admin: &mut PgConnection) {
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    SWEPT
        .get_or_init(|| async {
            let mine = format!("kraliki_test_{}_%", std::process::id());
            let others: Vec<String> = sqlx::query_scalar(
                "SELECT datname FROM pg_database WHERE datname LIKE 'kraliki\\_test\\_%' AND datname NOT LIKE $1",
            )
            .bind(mine)
            .fetch_all(&mut *admin)
            .await
            .unwrap_or_default();
            for db in others.into_iter().filter(|db| stale(db)) {
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
    s.database.max_connections = 12;
    s.projections.poll_interval_ms = 200;
    s.http.read_wait_max_ms = 10_000;
    s.data_dir = std::env::temp_dir().join(&db.name);
    // The lowest bcrypt cost: tests check behaviour, not hashing strength.
    s.auth.bcrypt_cost = 4;
    // Calls are placed by hand in tests; the dialer's own test turns it on.
    s.dialer.enabled = false;
    s
}

/// Per-test NATS names: a subject prefix and a stream of their own, with a 1 s duplicate window.
pub fn test_nats(settings: &mut Settings) -> NatsSettings {
    let id = unique("t");
    let nats = NatsSettings {
        subject_prefix: format!("{id}.kraliki.events"),
        stream: format!("KRALIKI_{}", id.to_uppercase()),
        // Far shorter than any test: JetStream's own de-duplication cannot hide a duplicate
        // that our publisher sends; only the publisher's skip logic keeps it exactly once.
        duplicate_window_secs: 1,
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
    pub managers: Vec<Arc<dyn kraliki_commands::ProcessManager>>,
    pub fixtures: Fixtures,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}, Vec::new()).await
}

/// The real server on port 0 against a fresh database, with optional settings changes and extra
/// projections.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Settings), extra: Vec<Arc<dyn Projection>>) -> TestApp {
    spawn_app_in(TestDb::create().await, tweak, extra).await
}

/// The real server with extra process managers run beside the built-in ones.
pub async fn spawn_app_managing(
    tweak: impl FnOnce(&mut Settings),
    managers: Vec<Arc<dyn kraliki_commands::ProcessManager>>,
) -> TestApp {
    let mut app = TestApp::start_on(TestDb::create().await, tweak, Vec::new(), managers).await;
    app.fixtures_ready().await;
    app
}

/// The real server on a database the test made itself (e.g. on a [`PrivatePostgres`]).
pub async fn spawn_app_in(
    db: TestDb,
    tweak: impl FnOnce(&mut Settings),
    extra: Vec<Arc<dyn Projection>>,
) -> TestApp {
    let mut app = TestApp::start_on(db, tweak, extra, Vec::new()).await;
    app.fixtures_ready().await;
    app
}

impl TestApp {
    async fn start_on(
        db: TestDb,
        tweak: impl FnOnce(&mut Settings),
        extra: Vec<Arc<dyn Projection>>,
        managers: Vec<Arc<dyn kraliki_commands::ProcessManager>>,
    ) -> TestApp {
        let mut settings = test_settings(&db);
        tweak(&mut settings);
        kraliki_api::telemetry::init_logging(&settings);
        let pool = PgPoolOptions::new().max_connections(10).connect(&db.url).await.expect("test pool");
        kraliki_api::db::migrate(&pool).await.expect("migrations");
        create_test_templates(&pool).await;
        let app = Application::build_full(settings.clone(), extra.clone(), managers.clone())
            .await
            .expect("application starts");
        let base = format!("http://{}", app.addr());
        TestApp {
            app: Some(app),
            base,
            client: reqwest::Client::new(),
            anon: reqwest::Client::new(),
            operator_company: Uuid::now_v7(),
            pool,
            db,
            settings,
            extra,
            managers,
            fixtures: Fixtures::default(),
        }
    }

    /// The platform operator `client` acts as.
    async fn fixtures_ready(&mut self) {
        let operator_id =
            self.fixtures.principal(self.app(), &[Role::PlatformOperator], self.operator_company).await;
        self.client =
            client_with(&mint(self.app(), &[Role::PlatformOperator], operator_id, self.operator_company));
    }
}

/// The companies and users tests act as. They are real (a token carries identity only; the
/// server reads the caller's current roles and standing from their streams), made straight
/// through the dispatcher, and remembered so that event counts can leave them out.
#[derive(Default)]
pub struct Fixtures {
    streams: std::sync::Mutex<Vec<String>>,
}

impl Fixtures {
    /// A user with `roles` in `company` (created if it does not exist yet); returns their id.
    pub async fn principal(&self, app: &Application, roles: &[Role], company: Uuid) -> Uuid {
        use kraliki_domain::company::{Company, CompanyCommand, CompanyProfile};
        use kraliki_domain::user::{User, UserCommand};
        use kraliki_domain::values::{CompanyName, Email, PersonName};
        let dispatcher = &app.state().dispatcher;
        let ctx = kraliki_commands::CommandContext::new(company.to_string(), "system:test-fixture");
        let (existing, _) = dispatcher.load::<Company>(&company.to_string()).await.expect("load company");
        // The platform operator's own company is the platform: it has no stream (as with
        // `kraliki users create`), so it shows in no company list.
        let platform = roles.contains(&Role::PlatformOperator);
        if !existing.created && !platform {
            let create = CompanyCommand::CreateCompany {
                name: CompanyName::parse("Test company").expect("name"),
                profile: CompanyProfile {
                    domain: format!("c{}.test.example", company.simple()),
                    size: None,
                    industry: None,
                    description: None,
                    website: None,
                },
                at: chrono::Utc::now(),
            };
            dispatcher.execute::<Company>(&company.to_string(), create, &ctx).await.expect("fixture company");
        }
        let user = Uuid::now_v7();
        let register = UserCommand::RegisterUser {
            company_id: company.to_string(),
            email: Email::parse(&format!("u{}@test.example", user.simple())).expect("email"),
            full_name: PersonName::parse("Test User").expect("name"),
            roles: roles.iter().copied().collect(),
            at: chrono::Utc::now(),
        };
        dispatcher.execute::<User>(&user.to_string(), register, &ctx).await.expect("fixture user");
        let mut streams = self.streams.lock().expect("fixtures");
        if !existing.created && !platform {
            streams.push(company.to_string());
        }
        streams.push(user.to_string());
        user
    }

    fn streams(&self) -> Vec<String> {
        self.streams.lock().expect("fixtures").clone()
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
        let app = Application::build_full(self.settings.clone(), self.extra.clone(), self.managers.clone())
            .await
            .expect("restart");
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

    /// A client acting as a (new, real) user with these roles in `company_id`.
    pub async fn as_user(&self, roles: &[Role], company_id: Uuid) -> reqwest::Client {
        client_with(&self.token_for(roles, company_id).await.1)
    }

    /// A new user with these roles in `company_id` and an access token for them.
    pub async fn token_for(&self, roles: &[Role], company_id: Uuid) -> (Uuid, String) {
        let user = self.fixtures.principal(self.app(), roles, company_id).await;
        (user, mint(self.app(), roles, user, company_id))
    }

    /// Events of the fixtures' companies and users (tests of the log's own mechanics add them
    /// to what they expect).
    pub async fn fixture_events(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = ANY($1)")
            .bind(self.fixtures.streams())
            .fetch_one(&self.pool)
            .await
            .expect("count")
    }

    /// Events in the log, apart from the fixtures' companies and users.
    pub async fn count_events(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id <> ALL($1)")
            .bind(self.fixtures.streams())
            .fetch_one(&self.pool)
            .await
            .expect("count")
    }

    /// Waits until every serving build has applied everything in the log that it reads.
    pub async fn caught_up(&self) {
        let pool = self.pool.clone();
        let wake = self.app.as_ref().map(|a| a.state().wake.clone());
        eventually(Duration::from_secs(30), "projections catch up", || {
            let (pool, wake) = (pool.clone(), wake.clone());
            async move {
                let status = kraliki_projections::status::read_side(&pool, wake.as_ref()).await.ok()?;
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
    /// What it reads (`None`: every event).
    pub reads: Option<EventFilter>,
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
    fn reads(&self) -> Option<EventFilter> {
        self.reads.clone()
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

/// A PostgreSQL server of the test's own (Debian's binaries, a temporary cluster), which the
/// test may stop and start again: for database outages.
pub struct PrivatePostgres {
    pub dir: std::path::PathBuf,
    pub port: u16,
    bin: std::path::PathBuf,
}

impl PrivatePostgres {
    /// `initdb` and start on a free port.
    pub fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries under /usr/lib/postgresql")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .find(|p| p.join("pg_ctl").exists())
            .expect("pg_ctl");
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        let dir = std::env::temp_dir().join(unique("kraliki_pg"));
        std::fs::create_dir_all(&dir).expect("cluster dir");
        let pg = Self { dir, port, bin };
        pg.chown();
        pg.run("initdb", &["-D", &pg.data(), "-A", "trust", "-U", "postgres", "--no-sync"]);
        pg.up();
        pg
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// initdb and postgres refuse to run as root: run them as the `postgres` user then.
    fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let root =
            std::process::Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
        let mut cmd = if root {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            std::process::Command::new(&exe)
        };
        let out = cmd.args(args).output().unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert!(out.status.success(), "{tool} failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn chown(&self) {
        let _ = std::process::Command::new("chown").args(["-R", "postgres:postgres"]).arg(&self.dir).status();
    }

    pub fn up(&self) {
        let options =
            format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, self.dir.display());
        let log = self.dir.join("log").display().to_string();
        self.run("pg_ctl", &["-D", &self.data(), "-o", &options, "-l", &log, "-w", "start"]);
    }

    pub fn down(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = std::process::Command::new(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
        let _ = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A list's answer as `{items, next_cursor, link}`: the body must be a bare JSON array (every
/// list answers so); the next page's cursor comes from `X-Next-Cursor`, its link from `Link`
/// (which must agree).
pub async fn listed(resp: reqwest::Response) -> serde_json::Value {
    assert_eq!(resp.status(), reqwest::StatusCode::OK, "a list answers 200");
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (cursor, link) = (header("x-next-cursor"), header("link"));
    assert_eq!(cursor.is_some(), link.is_some(), "Link and X-Next-Cursor go together");
    if let (Some(cursor), Some(link)) = (&cursor, &link) {
        assert!(link.ends_with("; rel=\"next\""), "{link}");
        let target = link.trim_start_matches('<').split('>').next().unwrap_or_default();
        let query = target.split_once('?').map(|(_, q)| q).unwrap_or_default();
        let linked = url_cursor(query);
        assert_eq!(linked.as_deref(), Some(cursor.as_str()), "the Link names the same cursor: {link}");
    }
    let items: serde_json::Value = resp.json().await.expect("a JSON body");
    assert!(items.is_array(), "a list's body is a bare array: {items}");
    serde_json::json!({"items": items, "next_cursor": cursor, "link": link})
}

fn url_cursor(query: &str) -> Option<String> {
    let url = reqwest::Url::parse(&format!("http://link.invalid/?{query}")).ok()?;
    url.query_pairs().find(|(k, _)| k == "cursor").map(|(_, v)| v.into_owned())
}
