//! `decide`: one routing decision from one input, the same every time.
//!
//! Scores are computed in a fixed order from the input alone (integer milliseconds for time,
//! the input's floats as given), so a decision re-decided from its JSON round trip is equal to
//! the recorded one (serde_json parses floats exactly with `float_roundtrip`). The only
//! randomness is a ChaCha8 stream seeded with `RoutingInput::seed`.
//!
//! Cost: one pass over the candidates, one sort of the eligible ones, two allocations per
//! decision plus one per required skill; nothing per candidate (a skill in a why-not code is a
//! shared `Arc<str>`). Measured with `decide_over_1000_candidates_takes_microseconds` (ignored;
//! figures in its comment).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::config::StrategyConfig;
use super::{QueueStrategy, Strategy};
use crate::agent::AgentState;

/// One agent the router may offer the call to, as the read side sees them now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Candidate {
    /// The agent.
    pub agent_id: Uuid,
    /// The agent's state.
    pub state: AgentState,
    /// Concurrent calls the agent takes.
    pub capacity: u32,
    /// Calls the agent is on now.
    pub active_calls: u32,
    /// Whether the agent holds a live reservation (an offer not yet answered).
    #[serde(default, skip_serializing_if = "is_false")]
    pub has_offer: bool,
    /// Whether the agent already rejected (or missed) this call.
    #[serde(default, skip_serializing_if = "is_false")]
    pub rejected_this_call: bool,
    /// Skill name → proficiency 1–5.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub skills: BTreeMap<String, u8>,
    /// Language tag → proficiency 1–5.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub languages: BTreeMap<String, u8>,
    /// When the agent's last call ended; `None`: no call yet (in this interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_call_ended_at: Option<DateTime<Utc>>,
    /// Since when the agent is available (idle reference for never-called agents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_since: Option<DateTime<Utc>>,
    /// Calls answered since tenant-local midnight.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub calls_answered_today: u32,
    /// Handle time ÷ (handle + idle) over the interval, 0..1.
    pub occupancy: f64,
    /// Rating 0.0–5.0.
    pub rating: f64,
    /// Free attributes for `custom` scores.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub attributes: Map<String, Value>,
    /// Position in the queue's member order (round-robin order), 0-based.
    pub member_index: usize,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A caller's last agent, for VIP stickiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PreferredAgent {
    /// The agent who last served the caller.
    pub agent_id: Uuid,
    /// When that contact was.
    pub last_contact_at: DateTime<Utc>,
}

/// The call being routed and what it requires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CallToRoute {
    /// The call.
    pub call_id: Uuid,
    /// The queue it waits in (none when a rule routes to agents directly).
    pub queue_id: Option<Uuid>,
    /// Caller priority, higher first.
    pub priority: i32,
    /// When the call joined the queue (first in, first out).
    pub arrived_at: DateTime<Utc>,
    /// How long the call has waited so far, in milliseconds (drives relaxation and VIP hold).
    pub waited_ms: u64,
    /// Skill name → minimum level 1–5 (when no relaxation steps are configured).
    pub required_skills: BTreeMap<String, u8>,
    /// Language the agent must speak.
    pub required_language: Option<String>,
    /// A VIP caller jumps the queue and may have a sticky agent.
    pub vip: bool,
    /// The caller's last agent.
    pub preferred_agent: Option<PreferredAgent>,
    /// Anything else known about the call (for the record).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub attributes: Map<String, Value>,
}

/// The routing rule (and its version) whose strategy is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RuleVersion {
    /// The rule.
    pub rule_id: Uuid,
    /// Its version (1, 2, …).
    pub version: u32,
}

/// Everything a decision depends on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoutingInput {
    /// The decision's clock.
    pub now: DateTime<Utc>,
    /// The call.
    pub call: CallToRoute,
    /// The queue's members (all of them, eligible or not).
    pub candidates: Vec<Candidate>,
    /// How to pick.
    pub strategy: Strategy,
    /// Strategy settings.
    pub config: StrategyConfig,
    /// Member index of the agent last offered a call of this queue (round robin).
    pub rr_pointer: Option<usize>,
    /// Seed of the random draw (custom ties).
    pub seed: u64,
    /// The rule that chose the strategy, if one did.
    pub rule: Option<RuleVersion>,
}

/// Why a candidate was not eligible; serialized as a stable code (`missing_skill:billing`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WhyNot {
    /// Offline.
    LoggedOut,
    /// On break, in training, away (paused) or busy.
    NotAvailable,
    /// Holds a live reservation.
    Reserved,
    /// In after-call work.
    WrapUp,
    /// Every line taken.
    NoCapacity,
    /// Rejected or missed this call before.
    RejectedThisCall,
    /// Lacks a required skill (the name is shared, not copied per candidate).
    MissingSkill(Arc<str>),
    /// Has a required skill below its minimum level.
    SkillBelowMinimum(Arc<str>),
    /// Does not speak the required language.
    NoLanguage,
    /// Eligible, but the call waits for the VIP caller's preferred agent.
    ReservedForPreferredAgent,
}

impl WhyNot {
    fn parse(code: &str) -> Option<Self> {
        Some(match code {
            "logged_out" => Self::LoggedOut,
            "not_available" => Self::NotAvailable,
            "reserved" => Self::Reserved,
            "wrap_up" => Self::WrapUp,
            "no_capacity" => Self::NoCapacity,
            "rejected_this_call" => Self::RejectedThisCall,
            "no_language" => Self::NoLanguage,
            "reserved_for_preferred_agent" => Self::ReservedForPreferredAgent,
            other => {
                if let Some(s) = other.strip_prefix("missing_skill:") {
                    Self::MissingSkill(s.into())
                } else if let Some(s) = other.strip_prefix("skill_below_minimum:") {
                    Self::SkillBelowMinimum(s.into())
                } else {
                    return None;
                }
            }
        })
    }
}

impl fmt::Display for WhyNot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LoggedOut => f.write_str("logged_out"),
            Self::NotAvailable => f.write_str("not_available"),
            Self::Reserved => f.write_str("reserved"),
            Self::WrapUp => f.write_str("wrap_up"),
            Self::NoCapacity => f.write_str("no_capacity"),
            Self::RejectedThisCall => f.write_str("rejected_this_call"),
            Self::MissingSkill(s) => write!(f, "missing_skill:{s}"),
            Self::SkillBelowMinimum(s) => write!(f, "skill_below_minimum:{s}"),
            Self::NoLanguage => f.write_str("no_language"),
            Self::ReservedForPreferredAgent => f.write_str("reserved_for_preferred_agent"),
        }
    }
}

impl Serialize for WhyNot {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for WhyNot {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        Self::parse(&code).ok_or_else(|| serde::de::Error::custom(format!("unknown why_not code {code:?}")))
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for WhyNot {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        String::schema()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for WhyNot {}

/// What the decision says about one candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CandidateOutcome {
    /// The agent.
    pub agent_id: Uuid,
    /// Whether the agent passed the filter.
    pub eligible: bool,
    /// Why not, when not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why_not: Option<WhyNot>,
    /// The strategy's key for this agent, higher ranks first (eligible agents only). Ties are
    /// broken by longest idle, then agent id; `longest_idle` and `priority` rank never-called
    /// agents first and `vip` the preferred agent first, whatever their score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// 1 = offered; eligible agents only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<u32>,
}

/// Why nobody is offered the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NoWinner {
    /// The queue has no members.
    NoCandidates,
    /// Nobody passed the filter.
    NoneEligible,
    /// Nobody among the members speaks the required language (the call must overflow, not switch).
    NoAgentSpeaksLanguage,
    /// The VIP caller's preferred agent is busy and the hold has not timed out.
    WaitingForPreferredAgent,
}

/// Which skill requirements applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SkillStep {
    /// The call's own required skills (no relaxation steps, or not `skill_based`).
    CallRequirements,
    /// Relaxation step `number` (1-based), which applies while the wait is under `until_wait_seconds`.
    Step {
        /// 1-based step number.
        number: u32,
        /// The wait at which this step ends.
        until_wait_seconds: u64,
    },
    /// Every step expired: any queue member.
    AnyMember,
}

/// The decision, with everything needed to explain and replay it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoutingDecision {
    /// The call.
    pub call_id: Uuid,
    /// Its queue.
    pub queue_id: Option<Uuid>,
    /// The strategy used.
    pub strategy: Strategy,
    /// The rule version that chose it.
    pub rule: Option<RuleVersion>,
    /// Which skill requirements applied.
    pub skill_step: SkillStep,
    /// The skills required in the end (name → minimum level).
    pub required_skills: BTreeMap<String, u8>,
    /// The language required.
    pub required_language: Option<String>,
    /// Every candidate, in input order.
    pub candidates: Vec<CandidateOutcome>,
    /// The agent to offer the call to.
    pub winner: Option<Uuid>,
    /// Why nobody, when nobody.
    pub why_none: Option<NoWinner>,
    /// Whether the winner came out of the seeded weighted draw among agents tied on score.
    pub random_tie_break: bool,
    /// The seed used.
    pub seed: u64,
    /// Round-robin pointer before the decision.
    pub rr_pointer_before: Option<usize>,
    /// Round-robin pointer after it (the winner's member index under `round_robin`).
    pub rr_pointer_after: Option<usize>,
}

/// Ordering key of an eligible candidate; compared tier ↓, score ↓, secondary ↓, never-called
/// first, idle ↓, agent id ↑, input index ↑.
#[derive(Clone, Copy)]
struct Key {
    tier: u8,
    score: f64,
    secondary: f64,
    never_called: bool,
    idle_ms: i64,
    agent_id: Uuid,
    index: u32,
}

impl Key {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .tier
            .cmp(&self.tier)
            .then_with(|| other.score.total_cmp(&self.score))
            .then_with(|| other.secondary.total_cmp(&self.secondary))
            .then_with(|| other.never_called.cmp(&self.never_called))
            .then_with(|| other.idle_ms.cmp(&self.idle_ms))
            .then_with(|| self.agent_id.cmp(&other.agent_id))
            .then_with(|| self.index.cmp(&other.index))
    }

    fn same_score(&self, other: &Self) -> bool {
        self.tier == other.tier && self.score.to_bits() == other.score.to_bits()
    }
}

fn finite(x: f64) -> f64 {
    if x.is_finite() {
        x
    } else {
        0.0
    }
}

/// Milliseconds idle: since the last call ended, or since available for never-called agents.
/// Integer milliseconds since the epoch (cheaper than subtracting `DateTime`s, and exact).
fn idle_ms(c: &Candidate, now_ms: i64) -> i64 {
    c.last_call_ended_at.or(c.available_since).map_or(0, |t| now_ms.saturating_sub(t.timestamp_millis()))
}

/// A required skill: name, minimum level, and the name shared by every why-not code.
type Requirement<'a> = (&'a str, u8, Arc<str>);

fn why_not(c: &Candidate, required: &[Requirement<'_>], language: Option<&str>) -> Option<WhyNot> {
    match c.state {
        AgentState::Offline => return Some(WhyNot::LoggedOut),
        AgentState::Break | AgentState::Training | AgentState::Away | AgentState::Busy => {
            return Some(WhyNot::NotAvailable)
        }
        AgentState::Reserved => return Some(WhyNot::Reserved),
        AgentState::WrapUp => return Some(WhyNot::WrapUp),
        AgentState::Available | AgentState::OnCall => {}
    }
    if c.active_calls >= c.capacity {
        return Some(WhyNot::NoCapacity);
    }
    if c.has_offer {
        return Some(WhyNot::Reserved);
    }
    if c.rejected_this_call {
        return Some(WhyNot::RejectedThisCall);
    }
    for (name, min, shared) in required {
        match c.skills.get(*name) {
            None => return Some(WhyNot::MissingSkill(Arc::clone(shared))),
            Some(level) if level < min => return Some(WhyNot::SkillBelowMinimum(Arc::clone(shared))),
            Some(_) => {}
        }
    }
    if let Some(lang) = language {
        if !c.languages.contains_key(lang) {
            return Some(WhyNot::NoLanguage);
        }
    }
    None
}

fn skill_step(input: &RoutingInput) -> (SkillStep, &BTreeMap<String, u8>) {
    static NONE: BTreeMap<String, u8> = BTreeMap::new();
    let steps = &input.config.relaxation_steps;
    if input.strategy != Strategy::SkillBased || steps.is_empty() {
        return (SkillStep::CallRequirements, &input.call.required_skills);
    }
    let mut until_s: u64 = 0;
    for (i, step) in steps.iter().enumerate() {
        until_s += u64::from(step.expires_after_seconds);
        if input.call.waited_ms < until_s.saturating_mul(1000) {
            let number = u32::try_from(i + 1).unwrap_or(u32::MAX);
            return (SkillStep::Step { number, until_wait_seconds: until_s }, &step.required_skills);
        }
    }
    (SkillStep::AnyMember, &NONE)
}

/// The weight of a candidate in the custom tie draw, in thousandths.
fn tie_weight(c: &Candidate, attribute: Option<&str>) -> u64 {
    let Some(attr) = attribute else { return 1000 };
    match c.attributes.get(attr).and_then(Value::as_f64) {
        Some(w) if w.is_finite() && w >= 0.0 => (w.min(1e12) * 1000.0).round() as u64,
        _ => 1000,
    }
}

fn attribute_value(v: Option<&Value>) -> f64 {
    match v {
        Some(Value::Number(n)) => finite(n.as_f64().unwrap_or(0.0)),
        Some(Value::Bool(true)) => 1.0,
        _ => 0.0,
    }
}

fn custom_score(c: &Candidate, input: &RoutingInput, required: &BTreeMap<String, u8>, idle: i64) -> f64 {
    let w = &input.config.custom;
    let skill = if required.is_empty() {
        0.0
    } else {
        let total: u32 = required.keys().map(|k| u32::from(c.skills.get(k).copied().unwrap_or(0))).sum();
        f64::from(total) / (5.0 * required.len() as f64)
    };
    let horizon = i64::from(w.idle_horizon_seconds.max(1)) * 1000;
    let idle = idle.clamp(0, horizon) as f64 / horizon as f64;
    let occupancy = 1.0 - finite(c.occupancy).clamp(0.0, 1.0);
    let rating = finite(c.rating).clamp(0.0, 5.0) / 5.0;
    let mut score = w.skill * skill + w.idle * idle + w.occupancy * occupancy + w.rating * rating;
    for (name, weight) in &w.attributes {
        score += weight * attribute_value(c.attributes.get(name));
    }
    finite(score)
}

/// Picks an index with probability weight ÷ total (equal chances when every weight is 0).
pub fn weighted_index(rng: &mut impl RngCore, weights: &[u64]) -> usize {
    if weights.is_empty() {
        return 0;
    }
    let total = weights.iter().fold(0u64, |a, w| a.saturating_add(*w));
    let mut draw = |n: u64| ((u128::from(rng.next_u64()) * u128::from(n)) >> 64) as u64;
    if total == 0 {
        return draw(weights.len() as u64) as usize;
    }
    let r = draw(total);
    let mut acc = 0u64;
    for (i, w) in weights.iter().enumerate() {
        acc = acc.saturating_add(*w);
        if r < acc {
            return i;
        }
    }
    weights.len() - 1
}

/// Decides who is offered the call. Pure: the same input always gives the same decision.
pub fn decide(input: &RoutingInput) -> RoutingDecision {
    let call = &input.call;
    let now = input.now;
    let now_ms = now.timestamp_millis();
    let (step, required) = skill_step(input);
    let requirements: Vec<Requirement<'_>> =
        required.iter().map(|(name, min)| (name.as_str(), *min, Arc::from(name.as_str()))).collect();
    let language = call.required_language.as_deref();
    let strategy = input.strategy;

    // VIP stickiness applies to VIP callers whose last contact is recent enough.
    let sticky = (strategy == Strategy::Vip && call.vip)
        .then_some(call.preferred_agent)
        .flatten()
        .filter(|p| {
            now - p.last_contact_at <= chrono::Duration::days(i64::from(input.config.vip.sticky_days))
        })
        .map(|p| p.agent_id);

    // Round robin: distances count from the member after the pointer, wrapping.
    let modulus =
        input.candidates.iter().map(|c| c.member_index).max().unwrap_or(0).max(input.rr_pointer.unwrap_or(0))
            + 1;

    let mut outcomes = Vec::with_capacity(input.candidates.len());
    let mut ranked: Vec<Key> = Vec::with_capacity(input.candidates.len());
    let mut someone_speaks = language.is_none();
    let mut hold_for_preferred = false;

    for (i, c) in input.candidates.iter().enumerate() {
        if let Some(lang) = language {
            someone_speaks |= c.languages.contains_key(lang);
        }
        let why = why_not(c, &requirements, language);
        let preferred = sticky == Some(c.agent_id);
        if preferred {
            // Worth waiting for only while they are busy with calls and will be free soon.
            let busy = matches!(why, Some(WhyNot::Reserved | WhyNot::WrapUp | WhyNot::NoCapacity));
            hold_for_preferred =
                busy && call.waited_ms < u64::from(input.config.vip.sticky_timeout_seconds) * 1000;
        }
        if why.is_none() {
            let idle = idle_ms(c, now_ms);
            let never_called = c.last_call_ended_at.is_none();
            let (tier, score, secondary) = match strategy {
                Strategy::SkillBased => {
                    let total: u32 =
                        required.keys().map(|k| u32::from(c.skills.get(k).copied().unwrap_or(0))).sum();
                    (0, f64::from(total), 0.0)
                }
                Strategy::RoundRobin => {
                    let pos = c.member_index;
                    let distance = match input.rr_pointer {
                        None => pos,
                        Some(p) if pos > p => pos - p - 1,
                        Some(p) => pos + modulus - p - 1,
                    };
                    (0, -(distance as f64), 0.0)
                }
                Strategy::LongestIdle | Strategy::Priority => {
                    (u8::from(never_called), idle as f64 / 1000.0, 0.0)
                }
                Strategy::LeastBusy => (0, -f64::from(c.calls_answered_today), -finite(c.occupancy)),
                Strategy::LeastOccupied => (0, -finite(c.occupancy), 0.0),
                Strategy::Language => {
                    let p = language.and_then(|l| c.languages.get(l)).copied().unwrap_or(0);
                    (0, f64::from(p), 0.0)
                }
                Strategy::Vip => (u8::from(preferred), finite(c.rating), 0.0),
                Strategy::Custom => (0, custom_score(c, input, required, idle), 0.0),
            };
            ranked.push(Key {
                tier,
                score,
                secondary,
                never_called,
                idle_ms: idle,
                agent_id: c.agent_id,
                index: u32::try_from(i).unwrap_or(u32::MAX),
            });
        }
        outcomes.push(CandidateOutcome {
            agent_id: c.agent_id,
            eligible: why.is_none(),
            why_not: why,
            score: None,
            rank: None,
        });
    }

    ranked.sort_unstable_by(Key::cmp);

    let mut random_tie_break = false;
    if strategy == Strategy::Custom && ranked.len() > 1 && ranked[0].same_score(&ranked[1]) {
        let tied = ranked.iter().take_while(|k| k.same_score(&ranked[0])).count();
        let attribute = input.config.custom.tie_weight_attribute.as_deref();
        let weights: Vec<u64> = ranked[..tied]
            .iter()
            .map(|k| tie_weight(&input.candidates[k.index as usize], attribute))
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(input.seed);
        let chosen = weighted_index(&mut rng, &weights);
        ranked[..=chosen].rotate_right(1);
        random_tie_break = true;
    }

    if hold_for_preferred {
        for k in &ranked {
            let o = &mut outcomes[k.index as usize];
            o.eligible = false;
            o.why_not = Some(WhyNot::ReservedForPreferredAgent);
        }
        ranked.clear();
        random_tie_break = false;
    }

    for (rank, k) in ranked.iter().enumerate() {
        let o = &mut outcomes[k.index as usize];
        o.score = Some(k.score);
        o.rank = Some(u32::try_from(rank + 1).unwrap_or(u32::MAX));
    }

    let winner = ranked.first().map(|k| k.agent_id);
    let why_none = match winner {
        Some(_) => None,
        None if input.candidates.is_empty() => Some(NoWinner::NoCandidates),
        None if hold_for_preferred => Some(NoWinner::WaitingForPreferredAgent),
        None if !someone_speaks => Some(NoWinner::NoAgentSpeaksLanguage),
        None => Some(NoWinner::NoneEligible),
    };
    let rr_pointer_after = match (strategy, ranked.first()) {
        (Strategy::RoundRobin, Some(k)) => Some(input.candidates[k.index as usize].member_index),
        _ => input.rr_pointer,
    };

    RoutingDecision {
        call_id: call.call_id,
        queue_id: call.queue_id,
        strategy,
        rule: input.rule,
        skill_step: step,
        required_skills: required.clone(),
        required_language: call.required_language.clone(),
        candidates: outcomes,
        winner,
        why_none,
        random_tie_break,
        seed: input.seed,
        rr_pointer_before: input.rr_pointer,
        rr_pointer_after,
    }
}

fn caller_order(a: &CallToRoute, b: &CallToRoute) -> Ordering {
    b.vip
        .cmp(&a.vip)
        .then_with(|| b.priority.cmp(&a.priority))
        .then_with(|| a.arrived_at.cmp(&b.arrived_at))
        .then_with(|| a.call_id.cmp(&b.call_id))
}

/// Waiting calls in the order they are served: VIP callers first (they jump the queue), then
/// priority (higher first), then arrival (first in, first out), then call id.
pub fn order_waiting(calls: &[CallToRoute]) -> Vec<Uuid> {
    let mut sorted: Vec<&CallToRoute> = calls.iter().collect();
    sorted.sort_by(|a, b| caller_order(a, b));
    sorted.into_iter().map(|c| c.call_id).collect()
}

/// Waiting calls in the order a queue of this strategy serves them: `fifo` strictly by arrival
/// (then call id), ignoring VIP and priority; every other strategy as [`order_waiting`].
pub fn order_waiting_for(strategy: QueueStrategy, calls: &[CallToRoute]) -> Vec<Uuid> {
    if strategy != QueueStrategy::Fifo {
        return order_waiting(calls);
    }
    let mut sorted: Vec<&CallToRoute> = calls.iter().collect();
    sorted.sort_by(|a, b| a.arrived_at.cmp(&b.arrived_at).then_with(|| a.call_id.cmp(&b.call_id)));
    sorted.into_iter().map(|c| c.call_id).collect()
}

/// The wait (ms) after `input.call.waited_ms` at which the same input could decide otherwise
/// by the clock alone: the end of the current relaxation step (`skill_based`) or of the VIP
/// hold for a preferred agent (`vip`). `None`: only a change of the agents or the call can.
/// The router sets a timer there when a decision finds nobody.
pub fn next_change_ms(input: &RoutingInput) -> Option<u64> {
    let waited = input.call.waited_ms;
    let mut next: Option<u64> = None;
    if input.strategy == Strategy::SkillBased {
        if let (SkillStep::Step { until_wait_seconds, .. }, _) = skill_step(input) {
            next = Some(until_wait_seconds.saturating_mul(1000));
        }
    }
    if input.strategy == Strategy::Vip && input.call.vip && input.call.preferred_agent.is_some() {
        let hold = u64::from(input.config.vip.sticky_timeout_seconds) * 1000;
        if hold > waited {
            next = Some(next.map_or(hold, |n| n.min(hold)));
        }
    }
    next.filter(|n| *n > waited)
}
