//! A campaign template: a named, reusable campaign configuration.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::campaign::CampaignSettings;
use crate::values::InvalidValue;
use crate::CommandPolicy;

#[cfg(test)]
mod tests;

// A command lives for one decision; boxing its settings would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum TemplateCommand {
    CreateTemplate {
        settings: CampaignSettings,
        source_campaign: Option<Uuid>,
        at: DateTime<Utc>,
    },
    /// A JSON merge patch over the template's settings.
    UpdateTemplate {
        patch: Map<String, Value>,
        at: DateTime<Utc>,
    },
    DeleteTemplate {
        at: DateTime<Utc>,
    },
}

impl CommandPolicy for TemplateCommand {
    fn name(&self) -> &'static str {
        match self {
            Self::CreateTemplate { .. } => "CreateTemplate",
            Self::UpdateTemplate { .. } => "UpdateTemplate",
            Self::DeleteTemplate { .. } => "DeleteTemplate",
        }
    }
}

/// Stored forever: never rename a variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TemplateEvent {
    CampaignTemplateCreated { settings: CampaignSettings, source_campaign: Option<Uuid>, at: DateTime<Utc> },
    CampaignTemplateUpdated { settings: CampaignSettings, changed: Vec<String>, at: DateTime<Utc> },
    CampaignTemplateDeleted { at: DateTime<Utc> },
}

impl DomainEvent for TemplateEvent {
    fn event_type(&self) -> String {
        match self {
            Self::CampaignTemplateCreated { .. } => "CampaignTemplateCreated",
            Self::CampaignTemplateUpdated { .. } => "CampaignTemplateUpdated",
            Self::CampaignTemplateDeleted { .. } => "CampaignTemplateDeleted",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateError {
    #[error("template not found")]
    NotFound,
    #[error("template already exists")]
    AlreadyExists,
    #[error("invalid settings")]
    InvalidSettings(Vec<InvalidValue>),
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignTemplate {
    pub settings: Option<CampaignSettings>,
    pub deleted: bool,
}

impl Aggregate for CampaignTemplate {
    const TYPE: &'static str = "CampaignTemplate";
    type Command = TemplateCommand;
    type Event = TemplateEvent;
    type Error = TemplateError;
    type Services = ();

    async fn handle(
        &mut self,
        command: TemplateCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), TemplateError> {
        let event = match command {
            TemplateCommand::CreateTemplate { settings, source_campaign, at } => {
                if self.settings.is_some() {
                    return Err(TemplateError::AlreadyExists);
                }
                let settings = settings.validated().map_err(TemplateError::InvalidSettings)?;
                TemplateEvent::CampaignTemplateCreated { settings, source_campaign, at }
            }
            TemplateCommand::UpdateTemplate { patch, at } => {
                let current =
                    self.settings.as_ref().filter(|_| !self.deleted).ok_or(TemplateError::NotFound)?;
                let settings = current.patched(&patch).map_err(TemplateError::InvalidSettings)?;
                let changed = current.changed_fields(&settings);
                if changed.is_empty() {
                    return Ok(());
                }
                TemplateEvent::CampaignTemplateUpdated { settings, changed, at }
            }
            TemplateCommand::DeleteTemplate { at } => {
                if self.settings.is_none() || self.deleted {
                    return Err(TemplateError::NotFound);
                }
                TemplateEvent::CampaignTemplateDeleted { at }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: TemplateEvent) {
        match event {
            TemplateEvent::CampaignTemplateCreated { settings, .. }
            | TemplateEvent::CampaignTemplateUpdated { settings, .. } => self.settings = Some(settings),
            TemplateEvent::CampaignTemplateDeleted { .. } => self.deleted = true,
        }
    }
}
