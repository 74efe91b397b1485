use super::validate::FlowIssue;
use crate::values::InvalidValue;

/// Why an IVR flow command was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IvrFlowError {
    /// No such flow.
    #[error("IVR flow not found")]
    NotFound,
    /// Created already.
    #[error("IVR flow already exists")]
    AlreadyExists,
    /// Archived: nothing changes it any more.
    #[error("IVR flow is archived")]
    Archived,
    /// The draft cannot be saved at all (no name, too many nodes, not a flow).
    #[error("invalid IVR flow")]
    InvalidFlow(Vec<InvalidValue>),
    /// The validator found errors (every finding, warnings too).
    #[error("the IVR flow cannot be published: {} error(s)", .0.iter().filter(|i| i.is_error()).count())]
    NotPublishable(Vec<FlowIssue>),
    /// No published version with that number.
    #[error("IVR flow has no version {0}")]
    UnknownVersion(u32),
}
