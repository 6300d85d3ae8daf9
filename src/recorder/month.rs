//! Calendar-month figures for SLAs with `window: calendar_month`: one digest
//! of the SLA's deliveries in the current month (in its calendar's zone),
//! emptied when the next month begins.

use serde::{Deserialize, Serialize};

use crate::calendar::Calendar;
use crate::window::{Digest, Millis, Observation, WindowSpec};

/// The window label calendar-month figures carry.
pub const LABEL: &str = "calendar_month";

/// The current calendar month's deliveries, and those dated in the next
/// month that a small clock skew let in early.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MonthTally {
    start: Millis,
    end: Millis,
    digest: Digest,
    /// Dated at or after `end`: counted once the clock reaches `end`.
    next: Digest,
}

/// [`MonthTally`] as snapshot version 3 stored it: no early deliveries.
#[derive(Deserialize)]
pub struct MonthTallyV3 {
    start: Millis,
    end: Millis,
    digest: Digest,
}

impl From<MonthTallyV3> for MonthTally {
    fn from(v: MonthTallyV3) -> MonthTally {
        MonthTally {
            start: v.start,
            end: v.end,
            digest: v.digest,
            next: Digest::new(),
        }
    }
}

impl MonthTally {
    fn of(calendar: &Calendar, at: Millis) -> MonthTally {
        MonthTally {
            start: calendar.month_start(at),
            end: calendar.next_month_start(at),
            digest: Digest::new(),
            next: Digest::new(),
        }
    }

    /// Moves to the month the clock is in at `now`: the months switch by
    /// the clock, never by a delivery's timestamp.
    fn roll(&mut self, calendar: &Calendar, now: Millis) {
        if now < self.end {
            return;
        }
        let following = calendar.next_month_start(self.end);
        *self = if now < following {
            MonthTally {
                start: self.end,
                end: following,
                digest: std::mem::take(&mut self.next),
                next: Digest::new(),
            }
        } else {
            MonthTally::of(calendar, now)
        };
    }

    /// Counts a delivery completed at `at`, recorded at `now`. One from a
    /// month already closed is left out of it (the contractual figure of a
    /// past month is final); one dated in the next month waits for it.
    pub fn record(
        tally: &mut Option<MonthTally>,
        calendar: &Calendar,
        at: Millis,
        now: Millis,
        obs: Observation,
    ) {
        let t = tally.get_or_insert_with(|| MonthTally::of(calendar, now));
        t.roll(calendar, now);
        if at >= t.end {
            t.next.record(obs);
        } else if at >= t.start {
            t.digest.record(obs);
        }
    }

    /// The current month's window and deliveries at `now`, by the clock.
    pub fn report(
        tally: &Option<MonthTally>,
        calendar: &Calendar,
        now: Millis,
    ) -> (WindowSpec, Digest) {
        let start = calendar.month_start(now);
        let digest = match tally {
            Some(t) if t.start == start => t.digest.clone(),
            // The clock has entered the month whose early deliveries wait.
            Some(t) if t.end == start => t.next.clone(),
            _ => Digest::new(),
        };
        let span = (calendar.next_month_start(now) - start).max(1);
        let spec = WindowSpec {
            label: LABEL.to_owned(),
            span,
            slot: span,
        };
        (spec, digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Millis {
        s.parse::<jiff::Zoned>()
            .unwrap()
            .timestamp()
            .as_millisecond()
    }

    fn berlin() -> Calendar {
        let mut cal = Calendar::always();
        cal.tz = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
        cal
    }

    const OBS: Observation = Observation::Delivered {
        relative: 0.5,
        late: false,
        amazing: false,
    };

    #[test]
    fn figures_reset_when_the_month_begins_in_the_calendar_zone() {
        let cal = berlin();
        let mut tally = None;
        let t = at("2026-11-30T23:30[Europe/Berlin]");
        MonthTally::record(&mut tally, &cal, t, t, OBS);
        let (spec, d) = MonthTally::report(&tally, &cal, at("2026-11-30T23:59[Europe/Berlin]"));
        assert_eq!((spec.label.as_str(), d.count()), (LABEL, 1));
        assert_eq!(spec.span, 30 * 86_400_000);
        // 00:10 Berlin on December 1st is still November in UTC, but a new month here.
        let december = at("2026-12-01T00:10[Europe/Berlin]");
        assert_eq!(MonthTally::report(&tally, &cal, december).1.count(), 0);
        MonthTally::record(&mut tally, &cal, december, december, OBS);
        // A late delivery for the closed month stays out of the new one.
        let late = at("2026-11-30T23:45[Europe/Berlin]");
        MonthTally::record(&mut tally, &cal, late, december, OBS);
        assert_eq!(MonthTally::report(&tally, &cal, december).1.count(), 1);
    }

    /// Issue 12, input 5: the clock at 23:58:30 Berlin on November 30th; a
    /// delivery dated 00:01 December (within the allowed skew) must neither
    /// empty November early nor be lost.
    #[test]
    fn the_month_switches_by_the_clock_not_by_a_delivery() {
        let cal = berlin();
        let mut tally = None;
        let clock = at("2026-11-30T23:58:30[Europe/Berlin]");
        let dated = at("2026-11-30T23:50[Europe/Berlin]");
        for _ in 0..20 {
            MonthTally::record(&mut tally, &cal, dated, clock, OBS);
        }
        let early = at("2026-12-01T00:01[Europe/Berlin]");
        MonthTally::record(&mut tally, &cal, early, clock, OBS);
        let later = at("2026-11-30T23:58[Europe/Berlin]");
        MonthTally::record(&mut tally, &cal, later, clock + 1_000, OBS);
        let before_midnight = at("2026-11-30T23:59:59[Europe/Berlin]");
        assert_eq!(
            MonthTally::report(&tally, &cal, before_midnight).1.count(),
            21
        );
        // By the clock it is December: the early delivery is its first.
        let midnight = at("2026-12-01T00:00[Europe/Berlin]");
        assert_eq!(MonthTally::report(&tally, &cal, midnight).1.count(), 1);
        MonthTally::record(&mut tally, &cal, midnight, midnight, OBS);
        assert_eq!(MonthTally::report(&tally, &cal, midnight).1.count(), 2);
        // Two months on, nothing is left.
        let february = at("2027-02-01T00:00[Europe/Berlin]");
        assert_eq!(MonthTally::report(&tally, &cal, february).1.count(), 0);
        MonthTally::record(&mut tally, &cal, february, february, OBS);
        assert_eq!(MonthTally::report(&tally, &cal, february).1.count(), 1);
    }
}
