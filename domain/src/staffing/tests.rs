//! Erlang C against DOMAIN.md's worked example and published tables, the edges (no traffic,
//! too few agents, 10,000+ agents), the request's checks, and properties: more agents never
//! lower the service level, and the required number is the smallest that meets the target.

use proptest::prelude::*;
use serde_json::json;

use super::*;

fn near(actual: f64, expected: f64, tolerance: f64) -> bool {
    (actual - expected).abs() <= tolerance
}

/// 100 calls in 30 minutes, 180 s each: A = 10 erlangs.
fn worked() -> Workload {
    Workload::per_interval(100.0, 30.0, 180.0)
}

#[test]
fn the_worked_example_needs_14_agents() {
    let target = Target::service_level(0.8, 20.0);
    assert!(near(worked().traffic(), 10.0, 1e-12));
    let thirteen = evaluate(worked(), &target, 13);
    assert!(near(thirteen.service_level, 0.7956, 5e-5), "{thirteen:?}");
    assert!(!thirteen.meets_target);
    let fourteen = evaluate(worked(), &target, 14);
    assert!(near(fourteen.p_wait, 0.1741, 5e-5), "{fourteen:?}");
    assert!(near(fourteen.service_level, 0.8884, 5e-5));
    assert!(near(fourteen.asa_seconds.expect("stable"), 7.84, 5e-3));
    assert!(near(fourteen.occupancy, 0.714, 5e-4));
    assert!(fourteen.meets_target && fourteen.stable);
    assert_eq!(required_agents(worked(), &target), Some(fourteen));
}

#[test]
fn erlang_b_matches_the_published_one_percent_table() {
    // Erlang B tables: the traffic 10, 20, 50 and 100 lines carry at 1 % blocking (and 10 lines
    // at 3 %).
    for (lines, erlangs, blocking) in
        [(10, 4.461, 0.01), (20, 12.031, 0.01), (50, 37.901, 0.01), (100, 84.064, 0.01), (10, 5.529, 0.03)]
    {
        let b = erlang_b(lines, erlangs);
        assert!(near(b, blocking, 1e-4), "B({lines}, {erlangs}) = {b}");
    }
    assert!(near(erlang_b(5, 2.0), 0.036697, 1e-6));
    assert!(near(erlang_b(10, 10.0), 0.214582, 1e-6));
    assert_eq!(erlang_b(0, 3.0), 1.0);
}

#[test]
fn erlang_c_matches_exact_figures_for_10_erlangs() {
    // (N, P_wait, SL at 20 s with AHT 180 s, ASA s), computed with exact rationals from the
    // factorial form.
    let table = [
        (11, 0.682118, 0.389614, 122.7813),
        (12, 0.449388, 0.640158, 40.4449),
        (13, 0.285270, 0.795595, 17.1162),
        (14, 0.174132, 0.888350, 7.8359),
        (15, 0.102042, 0.941453, 3.6735),
    ];
    let target = Target::service_level(0.8, 20.0);
    for (n, p_wait, sl, asa) in table {
        let s = evaluate(worked(), &target, n);
        assert!(near(s.p_wait, p_wait, 1e-6), "{n}: {s:?}");
        assert!(near(s.service_level, sl, 1e-6), "{n}: {s:?}");
        assert!(near(s.asa_seconds.expect("stable"), asa, 1e-4), "{n}: {s:?}");
    }
    assert!(near(erlang_c(2, 1.0), 1.0 / 3.0, 1e-12));
}

/// The textbook form, Σ A^k/k! with factorials, fine for small N: an independent check.
fn factorial_erlang_c(n: u32, a: f64) -> f64 {
    let mut term = 1.0;
    let mut sum = 0.0;
    for k in 0..n {
        sum += term;
        term *= a / f64::from(k + 1);
    }
    let top = term * f64::from(n) / (f64::from(n) - a);
    top / (sum + top)
}

#[test]
fn the_recursion_agrees_with_the_factorial_form() {
    for n in 1..=60 {
        for a in [0.3, 1.0, 4.5, 17.2, 40.0, 59.5] {
            if f64::from(n) > a {
                let (c, direct) = (erlang_c(n, a), factorial_erlang_c(n, a));
                assert!(near(c, direct, 1e-9 * direct.max(1e-300)), "C({n}, {a}) = {c} vs {direct}");
            }
        }
    }
}

#[test]
fn too_few_agents_is_unstable_not_a_number() {
    let target = Target::service_level(0.8, 20.0);
    for n in [0, 5, 10] {
        let s = evaluate(worked(), &target, n);
        assert_eq!((s.p_wait, s.service_level, s.asa_seconds, s.occupancy), (1.0, 0.0, None, 1.0), "{n}");
        assert!(!s.stable && !s.meets_target);
    }
    assert_eq!(erlang_c(10, 10.0), 1.0);
    assert!(evaluate(worked(), &target, 11).stable);
}

#[test]
fn no_calls_need_no_agents() {
    let none = Workload { arrival_rate_per_hour: 0.0, aht_seconds: 180.0 };
    let s = required_agents(none, &Target::service_level(0.8, 20.0)).expect("answer");
    assert_eq!(
        (s.agents, s.p_wait, s.service_level, s.asa_seconds, s.occupancy),
        (0, 0.0, 1.0, Some(0.0), 0.0)
    );
    assert!(s.meets_target);
}

#[test]
fn ten_thousand_erlangs_are_finite_and_quick() {
    let a = 10_000.0;
    for n in [10_050, 10_100, 10_200, 20_000] {
        let c = erlang_c(n, a);
        assert!(c.is_finite() && (0.0..1.0).contains(&c), "C({n}) = {c}");
    }
    assert!(near(erlang_c(10_050, a), 0.505689, 1e-5));
    let big = Workload { arrival_rate_per_hour: 200_000.0, aht_seconds: 180.0 };
    let s = required_agents(big, &Target::service_level(0.8, 20.0)).expect("answer");
    assert!(near(s.traffic_erlangs, a, 1e-9));
    assert!(s.agents > 10_000 && s.agents < 10_100, "{s:?}");
    assert!(s.service_level >= 0.8 && s.asa_seconds.is_some_and(f64::is_finite));
    // One agent fewer misses.
    assert!(!evaluate(big, &Target::service_level(0.8, 20.0), s.agents - 1).meets_target);
    let huge = Workload { arrival_rate_per_hour: 1_900_000.0, aht_seconds: 180.0 };
    assert!(required_agents(huge, &Target::service_level(0.9, 10.0)).is_some());
}

#[test]
fn occupancy_asa_and_shrinkage_limits_add_agents() {
    let capped = Target { max_occupancy: Some(0.6), ..Target::service_level(0.8, 20.0) };
    let s = required_agents(worked(), &capped).expect("answer");
    // 10 ÷ 0.6 = 16.7: 17 agents.
    assert_eq!(s.agents, 17);
    assert!(s.occupancy <= 0.6);
    let asa = Target { max_asa_seconds: Some(5.0), ..Target::service_level(0.8, 20.0) };
    // 14 agents: ASA 7.84 s; 15: 3.67 s.
    assert_eq!(required_agents(worked(), &asa).map(|s| s.agents), Some(15));
    let shrunk = Target { shrinkage: 0.3, ..Target::service_level(0.8, 20.0) };
    let s = required_agents(worked(), &shrunk).expect("answer");
    // 14 ÷ 0.7 is 20 exactly, not 20.000000000000004 rounded up.
    assert_eq!((s.agents, s.scheduled_agents), (14, 20));
    let shrunk = Target { shrinkage: 0.25, ..Target::service_level(0.8, 20.0) };
    assert_eq!(required_agents(worked(), &shrunk).map(|s| s.scheduled_agents), Some(19));
}

#[test]
fn an_unreachable_target_has_no_answer() {
    assert_eq!(required_agents(worked(), &Target::service_level(1.0, 20.0)), None);
    let beyond = Workload { arrival_rate_per_hour: 1e12, aht_seconds: 180.0 };
    assert_eq!(required_agents(beyond, &Target::service_level(0.8, 20.0)), None);
}

// ---- the request ----

fn request(v: serde_json::Value) -> StaffingRequest {
    serde_json::from_value(v).expect("request")
}

#[test]
fn a_request_finds_or_evaluates_agents() {
    let base = json!({"calls_per_interval": 100, "interval_minutes": 30, "aht_seconds": 180,
        "target_answer_time_seconds": 20, "service_level_target": 0.8});
    let found = request(base.clone()).answer().expect("answer");
    assert_eq!(found.staffing.agents, 14);
    assert!(near(found.arrival_rate_per_hour, 200.0, 1e-9) && found.intervals.is_empty());
    let json = serde_json::to_value(&found).expect("json");
    for key in ["agents", "p_wait", "service_level", "asa_seconds", "occupancy", "intervals"] {
        assert!(json.get(key).is_some(), "{key} missing from {json}");
    }
    let mut given = base;
    given["agents"] = json!(13);
    let evaluated = request(given).answer().expect("answer");
    assert_eq!(evaluated.staffing.agents, 13);
    assert!(!evaluated.staffing.meets_target);
    let hourly = json!({"arrival_rate_per_hour": 200, "aht_seconds": 180,
        "target_answer_time_seconds": 20, "service_level_target": 0.8, "shrinkage": 0.3});
    assert_eq!(request(hourly).answer().map(|a| a.staffing.scheduled_agents), Ok(20));
}

#[test]
fn a_forecast_is_staffed_interval_by_interval() {
    let day = json!({"intervals": [0, 50, 100, 25], "interval_minutes": 30, "aht_seconds": 180,
        "target_answer_time_seconds": 20, "service_level_target": 0.8});
    let answer = request(day).answer().expect("answer");
    let agents: Vec<u32> = answer.intervals.iter().map(|i| i.staffing.agents).collect();
    assert_eq!(agents[0], 0);
    assert_eq!(agents[2], 14);
    assert!(agents[1] < 14 && agents[3] < agents[1]);
    assert_eq!(answer.intervals[3].start_minute, 90.0);
    // The answer is the busiest interval's.
    assert_eq!(answer.staffing.agents, 14);
    assert!(near(answer.arrival_rate_per_hour, 200.0, 1e-9));
}

#[test]
fn every_request_problem_is_named() {
    let bad = json!({"arrival_rate_per_hour": -1, "aht_seconds": 0, "target_answer_time_seconds": -5,
        "service_level_target": 80, "max_occupancy": 1.5, "shrinkage": 1, "asa_target_seconds": 0});
    let problems = request(bad).answer().expect_err("invalid");
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_ref()).collect();
    assert_eq!(
        fields,
        [
            "aht_seconds",
            "target_answer_time_seconds",
            "service_level_target",
            "max_occupancy",
            "shrinkage",
            "asa_target_seconds",
            "arrival_rate_per_hour"
        ]
    );
    let none = json!({"aht_seconds": 180, "target_answer_time_seconds": 20, "service_level_target": 0.8});
    assert_eq!(request(none).answer().expect_err("no workload")[0].code, "required");
    let both = json!({"arrival_rate_per_hour": 10, "calls_per_interval": 5, "interval_minutes": 15,
        "aht_seconds": 180, "target_answer_time_seconds": 20, "service_level_target": 0.8});
    assert_eq!(request(both).answer().expect_err("two workloads")[0].field, "arrival_rate_per_hour");
    let no_length = json!({"calls_per_interval": 5, "aht_seconds": 180,
        "target_answer_time_seconds": 20, "service_level_target": 0.8});
    assert_eq!(request(no_length).answer().expect_err("no interval")[0].field, "interval_minutes");
    let flood = json!({"arrival_rate_per_hour": 1e12, "aht_seconds": 180,
        "target_answer_time_seconds": 20, "service_level_target": 0.8});
    assert_eq!(request(flood).answer().expect_err("too much")[0].code, "too_much_traffic");
    let too_many = json!({"arrival_rate_per_hour": 10, "aht_seconds": 180, "agents": 2_000_000,
        "target_answer_time_seconds": 20, "service_level_target": 0.8});
    assert_eq!(request(too_many).answer().expect_err("too many")[0].field, "agents");
    assert!(serde_json::from_value::<StaffingRequest>(json!({"agent_count": 3})).is_err());
}

// ---- properties ----

proptest! {
    #[test]
    fn more_agents_never_serve_worse(
        rate in 1.0f64..5_000.0,
        aht in 10.0f64..900.0,
        t in 0.0f64..120.0,
        extra in 0u32..60,
    ) {
        let workload = Workload { arrival_rate_per_hour: rate, aht_seconds: aht };
        let target = Target::service_level(0.8, t);
        let first = workload.traffic().floor() as u32 + 1 + extra;
        let (a, b) = (evaluate(workload, &target, first), evaluate(workload, &target, first + 1));
        prop_assert!(b.service_level >= a.service_level - 1e-12, "{a:?} {b:?}");
        prop_assert!(b.p_wait <= a.p_wait + 1e-12);
        prop_assert!(b.asa_seconds.expect("stable") <= a.asa_seconds.expect("stable") + 1e-9);
        prop_assert!(b.occupancy < a.occupancy);
        prop_assert!((0.0..=1.0).contains(&a.p_wait) && (0.0..=1.0).contains(&a.service_level));
    }

    #[test]
    fn the_required_agents_are_the_fewest_that_meet_the_target(
        rate in 0.0f64..3_000.0,
        aht in 10.0f64..900.0,
        t in 0.0f64..60.0,
        level in 0.5f64..0.99,
        cap in prop::option::of(0.5f64..1.0),
    ) {
        let workload = Workload { arrival_rate_per_hour: rate, aht_seconds: aht };
        let target = Target { max_occupancy: cap, ..Target::service_level(level, t) };
        let s = required_agents(workload, &target).expect("answer");
        prop_assert!(s.meets_target && s.service_level >= level);
        if s.agents > 0 {
            prop_assert!(!evaluate(workload, &target, s.agents - 1).meets_target);
        }
    }
}
