//! Wake-ups for runners and position waiters: an in-process signal when this process appends or
//! projects, Postgres LISTEN/NOTIFY for appends made by other processes, and polling as the
//! backstop for anything else (a NOTIFY is not sent inside the append transaction on purpose:
//! notifying commits serialize on a global lock and would throttle concurrent appends).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

pub const EVENTS_CHANNEL: &str = "kraliki_events";
pub const BUILDS_CHANNEL: &str = "kraliki_projection_builds";

/// At most one cross-process NOTIFY per interval: under load every append would otherwise send
/// one, and each wakes every listening process. Runners in this process are woken directly.
const PEER_NOTIFY_INTERVAL: std::time::Duration = std::time::Duration::from_millis(10);

#[derive(Clone)]
pub struct Wake {
    inner: Arc<Inner>,
}

struct Inner {
    appended: watch::Sender<u64>,
    projected: watch::Sender<u64>,
    builds: watch::Sender<u64>,
    notify_peers: Notify,
    peers_pending: AtomicBool,
}

impl Default for Wake {
    fn default() -> Self {
        Self::new()
    }
}

impl Wake {
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                appended: watch::channel(0).0,
                projected: watch::channel(0).0,
                builds: watch::channel(0).0,
                notify_peers: Notify::new(),
                peers_pending: AtomicBool::new(false),
            }),
        }
    }

    /// Events were appended: wake local runners now, and other processes soon (coalesced).
    pub fn appended(&self) {
        self.inner.appended.send_modify(|n| *n = n.wrapping_add(1));
        if !self.inner.peers_pending.swap(true, Ordering::AcqRel) {
            self.inner.notify_peers.notify_one();
        }
    }

    /// Events were appended by someone else (seen through LISTEN).
    fn appended_elsewhere(&self) {
        self.inner.appended.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn subscribe_appended(&self) -> watch::Receiver<u64> {
        self.inner.appended.subscribe()
    }

    /// A checkpoint moved: position waiters re-check.
    pub fn projected(&self) {
        self.inner.projected.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn subscribe_projected(&self) -> watch::Receiver<u64> {
        self.inner.projected.subscribe()
    }

    /// Builds were created or switched: supervisors re-read the build table.
    pub fn builds_changed(&self) {
        self.inner.builds.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn subscribe_builds(&self) -> watch::Receiver<u64> {
        self.inner.builds.subscribe()
    }

    /// Runs until cancelled: forwards NOTIFYs in and coalesced local appends out.
    pub async fn run(self, pool: PgPool, shutdown: CancellationToken) {
        let listen = {
            let wake = self.clone();
            let pool = pool.clone();
            let shutdown = shutdown.clone();
            async move {
                while !shutdown.is_cancelled() {
                    if let Err(error) = wake.listen_once(&pool, &shutdown).await {
                        tracing::warn!(%error, "LISTEN connection lost; polling covers the gap");
                        tokio::select! {
                            _ = shutdown.cancelled() => {}
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                    }
                }
            }
        };
        let notify = async {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = self.inner.notify_peers.notified() => {}
                }
                // Appends during the pause below are covered by this NOTIFY or the next one.
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(PEER_NOTIFY_INTERVAL) => {}
                }
                self.inner.peers_pending.store(false, Ordering::Release);
                let sent = sqlx::query("SELECT pg_notify($1, '')").bind(EVENTS_CHANNEL).execute(&pool).await;
                if let Err(error) = sent {
                    tracing::debug!(%error, "NOTIFY failed; peers fall back to polling");
                }
            }
        };
        tokio::join!(listen, notify);
    }

    async fn listen_once(&self, pool: &PgPool, shutdown: &CancellationToken) -> Result<(), sqlx::Error> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen_all([EVENTS_CHANNEL, BUILDS_CHANNEL]).await?;
        // Anything committed while we were not listening is picked up by this wake.
        self.appended_elsewhere();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                note = listener.recv() => {
                    let note = note?;
                    if note.channel() == BUILDS_CHANNEL {
                        self.builds_changed();
                    } else {
                        self.appended_elsewhere();
                    }
                }
            }
        }
    }
}
