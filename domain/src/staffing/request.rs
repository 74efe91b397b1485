//! The staffing calculator's request and answer (`POST /api/analytics/staffing`), checked once:
//! every problem is reported by field, and a checked request always has an answer.

use serde::{Deserialize, Serialize};

use super::{evaluate, required_agents, Staffing, Target, Workload, MAX_TRAFFIC_ERLANGS};
use crate::values::InvalidValue;

/// The most agents a request may evaluate.
pub const MAX_AGENTS: u32 = 1_000_000;

/// The most intervals a day's forecast may have (minute intervals over a day).
pub const MAX_INTERVALS: usize = 1_440;

/// A staffing question. The workload is `arrival_rate_per_hour`, or `calls_per_interval` with
/// `interval_minutes`, or a day's forecast as `intervals` (calls per interval, with
/// `interval_minutes`). With `agents` it evaluates that staffing; without, it finds the
/// required agents. Ratios are fractions: `service_level_target` 0.8 is 80 %.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct StaffingRequest {
    /// Calls per hour.
    pub arrival_rate_per_hour: Option<f64>,
    /// Calls per interval (with `interval_minutes`).
    pub calls_per_interval: Option<f64>,
    /// The interval's length in minutes (1–1440).
    pub interval_minutes: Option<f64>,
    /// Calls in each interval of a day's forecast (with `interval_minutes`).
    pub intervals: Option<Vec<f64>>,
    /// Average handle time in seconds.
    pub aht_seconds: f64,
    /// t: the answer time the service level counts, in seconds.
    pub target_answer_time_seconds: f64,
    /// The fraction to answer within t (0 < x < 1).
    pub service_level_target: f64,
    /// The highest occupancy allowed (0 < x ≤ 1).
    pub max_occupancy: Option<f64>,
    /// The fraction of scheduled time not on the phones (0 ≤ x < 1).
    pub shrinkage: Option<f64>,
    /// An ASA to stay at or under, in seconds.
    pub asa_target_seconds: Option<f64>,
    /// Agents to evaluate (instead of finding the required number).
    pub agents: Option<u32>,
}

/// One interval of a day's forecast.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IntervalStaffing {
    /// 0-based position in the forecast.
    pub index: usize,
    /// Minutes from the forecast's start.
    pub start_minute: f64,
    /// Calls forecast for the interval.
    pub calls: f64,
    /// What it needs (or what the given agents achieve).
    #[serde(flatten)]
    pub staffing: Staffing,
}

/// The answer: `{agents, p_wait, service_level, asa_seconds, occupancy, …}` for the workload
/// (for a forecast: its busiest interval, the one needing the most agents), plus each interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StaffingAnswer {
    /// The workload's (or busiest interval's) staffing.
    #[serde(flatten)]
    pub staffing: Staffing,
    /// Calls per hour of that workload.
    pub arrival_rate_per_hour: f64,
    /// Per interval, for a forecast; empty otherwise.
    pub intervals: Vec<IntervalStaffing>,
}

fn finite(field: &'static str, value: f64, problems: &mut Vec<InvalidValue>) -> bool {
    if value.is_finite() {
        true
    } else {
        problems.push(InvalidValue::new(field, "not_finite", "must be a finite number"));
        false
    }
}

fn in_range(
    field: &'static str,
    value: f64,
    ok: impl Fn(f64) -> bool,
    message: &str,
    problems: &mut Vec<InvalidValue>,
) {
    if finite(field, value, problems) && !ok(value) {
        problems.push(InvalidValue::new(field, "out_of_range", message));
    }
}

impl StaffingRequest {
    /// Checks the request and answers it; every problem is reported by field.
    pub fn answer(&self) -> Result<StaffingAnswer, Vec<InvalidValue>> {
        let (target, rates) = self.checked()?;
        let staff = |workload: Workload| match self.agents {
            Some(n) => Some(evaluate(workload, &target, n)),
            None => required_agents(workload, &target),
        };
        let unreachable = || {
            vec![InvalidValue::new(
                "service_level_target",
                "unreachable",
                "no number of agents meets this target",
            )]
        };
        let interval_minutes = self.interval_minutes.unwrap_or(60.0);
        let mut intervals = Vec::new();
        if let Some(calls) = &self.intervals {
            for (index, calls) in calls.iter().enumerate() {
                let workload = Workload::per_interval(*calls, interval_minutes, self.aht_seconds);
                let staffing = staff(workload).ok_or_else(unreachable)?;
                let start_minute = index as f64 * interval_minutes;
                intervals.push(IntervalStaffing { index, start_minute, calls: *calls, staffing });
            }
        }
        let busiest = intervals.iter().max_by(|a, b| {
            (a.staffing.agents.cmp(&b.staffing.agents))
                .then(a.calls.total_cmp(&b.calls))
                .then(b.index.cmp(&a.index))
        });
        let (staffing, rate) = match busiest {
            Some(peak) => (peak.staffing, peak.calls * 60.0 / interval_minutes),
            None => {
                let rate = rates[0];
                let workload = Workload { arrival_rate_per_hour: rate, aht_seconds: self.aht_seconds };
                (staff(workload).ok_or_else(unreachable)?, rate)
            }
        };
        Ok(StaffingAnswer { staffing, arrival_rate_per_hour: rate, intervals })
    }

    /// The target and the arrival rates (per hour) to staff, or every problem.
    fn checked(&self) -> Result<(Target, Vec<f64>), Vec<InvalidValue>> {
        let mut p = Vec::new();
        in_range(
            "aht_seconds",
            self.aht_seconds,
            |v| v > 0.0 && v <= 86_400.0,
            "above 0, at most 86400",
            &mut p,
        );
        in_range(
            "target_answer_time_seconds",
            self.target_answer_time_seconds,
            |v| (0.0..=86_400.0).contains(&v),
            "from 0 to 86400",
            &mut p,
        );
        in_range(
            "service_level_target",
            self.service_level_target,
            |v| v > 0.0 && v < 1.0,
            "a fraction above 0 and below 1 (0.8 for 80 %)",
            &mut p,
        );
        if let Some(v) = self.max_occupancy {
            in_range("max_occupancy", v, |v| (0.1..=1.0).contains(&v), "a fraction from 0.1 to 1", &mut p);
        }
        if let Some(v) = self.shrinkage {
            in_range("shrinkage", v, |v| (0.0..=0.9).contains(&v), "a fraction from 0 to 0.9", &mut p);
        }
        if let Some(v) = self.asa_target_seconds {
            in_range("asa_target_seconds", v, |v| v > 0.0 && v <= 86_400.0, "above 0, at most 86400", &mut p);
        }
        if let Some(v) = self.interval_minutes {
            in_range("interval_minutes", v, |v| (1.0..=1_440.0).contains(&v), "from 1 to 1440", &mut p);
        }
        if self.agents.is_some_and(|n| n > MAX_AGENTS) {
            p.push(InvalidValue::new("agents", "out_of_range", format!("at most {MAX_AGENTS}")));
        }
        let interval_ok = self.interval_minutes.is_some_and(|v| (1.0..=1_440.0).contains(&v));
        let mut rates = Vec::new();
        let mut calls = |field: &'static str, value: f64, p: &mut Vec<InvalidValue>| {
            if finite(field, value, p) {
                if value < 0.0 {
                    p.push(InvalidValue::new(field, "out_of_range", "at least 0"));
                } else {
                    rates.push(value);
                }
            }
        };
        let given = [
            self.arrival_rate_per_hour.is_some(),
            self.calls_per_interval.is_some(),
            self.intervals.is_some(),
        ];
        match given {
            [true, false, false] => {
                calls("arrival_rate_per_hour", self.arrival_rate_per_hour.unwrap_or(0.0), &mut p)
            }
            [false, true, false] | [false, false, true] => {
                if self.interval_minutes.is_none() {
                    p.push(InvalidValue::new(
                        "interval_minutes",
                        "required",
                        "the interval's length in minutes",
                    ));
                }
                if let Some(v) = self.calls_per_interval {
                    calls("calls_per_interval", v, &mut p);
                }
                match self.intervals.as_deref() {
                    Some([]) => p.push(InvalidValue::new("intervals", "required", "at least one interval")),
                    Some(list) if list.len() > MAX_INTERVALS => p.push(InvalidValue::new(
                        "intervals",
                        "too_many",
                        format!("at most {MAX_INTERVALS} intervals"),
                    )),
                    Some(list) => {
                        for v in list {
                            calls("intervals", *v, &mut p);
                        }
                    }
                    None => {}
                }
                if interval_ok {
                    let minutes = self.interval_minutes.unwrap_or(60.0);
                    for r in &mut rates {
                        *r = *r * 60.0 / minutes;
                    }
                }
            }
            _ => p.push(InvalidValue::new(
                "arrival_rate_per_hour",
                "required",
                "one of arrival_rate_per_hour, calls_per_interval (with interval_minutes) or intervals",
            )),
        }
        if self.aht_seconds.is_finite() && self.aht_seconds > 0.0 {
            let busiest = rates.iter().copied().fold(0.0, f64::max);
            if super::traffic_intensity(busiest, self.aht_seconds) > MAX_TRAFFIC_ERLANGS {
                p.push(InvalidValue::new(
                    "arrival_rate_per_hour",
                    "too_much_traffic",
                    format!("arrival rate × AHT must stay within {MAX_TRAFFIC_ERLANGS} erlangs"),
                ));
            }
        }
        if !p.is_empty() {
            return Err(p);
        }
        let target = Target {
            answer_within_seconds: self.target_answer_time_seconds,
            service_level: self.service_level_target,
            max_asa_seconds: self.asa_target_seconds,
            max_occupancy: self.max_occupancy,
            shrinkage: self.shrinkage.unwrap_or(0.0),
        };
        Ok((target, rates))
    }
}
