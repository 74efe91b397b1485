//! What a queue or a routing rule configures about its strategy: skill relaxation steps, the
//! custom score's weights, VIP stickiness.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::fields::{check_levels, skill_levels};
use crate::values::InvalidValue;

/// Strategy settings; each part matters only to its strategy and has defaults.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct StrategyConfig {
    /// `skill_based`: step k applies while the wait is under the sum of the expiries of steps
    /// 1..k; after the last step any queue member is eligible. Empty: the call's own required
    /// skills apply and never relax.
    pub relaxation_steps: Vec<RelaxationStep>,
    /// `custom`: the weights of the score.
    pub custom: CustomWeights,
    /// `vip`: how long a caller's last agent stays preferred and how long a call waits for them.
    pub vip: VipSettings,
}

/// One step of skill relaxation: the skills (name → minimum level 1–5) required while it lasts.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct RelaxationStep {
    /// Skill name → minimum level (1–5) while this step applies.
    pub required_skills: BTreeMap<String, u8>,
    /// How long this step lasts (≥ 1 s), counted after the steps before it.
    pub expires_after_seconds: u32,
}

/// Weights of the `custom` score. Each component is normalized to 0..1 before weighting:
/// skill = mean proficiency over the call's required skills ÷ 5 (0 when none), idle = idle
/// seconds ÷ `idle_horizon_seconds` (capped at 1), occupancy = 1 − occupancy, rating = rating ÷ 5;
/// an attribute is the agent's numeric attribute (true = 1, missing or not a number = 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct CustomWeights {
    /// Weight of skill proficiency.
    pub skill: f64,
    /// Weight of idle time.
    pub idle: f64,
    /// Weight of spare capacity over the interval (1 − occupancy).
    pub occupancy: f64,
    /// Weight of the agent's rating.
    pub rating: f64,
    /// Agent attribute name → weight.
    pub attributes: BTreeMap<String, f64>,
    /// Idle time at which the idle component reaches 1 (default one hour).
    pub idle_horizon_seconds: u32,
    /// A numeric agent attribute giving each agent's weight in the seeded draw among agents tied
    /// on score (Asterisk `wrandom`); absent: equal weights.
    pub tie_weight_attribute: Option<String>,
}

impl Default for CustomWeights {
    fn default() -> Self {
        Self {
            skill: 1.0,
            idle: 1.0,
            occupancy: 1.0,
            rating: 1.0,
            attributes: BTreeMap::new(),
            idle_horizon_seconds: 3600,
            tie_weight_attribute: None,
        }
    }
}

/// VIP stickiness: a VIP caller's last agent is preferred if the last contact was within
/// `sticky_days`, and the call waits up to `sticky_timeout_seconds` for them while they are busy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct VipSettings {
    /// How recent the last contact must be for the agent to be preferred (days, 0–365).
    pub sticky_days: u32,
    /// How long the call is held for the preferred agent while they are busy (0–600 s).
    pub sticky_timeout_seconds: u32,
}

impl Default for VipSettings {
    fn default() -> Self {
        Self { sticky_days: 30, sticky_timeout_seconds: 30 }
    }
}

impl StrategyConfig {
    /// Checks every part; `field` prefixes the problems' names (`strategy_config.custom.idle`).
    pub fn validated(mut self, field: &str, problems: &mut Vec<InvalidValue>) -> Self {
        for (i, step) in self.relaxation_steps.iter_mut().enumerate() {
            let at = format!("{field}.relaxation_steps[{i}]");
            step.required_skills =
                skill_levels(&format!("{at}.required_skills"), &step.required_skills, problems);
            if !(1..=86_400).contains(&step.expires_after_seconds) {
                problems.push(InvalidValue::new(
                    format!("{at}.expires_after_seconds"),
                    "out_of_range",
                    "between 1 and 86400 seconds",
                ));
            }
        }
        if self.relaxation_steps.len() > 20 {
            problems.push(InvalidValue::new(
                format!("{field}.relaxation_steps"),
                "too_many",
                "at most 20 steps",
            ));
        }
        let c = &mut self.custom;
        for (name, w) in
            [("skill", c.skill), ("idle", c.idle), ("occupancy", c.occupancy), ("rating", c.rating)]
        {
            if !w.is_finite() || w.abs() > 1_000_000.0 {
                problems.push(InvalidValue::new(
                    format!("{field}.custom.{name}"),
                    "out_of_range",
                    "a finite weight within ±1000000",
                ));
            }
        }
        for (name, w) in &c.attributes {
            if name.trim().is_empty() {
                problems.push(InvalidValue::new(
                    format!("{field}.custom.attributes"),
                    "required",
                    "attribute names must not be empty",
                ));
            }
            if !w.is_finite() || w.abs() > 1_000_000.0 {
                problems.push(InvalidValue::new(
                    format!("{field}.custom.attributes.{name}"),
                    "out_of_range",
                    "a finite weight within ±1000000",
                ));
            }
        }
        if c.idle_horizon_seconds == 0 {
            problems.push(InvalidValue::new(
                format!("{field}.custom.idle_horizon_seconds"),
                "out_of_range",
                "at least 1 second",
            ));
        }
        if let Some(attr) = c.tie_weight_attribute.as_deref() {
            if attr.trim().is_empty() {
                c.tie_weight_attribute = None;
            }
        }
        if self.vip.sticky_days > 365 {
            problems.push(InvalidValue::new(
                format!("{field}.vip.sticky_days"),
                "out_of_range",
                "0 to 365 days",
            ));
        }
        if self.vip.sticky_timeout_seconds > 600 {
            problems.push(InvalidValue::new(
                format!("{field}.vip.sticky_timeout_seconds"),
                "out_of_range",
                "0 to 600 seconds",
            ));
        }
        self
    }

    /// The raw-JSON pre-pass: bad levels in the relaxation steps.
    pub(crate) fn precheck(field: &str, value: Option<&serde_json::Value>, problems: &mut Vec<InvalidValue>) {
        let Some(steps) = value.and_then(|v| v.get("relaxation_steps")).and_then(|s| s.as_array()) else {
            return;
        };
        for (i, step) in steps.iter().enumerate() {
            check_levels(
                &format!("{field}.relaxation_steps[{i}].required_skills"),
                step.get("required_skills"),
                problems,
            );
        }
    }
}
