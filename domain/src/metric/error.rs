use crate::values::InvalidValue;

/// Why a metric-definition command was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricDefinitionError {
    /// No such definition (or deleted).
    #[error("metric definition not found")]
    NotFound,
    /// Created already.
    #[error("metric definition already exists")]
    AlreadyExists,
    /// Field problems, every one (`filters[1].operator`, `metric_name`).
    #[error("invalid metric definition")]
    InvalidSettings(Vec<InvalidValue>),
}
