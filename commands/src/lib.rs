//! The write side of Kraliki Voice: loading aggregates from the event store, deciding commands,
//! appending their events with metadata, retrying conflicts where that is safe, honouring
//! idempotency keys, and the process managers that turn events into commands.

pub mod dispatcher;
pub mod import;
pub mod metadata;
pub mod process;

pub use dispatcher::{AppendObserver, DispatchError, Dispatcher, Outcome};
pub use metadata::CommandContext;
pub use process::{Cause, Effects, Managed, ManagerEnv, ProcessManager, Timer, TimerRunner};
