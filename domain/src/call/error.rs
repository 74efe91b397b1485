//! The rules a call command can break.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("call not found")]
    NotFound,
    #[error("call already exists")]
    AlreadyExists,
    #[error("the call has ended")]
    Ended,
    #[error("only a campaign's call to a known contact can be called back")]
    NoContactToCallBack,
    #[error("a callback must be in the future")]
    CallbackInThePast,
    #[error("{0}")]
    InvalidDisposition(crate::values::InvalidValue),
    #[error("the call is not in an IVR flow")]
    NotInIvr,
    #[error("the call runs another IVR flow or version")]
    IvrFlowMismatch,
}
