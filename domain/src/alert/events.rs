use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::settings::AlertRuleSettings;

/// Stored forever: never rename a variant. Each carries the rule version it makes or acts on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AlertRuleEvent {
    /// Version 1, enabled.
    AlertRuleCreated { version: u32, settings: AlertRuleSettings, at: DateTime<Utc> },
    /// The next version: the whole settings and the fields that changed.
    AlertRuleUpdated { version: u32, settings: AlertRuleSettings, changed: Vec<String>, at: DateTime<Utc> },
    /// Evaluated again.
    AlertRuleEnabled { version: u32, at: DateTime<Utc> },
    /// No longer evaluated (its firing alert, if any, resolves).
    AlertRuleDisabled { version: u32, at: DateTime<Utc> },
    /// Deleted at this (last) version.
    AlertRuleDeleted { version: u32, at: DateTime<Utc> },
}

impl DomainEvent for AlertRuleEvent {
    fn event_type(&self) -> String {
        match self {
            Self::AlertRuleCreated { .. } => "AlertRuleCreated",
            Self::AlertRuleUpdated { .. } => "AlertRuleUpdated",
            Self::AlertRuleEnabled { .. } => "AlertRuleEnabled",
            Self::AlertRuleDisabled { .. } => "AlertRuleDisabled",
            Self::AlertRuleDeleted { .. } => "AlertRuleDeleted",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
