//! Staffing by Erlang C (DOMAIN.md, "Erlang C"): how many agents a workload needs for a service
//! level, or what a given number of agents achieves.
//!
//! ```text
//! A = arrival rate × AHT (erlangs)
//! Erlang B by recursion: B0 = 1; Bk = A·B(k−1) / (k + A·B(k−1))
//! P_wait = C(N, A) = N·B / (N − A·(1 − B))
//! SL(t)  = 1 − P_wait · e^(−(N − A)·t / AHT)
//! ASA    = P_wait · AHT / (N − A)
//! required agents = smallest N > A meeting the service-level target and the occupancy cap
//! ```
//!
//! The recursion keeps every term in (0, 1], so nothing overflows at 10,000+ agents, and the
//! search for the required agents extends it one agent at a time (linear in N). With N ≤ A the
//! queue grows without bound: every caller waits (`P_wait` 1), the service level is 0 and the
//! ASA is unbounded (`None`).

mod request;
#[cfg(test)]
mod tests;

pub use request::{IntervalStaffing, StaffingAnswer, StaffingRequest, MAX_AGENTS, MAX_INTERVALS};

use serde::{Deserialize, Serialize};

/// The most traffic (erlangs) the calculator takes: about 100,000 agents' work.
pub const MAX_TRAFFIC_ERLANGS: f64 = 100_000.0;

/// Offered traffic in erlangs: calls per second × AHT.
pub fn traffic_intensity(arrival_rate_per_hour: f64, aht_seconds: f64) -> f64 {
    arrival_rate_per_hour / 3600.0 * aht_seconds
}

/// Erlang B (blocking probability with `agents` servers and no queue), by the stable recursion.
pub fn erlang_b(agents: u32, traffic: f64) -> f64 {
    let mut b = 1.0;
    for k in 1..=agents {
        b = next_b(b, k, traffic);
    }
    b
}

fn next_b(b: f64, k: u32, traffic: f64) -> f64 {
    let ab = traffic * b;
    ab / (f64::from(k) + ab)
}

fn c_from_b(agents: u32, traffic: f64, b: f64) -> f64 {
    if f64::from(agents) <= traffic {
        return 1.0;
    }
    let n = f64::from(agents);
    (n * b / (n - traffic * (1.0 - b))).clamp(0.0, 1.0)
}

/// Erlang C: the probability that a caller waits at all; 1 when `agents <= traffic`.
pub fn erlang_c(agents: u32, traffic: f64) -> f64 {
    c_from_b(agents, traffic, erlang_b(agents, traffic))
}

/// What a number of agents achieves for a workload.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Staffing {
    /// Agents on the phones (N).
    pub agents: u32,
    /// Agents to schedule so that `agents` are on the phones after shrinkage: ⌈N ÷ (1 − s)⌉.
    pub scheduled_agents: u32,
    /// Offered traffic A in erlangs.
    pub traffic_erlangs: f64,
    /// Probability that a caller waits.
    pub p_wait: f64,
    /// Fraction answered within the target answer time.
    pub service_level: f64,
    /// Average speed of answer (s); `None` when unbounded (N ≤ A).
    pub asa_seconds: Option<f64>,
    /// A ÷ N, at most 1.
    pub occupancy: f64,
    /// N > A (the queue does not grow without bound).
    pub stable: bool,
    /// Meets the service-level target, the ASA target and the occupancy cap.
    pub meets_target: bool,
}

/// A workload: how many calls come and how long each takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Workload {
    /// Calls per hour (≥ 0).
    pub arrival_rate_per_hour: f64,
    /// Average handle time (s, > 0).
    pub aht_seconds: f64,
}

impl Workload {
    /// A workload given as calls per interval.
    pub fn per_interval(calls: f64, interval_minutes: f64, aht_seconds: f64) -> Self {
        Self { arrival_rate_per_hour: calls * 60.0 / interval_minutes, aht_seconds }
    }

    /// A in erlangs.
    pub fn traffic(&self) -> f64 {
        traffic_intensity(self.arrival_rate_per_hour, self.aht_seconds)
    }
}

/// What "enough agents" means.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target {
    /// t: the answer time the service level counts (s, ≥ 0).
    pub answer_within_seconds: f64,
    /// The fraction to answer within t (0 < x < 1).
    pub service_level: f64,
    /// An ASA to stay at or under (s), if any.
    pub max_asa_seconds: Option<f64>,
    /// The highest occupancy allowed (0 < x ≤ 1), if any.
    pub max_occupancy: Option<f64>,
    /// The fraction of scheduled time not on the phones (0 ≤ x < 1).
    pub shrinkage: f64,
}

impl Target {
    /// `fraction` answered within `seconds`, no other limits.
    pub fn service_level(fraction: f64, seconds: f64) -> Self {
        Self {
            answer_within_seconds: seconds,
            service_level: fraction,
            max_asa_seconds: None,
            max_occupancy: None,
            shrinkage: 0.0,
        }
    }
}

/// What `agents` achieve for `workload` against `target`.
pub fn evaluate(workload: Workload, target: &Target, agents: u32) -> Staffing {
    let traffic = workload.traffic();
    evaluate_with_b(workload, target, agents, erlang_b(agents, traffic))
}

fn evaluate_with_b(workload: Workload, target: &Target, agents: u32, b: f64) -> Staffing {
    let traffic = workload.traffic();
    let n = f64::from(agents);
    let stable = n > traffic || traffic == 0.0;
    let p_wait = if traffic == 0.0 { 0.0 } else { c_from_b(agents, traffic, b) };
    let (service_level, asa_seconds) = if traffic == 0.0 {
        (1.0, Some(0.0))
    } else if stable {
        let decay = (-(n - traffic) * target.answer_within_seconds / workload.aht_seconds).exp();
        ((1.0 - p_wait * decay).clamp(0.0, 1.0), Some(p_wait * workload.aht_seconds / (n - traffic)))
    } else {
        (0.0, None)
    };
    let occupancy = if traffic == 0.0 {
        0.0
    } else if stable {
        traffic / n
    } else {
        1.0
    };
    let meets_target = stable
        && service_level >= target.service_level
        && target.max_asa_seconds.is_none_or(|max| asa_seconds.is_some_and(|asa| asa <= max))
        && target.max_occupancy.is_none_or(|max| occupancy <= max);
    Staffing {
        agents,
        scheduled_agents: scheduled(agents, target.shrinkage),
        traffic_erlangs: traffic,
        p_wait,
        service_level,
        asa_seconds,
        occupancy,
        stable,
        meets_target,
    }
}

/// ⌈N ÷ (1 − shrinkage)⌉, without float noise turning 20.000000000000004 into 21.
fn scheduled(agents: u32, shrinkage: f64) -> u32 {
    if agents == 0 {
        return 0;
    }
    let raw = f64::from(agents) / (1.0 - shrinkage.clamp(0.0, 0.99));
    let rounded = raw.round();
    let value = if (raw - rounded).abs() < 1e-9 { rounded } else { raw.ceil() };
    value.min(f64::from(u32::MAX)) as u32
}

/// The smallest number of agents that meets `target` (0 when no calls come). `None` only for a
/// workload beyond [`MAX_TRAFFIC_ERLANGS`] or a target that cannot be met (a service level of
/// 1 or more), which validated requests never are.
pub fn required_agents(workload: Workload, target: &Target) -> Option<Staffing> {
    let traffic = workload.traffic();
    if !traffic.is_finite() || traffic > MAX_TRAFFIC_ERLANGS || !(0.0..1.0).contains(&target.service_level) {
        return None;
    }
    if traffic == 0.0 {
        return Some(evaluate_with_b(workload, target, 0, 1.0));
    }
    // Start at the smallest N the occupancy cap and stability allow, then add agents one by
    // one, extending the Erlang B recursion as we go.
    let stable_from = traffic.floor() + 1.0;
    let mut capped_from = target.max_occupancy.map_or(0.0, |max| (traffic / max).ceil());
    // Float division can round A ÷ cap just above a whole number.
    if let Some(max) = target.max_occupancy {
        while capped_from - 1.0 > traffic && traffic / (capped_from - 1.0) <= max {
            capped_from -= 1.0;
        }
    }
    let start = stable_from.max(capped_from);
    if start > f64::from(u32::MAX / 2) {
        return None;
    }
    let mut agents = start as u32;
    let mut b = erlang_b(agents, traffic);
    // Service level reaches any target below 1 within a few hundred agents above A's square
    // root scale; the bound only guards against a target float rounding never reaches.
    let limit = agents.saturating_add(10 * (traffic.sqrt() as u32) + 10_000);
    loop {
        let staffing = evaluate_with_b(workload, target, agents, b);
        if staffing.meets_target {
            return Some(staffing);
        }
        if agents >= limit {
            return None;
        }
        agents += 1;
        b = next_b(b, agents, traffic);
    }
}
