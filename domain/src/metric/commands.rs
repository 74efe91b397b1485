use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::settings::MetricDefinitionSettings;
use crate::CommandPolicy;

/// What can be asked of a metric definition. Each create and update makes a new version.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricDefinitionCommand {
    /// Defines the metric (version 1).
    CreateMetricDefinition {
        /// Its settings, checked.
        settings: MetricDefinitionSettings,
        /// When.
        at: DateTime<Utc>,
    },
    /// A JSON merge patch over the settings (the next version); the name cannot change.
    UpdateMetricDefinition {
        /// RFC 7396 merge patch.
        patch: Map<String, Value>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Deletes the definition.
    DeleteMetricDefinition {
        /// When.
        at: DateTime<Utc>,
    },
}

impl CommandPolicy for MetricDefinitionCommand {
    /// Every rule is re-checked against the newer state, so each command is safe to re-decide.
    fn name(&self) -> &'static str {
        match self {
            Self::CreateMetricDefinition { .. } => "CreateMetricDefinition",
            Self::UpdateMetricDefinition { .. } => "UpdateMetricDefinition",
            Self::DeleteMetricDefinition { .. } => "DeleteMetricDefinition",
        }
    }
}
