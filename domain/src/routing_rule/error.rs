use crate::values::InvalidValue;

/// Why a routing-rule command was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RoutingRuleError {
    /// No such rule (or deleted).
    #[error("routing rule not found")]
    NotFound,
    /// Created already.
    #[error("routing rule already exists")]
    AlreadyExists,
    /// Field problems, every one (`conditions[2].operator`).
    #[error("invalid routing rule")]
    InvalidSettings(Vec<InvalidValue>),
}
