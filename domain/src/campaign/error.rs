use super::settings::VoiceProvider;
use super::CampaignStatus;
use crate::values::InvalidValue;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CampaignError {
    #[error("campaign not found")]
    NotFound,
    #[error("campaign already exists")]
    AlreadyExists,
    #[error("invalid settings")]
    InvalidSettings(Vec<InvalidValue>),
    #[error("a {from} campaign cannot be {action}")]
    InvalidTransition { from: CampaignStatus, action: &'static str },
    #[error("these settings change only while the campaign is not dialing (pause it first): {0:?}")]
    LockedWhileActive(Vec<String>),
    #[error("the campaign's call lists have no contact that can be dialed")]
    NoContacts,
    #[error("voice provider {0:?} has no API key configured")]
    ProviderNotConfigured(VoiceProvider),
    #[error("the campaign's end time has passed")]
    EndTimePassed,
    #[error("an active or paused campaign cannot be deleted; complete or cancel it first")]
    StillRunning,
}
