//! Predictive pacing: VICIdial's adaptive dial level (`AST_VDadapt.pl`, DOMAIN.md "Dialer
//! pacing") with its drop control. The state is a plain serde struct so that a process manager
//! can keep it in an event or a row and carry it from one interval to the next.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::{LineCounts, LineLimits};
use crate::values::InvalidValue;

/// How many samples the averages run over.
pub const SAMPLE_WINDOW: usize = 15;
pub const DEFAULT_MAX_LEVEL: f64 = 3.0;
/// Abandoned ÷ live-answered calls allowed per campaign (47 CFR 64.1200(a)(7), Ofcom).
pub const DEFAULT_DROP_CAP: f64 = 0.03;

/// What the dialer saw at one pacing interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PacingSample {
    /// Agents available for a call right now.
    pub ready_agents: u32,
    /// Answered calls waiting for an agent.
    pub waiting_calls: u32,
    /// Agents logged in to the campaign and not paused (ready, on a call or in wrap-up).
    pub agents: u32,
}

/// The campaign's predictive tuning.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct PredictiveConfig {
    /// −100 (cautious: rises slowly, falls fast) ..= 100 (aggressive).
    pub intensity: i32,
    /// Added to avg ready − avg waiting: a negative offset aims for that many agents ready on
    /// average instead of none.
    pub offset: f64,
    pub max_level: f64,
    /// Drops ÷ answered today above this resets the level to 1.0.
    pub drop_cap: f64,
}

impl Default for PredictiveConfig {
    fn default() -> Self {
        Self { intensity: 0, offset: 0.0, max_level: DEFAULT_MAX_LEVEL, drop_cap: DEFAULT_DROP_CAP }
    }
}

impl PredictiveConfig {
    /// Every problem at once, under the API's field names.
    pub fn validate(&self) -> Result<(), Vec<InvalidValue>> {
        let mut problems = Vec::new();
        if !(-100..=100).contains(&self.intensity) {
            problems.push(InvalidValue::new("intensity", "out_of_range", "between -100 and 100"));
        }
        if !self.offset.is_finite() {
            problems.push(InvalidValue::new("offset", "invalid", "a finite number"));
        }
        if !(self.max_level.is_finite() && self.max_level >= 1.0) {
            problems.push(InvalidValue::new("max_level", "out_of_range", "at least 1.0"));
        }
        if !(self.drop_cap > 0.0 && self.drop_cap <= 1.0) {
            problems.push(InvalidValue::new("drop_cap", "out_of_range", "above 0 and at most 1"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// The counts drop control looks at, read from the campaign's call read model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DropStats {
    /// Live-answered calls in the last minute: the calls that could have been dropped.
    pub minute_answered: u64,
    pub minute_dropped: u64,
    /// Calls placed today.
    pub today_calls: u64,
    pub today_answered: u64,
    pub today_dropped: u64,
}

/// The adaptive level and the samples it averages over (oldest first, at most
/// [`SAMPLE_WINDOW`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PredictiveState {
    pub level: f64,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<PacingSample>))]
    pub samples: VecDeque<PacingSample>,
}

impl Default for PredictiveState {
    fn default() -> Self {
        Self::new(1.0)
    }
}

impl PredictiveState {
    pub fn new(level: f64) -> Self {
        Self { level, samples: VecDeque::with_capacity(SAMPLE_WINDOW) }
    }

    /// One pacing interval: records `sample` (dropping the oldest past 15), moves the level by
    /// the adaptive rule, then applies drop control. Returns the new level.
    pub fn next(&mut self, sample: PacingSample, config: &PredictiveConfig, drops: &DropStats) -> f64 {
        while self.samples.len() >= SAMPLE_WINDOW {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
        // A level read from an old row may sit outside today's bounds: start from inside them.
        let max_level = config.max_level.max(1.0);
        let level = if self.level.is_finite() { self.level.clamp(1.0, max_level) } else { 1.0 };
        let adapted = (level * (1.0 + self.multiplier(config))).clamp(1.0, max_level);
        self.level = drop_control(adapted, config, drops);
        self.level
    }

    /// `difference / avg_agents`, scaled by intensity; 0 while no agent is logged in.
    fn multiplier(&self, config: &PredictiveConfig) -> f64 {
        let n = self.samples.len() as f64;
        let avg = |f: fn(&PacingSample) -> u32| self.samples.iter().map(|s| f64::from(f(s))).sum::<f64>() / n;
        let avg_agents = avg(|s| s.agents);
        if self.samples.is_empty() || avg_agents <= 0.0 {
            return 0.0;
        }
        let difference = avg(|s| s.ready_agents) - avg(|s| s.waiting_calls) + config.offset;
        let multiplier = difference / avg_agents;
        let i = f64::from(config.intensity.clamp(-100, 100)) / 100.0;
        if multiplier < 0.0 {
            multiplier * (i - 1.0).abs()
        } else {
            multiplier * (1.0 + i)
        }
    }

    /// Lines to dial now at this level (see [`predictive_lines`]).
    pub fn lines(&self, agents: u32, counts: LineCounts, limits: LineLimits) -> u32 {
        predictive_lines(self.level, agents, counts, limits)
    }
}

/// Drop control: over 20 answered calls in the last minute with more than half dropped halves the
/// level; over 50 calls today with drops ÷ answered above the cap resets it to 1.0. Never below
/// 1.0.
pub fn drop_control(level: f64, config: &PredictiveConfig, drops: &DropStats) -> f64 {
    let mut level = level;
    if drops.minute_answered > 20 && drops.minute_dropped * 2 > drops.minute_answered {
        level = (level / 2.0).max(1.0);
    }
    if drops.today_calls > 50
        && drops.today_answered > 0
        && drops.today_dropped as f64 / drops.today_answered as f64 > config.drop_cap
    {
        level = 1.0;
    }
    level
}

/// `round(level × agents) − calls in progress`, never below 0, capped by the campaign's max
/// concurrent calls and the trunk. Calls in progress are all the campaign's live calls (ringing,
/// waiting, with an agent, leaving a voicemail).
pub fn predictive_lines(level: f64, agents: u32, counts: LineCounts, limits: LineLimits) -> u32 {
    let level = if level.is_finite() { level.max(0.0) } else { 1.0 };
    let target = (level * f64::from(agents)).round();
    // `as` saturates: a target beyond u32 is capped just below anyway.
    let wanted = (target as u32).saturating_sub(counts.live);
    wanted.min(limits.headroom(counts.live))
}
