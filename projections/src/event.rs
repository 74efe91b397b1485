//! An event as the read side sees it: the stored row with its place in the log.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::Row;

/// A place in the log, ordered as the catch-up reader walks it: by committing transaction's id,
/// then by position. `(0, 0)` is before everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Position {
    pub tx: i64,
    pub pos: i64,
}

impl Position {
    pub const START: Position = Position { tx: 0, pos: 0 };
}

/// The columns every read of events selects, in the order `StoredEvent::from_row` expects.
pub const EVENT_COLUMNS: &str = "global_position, tx_id::text::bigint AS tx, aggregate_type, \
    aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredEvent {
    pub global_position: i64,
    pub tx: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
    pub metadata: Value,
    pub recorded_at: DateTime<Utc>,
}

impl StoredEvent {
    pub fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            global_position: row.try_get("global_position")?,
            tx: row.try_get("tx")?,
            aggregate_type: row.try_get("aggregate_type")?,
            aggregate_id: row.try_get("aggregate_id")?,
            sequence: row.try_get("sequence")?,
            event_type: row.try_get("event_type")?,
            event_version: row.try_get("event_version")?,
            payload: row.try_get("payload")?,
            metadata: row.try_get("metadata")?,
            recorded_at: row.try_get("recorded_at")?,
        })
    }

    pub fn position(&self) -> Position {
        Position { tx: self.tx, pos: self.global_position }
    }

    /// The tenant the event belongs to (metadata `tenant_id`), for tenant-scoped read models.
    pub fn tenant(&self) -> anyhow::Result<uuid::Uuid> {
        Ok(self.meta("tenant_id").ok_or_else(|| anyhow::anyhow!("event without tenant"))?.parse()?)
    }

    /// A metadata entry (`tenant_id`, `event_id`, `actor`, ...).
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(Value::as_str)
    }

    /// The cqrs-es payload is externally tagged (`{"CompanyCreated": {...}}`): decode it into the
    /// aggregate's event enum.
    pub fn decode<E: serde::de::DeserializeOwned>(&self) -> Result<E, serde_json::Error> {
        E::deserialize(&self.payload)
    }
}
