//! The catch-up runner.
//!
//! Reading "every event after position p" by `global_position` alone loses events: a transaction
//! that drew a lower position can commit after a higher one was read. The reader therefore walks
//! the log in `(tx_id, global_position)` order and only up to the oldest transaction still in
//! flight (`pg_snapshot_xmin`): everything below that barrier has committed or never will.
//!
//! One runner per build is active across all processes (a session advisory lock held on the
//! connection that also reads and writes, so losing the connection loses the lock and the work
//! together). A batch's read-model writes and its checkpoint commit in one transaction, and the
//! checkpoint update is fenced on the previous checkpoint, so a batch is applied exactly once
//! even if two runners ever overlapped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection, PgPool};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::builds::{self, Build, BuildStatus};
use crate::event::{Position, StoredEvent, EVENT_COLUMNS};
use crate::filter::EventFilter;
use crate::metrics_catalog as catalog;
use crate::projection::{BuildTables, Projection};
use crate::wake::Wake;

#[derive(Debug, Clone)]
pub struct RunnerSettings {
    /// Events per batch (one transaction each) for a serving build.
    pub batch_size: i64,
    /// Events per batch while a build is rebuilding: nobody reads it yet, so larger
    /// transactions are free to fold several events of one row into one write.
    pub rebuild_batch_size: i64,
    /// Backstop polling when no wake-up arrives.
    pub poll_interval: Duration,
    /// How often a standby retries to take over a build another process runs.
    pub standby_interval: Duration,
    /// Pause after a failed batch before retrying it.
    pub retry_delay: Duration,
    /// After a partial batch, wait this long before reading again: under a steady stream of
    /// appends this turns many one-event transactions into fewer, larger ones (each commit is an
    /// fsync) for a few milliseconds of lag.
    pub linger: Duration,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        Self {
            batch_size: 1000,
            rebuild_batch_size: 50_000,
            poll_interval: Duration::from_millis(500),
            standby_interval: Duration::from_secs(2),
            retry_delay: Duration::from_secs(1),
            linger: Duration::from_millis(5),
        }
    }
}

/// What one read of the log gave a runner: the events it wants, and how far it read.
pub struct Batch {
    pub events: Vec<StoredEvent>,
    /// The place the checkpoint moves to: the last event read, wanted or not.
    pub scanned_to: Option<Position>,
    /// Committed events wait behind the barrier (a transaction older than theirs is still
    /// open): read again soon, whatever is appended meanwhile. Known for a filtered read only.
    pub held: bool,
}

/// Reads the next batch after `after`, below the transaction barrier: every event, or only what
/// `filter` wants (its arrays as [`EventFilter::sql_arrays`] makes them).
pub async fn fetch_batch(
    conn: &mut PgConnection,
    after: Position,
    limit: i64,
    filter: Option<&(Vec<String>, Vec<String>)>,
) -> Result<Batch, sqlx::Error> {
    let Some((aggregates, events)) = filter else {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events \
             WHERE (tx_id, global_position) > ($1::text::xid8, $2) \
               AND tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
             ORDER BY tx_id, global_position LIMIT $3"
        );
        let rows =
            sqlx::query(&sql).bind(after.tx.to_string()).bind(after.pos).bind(limit).fetch_all(conn).await?;
        let events = rows.iter().map(StoredEvent::from_row).collect::<Result<Vec<_>, _>>()?;
        let scanned_to = events.last().map(StoredEvent::position);
        return Ok(Batch { events, scanned_to, held: false });
    };
    // The barrier and the newest event below it first: nothing new (the usual wake-up of a
    // runner that wants little) costs one index probe.
    let (barrier, head_tx, head_pos, held): (i64, Option<i64>, Option<i64>, bool) = sqlx::query_as(
        "WITH b AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS x) \
         SELECT b.x::text::bigint, e.tx, e.global_position, \
                coalesce((SELECT max(tx_id) FROM events) >= b.x, false) FROM b LEFT JOIN LATERAL ( \
             SELECT tx_id::text::bigint AS tx, global_position FROM events \
             WHERE (tx_id, global_position) > ($1::text::xid8, $2) AND tx_id < b.x \
             ORDER BY tx_id DESC, global_position DESC LIMIT 1) e ON true",
    )
    .bind(after.tx.to_string())
    .bind(after.pos)
    .fetch_one(&mut *conn)
    .await?;
    let (Some(tx), Some(pos)) = (head_tx, head_pos) else {
        return Ok(Batch { events: Vec::new(), scanned_to: None, held });
    };
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events \
         WHERE (tx_id, global_position) > ($1::text::xid8, $2) AND tx_id < $3::text::xid8 AND {} \
         ORDER BY tx_id, global_position LIMIT $4",
        EventFilter::sql_condition(5, 6)
    );
    let rows = sqlx::query(&sql)
        .bind(after.tx.to_string())
        .bind(after.pos)
        .bind(barrier.to_string())
        .bind(limit)
        .bind(aggregates)
        .bind(events)
        .fetch_all(conn)
        .await?;
    let events = rows.iter().map(StoredEvent::from_row).collect::<Result<Vec<_>, _>>()?;
    // A full batch may stop short of the head: the next read starts after its last event.
    let scanned_to = if events.len() as i64 >= limit {
        events.last().map(StoredEvent::position)
    } else {
        Some(Position { tx, pos })
    };
    Ok(Batch { events, scanned_to, held })
}

/// Runs every registered projection until cancelled.
#[derive(Clone)]
pub struct Supervisor {
    pool: PgPool,
    wake: Wake,
    settings: RunnerSettings,
    projections: Vec<Arc<dyn Projection>>,
}

impl Supervisor {
    pub fn new(
        pool: PgPool,
        wake: Wake,
        settings: RunnerSettings,
        projections: Vec<Arc<dyn Projection>>,
    ) -> Self {
        for p in &projections {
            wake.register_reads(p.name(), p.reads());
        }
        Self { pool, wake, settings, projections }
    }

    pub fn projections(&self) -> &[Arc<dyn Projection>] {
        &self.projections
    }

    pub fn projection(&self, name: &str) -> Option<Arc<dyn Projection>> {
        self.projections.iter().find(|p| p.name() == name).cloned()
    }

    /// Makes sure every projection has its build now, before the server takes requests: a
    /// process manager that starts at the head of the log takes the head as it is here, so
    /// nothing written after the server started answering is before its start (it would never
    /// see it). The supervisor does the same later for builds that appear meanwhile.
    pub async fn register(&self) -> Result<(), sqlx::Error> {
        for projection in &self.projections {
            builds::ensure(&self.pool, projection.as_ref()).await?;
        }
        Ok(())
    }

    /// Supervises all projections; returns after `shutdown` once in-flight batches finished.
    pub async fn run(self, shutdown: CancellationToken) {
        let tasks: Vec<_> = self
            .projections
            .iter()
            .map(|p| tokio::spawn(supervise(self.clone(), p.clone(), shutdown.clone())))
            .collect();
        for task in tasks {
            if let Err(error) = task.await {
                tracing::error!(%error, "projection supervisor task failed");
            }
        }
    }

    /// Runs one build until it is retired, promoted and idle-cancelled, or `shutdown` fires.
    /// Used by the supervisor and by the CLI's rebuild command.
    pub async fn run_build(
        &self,
        projection: Arc<dyn Projection>,
        build: Build,
        shutdown: CancellationToken,
    ) {
        Worker {
            ctx: self.clone(),
            filter: projection.reads().map(|f| f.sql_arrays()),
            types: projection.reads().map(|f| f.aggregate_types()),
            projection,
            build_id: build.build_id,
            shutdown,
            indexed: Default::default(),
        }
        .run()
        .await;
    }
}

async fn supervise(ctx: Supervisor, projection: Arc<dyn Projection>, shutdown: CancellationToken) {
    let mut running: HashMap<i32, JoinHandle<()>> = HashMap::new();
    let mut builds_changed = ctx.wake.subscribe_builds();
    loop {
        builds_changed.borrow_and_update();
        match builds::ensure(&ctx.pool, projection.as_ref()).await {
            Ok(current) => {
                for build in current {
                    if build.version != projection.version() || running.contains_key(&build.build_id) {
                        continue;
                    }
                    let worker = Worker {
                        ctx: ctx.clone(),
                        filter: projection.reads().map(|f| f.sql_arrays()),
                        types: projection.reads().map(|f| f.aggregate_types()),
                        projection: projection.clone(),
                        build_id: build.build_id,
                        shutdown: shutdown.clone(),
                        indexed: Default::default(),
                    };
                    running.insert(build.build_id, tokio::spawn(worker.run()));
                }
            }
            Err(error) => {
                tracing::warn!(%error, projection = projection.name(), "could not read projection builds")
            }
        }
        running.retain(|_, handle| !handle.is_finished());
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = builds_changed.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
    for (_, handle) in running {
        let _ = handle.await;
    }
}

struct Worker {
    ctx: Supervisor,
    projection: Arc<dyn Projection>,
    /// What it reads, as the query binds it (`None`: everything).
    filter: Option<(Vec<String>, Vec<String>)>,
    /// The aggregate types it reads (`None`: every type).
    types: Option<Vec<&'static str>>,
    build_id: i32,
    shutdown: CancellationToken,
    /// The deferred indexes exist (checked once per runner).
    indexed: std::sync::atomic::AtomicBool,
}

enum Step {
    /// A full batch: read on at once.
    Continue,
    /// A partial batch: more is likely on its way; read again after the linger.
    Partial,
    /// Nothing it reads: read again when something of a type it reads is appended, or on the
    /// poll (the checkpoint moved over what it ignores, or nothing was new).
    Idle,
    Stop,
}

impl Worker {
    /// A caught-up build gets its secondary indexes before it may serve reads.
    async fn prepare_to_serve(&self) -> Result<bool, sqlx::Error> {
        use std::sync::atomic::Ordering;
        if !self.indexed.load(Ordering::Acquire) {
            builds::create_deferred_indexes(&self.ctx.pool, self.projection.as_ref(), self.build_id).await?;
            self.indexed.store(true, Ordering::Release);
        }
        Ok(true)
    }

    fn label(&self) -> String {
        format!("{}#{}", self.projection.name(), self.build_id)
    }

    async fn run(self) {
        let Some(mut conn) = self.take_lock().await else { return };
        tracing::info!(build = self.label(), "projection runner took over");
        let tables = BuildTables::new(self.projection.tables(), self.build_id);
        let mut appended = self.ctx.wake.subscribe_appended();
        let hurried = self.ctx.wake.hurried(self.projection.name());
        let mut build: Option<Build> = None;
        // The number of the newest append when the last read began.
        let mut seen = 0;
        let mut idle = false;
        while !self.shutdown.is_cancelled() {
            if idle {
                // Appends of types it does not read wake it for nothing: it sleeps through them.
                let poll = tokio::time::Instant::now() + self.ctx.settings.poll_interval;
                while !self.ctx.wake.appended_since(seen, self.types.as_deref()) {
                    tokio::select! {
                        _ = self.shutdown.cancelled() => break,
                        _ = appended.changed() => {}
                        _ = tokio::time::sleep_until(poll) => break,
                    }
                }
                if self.shutdown.is_cancelled() {
                    break;
                }
            }
            appended.borrow_and_update();
            seen = self.ctx.wake.appended_seq();
            let step = match self.step(&mut conn, &tables, &mut build).await {
                Ok(step) => step,
                Err(error) => {
                    tracing::error!(
                        build = self.label(),
                        error = format!("{error:#}"),
                        "projection batch failed; retrying"
                    );
                    metrics::counter!(catalog::PROJECTION_ERRORS.name, "projection" => self.projection.name()).increment(1);
                    build = None;
                    if conn.ping().await.is_err() {
                        // The lock went with the connection: start over as a standby.
                        drop(conn);
                        let Some(fresh) = self.take_lock().await else { return };
                        conn = fresh;
                    }
                    tokio::select! {
                        _ = self.shutdown.cancelled() => break,
                        _ = tokio::time::sleep(self.ctx.settings.retry_delay) => {}
                    }
                    Step::Continue
                }
            };
            idle = matches!(step, Step::Idle);
            match step {
                Step::Continue | Step::Idle => {}
                Step::Partial => {
                    let linger = self.projection.linger().unwrap_or(self.ctx.settings.linger);
                    if !linger.is_zero() {
                        tokio::select! {
                            _ = self.shutdown.cancelled() => break,
                            _ = tokio::time::sleep(linger) => {}
                            _ = hurried.notified() => {}
                        }
                    }
                }
                Step::Stop => break,
            }
        }
        let _ = sqlx::query(
            "SELECT pg_advisory_unlock(hashtext('kraliki.projection'), hashtext($1 || '#' || $2))",
        )
        .bind(self.projection.name())
        .bind(self.build_id.to_string())
        .execute(&mut conn)
        .await;
        let _ = conn.close().await;
        // A runner that stops because its build was retired cleans up after itself: nothing
        // of its own holds the tables any more.
        let retired = match self.ctx.pool.acquire().await {
            Ok(mut c) => builds::get(&mut c, self.projection.name(), self.build_id)
                .await
                .ok()
                .flatten()
                .is_some_and(|b| b.status == BuildStatus::Retired),
            Err(_) => false,
        };
        if retired {
            builds::drop_retired_tables(&self.ctx.pool, self.projection.as_ref()).await;
        }
        tracing::info!(build = self.label(), "projection runner stopped");
    }

    /// Waits as a standby until this process holds the build's lock. `None` when shutting down
    /// or when the build was retired meanwhile. The connection is detached from the pool: if this
    /// runner is dropped mid-batch (task aborted), closing it rolls back and releases the lock,
    /// instead of parking a locked session in the pool.
    async fn take_lock(&self) -> Option<PgConnection> {
        loop {
            let attempt = async {
                let mut conn = self.ctx.pool.acquire().await?.detach();
                // A build's tables start empty and grow: a generic plan cached while they were
                // empty (a sequential scan) would stay while they grow. Plan with the values.
                sqlx::query("SET plan_cache_mode = force_custom_plan").execute(&mut conn).await?;
                // A batch and its checkpoint commit together, so a crash can only lose both: the
                // events are then applied again. Durability per batch buys nothing here and
                // costs an fsync that competes with the appends'.
                sqlx::query("SET synchronous_commit = off").execute(&mut conn).await?;
                let got: bool = sqlx::query_scalar(
                    "SELECT pg_try_advisory_lock(hashtext('kraliki.projection'), hashtext($1 || '#' || $2))",
                )
                .bind(self.projection.name())
                .bind(self.build_id.to_string())
                .fetch_one(&mut conn)
                .await?;
                let build = builds::get(&mut conn, self.projection.name(), self.build_id).await?;
                Ok::<_, sqlx::Error>((conn, got, build))
            }
            .await;
            match attempt {
                Ok((conn, true, Some(build))) if build.status != BuildStatus::Retired => return Some(conn),
                Ok((conn, true, _)) => {
                    // Retired or gone: nothing to run. Release and leave.
                    let _ = conn.close().await;
                    return None;
                }
                Ok((_, false, Some(build))) if build.status == BuildStatus::Retired => return None,
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, build = self.label(), "could not try the runner lock"),
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return None,
                _ = tokio::time::sleep(self.ctx.settings.standby_interval) => {}
            }
        }
    }

    async fn step(
        &self,
        conn: &mut PgConnection,
        tables: &BuildTables,
        cached: &mut Option<Build>,
    ) -> anyhow::Result<Step> {
        let build = match cached.take() {
            Some(build) => build,
            None => match builds::get(conn, self.projection.name(), self.build_id).await? {
                Some(build) => build,
                None => return Ok(Step::Stop),
            },
        };
        if build.status == BuildStatus::Retired {
            return Ok(Step::Stop);
        }
        let limit = match build.status {
            BuildStatus::Building => self.ctx.settings.rebuild_batch_size,
            _ => self.ctx.settings.batch_size,
        };
        let Batch { events, scanned_to, held } =
            fetch_batch(conn, build.checkpoint, limit, self.filter.as_ref()).await?;
        let Some(last) = scanned_to.filter(|to| *to > build.checkpoint) else {
            if build.status == BuildStatus::Building
                && self.prepare_to_serve().await?
                && builds::try_activate(&self.ctx.pool, self.projection.as_ref(), self.build_id).await?
            {
                self.ctx.wake.builds_changed();
                self.ctx.wake.projected();
            }
            // Re-read the build next time: it may have been promoted or retired meanwhile.
            return Ok(if held { Step::Partial } else { Step::Idle });
        };
        let started = Instant::now();
        let mut tx = Connection::begin(&mut *conn).await?;
        if !events.is_empty() {
            self.projection.apply(&mut tx, tables, &events).await?;
        }
        let moved = sqlx::query(
            "UPDATE projection_builds SET last_tx = $3::text::xid8, last_position = $4, \
             events_done = events_done + $5, updated_at = now() \
             WHERE name = $1 AND build_id = $2 AND status <> 'retired' \
               AND last_tx = $6::text::xid8 AND last_position = $7",
        )
        .bind(self.projection.name())
        .bind(self.build_id)
        .bind(last.tx.to_string())
        .bind(last.pos)
        .bind(events.len() as i64)
        .bind(build.checkpoint.tx.to_string())
        .bind(build.checkpoint.pos)
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() != 1 {
            // Someone else moved this checkpoint or retired the build: drop the batch, re-read.
            tx.rollback().await?;
            tracing::warn!(build = self.label(), "checkpoint moved under us; batch discarded");
            return Ok(Step::Continue);
        }
        tx.commit().await?;
        self.projection.committed();
        let name = self.projection.name();
        metrics::counter!(catalog::PROJECTION_EVENTS.name, "projection" => name)
            .increment(events.len() as u64);
        if !events.is_empty() {
            metrics::histogram!(catalog::PROJECTION_BATCH_DURATION.name, "projection" => name)
                .record(started.elapsed().as_secs_f64());
        }
        if let Some(newest) = events.last() {
            let lag = (chrono::Utc::now() - newest.recorded_at).num_microseconds().unwrap_or(0) as f64 / 1e6;
            metrics::histogram!(catalog::PROJECTION_APPLY_LAG.name, "projection" => name)
                .record(lag.max(0.0));
        }
        self.ctx.wake.projected();
        let full = events.len() as i64 >= limit;
        if !full && build.status == BuildStatus::Building {
            // A partial batch reached the head of the log: under continuous writes an empty read
            // may never come, so this is the moment to try the switch-over.
            if self.prepare_to_serve().await?
                && builds::try_activate(&self.ctx.pool, self.projection.as_ref(), self.build_id).await?
            {
                self.ctx.wake.builds_changed();
                self.ctx.wake.projected();
                return Ok(Step::Partial);
            }
        }
        *cached =
            Some(Build { checkpoint: last, events_done: build.events_done + events.len() as i64, ..build });
        Ok(if full {
            Step::Continue
        } else if events.is_empty() && !held {
            // Only what it ignores was new, and nothing waits behind the barrier.
            Step::Idle
        } else {
            Step::Partial
        })
    }
}
