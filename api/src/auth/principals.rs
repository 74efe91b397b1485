//! Who a token's holder is *now*: a token proves identity, never authority. Every request reads
//! the caller's current roles, company and whether the user and the company are active, from a
//! cache of the User and Company streams folded (the event store itself, so no read-model lag).
//!
//! The cache stays true by invalidation, not by expiry:
//! - an append to a User or Company stream by this process drops the entry before the command's
//!   caller gets its answer (the dispatcher's [`AppendObserver`]), so the next request here sees
//!   the change;
//! - the same append is announced to the other processes with `NOTIFY kraliki_principals`; each
//!   listens and drops the entry (delivery takes milliseconds);
//! - while the LISTEN connection is down, nothing is cached, and the cache is emptied whenever it
//!   (re)connects, so a lost notification cannot keep a stale entry.
//!
//! A generation counter keeps a load that raced an invalidation from caching what it read.
//! The bound: a change is in force on the next request on the instance that made it, and on
//! every other instance once its NOTIFY arrives (a few ms); `MAX_AGE` is a last backstop.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kraliki_commands::{AppendObserver, Dispatcher};
use kraliki_domain::company::Company;
use kraliki_domain::user::User;
use kraliki_domain::values::Role;
use lru::LruCache;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use std::collections::BTreeSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const CHANNEL: &str = "kraliki_principals";
const CAPACITY: usize = 50_000;
/// Entries older than this are loaded again even if no invalidation arrived.
const MAX_AGE: Duration = Duration::from_secs(60);

/// The caller's current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub company_id: Uuid,
    pub email: String,
    pub roles: BTreeSet<Role>,
    pub user_active: bool,
    pub company_active: bool,
}

struct Entry {
    principal: Option<Principal>,
    loaded: Instant,
}

struct Inner {
    cache: Mutex<LruCache<Uuid, Entry>>,
    generation: AtomicU64,
    /// Only while LISTEN is up may entries be cached: then every change elsewhere reaches us.
    listening: AtomicBool,
    pool: PgPool,
}

#[derive(Clone)]
pub struct Principals {
    inner: Arc<Inner>,
}

impl Principals {
    pub fn new(pool: PgPool) -> Self {
        let capacity = NonZeroUsize::new(CAPACITY).unwrap_or(NonZeroUsize::MIN);
        Self {
            inner: Arc::new(Inner {
                cache: Mutex::new(LruCache::new(capacity)),
                generation: AtomicU64::new(0),
                listening: AtomicBool::new(false),
                pool,
            }),
        }
    }

    /// The user's current state; `None` if no such user exists.
    pub async fn get(&self, dispatcher: &Dispatcher, user_id: Uuid) -> anyhow::Result<Option<Principal>> {
        if let Ok(mut cache) = self.inner.cache.lock() {
            if let Some(entry) = cache.get(&user_id) {
                if entry.loaded.elapsed() < MAX_AGE {
                    return Ok(entry.principal.clone());
                }
            }
        }
        let generation = self.inner.generation.load(Ordering::Acquire);
        let principal = load(dispatcher, user_id).await?;
        if self.inner.listening.load(Ordering::Acquire)
            && self.inner.generation.load(Ordering::Acquire) == generation
        {
            if let Ok(mut cache) = self.inner.cache.lock() {
                cache.put(user_id, Entry { principal: principal.clone(), loaded: Instant::now() });
            }
        }
        Ok(principal)
    }

    /// Drops what a change to this stream may have made stale.
    pub fn invalidate(&self, aggregate_type: &str, aggregate_id: &str) {
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        let Ok(id) = aggregate_id.parse::<Uuid>() else { return };
        let Ok(mut cache) = self.inner.cache.lock() else { return };
        match aggregate_type {
            "User" => {
                cache.pop(&id);
            }
            "Company" => {
                let stale: Vec<Uuid> = cache
                    .iter()
                    .filter(|(_, e)| e.principal.as_ref().is_some_and(|p| p.company_id == id))
                    .map(|(k, _)| *k)
                    .collect();
                for key in stale {
                    cache.pop(&key);
                }
            }
            _ => {}
        }
    }

    fn clear(&self) {
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut cache) = self.inner.cache.lock() {
            cache.clear();
        }
    }

    /// Listens for other processes' changes until `shutdown`; reconnects after a loss.
    pub async fn listen(self, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            if let Err(error) = self.listen_once(&shutdown).await {
                tracing::warn!(%error, "principal invalidations lost; not caching until LISTEN is back");
            }
            self.inner.listening.store(false, Ordering::Release);
            self.clear();
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    async fn listen_once(&self, shutdown: &CancellationToken) -> Result<(), sqlx::Error> {
        let mut listener = PgListener::connect_with(&self.inner.pool).await?;
        listener.listen(CHANNEL).await?;
        // Whatever changed while we were not listening is gone from the cache with it.
        self.clear();
        self.inner.listening.store(true, Ordering::Release);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                note = listener.try_recv() => match note? {
                    Some(note) => {
                        if let Some((kind, id)) = note.payload().split_once(':') {
                            self.invalidate(kind, id);
                        }
                    }
                    // The connection dropped and will be re-established: notices may be lost.
                    None => {
                        self.inner.listening.store(false, Ordering::Release);
                        self.clear();
                        listener.listen(CHANNEL).await?;
                        self.clear();
                        self.inner.listening.store(true, Ordering::Release);
                    }
                },
            }
        }
    }
}

impl AppendObserver for Principals {
    fn appended(&self, aggregate_type: &str, aggregate_id: &str) {
        if aggregate_type != "User" && aggregate_type != "Company" {
            return;
        }
        self.invalidate(aggregate_type, aggregate_id);
        let pool = self.inner.pool.clone();
        let payload = format!("{aggregate_type}:{aggregate_id}");
        tokio::spawn(async move {
            if let Err(error) =
                sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(&payload).execute(&pool).await
            {
                tracing::warn!(%error, payload, "could not announce a principal change to other instances");
            }
        });
    }
}

async fn load(dispatcher: &Dispatcher, user_id: Uuid) -> anyhow::Result<Option<Principal>> {
    let (user, _) = dispatcher.load::<User>(&user_id.to_string()).await?;
    if !user.registered {
        return Ok(None);
    }
    let Ok(company_id) = user.company_id.parse::<Uuid>() else { return Ok(None) };
    let (company, _) = dispatcher.load::<Company>(&company_id.to_string()).await?;
    Ok(Some(Principal {
        company_id,
        email: user.email,
        roles: user.roles,
        user_active: user.is_active,
        // A company whose stream does not exist (the platform's own, made by `users create`)
        // is not deactivated.
        company_active: !company.created || company.is_active,
    }))
}
