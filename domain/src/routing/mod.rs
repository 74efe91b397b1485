//! The routing engine: which agent gets a waiting call. Pure and deterministic: time, the
//! candidates, the round-robin pointer and the random seed come in as a [`RoutingInput`], and
//! [`decide`] answers a [`RoutingDecision`] that explains every candidate. Both are serde, so
//! the event recording a decision carries them whole and a replay re-decides it exactly.
//!
//! One pipeline for every strategy (DOMAIN.md "Routing: 8 strategies"): **filter** (logged in,
//! available or on a call with free capacity, no live reservation, past wrap-up, has not
//! rejected this call, meets the hard skill and language rules) → **order** by the strategy's
//! key → **tie-break** by longest idle (never-called agents first), then agent id.

mod config;
mod engine;
pub mod fields;
#[cfg(test)]
mod tests;

pub use config::{CustomWeights, RelaxationStep, StrategyConfig, VipSettings};
pub use engine::{
    decide, next_change_ms, order_waiting, order_waiting_for, weighted_index, CallToRoute, Candidate,
    CandidateOutcome, NoWinner, PreferredAgent, RoutingDecision, RoutingInput, RuleVersion, SkillStep,
    WhyNot,
};

use serde::{Deserialize, Serialize};
use std::fmt;

/// How agents are picked for a call: the seed's 8 strategy names, plus `least_occupied`, which
/// only the queue strategy of that name needs (lowest occupancy over the interval).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// All required skills at or above their minimum; highest total proficiency; timed relaxation.
    #[default]
    SkillBased,
    /// First eligible agent after the pointer in member order, wrapping (Asterisk `rrmemory`).
    RoundRobin,
    /// Longest since the last call ended; never-called agents first (Asterisk `leastrecent`).
    LongestIdle,
    /// Fewest calls answered today, then lowest occupancy (Asterisk `fewestcalls`).
    LeastBusy,
    /// Callers by priority then arrival; the agent by longest idle.
    Priority,
    /// Highest proficiency in the required language; never another language.
    Language,
    /// The caller's last agent within N days first (held for a while), then the highest rated.
    Vip,
    /// A weighted score over agent attributes; ties broken by seeded weighted random.
    Custom,
    /// Lowest occupancy over the interval (the queue strategy `least_occupied`).
    LeastOccupied,
}

impl Strategy {
    /// The 8 strategies of the original API, as `GET /api/routing/strategies` lists them.
    pub const SEED: [Strategy; 8] = [
        Self::SkillBased,
        Self::RoundRobin,
        Self::LongestIdle,
        Self::LeastBusy,
        Self::Priority,
        Self::Language,
        Self::Vip,
        Self::Custom,
    ];

    /// Every strategy the engine knows (the seed's 8 and `least_occupied`).
    pub const ALL: [Strategy; 9] = [
        Self::SkillBased,
        Self::RoundRobin,
        Self::LongestIdle,
        Self::LeastBusy,
        Self::Priority,
        Self::Language,
        Self::Vip,
        Self::Custom,
        Self::LeastOccupied,
    ];

    /// The stable wire name (`skill_based`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SkillBased => "skill_based",
            Self::RoundRobin => "round_robin",
            Self::LongestIdle => "longest_idle",
            Self::LeastBusy => "least_busy",
            Self::Priority => "priority",
            Self::Language => "language",
            Self::Vip => "vip",
            Self::Custom => "custom",
            Self::LeastOccupied => "least_occupied",
        }
    }

    /// The strategy with this wire name, if any.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw.trim())
    }

    /// One sentence for people (the `/strategies` listing).
    pub fn description(self) -> &'static str {
        match self {
            Self::SkillBased => "Agents with every required skill at or above its minimum level; highest total proficiency first; requirements relax in timed steps.",
            Self::RoundRobin => "The next eligible agent after the last one offered, in member order, wrapping around.",
            Self::LongestIdle => "The agent idle longest since their last call; agents who have not taken a call yet come first.",
            Self::LeastBusy => "The agent with the fewest calls answered today, then the lowest occupancy.",
            Self::Priority => "Callers by priority (highest first), then arrival; the agent idle longest.",
            Self::Language => "An agent who speaks the caller's language, highest proficiency first; never another language.",
            Self::Vip => "The VIP caller's last agent (within the sticky window, held briefly), then the highest-rated agent.",
            Self::Custom => "A weighted score over skills, idle time, occupancy, rating and attributes; ties by seeded weighted random.",
            Self::LeastOccupied => "The agent with the lowest occupancy over the interval.",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a queue orders its waiting callers and picks agents (the seed's queue strategies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum QueueStrategy {
    /// Callers strictly by arrival; the agent idle longest.
    #[default]
    Fifo,
    /// Callers VIP first, then by priority, then arrival; the agent idle longest.
    Priority,
    /// Skill-based agent selection with timed relaxation.
    SkillBased,
    /// The agent idle longest (never-called first).
    LongestIdle,
    /// Asterisk `rrmemory` over the member order.
    RoundRobin,
    /// The agent with the lowest occupancy.
    LeastOccupied,
}

impl QueueStrategy {
    /// Every queue strategy.
    pub const ALL: [QueueStrategy; 6] = [
        Self::Fifo,
        Self::Priority,
        Self::SkillBased,
        Self::LongestIdle,
        Self::RoundRobin,
        Self::LeastOccupied,
    ];

    /// The stable wire name (`least_occupied`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fifo => "fifo",
            Self::Priority => "priority",
            Self::SkillBased => "skill_based",
            Self::LongestIdle => "longest_idle",
            Self::RoundRobin => "round_robin",
            Self::LeastOccupied => "least_occupied",
        }
    }
}

/// The engine strategy a queue strategy picks agents with: `fifo` → `longest_idle`,
/// `priority` → `priority` (agent by longest idle), `skill_based` → `skill_based`,
/// `longest_idle` → `longest_idle`, `round_robin` → `round_robin`,
/// `least_occupied` → `least_occupied`. Callers are ordered by [`order_waiting_for`].
pub fn for_queue(strategy: QueueStrategy) -> Strategy {
    match strategy {
        QueueStrategy::Fifo | QueueStrategy::LongestIdle => Strategy::LongestIdle,
        QueueStrategy::Priority => Strategy::Priority,
        QueueStrategy::SkillBased => Strategy::SkillBased,
        QueueStrategy::RoundRobin => Strategy::RoundRobin,
        QueueStrategy::LeastOccupied => Strategy::LeastOccupied,
    }
}
