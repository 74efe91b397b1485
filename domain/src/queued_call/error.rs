use uuid::Uuid;

use super::QueueStatus;
use crate::values::InvalidValue;

/// Why a queued-call command was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueuedCallError {
    /// The call is not in a queue (never was, or has left).
    #[error("the call is not waiting in a queue")]
    NotQueued,
    /// The call waits in a queue already.
    #[error("the call is {status} in queue {queue_id} already")]
    AlreadyQueued { queue_id: Uuid, status: QueueStatus },
    /// Only a waiting call (no offer pending) can be routed or overflow.
    #[error("the call is {status}, not waiting")]
    NotWaiting { status: QueueStatus },
    /// The offer named is not the call's pending one.
    #[error("offer {offer_id} is not the call's pending offer")]
    OfferNotCurrent { offer_id: Uuid },
    /// The decision was made for another visit or decision number than the call's next one.
    #[error("the call's next decision is {number} of visit {visit}")]
    StaleDecision { visit: u32, number: u32 },
    /// Field problems, every one.
    #[error("invalid queued call")]
    Invalid(Vec<InvalidValue>),
}
