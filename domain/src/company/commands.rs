use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::values::{CompanyName, CompanySize};
use crate::CommandPolicy;

/// The editable profile of a company. In `UpdateCompany`, `None` keeps the current value; an
/// explicit empty string at the HTTP edge clears an optional text field (see `ProfilePatch`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompanyProfile {
    pub domain: String,
    pub size: Option<CompanySize>,
    pub industry: Option<String>,
    pub description: Option<String>,
    pub website: Option<String>,
}

/// A partial profile change: each field is "leave as is" (`None`) or "set to" (`Some`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfilePatch {
    pub domain: Option<String>,
    pub size: Option<Option<CompanySize>>,
    pub industry: Option<Option<String>>,
    pub description: Option<Option<String>>,
    pub website: Option<Option<String>>,
}

impl ProfilePatch {
    pub(crate) fn merged_onto(self, current: CompanyProfile) -> CompanyProfile {
        CompanyProfile {
            domain: self.domain.unwrap_or(current.domain),
            size: self.size.unwrap_or(current.size),
            industry: self.industry.unwrap_or(current.industry),
            description: self.description.unwrap_or(current.description),
            website: self.website.unwrap_or(current.website),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum CompanyCommand {
    CreateCompany { name: CompanyName, profile: CompanyProfile, at: DateTime<Utc> },
    RenameCompany { name: CompanyName, at: DateTime<Utc> },
    UpdateCompany { name: Option<CompanyName>, profile: ProfilePatch, at: DateTime<Utc> },
    DeactivateCompany { reason: Option<String>, at: DateTime<Utc> },
    ReactivateCompany { at: DateTime<Utc> },
}

impl CommandPolicy for CompanyCommand {
    fn name(&self) -> &'static str {
        match self {
            Self::CreateCompany { .. } => "CreateCompany",
            Self::RenameCompany { .. } => "RenameCompany",
            Self::UpdateCompany { .. } => "UpdateCompany",
            Self::DeactivateCompany { .. } => "DeactivateCompany",
            Self::ReactivateCompany { .. } => "ReactivateCompany",
        }
    }
}
