use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::settings::RuleSettings;
use crate::CommandPolicy;

/// What can be asked of a routing rule. Each create and update makes a new version.
// A command lives for one decision; boxing its settings would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum RoutingRuleCommand {
    /// Creates the rule (version 1).
    CreateRoutingRule {
        /// Its settings, checked.
        settings: RuleSettings,
        /// When.
        at: DateTime<Utc>,
    },
    /// A JSON merge patch over the settings (the next version).
    UpdateRoutingRule {
        /// RFC 7396 merge patch.
        patch: Map<String, Value>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Deletes the rule.
    DeleteRoutingRule {
        /// When.
        at: DateTime<Utc>,
    },
}

impl CommandPolicy for RoutingRuleCommand {
    /// Every rule is re-checked against the newer state, so each command is safe to re-decide
    /// (a patch merged over a newer version makes the version after it).
    fn name(&self) -> &'static str {
        match self {
            Self::CreateRoutingRule { .. } => "CreateRoutingRule",
            Self::UpdateRoutingRule { .. } => "UpdateRoutingRule",
            Self::DeleteRoutingRule { .. } => "DeleteRoutingRule",
        }
    }
}
