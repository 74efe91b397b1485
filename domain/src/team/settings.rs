//! What a team is configured with.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::routing::fields::{self, parse_checked};
use crate::schedule::BusinessHours;
use crate::values::{clean_text, time_zone, InvalidValue};

/// A member's role in the team (the seed's roles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MemberRole {
    /// Owns the team.
    Owner,
    /// Manages it.
    Manager,
    /// Supervises its agents.
    Supervisor,
    /// Takes calls.
    Agent,
    /// Reads only.
    Viewer,
}

impl MemberRole {
    /// Every role.
    pub const ALL: [MemberRole; 5] =
        [Self::Owner, Self::Manager, Self::Supervisor, Self::Agent, Self::Viewer];

    /// The stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Manager => "manager",
            Self::Supervisor => "supervisor",
            Self::Agent => "agent",
            Self::Viewer => "viewer",
        }
    }

    /// The role with this wire name, if any.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == raw.trim())
    }
}

/// A team's settings. Unknown keys are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct TeamSettings {
    /// 1–200 characters.
    pub name: String,
    /// Up to 2000 characters.
    pub description: Option<String>,
    /// The supervising user.
    pub supervisor_id: Option<Uuid>,
    /// IANA time zone (`Europe/Prague`).
    pub timezone: String,
    /// When the team works.
    pub business_hours: Option<BusinessHours>,
}

impl Default for TeamSettings {
    fn default() -> Self {
        Self {
            name: String::new(),
            description: None,
            supervisor_id: None,
            timezone: "UTC".into(),
            business_hours: None,
        }
    }
}

impl TeamSettings {
    /// Reads settings from JSON and checks every rule, reporting all problems at once.
    pub fn from_json(value: Value) -> Result<Self, Vec<InvalidValue>> {
        let parsed: Self = parse_checked(value, Vec::new())?;
        parsed.validated()
    }

    /// These settings with a JSON merge patch applied, checked as a whole.
    pub fn patched(&self, patch: &Map<String, Value>) -> Result<Self, Vec<InvalidValue>> {
        Self::from_json(fields::patched_json(self, patch))
    }

    /// Top-level fields whose value differs.
    pub fn changed_fields(&self, other: &Self) -> Vec<String> {
        fields::changed_fields(self, other)
    }

    /// Checks every rule and normalizes.
    pub fn validated(mut self) -> Result<Self, Vec<InvalidValue>> {
        let mut problems = Vec::new();
        match clean_text("name", &self.name, 200) {
            Ok(name) => self.name = name,
            Err(e) => problems.push(e),
        }
        fields::optional_text("description", &mut self.description, 2000, &mut problems);
        if self.supervisor_id.is_some_and(|s| s.is_nil()) {
            problems.push(InvalidValue::new("supervisor_id", "invalid", "must not be nil"));
        }
        match time_zone("timezone", &self.timezone) {
            Ok(tz) => self.timezone = tz,
            Err(e) => problems.push(e),
        }
        if let Some(hours) = &self.business_hours {
            if let Err(p) = hours.validate("business_hours") {
                problems.extend(p);
            }
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(problems)
        }
    }
}
