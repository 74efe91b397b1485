//! A custom metric defined by a tenant (`MetricDefinition`): which events it reads, the value it
//! takes, how values aggregate, filters and dimensions. Definitions are versioned like routing
//! rules (every create and update is the next version, carried in the events), so aggregations
//! can say which version built them and rebuild when it changes. The metric's name is fixed once
//! created; the command layer keeps names unique per tenant (a read-model check).
//! [`MetricSample`] checks the seed's posted metric values (`POST /api/analytics/metrics`).

mod commands;
mod error;
mod events;
pub mod sample;
pub mod settings;
#[cfg(test)]
mod tests;

pub use commands::MetricDefinitionCommand;
pub use error::MetricDefinitionError;
pub use events::MetricDefinitionEvent;
pub use sample::MetricSample;
pub use settings::{
    field_at, is_reserved_name, Aggregation, MetricDefinitionSettings, MetricFilter, MetricInput, MetricType,
    BUILT_IN_METRICS,
};

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use crate::values::InvalidValue;

/// The metric-definition aggregate's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricDefinition {
    /// Created.
    pub created: bool,
    /// Deleted.
    pub deleted: bool,
    /// The current version (0 before creation).
    pub version: u32,
    /// The settings at that version.
    pub settings: MetricDefinitionSettings,
}

impl MetricDefinition {
    fn require_exists(&self) -> Result<(), MetricDefinitionError> {
        if !self.created || self.deleted {
            return Err(MetricDefinitionError::NotFound);
        }
        Ok(())
    }

    /// Decides a command: the events it leads to (none when it changes nothing), or why not.
    pub fn decide(
        &self,
        command: MetricDefinitionCommand,
    ) -> Result<Vec<MetricDefinitionEvent>, MetricDefinitionError> {
        let event = match command {
            MetricDefinitionCommand::CreateMetricDefinition { settings, at } => {
                if self.created {
                    return Err(MetricDefinitionError::AlreadyExists);
                }
                let settings = settings.validated().map_err(MetricDefinitionError::InvalidSettings)?;
                MetricDefinitionEvent::MetricDefinitionCreated { version: 1, settings, at }
            }
            MetricDefinitionCommand::UpdateMetricDefinition { patch, at } => {
                self.require_exists()?;
                let settings =
                    self.settings.patched(&patch).map_err(MetricDefinitionError::InvalidSettings)?;
                if settings.metric_name != self.settings.metric_name {
                    return Err(MetricDefinitionError::InvalidSettings(vec![InvalidValue::new(
                        "metric_name",
                        "immutable",
                        "a metric keeps its name; define a new metric instead",
                    )]));
                }
                let changed = self.settings.changed_fields(&settings);
                if changed.is_empty() {
                    return Ok(Vec::new());
                }
                MetricDefinitionEvent::MetricDefinitionUpdated {
                    version: self.version + 1,
                    settings,
                    changed,
                    at,
                }
            }
            MetricDefinitionCommand::DeleteMetricDefinition { at } => {
                self.require_exists()?;
                MetricDefinitionEvent::MetricDefinitionDeleted { version: self.version, at }
            }
        };
        Ok(vec![event])
    }
}

impl Aggregate for MetricDefinition {
    const TYPE: &'static str = "MetricDefinition";
    type Command = MetricDefinitionCommand;
    type Event = MetricDefinitionEvent;
    type Error = MetricDefinitionError;
    type Services = ();

    async fn handle(
        &mut self,
        command: MetricDefinitionCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), MetricDefinitionError> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: MetricDefinitionEvent) {
        match event {
            MetricDefinitionEvent::MetricDefinitionCreated { version, settings, .. } => {
                self.created = true;
                self.version = version;
                self.settings = settings;
            }
            MetricDefinitionEvent::MetricDefinitionUpdated { version, settings, .. } => {
                self.version = version;
                self.settings = settings;
            }
            MetricDefinitionEvent::MetricDefinitionDeleted { .. } => self.deleted = true,
        }
    }
}
