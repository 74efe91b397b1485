//! Dialer pacing (DOMAIN.md "Dialer pacing"): how many lines an outbound campaign dials each
//! interval (progressive or predictive), the compliance gate every single dial passes, what to do
//! with an answered call (AMD, the 2-second rule), and a seeded simulator that runs the same code
//! over a simulated day.
//!
//! Pure: the dialer's process manager reads agent states and call counts from read models and
//! hands them in, with the time; the simulator takes a seed.
//!
//! One dialer interval:
//! 1. build a [`PacingSample`] and, for predictive, [`PredictiveState::next`] the level;
//! 2. [`lines_to_dial`] gives how many lines to try;
//! 3. each line passes [`check_dial`] first. A refusal for the abandonment budget stops the
//!    over-dialing, not the dialing: lines covered by an idle agent keep passing, so the campaign
//!    degrades to progressive until the budget recovers.

pub mod compliance;
pub mod predictive;
pub mod sim;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use compliance::{
    answer_action, answer_probability_bound, binomial_quantile, check_dial, retry_delay, waiting_call_action,
    AbandonmentCounts, AmdOutcome, AnswerAction, ComplianceConfig, DialCheck, DialDecision, MachineAction,
    RefusalReason, RetryReason, WaitingCallAction, AGENT_CONNECT_DEADLINE_MS, MIN_RING_TIMEOUT_SECONDS,
    REDIAL_BLOCK_AFTER_ABANDON_HOURS,
};
pub use predictive::{
    drop_control, predictive_lines, DropStats, PacingSample, PredictiveConfig, PredictiveState,
    DEFAULT_DROP_CAP, DEFAULT_MAX_LEVEL, SAMPLE_WINDOW,
};
pub use sim::{simulate, LevelPoint, SimConfig, SimReport, TalkTime};

use crate::campaign::DialingMode;

/// The campaign's calls right now, as the dialer counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LineCounts {
    /// Calls that may still need an agent: dialed and not answered yet, or answered by a person
    /// and waiting for an agent.
    pub in_flight: u32,
    /// Every live call of the campaign: in flight, with an agent, or leaving a voicemail.
    pub live: u32,
}

/// Upper bounds on the campaign's live calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LineLimits {
    /// The campaign's `max_concurrent_calls`.
    pub max_concurrent_calls: u32,
    /// Lines the campaign may hold on the trunk.
    pub trunk_limit: u32,
}

impl LineLimits {
    pub fn new(max_concurrent_calls: u32, trunk_limit: u32) -> Self {
        Self { max_concurrent_calls, trunk_limit }
    }

    /// How many more calls fit next to `live` ones.
    pub fn headroom(self, live: u32) -> u32 {
        self.max_concurrent_calls.min(self.trunk_limit).saturating_sub(live)
    }
}

/// Progressive: one line per idle agent not already covered by a call in flight, never below 0,
/// within the campaign's limits.
pub fn progressive_lines(idle_agents: u32, counts: LineCounts, limits: LineLimits) -> u32 {
    idle_agents.saturating_sub(counts.in_flight).min(limits.headroom(counts.live))
}

/// What the dialer read for one interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DialerView {
    /// Logged-in agents not paused.
    pub agents: u32,
    /// Of them, available for a call.
    pub idle_agents: u32,
    /// Answered calls waiting for an agent.
    pub waiting_calls: u32,
    pub counts: LineCounts,
    pub drops: DropStats,
}

impl DialerView {
    pub fn sample(&self) -> PacingSample {
        PacingSample {
            ready_agents: self.idle_agents,
            waiting_calls: self.waiting_calls,
            agents: self.agents,
        }
    }
}

/// One interval's plan: advances the predictive level (kept in `state`) and says how many lines to
/// try. Preview campaigns dial only when an agent asks: 0. Progressive leaves `state` alone.
pub fn lines_to_dial(
    mode: DialingMode,
    state: &mut PredictiveState,
    view: &DialerView,
    config: &PredictiveConfig,
    limits: LineLimits,
) -> u32 {
    match mode {
        DialingMode::Preview => 0,
        DialingMode::Progressive => progressive_lines(view.idle_agents, view.counts, limits),
        DialingMode::Predictive => {
            state.next(view.sample(), config, &view.drops);
            state.lines(view.agents, view.counts, limits)
        }
    }
}
