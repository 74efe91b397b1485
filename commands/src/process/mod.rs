//! Process managers: the write side's "when this happens, do that" — events in, commands out.
//!
//! A manager has a durable name (its checkpoint, its lock and the prefix of every idempotency key
//! it uses; never renamed), says which events it wants, and turns each into commands through
//! [`Effects`]. It is driven by the projections' own gap-free catch-up: [`Managed`] is the
//! [`Projection`] the supervisor runs, so one instance at a time runs each manager (the build's
//! advisory lock; a standby takes over when the holder dies) and its lag shows in `/metrics` and
//! `/ready` (as `degraded`: a manager serves no reads).
//!
//! Exactly-once effects: every command a manager issues for event E carries the idempotency
//! key `<manager>:<E's event id>:<n>` (n counts its commands for E) and E as its causation. A
//! restart, a lost checkpoint, a replay or two instances overlapping re-issue the same keys, and
//! the dispatcher answers them with the first outcome instead of appending again.
//!
//! Timers are data: a manager that must act later sets a timer ([`Effects::set_timer`]) — a row
//! written in the same transaction as its checkpoint — and the [`timers::TimerRunner`] calls
//! [`ProcessManager::on_timer`] when it is due, with keys derived from the timer. Nothing sleeps
//! for the length of a reservation or a wrap-up.
//!
//! Example (the shape of the reservation-timeout manager):
//! ```ignore
//! impl ProcessManager for Reservations {
//!     fn name(&self) -> &'static str { "agent_reservations" }
//!     fn reads(&self) -> EventFilter { EventFilter::events("Agent", &["AgentReserved"]) }
//!     async fn handle(&self, e: &StoredEvent, fx: &mut Effects<'_>) -> anyhow::Result<()> {
//!         let AgentEvent::AgentReserved { offer_id, expires_at, .. } = e.decode()? else { return Ok(()) };
//!         fx.set_timer(format!("offer:{offer_id}"), expires_at, json!({"agent": e.aggregate_id}));
//!         Ok(())
//!     }
//!     async fn on_timer(&self, t: &Timer, fx: &mut Effects<'_>) -> anyhow::Result<()> {
//!         fx.execute::<Agent>(&agent, AgentCommand::ExpireOffer { .. }).await.ok();
//!         Ok(())
//!     }
//! }
//! ```

pub mod agents;
pub mod cloner;
pub mod router;
pub mod timers;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use kraliki_domain::CommandPolicy;
use kraliki_projections::metrics_catalog as catalog;
use kraliki_projections::{BuildTables, EventFilter, Projection, StoredEvent, Wake};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;

use crate::dispatcher::{DispatchError, Dispatcher, Outcome};
use crate::metadata::CommandContext;

pub use timers::{Timer, TimerRunner};

/// Events in, commands out. See the module documentation.
#[async_trait]
pub trait ProcessManager: Send + Sync + 'static {
    /// Durable: checkpoint, lock and idempotency-key prefix. Never changes.
    fn name(&self) -> &'static str;

    /// The events that concern the manager: the only ones its runner reads from the log.
    fn reads(&self) -> EventFilter;

    /// Reacts to one event. An error rolls the batch back and it is handled again (the same
    /// idempotency keys make that safe); a command the domain refuses is a decision, not an
    /// error.
    async fn handle(&self, event: &StoredEvent, effects: &mut Effects<'_>) -> anyhow::Result<()>;

    /// After the events of one batch it wanted, with the last of them as the cause: a manager
    /// that folds many events into one reaction (the router routes a queue once for every call
    /// queued and agent freed in the batch) acts here. Under load batches grow, so the work per
    /// event shrinks as it falls behind instead of growing.
    async fn end_batch(&self, _effects: &mut Effects<'_>) -> anyhow::Result<()> {
        Ok(())
    }

    /// A timer this manager set is due.
    async fn on_timer(&self, _timer: &Timer, _effects: &mut Effects<'_>) -> anyhow::Result<()> {
        Ok(())
    }

    /// After a partial batch, how long its runner waits for more. None by default: a manager
    /// acts as soon as it is told (its batches grow on their own while it is busy), and nobody
    /// reads what it writes before it wrote it.
    fn linger(&self) -> Duration {
        Duration::ZERO
    }

    /// A manager deployed today starts at the head of the log (the default); `false` makes a
    /// first build walk the whole log.
    fn starts_at_head(&self) -> bool {
        true
    }
}

/// What a manager needs around it: shared by its catch-up and its timers.
#[derive(Clone)]
pub struct ManagerEnv {
    pub dispatcher: Dispatcher,
    pub pool: PgPool,
    pub wake: Wake,
    /// Woken when a manager set a timer, so a near one is not left to the next poll.
    pub timers_changed: Arc<Notify>,
    /// Longest a manager waits for a read model to reach what it reacts to.
    pub read_wait: Duration,
}

impl ManagerEnv {
    pub fn new(dispatcher: Dispatcher, pool: PgPool, wake: Wake) -> Self {
        Self { dispatcher, pool, wake, timers_changed: Arc::default(), read_wait: Duration::from_secs(10) }
    }
}

/// What caused the commands a manager issues now: an event, or a timer that came due.
#[derive(Debug, Clone)]
pub struct Cause {
    /// The event id, or `timer:<key>@<due micros>`: the middle part of the idempotency keys.
    pub id: String,
    pub tenant_id: String,
    pub correlation_id: String,
    /// The log position of the event (none for a timer).
    pub position: Option<i64>,
    pub at: DateTime<Utc>,
}

impl Cause {
    /// A cause that is neither an event nor a timer (an operator's or a test's "now"): its id
    /// must be unique to what it stands for.
    pub fn adhoc(id: impl Into<String>, tenant_id: impl Into<String>) -> Self {
        let id = id.into();
        Self { correlation_id: id.clone(), id, tenant_id: tenant_id.into(), position: None, at: Utc::now() }
    }

    fn of(event: &StoredEvent) -> Self {
        let id = event
            .meta("event_id")
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{}/{}/{}", event.aggregate_type, event.aggregate_id, event.sequence));
        Self {
            correlation_id: event.meta("correlation_id").unwrap_or(&id).to_owned(),
            tenant_id: event.meta("tenant_id").unwrap_or_default().to_owned(),
            position: Some(event.global_position),
            at: event.recorded_at,
            id,
        }
    }
}

pub(crate) enum TimerOp {
    Set { key: String, due_at: DateTime<Utc>, tenant_id: String, payload: Value },
    Cancel { key: String },
}

/// How a manager acts: commands with exactly-once keys, timers, reads.
pub struct Effects<'a> {
    env: &'a ManagerEnv,
    manager: &'static str,
    cause: Cause,
    issued: u32,
    pub(crate) timers: Vec<TimerOp>,
}

impl<'a> Effects<'a> {
    pub fn new(env: &'a ManagerEnv, manager: &'static str, cause: Cause) -> Self {
        Self { env, manager, cause, issued: 0, timers: Vec::new() }
    }

    pub fn cause(&self) -> &Cause {
        &self.cause
    }

    pub fn pool(&self) -> &PgPool {
        &self.env.pool
    }

    pub fn env(&self) -> &ManagerEnv {
        self.env
    }

    pub fn dispatcher(&self) -> &Dispatcher {
        &self.env.dispatcher
    }

    /// The context of the next command: the cause's tenant, the manager as actor, the cause as
    /// causation, and the next exactly-once key.
    pub fn next_context(&mut self) -> CommandContext {
        self.context_for(self.cause.tenant_id.clone())
    }

    /// The same, in `tenant_id`'s name (a cause that spans tenants, e.g. a periodic round).
    pub fn context_for(&mut self, tenant_id: String) -> CommandContext {
        let part = self.issued.to_string();
        self.issued += 1;
        self.context_keyed(tenant_id, &part)
    }

    /// A context whose key ends in `part` instead of the running count: for a manager whose
    /// commands for one cause depend on what it reads (a replay may issue fewer or others), so
    /// each names what it is for (`<manager>:<cause>:<part>`), never another command's outcome.
    pub fn context_keyed(&self, tenant_id: String, part: &str) -> CommandContext {
        self.context_caused(&self.cause, tenant_id, part)
    }

    /// The same for another `cause` than the one at hand: an event of the batch whose reaction
    /// [`ProcessManager::end_batch`] issues keeps the key (and causation) of that event.
    pub fn context_caused(&self, cause: &Cause, tenant_id: String, part: &str) -> CommandContext {
        let key = format!("{}:{}:{}", self.manager, cause.id, part);
        CommandContext::new(tenant_id, format!("process:{}", self.manager))
            .with_correlation(cause.correlation_id.clone())
            .with_causation(cause.id.clone())
            .with_idempotency(format!("process:{}", self.manager), key, None)
    }

    /// Issues a command with the next exactly-once key (see the module documentation). A
    /// repeat (after a restart or a replay) answers the first outcome with `replayed` set.
    pub async fn execute<A>(
        &mut self,
        aggregate_id: &str,
        command: A::Command,
    ) -> Result<Outcome, DispatchError<A::Error>>
    where
        A: Aggregate<Services = ()> + Clone + 'static,
        A::Command: CommandPolicy + Clone + Send + Sync,
    {
        let ctx = self.next_context();
        self.execute_with::<A>(aggregate_id, command, ctx).await
    }

    /// Issues a command keyed `<manager>:<cause>:<part>` (see [`Effects::context_keyed`]).
    pub async fn execute_keyed<A>(
        &self,
        part: &str,
        aggregate_id: &str,
        command: A::Command,
    ) -> Result<Outcome, DispatchError<A::Error>>
    where
        A: Aggregate<Services = ()> + Clone + 'static,
        A::Command: CommandPolicy + Clone + Send + Sync,
    {
        self.execute_caused::<A>(&self.cause, part, aggregate_id, command).await
    }

    /// Issues a command keyed `<manager>:<cause>:<part>` for `cause`, an event handled earlier
    /// in the batch (see [`Effects::context_caused`]).
    pub async fn execute_caused<A>(
        &self,
        cause: &Cause,
        part: &str,
        aggregate_id: &str,
        command: A::Command,
    ) -> Result<Outcome, DispatchError<A::Error>>
    where
        A: Aggregate<Services = ()> + Clone + 'static,
        A::Command: CommandPolicy + Clone + Send + Sync,
    {
        let ctx = self.context_caused(cause, cause.tenant_id.clone(), part);
        self.execute_with::<A>(aggregate_id, command, ctx).await
    }

    async fn execute_with<A>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        ctx: CommandContext,
    ) -> Result<Outcome, DispatchError<A::Error>>
    where
        A: Aggregate<Services = ()> + Clone + 'static,
        A::Command: CommandPolicy + Clone + Send + Sync,
    {
        let result = self.env.dispatcher.execute::<A>(aggregate_id, command, &ctx).await;
        let status = match &result {
            Ok(o) if o.replayed => "replayed",
            Ok(_) => "ok",
            Err(DispatchError::Rejected(_)) => "rejected",
            Err(_) => "error",
        };
        metrics::counter!(catalog::PROCESS_COMMANDS.name, "manager" => self.manager, "status" => status)
            .increment(1);
        result
    }

    /// Sets (or moves) the timer `key` to fire at `due_at`; it survives restarts.
    pub fn set_timer(&mut self, key: impl Into<String>, due_at: DateTime<Utc>, payload: Value) {
        let tenant_id = self.cause.tenant_id.clone();
        self.timers.push(TimerOp::Set { key: key.into(), due_at, tenant_id, payload });
    }

    pub fn cancel_timer(&mut self, key: impl Into<String>) {
        self.timers.push(TimerOp::Cancel { key: key.into() });
    }

    /// Writes the timers set so far, on their own (for an ad-hoc cause: event and timer causes
    /// have theirs written with the manager's checkpoint).
    pub async fn save_timers(&mut self) -> Result<(), sqlx::Error> {
        if self.timers.is_empty() {
            return Ok(());
        }
        let mut tx = self.env.pool.begin().await?;
        let set_by = self.cause.id.clone();
        write_timers(&mut tx, self.manager, &set_by, std::mem::take(&mut self.timers)).await?;
        tx.commit().await?;
        self.env.timers_changed.notify_waiters();
        Ok(())
    }

    /// Waits (bounded) until `projection` has applied the cause's event, so what the manager
    /// reads there includes it. A timer has no position: it returns at once.
    pub async fn wait_for(&self, projection: &str) -> anyhow::Result<()> {
        self.wait_for_position(projection, self.cause.position.unwrap_or(0)).await
    }

    /// Waits (bounded) until every one of `projections` has applied the cause's event.
    pub async fn wait_for_all(&self, projections: &[&str]) -> anyhow::Result<()> {
        let position = self.cause.position.unwrap_or(0);
        if position <= 0 {
            return Ok(());
        }
        kraliki_projections::position::wait_for_all(
            &self.env.pool,
            &self.env.wake,
            projections,
            position,
            self.env.read_wait,
        )
        .await?;
        Ok(())
    }

    /// Waits (bounded) until `projection` has applied the log up to `position` (the cause's, or
    /// the manager's own last write, for reading its own writes).
    pub async fn wait_for_position(&self, projection: &str, position: i64) -> anyhow::Result<()> {
        if position <= 0 {
            return Ok(());
        }
        kraliki_projections::position::wait_for(
            &self.env.pool,
            &self.env.wake,
            projection,
            position,
            self.env.read_wait,
        )
        .await?;
        Ok(())
    }
}

/// Writes a manager's timer changes on `conn` (in the caller's transaction).
pub(crate) async fn write_timers(
    conn: &mut PgConnection,
    manager: &str,
    set_by: &str,
    ops: Vec<TimerOp>,
) -> Result<bool, sqlx::Error> {
    let mut set = false;
    for op in ops {
        match op {
            TimerOp::Set { key, due_at, tenant_id, payload } => {
                set = true;
                sqlx::query(
                    "INSERT INTO process_timers (manager, timer_key, due_at, tenant_id, payload, set_by) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (manager, timer_key) DO UPDATE \
                     SET due_at = excluded.due_at, tenant_id = excluded.tenant_id, payload = excluded.payload, \
                         set_by = excluded.set_by",
                )
                .bind(manager)
                .bind(key)
                .bind(due_at)
                .bind(tenant_id)
                .bind(payload)
                .bind(set_by)
                .execute(&mut *conn)
                .await?;
            }
            TimerOp::Cancel { key } => {
                sqlx::query("DELETE FROM process_timers WHERE manager = $1 AND timer_key = $2")
                    .bind(manager)
                    .bind(key)
                    .execute(&mut *conn)
                    .await?;
            }
        }
    }
    Ok(set)
}

/// A process manager as the supervisor runs it: a projection with no tables whose batch
/// handler issues commands, and whose timers commit with its checkpoint.
pub struct Managed {
    manager: Arc<dyn ProcessManager>,
    env: ManagerEnv,
    reads: EventFilter,
    /// The batch being applied set timers: the timer runner is told once it has committed (told
    /// before, it could look, find none yet and sleep until its poll).
    timers_set: std::sync::atomic::AtomicBool,
}

impl Managed {
    pub fn new(manager: Arc<dyn ProcessManager>, env: ManagerEnv) -> Self {
        let reads = manager.reads();
        Self { manager, env, reads, timers_set: Default::default() }
    }
}

#[async_trait]
impl Projection for Managed {
    fn name(&self) -> &'static str {
        self.manager.name()
    }

    fn version(&self) -> i32 {
        // A manager never rebuilds: replaying history would act on it again.
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &[]
    }

    fn serves_reads(&self) -> bool {
        false
    }

    fn starts_at_head(&self) -> bool {
        self.manager.starts_at_head()
    }

    fn reads(&self) -> Option<EventFilter> {
        Some(self.reads.clone())
    }

    fn linger(&self) -> Option<Duration> {
        Some(self.manager.linger())
    }

    fn committed(&self) {
        if self.timers_set.swap(false, std::sync::atomic::Ordering::AcqRel) {
            self.env.timers_changed.notify_waiters();
        }
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        _: &BuildTables,
        events: &[StoredEvent],
    ) -> anyhow::Result<()> {
        let name = self.manager.name();
        // Timer changes are written at the end, so the transaction holds no transaction id (and
        // no catch-up barrier) while the manager waits for read models or issues commands.
        let mut writes = Vec::new();
        let mut last = None;
        for event in events.iter().filter(|e| self.reads.matches(e)) {
            let mut effects = Effects::new(&self.env, name, Cause::of(event));
            self.manager.handle(event, &mut effects).await?;
            metrics::counter!(catalog::PROCESS_EVENTS.name, "manager" => name).increment(1);
            if !effects.timers.is_empty() {
                writes.push((effects.cause.id.clone(), std::mem::take(&mut effects.timers)));
            }
            last = Some(event);
        }
        if let Some(event) = last {
            let mut effects = Effects::new(&self.env, name, Cause::of(event));
            self.manager.end_batch(&mut effects).await?;
            if !effects.timers.is_empty() {
                writes.push((effects.cause.id.clone(), std::mem::take(&mut effects.timers)));
            }
        }
        let mut set = false;
        for (set_by, ops) in writes {
            set |= write_timers(conn, name, &set_by, ops).await?;
        }
        if set {
            self.timers_set.store(true, std::sync::atomic::Ordering::Release);
        }
        Ok(())
    }
}
