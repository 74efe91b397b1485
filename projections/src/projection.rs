//! What a projection is: a durable name, a version, the tables it owns and a batch handler.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::PgConnection;

use crate::event::StoredEvent;
use crate::filter::EventFilter;

/// The physical tables of one build: `company_view` → `company_view_b3`.
#[derive(Debug, Clone, Default)]
pub struct BuildTables {
    names: HashMap<&'static str, String>,
}

/// A value as the JSON a read-model column stores.
pub(crate) fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::to_value(value)?)
}

impl BuildTables {
    pub fn new(bases: &[&'static str], build_id: i32) -> Self {
        let names = bases.iter().map(|b| (*b, format!("{b}_b{build_id}"))).collect();
        Self { names }
    }

    /// The physical name for a base table. Names come from code, never from input.
    pub fn get(&self, base: &str) -> &str {
        self.names.get(base).map(String::as_str).unwrap_or_else(|| {
            // A projection asking for a table it did not declare is a programming error that
            // every test of that projection hits at once.
            panic!("table {base} is not declared by this projection")
        })
    }

    /// Every physical table of the build.
    pub fn physical(&self) -> impl Iterator<Item = &str> {
        self.names.values().map(String::as_str)
    }
}

#[async_trait]
pub trait Projection: Send + Sync + 'static {
    /// Durable: checkpoint key, lock key and NATS durable name. Never changes.
    fn name(&self) -> &'static str;

    /// Bumped when the handler's logic or tables change; a new version rebuilds from the start
    /// into fresh tables while the previous build keeps serving.
    fn version(&self) -> i32;

    /// Base names of the read-model tables. Each has `<base>_template` in the migrations (the
    /// schema), and a view `<base>` that points at the active build's copy.
    fn tables(&self) -> &'static [&'static str];

    /// Whether readers depend on this build being current. A read model's lag makes `/ready`
    /// fail; the lag of one that serves nobody's reads (the NATS publisher, process managers)
    /// only makes it `degraded`: taking every instance out of a load balancer would not help it.
    fn serves_reads(&self) -> bool {
        true
    }

    /// Where a new build starts: the beginning of the log (read models, which must see
    /// everything), or its head (process managers: a manager deployed today must not act on
    /// last year's events).
    fn starts_at_head(&self) -> bool {
        false
    }

    /// After a partial batch, how long its runner waits for more before reading again (larger
    /// batches under load); `None`: the runner's setting. A reader waiting for it cuts the wait
    /// short (see [`crate::Wake::hurry`]).
    fn linger(&self) -> Option<std::time::Duration> {
        None
    }

    /// After the transaction that applied a batch (and moved the checkpoint) committed: what
    /// must not be announced before the batch's writes are visible (a process manager's timers).
    fn committed(&self) {}

    /// The events this projection reads; `None` (the default) reads every event. The runner
    /// asks the log for these only and moves the checkpoint over the rest, so what a read model
    /// ignores costs it nothing (a routing decision carries every candidate: tens of KB).
    fn reads(&self) -> Option<EventFilter> {
        None
    }

    /// Apply a batch of events, in log order, inside the transaction that also moves the
    /// checkpoint. An error rolls back the batch and the runner retries it.
    async fn apply(
        &self,
        conn: &mut PgConnection,
        tables: &BuildTables,
        events: &[StoredEvent],
    ) -> anyhow::Result<()>;
}
