use crate::values::InvalidValue;

/// Why an alert-rule command was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AlertRuleError {
    /// No such rule (or deleted).
    #[error("alert rule not found")]
    NotFound,
    /// Created already.
    #[error("alert rule already exists")]
    AlreadyExists,
    /// Field problems, every one (`clear_value`, `notification_recipients[1]`).
    #[error("invalid alert rule")]
    InvalidSettings(Vec<InvalidValue>),
}
