//! The rules every dial passes, not advisory (DOMAIN.md, 47 CFR 64.1200(a)(7), Ofcom's
//! persistent misuse policy): abandoned calls ≤ 3 % of live-answered calls per campaign, per day
//! and over rolling 30 days; no redial of a number dropped as abandoned for 72 h; ring ≥ 15 s;
//! and what happens to an answered call (AMD outcome, the 2-second rule).
//!
//! The abandonment budget. A dial is *covered* when every call in flight, this one included, has
//! an idle agent waiting for it: it cannot be abandoned, so it is always allowed (that is
//! progressive dialing). Any other dial puts the calls beyond the idle agents *at risk*; it is
//! allowed only while the drops they could cause fit under the cap as it stands now:
//!
//! ```text
//! at risk   = ringing + 1 − (idle agents − waiting calls)
//! worst     = waiting calls + q(at risk, p, drop_risk)
//! allowed   = cap × (live answered + fp) − (abandoned + fp)       (per window)
//! refuse when worst > allowed
//! ```
//!
//! `p` is an upper bound on the chance a dial reaches a person ([`answer_probability_bound`]),
//! every at-risk call a person answers is assumed dropped, and `q` is the binomial quantile: so
//! many people answer the at-risk calls or more only with a chance of `drop_risk` (0.01 %).
//! Waiting calls already have no agent. (A normal approximation, mean + 2–3 σ, let a few small
//! campaigns past the cap in the simulator: at 3 calls at risk, p = 0.125, it allows 2.1 drops where 3 happen
//! 0.2 % of the time, again and again over a day.)
//! `fp` is the estimate of AMD false positives (Ofcom counts them as abandoned), day window only.
//! The current denominator is used, though each answer will raise it: the cap holds at every
//! moment, not only at the end of the day. A refusal degrades the campaign to progressive rather
//! than stopping it: covered dials still pass, and they only lower the rate.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::campaign::settings::ABANDONED_MINIMUM_MINUTES;
use crate::campaign::RetryDelays;
use crate::values::InvalidValue;

use super::predictive::DEFAULT_DROP_CAP;

/// The shortest ring timeout the dialer may ask the carrier for.
pub const MIN_RING_TIMEOUT_SECONDS: u32 = 15;
/// A person who answered must hear an agent within this long of their greeting.
pub const AGENT_CONNECT_DEADLINE_MS: i64 = 2_000;
pub const REDIAL_BLOCK_AFTER_ABANDON_HOURS: i64 = 72;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct ComplianceConfig {
    /// Abandoned ÷ live-answered calls allowed (0.03).
    pub abandonment_cap: f64,
    /// The campaign's reasoned estimate of the share of machine detections that were people
    /// (Ofcom counts those as abandoned calls).
    pub amd_false_positive_rate: f64,
    /// The chance, at most, that the calls at risk bring more drops than the budget holds.
    pub drop_risk: f64,
}

impl Default for ComplianceConfig {
    fn default() -> Self {
        Self { abandonment_cap: DEFAULT_DROP_CAP, amd_false_positive_rate: 0.0, drop_risk: 0.0001 }
    }
}

impl ComplianceConfig {
    pub fn validate(&self) -> Result<(), Vec<InvalidValue>> {
        let mut problems = Vec::new();
        // Never looser than the law; a campaign may hold itself to less.
        if !(self.abandonment_cap > 0.0 && self.abandonment_cap <= DEFAULT_DROP_CAP) {
            problems.push(InvalidValue::new("abandonment_cap", "out_of_range", "above 0 and at most 0.03"));
        }
        if !(0.0..=1.0).contains(&self.amd_false_positive_rate) {
            problems.push(InvalidValue::new("amd_false_positive_rate", "out_of_range", "between 0 and 1"));
        }
        if !(self.drop_risk > 0.0 && self.drop_risk < 1.0) {
            problems.push(InvalidValue::new("drop_risk", "out_of_range", "above 0 and below 1"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// A campaign's answered calls over one window (today, or the last 30 days).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AbandonmentCounts {
    /// Answered by a person (or by something AMD could not tell from one).
    pub live_answered: u64,
    /// Of them, given no agent within 2 s.
    pub abandoned: u64,
    /// Answers AMD called a machine.
    pub machine_detected: u64,
}

impl AbandonmentCounts {
    /// (abandoned + fp) ÷ (live answered + fp), with `fp` the estimated false positives among
    /// machine detections; 0 before the first answer.
    pub fn rate(&self, amd_false_positive_rate: f64) -> f64 {
        let fp = self.machine_detected as f64 * amd_false_positive_rate;
        let answered = self.live_answered as f64 + fp;
        if answered <= 0.0 {
            0.0
        } else {
            (self.abandoned as f64 + fp) / answered
        }
    }

    /// Drops still allowed before the rate passes `cap`; negative once it has.
    pub fn budget(&self, cap: f64, amd_false_positive_rate: f64) -> f64 {
        let fp = self.machine_detected as f64 * amd_false_positive_rate;
        cap * (self.live_answered as f64 + fp) - (self.abandoned as f64 + fp)
    }
}

/// Everything the gate needs about one dial about to be placed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DialCheck {
    pub at: DateTime<Utc>,
    /// The ring timeout the dialer will ask the carrier for.
    pub ring_timeout_seconds: u32,
    /// When this number was last dropped as abandoned, by any campaign of the tenant.
    pub last_abandoned_at: Option<DateTime<Utc>>,
    /// The campaign's counts today (the tenant's local day) and over the last 30 days.
    pub today: AbandonmentCounts,
    pub last_30_days: AbandonmentCounts,
    /// The campaign's calls dialed and not answered yet (not counting this one).
    pub ringing: u32,
    /// Answered by a person and waiting for an agent.
    pub waiting_calls: u32,
    pub idle_agents: u32,
    /// Upper bound on the chance a dial reaches a person (see [`answer_probability_bound`]).
    pub human_answer_probability: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    /// The ring timeout asked of the carrier is under 15 s.
    RingTimeoutTooShort,
    /// The number was dropped as abandoned less than 72 h ago.
    #[serde(rename = "abandoned_within_72h")]
    AbandonedWithin72h,
    /// One more over-dial could take today's abandonment rate over the cap.
    AbandonmentCapDay,
    /// ... or the rolling 30-day rate.
    #[serde(rename = "abandonment_cap_30_days")]
    AbandonmentCap30Days,
}

impl RefusalReason {
    pub fn code(self) -> &'static str {
        match self {
            Self::RingTimeoutTooShort => "ring_timeout_too_short",
            Self::AbandonedWithin72h => "abandoned_within_72h",
            Self::AbandonmentCapDay => "abandonment_cap_day",
            Self::AbandonmentCap30Days => "abandonment_cap_30_days",
        }
    }

    /// Whether the refusal is about this number (try the next contact) rather than about the
    /// campaign's pace (stop over-dialing this interval).
    pub fn is_about_the_number(self) -> bool {
        matches!(self, Self::AbandonedWithin72h)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DialDecision {
    Allowed,
    Refused(RefusalReason),
}

impl DialDecision {
    pub fn is_allowed(self) -> bool {
        self == Self::Allowed
    }
}

/// The gate before every dial: ring time, the 72 h redial block, then the abandonment budget of
/// the day and of the 30 days (see the module's notes).
pub fn check_dial(dial: &DialCheck, config: &ComplianceConfig) -> DialDecision {
    use DialDecision::Refused;
    if dial.ring_timeout_seconds < MIN_RING_TIMEOUT_SECONDS {
        return Refused(RefusalReason::RingTimeoutTooShort);
    }
    if dial.last_abandoned_at.is_some_and(|t| dial.at - t < Duration::hours(REDIAL_BLOCK_AFTER_ABANDON_HOURS))
    {
        return Refused(RefusalReason::AbandonedWithin72h);
    }
    let Some(worst) = worst_drops(dial, config) else {
        return DialDecision::Allowed;
    };
    let worst = f64::from(worst);
    let cap = config.abandonment_cap;
    if worst > dial.today.budget(cap, config.amd_false_positive_rate) {
        return Refused(RefusalReason::AbandonmentCapDay);
    }
    // The US rule counts drops of live calls; AMD estimates are the UK's.
    if worst > dial.last_30_days.budget(cap, 0.0) {
        return Refused(RefusalReason::AbandonmentCap30Days);
    }
    DialDecision::Allowed
}

/// The drops the calls in flight could cause once this one is placed: the waiting calls, plus the
/// number of people among the at-risk calls that is exceeded with a chance of at most
/// `drop_risk` (a binomial quantile); `None` when every call has an idle agent.
fn worst_drops(dial: &DialCheck, config: &ComplianceConfig) -> Option<u32> {
    let free = dial.idle_agents.saturating_sub(dial.waiting_calls);
    let at_risk = (dial.ringing + 1).saturating_sub(free);
    if at_risk == 0 && dial.waiting_calls == 0 {
        return None;
    }
    let p = if dial.human_answer_probability.is_finite() {
        dial.human_answer_probability.clamp(0.0, 1.0)
    } else {
        1.0
    };
    Some(dial.waiting_calls + binomial_quantile(at_risk, p, config.drop_risk))
}

/// The smallest k with P(X > k) ≤ `tail` for X ~ Binomial(n, p). Summed in log space so that
/// large n does not underflow.
pub fn binomial_quantile(n: u32, p: f64, tail: f64) -> u32 {
    if p <= 0.0 || n == 0 {
        return 0;
    }
    if p >= 1.0 || tail.is_nan() || tail <= 0.0 {
        return n;
    }
    let (ln_p, ln_q) = (p.ln(), (1.0 - p).ln());
    let mut ln_pmf = f64::from(n) * ln_q;
    let mut cdf = 0.0;
    for k in 0..n {
        cdf += ln_pmf.exp();
        if 1.0 - cdf <= tail {
            return k;
        }
        ln_pmf += (f64::from(n - k) / f64::from(k + 1)).ln() + ln_p - ln_q;
    }
    n
}

/// An upper bound (Wilson score, z = 2) on the share of dials a person answers, from the
/// campaign's dials whose outcome is known. 1.0 before there are any: the first over-dials wait
/// until the campaign has seen how often people answer.
pub fn answer_probability_bound(resolved_dials: u64, live_answered: u64) -> f64 {
    if resolved_dials == 0 {
        return 1.0;
    }
    let n = resolved_dials as f64;
    let p = (live_answered as f64 / n).min(1.0);
    let z2 = 4.0;
    let centre = p + z2 / (2.0 * n);
    let spread = 2.0 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre + spread) / (1.0 + z2 / n)).min(1.0)
}

/// What answering-machine detection said, in the dialer's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AmdOutcome {
    Human,
    Machine,
    Unknown,
}

impl AmdOutcome {
    /// Twilio's `AnsweredBy`. A fax is not a person: machine. A value Twilio adds later is
    /// unknown, which is handled as a person: dropping a person breaks the law, an agent hearing a
    /// machine does not.
    pub fn from_twilio(answered_by: &str) -> Self {
        match answered_by {
            "human" => Self::Human,
            "machine_start" | "machine_end_beep" | "machine_end_silence" | "machine_end_other" | "fax" => {
                Self::Machine
            }
            _ => Self::Unknown,
        }
    }

    /// Telnyx's detection `result`: human, machine, not_sure (premium detection adds
    /// human_residence, human_business, silence and fax_detected).
    pub fn from_telnyx(result: &str) -> Self {
        match result {
            "human" | "human_residence" | "human_business" => Self::Human,
            "machine" | "fax_detected" => Self::Machine,
            _ => Self::Unknown,
        }
    }
}

/// A campaign's choice for calls a machine answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MachineAction {
    /// Play the campaign's voicemail message, then hang up.
    #[default]
    VoicemailDrop,
    /// Hang up and call again after the campaign's voicemail retry delay.
    Retry,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerAction {
    ConnectAgent,
    VoicemailDrop,
    Retry,
}

/// Human and unknown go to an agent; machines as the campaign chose.
pub fn answer_action(outcome: AmdOutcome, machine: MachineAction) -> AnswerAction {
    match (outcome, machine) {
        (AmdOutcome::Human | AmdOutcome::Unknown, _) => AnswerAction::ConnectAgent,
        (AmdOutcome::Machine, MachineAction::VoicemailDrop) => AnswerAction::VoicemailDrop,
        (AmdOutcome::Machine, MachineAction::Retry) => AnswerAction::Retry,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitingCallAction {
    /// A free agent, within 2 s of the greeting.
    ConnectAgent,
    KeepWaiting,
    /// Play the campaign's identification message and hang up; the call counts as abandoned and
    /// the number is not redialled for 72 h.
    Abandon,
}

/// The 2-second rule for a person waiting for an agent since `greeting_at`.
pub fn waiting_call_action(
    greeting_at: DateTime<Utc>,
    now: DateTime<Utc>,
    free_agent: bool,
) -> WaitingCallAction {
    let within = now - greeting_at <= Duration::milliseconds(AGENT_CONNECT_DEADLINE_MS);
    match (free_agent, within) {
        (true, true) => WaitingCallAction::ConnectAgent,
        (false, true) => WaitingCallAction::KeepWaiting,
        (_, false) => WaitingCallAction::Abandon,
    }
}

/// Why a contact is to be called again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryReason {
    NoAnswer,
    Busy,
    Failed,
    Machine,
    Abandoned,
}

/// The campaign's delay for `reason`; an abandoned number waits at least 72 h whatever the
/// settings say (old events may carry less).
pub fn retry_delay(reason: RetryReason, delays: &RetryDelays) -> Duration {
    let minutes = match reason {
        RetryReason::NoAnswer => delays.no_answer,
        RetryReason::Busy => delays.busy,
        RetryReason::Failed => delays.failed,
        RetryReason::Machine => delays.voicemail,
        RetryReason::Abandoned => delays.abandoned.max(ABANDONED_MINIMUM_MINUTES),
    };
    Duration::minutes(i64::from(minutes))
}
