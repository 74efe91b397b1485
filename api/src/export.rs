//! `kraliki events export`: the log as NDJSON, in commit order, filtered by stream, event type
//! and time range. Streams rows, so the whole log never sits in memory.

use std::io::Write;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use kraliki_projections::event::{StoredEvent, EVENT_COLUMNS};
use sqlx::{PgPool, QueryBuilder};

#[derive(Debug, Clone, Default)]
pub struct ExportFilter {
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
    pub event_types: Vec<String>,
    pub tenant: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// Writes matching events, one JSON object per line; returns how many.
pub async fn export(pool: &PgPool, filter: &ExportFilter, out: &mut dyn Write) -> anyhow::Result<u64> {
    let mut q = QueryBuilder::new(format!("SELECT {EVENT_COLUMNS} FROM events WHERE true"));
    if let Some(t) = &filter.aggregate_type {
        q.push(" AND aggregate_type = ").push_bind(t.clone());
    }
    if let Some(id) = &filter.aggregate_id {
        q.push(" AND aggregate_id = ").push_bind(id.clone());
    }
    if !filter.event_types.is_empty() {
        q.push(" AND event_type = ANY(").push_bind(filter.event_types.clone()).push(")");
    }
    if let Some(tenant) = &filter.tenant {
        q.push(" AND metadata ->> 'tenant_id' = ").push_bind(tenant.clone());
    }
    if let Some(since) = filter.since {
        q.push(" AND recorded_at >= ").push_bind(since);
    }
    if let Some(until) = filter.until {
        q.push(" AND recorded_at < ").push_bind(until);
    }
    q.push(" ORDER BY tx_id, global_position");
    let mut rows = q.build().fetch(pool);
    let mut count = 0;
    while let Some(row) = rows.try_next().await? {
        let event = StoredEvent::from_row(&row)?;
        serde_json::to_writer(&mut *out, &event)?;
        out.write_all(b"\n")?;
        count += 1;
    }
    out.flush()?;
    Ok(count)
}
