/// Why a command on a raised alert was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AlertError {
    /// No such alert.
    #[error("alert not found")]
    NotFound,
    /// Raised already (the engine's id for it was used before).
    #[error("alert already raised")]
    AlreadyRaised,
    /// Resolved alerts are not acknowledged.
    #[error("alert already resolved")]
    AlreadyResolved,
    /// A manual resolution names the user.
    #[error("a manual resolution needs the user who resolved it")]
    ResolverRequired,
    /// The values must be finite numbers.
    #[error("alert values must be finite")]
    NotFinite,
}
