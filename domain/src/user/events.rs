use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::values::Role;

/// Stored forever: never rename a variant; a changed shape gets a new version and an upcaster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum UserEvent {
    UserRegistered {
        company_id: String,
        email: String,
        full_name: String,
        roles: Vec<Role>,
        at: DateTime<Utc>,
    },
    RoleGranted {
        role: Role,
        at: DateTime<Utc>,
    },
    RoleRevoked {
        role: Role,
        at: DateTime<Utc>,
    },
    PasswordChanged {
        at: DateTime<Utc>,
    },
    UserRenamed {
        full_name: String,
        at: DateTime<Utc>,
    },
    UserDeactivated {
        at: DateTime<Utc>,
    },
    UserReactivated {
        at: DateTime<Utc>,
    },
}

impl DomainEvent for UserEvent {
    fn event_type(&self) -> String {
        match self {
            Self::UserRegistered { .. } => "UserRegistered",
            Self::RoleGranted { .. } => "RoleGranted",
            Self::RoleRevoked { .. } => "RoleRevoked",
            Self::PasswordChanged { .. } => "PasswordChanged",
            Self::UserRenamed { .. } => "UserRenamed",
            Self::UserDeactivated { .. } => "UserDeactivated",
            Self::UserReactivated { .. } => "UserReactivated",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
