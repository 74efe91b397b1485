//! The campaign: its settings and its lifecycle,
//! `draft → active ⇄ paused → completed | cancelled → archived` (the original's words; the
//! issue's "running" is `active`). Contacts and call lists are their own aggregates; what a
//! start needs to know about them arrives as [`Readiness`].

mod commands;
mod error;
mod events;
pub mod settings;
#[cfg(test)]
mod tests;

pub use commands::{CampaignCommand, CampaignOrigin, Readiness};
pub use error::CampaignError;
pub use events::CampaignEvent;
pub use settings::{CallingWindow, CampaignSettings, CampaignType, DialingMode, RetryDelays, VoiceProvider};

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    #[default]
    Draft,
    Active,
    Paused,
    Completed,
    Cancelled,
    Archived,
}

impl CampaignStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
            Self::Archived => "archived",
        }
    }

    pub const ALL: [Self; 6] =
        [Self::Draft, Self::Active, Self::Paused, Self::Completed, Self::Cancelled, Self::Archived];
}

impl fmt::Display for CampaignStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Campaign {
    pub created: bool,
    pub deleted: bool,
    pub status: CampaignStatus,
    pub settings: CampaignSettings,
}

impl Campaign {
    fn require_exists(&self) -> Result<(), CampaignError> {
        if !self.created || self.deleted {
            return Err(CampaignError::NotFound);
        }
        Ok(())
    }

    fn transition(&self, action: &'static str) -> CampaignError {
        CampaignError::InvalidTransition { from: self.status, action }
    }

    fn check_ready(&self, readiness: &Readiness, at: DateTime<Utc>) -> Result<(), CampaignError> {
        if self.settings.end_time.is_some_and(|end| end <= at) {
            return Err(CampaignError::EndTimePassed);
        }
        if !readiness.configured_providers.contains(&self.settings.primary_provider) {
            return Err(CampaignError::ProviderNotConfigured(self.settings.primary_provider));
        }
        if self.settings.campaign_type.is_outbound() && readiness.dialable_contacts == 0 {
            return Err(CampaignError::NoContacts);
        }
        Ok(())
    }
}

impl Aggregate for Campaign {
    const TYPE: &'static str = "Campaign";
    type Command = CampaignCommand;
    type Event = CampaignEvent;
    type Error = CampaignError;
    type Services = ();

    async fn handle(
        &mut self,
        command: CampaignCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), CampaignError> {
        use CampaignStatus::*;
        let event = match command {
            CampaignCommand::CreateCampaign { settings, origin, at } => {
                if self.created {
                    return Err(CampaignError::AlreadyExists);
                }
                let settings = settings.validated().map_err(CampaignError::InvalidSettings)?;
                CampaignEvent::CampaignCreated { settings, origin, at }
            }
            CampaignCommand::UpdateCampaign { patch, at } => {
                self.require_exists()?;
                if matches!(self.status, Completed | Cancelled | Archived) {
                    return Err(self.transition("edited"));
                }
                let settings = self.settings.patched(&patch).map_err(CampaignError::InvalidSettings)?;
                let changed = self.settings.changed_fields(&settings);
                if changed.is_empty() {
                    return Ok(());
                }
                if self.status == Active {
                    let locked: Vec<String> = changed
                        .iter()
                        .filter(|f| settings::LOCKED_WHILE_ACTIVE.contains(&f.as_str()))
                        .cloned()
                        .collect();
                    if !locked.is_empty() {
                        return Err(CampaignError::LockedWhileActive(locked));
                    }
                }
                CampaignEvent::CampaignUpdated { settings, changed, at }
            }
            CampaignCommand::StartCampaign { readiness, at } => {
                self.require_exists()?;
                match self.status {
                    Active => return Ok(()),
                    Draft => {
                        self.check_ready(&readiness, at)?;
                        CampaignEvent::CampaignStarted { dialable_contacts: readiness.dialable_contacts, at }
                    }
                    Paused => {
                        self.check_ready(&readiness, at)?;
                        CampaignEvent::CampaignResumed { at }
                    }
                    _ => return Err(self.transition("started")),
                }
            }
            CampaignCommand::ResumeCampaign { readiness, at } => {
                self.require_exists()?;
                match self.status {
                    Active => return Ok(()),
                    Paused => {
                        self.check_ready(&readiness, at)?;
                        CampaignEvent::CampaignResumed { at }
                    }
                    _ => return Err(self.transition("resumed")),
                }
            }
            CampaignCommand::PauseCampaign { reason, at } => {
                self.require_exists()?;
                match self.status {
                    Paused => return Ok(()),
                    Active => CampaignEvent::CampaignPaused { reason, at },
                    _ => return Err(self.transition("paused")),
                }
            }
            CampaignCommand::CompleteCampaign { reason, at } => {
                self.require_exists()?;
                match self.status {
                    Completed => return Ok(()),
                    Active | Paused => CampaignEvent::CampaignCompleted { reason, at },
                    _ => return Err(self.transition("completed")),
                }
            }
            CampaignCommand::CancelCampaign { reason, at } => {
                self.require_exists()?;
                match self.status {
                    Cancelled => return Ok(()),
                    Draft | Active | Paused => CampaignEvent::CampaignCancelled { reason, at },
                    _ => return Err(self.transition("cancelled")),
                }
            }
            CampaignCommand::ArchiveCampaign { at } => {
                self.require_exists()?;
                match self.status {
                    Archived => return Ok(()),
                    Draft | Completed | Cancelled => CampaignEvent::CampaignArchived { at },
                    _ => return Err(self.transition("archived")),
                }
            }
            CampaignCommand::DeleteCampaign { at } => {
                self.require_exists()?;
                if matches!(self.status, Active | Paused) {
                    return Err(CampaignError::StillRunning);
                }
                CampaignEvent::CampaignDeleted { at }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: CampaignEvent) {
        use CampaignStatus::*;
        match event {
            CampaignEvent::CampaignCreated { settings, .. } => {
                self.created = true;
                self.status = Draft;
                self.settings = settings;
            }
            CampaignEvent::CampaignUpdated { settings, .. } => self.settings = settings,
            CampaignEvent::CampaignStarted { .. } | CampaignEvent::CampaignResumed { .. } => {
                self.status = Active
            }
            CampaignEvent::CampaignPaused { .. } => self.status = Paused,
            CampaignEvent::CampaignCompleted { .. } => self.status = Completed,
            CampaignEvent::CampaignCancelled { .. } => self.status = Cancelled,
            CampaignEvent::CampaignArchived { .. } => self.status = Archived,
            CampaignEvent::CampaignDeleted { .. } => self.deleted = true,
        }
    }
}
