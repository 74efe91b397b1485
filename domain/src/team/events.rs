use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::settings::{MemberRole, TeamSettings};

/// Stored forever: never rename a variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TeamEvent {
    /// Created with these settings.
    TeamCreated { settings: TeamSettings, at: DateTime<Utc> },
    /// The whole settings after the change and the fields that changed.
    TeamUpdated { settings: TeamSettings, changed: Vec<String>, at: DateTime<Utc> },
    /// Deleted.
    TeamDeleted { at: DateTime<Utc> },
    /// A member joined.
    TeamMemberAdded { user_id: Uuid, role: MemberRole, at: DateTime<Utc> },
    /// A member's role changed from `from` to `role`.
    TeamMemberRoleChanged { user_id: Uuid, role: MemberRole, from: MemberRole, at: DateTime<Utc> },
    /// A member left (with the role they had).
    TeamMemberRemoved { user_id: Uuid, role: MemberRole, at: DateTime<Utc> },
}

impl DomainEvent for TeamEvent {
    fn event_type(&self) -> String {
        match self {
            Self::TeamCreated { .. } => "TeamCreated",
            Self::TeamUpdated { .. } => "TeamUpdated",
            Self::TeamDeleted { .. } => "TeamDeleted",
            Self::TeamMemberAdded { .. } => "TeamMemberAdded",
            Self::TeamMemberRoleChanged { .. } => "TeamMemberRoleChanged",
            Self::TeamMemberRemoved { .. } => "TeamMemberRemoved",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
