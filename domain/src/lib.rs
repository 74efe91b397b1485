//! Kraliki Voice's domain: aggregates (state, commands, events, errors, invariants) and the
//! pure rules around them. No I/O here: time, ids and randomness come in through commands.

pub mod agent;
pub mod alert;
pub mod call;
pub mod call_list;
pub mod campaign;
pub mod campaign_template;
pub mod company;
pub mod contact;
pub mod contact_import;
pub mod do_not_call;
pub mod ivr;
pub mod kpi;
pub mod metric;
pub mod pacing;
pub mod providers;
pub mod queue;
pub mod queued_call;
pub mod routing;
pub mod routing_rule;
pub mod schedule;
pub mod service_account;
pub mod staffing;
pub mod team;
pub mod tenant_settings;
pub mod user;
pub mod values;

/// How the command layer may treat a command when its append meets a concurrent writer.
///
/// A command is "safe to re-decide" when running `handle` again on the newer state gives the
/// answer the caller wants (the rule is re-checked against what happened in between). Commands
/// that carry a decision made from an older view (an expected version, an offer to a specific
/// agent) are not: the caller gets a conflict and decides again.
pub trait CommandPolicy {
    fn retry_on_conflict(&self) -> bool {
        true
    }

    /// A short, stable name for logs and metrics (`CreateCompany`).
    fn name(&self) -> &'static str;
}
