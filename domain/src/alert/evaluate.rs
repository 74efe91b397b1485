//! The alert engine's pure step: a rule, its state and a new observation (a value at a time)
//! give the next state and what happened.
//!
//! ```text
//!        breach                     breach held for_seconds, cooldown over
//!   Ok ─────────▶ Pending ─────────────────────────────────────────▶ Firing
//!    ▲               │ no breach (PendingCleared)                      │ value clears
//!    └───────────────┘◀────────────────────────────────────────────────┘ (Resolved)
//! ```
//!
//! - A breach must hold at every observation from its first to the firing one, and for at least
//!   `for_seconds`; any observation that does not breach cancels a pending alert.
//! - Two firings are at least `cooldown_minutes` apart: a breach during the cooldown stays
//!   pending and fires when the cooldown ends, if it still holds then.
//! - A firing alert stays firing (no new transitions: one alert per crossing) until a value
//!   clears it: back past `clear_value` (hysteresis), or past the threshold by default.
//! - Observations older than the last one, and values that are not finite, change nothing.
//!
//! Between observations, [`next_check_at`] says when a pending alert could fire, so the engine
//! can re-observe the latest value then (a due row, not a sleeping task).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::settings::AlertRuleSettings;

/// Where a rule stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// Not breached.
    #[default]
    Ok,
    /// Breached, not fired yet (for-duration or cooldown).
    Pending,
    /// Fired, not resolved.
    Firing,
}

/// What the engine keeps per rule (and scope).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct AlertState {
    /// Where it stands.
    pub status: AlertStatus,
    /// When the current breach began (pending or firing).
    pub breached_since: Option<DateTime<Utc>>,
    /// When it last fired (for the cooldown; kept after it resolves).
    pub last_fired_at: Option<DateTime<Utc>>,
    /// The latest observation taken into account.
    pub last_observed_at: Option<DateTime<Utc>>,
    /// Its value.
    pub last_value: Option<f64>,
}

/// A value of the rule's metric at a time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// The value.
    pub value: f64,
    /// When it held.
    pub at: DateTime<Utc>,
}

/// Something that happened to a rule's alert.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AlertTransition {
    /// A breach began; it fires once it has held long enough (and any cooldown is over).
    Pending {
        /// The breaching value.
        value: f64,
        /// When.
        at: DateTime<Utc>,
    },
    /// The breach ended before it fired.
    PendingCleared {
        /// The value that ended it (none when the rule stopped).
        value: Option<f64>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The alert fires: raise it and notify.
    Fired {
        /// The value at firing.
        value: f64,
        /// When the breach began.
        breached_since: DateTime<Utc>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The alert cleared: resolve it.
    Resolved {
        /// The clearing value (none when the rule stopped).
        value: Option<f64>,
        /// When it had fired.
        fired_at: DateTime<Utc>,
        /// When.
        at: DateTime<Utc>,
    },
}

/// The next state and the transitions, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The state after the observation.
    pub state: AlertState,
    /// What happened (often nothing).
    pub transitions: Vec<AlertTransition>,
}

fn cooldown(rule: &AlertRuleSettings) -> Duration {
    Duration::minutes(i64::from(rule.cooldown_minutes))
}

/// The earliest time a breach that began at `breached_since` may fire.
fn may_fire_at(rule: &AlertRuleSettings, state: &AlertState, breached_since: DateTime<Utc>) -> DateTime<Utc> {
    let held = breached_since + Duration::seconds(i64::from(rule.for_seconds));
    match state.last_fired_at {
        Some(fired) => held.max(fired + cooldown(rule)),
        None => held,
    }
}

/// Takes one observation into account.
pub fn evaluate(rule: &AlertRuleSettings, state: &AlertState, observation: Observation) -> Evaluation {
    let Observation { value, at } = observation;
    let stale = state.last_observed_at.is_some_and(|last| at < last);
    if stale || !value.is_finite() {
        return Evaluation { state: *state, transitions: Vec::new() };
    }
    let mut next = AlertState { last_observed_at: Some(at), last_value: Some(value), ..*state };
    let mut transitions = Vec::new();
    let breached = rule.operator.breaches(value, rule.threshold_value);
    match state.status {
        AlertStatus::Ok | AlertStatus::Pending if breached => {
            let since = match (state.status, state.breached_since) {
                (AlertStatus::Pending, Some(since)) => since,
                _ => {
                    transitions.push(AlertTransition::Pending { value, at });
                    at
                }
            };
            next.status = AlertStatus::Pending;
            next.breached_since = Some(since);
            if at >= may_fire_at(rule, state, since) {
                next.status = AlertStatus::Firing;
                next.last_fired_at = Some(at);
                transitions.push(AlertTransition::Fired { value, breached_since: since, at });
            }
        }
        AlertStatus::Ok => {}
        AlertStatus::Pending => {
            next.status = AlertStatus::Ok;
            next.breached_since = None;
            transitions.push(AlertTransition::PendingCleared { value: Some(value), at });
        }
        AlertStatus::Firing => {
            if rule.operator.clears(value, rule.clear_threshold()) {
                next.status = AlertStatus::Ok;
                next.breached_since = None;
                let fired_at = state.last_fired_at.unwrap_or(at);
                transitions.push(AlertTransition::Resolved { value: Some(value), fired_at, at });
            }
        }
    }
    Evaluation { state: next, transitions }
}

/// When a pending alert could fire if its breach still holds (re-observe then); `None` unless
/// pending.
pub fn next_check_at(rule: &AlertRuleSettings, state: &AlertState) -> Option<DateTime<Utc>> {
    match (state.status, state.breached_since) {
        (AlertStatus::Pending, Some(since)) => Some(may_fire_at(rule, state, since)),
        _ => None,
    }
}

/// The rule stopped (disabled, deleted, changed): a firing alert resolves, a pending one is
/// dropped. The last firing is kept, so the cooldown still counts from it.
pub fn stop(state: &AlertState, at: DateTime<Utc>) -> Evaluation {
    let transitions = match state.status {
        AlertStatus::Firing => {
            vec![AlertTransition::Resolved { value: None, fired_at: state.last_fired_at.unwrap_or(at), at }]
        }
        AlertStatus::Pending => vec![AlertTransition::PendingCleared { value: None, at }],
        AlertStatus::Ok => Vec::new(),
    };
    let next = AlertState { status: AlertStatus::Ok, breached_since: None, ..*state };
    Evaluation { state: next, transitions }
}
