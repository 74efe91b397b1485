use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::settings::{CampaignSettings, VoiceProvider};
use crate::CommandPolicy;

/// Where a new campaign's settings came from.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CampaignOrigin {
    #[default]
    Blank,
    Template {
        template_id: Uuid,
    },
    Clone {
        campaign_id: Uuid,
        /// Copy the source's call lists too (done by the `campaign_cloner` process manager).
        /// Older events lack it: they were cloned with their lists by the request itself.
        #[serde(default)]
        include_call_lists: bool,
    },
}

/// Facts the command layer gathers from outside the aggregate before a start or a resume: how
/// many contacts the campaign's call lists can dial, and which voice providers have keys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Readiness {
    pub dialable_contacts: u64,
    pub configured_providers: Vec<VoiceProvider>,
}

// A command lives for one decision; boxing its settings would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum CampaignCommand {
    CreateCampaign {
        settings: CampaignSettings,
        origin: CampaignOrigin,
        at: DateTime<Utc>,
    },
    /// A JSON merge patch over the current settings; checked as a whole after merging.
    UpdateCampaign {
        patch: Map<String, Value>,
        at: DateTime<Utc>,
    },
    StartCampaign {
        readiness: Readiness,
        at: DateTime<Utc>,
    },
    PauseCampaign {
        reason: Option<String>,
        at: DateTime<Utc>,
    },
    ResumeCampaign {
        readiness: Readiness,
        at: DateTime<Utc>,
    },
    CompleteCampaign {
        reason: Option<String>,
        at: DateTime<Utc>,
    },
    CancelCampaign {
        reason: Option<String>,
        at: DateTime<Utc>,
    },
    ArchiveCampaign {
        at: DateTime<Utc>,
    },
    DeleteCampaign {
        at: DateTime<Utc>,
    },
}

impl CommandPolicy for CampaignCommand {
    /// Every rule is re-checked against the newer state, so each command is safe to re-decide:
    /// a pause that loses a race to a start is decided again on the started campaign.
    fn name(&self) -> &'static str {
        match self {
            Self::CreateCampaign { .. } => "CreateCampaign",
            Self::UpdateCampaign { .. } => "UpdateCampaign",
            Self::StartCampaign { .. } => "StartCampaign",
            Self::PauseCampaign { .. } => "PauseCampaign",
            Self::ResumeCampaign { .. } => "ResumeCampaign",
            Self::CompleteCampaign { .. } => "CompleteCampaign",
            Self::CancelCampaign { .. } => "CancelCampaign",
            Self::ArchiveCampaign { .. } => "ArchiveCampaign",
            Self::DeleteCampaign { .. } => "DeleteCampaign",
        }
    }
}
