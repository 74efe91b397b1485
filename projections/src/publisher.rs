//! The event publisher: a projection whose "read model" is the outside world. Every event goes
//! to JetStream on `<prefix>.<tenant>.<aggregate_type>.<aggregate_id>` with `Nats-Msg-Id` = the
//! event id; without NATS it fans out in-process.
//!
//! No duplicates after restarts or rebuilds: before each batch the publisher reads the position
//! of the last message in the stream (header `Kraliki-Position`) and skips everything up to it.
//! The stream itself is the checkpoint that matters; `Nats-Msg-Id` de-duplication covers two
//! publishers racing within the duplicate window.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use async_nats::HeaderMap;
use async_trait::async_trait;
use bytes::Bytes;
use sqlx::PgConnection;
use tokio::sync::broadcast;

use crate::event::{Position, StoredEvent};
use crate::projection::{BuildTables, Projection};

pub const NAME: &str = "event_publisher";
pub const POSITION_HEADER: &str = "Kraliki-Position";

#[derive(Debug, Clone)]
pub struct NatsSettings {
    /// Subject prefix, `kraliki.events` by default.
    pub subject_prefix: String,
    /// JetStream stream name, `KRALIKI_EVENTS` by default.
    pub stream: String,
    pub duplicate_window: Duration,
}

impl Default for NatsSettings {
    fn default() -> Self {
        Self {
            subject_prefix: "kraliki.events".into(),
            stream: "KRALIKI_EVENTS".into(),
            duplicate_window: Duration::from_secs(120),
        }
    }
}

/// Where events fan out to.
#[derive(Clone)]
pub enum Sink {
    Nats { js: Box<jetstream::Context>, settings: NatsSettings, ready: Arc<AtomicBool> },
    Local(broadcast::Sender<Arc<StoredEvent>>),
}

impl Sink {
    /// JetStream over `client`; the stream is made sure of before the first batch (and again
    /// after a failure), so a server starts while NATS is down.
    pub fn nats(client: async_nats::Client, settings: NatsSettings) -> Self {
        Self::Nats { js: Box::new(jetstream::new(client)), settings, ready: Arc::default() }
    }
}

/// Creates the stream if it does not exist, with our subjects and duplicate window.
pub async fn ensure_stream(js: &jetstream::Context, settings: &NatsSettings) -> anyhow::Result<()> {
    js.get_or_create_stream(stream::Config {
        name: settings.stream.clone(),
        subjects: vec![format!("{}.>", settings.subject_prefix)],
        duplicate_window: settings.duplicate_window,
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await?;
    Ok(())
}

/// A subject token must not contain `.`, `*`, `>` or white space.
fn token(raw: &str) -> String {
    let cleaned: String = raw
        .chars()
        .map(|c| if c == '.' || c == '*' || c == '>' || c.is_whitespace() { '_' } else { c })
        .collect();
    if cleaned.is_empty() {
        "_".into()
    } else {
        cleaned
    }
}

pub fn subject(prefix: &str, event: &StoredEvent) -> String {
    let tenant = event.meta("tenant_id").unwrap_or("_");
    format!("{prefix}.{}.{}.{}", token(tenant), token(&event.aggregate_type), token(&event.aggregate_id))
}

pub fn encode_position(p: Position) -> String {
    format!("{}.{}", p.tx, p.pos)
}

pub fn decode_position(raw: &str) -> Option<Position> {
    let (tx, pos) = raw.split_once('.')?;
    Some(Position { tx: tx.parse().ok()?, pos: pos.parse().ok()? })
}

/// The position of the newest message in the stream, if any.
pub async fn published_high_water(
    js: &jetstream::Context,
    stream_name: &str,
) -> anyhow::Result<Option<Position>> {
    let mut stream = js.get_stream(stream_name).await?;
    let last = stream.info().await?.state.last_sequence;
    if last == 0 {
        return Ok(None);
    }
    let message = stream.get_raw_message(last).await?;
    Ok(message.headers.get(POSITION_HEADER).and_then(|v| decode_position(v.as_str())))
}

pub struct EventPublisher {
    sink: Sink,
}

impl EventPublisher {
    pub fn new(sink: Sink) -> Self {
        Self { sink }
    }
}

#[async_trait]
impl Projection for EventPublisher {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &[]
    }

    fn serves_reads(&self) -> bool {
        false
    }

    async fn apply(
        &self,
        _: &mut PgConnection,
        _: &BuildTables,
        events: &[StoredEvent],
    ) -> anyhow::Result<()> {
        match &self.sink {
            Sink::Local(tx) => {
                for event in events {
                    // No receivers is fine: nobody is listening in this process.
                    let _ = tx.send(Arc::new(event.clone()));
                }
            }
            Sink::Nats { js, settings, ready } => {
                if !ready.load(Ordering::Acquire) {
                    ensure_stream(js, settings).await?;
                    ready.store(true, Ordering::Release);
                }
                let high_water = published_high_water(js, &settings.stream).await?;
                let mut acks = Vec::with_capacity(events.len());
                for event in events.iter().filter(|e| high_water.is_none_or(|h| e.position() > h)) {
                    let mut headers = HeaderMap::new();
                    let id = event.meta("event_id").map(str::to_owned).unwrap_or_else(|| {
                        format!("{}/{}/{}", event.aggregate_type, event.aggregate_id, event.sequence)
                    });
                    headers.insert("Nats-Msg-Id", id.as_str());
                    headers.insert(POSITION_HEADER, encode_position(event.position()).as_str());
                    headers.insert("Kraliki-Event-Type", event.event_type.as_str());
                    let body = Bytes::from(serde_json::to_vec(event)?);
                    // Publishes are sent in order on one connection; acks are awaited together.
                    acks.push(
                        js.publish_with_headers(subject(&settings.subject_prefix, event), headers, body)
                            .await?,
                    );
                }
                for ack in acks {
                    ack.await?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip() {
        let p = Position { tx: 7_000_001, pos: 42 };
        assert_eq!(decode_position(&encode_position(p)), Some(p));
        assert_eq!(decode_position("x"), None);
    }

    #[test]
    fn subject_tokens_are_safe() {
        assert_eq!(token("a.b*c>d e"), "a_b_c_d_e");
        assert_eq!(token(""), "_");
    }
}
