//! Firing process managers' timers: one runner per manager across all instances (a session
//! advisory lock on its own connection; a standby takes over when the holder dies), polling the
//! due rows and woken early when a manager here sets one.
//!
//! A due timer is handed to [`ProcessManager::on_timer`] with keys derived from the timer and
//! what set it (the cause that last set it: an event, or an earlier firing), then deleted —
//! unless it was moved meanwhile. A crash between the two fires it again with the same keys, and
//! a manager replaying the event that set it sets it with the same cause again: either way its
//! commands take effect once.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kraliki_projections::metrics_catalog as catalog;
use serde_json::Value;
use sqlx::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;

use super::{write_timers, Cause, Effects, ManagerEnv, ProcessManager};

/// A timer that came due.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Timer {
    pub timer_key: String,
    pub due_at: DateTime<Utc>,
    pub tenant_id: String,
    pub payload: Value,
    pub set_by: Option<String>,
}

#[derive(Clone)]
pub struct TimerRunner {
    env: ManagerEnv,
    managers: Vec<Arc<dyn ProcessManager>>,
    poll: Duration,
}

impl TimerRunner {
    pub fn new(env: ManagerEnv, managers: Vec<Arc<dyn ProcessManager>>, poll: Duration) -> Self {
        Self { env, managers, poll }
    }

    /// Runs every manager's timers until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let tasks: Vec<_> = self
            .managers
            .iter()
            .map(|m| tokio::spawn(self.clone().run_one(m.clone(), shutdown.clone())))
            .collect();
        for task in tasks {
            let _ = task.await;
        }
    }

    async fn run_one(self, manager: Arc<dyn ProcessManager>, shutdown: CancellationToken) {
        let name = manager.name();
        while !shutdown.is_cancelled() {
            let Some(mut conn) = self.take_lock(name, &shutdown).await else { return };
            loop {
                let woken = self.env.timers_changed.notified();
                let next = match self.fire_due(&mut conn, manager.as_ref()).await {
                    Ok(next) => next,
                    Err(error) => {
                        tracing::error!(manager = name, error = format!("{error:#}"), "timer batch failed");
                        metrics::counter!(catalog::PROCESS_TIMER_ERRORS.name, "manager" => name).increment(1);
                        if conn.ping().await.is_err() {
                            break; // the lock went with the connection: stand by again
                        }
                        None
                    }
                };
                let wait = next
                    .map(|at| (at - Utc::now()).to_std().unwrap_or_default().min(self.poll))
                    .unwrap_or(self.poll);
                tokio::select! {
                    _ = shutdown.cancelled() => {
                        let _ = conn.close().await;
                        return;
                    }
                    _ = woken => {}
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }

    async fn take_lock(&self, name: &str, shutdown: &CancellationToken) -> Option<PgConnection> {
        loop {
            let attempt = async {
                let mut conn = self.env.pool.acquire().await?.detach();
                let got: bool = sqlx::query_scalar(
                    "SELECT pg_try_advisory_lock(hashtext('kraliki.timers'), hashtext($1))",
                )
                .bind(name)
                .fetch_one(&mut conn)
                .await?;
                Ok::<_, sqlx::Error>((conn, got))
            }
            .await;
            match attempt {
                Ok((conn, true)) => return Some(conn),
                Ok((conn, false)) => drop(conn),
                Err(error) => tracing::warn!(%error, manager = name, "could not try the timer lock"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    }

    /// Fires what is due; returns when the next timer is due, if any.
    async fn fire_due(
        &self,
        conn: &mut PgConnection,
        manager: &dyn ProcessManager,
    ) -> anyhow::Result<Option<DateTime<Utc>>> {
        let name = manager.name();
        let due: Vec<Timer> = sqlx::query_as(
            "SELECT timer_key, due_at, tenant_id, payload, set_by FROM process_timers \
             WHERE manager = $1 AND due_at <= now() ORDER BY due_at, timer_key LIMIT 100",
        )
        .bind(name)
        .fetch_all(&mut *conn)
        .await?;
        for timer in due {
            let set_by = match &timer.set_by {
                Some(cause) => cause.clone(),
                None => timer.due_at.timestamp_micros().to_string(),
            };
            let cause = Cause {
                id: format!("timer:{}:{set_by}", timer.timer_key),
                tenant_id: timer.tenant_id.clone(),
                correlation_id: timer.set_by.clone().unwrap_or_else(|| timer.timer_key.clone()),
                position: None,
                at: timer.due_at,
            };
            let mut effects = Effects::new(&self.env, name, cause);
            manager.on_timer(&timer, &mut effects).await?;
            let late = (Utc::now() - timer.due_at).num_milliseconds().max(0) as f64 / 1000.0;
            metrics::histogram!(catalog::PROCESS_TIMER_LATENESS.name, "manager" => name).record(late);
            let mut tx = conn.begin().await?;
            // Only this firing: a timer moved meanwhile (set again) stays.
            sqlx::query("DELETE FROM process_timers WHERE manager = $1 AND timer_key = $2 AND due_at = $3")
                .bind(name)
                .bind(&timer.timer_key)
                .bind(timer.due_at)
                .execute(&mut *tx)
                .await?;
            let set_by = effects.cause.id.clone();
            write_timers(&mut tx, name, &set_by, std::mem::take(&mut effects.timers)).await?;
            tx.commit().await?;
        }
        let next: Option<DateTime<Utc>> =
            sqlx::query_scalar("SELECT min(due_at) FROM process_timers WHERE manager = $1")
                .bind(name)
                .fetch_one(&mut *conn)
                .await?;
        Ok(next)
    }
}
