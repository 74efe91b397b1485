//! What the calls service can refuse or fail with; the server maps each to its code once.

use kraliki_commands::DispatchError;
use kraliki_domain::call::CallError;

#[derive(Debug, thiserror::Error)]
pub enum CallsError {
    /// A carrier or provider setting this needs is missing.
    #[error("{0}")]
    NotConfigured(String),
    /// A webhook or media stream that does not prove it comes from the carrier.
    #[error("{0}")]
    Forbidden(String),
    /// A webhook that is signed but not understood.
    #[error("{0}")]
    InvalidWebhook(String),
    #[error("the campaign is {0}")]
    CampaignNotActive(String),
    #[error("the number is on a do-not-call list")]
    DoNotCall,
    #[error(
        "outside the campaign's calling window in the callee's local time (every zone the number may be in)"
    )]
    OutsideCallingWindow,
    #[error("the campaign has no caller id to call from")]
    NoCallerId,
    #[error("{0} is not one of this company's caller ids (the caller ids of its campaigns)")]
    UnknownCallerId(String),
    /// The carrier would not place or change the call.
    #[error("{0}")]
    CarrierRefused(String),
    /// A command on the call failed.
    #[error(transparent)]
    Command(#[from] DispatchError<CallError>),
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

impl From<sqlx::Error> for CallsError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}
