//! The write side of Kraliki Voice: loading aggregates from the event store, deciding commands,
//! appending their events with metadata through postgres-es, retrying conflicts where that is
//! safe, and honouring idempotency keys.

pub mod dispatcher;
pub mod import;
pub mod metadata;

pub use dispatcher::{AppendObserver, DispatchError, Dispatcher, Outcome};
pub use metadata::CommandContext;
