//! The read side of Kraliki Voice. Projections read the event log in commit order with the
//! transaction barrier (see `runner`), write their read models and checkpoint in one transaction,
//! and rebuild new versions into fresh tables while the old build keeps serving.

pub mod agent;
pub mod builds;
pub mod call;
pub mod call_list;
pub mod campaign;
pub mod campaign_template;
pub mod company;
pub mod contact;
pub mod contact_import;
pub mod do_not_call;
pub mod event;
pub mod filter;
pub mod ivr_flow;
pub mod ivr_visit;
pub mod keyset;
pub mod metrics_catalog;
pub mod position;
pub mod projection;
pub mod publisher;
pub mod queue;
pub mod queued_call;
pub mod routing_rule;
pub mod runner;
pub mod service_account;
pub mod status;
pub mod team;
pub mod tenant_settings;
pub mod user;
pub mod wake;

pub use event::{Position, StoredEvent};
pub use filter::EventFilter;
pub use projection::{BuildTables, Projection};
pub use runner::{RunnerSettings, Supervisor};
pub use wake::Wake;
