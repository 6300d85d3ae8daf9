//! Business calendars: which instants are working time, in a time zone with
//! weekly hours and holidays, and how much working time lies between two
//! instants. Pure: every instant is a parameter.
//!
//! A moment is working time when its wall-clock time in the calendar's zone
//! falls in that weekday's hours and its date is not a holiday. Counting works
//! on stretches where the zone's UTC offset is constant: within one, wall-clock
//! time is the instant plus the offset, so DST changes need no special case
//! (a skipped hour holds no working time, a repeated hour counts twice).

use std::collections::BTreeSet;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::window::Millis;

const MINUTE: Millis = 60_000;
const DAY: Millis = 86_400_000;
/// Days of history each SLA keeps, today included: a year and a month, so
/// last year's same month is still there in reports.
pub const HISTORY_DAYS: i32 = 400;

/// How far [`Calendar::add_working`] looks for enough working time.
const SEARCH_LIMIT: Millis = 10 * 366 * DAY;

/// One day's working hours: `[start, end)` in minutes after midnight,
/// sorted and not overlapping; `end` may be 1440 (24:00).
pub type DayHours = Vec<(u32, u32)>;

/// Business hours in one time zone: weekly working ranges and holidays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    /// The calendar's name in the config.
    pub name: String,
    /// The IANA zone its hours and holidays are in.
    pub tz: TimeZone,
    /// Monday first.
    pub week: [DayHours; 7],
    /// Dates with no working time, in that zone.
    pub holidays: BTreeSet<Date>,
}

impl Calendar {
    /// Round the clock, every day, in UTC: the clock of an SLA without a calendar.
    pub fn always() -> Calendar {
        Calendar {
            name: String::new(),
            tz: TimeZone::UTC,
            week: std::array::from_fn(|_| vec![(0, 1440)]),
            holidays: BTreeSet::new(),
        }
    }

    /// Working milliseconds in `[from, to)`; 0 if `to <= from`.
    pub fn working_between(&self, from: Millis, to: Millis) -> Millis {
        let mut total = 0;
        for (start, end, offset) in self.stretches(from, to) {
            total += self.local_working(start + offset, end + offset);
        }
        total
    }

    /// The instant at which `work` milliseconds of working time have passed
    /// since `from`; `None` if the calendar has too little working time in
    /// the next ten years.
    pub fn add_working(&self, from: Millis, work: Millis) -> Option<Millis> {
        let mut left = work.max(0);
        for (start, end, offset) in self.stretches(from, from.saturating_add(SEARCH_LIMIT)) {
            let (ls, le) = (start + offset, end + offset);
            let available = self.local_working(ls, le);
            if available < left {
                left -= available;
                continue;
            }
            return self.local_reach(ls, le, left).map(|local| local - offset);
        }
        None
    }

    /// The date `at` falls on in the calendar's zone.
    pub fn date_of(&self, at: Millis) -> Date {
        timestamp(at).to_zoned(self.tz.clone()).date()
    }

    /// The first instant of `date` in the zone (midnight, or the first
    /// moment after it where a DST change skips midnight).
    pub fn day_start(&self, date: Date) -> Millis {
        date.to_zoned(self.tz.clone())
            .map(|z| z.timestamp().as_millisecond())
            .unwrap_or(Millis::MIN)
    }

    /// The oldest date the history keeps at `now`: [`HISTORY_DAYS`] days
    /// back, today included.
    pub fn oldest_history_day(&self, now: Millis) -> Date {
        let today = self.date_of(now);
        today
            .checked_sub(jiff::Span::new().days(HISTORY_DAYS - 1))
            .unwrap_or(today)
    }

    /// Whether a delivery completed at `at` is on a day the history still
    /// keeps at `now`.
    pub fn in_history(&self, at: Millis, now: Millis) -> bool {
        self.date_of(at) >= self.oldest_history_day(now)
    }

    /// Midnight starting the calendar month that holds `at`, in the zone.
    pub fn month_start(&self, at: Millis) -> Millis {
        let zoned = timestamp(at).to_zoned(self.tz.clone());
        let first = zoned.date().first_of_month();
        first
            .to_zoned(self.tz.clone())
            .map(|z| z.timestamp().as_millisecond())
            .unwrap_or(at)
    }

    /// Midnight starting the month after the one that holds `at`.
    pub fn next_month_start(&self, at: Millis) -> Millis {
        let zoned = timestamp(at).to_zoned(self.tz.clone());
        let next = zoned.date().last_of_month().tomorrow().ok();
        next.and_then(|d| d.to_zoned(self.tz.clone()).ok())
            .map(|z| z.timestamp().as_millisecond())
            .unwrap_or(Millis::MAX)
    }

    /// `[from, to)` cut where the zone's offset changes: (start, end, offset ms).
    fn stretches(&self, from: Millis, to: Millis) -> Vec<(Millis, Millis, Millis)> {
        let mut out = Vec::new();
        let mut start = from;
        while start < to {
            let offset = Millis::from(self.tz.to_offset(timestamp(start)).seconds()) * 1000;
            let next = self
                .tz
                .following(timestamp(start))
                .next()
                .map(|t| t.timestamp().as_millisecond())
                .filter(|&t| t > start)
                .unwrap_or(Millis::MAX);
            let end = next.min(to);
            out.push((start, end, offset));
            start = end;
        }
        out
    }

    /// Working milliseconds in `[from, to)` of wall-clock time, read as if
    /// every day were 24 hours long.
    fn local_working(&self, from: Millis, to: Millis) -> Millis {
        let mut total = 0;
        let mut day = from.div_euclid(DAY);
        while day * DAY < to {
            for (a, b) in self.hours_of(day) {
                let (a, b) = (day * DAY + a, day * DAY + b);
                total += (b.min(to) - a.max(from)).max(0);
            }
            day += 1;
        }
        total
    }

    /// The wall-clock moment in `[from, to]` at which `work` ms of working
    /// time since `from` have passed, if it comes by `to`.
    fn local_reach(&self, from: Millis, to: Millis, mut work: Millis) -> Option<Millis> {
        if work == 0 {
            return Some(from);
        }
        let mut day = from.div_euclid(DAY);
        while day * DAY < to {
            for (a, b) in self.hours_of(day) {
                let (a, b) = ((day * DAY + a).max(from), (day * DAY + b).min(to));
                if b <= a {
                    continue;
                }
                if b - a >= work {
                    return Some(a + work);
                }
                work -= b - a;
            }
            day += 1;
        }
        None
    }

    /// Working intervals of the wall-clock day `day` (days since 1970-01-01),
    /// in ms after its midnight.
    fn hours_of(&self, day: Millis) -> impl Iterator<Item = (Millis, Millis)> + '_ {
        let date = Date::constant(1970, 1, 1)
            .checked_add(jiff::Span::new().days(day))
            .ok();
        let hours: &[(u32, u32)] = match date {
            Some(d) if !self.holidays.contains(&d) => {
                &self.week[usize::from(d.weekday().to_monday_zero_offset() as u8)]
            }
            _ => &[],
        };
        hours
            .iter()
            .map(|&(a, b)| (Millis::from(a) * MINUTE, Millis::from(b) * MINUTE))
    }
}

fn timestamp(ms: Millis) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn office(tz: &str) -> Calendar {
        let day = vec![(9 * 60, 17 * 60)];
        Calendar {
            name: "office".into(),
            tz: TimeZone::get(tz).unwrap(),
            week: [
                day.clone(),
                day.clone(),
                day.clone(),
                day.clone(),
                day,
                vec![],
                vec![],
            ],
            holidays: [Date::constant(2026, 12, 25)].into(),
        }
    }

    fn at(s: &str) -> Millis {
        s.parse::<jiff::Zoned>()
            .unwrap()
            .timestamp()
            .as_millisecond()
    }

    const HOUR: Millis = 3_600_000;

    #[test]
    fn a_ticket_opened_friday_afternoon_runs_into_monday() {
        let c = office("Europe/Berlin");
        // Friday 15:00 to Monday 11:00: 2h Friday, 2h Monday.
        let from = at("2026-11-20T15:00[Europe/Berlin]");
        let to = at("2026-11-23T11:00[Europe/Berlin]");
        assert_eq!(c.working_between(from, to), 4 * HOUR);
        assert_eq!(c.add_working(from, 4 * HOUR), Some(to));
        // 2h exactly ends Friday at 17:00.
        assert_eq!(
            c.add_working(from, 2 * HOUR),
            Some(at("2026-11-20T17:00[Europe/Berlin]"))
        );
        // Christmas is a holiday.
        let eve = at("2026-12-24T09:00[Europe/Berlin]");
        assert_eq!(
            c.working_between(eve, at("2026-12-28T09:00[Europe/Berlin]")),
            8 * HOUR
        );
    }

    #[test]
    fn dst_days_count_real_time() {
        let mut c = office("Europe/Berlin");
        c.week = std::array::from_fn(|_| vec![(60, 4 * 60)]);
        // Clocks go back at 03:00 on 2026-10-25: 01:00-04:00 lasts 4 hours.
        let day = at("2026-10-25T00:00[Europe/Berlin]");
        assert_eq!(c.working_between(day, day + DAY + HOUR), 4 * HOUR);
        // Forward at 02:00 on 2026-03-29: 01:00-04:00 lasts 2 hours.
        let day = at("2026-03-29T00:00[Europe/Berlin]");
        assert_eq!(c.working_between(day, day + DAY - HOUR), 2 * HOUR);
    }

    #[test]
    fn months_start_at_local_midnight() {
        let c = office("America/New_York");
        let mid = at("2026-03-15T12:00[America/New_York]");
        assert_eq!(c.month_start(mid), at("2026-03-01T00:00[America/New_York]"));
        assert_eq!(
            c.next_month_start(mid),
            at("2026-04-01T00:00[America/New_York]")
        );
    }

    #[test]
    fn always_is_plain_elapsed_time() {
        let c = Calendar::always();
        assert_eq!(c.working_between(1_000, 1_000 + 3 * DAY), 3 * DAY);
        assert_eq!(c.add_working(5, 10), Some(15));
        assert_eq!(c.working_between(10, 5), 0);
    }

    mod against_a_minute_by_minute_reference {
        use proptest::prelude::*;

        use super::*;

        /// Counts working minutes one at a time from each minute's wall clock.
        fn is_working(c: &Calendar, minute_start: Millis) -> bool {
            let z = timestamp(minute_start).to_zoned(c.tz.clone());
            if c.holidays.contains(&z.date()) {
                return false;
            }
            let m = u32::try_from(z.hour()).unwrap() * 60 + u32::try_from(z.minute()).unwrap();
            c.week[usize::from(z.weekday().to_monday_zero_offset() as u8)]
                .iter()
                .any(|&(a, b)| a <= m && m < b)
        }

        fn calendar() -> impl Strategy<Value = Calendar> {
            let zones = prop::sample::select(vec![
                "Europe/Berlin",
                "America/New_York",
                "Australia/Lord_Howe",
                "Asia/Kolkata",
                "UTC",
            ]);
            // Up to two intervals a day, on 15-minute marks.
            let day = prop::collection::vec((0u32..96, 1u32..40), 0..3).prop_map(|v| {
                let mut hours: DayHours = Vec::new();
                let mut from = 0;
                for (gap, len) in v {
                    let a = (from + gap * 15).min(1440);
                    let b = (a + len * 15).min(1440);
                    if b > a {
                        hours.push((a, b));
                    }
                    from = b;
                }
                hours
            });
            let holidays = prop::collection::btree_set(0i64..40, 0..4);
            (zones, prop::array::uniform7(day), holidays).prop_map(|(tz, week, holidays)| {
                Calendar {
                    name: "random".into(),
                    tz: TimeZone::get(tz).unwrap(),
                    week,
                    holidays: holidays
                        .into_iter()
                        .map(|d| {
                            Date::constant(2026, 3, 20)
                                .checked_add(jiff::Span::new().days(d))
                                .unwrap()
                        })
                        .collect(),
                }
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(48))]

            /// Spans of up to 9 days around the 2026 DST changes of both
            /// hemispheres, minute-aligned.
            #[test]
            fn working_time_matches(c in calendar(), start in 0i64..(40 * 1440), len in 0i64..(9 * 1440)) {
                let base = at("2026-03-20T00:00[UTC]");
                for base in [base, at("2026-09-28T00:00[UTC]")] {
                    let from = base + start * MINUTE;
                    let to = from + len * MINUTE;
                    let reference = (0..len).filter(|i| is_working(&c, from + i * MINUTE)).count() as Millis * MINUTE;
                    prop_assert_eq!(c.working_between(from, to), reference, "{} from {} to {}", c.tz.iana_name().unwrap_or("?"), from, to);
                }
            }

            /// The deadline is the end of the minute in which the work is done.
            #[test]
            fn deadlines_match(c in calendar(), start in 0i64..(40 * 1440), work in 1i64..600) {
                prop_assume!(c.week.iter().any(|d| !d.is_empty()));
                let from = at("2026-03-20T00:00[UTC]") + start * MINUTE;
                let mut left = work;
                let mut minute = from;
                while left > 0 {
                    if is_working(&c, minute) {
                        left -= 1;
                    }
                    minute += MINUTE;
                }
                let due = c.add_working(from, work * MINUTE);
                prop_assert_eq!(due, Some(minute));
                prop_assert_eq!(c.working_between(from, minute), work * MINUTE);
            }
        }
    }
}
