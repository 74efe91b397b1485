use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::settings::MetricDefinitionSettings;

/// Stored forever: never rename a variant. Each carries the version it makes (or ends).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MetricDefinitionEvent {
    /// Version 1.
    MetricDefinitionCreated { version: u32, settings: MetricDefinitionSettings, at: DateTime<Utc> },
    /// The next version: the whole settings and the fields that changed.
    MetricDefinitionUpdated {
        version: u32,
        settings: MetricDefinitionSettings,
        changed: Vec<String>,
        at: DateTime<Utc>,
    },
    /// Deleted at this (last) version.
    MetricDefinitionDeleted { version: u32, at: DateTime<Utc> },
}

impl DomainEvent for MetricDefinitionEvent {
    fn event_type(&self) -> String {
        match self {
            Self::MetricDefinitionCreated { .. } => "MetricDefinitionCreated",
            Self::MetricDefinitionUpdated { .. } => "MetricDefinitionUpdated",
            Self::MetricDefinitionDeleted { .. } => "MetricDefinitionDeleted",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
