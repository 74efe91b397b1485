use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::commands::CampaignOrigin;
use super::settings::CampaignSettings;

/// Stored forever: never rename a variant; a changed shape gets a new version and an upcaster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CampaignEvent {
    CampaignCreated {
        settings: CampaignSettings,
        origin: CampaignOrigin,
        at: DateTime<Utc>,
    },
    /// Carries the whole settings after the change (a reader needs no earlier event) and the
    /// names of the fields that changed (an auditor sees what moved).
    CampaignUpdated {
        settings: CampaignSettings,
        changed: Vec<String>,
        at: DateTime<Utc>,
    },
    CampaignStarted {
        dialable_contacts: u64,
        at: DateTime<Utc>,
    },
    CampaignPaused {
        reason: Option<String>,
        at: DateTime<Utc>,
    },
    CampaignResumed {
        at: DateTime<Utc>,
    },
    CampaignCompleted {
        reason: Option<String>,
        at: DateTime<Utc>,
    },
    CampaignCancelled {
        reason: Option<String>,
        at: DateTime<Utc>,
    },
    CampaignArchived {
        at: DateTime<Utc>,
    },
    CampaignDeleted {
        at: DateTime<Utc>,
    },
}

impl DomainEvent for CampaignEvent {
    fn event_type(&self) -> String {
        match self {
            Self::CampaignCreated { .. } => "CampaignCreated",
            Self::CampaignUpdated { .. } => "CampaignUpdated",
            Self::CampaignStarted { .. } => "CampaignStarted",
            Self::CampaignPaused { .. } => "CampaignPaused",
            Self::CampaignResumed { .. } => "CampaignResumed",
            Self::CampaignCompleted { .. } => "CampaignCompleted",
            Self::CampaignCancelled { .. } => "CampaignCancelled",
            Self::CampaignArchived { .. } => "CampaignArchived",
            Self::CampaignDeleted { .. } => "CampaignDeleted",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}
