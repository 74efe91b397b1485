use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;

use super::*;
use crate::campaign::{DialingMode, RetryDelays};

const EPS: f64 = 1e-9;

fn close(actual: f64, expected: f64) {
    assert!((actual - expected).abs() < EPS, "expected {expected}, got {actual}");
}

fn sample(ready_agents: u32, waiting_calls: u32, agents: u32) -> PacingSample {
    PacingSample { ready_agents, waiting_calls, agents }
}

fn intensity(i: i32) -> PredictiveConfig {
    PredictiveConfig { intensity: i, ..PredictiveConfig::default() }
}

/// One interval from `level` with the worked case's difference as the only sample.
fn worked(level: f64, s: PacingSample, i: i32) -> f64 {
    PredictiveState::new(level).next(s, &intensity(i), &DropStats::default())
}

fn limits() -> LineLimits {
    LineLimits::new(1_000, 1_000)
}

// ---------------------------------------------------------------------------------------------
// Predictive: the worked cases of DOMAIN.md
// ---------------------------------------------------------------------------------------------

#[test]
fn worked_case_plus_two_at_intensity_zero_gives_2_4() {
    close(worked(2.0, sample(2, 0, 10), 0), 2.4);
}

#[test]
fn worked_case_plus_two_at_intensity_20_gives_2_48() {
    close(worked(2.0, sample(2, 0, 10), 20), 2.48);
}

#[test]
fn worked_case_minus_three_at_intensity_20_gives_1_52() {
    close(worked(2.0, sample(0, 3, 10), 20), 1.52);
}

#[test]
fn worked_case_plus_three_from_2_8_is_capped_at_3_0() {
    close(worked(2.8, sample(3, 0, 10), 0), 3.0);
}

#[test]
fn worked_case_minus_five_from_1_1_is_floored_at_1_0() {
    close(worked(1.1, sample(0, 5, 10), 0), 1.0);
}

#[test]
fn the_level_averages_over_the_last_15_samples_only() {
    let mut state = PredictiveState::new(2.0);
    let config = PredictiveConfig::default();
    for _ in 0..15 {
        state.next(sample(10, 0, 10), &config, &DropStats::default());
    }
    // Fifteen samples of +2 push every older sample out of the window.
    for _ in 0..14 {
        state.next(sample(2, 0, 10), &config, &DropStats::default());
    }
    state.level = 2.0;
    close(state.next(sample(2, 0, 10), &config, &DropStats::default()), 2.4);
    assert_eq!(state.samples.len(), SAMPLE_WINDOW);
}

#[test]
fn averages_mix_the_samples_in_the_window() {
    // ready (4 + 0) / 2 − waiting (0 + 0) = +2 over 10 agents.
    let mut state = PredictiveState::new(1.0);
    state.next(sample(4, 0, 10), &PredictiveConfig::default(), &DropStats::default());
    state.level = 2.0;
    close(state.next(sample(0, 0, 10), &PredictiveConfig::default(), &DropStats::default()), 2.4);
}

#[test]
fn the_offset_is_added_to_the_difference() {
    let config = PredictiveConfig { offset: 2.0, ..PredictiveConfig::default() };
    close(PredictiveState::new(2.0).next(sample(0, 0, 10), &config, &DropStats::default()), 2.4);
    let config = PredictiveConfig { offset: -3.0, intensity: 20, ..PredictiveConfig::default() };
    close(PredictiveState::new(2.0).next(sample(0, 0, 10), &config, &DropStats::default()), 1.52);
}

#[test]
fn a_configured_max_level_caps_the_level() {
    let config = PredictiveConfig { max_level: 2.2, ..PredictiveConfig::default() };
    close(PredictiveState::new(2.0).next(sample(2, 0, 10), &config, &DropStats::default()), 2.2);
}

#[test]
fn no_agents_leaves_the_level_alone() {
    close(worked(2.0, sample(0, 0, 0), 0), 2.0);
}

#[test]
fn the_state_round_trips_through_json() {
    let mut state = PredictiveState::new(2.0);
    state.next(sample(2, 0, 10), &PredictiveConfig::default(), &DropStats::default());
    let json = serde_json::to_value(&state).unwrap_or_default();
    assert_eq!(json["samples"][0]["ready_agents"], 2);
    let back: PredictiveState = serde_json::from_value(json).unwrap_or_default();
    assert_eq!(back, state);
}

#[test]
fn predictive_config_validation_names_every_field() {
    let config = PredictiveConfig { intensity: 101, offset: f64::NAN, max_level: 0.5, drop_cap: 0.0 };
    let fields: Vec<String> =
        config.validate().err().unwrap_or_default().into_iter().map(|p| p.field.into_owned()).collect();
    assert_eq!(fields, ["intensity", "offset", "max_level", "drop_cap"]);
    assert_eq!(PredictiveConfig::default().validate(), Ok(()));
}

// ---------------------------------------------------------------------------------------------
// Drop control
// ---------------------------------------------------------------------------------------------

fn minute(answered: u64, dropped: u64) -> DropStats {
    DropStats { minute_answered: answered, minute_dropped: dropped, ..DropStats::default() }
}

#[test]
fn over_20_calls_in_a_minute_with_more_than_half_dropped_halves_the_level() {
    let config = PredictiveConfig::default();
    close(drop_control(2.4, &config, &minute(21, 11)), 1.2);
    // And through `next`: 2.0 → 2.4 by the sample, then halved.
    let mut state = PredictiveState::new(2.0);
    close(state.next(sample(2, 0, 10), &config, &minute(21, 11)), 1.2);
}

#[test]
fn halving_never_goes_below_1() {
    close(drop_control(1.5, &PredictiveConfig::default(), &minute(30, 30)), 1.0);
}

#[test]
fn the_minute_rule_needs_over_20_calls_and_over_half_dropped() {
    let config = PredictiveConfig::default();
    close(drop_control(2.4, &config, &minute(20, 20)), 2.4);
    close(drop_control(2.4, &config, &minute(22, 11)), 2.4);
}

fn today(calls: u64, answered: u64, dropped: u64) -> DropStats {
    DropStats { today_calls: calls, today_answered: answered, today_dropped: dropped, ..DropStats::default() }
}

#[test]
fn over_50_calls_today_with_drops_above_the_cap_resets_the_level_to_1() {
    let config = PredictiveConfig::default();
    close(drop_control(2.7, &config, &today(51, 100, 4)), 1.0);
    let mut state = PredictiveState::new(2.0);
    close(state.next(sample(2, 0, 10), &config, &today(200, 100, 4)), 1.0);
}

#[test]
fn the_day_rule_needs_over_50_calls_and_a_rate_above_the_cap() {
    let config = PredictiveConfig::default();
    close(drop_control(2.7, &config, &today(50, 20, 10)), 2.7);
    close(drop_control(2.7, &config, &today(500, 100, 3)), 2.7);
    let strict = PredictiveConfig { drop_cap: 0.02, ..config };
    close(drop_control(2.7, &strict, &today(500, 100, 3)), 1.0);
}

// ---------------------------------------------------------------------------------------------
// Lines
// ---------------------------------------------------------------------------------------------

#[test]
fn progressive_dials_idle_agents_minus_calls_in_flight() {
    assert_eq!(progressive_lines(7, LineCounts { in_flight: 3, live: 20 }, limits()), 4);
}

#[test]
fn progressive_never_goes_below_zero() {
    assert_eq!(progressive_lines(2, LineCounts { in_flight: 5, live: 5 }, limits()), 0);
}

#[test]
fn progressive_is_capped_by_max_concurrent_calls_and_the_trunk() {
    let counts = LineCounts { in_flight: 0, live: 8 };
    assert_eq!(progressive_lines(10, counts, LineLimits::new(10, 100)), 2);
    assert_eq!(progressive_lines(10, counts, LineLimits::new(100, 11)), 3);
    assert_eq!(progressive_lines(10, LineCounts { in_flight: 0, live: 12 }, LineLimits::new(10, 100)), 0);
}

#[test]
fn predictive_dials_round_level_times_agents_minus_calls_in_progress() {
    // round(2.45 × 10) = 25 (rounds half away from zero), minus 5 live.
    assert_eq!(predictive_lines(2.45, 10, LineCounts { in_flight: 2, live: 5 }, limits()), 20);
    assert_eq!(predictive_lines(2.4, 10, LineCounts { in_flight: 2, live: 30 }, limits()), 0);
}

#[test]
fn predictive_lines_are_capped_by_the_trunk() {
    assert_eq!(predictive_lines(3.0, 10, LineCounts { in_flight: 0, live: 5 }, LineLimits::new(100, 12)), 7);
}

fn view(agents: u32, idle_agents: u32, waiting_calls: u32, live: u32) -> DialerView {
    DialerView {
        agents,
        idle_agents,
        waiting_calls,
        counts: LineCounts { in_flight: waiting_calls, live },
        drops: DropStats::default(),
    }
}

#[test]
fn lines_to_dial_follows_the_mode() {
    let v = view(10, 4, 0, 6);
    let mut state = PredictiveState::new(2.0);
    let config = PredictiveConfig::default();
    assert_eq!(lines_to_dial(DialingMode::Preview, &mut state, &v, &config, limits()), 0);
    assert_eq!(lines_to_dial(DialingMode::Progressive, &mut state, &v, &config, limits()), 4);
    assert_eq!(state, PredictiveState::new(2.0), "progressive leaves the level alone");
}

/// The simulator's interval step (`lines_to_dial` on a `DialerView`) follows the worked cases.
#[test]
fn the_dialer_step_follows_the_worked_cases() {
    let cases = [
        (2.0, view(10, 2, 0, 5), 0, 2.4, 19),
        (2.0, view(10, 2, 0, 5), 20, 2.48, 20),
        (2.0, view(10, 0, 3, 12), 20, 1.52, 3),
        (2.8, view(10, 3, 0, 7), 0, 3.0, 23),
        (1.1, view(10, 0, 5, 15), 0, 1.0, 0),
    ];
    for (level, v, i, expected_level, expected_lines) in cases {
        let mut state = PredictiveState::new(level);
        let lines = lines_to_dial(DialingMode::Predictive, &mut state, &v, &intensity(i), limits());
        close(state.level, expected_level);
        assert_eq!(lines, expected_lines, "from {level} at intensity {i}");
    }
}

proptest! {
    #[test]
    fn the_level_stays_within_its_bounds(
        level in 0.0f64..5.0,
        samples in proptest::collection::vec((0u32..60, 0u32..60, 0u32..60), 1..40),
        i in -100i32..=100,
        offset in -10.0f64..10.0,
        max_level in 1.0f64..4.0,
    ) {
        let config = PredictiveConfig { intensity: i, offset, max_level, ..PredictiveConfig::default() };
        let mut state = PredictiveState::new(level);
        for (ready, waiting, agents) in samples {
            let l = state.next(sample(ready, waiting, agents), &config, &DropStats::default());
            prop_assert!((1.0..=max_level).contains(&l));
            prop_assert!(state.samples.len() <= SAMPLE_WINDOW);
        }
    }

    #[test]
    fn lines_never_exceed_the_limits(
        level in 1.0f64..3.0, agents in 0u32..200, in_flight in 0u32..100, extra in 0u32..100,
        max in 1u32..300, trunk in 1u32..300, idle in 0u32..200,
    ) {
        let counts = LineCounts { in_flight, live: in_flight + extra };
        let limits = LineLimits::new(max, trunk);
        let predictive = predictive_lines(level, agents, counts, limits);
        for lines in [predictive, progressive_lines(idle, counts, limits)] {
            prop_assert!(counts.live + lines <= max.min(trunk).max(counts.live));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Compliance gate
// ---------------------------------------------------------------------------------------------

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).single().unwrap_or_default()
}

fn counts(live_answered: u64, abandoned: u64) -> AbandonmentCounts {
    AbandonmentCounts { live_answered, abandoned, machine_detected: 0 }
}

/// An over-dial: 5 calls ringing, 2 idle agents, so 4 calls at risk with this one.
fn over_dial() -> DialCheck {
    DialCheck {
        at: now(),
        ring_timeout_seconds: 25,
        last_abandoned_at: None,
        today: counts(1000, 0),
        last_30_days: counts(20_000, 0),
        ringing: 5,
        waiting_calls: 0,
        idle_agents: 2,
        human_answer_probability: 0.2,
    }
}

/// A dial an idle agent waits for.
fn covered_dial() -> DialCheck {
    DialCheck { ringing: 1, idle_agents: 2, ..over_dial() }
}

fn gate(dial: &DialCheck) -> DialDecision {
    check_dial(dial, &ComplianceConfig::default())
}

#[test]
fn a_ring_timeout_under_15_s_is_refused() {
    let dial = DialCheck { ring_timeout_seconds: 14, ..covered_dial() };
    assert_eq!(gate(&dial), DialDecision::Refused(RefusalReason::RingTimeoutTooShort));
    assert_eq!(gate(&DialCheck { ring_timeout_seconds: 15, ..covered_dial() }), DialDecision::Allowed);
}

#[test]
fn a_number_dropped_as_abandoned_is_not_redialled_for_72_h() {
    let dropped = now() - Duration::hours(72) + Duration::seconds(1);
    let dial = DialCheck { last_abandoned_at: Some(dropped), ..covered_dial() };
    assert_eq!(gate(&dial), DialDecision::Refused(RefusalReason::AbandonedWithin72h));
    assert!(RefusalReason::AbandonedWithin72h.is_about_the_number());
    let dial = DialCheck { last_abandoned_at: Some(now() - Duration::hours(72)), ..covered_dial() };
    assert_eq!(gate(&dial), DialDecision::Allowed);
}

#[test]
fn an_over_dial_within_both_budgets_is_allowed() {
    assert_eq!(gate(&over_dial()), DialDecision::Allowed);
}

#[test]
fn an_over_dial_that_could_pass_the_daily_cap_is_refused() {
    // Budget 0.03 × 1000 − 28 = 2; 4 calls at risk at p = 0.2: 3 people or more 2.7 % of the
    // time, 4 only 0.16 %, so the gate reckons with 4.
    let dial = DialCheck { today: counts(1000, 28), ..over_dial() };
    assert_eq!(gate(&dial), DialDecision::Refused(RefusalReason::AbandonmentCapDay));
    assert!(!RefusalReason::AbandonmentCapDay.is_about_the_number());
    // Budget 4 is enough.
    assert_eq!(gate(&DialCheck { today: counts(1000, 26), ..over_dial() }), DialDecision::Allowed);
}

#[test]
fn an_over_dial_that_could_pass_the_30_day_cap_is_refused() {
    let dial = DialCheck { last_30_days: counts(20_000, 598), ..over_dial() };
    assert_eq!(gate(&dial), DialDecision::Refused(RefusalReason::AbandonmentCap30Days));
    assert_eq!(gate(&DialCheck { last_30_days: counts(20_000, 596), ..over_dial() }), DialDecision::Allowed);
}

#[test]
fn waiting_calls_count_as_certain_drops() {
    // 3 waiting, no idle agent, nothing ringing: 3 + q(1, 0.2) = 3 + 1 > budget 3.
    let dial =
        DialCheck { today: counts(1000, 27), ringing: 0, idle_agents: 0, waiting_calls: 3, ..over_dial() };
    assert_eq!(gate(&dial), DialDecision::Refused(RefusalReason::AbandonmentCapDay));
    let dial = DialCheck { today: counts(1000, 26), ..dial };
    assert_eq!(gate(&dial), DialDecision::Allowed);
}

#[test]
fn a_covered_dial_passes_even_over_the_cap_so_the_campaign_degrades_to_progressive() {
    let exhausted = counts(100, 10);
    let dial = DialCheck { today: exhausted, last_30_days: exhausted, ..covered_dial() };
    assert_eq!(gate(&dial), DialDecision::Allowed);
    let dial = DialCheck { today: exhausted, last_30_days: exhausted, ..over_dial() };
    assert_eq!(gate(&dial), DialDecision::Refused(RefusalReason::AbandonmentCapDay));
}

#[test]
fn no_over_dial_before_the_first_answers() {
    // p = 1 (nothing known yet) and no budget: only covered dials.
    let start = DialCheck {
        today: counts(0, 0),
        last_30_days: counts(0, 0),
        human_answer_probability: answer_probability_bound(0, 0),
        ..over_dial()
    };
    assert_eq!(gate(&start), DialDecision::Refused(RefusalReason::AbandonmentCapDay));
    assert_eq!(gate(&DialCheck { ringing: 1, idle_agents: 2, ..start }), DialDecision::Allowed);
}

#[test]
fn amd_false_positives_count_in_the_daily_rule() {
    // 1000 machine detections at an estimated 2 % people: 20 more answered and 20 more
    // abandoned. At 3 % the budget is 0.03 × 1030 − 30 = 0.9, short of the 4 at risk.
    let today = AbandonmentCounts { live_answered: 1000, abandoned: 0, machine_detected: 1000 };
    close(today.rate(0.02), 20.0 / 1020.0);
    close(today.budget(0.03, 0.02), 0.03 * 1020.0 - 20.0);
    let config = ComplianceConfig { amd_false_positive_rate: 0.03, ..ComplianceConfig::default() };
    let dial = DialCheck { today, ..over_dial() };
    assert_eq!(check_dial(&dial, &config), DialDecision::Refused(RefusalReason::AbandonmentCapDay));
    assert_eq!(gate(&dial), DialDecision::Allowed, "no estimate, no false positives");
}

#[test]
fn the_abandonment_rate_is_over_live_answered_calls() {
    close(counts(200, 6).rate(0.0), 0.03);
    close(counts(0, 0).rate(0.0), 0.0);
    close(counts(200, 6).budget(0.03, 0.0), 0.0);
}

#[test]
fn the_binomial_quantile_is_exact() {
    assert_eq!(binomial_quantile(3, 0.1, 1e-4), 3);
    assert_eq!(binomial_quantile(3, 0.1, 0.01), 2);
    assert_eq!(binomial_quantile(20, 0.2, 1e-4), 12);
    assert_eq!(binomial_quantile(20, 0.2, 0.5), 4);
    assert_eq!(binomial_quantile(0, 0.5, 1e-4), 0);
    assert_eq!(binomial_quantile(7, 1.0, 1e-4), 7);
    assert_eq!(binomial_quantile(7, 0.0, 1e-4), 0);
    // Large n does not underflow.
    let q = binomial_quantile(5_000, 0.5, 1e-4);
    assert!((2_600..2_700).contains(&q), "{q}");
}

#[test]
fn the_answer_probability_bound_is_a_wilson_upper_bound() {
    close(answer_probability_bound(0, 0), 1.0);
    close(answer_probability_bound(100, 20), 0.2908289543388012);
    close(answer_probability_bound(1000, 200), 0.22647127000089548);
}

#[test]
fn compliance_config_validation() {
    let config = ComplianceConfig { abandonment_cap: 0.05, amd_false_positive_rate: 1.5, drop_risk: 0.0 };
    let fields: Vec<String> =
        config.validate().err().unwrap_or_default().into_iter().map(|p| p.field.into_owned()).collect();
    assert_eq!(fields, ["abandonment_cap", "amd_false_positive_rate", "drop_risk"]);
    assert_eq!(ComplianceConfig::default().validate(), Ok(()));
}

#[test]
fn refusal_codes_are_stable() {
    let codes = [
        RefusalReason::RingTimeoutTooShort,
        RefusalReason::AbandonedWithin72h,
        RefusalReason::AbandonmentCapDay,
        RefusalReason::AbandonmentCap30Days,
    ]
    .map(|r| (r.code(), serde_json::to_value(r).unwrap_or_default()));
    for (code, json) in codes {
        assert_eq!(json, code);
    }
}

// ---------------------------------------------------------------------------------------------
// Answered calls
// ---------------------------------------------------------------------------------------------

#[test]
fn every_twilio_answered_by_value_parses() {
    use AmdOutcome::*;
    let cases = [
        ("human", Human),
        ("machine_start", Machine),
        ("machine_end_beep", Machine),
        ("machine_end_silence", Machine),
        ("machine_end_other", Machine),
        ("fax", Machine),
        ("unknown", Unknown),
        ("something_new", Unknown),
    ];
    for (value, outcome) in cases {
        assert_eq!(AmdOutcome::from_twilio(value), outcome, "{value}");
    }
}

#[test]
fn every_telnyx_result_parses() {
    use AmdOutcome::*;
    let cases = [
        ("human", Human),
        ("machine", Machine),
        ("not_sure", Unknown),
        ("human_residence", Human),
        ("human_business", Human),
        ("fax_detected", Machine),
        ("silence", Unknown),
        ("", Unknown),
    ];
    for (value, outcome) in cases {
        assert_eq!(AmdOutcome::from_telnyx(value), outcome, "{value}");
    }
}

#[test]
fn humans_and_unknowns_go_to_an_agent_machines_as_the_campaign_chose() {
    use AnswerAction::*;
    for machine in [MachineAction::VoicemailDrop, MachineAction::Retry] {
        assert_eq!(answer_action(AmdOutcome::Human, machine), ConnectAgent);
        assert_eq!(answer_action(AmdOutcome::Unknown, machine), ConnectAgent);
    }
    assert_eq!(answer_action(AmdOutcome::Machine, MachineAction::VoicemailDrop), VoicemailDrop);
    assert_eq!(answer_action(AmdOutcome::Machine, MachineAction::Retry), Retry);
}

#[test]
fn a_person_without_an_agent_within_2_s_is_abandoned() {
    let greeting = now();
    let at = |ms| greeting + Duration::milliseconds(ms);
    assert_eq!(waiting_call_action(greeting, at(0), true), WaitingCallAction::ConnectAgent);
    assert_eq!(waiting_call_action(greeting, at(1_999), false), WaitingCallAction::KeepWaiting);
    assert_eq!(waiting_call_action(greeting, at(2_000), true), WaitingCallAction::ConnectAgent);
    assert_eq!(waiting_call_action(greeting, at(2_001), false), WaitingCallAction::Abandon);
    assert_eq!(waiting_call_action(greeting, at(2_001), true), WaitingCallAction::Abandon);
}

#[test]
fn retry_delays_come_from_the_campaign_and_abandoned_waits_72_h_at_least() {
    let delays = RetryDelays { no_answer: 61, busy: 16, failed: 31, voicemail: 241, abandoned: 5000 };
    assert_eq!(retry_delay(RetryReason::NoAnswer, &delays), Duration::minutes(61));
    assert_eq!(retry_delay(RetryReason::Busy, &delays), Duration::minutes(16));
    assert_eq!(retry_delay(RetryReason::Failed, &delays), Duration::minutes(31));
    assert_eq!(retry_delay(RetryReason::Machine, &delays), Duration::minutes(241));
    assert_eq!(retry_delay(RetryReason::Abandoned, &delays), Duration::minutes(5000));
    let short = RetryDelays { abandoned: 10, ..delays };
    assert_eq!(retry_delay(RetryReason::Abandoned, &short), Duration::hours(72));
}

// ---------------------------------------------------------------------------------------------
// Simulator
// ---------------------------------------------------------------------------------------------

fn day(seed: u64, mode: DialingMode, human_answer_rate: f64) -> SimReport {
    simulate(&SimConfig {
        seed,
        mode,
        agents: 50,
        human_answer_rate,
        day_seconds: 8 * 3600,
        ..SimConfig::default()
    })
}

/// The benchmark goals: 50 agents, 8 simulated hours, answer rates 20/35/50 %.
#[test]
fn the_simulated_day_keeps_abandonment_under_3_percent_and_predictive_beats_progressive() {
    for seed in 1..=5 {
        for rate in [0.20, 0.35, 0.50] {
            let progressive = day(seed, DialingMode::Progressive, rate);
            let predictive = day(seed, DialingMode::Predictive, rate);
            for (mode, r) in [("progressive", &progressive), ("predictive", &predictive)] {
                assert!(r.abandonment_rate <= 0.03, "{mode} seed {seed} at {rate}: {}", r.abandonment_rate);
                assert!(
                    r.max_day_abandonment_rate <= 0.03,
                    "{mode} seed {seed} at {rate}: max {}",
                    r.max_day_abandonment_rate
                );
                close(r.abandonment_rate, r.abandoned as f64 / r.answered_human as f64);
            }
            assert!(predictive.occupancy > progressive.occupancy, "seed {seed} at {rate}");
            if rate == 0.20 {
                assert!(
                    predictive.occupancy >= 1.3 * progressive.occupancy,
                    "seed {seed}: predictive {} vs progressive {}",
                    predictive.occupancy,
                    progressive.occupancy
                );
            }
        }
    }
}

/// People who answered in the last 2 s of the day and were neither connected nor dropped yet.
fn still_waiting(r: &SimReport) -> u64 {
    r.answered_human - r.handled - r.abandoned
}

#[test]
fn the_simulator_is_deterministic_for_a_seed() {
    let a = day(7, DialingMode::Predictive, 0.3);
    assert_eq!(a, day(7, DialingMode::Predictive, 0.3));
    assert_ne!(a.dials, day(8, DialingMode::Predictive, 0.3).dials);
}

#[test]
fn progressive_never_abandons_a_call() {
    let r = day(1, DialingMode::Progressive, 0.35);
    assert_eq!(r.abandoned, 0);
    assert_eq!(r.handled, r.answered_human);
    assert_eq!(r.refused_over_dials, 0);
}

#[test]
fn the_report_adds_up() {
    let r = day(2, DialingMode::Predictive, 0.35);
    assert!(still_waiting(&r) <= 5);
    assert!(r.dials > r.answered_human);
    assert!(r.occupancy > 0.0 && r.occupancy < 1.0);
    close(r.calls_per_agent_hour, r.handled as f64 / (50.0 * 8.0));
    assert!(r.average_agent_wait_seconds > 0.0);
    // One trace point a minute, the level within its bounds.
    assert_eq!(r.level_trace.len(), 8 * 60);
    assert_eq!(r.level_trace[59].minute, 59);
    assert!(r.level_trace.iter().all(|p| (1.0..=DEFAULT_MAX_LEVEL).contains(&p.level)));
    assert!(r.refused_over_dials > 0, "the gate paces the over-dialing");
}

#[test]
fn a_ring_timeout_under_15_s_stops_the_simulated_dialer() {
    let r = simulate(&SimConfig { ring_timeout_seconds: 14, day_seconds: 600, ..SimConfig::default() });
    assert_eq!(r.dials, 0);
}

#[test]
fn preview_campaigns_do_not_dial_by_themselves() {
    let r = simulate(&SimConfig { mode: DialingMode::Preview, day_seconds: 600, ..SimConfig::default() });
    assert_eq!(r.dials, 0);
}

#[test]
fn machines_take_no_agent_whatever_the_campaign_does_with_them() {
    for machine_action in [MachineAction::VoicemailDrop, MachineAction::Retry] {
        let r = simulate(&SimConfig {
            seed: 3,
            human_answer_rate: 0.25,
            machine_share: 0.3,
            machine_action,
            talk: TalkTime::LogNormal { mean_seconds: 180.0, sigma: 0.8 },
            ..SimConfig::default()
        });
        assert!(r.answered_machine > 1_000, "{r:?}");
        assert!(still_waiting(&r) <= 5);
        assert!(r.max_day_abandonment_rate <= 0.03, "{}", r.max_day_abandonment_rate);
    }
}

#[test]
fn amd_false_positives_are_abandoned_calls() {
    let r = simulate(&SimConfig {
        seed: 4,
        human_answer_rate: 0.3,
        machine_share: 0.3,
        amd_false_positive_rate: 0.01,
        ..SimConfig::default()
    });
    // People AMD hung up on are answered and abandoned, yet no agent ever saw them.
    assert!(still_waiting(&r) <= 5);
    assert!(r.abandonment_rate <= 0.03, "{}", r.abandonment_rate);
    assert!(r.abandoned > 0);
}

#[test]
fn lognormal_talk_times_keep_their_mean() {
    // One agent, every dial answered at once: handled calls ≈ day ÷ (talk + wrap-up + ring).
    let config = SimConfig {
        mode: DialingMode::Progressive,
        agents: 1,
        human_answer_rate: 1.0,
        answer_after_seconds: (3.0, 3.0),
        talk: TalkTime::LogNormal { mean_seconds: 100.0, sigma: 1.0 },
        wrap_up_seconds: 0.0,
        day_seconds: 200 * 3600,
        ..SimConfig::default()
    };
    let r = simulate(&config);
    let cycle = 200.0 * 3600.0 / r.handled as f64;
    assert!((cycle - 103.5).abs() < 5.0, "mean cycle {cycle}");
}
