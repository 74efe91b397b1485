use super::settings::QueueMember;
use crate::values::InvalidValue;

/// Why a queue command was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueueError {
    /// No such queue (or deleted).
    #[error("queue not found")]
    NotFound,
    /// Created already.
    #[error("queue already exists")]
    AlreadyExists,
    /// Field problems, every one.
    #[error("invalid queue settings")]
    InvalidSettings(Vec<InvalidValue>),
    /// The member is in the queue already.
    #[error("{0:?} is a member of the queue already")]
    AlreadyMember(QueueMember),
    /// The member is not in the queue.
    #[error("{0:?} is not a member of the queue")]
    NotMember(QueueMember),
}
