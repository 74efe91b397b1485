//! Time buckets: minutes in UTC, hours and longer in the tenant's time zone.

use chrono::{DateTime, Datelike, Duration, DurationRound, NaiveDate, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// A bucket size (the seed's granularities).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    /// A UTC minute (every zone's offset is whole minutes, so minutes nest in local hours).
    Minute,
    /// A local hour (in a +05:30 zone it starts at :30 UTC; in a fall-back night the two
    /// 01:00 hours are two buckets).
    Hour,
    /// From local midnight (or the first local time of the day when midnight is skipped).
    Day,
    /// ISO week: from Monday's local midnight.
    Week,
    /// From the 1st's local midnight.
    Month,
    /// From January, April, July or October 1st.
    Quarter,
    /// From January 1st.
    Year,
}

impl Granularity {
    /// Every granularity, finest first.
    pub const ALL: [Granularity; 7] =
        [Self::Minute, Self::Hour, Self::Day, Self::Week, Self::Month, Self::Quarter, Self::Year];

    /// The stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
            Self::Quarter => "quarter",
            Self::Year => "year",
        }
    }

    /// The granularity of that wire name.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == raw)
    }

    /// The start of the bucket holding `at`.
    pub fn bucket_start(self, at: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        let minute = at.duration_trunc(Duration::minutes(1)).unwrap_or(at);
        let local = minute.with_timezone(&tz);
        let date = local.date_naive();
        match self {
            Self::Minute => minute,
            Self::Hour => minute - Duration::minutes(i64::from(local.minute())),
            Self::Day => local_start(date, tz),
            Self::Week => {
                local_start(date - Duration::days(i64::from(date.weekday().num_days_from_monday())), tz)
            }
            Self::Month => local_start(first_of(date.year(), date.month()), tz),
            Self::Quarter => local_start(first_of(date.year(), (date.month() - 1) / 3 * 3 + 1), tz),
            Self::Year => local_start(first_of(date.year(), 1), tz),
        }
    }

    /// The start of the bucket after the one holding `at` (the end of `at`'s bucket).
    pub fn next_start(self, at: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        let start = self.bucket_start(at, tz);
        match self {
            Self::Minute => start + Duration::minutes(1),
            // Local hours are whole UTC hours apart (offsets change by whole hours or at hour
            // boundaries in practice); re-truncate to stay on the local grid either way.
            Self::Hour => {
                self.bucket_start(start + Duration::minutes(60), tz).max(start + Duration::minutes(1))
            }
            _ => {
                let date = start.with_timezone(&tz).date_naive();
                let next = match self {
                    Self::Day => date + Duration::days(1),
                    Self::Week => date + Duration::days(7),
                    Self::Month => add_months(date, 1),
                    Self::Quarter => add_months(date, 3),
                    _ => add_months(date, 12),
                };
                local_start(next, tz)
            }
        }
    }

    /// Whether every bucket of `finer` lies inside one bucket of `self`, so that `self`'s
    /// buckets can be rolled up from `finer`'s (weeks do not nest in months).
    pub fn rolls_up_from(self, finer: Granularity) -> bool {
        use Granularity as G;
        match (finer, self) {
            (a, b) if a == b => true,
            (G::Minute, _) => true,
            (G::Hour, G::Day | G::Week | G::Month | G::Quarter | G::Year) => true,
            (G::Day, G::Week | G::Month | G::Quarter | G::Year) => true,
            (G::Month, G::Quarter | G::Year) => true,
            (G::Quarter, G::Year) => true,
            _ => false,
        }
    }
}

fn first_of(year: i32, month: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, 1).unwrap_or(NaiveDate::MIN)
}

fn add_months(date: NaiveDate, months: u32) -> NaiveDate {
    let index = date.year() * 12 + date.month0() as i32 + months as i32;
    first_of(index.div_euclid(12), index.rem_euclid(12) as u32 + 1)
}

/// The first instant of a local date: midnight, or the first minute after a gap (a zone that
/// skips midnight), or the next existing date's start (Samoa skipped 2011-12-30).
fn local_start(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let mut t = date.and_time(NaiveTime::MIN);
    for _ in 0..(2 * 24 * 60) {
        if let Some(found) = tz.from_local_datetime(&t).earliest() {
            return found.with_timezone(&Utc);
        }
        t += Duration::minutes(1);
    }
    Utc.from_utc_datetime(&date.and_time(NaiveTime::MIN))
}

/// The milliseconds of `[start, end)` in each UTC minute it touches, in order (for agent state
/// time); empty when `end <= start`.
pub fn split_by_minute(start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<(DateTime<Utc>, u64)> {
    let mut out = Vec::new();
    let mut from = start;
    while from < end {
        let minute = from.duration_trunc(Duration::minutes(1)).unwrap_or(from);
        let next = (minute + Duration::minutes(1)).min(end);
        out.push((minute, super::millis_between(from, next)));
        from = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).single().expect("valid time")
    }

    #[test]
    fn minutes_and_hours_follow_the_local_grid() {
        let at = utc(2026, 3, 10, 9, 47, 31);
        assert_eq!(Granularity::Minute.bucket_start(at, Tz::UTC), utc(2026, 3, 10, 9, 47, 0));
        assert_eq!(Granularity::Hour.bucket_start(at, Tz::UTC), utc(2026, 3, 10, 9, 0, 0));
        // India is UTC+05:30: its hours start at :30 UTC.
        assert_eq!(Granularity::Hour.bucket_start(at, Tz::Asia__Kolkata), utc(2026, 3, 10, 9, 30, 0));
        assert_eq!(Granularity::Hour.next_start(at, Tz::Asia__Kolkata), utc(2026, 3, 10, 10, 30, 0));
    }

    #[test]
    fn days_weeks_months_start_at_local_midnight() {
        let prague = Tz::Europe__Prague;
        // 2026-03-10 00:30 in Prague (CET, +01:00) is 2026-03-09 23:30 UTC.
        let at = utc(2026, 3, 9, 23, 30, 0);
        assert_eq!(Granularity::Day.bucket_start(at, prague), utc(2026, 3, 9, 23, 0, 0));
        assert_eq!(Granularity::Day.bucket_start(at, Tz::UTC), utc(2026, 3, 9, 0, 0, 0));
        // 2026-03-10 is a Tuesday: the week starts Monday the 9th.
        assert_eq!(Granularity::Week.bucket_start(at, prague), utc(2026, 3, 8, 23, 0, 0));
        assert_eq!(Granularity::Month.bucket_start(at, prague), utc(2026, 2, 28, 23, 0, 0));
        assert_eq!(Granularity::Quarter.bucket_start(at, prague), utc(2025, 12, 31, 23, 0, 0));
        assert_eq!(Granularity::Year.bucket_start(at, prague), utc(2025, 12, 31, 23, 0, 0));
        // March has a DST change in Prague (29th): April starts at +02:00.
        assert_eq!(Granularity::Month.next_start(at, prague), utc(2026, 3, 31, 22, 0, 0));
        assert_eq!(Granularity::Quarter.next_start(at, prague), utc(2026, 3, 31, 22, 0, 0));
        assert_eq!(Granularity::Year.next_start(at, prague), utc(2026, 12, 31, 23, 0, 0));
    }

    #[test]
    fn a_dst_day_is_23_or_25_hours_and_its_hours_stay_distinct() {
        let prague = Tz::Europe__Prague;
        let spring = utc(2026, 3, 29, 12, 0, 0);
        let len = Granularity::Day.next_start(spring, prague) - Granularity::Day.bucket_start(spring, prague);
        assert_eq!(len, Duration::hours(23));
        let autumn = utc(2026, 10, 25, 12, 0, 0);
        let len = Granularity::Day.next_start(autumn, prague) - Granularity::Day.bucket_start(autumn, prague);
        assert_eq!(len, Duration::hours(25));
        // 02:30 CEST (00:30 UTC) and 02:30 CET (01:30 UTC) are in different hour buckets.
        let first = Granularity::Hour.bucket_start(utc(2026, 10, 25, 0, 30, 0), prague);
        let second = Granularity::Hour.bucket_start(utc(2026, 10, 25, 1, 30, 0), prague);
        assert_eq!((first, second), (utc(2026, 10, 25, 0, 0, 0), utc(2026, 10, 25, 1, 0, 0)));
    }

    #[test]
    fn a_skipped_local_day_is_skipped() {
        // Samoa moved across the date line: 2011-12-30 never happened in Apia.
        let apia = Tz::Pacific__Apia;
        let dec_29_noon = utc(2011, 12, 29, 22, 0, 0);
        let next = Granularity::Day.next_start(dec_29_noon, apia);
        assert_eq!(
            next.with_timezone(&apia).date_naive(),
            NaiveDate::from_ymd_opt(2011, 12, 31).expect("date")
        );
    }

    #[test]
    fn nesting_is_what_calendars_allow() {
        assert!(Granularity::Month.rolls_up_from(Granularity::Day));
        assert!(Granularity::Year.rolls_up_from(Granularity::Quarter));
        assert!(!Granularity::Month.rolls_up_from(Granularity::Week));
        assert!(!Granularity::Day.rolls_up_from(Granularity::Month));
        for g in Granularity::ALL {
            assert_eq!(Granularity::parse(g.as_str()), Some(g));
            assert!(g.rolls_up_from(Granularity::Minute));
        }
    }

    #[test]
    fn state_time_is_split_by_minute() {
        let parts = split_by_minute(utc(2026, 1, 1, 9, 0, 50), utc(2026, 1, 1, 9, 2, 5));
        assert_eq!(
            parts,
            vec![
                (utc(2026, 1, 1, 9, 0, 0), 10_000),
                (utc(2026, 1, 1, 9, 1, 0), 60_000),
                (utc(2026, 1, 1, 9, 2, 0), 5_000),
            ]
        );
        assert!(split_by_minute(utc(2026, 1, 1, 9, 0, 0), utc(2026, 1, 1, 9, 0, 0)).is_empty());
    }
}
