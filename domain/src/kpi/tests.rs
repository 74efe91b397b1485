//! KPIs from hand-computed figures, roll-ups that never average ratios, first-contact chains,
//! and properties: any grouping of minutes gives the KPIs of one roll-up, and the KPIs equal a
//! direct count over the recorded facts.

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;

use super::*;

fn at(day: i64, minute: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).single().expect("valid time")
        + Duration::days(day)
        + Duration::minutes(minute)
}

const MIN: u64 = 60_000;

/// Six queued calls, two handled calls, 90 minutes of agent time, four first contacts.
fn worked_minute() -> KpiBucket {
    let mut b = KpiBucket::new();
    b.record_queued_call(QueueExit::Answered, 12_000);
    b.record_queued_call(QueueExit::Answered, 20_000); // exactly T: within
    b.record_queued_call(QueueExit::Answered, 20_001); // just over
    b.record_queued_call(QueueExit::Abandoned, 3_000); // short
    b.record_queued_call(QueueExit::Abandoned, 40_000);
    b.record_queued_call(QueueExit::Diverted, 60_000); // voicemail: not an abandon
    b.record_handled(180_000, 30_000, 30_000);
    b.record_handled(100_000, 0, 20_000);
    b.record_agent_time(AgentActivity::Handling, 45 * MIN);
    b.record_agent_time(AgentActivity::Idle, 15 * MIN);
    b.record_agent_time(AgentActivity::Unavailable, 30 * MIN);
    for _ in 0..4 {
        b.record_first_contact();
    }
    b.record_first_contact_repeated();
    b
}

fn close(actual: Option<f64>, expected: f64) -> bool {
    actual.is_some_and(|a| (a - expected).abs() < 1e-9)
}

#[test]
fn every_kpi_of_a_worked_minute() {
    let k = worked_minute().kpis(20);
    assert_eq!((k.offered, k.answered, k.abandoned, k.abandoned_short, k.diverted), (6, 3, 1, 1, 1));
    // 2 answered within 20 s ÷ (6 offered − 1 short abandon).
    assert!(close(k.service_level, 0.4), "{:?}", k.service_level);
    // (12 + 20 + 20.001) s ÷ 3 answered.
    assert!(close(k.asa_seconds, 52.001 / 3.0), "{:?}", k.asa_seconds);
    // (240 + 120) s ÷ 2 handled.
    assert!(close(k.aht_seconds, 180.0), "{:?}", k.aht_seconds);
    // 1 abandon after ≥ 5 s ÷ 5.
    assert!(close(k.abandonment_rate, 0.2), "{:?}", k.abandonment_rate);
    // 45 ÷ (45 + 15) and 45 ÷ 90.
    assert!(close(k.occupancy, 0.75) && close(k.utilization, 0.5), "{k:?}");
    // (4 − 1) ÷ 4.
    assert!(close(k.fcr, 0.75), "{:?}", k.fcr);
    assert!(close(k.longest_wait_seconds, 60.0), "{:?}", k.longest_wait_seconds);
    assert!(close(worked_minute().kpis(12).service_level, 0.2));
    assert!(close(worked_minute().kpis(21).service_level, 0.6));
    assert!(close(worked_minute().kpis(11).service_level, 0.0));
}

#[test]
fn a_zero_denominator_is_absent_not_zero() {
    let k = KpiBucket::new().kpis(20);
    assert_eq!((k.service_level, k.asa_seconds, k.aht_seconds, k.abandonment_rate), (None, None, None, None));
    assert_eq!((k.occupancy, k.utilization, k.fcr, k.longest_wait_seconds), (None, None, None, None));
    // Only short abandons: nothing counts against service level.
    let mut b = KpiBucket::new();
    b.record_queued_call(QueueExit::Abandoned, 4_999);
    let k = b.kpis(20);
    assert_eq!((k.service_level, k.abandonment_rate, k.asa_seconds), (None, None, None));
    assert_eq!(k.abandoned_short, 1);
    // A wait of exactly 5 s is not short.
    b.record_queued_call(QueueExit::Abandoned, 5_000);
    assert!(close(b.kpis(20).abandonment_rate, 1.0));
}

#[test]
fn a_day_is_a_rollup_not_an_average_of_hours() {
    // 09:00: 1 call, answered in 5 s. 10:00: 9 calls, each answered after a minute.
    let mut nine = KpiBucket::new();
    nine.record_queued_call(QueueExit::Answered, 5_000);
    let mut ten = KpiBucket::new();
    for _ in 0..9 {
        ten.record_queued_call(QueueExit::Answered, 60_000);
    }
    assert!(close(nine.kpis(20).service_level, 1.0) && close(ten.kpis(20).service_level, 0.0));
    let day = KpiBucket::rollup([&nine, &ten]);
    // Not (1.0 + 0.0) / 2.
    assert!(close(day.kpis(20).service_level, 0.1), "{:?}", day.kpis(20).service_level);
    assert!(close(day.kpis(20).asa_seconds, 54.5));
    assert!(close(day.kpis(20).longest_wait_seconds, 60.0));
}

#[test]
fn service_level_is_exact_to_an_hour_and_absent_beyond() {
    let mut b = KpiBucket::new();
    b.record_queued_call(QueueExit::Answered, 3_600_000);
    b.record_queued_call(QueueExit::Answered, 3_600_001);
    b.record_queued_call(QueueExit::Answered, 86_400_000);
    assert_eq!(b.answered_within(MAX_SERVICE_LEVEL_SECONDS), Some(1));
    assert_eq!(b.answered_within(MAX_SERVICE_LEVEL_SECONDS + 1), None);
    assert_eq!(b.kpis(7_200).service_level, None);
    assert_eq!(b.answered_within(0), Some(0));
    b.record_queued_call(QueueExit::Answered, 0);
    assert_eq!(b.answered_within(0), Some(1));
}

#[test]
fn kpis_are_found_by_name() {
    let k = worked_minute().kpis(20);
    for name in KpiName::ALL {
        assert_eq!(KpiName::parse(name.as_str()), Some(name));
        assert!(k.value(name).is_some(), "{name:?}");
    }
    assert_eq!(k.value(KpiName::ServiceLevel), k.service_level);
    assert_eq!(k.value(KpiName::Aht), Some(180.0));
    assert_eq!(KpiName::parse("sla"), None);
}

#[test]
fn buckets_round_trip_through_json() {
    let b = worked_minute();
    let json = serde_json::to_value(&b).expect("serialize");
    assert_eq!(json["answered_by_wait_second"]["21"], 1);
    assert_eq!(serde_json::from_value::<KpiBucket>(json).expect("deserialize"), b);
    // A bucket stored before a counter existed still reads.
    let old: KpiBucket = serde_json::from_str(r#"{"offered": 2, "answered": 2}"#).expect("old shape");
    assert_eq!((old.offered, old.conversions), (2, 0));
}

#[test]
fn the_live_longest_wait_is_the_oldest_caller_s() {
    let now = at(0, 10);
    assert_eq!(live_longest_wait_seconds(now, [at(0, 9), at(0, 7), at(0, 8)]), Some(180.0));
    assert_eq!(live_longest_wait_seconds(now, []), None);
    // A caller stamped after `now` (another clock) has waited zero, not a negative time.
    assert_eq!(live_longest_wait_seconds(now, [at(0, 11)]), Some(0.0));
}

#[test]
fn dials_connects_transfers_and_conversions_add_up() {
    let mut b = KpiBucket::new();
    b.record_dial(true);
    b.record_dial(false);
    b.record_transfer();
    b.record_conversion();
    let day = KpiBucket::rollup([&b, &b]);
    assert_eq!((day.dials, day.connects, day.transfers, day.conversions), (4, 2, 2, 2));
    assert!(!day.is_empty() && KpiBucket::new().is_empty());
}

// ---- first-contact resolution ----

fn chain_of(times: &[DateTime<Utc>]) -> Vec<ContactEffect> {
    let mut chain = None;
    times
        .iter()
        .map(|t| {
            let (next, effect) = observe_contact(chain.as_ref(), *t);
            chain = Some(next);
            effect
        })
        .collect()
}

#[test]
fn a_contact_within_7_days_repeats_the_first_one() {
    use ContactEffect::*;
    assert_eq!(
        chain_of(&[at(0, 0), at(3, 0)]),
        vec![FirstContact, RepeatOfFirstContact { first_at: at(0, 0) }]
    );
    // Exactly 7 days later still repeats; a minute more starts a new chain.
    assert_eq!(chain_of(&[at(0, 0), at(7, 0)])[1], RepeatOfFirstContact { first_at: at(0, 0) });
    assert_eq!(chain_of(&[at(0, 0), at(7, 1)]), vec![FirstContact, FirstContact]);
    // Later contacts of a repeated chain count nothing more, and keep the chain going.
    assert_eq!(
        chain_of(&[at(0, 0), at(5, 0), at(10, 0), at(16, 0), at(24, 0)]),
        vec![FirstContact, RepeatOfFirstContact { first_at: at(0, 0) }, Repeat, Repeat, FirstContact]
    );
}

// ---- properties ----

#[derive(Debug, Clone)]
enum Fact {
    Queued(QueueExit, u64),
    Handled(u64, u64, u64),
    Agent(AgentActivity, u64),
    First,
    Repeated,
    Dial(bool),
}

fn fact() -> impl Strategy<Value = Fact> {
    let exit = prop_oneof![Just(QueueExit::Answered), Just(QueueExit::Abandoned), Just(QueueExit::Diverted)];
    let activity = prop_oneof![
        Just(AgentActivity::Handling),
        Just(AgentActivity::Idle),
        Just(AgentActivity::Unavailable)
    ];
    prop_oneof![
        4 => (exit, 0u64..200_000).prop_map(|(e, w)| Fact::Queued(e, w)),
        2 => (0u64..900_000, 0u64..120_000, 0u64..120_000).prop_map(|(t, h, w)| Fact::Handled(t, h, w)),
        2 => (activity, 0u64..60_000).prop_map(|(a, ms)| Fact::Agent(a, ms)),
        1 => Just(Fact::First),
        1 => Just(Fact::Repeated),
        1 => any::<bool>().prop_map(Fact::Dial),
    ]
}

fn record(bucket: &mut KpiBucket, fact: &Fact) {
    match *fact {
        Fact::Queued(exit, wait) => bucket.record_queued_call(exit, wait),
        Fact::Handled(t, h, w) => bucket.record_handled(t, h, w),
        Fact::Agent(a, ms) => bucket.record_agent_time(a, ms),
        Fact::First => bucket.record_first_contact(),
        Fact::Repeated => bucket.record_first_contact_repeated(),
        Fact::Dial(connected) => bucket.record_dial(connected),
    }
}

/// Facts spread over 240 minutes: one bucket per minute.
fn minutes(facts: &[(usize, Fact)]) -> Vec<KpiBucket> {
    let mut out = vec![KpiBucket::new(); 240];
    for (minute, f) in facts {
        record(&mut out[*minute], f);
    }
    out
}

fn same(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => (x - y).abs() <= 1e-12 * x.abs().max(1.0),
        _ => false,
    }
}

proptest! {
    #[test]
    fn any_grouping_of_minutes_gives_the_kpis_of_one_rollup(
        facts in prop::collection::vec((0usize..240, fact()), 0..300),
        cuts in prop::collection::btree_set(1usize..240, 0..20),
        order in any::<usize>(),
        threshold in 0u32..120,
    ) {
        let minutes = minutes(&facts);
        let whole = KpiBucket::rollup(&minutes);
        // Contiguous groups (hours, days: any cut), each rolled up, then the groups rolled up
        // in a shuffled order.
        let mut bounds: Vec<usize> = std::iter::once(0).chain(cuts.iter().copied()).collect();
        bounds.push(240);
        let mut groups: Vec<KpiBucket> =
            bounds.windows(2).map(|w| KpiBucket::rollup(&minutes[w[0]..w[1]])).collect();
        let n = groups.len();
        groups.rotate_left(order % n);
        let regrouped: KpiBucket = groups.into_iter().sum();
        prop_assert_eq!(&regrouped, &whole);
        prop_assert_eq!(regrouped.kpis(threshold), whole.kpis(threshold));
    }

    #[test]
    fn the_kpis_equal_a_direct_count_of_the_facts(
        facts in prop::collection::vec((0usize..240, fact()), 0..300),
        threshold in 0u32..120,
    ) {
        let k = KpiBucket::rollup(&minutes(&facts)).kpis(threshold);
        let queued: Vec<(QueueExit, u64)> = facts.iter().filter_map(|(_, f)| match f {
            Fact::Queued(e, w) => Some((*e, *w)),
            _ => None,
        }).collect();
        let short = queued.iter().filter(|(e, w)| *e == QueueExit::Abandoned && *w < 5_000).count();
        let long = queued.iter().filter(|(e, w)| *e == QueueExit::Abandoned && *w >= 5_000).count();
        let answered: Vec<u64> =
            queued.iter().filter(|(e, _)| *e == QueueExit::Answered).map(|(_, w)| *w).collect();
        let within = answered.iter().filter(|w| **w <= u64::from(threshold) * 1000).count();
        let counted = queued.len() - short;
        let div = |n: f64, d: usize| (d > 0).then(|| n / d as f64);
        prop_assert!(same(k.service_level, div(within as f64, counted)));
        prop_assert!(same(k.abandonment_rate, div(long as f64, counted)));
        prop_assert!(same(k.asa_seconds, div(answered.iter().sum::<u64>() as f64 / 1000.0, answered.len())));
        let handled: Vec<u64> = facts.iter().filter_map(|(_, f)| match f {
            Fact::Handled(t, h, w) => Some(t + h + w),
            _ => None,
        }).collect();
        prop_assert!(same(k.aht_seconds, div(handled.iter().sum::<u64>() as f64 / 1000.0, handled.len())));
        let time = |want: AgentActivity| facts.iter().filter_map(|(_, f)| match f {
            Fact::Agent(a, ms) if *a == want => Some(*ms),
            _ => None,
        }).sum::<u64>();
        let (busy, idle, away) =
            (time(AgentActivity::Handling), time(AgentActivity::Idle), time(AgentActivity::Unavailable));
        let ratio = |n: u64, d: u64| (d > 0).then(|| n as f64 / d as f64);
        prop_assert!(same(k.occupancy, ratio(busy, busy + idle)));
        prop_assert!(same(k.utilization, ratio(busy, busy + idle + away)));
        let longest = queued.iter().map(|(_, w)| *w).max().map(|ms| ms as f64 / 1000.0);
        prop_assert!(same(k.longest_wait_seconds, longest));
        let firsts = facts.iter().filter(|(_, f)| matches!(f, Fact::First)).count();
        let repeats = facts.iter().filter(|(_, f)| matches!(f, Fact::Repeated)).count().min(firsts);
        prop_assert!(same(k.fcr, div((firsts - repeats) as f64, firsts)));
        if let Some(sl) = k.service_level {
            prop_assert!((0.0..=1.0).contains(&sl));
        }
    }
}
