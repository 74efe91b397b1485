//! Typed settings in layers: built-in defaults, then a TOML file (`--config PATH` or
//! `KRALIKI_CONFIG`), then `KRALIKI_*` environment variables (`KRALIKI_HTTP__BODY_LIMIT_BYTES`
//! for nested keys), then the conventional unprefixed `DATABASE_URL`, `NATS_URL`, `QDRANT_URL`.
//! Never read from the current directory implicitly.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpSettings {
    pub body_limit_bytes: usize,
    pub request_timeout_secs: u64,
    /// Origins allowed to call with credentials (the template UIs).
    pub cors_origins: Vec<String>,
    /// Longest a read waits for a projection to reach a requested position.
    pub read_wait_max_ms: u64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            body_limit_bytes: 1024 * 1024,
            request_timeout_secs: 30,
            cors_origins: vec!["http://localhost:3000".into(), "http://127.0.0.1:3000".into()],
            read_wait_max_ms: 5000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseSettings {
    pub max_connections: u32,
    /// Open transactions hold the catch-up barrier back; Postgres ends idle ones after this.
    pub idle_in_transaction_timeout_ms: u64,
    /// Run pending migrations when the server starts.
    pub migrate_on_start: bool,
    /// How long a request waits for a connection: while the database is down, requests answer
    /// 503 `database_unavailable` after this, instead of hanging.
    pub acquire_timeout_ms: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            max_connections: 40,
            idle_in_transaction_timeout_ms: 60_000,
            migrate_on_start: true,
            acquire_timeout_ms: 2000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ProjectionSettings {
    /// Run the projection runners in this process (one active runner per build across all).
    pub run: bool,
    pub batch_size: i64,
    /// Events per transaction while a build rebuilds (see `RunnerSettings`).
    pub rebuild_batch_size: i64,
    /// After a partial batch, how long a runner waits for more (larger batches under load).
    pub linger_ms: u64,
    pub poll_interval_ms: u64,
    /// `/ready` fails when a serving projection is further behind than this.
    pub ready_max_lag_ms: f64,
}

impl Default for ProjectionSettings {
    fn default() -> Self {
        Self {
            run: true,
            batch_size: 1000,
            rebuild_batch_size: 50_000,
            linger_ms: 20,
            poll_interval_ms: 500,
            ready_max_lag_ms: 10_000.0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct NatsSettings {
    pub subject_prefix: String,
    pub stream: String,
    /// JetStream's `Nats-Msg-Id` de-duplication window. Our publisher never sends an event
    /// twice by itself (it skips what the stream holds); the window only covers two publishers
    /// racing.
    pub duplicate_window_secs: u64,
}

impl Default for NatsSettings {
    fn default() -> Self {
        Self {
            subject_prefix: "kraliki.events".into(),
            stream: "KRALIKI_EVENTS".into(),
            duplicate_window_secs: 120,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthSettings {
    /// Ed25519 keys: `<kid>.private.pem` (the newest signs) and `<kid>.public.pem` (all verify).
    /// Default: `<data_dir>/keys`. In development a key is generated on first start; in
    /// production the keys must be provisioned (`kraliki keys rotate`).
    pub keys_dir: Option<PathBuf>,
    pub issuer: String,
    pub audience: String,
    pub access_ttl_secs: i64,
    pub refresh_ttl_secs: i64,
    pub bcrypt_cost: u32,
    /// Self-service sign-up (`POST /api/v1/auth/register` creates a company and its admin).
    pub allow_registration: bool,
    /// Failed logins allowed per account, and per client address, within the window.
    pub max_failures_per_account: i64,
    pub max_failures_per_address: i64,
    pub failure_window_secs: i64,
    /// `Secure` on cookies (set behind HTTPS).
    pub secure_cookies: bool,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            keys_dir: None,
            issuer: "kraliki".into(),
            audience: "kraliki-api".into(),
            access_ttl_secs: 15 * 60,
            refresh_ttl_secs: 30 * 24 * 3600,
            bcrypt_cost: 12,
            allow_registration: true,
            max_failures_per_account: 5,
            max_failures_per_address: 20,
            failure_window_secs: 15 * 60,
            secure_cookies: false,
        }
    }
}

pub use kraliki_voice::calls::config::{ProviderSettings, PROVIDER_VARIABLES};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ImportSettings {
    /// Largest accepted upload (the file is streamed to disk, never held in memory).
    pub max_upload_bytes: u64,
    /// Rows per batch event.
    pub batch_size: usize,
    /// A longer CSV record or NDJSON line fails the file.
    pub max_line_bytes: usize,
    /// Where uploads are spooled while imported. Default: `<data_dir>/imports`.
    pub spool_dir: Option<PathBuf>,
    /// Largest `POST /api/v1/contacts/bulk` body: it is JSON read whole, so it is held in memory;
    /// larger sets go through `POST /api/v1/contacts/import`, which streams.
    pub max_bulk_bytes: usize,
}

impl Default for ImportSettings {
    fn default() -> Self {
        Self {
            max_upload_bytes: 1024 * 1024 * 1024,
            batch_size: 5_000,
            max_line_bytes: 64 * 1024,
            spool_dir: None,
            max_bulk_bytes: 16 * 1024 * 1024,
        }
    }
}

/// The dialer that places campaigns' calls by itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DialerSettings {
    /// Dial active progressive and predictive campaigns (off: calls are placed only through
    /// `POST /api/v1/calls/outbound`).
    pub enabled: bool,
    /// How often each active campaign is looked at.
    pub tick_ms: u64,
}

impl Default for DialerSettings {
    fn default() -> Self {
        Self { enabled: true, tick_ms: 1_000 }
    }
}

/// What IVR flows' `webhook` nodes may call: publishing refuses a flow that calls anything else
/// (and the runtime must check again on every call and redirect).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct IvrSettings {
    /// Hosts (`api.example.com`) or subdomain patterns (`*.example.com`); absent: any public
    /// host; empty: none.
    pub webhook_allowed_hosts: Option<Vec<String>>,
    /// Private, loopback and link-local addresses allowed (tests, on-premises).
    pub webhook_allow_private: bool,
}

impl IvrSettings {
    /// The policy publishing checks flows against and the runtime checks each call against.
    pub fn webhook_policy(&self) -> kraliki_domain::ivr::WebhookPolicy {
        kraliki_domain::ivr::WebhookPolicy {
            allowed_hosts: self.webhook_allowed_hosts.clone(),
            allow_private: self.webhook_allow_private,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub environment: Environment,
    /// `KRALIKI_BIND`; the seed serves on 127.0.0.1:8000.
    pub bind: SocketAddr,
    #[serde(serialize_with = "expose_secret")]
    pub database_url: SecretString,
    pub nats_url: Option<String>,
    pub qdrant_url: Option<String>,
    pub data_dir: PathBuf,
    pub log_format: LogFormat,
    pub log_level: String,
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub projections: ProjectionSettings,
    pub nats: NatsSettings,
    pub auth: AuthSettings,
    pub ivr: IvrSettings,
    pub providers: ProviderSettings,
    pub imports: ImportSettings,
    pub dialer: DialerSettings,
}

fn expose_secret<S: serde::Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    use secrecy::ExposeSecret;
    s.serialize_str(secret.expose_secret())
}

impl Default for Settings {
    fn default() -> Self {
        let data_dir = std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(".local/share/kraliki"))
            .unwrap_or_else(|| PathBuf::from("/var/lib/kraliki"));
        Self {
            environment: Environment::Development,
            bind: SocketAddr::from(([127, 0, 0, 1], 8000)),
            database_url: SecretString::from("postgres://postgres@127.0.0.1:5432/kraliki"),
            nats_url: None,
            qdrant_url: None,
            data_dir,
            log_format: LogFormat::Text,
            log_level: "info".into(),
            http: HttpSettings::default(),
            database: DatabaseSettings::default(),
            projections: ProjectionSettings::default(),
            nats: NatsSettings::default(),
            auth: AuthSettings::default(),
            ivr: IvrSettings::default(),
            providers: ProviderSettings::default(),
            imports: ImportSettings::default(),
            dialer: DialerSettings::default(),
        }
    }
}

impl Settings {
    pub fn spool_dir(&self) -> PathBuf {
        self.imports.spool_dir.clone().unwrap_or_else(|| self.data_dir.join("imports"))
    }

    pub fn keys_dir(&self) -> PathBuf {
        self.auth.keys_dir.clone().unwrap_or_else(|| self.data_dir.join("keys"))
    }

    /// Loads the layers. `file` wins over `KRALIKI_CONFIG`.
    pub fn load(file: Option<&Path>) -> Result<Self, Box<figment::Error>> {
        let file =
            file.map(Path::to_path_buf).or_else(|| std::env::var_os("KRALIKI_CONFIG").map(PathBuf::from));
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment
            .merge(Env::prefixed("KRALIKI_").ignore(&["config"]).split("__"))
            .merge(Env::raw().only(&["database_url", "nats_url", "qdrant_url"]))
            .merge(Env::raw().only(PROVIDER_VARIABLES).map(|k| format!("providers.{k}").into()));
        let mut settings: Settings = figment.extract().map_err(Box::new)?;
        // An empty NATS_URL / QDRANT_URL means "not configured".
        settings.nats_url = settings.nats_url.filter(|u| !u.trim().is_empty());
        settings.qdrant_url = settings.qdrant_url.filter(|u| !u.trim().is_empty());
        {
            use secrecy::ExposeSecret;
            let p = &mut settings.providers;
            for key in [
                &mut p.openai_api_key,
                &mut p.gemini_api_key,
                &mut p.deepgram_api_key,
                &mut p.twilio_auth_token,
                &mut p.telnyx_api_key,
            ] {
                if key.as_ref().is_some_and(|k| k.expose_secret().trim().is_empty()) {
                    *key = None;
                }
            }
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail fixes the error type
    fn layers_apply_in_order_and_secrets_stay_hidden() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("k.toml", "bind = \"0.0.0.0:9000\"\n[http]\nbody_limit_bytes = 10\n")?;
            jail.set_env("KRALIKI_HTTP__BODY_LIMIT_BYTES", "20");
            jail.set_env("DATABASE_URL", "postgres://u:hunter2@db/x");
            jail.set_env("NATS_URL", "");
            let s = Settings::load(Some(Path::new("k.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(s.bind.port(), 9000);
            assert_eq!(s.http.body_limit_bytes, 20);
            assert_eq!(s.database_url.expose_secret(), "postgres://u:hunter2@db/x");
            assert_eq!(s.nats_url, None);
            assert!(!format!("{s:?}").contains("hunter2"));
            Ok(())
        });
    }
}
