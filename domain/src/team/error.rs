use uuid::Uuid;

use super::settings::MemberRole;
use crate::values::InvalidValue;

/// Why a team command was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TeamError {
    /// No such team (or deleted).
    #[error("team not found")]
    NotFound,
    /// Created already.
    #[error("team already exists")]
    AlreadyExists,
    /// Field problems, every one.
    #[error("invalid team settings")]
    InvalidSettings(Vec<InvalidValue>),
    /// The user is a member already, with `role` (change it with ChangeMemberRole).
    #[error("user {user_id} is a member already, as {role:?}")]
    AlreadyMember { user_id: Uuid, role: MemberRole },
    /// The user is not a member.
    #[error("user {0} is not a member of the team")]
    NotMember(Uuid),
}
