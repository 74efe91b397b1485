//! How the providers are doing, measured from real use: every voice-AI session opened and every
//! carrier request made by this instance is counted with its latency or its error. Nothing here
//! is configured or assumed: a provider nobody has used yet is `unknown`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// One provider's record, as `GET /api/v1/providers/health` shows it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProviderHealth {
    /// openai | gemini | deepgram | twilio | telnyx
    pub provider: String,
    /// voice_ai | telephony
    pub kind: String,
    /// A key (and for carriers the account) is configured.
    pub configured: bool,
    /// unknown (never used here) | healthy (its last use worked) | down (its last use failed)
    pub status: String,
    pub successes: u64,
    pub failures: u64,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Of the last successful use: session connect, or the carrier's answer.
    pub last_latency_ms: Option<f64>,
}

#[derive(Debug, Default, Clone)]
struct Record {
    successes: u64,
    failures: u64,
    last_success_at: Option<DateTime<Utc>>,
    last_failure_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
    last_latency_ms: Option<f64>,
}

/// Every provider this instance has used, and how it went.
#[derive(Debug, Default)]
pub struct HealthBook {
    records: Mutex<BTreeMap<String, Record>>,
}

impl HealthBook {
    pub fn success(&self, provider: &str, latency: Duration) {
        if let Ok(mut records) = self.records.lock() {
            let r = records.entry(provider.to_owned()).or_default();
            r.successes += 1;
            r.last_success_at = Some(Utc::now());
            r.last_latency_ms = Some(latency.as_secs_f64() * 1000.0);
        }
    }

    pub fn failure(&self, provider: &str, error: &str) {
        if let Ok(mut records) = self.records.lock() {
            let r = records.entry(provider.to_owned()).or_default();
            r.failures += 1;
            r.last_failure_at = Some(Utc::now());
            r.last_error = Some(error.chars().take(500).collect());
        }
    }

    /// The record of `provider` (of `kind`), configured or not.
    pub fn report(&self, provider: &str, kind: &str, configured: bool) -> ProviderHealth {
        let r = self.records.lock().ok().and_then(|m| m.get(provider).cloned()).unwrap_or_default();
        let status = match (r.last_success_at, r.last_failure_at) {
            (None, None) => "unknown",
            (Some(_), None) => "healthy",
            (None, Some(_)) => "down",
            (Some(ok), Some(bad)) if ok >= bad => "healthy",
            _ => "down",
        };
        ProviderHealth {
            provider: provider.to_owned(),
            kind: kind.to_owned(),
            configured,
            status: status.to_owned(),
            successes: r.successes,
            failures: r.failures,
            last_success_at: r.last_success_at,
            last_failure_at: r.last_failure_at,
            last_error: r.last_error,
            last_latency_ms: r.last_latency_ms,
        }
    }
}
