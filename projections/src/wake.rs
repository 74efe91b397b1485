//! Wake-ups for runners and position waiters: an in-process signal when this process appends or
//! projects, Postgres LISTEN/NOTIFY for appends made by other processes, and polling as the
//! backstop for anything else (a NOTIFY is not sent inside the append transaction on purpose:
//! notifying commits serialize on a global lock and would throttle concurrent appends).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::filter::EventFilter;

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
    /// Counts appends (of any type); its value is the sequence number of the newest one.
    appended: watch::Sender<u64>,
    /// What each aggregate type's newest append was numbered, so a runner that reads a few types
    /// sleeps through the appends of the others.
    types: Mutex<Appends>,
    projected: watch::Sender<u64>,
    builds: watch::Sender<u64>,
    notify_peers: Notify,
    peers_pending: AtomicBool,
    /// This process, in its NOTIFY payloads: its own echo is not a wake-up.
    instance: String,
    /// Which events each runner here reads (see [`Wake::register_reads`]).
    reads: RwLock<HashMap<String, Option<EventFilter>>>,
    /// Per projection: a reader waits for it (see [`Wake::hurry`]).
    hurry: Mutex<HashMap<String, Arc<Notify>>>,
}

#[derive(Default)]
struct Appends {
    /// The newest append of an unknown type (another process said nothing more, a test).
    any: u64,
    by_type: HashMap<String, u64>,
    /// Types appended here since the last NOTIFY to peers (`None`: an unknown one).
    for_peers: Option<BTreeSet<String>>,
}

impl Default for Wake {
    fn default() -> Self {
        Self::new()
    }
}

/// Longest list of types a NOTIFY names (its payload is limited); more say "any".
const NOTIFY_TYPES_MAX: usize = 64;

impl Wake {
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                appended: watch::channel(0).0,
                types: Mutex::new(Appends { for_peers: Some(BTreeSet::new()), ..Appends::default() }),
                projected: watch::channel(0).0,
                builds: watch::channel(0).0,
                notify_peers: Notify::new(),
                peers_pending: AtomicBool::new(false),
                instance: uuid::Uuid::new_v4().simple().to_string(),
                reads: RwLock::new(HashMap::new()),
                hurry: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn appends(&self) -> std::sync::MutexGuard<'_, Appends> {
        self.inner.types.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Numbers an append (of `aggregate_type`, or of any type) and wakes the local runners.
    fn bump(&self, aggregate_type: Option<&str>, for_peers: bool) {
        let mut appends = self.appends();
        let mut seq = 0;
        self.inner.appended.send_modify(|n| {
            *n = n.wrapping_add(1);
            seq = *n;
        });
        match aggregate_type {
            Some(t) => {
                appends.by_type.insert(t.to_owned(), seq);
            }
            None => appends.any = seq,
        }
        if for_peers {
            match (&mut appends.for_peers, aggregate_type) {
                (Some(types), Some(t)) if types.len() < NOTIFY_TYPES_MAX => {
                    types.insert(t.to_owned());
                }
                (slot, _) => *slot = None,
            }
        }
    }

    fn tell_peers(&self) {
        if !self.inner.peers_pending.swap(true, Ordering::AcqRel) {
            self.inner.notify_peers.notify_one();
        }
    }

    /// Events of some type were appended: wake every local runner now, and other processes soon
    /// (coalesced).
    pub fn appended(&self) {
        self.bump(None, true);
        self.tell_peers();
    }

    /// Events of `aggregate_type` were appended: wake the local runners that read it now, and
    /// other processes soon (coalesced).
    pub fn appended_of(&self, aggregate_type: &str) {
        self.bump(Some(aggregate_type), true);
        self.tell_peers();
    }

    /// Events were appended by someone else (seen through LISTEN): of these types, or of any.
    fn appended_elsewhere(&self, types: Option<Vec<&str>>) {
        match types {
            Some(types) => {
                for t in types {
                    self.bump(Some(t), false);
                }
            }
            None => self.bump(None, false),
        }
    }

    pub fn subscribe_appended(&self) -> watch::Receiver<u64> {
        self.inner.appended.subscribe()
    }

    /// The number of the newest append so far.
    pub fn appended_seq(&self) -> u64 {
        *self.inner.appended.borrow()
    }

    /// Whether anything of `aggregate_types` (`None`: of any type) was appended after append
    /// number `seen`.
    pub fn appended_since(&self, seen: u64, aggregate_types: Option<&[&str]>) -> bool {
        let appends = self.appends();
        match aggregate_types {
            None => self.appended_seq() > seen,
            Some(types) => {
                appends.any > seen || types.iter().any(|t| appends.by_type.get(*t).is_some_and(|n| *n > seen))
            }
        }
    }

    /// Records which events the runner of `projection` reads, so that a position waiter knows
    /// a read model that is behind only on events it ignores is not behind.
    pub fn register_reads(&self, projection: &str, filter: Option<EventFilter>) {
        self.inner
            .reads
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(projection.to_owned(), filter);
    }

    /// A reader waits for `projection`: its runner here, if lingering after a partial batch for
    /// more, reads now (a runner in another process lingers on).
    pub fn hurry(&self, projection: &str) {
        self.hurried(projection).notify_one();
    }

    /// What a runner of `projection` listens on for [`Wake::hurry`].
    pub fn hurried(&self, projection: &str) -> Arc<Notify> {
        self.inner
            .hurry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(projection.to_owned())
            .or_default()
            .clone()
    }

    /// What the runner of `projection` reads: `None` when unknown here, `Some(None)` for all.
    pub fn reads_of(&self, projection: &str) -> Option<Option<EventFilter>> {
        self.inner.reads.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(projection).cloned()
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
                let types = self.appends().for_peers.replace(BTreeSet::new());
                let payload = match types {
                    Some(types) => {
                        format!("{} {}", self.inner.instance, types.into_iter().collect::<Vec<_>>().join(","))
                    }
                    None => format!("{} *", self.inner.instance),
                };
                let sent = sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(EVENTS_CHANNEL)
                    .bind(payload)
                    .execute(&pool)
                    .await;
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
        self.appended_elsewhere(None);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                note = listener.recv() => {
                    let note = note?;
                    if note.channel() == BUILDS_CHANNEL {
                        self.builds_changed();
                    } else {
                        self.heard(note.payload());
                    }
                }
            }
        }
    }

    /// A NOTIFY on the events channel: `<instance> <type>,<type>…` (`*`: any type). Our own is
    /// no news (the local runners were woken when we appended); one without a payload (an older
    /// process, a tool) may be anything.
    fn heard(&self, payload: &str) {
        match payload.split_once(' ') {
            Some((instance, _)) if instance == self.inner.instance => {}
            Some((_, "*")) | None => self.appended_elsewhere(None),
            Some((_, types)) => {
                self.appended_elsewhere(Some(types.split(',').filter(|t| !t.is_empty()).collect()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runner_is_told_only_of_the_types_it_reads() {
        let wake = Wake::new();
        let seen = wake.appended_seq();
        wake.appended_of("Agent");
        assert!(wake.appended_since(seen, Some(&["Agent", "QueuedCall"])));
        assert!(!wake.appended_since(seen, Some(&["Company"])));
        assert!(wake.appended_since(seen, None), "a runner that reads everything hears everything");
        // An append of an unknown type concerns everyone.
        let seen = wake.appended_seq();
        wake.appended();
        assert!(wake.appended_since(seen, Some(&["Company"])));
    }

    #[test]
    fn peers_say_what_they_appended_and_our_own_echo_is_no_news() {
        let wake = Wake::new();
        let seen = wake.appended_seq();
        wake.heard(&format!("{} Company", wake.inner.instance));
        assert_eq!(wake.appended_seq(), seen, "our own NOTIFY");
        wake.heard("peer Agent,Queue");
        assert!(wake.appended_since(seen, Some(&["Queue"])));
        assert!(!wake.appended_since(seen, Some(&["Company"])));
        let seen = wake.appended_seq();
        wake.heard("");
        assert!(wake.appended_since(seen, Some(&["Company"])), "a NOTIFY without a payload may be anything");
        let seen = wake.appended_seq();
        wake.heard("peer *");
        assert!(wake.appended_since(seen, Some(&["Company"])));
    }

    #[test]
    fn what_peers_are_told_names_the_types_or_says_any() {
        let wake = Wake::new();
        wake.appended_of("Agent");
        wake.appended_of("Agent");
        wake.appended_of("Queue");
        let told = wake.appends().for_peers.replace(BTreeSet::new());
        assert_eq!(told, Some(BTreeSet::from(["Agent".to_owned(), "Queue".to_owned()])));
        wake.appended_of("Agent");
        wake.appended();
        assert_eq!(wake.appends().for_peers.replace(BTreeSet::new()), None);
    }
}
