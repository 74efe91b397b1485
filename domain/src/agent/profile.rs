//! Who an agent is and how they are routed to: the profile an admin edits.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::routing::fields::{self, check_enum, check_levels, merge_problems, parse_checked};
use crate::values::{clean_text, InvalidValue, PhoneNumber};

/// How the carrier reaches the agent: `{"type": "phone", "number": "+14155550123"}`,
/// `{"type": "sip", "uri": "sip:ann@pbx.example"}` or `{"type": "client", "identity": "ann"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentEndpoint {
    /// A phone number, E.164.
    Phone {
        /// `+14155550123`.
        number: String,
    },
    /// A SIP URI (`sip:` or `sips:`).
    Sip {
        /// `sip:ann@pbx.example`.
        uri: String,
    },
    /// A carrier client (WebRTC) identity.
    Client {
        /// Letters, digits and `_ . - @ +`, 1–128 characters.
        identity: String,
    },
}

impl AgentEndpoint {
    /// The wire names of the endpoint types.
    pub const TYPES: [&'static str; 3] = ["phone", "sip", "client"];

    fn validated(self, problems: &mut Vec<InvalidValue>) -> Self {
        match self {
            Self::Phone { number } => match PhoneNumber::parse_field("endpoint.number", &number, None) {
                Ok(n) => Self::Phone { number: n.as_str().to_owned() },
                Err(e) => {
                    problems.push(e);
                    Self::Phone { number }
                }
            },
            Self::Sip { uri } => {
                let trimmed = uri.trim();
                let lower = trimmed.to_ascii_lowercase();
                let rest = lower.strip_prefix("sips:").or_else(|| lower.strip_prefix("sip:"));
                let ok = rest.is_some_and(|r| !r.is_empty() && !r.starts_with('@') && !r.ends_with('@'))
                    && trimmed.len() <= 255
                    && !trimmed.chars().any(|c| c.is_whitespace() || c.is_control());
                if !ok {
                    problems.push(InvalidValue::new(
                        "endpoint.uri",
                        "invalid_sip_uri",
                        "a SIP URI such as sip:ann@pbx.example",
                    ));
                }
                Self::Sip { uri: trimmed.to_owned() }
            }
            Self::Client { identity } => {
                let trimmed = identity.trim();
                let ok = (1..=128).contains(&trimmed.len())
                    && trimmed.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-@+".contains(&b));
                if !ok {
                    problems.push(InvalidValue::new(
                        "endpoint.identity",
                        "invalid_identity",
                        "1–128 letters, digits or _ . - @ +",
                    ));
                }
                Self::Client { identity: trimmed.to_owned() }
            }
        }
    }
}

/// The agent's profile. Unknown keys are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct AgentProfile {
    /// The company user this agent is.
    pub user_id: Uuid,
    /// Shown to supervisors and callers' records.
    pub display_name: String,
    /// Skill name → proficiency 1–5.
    pub skills: BTreeMap<String, u8>,
    /// Language (BCP 47 primary tag) → proficiency 1–5.
    pub languages: BTreeMap<String, u8>,
    /// Concurrent calls (1–10).
    pub capacity: u32,
    /// 0.0–5.0.
    pub rating: f64,
    /// Free attributes for `custom` routing scores.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub attributes: Map<String, Value>,
    /// Teams the agent belongs to.
    pub team_ids: Vec<Uuid>,
    /// After-call work after each call (0–3600 s; 0: straight back to available).
    pub wrap_up_seconds: u32,
    /// Missed offers in a row that pause the agent (0 = never; at most 100).
    pub max_missed_offers: u32,
    /// How the carrier reaches the agent.
    pub endpoint: Option<AgentEndpoint>,
}

impl Default for AgentProfile {
    fn default() -> Self {
        Self {
            user_id: Uuid::nil(),
            display_name: String::new(),
            skills: BTreeMap::new(),
            languages: BTreeMap::new(),
            capacity: 1,
            rating: 0.0,
            attributes: Map::new(),
            team_ids: Vec::new(),
            wrap_up_seconds: 30,
            max_missed_offers: 3,
            endpoint: None,
        }
    }
}

impl AgentProfile {
    /// Reads a profile from JSON (a request body, a merge result) and checks every rule,
    /// reporting all problems at once.
    pub fn from_json(value: Value) -> Result<Self, Vec<InvalidValue>> {
        let mut pre = Vec::new();
        check_levels("skills", value.get("skills"), &mut pre);
        check_levels("languages", value.get("languages"), &mut pre);
        if let Some(endpoint) = value.get("endpoint").filter(|e| !e.is_null()) {
            check_enum(
                "endpoint.type",
                Some(endpoint.get("type").unwrap_or(&Value::Null)),
                &AgentEndpoint::TYPES,
                false,
                &mut pre,
            );
        }
        let parsed: Self = parse_checked(value, pre)?;
        parsed.validated()
    }

    /// This profile with a JSON merge patch applied, checked as a whole.
    pub fn patched(&self, patch: &Map<String, Value>) -> Result<Self, Vec<InvalidValue>> {
        Self::from_json(fields::patched_json(self, patch))
    }

    /// Top-level fields whose value differs.
    pub fn changed_fields(&self, other: &Self) -> Vec<String> {
        fields::changed_fields(self, other)
    }

    /// Checks every rule and normalizes names, tags and the endpoint.
    pub fn validated(mut self) -> Result<Self, Vec<InvalidValue>> {
        let mut problems = Vec::new();
        if self.user_id.is_nil() {
            problems.push(InvalidValue::new("user_id", "required", "the user this agent is"));
        }
        match clean_text("display_name", &self.display_name, 200) {
            Ok(name) => self.display_name = name,
            Err(e) => problems.push(e),
        }
        self.skills = fields::skill_levels("skills", &self.skills, &mut problems);
        self.languages = fields::language_levels("languages", &self.languages, &mut problems);
        if !(1..=10).contains(&self.capacity) {
            problems.push(InvalidValue::new("capacity", "out_of_range", "1 to 10 concurrent calls"));
        }
        if !self.rating.is_finite() || !(0.0..=5.0).contains(&self.rating) {
            problems.push(InvalidValue::new("rating", "out_of_range", "0.0 to 5.0"));
        }
        if self.wrap_up_seconds > 3600 {
            problems.push(InvalidValue::new("wrap_up_seconds", "out_of_range", "0 to 3600 seconds"));
        }
        if self.max_missed_offers > 100 {
            problems.push(InvalidValue::new("max_missed_offers", "out_of_range", "0 (never pause) to 100"));
        }
        if self.team_ids.iter().any(Uuid::is_nil) {
            problems.push(InvalidValue::new("team_ids", "invalid", "team ids must not be nil"));
        }
        let mut seen = std::collections::BTreeSet::new();
        self.team_ids.retain(|t| seen.insert(*t));
        if serde_json::to_string(&self.attributes).map_or(0, |s| s.len()) > 16_384 {
            problems.push(InvalidValue::new("attributes", "too_large", "at most 16 KiB of JSON"));
        }
        self.endpoint = self.endpoint.map(|e| e.validated(&mut problems));
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(merge_problems(Vec::new(), problems))
        }
    }
}

/// One skill to add or change (`POST /agents/{id}/skills`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SkillLevel {
    /// Skill name (trimmed, lower-cased).
    pub name: String,
    /// 1–5.
    pub proficiency: u8,
}
