use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::settings::AlertRuleSettings;
use crate::CommandPolicy;

/// What can be asked of an alert rule. Each create and update makes a new version.
// A command lives for one decision; boxing its settings would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum AlertRuleCommand {
    /// Creates the rule (version 1), enabled.
    CreateAlertRule {
        /// Its settings, checked.
        settings: AlertRuleSettings,
        /// When.
        at: DateTime<Utc>,
    },
    /// A JSON merge patch over the settings (the next version).
    UpdateAlertRule {
        /// RFC 7396 merge patch.
        patch: Map<String, Value>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The engine evaluates it again (nothing when enabled already).
    EnableAlertRule {
        /// When.
        at: DateTime<Utc>,
    },
    /// The engine stops evaluating it (nothing when disabled already).
    DisableAlertRule {
        /// When.
        at: DateTime<Utc>,
    },
    /// Deletes the rule.
    DeleteAlertRule {
        /// When.
        at: DateTime<Utc>,
    },
}

impl CommandPolicy for AlertRuleCommand {
    /// Every rule is re-checked against the newer state, so each command is safe to re-decide.
    fn name(&self) -> &'static str {
        match self {
            Self::CreateAlertRule { .. } => "CreateAlertRule",
            Self::UpdateAlertRule { .. } => "UpdateAlertRule",
            Self::EnableAlertRule { .. } => "EnableAlertRule",
            Self::DisableAlertRule { .. } => "DisableAlertRule",
            Self::DeleteAlertRule { .. } => "DeleteAlertRule",
        }
    }
}
