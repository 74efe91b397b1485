//! What a queue is configured with: how it orders callers and picks agents, its service level,
//! its limits and where calls go when they wait too long.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::routing::fields::{self, check_enum, check_levels, merge_problems, parse_checked};
use crate::routing::{for_queue, QueueStrategy, Strategy, StrategyConfig};
use crate::schedule::BusinessHours;
use crate::values::{clean_text, InvalidValue};

/// A queue member: an agent, or a team (all its agents). `{"type": "agent", "id": "…"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum QueueMember {
    /// One agent.
    Agent {
        /// The agent.
        id: Uuid,
    },
    /// Every agent of a team.
    Team {
        /// The team.
        id: Uuid,
    },
}

impl QueueMember {
    /// The wire names of the member types.
    pub const TYPES: [&'static str; 2] = ["agent", "team"];

    /// The agent's or team's id.
    pub fn id(self) -> Uuid {
        match self {
            Self::Agent { id } | Self::Team { id } => id,
        }
    }
}

/// Where a call goes after `max_wait_seconds` (or when no agent can ever take it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OverflowTarget {
    /// Keeps waiting.
    #[default]
    None,
    /// Another queue.
    Queue {
        /// The queue.
        queue_id: Uuid,
    },
    /// The caller leaves a voicemail.
    Voicemail,
    /// The caller is called back.
    Callback,
}

impl OverflowTarget {
    /// The wire names of the overflow types.
    pub const TYPES: [&'static str; 4] = ["none", "queue", "voicemail", "callback"];
}

/// Service-level target: `target_percent` of calls answered within `threshold_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct ServiceLevel {
    /// T seconds (1–3600, default 20).
    pub threshold_seconds: u32,
    /// Percent (1–100, default 80).
    pub target_percent: u32,
}

impl Default for ServiceLevel {
    fn default() -> Self {
        Self { threshold_seconds: 20, target_percent: 80 }
    }
}

/// A queue's settings. Unknown keys are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct QueueSettings {
    /// 1–200 characters.
    pub name: String,
    /// Up to 2000 characters.
    pub description: Option<String>,
    /// How callers are ordered and agents picked.
    pub strategy: QueueStrategy,
    /// An engine strategy that overrides how agents are picked.
    pub routing_strategy: Option<Strategy>,
    /// Skill name → minimum level 1–5 for every call of the queue.
    pub required_skills: BTreeMap<String, u8>,
    /// The language agents must speak.
    pub language: Option<String>,
    /// Service-level target.
    pub service_level: ServiceLevel,
    /// Longest wait before overflow (1–86400 s, default 300).
    pub max_wait_seconds: u32,
    /// Where calls go after the longest wait.
    pub overflow: OverflowTarget,
    /// Seconds between position announcements (0 = off, else 10–3600; default 30).
    pub announcement_interval_seconds: u32,
    /// How long an agent has to answer an offer (5–300 s, default 15).
    pub offer_timeout_seconds: u32,
    /// Agents and teams, in round-robin order.
    pub members: Vec<QueueMember>,
    /// When the queue is open.
    pub business_hours: Option<BusinessHours>,
    /// Relaxation steps, custom weights, VIP stickiness.
    pub strategy_config: StrategyConfig,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            name: String::new(),
            description: None,
            strategy: QueueStrategy::default(),
            routing_strategy: None,
            required_skills: BTreeMap::new(),
            language: None,
            service_level: ServiceLevel::default(),
            max_wait_seconds: 300,
            overflow: OverflowTarget::None,
            announcement_interval_seconds: 30,
            offer_timeout_seconds: 15,
            members: Vec::new(),
            business_hours: None,
            strategy_config: StrategyConfig::default(),
        }
    }
}

impl QueueSettings {
    /// Reads settings from JSON and checks every rule, reporting all problems at once
    /// (unknown strategies and member types and bad skill levels included).
    pub fn from_json(value: Value) -> Result<Self, Vec<InvalidValue>> {
        let mut pre = Vec::new();
        let queue_strategies: Vec<&str> = QueueStrategy::ALL.iter().map(|s| s.as_str()).collect();
        let strategies: Vec<&str> = Strategy::ALL.iter().map(|s| s.as_str()).collect();
        check_enum("strategy", value.get("strategy"), &queue_strategies, false, &mut pre);
        check_enum("routing_strategy", value.get("routing_strategy"), &strategies, true, &mut pre);
        check_levels("required_skills", value.get("required_skills"), &mut pre);
        if let Some(o) = value.get("overflow").filter(|o| !o.is_null()) {
            check_enum(
                "overflow.type",
                Some(o.get("type").unwrap_or(&Value::Null)),
                &OverflowTarget::TYPES,
                false,
                &mut pre,
            );
        }
        if let Some(members) = value.get("members").and_then(Value::as_array) {
            for (i, m) in members.iter().enumerate() {
                let t = m.get("type").unwrap_or(&Value::Null);
                check_enum(&format!("members[{i}].type"), Some(t), &QueueMember::TYPES, false, &mut pre);
            }
        }
        StrategyConfig::precheck("strategy_config", value.get("strategy_config"), &mut pre);
        let parsed: Self = parse_checked(value, pre)?;
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
        self.required_skills = fields::skill_levels("required_skills", &self.required_skills, &mut problems);
        if let Some(lang) = self.language.as_deref() {
            if lang.trim().is_empty() {
                self.language = None;
            } else {
                match fields::language_tag("language", lang) {
                    Ok(tag) => self.language = Some(tag),
                    Err(e) => problems.push(e),
                }
            }
        }
        if !(1..=3600).contains(&self.service_level.threshold_seconds) {
            problems.push(InvalidValue::new(
                "service_level.threshold_seconds",
                "out_of_range",
                "1 to 3600 seconds",
            ));
        }
        if !(1..=100).contains(&self.service_level.target_percent) {
            problems.push(InvalidValue::new("service_level.target_percent", "out_of_range", "1 to 100"));
        }
        if !(1..=86_400).contains(&self.max_wait_seconds) {
            problems.push(InvalidValue::new("max_wait_seconds", "out_of_range", "1 to 86400 seconds"));
        }
        if let OverflowTarget::Queue { queue_id } = self.overflow {
            if queue_id.is_nil() {
                problems.push(InvalidValue::new("overflow.queue_id", "required", "the queue to overflow to"));
            }
        }
        let a = self.announcement_interval_seconds;
        if a != 0 && !(10..=3600).contains(&a) {
            problems.push(InvalidValue::new(
                "announcement_interval_seconds",
                "out_of_range",
                "0 (off) or 10 to 3600 seconds",
            ));
        }
        if !(5..=300).contains(&self.offer_timeout_seconds) {
            problems.push(InvalidValue::new("offer_timeout_seconds", "out_of_range", "5 to 300 seconds"));
        }
        for (i, m) in self.members.iter().enumerate() {
            if m.id().is_nil() {
                problems.push(InvalidValue::new(format!("members[{i}].id"), "required", "a member id"));
            } else if self.members[..i].contains(m) {
                problems.push(InvalidValue::new(format!("members[{i}]"), "duplicate_member", "listed twice"));
            }
        }
        if self.members.len() > 5000 {
            problems.push(InvalidValue::new("members", "too_many", "at most 5000 members"));
        }
        if let Some(hours) = &self.business_hours {
            if let Err(p) = hours.validate("business_hours") {
                problems.extend(p);
            }
        }
        self.strategy_config = self.strategy_config.validated("strategy_config", &mut problems);
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(merge_problems(Vec::new(), problems))
        }
    }

    /// The engine strategy agents are picked with: `routing_strategy` if set, else
    /// [`for_queue`] of the queue strategy.
    pub fn effective_strategy(&self) -> Strategy {
        self.routing_strategy.unwrap_or_else(|| for_queue(self.strategy))
    }

    /// The agents in round-robin order: members in order, a team expanded by `team_agents`
    /// (in the order it gives), each agent once (its first place counts).
    pub fn agent_order(&self, mut team_agents: impl FnMut(Uuid) -> Vec<Uuid>) -> Vec<Uuid> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for m in &self.members {
            match *m {
                QueueMember::Agent { id } => {
                    if seen.insert(id) {
                        out.push(id);
                    }
                }
                QueueMember::Team { id } => {
                    for agent in team_agents(id) {
                        if seen.insert(agent) {
                            out.push(agent);
                        }
                    }
                }
            }
        }
        out
    }
}
