use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::settings::RuleSettings;

/// Stored forever: never rename a variant. Each carries the version it makes (or ends).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RoutingRuleEvent {
    /// Version 1.
    RoutingRuleCreated { version: u32, settings: RuleSettings, at: DateTime<Utc> },
    /// The next version: the whole settings and the fields that changed.
    RoutingRuleUpdated { version: u32, settings: RuleSettings, changed: Vec<String>, at: DateTime<Utc> },
    /// Deleted at this (last) version.
    RoutingRuleDeleted { version: u32, at: DateTime<Utc> },
}

impl DomainEvent for RoutingRuleEvent {
    fn event_type(&self) -> String {
        match self {
            Self::RoutingRuleCreated { .. } => "RoutingRuleCreated",
            Self::RoutingRuleUpdated { .. } => "RoutingRuleUpdated",
            Self::RoutingRuleDeleted { .. } => "RoutingRuleDeleted",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
