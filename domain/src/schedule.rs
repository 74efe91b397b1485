//! Business hours: weekly opening ranges in an IANA time zone, with holidays. Shared by teams,
//! queues, routing rules (`business_hours_only`, `active_hours`) and the IVR's `in_hours(...)`.
//!
//! Times are local wall-clock times, so a DST change moves the UTC instants with it: 09:00 is
//! 09:00 in Prague in both January and July. A range may run past midnight (`22:00`–`06:00`):
//! it belongs to the day it opens on.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::values::InvalidValue;

/// One opening range on a day, local time. `close` ≤ `open` means it closes the next day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OpenRange {
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "09:00"))]
    pub open: NaiveTime,
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "17:00"))]
    pub close: NaiveTime,
}

/// `{"timezone": "Europe/Prague", "hours": {"mon": [{"open": "09:00", "close": "17:00"}], …},
/// "holidays": ["2026-12-24"]}`. Days absent from `hours` are closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BusinessHours {
    pub timezone: String,
    /// Keys `mon` … `sun`.
    #[serde(default)]
    pub hours: BTreeMap<String, Vec<OpenRange>>,
    /// Local dates on which nothing opens (a range that opened the day before may still run
    /// into a holiday's early hours).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub holidays: Vec<NaiveDate>,
}

pub const DAY_KEYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day_key(day: Weekday) -> &'static str {
    DAY_KEYS[day.num_days_from_monday() as usize]
}

impl BusinessHours {
    /// Checks the zone, the day keys and that no two ranges of a day overlap; `field` prefixes
    /// the field names of the problems (`business_hours.hours.mon[1]`).
    pub fn validate(&self, field: &str) -> Result<(), Vec<InvalidValue>> {
        let mut problems = Vec::new();
        if self.timezone.parse::<Tz>().is_err() {
            problems.push(
                InvalidValue::new("timezone", "invalid_timezone", "not an IANA time zone").within(field),
            );
        }
        for (day, ranges) in &self.hours {
            if !DAY_KEYS.contains(&day.as_str()) {
                problems.push(
                    InvalidValue::new(format!("hours.{day}"), "invalid_day", "use mon, tue, … sun")
                        .within(field),
                );
                continue;
            }
            // Minutes from the day's midnight; an overnight range ends after 1440.
            let mut spans: Vec<(u32, u32, usize)> = ranges
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let (o, c) = (minutes(r.open), minutes(r.close));
                    (o, if c <= o { c + 1440 } else { c }, i)
                })
                .collect();
            spans.sort_unstable();
            for pair in spans.windows(2) {
                if pair[1].0 < pair[0].1 {
                    problems.push(
                        InvalidValue::new(
                            format!("hours.{day}[{}]", pair[1].2),
                            "overlapping_hours",
                            "overlaps another range of the same day",
                        )
                        .within(field),
                    );
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// The zone; UTC if it does not parse (validated input never gets here).
    pub fn zone(&self) -> Tz {
        self.timezone.parse().unwrap_or(Tz::UTC)
    }

    /// Whether `at` falls inside an opening range.
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.zone()).naive_local();
        let (date, time) = (local.date(), local.time());
        let today = self.ranges_on(date).iter().any(|r| {
            let overnight = r.close <= r.open;
            time >= r.open && (overnight || time < r.close)
        });
        if today {
            return true;
        }
        // A range that opened yesterday and runs past midnight.
        date.pred_opt().is_some_and(|yesterday| {
            self.ranges_on(yesterday).iter().any(|r| r.close <= r.open && time < r.close)
        })
    }

    fn ranges_on(&self, date: NaiveDate) -> &[OpenRange] {
        if self.holidays.contains(&date) {
            return &[];
        }
        self.hours.get(day_key(date.weekday())).map(Vec::as_slice).unwrap_or(&[])
    }
}

fn minutes(t: NaiveTime) -> u32 {
    use chrono::Timelike;
    t.hour() * 60 + t.minute()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn hours(json: serde_json::Value) -> BusinessHours {
        serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"))
    }

    fn prague_weekdays() -> BusinessHours {
        let day = serde_json::json!([{"open": "09:00", "close": "17:00"}]);
        hours(serde_json::json!({
            "timezone": "Europe/Prague",
            "hours": {"mon": day, "tue": day, "wed": day, "thu": day, "fri": day},
            "holidays": ["2026-12-24"]
        }))
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).single().unwrap_or_default()
    }

    #[test]
    fn local_hours_follow_daylight_saving_time() {
        let h = prague_weekdays();
        // Friday 27 March 2026 is CET (UTC+1): 09:00 local is 08:00 UTC.
        assert!(!h.is_open(utc(2026, 3, 27, 7, 59)));
        assert!(h.is_open(utc(2026, 3, 27, 8, 0)));
        // Monday 30 March 2026 is CEST (UTC+2) after the change on the 29th: 09:00 is 07:00 UTC.
        assert!(h.is_open(utc(2026, 3, 30, 7, 0)));
        assert!(!h.is_open(utc(2026, 3, 30, 6, 59)));
        assert!(!h.is_open(utc(2026, 3, 30, 15, 0))); // 17:00 local: closed
    }

    #[test]
    fn holidays_and_closed_days_are_closed() {
        let h = prague_weekdays();
        assert!(!h.is_open(utc(2026, 12, 24, 10, 0))); // Thursday, a holiday
        assert!(h.is_open(utc(2026, 12, 23, 10, 0)));
        assert!(!h.is_open(utc(2026, 12, 26, 10, 0))); // Saturday
    }

    #[test]
    fn an_overnight_range_runs_into_the_next_day() {
        let h = hours(serde_json::json!({
            "timezone": "UTC", "hours": {"fri": [{"open": "22:00", "close": "06:00"}]}
        }));
        assert!(h.is_open(utc(2026, 12, 4, 23, 0))); // Friday night
        assert!(h.is_open(utc(2026, 12, 5, 5, 59))); // Saturday early
        assert!(!h.is_open(utc(2026, 12, 5, 6, 0)));
        assert!(!h.is_open(utc(2026, 12, 4, 21, 59)));
    }

    #[test]
    fn validation_names_bad_zones_days_and_overlaps() {
        let h = hours(serde_json::json!({
            "timezone": "Mars/Olympus",
            "hours": {
                "mon": [{"open": "09:00", "close": "12:00"}, {"open": "11:00", "close": "13:00"}],
                "funday": []
            }
        }));
        let problems = h.validate("business_hours").err().unwrap_or_default();
        let codes: Vec<_> = problems.iter().map(|p| (p.field.to_string(), p.code)).collect();
        assert!(codes.contains(&("business_hours.timezone".into(), "invalid_timezone")), "{codes:?}");
        assert!(codes.contains(&("business_hours.hours.funday".into(), "invalid_day")), "{codes:?}");
        assert!(codes.contains(&("business_hours.hours.mon[1]".into(), "overlapping_hours")), "{codes:?}");
        assert!(prague_weekdays().validate("business_hours").is_ok());
    }
}
