use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::values::{Email, PersonName, Role};
use crate::CommandPolicy;

#[derive(Debug, Clone, PartialEq)]
pub enum UserCommand {
    RegisterUser {
        company_id: String,
        email: Email,
        full_name: PersonName,
        roles: BTreeSet<Role>,
        at: DateTime<Utc>,
    },
    GrantRole {
        role: Role,
        at: DateTime<Utc>,
    },
    RevokeRole {
        role: Role,
        at: DateTime<Utc>,
    },
    /// The new hash is in the credential store already; this records the change.
    RecordPasswordChange {
        at: DateTime<Utc>,
    },
    RenameUser {
        full_name: PersonName,
        at: DateTime<Utc>,
    },
    DeactivateUser {
        at: DateTime<Utc>,
    },
    ReactivateUser {
        at: DateTime<Utc>,
    },
}

impl CommandPolicy for UserCommand {
    fn name(&self) -> &'static str {
        match self {
            Self::RegisterUser { .. } => "RegisterUser",
            Self::GrantRole { .. } => "GrantRole",
            Self::RevokeRole { .. } => "RevokeRole",
            Self::RecordPasswordChange { .. } => "RecordPasswordChange",
            Self::RenameUser { .. } => "RenameUser",
            Self::DeactivateUser { .. } => "DeactivateUser",
            Self::ReactivateUser { .. } => "ReactivateUser",
        }
    }
}
