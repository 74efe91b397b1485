//! Command dispatch: load → decide → append, with bounded conflict retries and idempotency.
//!
//! cqrs-es's `Aggregate` decides; the stream lives in postgres-es's `events` table shape. We
//! drive them ourselves rather than through `CqrsFramework` because each event needs its own
//! metadata (`event_id`), the caller needs the positions that were appended, read models are
//! built only by our catch-up runner (cqrs-es's in-process queries drop updates on conflicts and
//! crashes), and a keyed command must load, append and record its outcome on one connection in
//! one transaction — postgres-es's repository takes its connections from the pool itself (it
//! serves plain, uncached loads: `Dispatcher::load`).
//!
//! Appending is one `INSERT … SELECT FROM unnest(…) RETURNING global_position` into the same
//! table, not postgres-es's `persist`: that one costs BEGIN, an INSERT per event and COMMIT, and
//! returns no positions (a fourth round trip). A single statement is atomic on its own; a
//! duplicate `(aggregate_type, aggregate_id, sequence)` is the optimistic-concurrency conflict.
//!
//! Loaded aggregates are kept in a bounded in-memory cache and caught up with the events after
//! their cached version before each decision, so a stream is not re-read from its start on every
//! command. The cache is only an optimisation: appends are still checked by the primary key.

use std::any::Any;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::Utc;
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use kraliki_domain::CommandPolicy;
use kraliki_projections::metrics_catalog as catalog;
use kraliki_projections::Wake;
use lru::LruCache;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use tracing::Instrument;

use crate::metadata::CommandContext;

/// What a command did. Returned again, unchanged, for a repeated idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// Events appended (0: the command changed nothing).
    pub events: usize,
    /// Sequence of the aggregate after the command.
    pub version: i64,
    /// Global position of the last event appended, for read-your-writes.
    pub position: Option<i64>,
    /// True when this is the stored outcome of an earlier request with the same key.
    #[serde(default)]
    pub replayed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError<E: std::error::Error> {
    /// The command broke a rule of the aggregate.
    #[error(transparent)]
    Rejected(E),
    /// Another writer changed the aggregate at the same time and the command is not safe to
    /// re-decide (or retries ran out).
    #[error("the resource was changed concurrently; reload and try again")]
    Conflict,
    /// The idempotency key was used before with a different request.
    #[error("this idempotency key was already used with a different request")]
    IdempotencyKeyReused,
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

type CacheKey = (&'static str, String);
type Cached = (Box<dyn Any + Send + Sync>, i64);

/// Told about every successful append by this process, right after it committed (before the
/// command's caller gets its answer): caches that fold streams (the callers' authority) drop
/// what changed.
pub trait AppendObserver: Send + Sync + 'static {
    fn appended(&self, aggregate_type: &str, aggregate_id: &str);
}

#[derive(Clone)]
pub struct Dispatcher {
    pool: PgPool,
    repo: Arc<postgres_es::PostgresEventRepository>,
    wake: Wake,
    max_retries: usize,
    cache: Arc<Mutex<LruCache<CacheKey, Cached>>>,
    observers: Arc<Vec<Arc<dyn AppendObserver>>>,
}

/// Aggregates kept in memory per process.
const CACHE_CAPACITY: usize = 10_000;

impl Dispatcher {
    pub fn new(pool: PgPool, wake: Wake) -> Self {
        let capacity = NonZeroUsize::new(CACHE_CAPACITY).unwrap_or(NonZeroUsize::MIN);
        let repo = Arc::new(postgres_es::PostgresEventRepository::new(pool.clone()));
        Self {
            pool,
            repo,
            wake,
            max_retries: 5,
            cache: Arc::new(Mutex::new(LruCache::new(capacity))),
            observers: Arc::default(),
        }
    }

    /// Adds an observer of this process's appends (set up before the dispatcher is shared).
    pub fn observe(mut self, observer: Arc<dyn AppendObserver>) -> Self {
        Arc::make_mut(&mut self.observers).push(observer);
        self
    }

    pub fn with_max_retries(mut self, max_retries: usize) -> Self {
        self.max_retries = max_retries;
        self
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Loads the aggregate's current state and version from the log (no cache), through
    /// postgres-es's repository. Commands load through their own connection instead (see
    /// `catch_up`).
    pub async fn load<A: Aggregate>(&self, aggregate_id: &str) -> anyhow::Result<(A, i64)> {
        use cqrs_es::persist::PersistedEventRepository;
        let stored = self.repo.get_events::<A>(aggregate_id).await.map_err(store_error)?;
        let mut aggregate = A::default();
        let mut version = 0;
        for event in stored {
            version = event.sequence as i64;
            aggregate.apply(serde_json::from_value(event.payload)?);
        }
        Ok((aggregate, version))
    }

    /// The aggregate's current state and version: the state this process holds brought up to
    /// date with one read of the events after it (a stream read whole when it holds none), and
    /// kept for the next command or read. For a stream read again and again as it grows (a
    /// call in an IVR flow), where [`Dispatcher::load`] would read it whole each time.
    pub async fn current<A: Aggregate + Clone + 'static>(
        &self,
        aggregate_id: &str,
    ) -> anyhow::Result<(A, i64)> {
        let (mut aggregate, version) = self.cached::<A>(aggregate_id).unwrap_or_default();
        let version =
            self.catch_up(&mut Store::Pool(&self.pool), aggregate_id, &mut aggregate, version).await?;
        self.remember(aggregate_id, Some((aggregate.clone(), version)));
        Ok((aggregate, version))
    }

    /// The cached state and version, if this process has one.
    fn cached<A: Aggregate + Clone + 'static>(&self, aggregate_id: &str) -> Option<(A, i64)> {
        let mut cache = self.cache.lock().ok()?;
        cache
            .get(&(A::TYPE, aggregate_id.to_owned()))
            .and_then(|(state, version)| state.downcast_ref::<A>().map(|a| (a.clone(), *version)))
    }

    /// Applies the events after `version` (appended by other processes or requests); returns
    /// the new version. Not postgres-es's `get_last_events`: that one writes the sequence into
    /// the SQL text, so every call would be a new statement to parse and plan.
    async fn catch_up<A: Aggregate>(
        &self,
        store: &mut Store<'_, '_>,
        aggregate_id: &str,
        aggregate: &mut A,
        version: i64,
    ) -> anyhow::Result<i64> {
        let query = sqlx::query_as::<_, (i64, serde_json::Value)>(
            "SELECT sequence, payload FROM events \
             WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3 ORDER BY sequence",
        )
        .bind(A::TYPE)
        .bind(aggregate_id)
        .bind(version);
        let newer = match store {
            Store::Pool(pool) => query.fetch_all(*pool).await?,
            Store::Tx(tx) => query.fetch_all(&mut ***tx).await?,
        };
        let mut version = version;
        for (sequence, payload) in newer {
            aggregate.apply(serde_json::from_value(payload)?);
            version = sequence;
        }
        Ok(version)
    }

    fn remember<A: Aggregate + Clone + 'static>(&self, aggregate_id: &str, state: Option<(A, i64)>) {
        if let Ok(mut cache) = self.cache.lock() {
            let key = (A::TYPE, aggregate_id.to_owned());
            match state {
                Some((aggregate, version)) => {
                    cache.put(key, (Box::new(aggregate), version));
                }
                None => {
                    cache.pop(&key);
                }
            }
        }
    }

    /// Tells the runners and the observers that this process appended to a stream.
    fn announce(&self, aggregate_type: &str, aggregate_id: &str) {
        self.wake.appended_of(aggregate_type);
        for observer in self.observers.iter() {
            observer.appended(aggregate_type, aggregate_id);
        }
    }

    /// Decides `command` against aggregate `aggregate_id` and appends its events.
    pub async fn execute<A>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        ctx: &CommandContext,
    ) -> Result<Outcome, DispatchError<A::Error>>
    where
        A: Aggregate<Services = ()> + Clone + 'static,
        A::Command: CommandPolicy + Clone + Send + Sync,
    {
        let name = command.name();
        let span = tracing::info_span!("command", command = name, aggregate = A::TYPE, aggregate_id,
            tenant = %ctx.tenant_id, correlation_id = %ctx.correlation_id);
        let started = Instant::now();
        let result = async {
            match &ctx.idempotency_key {
                Some(key) => self.execute_once::<A>(aggregate_id, command, ctx, key).await,
                None => {
                    let outcome = self
                        .decide_and_append::<A>(&mut Store::Pool(&self.pool), aggregate_id, command, ctx)
                        .await;
                    if outcome.as_ref().is_ok_and(|o| o.events > 0) {
                        self.announce(A::TYPE, aggregate_id);
                    }
                    outcome
                }
            }
        }
        .instrument(span)
        .await;
        let status = match &result {
            Ok(_) => "ok",
            Err(DispatchError::Rejected(_)) => "rejected",
            Err(DispatchError::Conflict) => "conflict",
            Err(DispatchError::IdempotencyKeyReused) => "idempotency_key_reused",
            Err(DispatchError::Store(_)) => "error",
        };
        metrics::histogram!(catalog::COMMAND_DURATION.name, "command" => name, "status" => status)
            .record(started.elapsed().as_secs_f64());
        result
    }

    /// The first outcome of a request with this context's idempotency key, if one was
    /// recorded: a route can answer a retry with it before re-checking anything the first
    /// request changed (a duplicate it created itself is no reason to refuse its retry).
    /// `None` without a key.
    pub async fn replayed<E: std::error::Error>(
        &self,
        ctx: &CommandContext,
    ) -> Result<Option<Outcome>, DispatchError<E>> {
        let Some(key) = &ctx.idempotency_key else { return Ok(None) };
        let mut conn = self.pool.acquire().await.map_err(anyhow::Error::from)?;
        match stored_outcome(&mut conn, ctx, key).await? {
            Some((fingerprint, _)) if fingerprint.is_some() && fingerprint != ctx.request_fingerprint => {
                Err(DispatchError::IdempotencyKeyReused)
            }
            Some((_, mut outcome)) => {
                outcome.replayed = true;
                Ok(Some(outcome))
            }
            None => Ok(None),
        }
    }

    /// A keyed command, in one transaction on one connection: take the key's transaction-scoped
    /// advisory lock (concurrent duplicates queue behind the first), return the stored outcome if
    /// there is one, else decide, append and store the outcome, and commit — the events and the
    /// outcome together or neither. Everything runs on that one connection, so a command never
    /// waits for a second one while holding the first: a pool full of duplicates waiting for
    /// their key still lets the holder finish.
    async fn execute_once<A>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        ctx: &CommandContext,
        key: &str,
    ) -> Result<Outcome, DispatchError<A::Error>>
    where
        A: Aggregate<Services = ()> + Clone + 'static,
        A::Command: CommandPolicy + Clone + Send + Sync,
    {
        let store_err = |e: sqlx::Error| DispatchError::Store(anyhow::Error::from(e));
        let mut tx = self.pool.begin().await.map_err(store_err)?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("idempotency:{}:{key}", ctx.idempotency_scope))
            .execute(&mut *tx)
            .await
            .map_err(store_err)?;
        if let Some((fingerprint, mut outcome)) = stored_outcome(&mut tx, ctx, key).await? {
            if fingerprint.is_some() && fingerprint != ctx.request_fingerprint {
                return Err(DispatchError::IdempotencyKeyReused);
            }
            outcome.replayed = true;
            return Ok(outcome);
        }
        let outcome =
            self.decide_and_append::<A>(&mut Store::Tx(&mut tx), aggregate_id, command, ctx).await?;
        sqlx::query(
            "INSERT INTO command_outcomes (scope, idempotency_key, request_fingerprint, aggregate_type, \
             aggregate_id, outcome) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(&ctx.idempotency_scope)
        .bind(key)
        .bind(&ctx.request_fingerprint)
        .bind(A::TYPE)
        .bind(aggregate_id)
        .bind(serde_json::to_value(&outcome).map_err(anyhow::Error::from)?)
        .execute(&mut *tx)
        .await
        .map_err(store_err)?;
        if let Err(e) = tx.commit().await {
            // What was cached assumed the commit: forget it.
            self.remember::<A>(aggregate_id, None);
            return Err(store_err(e));
        }
        if outcome.events > 0 {
            self.announce(A::TYPE, aggregate_id);
        }
        Ok(outcome)
    }

    async fn decide_and_append<A>(
        &self,
        store: &mut Store<'_, '_>,
        aggregate_id: &str,
        command: A::Command,
        ctx: &CommandContext,
    ) -> Result<Outcome, DispatchError<A::Error>>
    where
        A: Aggregate<Services = ()> + Clone + 'static,
        A::Command: CommandPolicy + Clone + Send + Sync,
    {
        let mut attempt = 0;
        // Commands safe to re-decide are decided on the cached state without reading the log
        // first: if it was stale, the append conflicts on the primary key and the command is
        // decided again on fresh state. Outcomes that append nothing (no change, or a broken
        // rule) are checked against the log before they are answered. Other commands always
        // read what is newer first, so a stale cache never turns into a conflict for them.
        let optimistic = command.retry_on_conflict();
        loop {
            let (start, mut fresh) = match self.cached::<A>(aggregate_id) {
                Some((mut aggregate, version)) if !optimistic => {
                    let version = self.catch_up(store, aggregate_id, &mut aggregate, version).await?;
                    ((aggregate, version), true)
                }
                Some(cached) => (cached, false),
                None => {
                    let mut aggregate = A::default();
                    let version = self.catch_up(store, aggregate_id, &mut aggregate, 0).await?;
                    ((aggregate, version), true)
                }
            };
            let (mut base, mut version) = start;
            let (aggregate, events, decided_fresh) = loop {
                let mut aggregate = base.clone();
                let sink = EventSink::default();
                let decided = aggregate.handle(command.clone(), &(), &sink).await;
                let events = sink.collect().await;
                if decided.is_ok() && !events.is_empty() {
                    break (aggregate, events, fresh);
                }
                if !fresh {
                    let caught_up = self.catch_up(store, aggregate_id, &mut base, version).await?;
                    fresh = true;
                    if caught_up != version {
                        version = caught_up;
                        continue;
                    }
                }
                if let Err(rule) = decided {
                    self.remember(aggregate_id, Some((base, version)));
                    return Err(DispatchError::Rejected(rule));
                }
                self.remember(aggregate_id, Some((aggregate, version)));
                return Ok(Outcome {
                    aggregate_type: A::TYPE.into(),
                    aggregate_id: aggregate_id.into(),
                    events: 0,
                    version,
                    position: None,
                    replayed: false,
                });
            };
            let now = Utc::now();
            let mut rows = AppendRows::default();
            for (i, event) in events.iter().enumerate() {
                rows.sequence.push(version + i as i64 + 1);
                rows.event_type.push(event.event_type());
                rows.event_version.push(event.event_version());
                rows.payload.push(serde_json::to_value(event).map_err(anyhow::Error::from)?);
                rows.metadata
                    .push(serde_json::to_value(ctx.event_metadata(now)).map_err(anyhow::Error::from)?);
            }
            match append(store, A::TYPE, aggregate_id, rows).await {
                Ok(position) => {
                    let count = events.len();
                    metrics::counter!(catalog::EVENTS_APPENDED.name, "aggregate" => A::TYPE)
                        .increment(count as u64);
                    let last = version + count as i64;
                    self.remember(aggregate_id, Some((aggregate, last)));
                    return Ok(Outcome {
                        aggregate_type: A::TYPE.into(),
                        aggregate_id: aggregate_id.into(),
                        events: count,
                        version: last,
                        position: Some(position),
                        replayed: false,
                    });
                }
                Err(AppendError::Conflict) => {
                    self.remember::<A>(aggregate_id, None);
                    if !decided_fresh {
                        // Only our cache was behind: decide again on the log, no attempt used.
                        continue;
                    }
                    metrics::counter!(catalog::COMMAND_CONFLICTS.name, "aggregate" => A::TYPE).increment(1);
                    if !command.retry_on_conflict() || attempt >= self.max_retries {
                        return Err(DispatchError::Conflict);
                    }
                    attempt += 1;
                    tracing::debug!(attempt, "append conflicted; deciding again on the newer state");
                    // A little jitter, so racers do not collide again in lockstep.
                    let pause = std::time::Duration::from_micros(rand::random_range(0..500 * attempt as u64));
                    tokio::time::sleep(pause).await;
                }
                Err(AppendError::Database(e)) => return Err(DispatchError::Store(e.into())),
            }
        }
    }
}

/// Where a command reads its stream and appends: the pool (one autocommitted statement each),
/// or the transaction of a keyed command.
enum Store<'a, 'c> {
    Pool(&'a PgPool),
    Tx(&'a mut sqlx::Transaction<'c, sqlx::Postgres>),
}

/// The first outcome for this key: from `command_outcomes`, or — for commands of versions that
/// wrote the outcome after the append — reconstructed from the events that carry the key.
async fn stored_outcome(
    conn: &mut PgConnection,
    ctx: &CommandContext,
    key: &str,
) -> anyhow::Result<Option<(Option<String>, Outcome)>> {
    let row: Option<(Option<String>, serde_json::Value)> = sqlx::query_as(
        "SELECT request_fingerprint, outcome FROM command_outcomes WHERE scope = $1 AND idempotency_key = $2",
    )
    .bind(&ctx.idempotency_scope)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some((fingerprint, outcome)) = row {
        return Ok(Some((fingerprint, serde_json::from_value(outcome)?)));
    }
    let row: Option<(String, String, i64, i64, i64, Option<String>)> = sqlx::query_as(
        "SELECT aggregate_type, aggregate_id, count(*), max(sequence), max(global_position), \
                min(metadata ->> 'request_fingerprint') \
         FROM events WHERE metadata ? 'idempotency_key' \
           AND metadata ->> 'idempotency_scope' = $1 AND metadata ->> 'idempotency_key' = $2 \
         GROUP BY aggregate_type, aggregate_id LIMIT 1",
    )
    .bind(&ctx.idempotency_scope)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|(aggregate_type, aggregate_id, events, version, position, fingerprint)| {
        let outcome = Outcome {
            aggregate_type,
            aggregate_id,
            events: events as usize,
            version,
            position: Some(position),
            replayed: false,
        };
        (fingerprint, outcome)
    }))
}

#[derive(Default)]
struct AppendRows {
    sequence: Vec<i64>,
    event_type: Vec<String>,
    event_version: Vec<String>,
    payload: Vec<serde_json::Value>,
    metadata: Vec<serde_json::Value>,
}

enum AppendError {
    Conflict,
    Database(sqlx::Error),
}

/// Appends a command's events in one statement; returns the position of the last one. In a
/// transaction the statement runs in a savepoint, so a conflict leaves the transaction usable.
async fn append(
    store: &mut Store<'_, '_>,
    aggregate_type: &str,
    aggregate_id: &str,
    rows: AppendRows,
) -> Result<i64, AppendError> {
    let query = sqlx::query_scalar::<_, i64>(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         SELECT $1, $2, r.sequence, r.event_type, r.event_version, r.payload, r.metadata \
         FROM unnest($3::bigint[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[]) \
              AS r(sequence, event_type, event_version, payload, metadata) \
         RETURNING global_position",
    )
    .bind(aggregate_type)
    .bind(aggregate_id)
    .bind(&rows.sequence)
    .bind(&rows.event_type)
    .bind(&rows.event_version)
    .bind(&rows.payload)
    .bind(&rows.metadata);
    let positions: Result<Vec<i64>, sqlx::Error> = match store {
        Store::Pool(pool) => query.fetch_all(*pool).await,
        Store::Tx(tx) => {
            let mut savepoint = sqlx::Connection::begin(&mut ***tx).await.map_err(AppendError::Database)?;
            let inserted = query.fetch_all(&mut *savepoint).await;
            match &inserted {
                Ok(_) => savepoint.commit().await.map_err(AppendError::Database)?,
                Err(_) => savepoint.rollback().await.map_err(AppendError::Database)?,
            }
            inserted
        }
    };
    match positions {
        Ok(p) => p.into_iter().max().ok_or(AppendError::Database(sqlx::Error::RowNotFound)),
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23505") => Err(AppendError::Conflict),
        Err(e) => Err(AppendError::Database(e)),
    }
}

/// postgres-es's error as ours, keeping the database error itself (callers tell an unreachable
/// database from other failures by it).
fn store_error(error: cqrs_es::persist::PersistenceError) -> anyhow::Error {
    use cqrs_es::persist::PersistenceError::*;
    match error {
        ConnectionError(inner) | DeserializationError(inner) | UnknownError(inner) => {
            match inner.downcast::<sqlx::Error>() {
                Ok(db) => anyhow::Error::from(*db).context("event store"),
                Err(other) => anyhow::anyhow!("event store: {other}"),
            }
        }
        OptimisticLockError => anyhow::anyhow!("event store: optimistic lock error"),
    }
}
