/// Each variant names the rule that was broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("a user with this id already exists")]
    AlreadyExists,
    #[error("user not found")]
    NotFound,
    #[error("the user is deactivated")]
    Deactivated,
    #[error("the user is not deactivated")]
    NotDeactivated,
    #[error("a user needs at least one role")]
    NoRole,
    #[error("a user's last role cannot be revoked")]
    LastRole,
}
