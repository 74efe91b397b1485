use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::values::CompanySize;

/// Stored forever: never rename a variant; a changed shape gets a new version and an upcaster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CompanyEvent {
    CompanyCreated {
        name: String,
        domain: String,
        size: Option<CompanySize>,
        industry: Option<String>,
        description: Option<String>,
        website: Option<String>,
        at: DateTime<Utc>,
    },
    CompanyRenamed {
        name: String,
        previous: String,
        at: DateTime<Utc>,
    },
    /// Carries the whole profile after the change, so a reader needs no earlier event.
    CompanyProfileUpdated {
        domain: String,
        size: Option<CompanySize>,
        industry: Option<String>,
        description: Option<String>,
        website: Option<String>,
        at: DateTime<Utc>,
    },
    CompanyDeactivated {
        reason: Option<String>,
        at: DateTime<Utc>,
    },
    CompanyReactivated {
        at: DateTime<Utc>,
    },
}

impl DomainEvent for CompanyEvent {
    fn event_type(&self) -> String {
        match self {
            Self::CompanyCreated { .. } => "CompanyCreated",
            Self::CompanyRenamed { .. } => "CompanyRenamed",
            Self::CompanyProfileUpdated { .. } => "CompanyProfileUpdated",
            Self::CompanyDeactivated { .. } => "CompanyDeactivated",
            Self::CompanyReactivated { .. } => "CompanyReactivated",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
