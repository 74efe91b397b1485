//! Alerting: an alert rule (`AlertRule`, the seed's "threshold") says when a metric or KPI value
//! is bad; [`evaluate()`] is the engine's pure step over observations (pending, firing, resolved,
//! with for-duration, cooldown and hysteresis); [`raised::Alert`] is one raised alert, with who
//! acknowledged and resolved it. Rules are versioned like routing rules; a raised alert names
//! the rule version that fired it.

mod commands;
mod error;
pub mod evaluate;
mod events;
pub mod raised;
pub mod settings;
#[cfg(test)]
mod tests;

pub use commands::AlertRuleCommand;
pub use error::AlertRuleError;
pub use evaluate::{
    evaluate, next_check_at, stop, AlertState, AlertStatus, AlertTransition, Evaluation, Observation,
};
pub use events::AlertRuleEvent;
pub use settings::{AlertRuleSettings, Comparator, NotificationChannel, Recipient, Severity};

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

/// The alert-rule aggregate's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertRule {
    /// Created.
    pub created: bool,
    /// Deleted.
    pub deleted: bool,
    /// Evaluated by the engine (the seed's `is_active`); rules are created enabled.
    pub enabled: bool,
    /// The current version (0 before creation).
    pub version: u32,
    /// The settings at that version.
    pub settings: AlertRuleSettings,
}

impl AlertRule {
    fn require_exists(&self) -> Result<(), AlertRuleError> {
        if !self.created || self.deleted {
            return Err(AlertRuleError::NotFound);
        }
        Ok(())
    }

    /// Decides a command: the events it leads to (none when it changes nothing), or why not.
    pub fn decide(&self, command: AlertRuleCommand) -> Result<Vec<AlertRuleEvent>, AlertRuleError> {
        let event = match command {
            AlertRuleCommand::CreateAlertRule { settings, at } => {
                if self.created {
                    return Err(AlertRuleError::AlreadyExists);
                }
                let settings = settings.validated().map_err(AlertRuleError::InvalidSettings)?;
                AlertRuleEvent::AlertRuleCreated { version: 1, settings, at }
            }
            AlertRuleCommand::UpdateAlertRule { patch, at } => {
                self.require_exists()?;
                let settings = self.settings.patched(&patch).map_err(AlertRuleError::InvalidSettings)?;
                let changed = self.settings.changed_fields(&settings);
                if changed.is_empty() {
                    return Ok(Vec::new());
                }
                AlertRuleEvent::AlertRuleUpdated { version: self.version + 1, settings, changed, at }
            }
            AlertRuleCommand::EnableAlertRule { at } => {
                self.require_exists()?;
                if self.enabled {
                    return Ok(Vec::new());
                }
                AlertRuleEvent::AlertRuleEnabled { version: self.version, at }
            }
            AlertRuleCommand::DisableAlertRule { at } => {
                self.require_exists()?;
                if !self.enabled {
                    return Ok(Vec::new());
                }
                AlertRuleEvent::AlertRuleDisabled { version: self.version, at }
            }
            AlertRuleCommand::DeleteAlertRule { at } => {
                self.require_exists()?;
                AlertRuleEvent::AlertRuleDeleted { version: self.version, at }
            }
        };
        Ok(vec![event])
    }
}

impl Aggregate for AlertRule {
    const TYPE: &'static str = "AlertRule";
    type Command = AlertRuleCommand;
    type Event = AlertRuleEvent;
    type Error = AlertRuleError;
    type Services = ();

    async fn handle(
        &mut self,
        command: AlertRuleCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), AlertRuleError> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: AlertRuleEvent) {
        match event {
            AlertRuleEvent::AlertRuleCreated { version, settings, .. } => {
                self.created = true;
                self.enabled = true;
                self.version = version;
                self.settings = settings;
            }
            AlertRuleEvent::AlertRuleUpdated { version, settings, .. } => {
                self.version = version;
                self.settings = settings;
            }
            AlertRuleEvent::AlertRuleEnabled { .. } => self.enabled = true,
            AlertRuleEvent::AlertRuleDisabled { .. } => self.enabled = false,
            AlertRuleEvent::AlertRuleDeleted { .. } => self.deleted = true,
        }
    }
}
