//! A routing rule: conditions over what is known about a call, hours, a strategy and a target
//! (the seed's rule). Rules are versioned: every create and update is a new version (1, 2, …)
//! carried in the events, and a match names the version it used. [`evaluate_rules`] picks the
//! rule for a call.

mod commands;
mod error;
pub mod evaluate;
mod events;
pub mod settings;
#[cfg(test)]
mod tests;

pub use commands::RoutingRuleCommand;
pub use error::RoutingRuleError;
pub use evaluate::{
    compare, evaluate_rule, evaluate_rules, RouteContext, RuleEvaluation, RuleMatch, RuleRef,
};
pub use events::RoutingRuleEvent;
pub use settings::{Condition, Logic, Operator, RuleSettings, RuleTarget, TargetType};

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The routing-rule aggregate's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoutingRule {
    /// Created.
    pub created: bool,
    /// Deleted.
    pub deleted: bool,
    /// The current version (0 before creation).
    pub version: u32,
    /// The settings at that version.
    pub settings: RuleSettings,
}

impl RoutingRule {
    fn require_exists(&self) -> Result<(), RoutingRuleError> {
        if !self.created || self.deleted {
            return Err(RoutingRuleError::NotFound);
        }
        Ok(())
    }

    /// This rule's current version, for [`evaluate_rules`].
    pub fn as_ref(&self, rule_id: Uuid) -> RuleRef<'_> {
        RuleRef { rule_id, version: self.version, settings: &self.settings }
    }

    /// Decides a command: the events it leads to (none when it changes nothing), or why not.
    pub fn decide(&self, command: RoutingRuleCommand) -> Result<Vec<RoutingRuleEvent>, RoutingRuleError> {
        let event = match command {
            RoutingRuleCommand::CreateRoutingRule { settings, at } => {
                if self.created {
                    return Err(RoutingRuleError::AlreadyExists);
                }
                let settings = settings.validated().map_err(RoutingRuleError::InvalidSettings)?;
                RoutingRuleEvent::RoutingRuleCreated { version: 1, settings, at }
            }
            RoutingRuleCommand::UpdateRoutingRule { patch, at } => {
                self.require_exists()?;
                let settings = self.settings.patched(&patch).map_err(RoutingRuleError::InvalidSettings)?;
                let changed = self.settings.changed_fields(&settings);
                if changed.is_empty() {
                    return Ok(Vec::new());
                }
                RoutingRuleEvent::RoutingRuleUpdated { version: self.version + 1, settings, changed, at }
            }
            RoutingRuleCommand::DeleteRoutingRule { at } => {
                self.require_exists()?;
                RoutingRuleEvent::RoutingRuleDeleted { version: self.version, at }
            }
        };
        Ok(vec![event])
    }
}

impl Aggregate for RoutingRule {
    const TYPE: &'static str = "RoutingRule";
    type Command = RoutingRuleCommand;
    type Event = RoutingRuleEvent;
    type Error = RoutingRuleError;
    type Services = ();

    async fn handle(
        &mut self,
        command: RoutingRuleCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), RoutingRuleError> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: RoutingRuleEvent) {
        match event {
            RoutingRuleEvent::RoutingRuleCreated { version, settings, .. } => {
                self.created = true;
                self.version = version;
                self.settings = settings;
            }
            RoutingRuleEvent::RoutingRuleUpdated { version, settings, .. } => {
                self.version = version;
                self.settings = settings;
            }
            RoutingRuleEvent::RoutingRuleDeleted { .. } => self.deleted = true,
        }
    }
}
