//! The one state every handler shares.

use std::sync::Arc;
use std::time::Duration;

use kraliki_commands::Dispatcher;
use kraliki_projections::{StoredEvent, Supervisor, Wake};
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;
use tokio::sync::broadcast;

use crate::config::Settings;
use crate::error::ApiError;

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub pool: PgPool,
    pub dispatcher: Dispatcher,
    pub wake: Wake,
    pub supervisor: Supervisor,
    pub metrics: PrometheusHandle,
    pub keys: Arc<crate::auth::KeyRing>,
    /// Callers' current roles and standing (tokens carry identity, not authority).
    pub principals: crate::auth::Principals,
    /// The in-process live feed (when NATS is not configured).
    pub live: Option<broadcast::Sender<Arc<StoredEvent>>>,
    /// Runs contact imports in the background.
    pub importer: kraliki_commands::import::Importer,
    /// Calls: placing them, the carriers' webhooks, media streams.
    pub calls: kraliki_voice::calls::CallService,
    /// What process managers run with (for driving one by hand, e.g. a dialer round).
    pub managers: kraliki_commands::ManagerEnv,
    pub dialer: Arc<kraliki_voice::dialer::Dialer>,
}

impl AppState {
    /// Waits (bounded by configuration) until `projection` has applied `position`.
    pub async fn wait_for(&self, projection: &str, position: Option<i64>) -> Result<(), ApiError> {
        let Some(position) = position else { return Ok(()) };
        let timeout = Duration::from_millis(self.settings.http.read_wait_max_ms);
        kraliki_projections::position::wait_for(&self.pool, &self.wake, projection, position, timeout)
            .await?;
        Ok(())
    }
}
