//! When a recurring invoice falls due (contract section 7).
//!
//! Every occurrence is computed from the schedule's start, never from the
//! previous occurrence, so a month-end schedule does not drift (31 Jan,
//! 28 Feb, 31 Mar, …, not 31 Jan, 28 Feb, 28 Mar). A day that a month lacks
//! is that month's last day: monthly on the 31st is the last day of every
//! month, and a schedule on 29 February falls on the 29th in leap years only
//! (the 28th otherwise). Occurrences are calendar dates in the
//! organization's time zone, so daylight-saving changes cannot move them;
//! which date is *today* there is the caller's to say.

use chrono::{Datelike, Days, Months, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::ledger::{LedgerError, LedgerResult};

/// How often a schedule repeats, before its interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Frequency {
    /// Every `interval` weeks, on the start's weekday.
    Weekly,
    /// Every `interval` months, on the start's day of the month.
    Monthly,
    /// Every `3 × interval` months.
    Quarterly,
    /// Every `12 × interval` months.
    Yearly,
}

/// Most repetitions a schedule may have, and the largest interval: both far
/// beyond any real use, and small enough that no date arithmetic overflows
/// before year 9999.
pub const MAX_COUNT: u32 = 10_000;
/// See [`MAX_COUNT`].
pub const MAX_INTERVAL: u32 = 120;

/// A checked schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    frequency: Frequency,
    interval: u32,
    start: NaiveDate,
    end: Option<NaiveDate>,
    count: Option<u32>,
}

impl Schedule {
    /// A schedule from `start`, every `interval` periods of `frequency`,
    /// until `end` (inclusive) or for `count` occurrences, whichever comes
    /// first (or forever). `422 INVALID_SCHEDULE` for an interval outside
    /// 1 to 120, a count outside 1 to 10,000 or an end before the start.
    pub fn new(
        frequency: Frequency,
        interval: u32,
        start: NaiveDate,
        end: Option<NaiveDate>,
        count: Option<u32>,
    ) -> LedgerResult<Self> {
        let invalid = |message: String| LedgerError::invalid("INVALID_SCHEDULE", message);
        if !(1..=MAX_INTERVAL).contains(&interval) {
            return Err(invalid(format!(
                "The interval is a whole number from 1 to {MAX_INTERVAL}."
            )));
        }
        if count.is_some_and(|c| !(1..=MAX_COUNT).contains(&c)) {
            return Err(invalid(format!(
                "The count is a whole number from 1 to {MAX_COUNT}, or null for no limit."
            )));
        }
        if end.is_some_and(|end| end < start) {
            return Err(invalid("The end date is before the start date.".to_owned()));
        }
        Ok(Schedule {
            frequency,
            interval,
            start,
            end,
            count,
        })
    }

    /// The `n`-th occurrence (the start is the 0th), or `None` past the end,
    /// past the count, or past the last date the calendar holds.
    pub fn occurrence(&self, n: u32) -> Option<NaiveDate> {
        if self.count.is_some_and(|count| n >= count) {
            return None;
        }
        let steps = n.checked_mul(self.interval)?;
        let date = match self.frequency {
            Frequency::Weekly => self
                .start
                .checked_add_days(Days::new(u64::from(steps) * 7))?,
            Frequency::Monthly => self.months_later(steps)?,
            Frequency::Quarterly => self.months_later(steps.checked_mul(3)?)?,
            Frequency::Yearly => self.months_later(steps.checked_mul(12)?)?,
        };
        match self.end {
            Some(end) if date > end => None,
            _ => Some(date),
        }
    }

    /// The start's day of the month, `months` later, or the last day of
    /// that month when it is shorter. (`checked_add_months` clamps the same
    /// way, from the start itself: the anchor is never the previous date.)
    fn months_later(&self, months: u32) -> Option<NaiveDate> {
        self.start.checked_add_months(Months::new(months))
    }

    /// The occurrences from the `from`-th on that fall on or before `today`,
    /// with their indexes: what a catch-up after downtime generates.
    pub fn due(&self, from: u32, today: NaiveDate) -> impl Iterator<Item = (u32, NaiveDate)> + '_ {
        (from..)
            .map_while(move |n| self.occurrence(n).map(|date| (n, date)))
            .take_while(move |(_, date)| *date <= today)
    }

    /// The first `count` occurrences after `after` (exclusive).
    pub fn preview(&self, after: NaiveDate, count: usize) -> Vec<NaiveDate> {
        (0..)
            .map_while(|n| self.occurrence(n))
            .skip_while(|date| *date <= after)
            .take(count)
            .collect()
    }
}

/// Whether `year` has a 29 February.
pub fn is_leap_year(year: i32) -> bool {
    NaiveDate::from_ymd_opt(year, 2, 29).is_some()
}

/// The last day of `date`'s month.
pub fn month_end(date: NaiveDate) -> NaiveDate {
    let first = date.with_day(1).expect("every month has a first day");
    first
        .checked_add_months(Months::new(1))
        .and_then(|next| next.pred_opt())
        .unwrap_or(NaiveDate::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn dates(schedule: &Schedule, n: u32) -> Vec<String> {
        (0..n)
            .filter_map(|i| schedule.occurrence(i))
            .map(|d| d.to_string())
            .collect()
    }

    #[test]
    fn month_ends_are_month_ends_and_never_drift() {
        let s = Schedule::new(Frequency::Monthly, 1, date("2026-01-31"), None, None).unwrap();
        assert_eq!(
            dates(&s, 6),
            [
                "2026-01-31",
                "2026-02-28",
                "2026-03-31",
                "2026-04-30",
                "2026-05-31",
                "2026-06-30"
            ]
        );
        let leap = Schedule::new(Frequency::Monthly, 1, date("2028-01-30"), None, None).unwrap();
        assert_eq!(dates(&leap, 3), ["2028-01-30", "2028-02-29", "2028-03-30"]);
    }

    #[test]
    fn the_29th_of_february_only_in_leap_years() {
        let s = Schedule::new(Frequency::Yearly, 1, date("2024-02-29"), None, None).unwrap();
        assert_eq!(
            dates(&s, 5),
            [
                "2024-02-29",
                "2025-02-28",
                "2026-02-28",
                "2027-02-28",
                "2028-02-29"
            ]
        );
        assert!(is_leap_year(2000) && !is_leap_year(1900) && is_leap_year(2028));
    }

    #[test]
    fn weeks_quarters_intervals_ends_and_counts() {
        let weekly =
            Schedule::new(Frequency::Weekly, 2, date("2026-03-02"), None, Some(3)).unwrap();
        assert_eq!(
            dates(&weekly, 10),
            ["2026-03-02", "2026-03-16", "2026-03-30"]
        );
        let quarterly = Schedule::new(
            Frequency::Quarterly,
            1,
            date("2026-01-31"),
            Some(date("2026-10-31")),
            None,
        )
        .unwrap();
        assert_eq!(
            dates(&quarterly, 10),
            ["2026-01-31", "2026-04-30", "2026-07-31", "2026-10-31"]
        );
        for (interval, count, end) in [
            (0, None, None),
            (MAX_INTERVAL + 1, None, None),
            (1, Some(0), None),
            (1, None, Some(date("2025-12-31"))),
        ] {
            let refused =
                Schedule::new(Frequency::Monthly, interval, date("2026-01-01"), end, count);
            assert!(matches!(
                refused,
                Err(LedgerError::Invalid {
                    code: "INVALID_SCHEDULE",
                    ..
                })
            ));
        }
    }

    #[test]
    fn catch_up_and_preview() {
        let s = Schedule::new(Frequency::Monthly, 1, date("2025-01-15"), None, None).unwrap();
        let due: Vec<(u32, NaiveDate)> = s.due(0, date("2025-12-01")).collect();
        assert_eq!(due.len(), 11, "January to November");
        assert_eq!(due[10], (10, date("2025-11-15")));
        // Catching up from where the last run stopped generates the rest once.
        let rest: Vec<u32> = s.due(11, date("2026-02-15")).map(|(n, _)| n).collect();
        assert_eq!(rest, [11, 12, 13]);
        assert_eq!(
            s.preview(date("2026-02-15"), 2),
            [date("2026-03-15"), date("2026-04-15")]
        );
        // Past the calendar's last date there are no more occurrences, and
        // no arithmetic overflows on the way.
        for frequency in [Frequency::Weekly, Frequency::Monthly, Frequency::Yearly] {
            let s = Schedule::new(frequency, MAX_INTERVAL, date("2026-01-01"), None, None).unwrap();
            assert_eq!(s.occurrence(u32::MAX), None);
        }
    }

    proptest! {
        /// Over any start and monthly-based frequency: every occurrence is
        /// the start's day, or the month's last day when the month is
        /// shorter; occurrences strictly increase; none is past the end.
        #[test]
        fn occurrences_follow_the_start(
            days in 0u32..(365 * 60),
            frequency in prop_oneof![
                Just(Frequency::Monthly),
                Just(Frequency::Quarterly),
                Just(Frequency::Yearly),
            ],
            interval in 1u32..=12,
            n in 0u32..200,
        ) {
            let start = date("2000-01-01") + Days::new(u64::from(days));
            let s = Schedule::new(frequency, interval, start, None, None).unwrap();
            let (a, b) = (s.occurrence(n).unwrap(), s.occurrence(n + 1).unwrap());
            prop_assert!(a < b);
            let expected_day = start.day().min(month_end(a).day());
            prop_assert_eq!(a.day(), expected_day);
            let months = match frequency {
                Frequency::Monthly => interval,
                Frequency::Quarterly => 3 * interval,
                _ => 12 * interval,
            };
            let elapsed = (a.year() - start.year()) * 12 + a.month() as i32 - start.month() as i32;
            prop_assert_eq!(elapsed, (n * months) as i32);
        }

        #[test]
        fn weekly_keeps_the_weekday(days in 0u32..(365 * 60), interval in 1u32..=8, n in 0u32..500) {
            let start = date("2000-01-01") + Days::new(u64::from(days));
            let s = Schedule::new(Frequency::Weekly, interval, start, None, None).unwrap();
            let d = s.occurrence(n).unwrap();
            prop_assert_eq!(d.weekday(), start.weekday());
            prop_assert_eq!((d - start).num_days(), i64::from(n * interval * 7));
        }
    }
}
