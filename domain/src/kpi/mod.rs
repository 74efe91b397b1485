//! Contact-center KPIs from sums and counts (DOMAIN.md, "KPIs").
//!
//! Projections keep one [`KpiBucket`] per minute and dimension (tenant, queue, team, agent,
//! campaign): only sums, counts, maxima and a per-second histogram of answered waits, all
//! integers. Any longer period is the [`KpiBucket::merge`] of its minutes (or of hours, days:
//! adding is associative and commutative), and [`KpiBucket::kpis`] divides once at the end, so
//! a day's service level is never an average of hourly ratios. A ratio whose denominator is zero
//! is `None`.
//!
//! What goes in which bucket (the projection's side of the contract):
//! - a queued call, once, in the minute it **left** the queue ([`KpiBucket::record_queued_call`]):
//!   offered and its outcome land together, so no ratio of a period ever exceeds 1;
//! - a handled call's talk, hold and after-call work in the minute its work ended
//!   ([`KpiBucket::record_handled`]);
//! - agent state time split over the minutes it spans ([`split_by_minute`],
//!   [`KpiBucket::record_agent_time`]), so occupancy of an hour uses that hour's time only;
//! - a first contact in its own minute, and its repeat (if one comes within 7 days) in the
//!   first contact's minute ([`observe_contact`] says which).
//!
//! Day, week, month, quarter and year buckets start at midnight in the tenant's time zone
//! ([`Granularity::bucket_start`]).

mod buckets;
mod fcr;
#[cfg(test)]
mod tests;

pub use buckets::{split_by_minute, Granularity};
pub use fcr::{observe_contact, ContactChain, ContactEffect, FCR_WINDOW_DAYS};

use std::collections::BTreeMap;
use std::iter::Sum;
use std::ops::AddAssign;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Abandons after a wait shorter than this (ms) are short abandons: out of the service-level
/// and abandonment denominators (DOMAIN.md: "abandons after ≥ 5 s wait").
pub const SHORT_ABANDON_MS: u64 = 5_000;

/// The longest wait (s) the answered-wait histogram keeps second by second; longer waits share
/// one bin. Service level is exact for any whole threshold up to this.
pub const MAX_SERVICE_LEVEL_SECONDS: u32 = 3_600;

/// How a queued call left the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueExit {
    /// An agent (or the AI agent) took it.
    Answered,
    /// The caller hung up while waiting.
    Abandoned,
    /// Sent on without an answer: voicemail, callback, transfer or overflow. Not an abandon.
    Diverted,
}

/// What an agent's logged-in time was spent on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentActivity {
    /// On a call, on hold or in after-call work (handle time).
    Handling,
    /// Available and waiting for a call.
    Idle,
    /// Logged in but not taking calls (break, training, away).
    Unavailable,
}

/// Sums and counts for one minute (or, merged, any period). Times are milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KpiBucket {
    /// Calls that left the queue: answered + abandoned (short and not) + diverted.
    pub offered: u64,
    /// Answered calls.
    pub answered: u64,
    /// Abandoned after a wait under 5 s.
    pub abandoned_short: u64,
    /// Abandoned after 5 s or more.
    pub abandoned: u64,
    /// Left for voicemail, callback, transfer or overflow.
    pub diverted: u64,
    /// Total wait of answered calls.
    pub wait_answered_ms: u64,
    /// Total wait of abandoned calls (short ones included).
    pub wait_abandoned_ms: u64,
    /// The longest wait of any call that left the queue.
    pub wait_max_ms: u64,
    /// Answered calls by wait rounded up to the whole second (a wait of exactly T s, or less, is
    /// "within T"); waits over an hour share the key 3601.
    pub answered_by_wait_second: BTreeMap<u32, u64>,
    /// Calls handled (their after-call work done).
    pub handled: u64,
    /// Talk time of handled calls.
    pub talk_ms: u64,
    /// Hold time of handled calls.
    pub hold_ms: u64,
    /// After-call work of handled calls.
    pub wrap_ms: u64,
    /// Agent time handling calls (from agent states).
    pub agent_handling_ms: u64,
    /// Agent time available and idle.
    pub agent_idle_ms: u64,
    /// Agent time logged in (handling + idle + unavailable).
    pub agent_logged_in_ms: u64,
    /// First contacts (no contact from the same customer in the 7 days before).
    pub first_contacts: u64,
    /// First contacts that had a repeat contact within 7 days.
    pub first_contacts_repeated: u64,
    /// Transfers requested.
    pub transfers: u64,
    /// Outbound dials placed.
    pub dials: u64,
    /// Outbound dials answered by a person.
    pub connects: u64,
    /// Calls with a successful (converting) outcome.
    pub conversions: u64,
}

impl KpiBucket {
    /// An empty bucket.
    pub fn new() -> Self {
        Self::default()
    }

    /// A call that left the queue after `wait_ms`, in the minute it left.
    pub fn record_queued_call(&mut self, exit: QueueExit, wait_ms: u64) {
        self.offered += 1;
        self.wait_max_ms = self.wait_max_ms.max(wait_ms);
        match exit {
            QueueExit::Answered => {
                self.answered += 1;
                self.wait_answered_ms += wait_ms;
                *self.answered_by_wait_second.entry(wait_key(wait_ms)).or_default() += 1;
            }
            QueueExit::Abandoned => {
                self.wait_abandoned_ms += wait_ms;
                if wait_ms < SHORT_ABANDON_MS {
                    self.abandoned_short += 1;
                } else {
                    self.abandoned += 1;
                }
            }
            QueueExit::Diverted => self.diverted += 1,
        }
    }

    /// A handled call's talk, hold and after-call work, in the minute its work ended.
    pub fn record_handled(&mut self, talk_ms: u64, hold_ms: u64, wrap_ms: u64) {
        self.handled += 1;
        self.talk_ms += talk_ms;
        self.hold_ms += hold_ms;
        self.wrap_ms += wrap_ms;
    }

    /// Agent logged-in time within this bucket's minute (see [`split_by_minute`]).
    pub fn record_agent_time(&mut self, activity: AgentActivity, ms: u64) {
        self.agent_logged_in_ms += ms;
        match activity {
            AgentActivity::Handling => self.agent_handling_ms += ms,
            AgentActivity::Idle => self.agent_idle_ms += ms,
            AgentActivity::Unavailable => {}
        }
    }

    /// A first contact ([`ContactEffect::FirstContact`]), in its minute.
    pub fn record_first_contact(&mut self) {
        self.first_contacts += 1;
    }

    /// A repeat of a first contact ([`ContactEffect::RepeatOfFirstContact`]), in the first
    /// contact's minute.
    pub fn record_first_contact_repeated(&mut self) {
        self.first_contacts_repeated += 1;
    }

    /// A transfer requested.
    pub fn record_transfer(&mut self) {
        self.transfers += 1;
    }

    /// An outbound dial; `connected` when a person answered.
    pub fn record_dial(&mut self, connected: bool) {
        self.dials += 1;
        if connected {
            self.connects += 1;
        }
    }

    /// A converting outcome.
    pub fn record_conversion(&mut self) {
        self.conversions += 1;
    }

    /// Adds `other`'s sums and counts to this one (and keeps the larger maximum).
    pub fn merge(&mut self, other: &KpiBucket) {
        self.offered += other.offered;
        self.answered += other.answered;
        self.abandoned_short += other.abandoned_short;
        self.abandoned += other.abandoned;
        self.diverted += other.diverted;
        self.wait_answered_ms += other.wait_answered_ms;
        self.wait_abandoned_ms += other.wait_abandoned_ms;
        self.wait_max_ms = self.wait_max_ms.max(other.wait_max_ms);
        for (second, count) in &other.answered_by_wait_second {
            *self.answered_by_wait_second.entry(*second).or_default() += count;
        }
        self.handled += other.handled;
        self.talk_ms += other.talk_ms;
        self.hold_ms += other.hold_ms;
        self.wrap_ms += other.wrap_ms;
        self.agent_handling_ms += other.agent_handling_ms;
        self.agent_idle_ms += other.agent_idle_ms;
        self.agent_logged_in_ms += other.agent_logged_in_ms;
        self.first_contacts += other.first_contacts;
        self.first_contacts_repeated += other.first_contacts_repeated;
        self.transfers += other.transfers;
        self.dials += other.dials;
        self.connects += other.connects;
        self.conversions += other.conversions;
    }

    /// Several buckets as one (a roll-up).
    pub fn rollup<'a>(buckets: impl IntoIterator<Item = &'a KpiBucket>) -> KpiBucket {
        buckets.into_iter().sum()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Answered calls that waited `threshold_seconds` or less; `None` above
    /// [`MAX_SERVICE_LEVEL_SECONDS`], where the histogram is not exact.
    pub fn answered_within(&self, threshold_seconds: u32) -> Option<u64> {
        (threshold_seconds <= MAX_SERVICE_LEVEL_SECONDS)
            .then(|| self.answered_by_wait_second.range(..=threshold_seconds).map(|(_, n)| n).sum())
    }

    /// The KPIs of this bucket, service level for `threshold_seconds`.
    pub fn kpis(&self, threshold_seconds: u32) -> Kpis {
        let counted = self.offered.saturating_sub(self.abandoned_short);
        let handle_ms = self.talk_ms + self.hold_ms + self.wrap_ms;
        let agent_busy_or_idle = self.agent_handling_ms + self.agent_idle_ms;
        let repeated = self.first_contacts_repeated.min(self.first_contacts);
        Kpis {
            service_level_threshold_seconds: threshold_seconds,
            offered: self.offered,
            answered: self.answered,
            abandoned: self.abandoned,
            abandoned_short: self.abandoned_short,
            diverted: self.diverted,
            handled: self.handled,
            service_level: self.answered_within(threshold_seconds).and_then(|n| ratio(n, counted)),
            asa_seconds: ratio(self.wait_answered_ms, self.answered).map(|ms| ms / 1000.0),
            aht_seconds: ratio(handle_ms, self.handled).map(|ms| ms / 1000.0),
            abandonment_rate: ratio(self.abandoned, counted),
            occupancy: ratio(self.agent_handling_ms, agent_busy_or_idle),
            utilization: ratio(self.agent_handling_ms, self.agent_logged_in_ms),
            fcr: ratio(self.first_contacts - repeated, self.first_contacts),
            longest_wait_seconds: (self.offered > 0).then(|| self.wait_max_ms as f64 / 1000.0),
        }
    }
}

impl AddAssign<&KpiBucket> for KpiBucket {
    fn add_assign(&mut self, other: &KpiBucket) {
        self.merge(other);
    }
}

impl<'a> Sum<&'a KpiBucket> for KpiBucket {
    fn sum<I: Iterator<Item = &'a KpiBucket>>(iter: I) -> Self {
        let mut total = KpiBucket::default();
        for bucket in iter {
            total.merge(bucket);
        }
        total
    }
}

impl Sum<KpiBucket> for KpiBucket {
    fn sum<I: Iterator<Item = KpiBucket>>(iter: I) -> Self {
        let mut total = KpiBucket::default();
        for bucket in iter {
            total.merge(&bucket);
        }
        total
    }
}

fn wait_key(wait_ms: u64) -> u32 {
    let seconds = wait_ms.div_ceil(1000);
    u32::try_from(seconds).unwrap_or(u32::MAX).min(MAX_SERVICE_LEVEL_SECONDS + 1)
}

fn ratio(numerator: u64, denominator: u64) -> Option<f64> {
    (denominator > 0).then(|| numerator as f64 / denominator as f64)
}

/// The KPIs of a period (DOMAIN.md's definitions); ratios are fractions (0.8 is 80 %), `None`
/// where nothing was there to divide by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Kpis {
    /// T of the service level, in seconds.
    pub service_level_threshold_seconds: u32,
    /// Calls that left the queue in the period.
    pub offered: u64,
    /// Answered.
    pub answered: u64,
    /// Abandoned after 5 s or more.
    pub abandoned: u64,
    /// Abandoned within 5 s (not counted against service level or abandonment).
    pub abandoned_short: u64,
    /// Sent to voicemail, callback, transfer or overflow (not abandons).
    pub diverted: u64,
    /// Calls handled.
    pub handled: u64,
    /// Answered within T ÷ (offered − short abandons).
    pub service_level: Option<f64>,
    /// Total wait of answered calls ÷ answered calls.
    pub asa_seconds: Option<f64>,
    /// (Talk + hold + after-call work) ÷ calls handled.
    pub aht_seconds: Option<f64>,
    /// Abandons after ≥ 5 s ÷ (offered − short abandons).
    pub abandonment_rate: Option<f64>,
    /// Handle time ÷ (handle + idle), from agent states.
    pub occupancy: Option<f64>,
    /// Handle time ÷ logged-in time.
    pub utilization: Option<f64>,
    /// First contacts with no repeat within 7 days ÷ first contacts (provisional until 7 days
    /// after the period).
    pub fcr: Option<f64>,
    /// The longest wait of a call that left the queue in the period (the live longest wait is
    /// [`live_longest_wait_seconds`]).
    pub longest_wait_seconds: Option<f64>,
}

impl Kpis {
    /// A KPI's value by name (for thresholds on KPIs).
    pub fn value(&self, kpi: KpiName) -> Option<f64> {
        match kpi {
            KpiName::ServiceLevel => self.service_level,
            KpiName::Asa => self.asa_seconds,
            KpiName::LongestWait => self.longest_wait_seconds,
            KpiName::Aht => self.aht_seconds,
            KpiName::AbandonmentRate => self.abandonment_rate,
            KpiName::Occupancy => self.occupancy,
            KpiName::Utilization => self.utilization,
            KpiName::Fcr => self.fcr,
        }
    }
}

/// The KPIs by name, as thresholds and the API name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum KpiName {
    /// Fraction answered within T.
    ServiceLevel,
    /// Average speed of answer (s).
    Asa,
    /// Longest wait (s).
    LongestWait,
    /// Average handle time (s).
    Aht,
    /// Fraction abandoned.
    AbandonmentRate,
    /// Fraction of working time handling calls.
    Occupancy,
    /// Fraction of logged-in time handling calls.
    Utilization,
    /// First-contact resolution.
    Fcr,
}

impl KpiName {
    /// Every KPI.
    pub const ALL: [KpiName; 8] = [
        Self::ServiceLevel,
        Self::Asa,
        Self::LongestWait,
        Self::Aht,
        Self::AbandonmentRate,
        Self::Occupancy,
        Self::Utilization,
        Self::Fcr,
    ];

    /// The stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ServiceLevel => "service_level",
            Self::Asa => "asa",
            Self::LongestWait => "longest_wait",
            Self::Aht => "aht",
            Self::AbandonmentRate => "abandonment_rate",
            Self::Occupancy => "occupancy",
            Self::Utilization => "utilization",
            Self::Fcr => "fcr",
        }
    }

    /// The KPI of that wire name.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw)
    }
}

/// Longest wait (live) = now − arrival of the oldest waiting call; `None` when none waits.
pub fn live_longest_wait_seconds(
    now: DateTime<Utc>,
    arrivals: impl IntoIterator<Item = DateTime<Utc>>,
) -> Option<f64> {
    let oldest = arrivals.into_iter().min()?;
    Some(millis_between(oldest, now) as f64 / 1000.0)
}

/// Milliseconds from `from` to `to`, zero when `to` is earlier (clocks of two sources).
pub fn millis_between(from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    u64::try_from((to - from).num_milliseconds()).unwrap_or(0)
}
