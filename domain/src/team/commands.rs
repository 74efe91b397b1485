use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::settings::{MemberRole, TeamSettings};
use crate::CommandPolicy;

/// What can be asked of a team.
#[derive(Debug, Clone, PartialEq)]
pub enum TeamCommand {
    /// Creates the team.
    CreateTeam {
        /// Its settings, checked.
        settings: TeamSettings,
        /// When.
        at: DateTime<Utc>,
    },
    /// A JSON merge patch over the settings.
    UpdateTeam {
        /// RFC 7396 merge patch.
        patch: Map<String, Value>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Deletes the team.
    DeleteTeam {
        /// When.
        at: DateTime<Utc>,
    },
    /// Adds a member with a role (the same member with the same role again changes nothing).
    AddTeamMember {
        /// The user.
        user_id: Uuid,
        /// Their role.
        role: MemberRole,
        /// When.
        at: DateTime<Utc>,
    },
    /// Changes a member's role.
    ChangeMemberRole {
        /// The member.
        user_id: Uuid,
        /// The new role.
        role: MemberRole,
        /// When.
        at: DateTime<Utc>,
    },
    /// Removes a member.
    RemoveTeamMember {
        /// The member.
        user_id: Uuid,
        /// When.
        at: DateTime<Utc>,
    },
}

impl CommandPolicy for TeamCommand {
    /// Every rule is re-checked against the newer state, so each command is safe to re-decide.
    fn name(&self) -> &'static str {
        match self {
            Self::CreateTeam { .. } => "CreateTeam",
            Self::UpdateTeam { .. } => "UpdateTeam",
            Self::DeleteTeam { .. } => "DeleteTeam",
            Self::AddTeamMember { .. } => "AddTeamMember",
            Self::ChangeMemberRole { .. } => "ChangeMemberRole",
            Self::RemoveTeamMember { .. } => "RemoveTeamMember",
        }
    }
}
