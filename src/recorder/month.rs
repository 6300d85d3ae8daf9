//! Calendar-month figures for SLAs with `window: calendar_month`: one digest
//! of the SLA's deliveries in the current month (in its calendar's zone),
//! emptied when the next month begins.

use serde::{Deserialize, Serialize};

use crate::calendar::Calendar;
use crate::window::{Digest, Millis, Observation, WindowSpec};

/// The window label calendar-month figures carry.
pub const LABEL: &str = "calendar_month";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MonthTally {
    start: Millis,
    end: Millis,
    digest: Digest,
}

impl MonthTally {
    fn of(calendar: &Calendar, at: Millis) -> MonthTally {
        MonthTally {
            start: calendar.month_start(at),
            end: calendar.next_month_start(at),
            digest: Digest::new(),
        }
    }

    /// Counts a delivery completed at `at`. One from a month already closed
    /// is left out of it: the contractual figure of a past month is final.
    pub fn record(
        tally: &mut Option<MonthTally>,
        calendar: &Calendar,
        at: Millis,
        obs: Observation,
    ) {
        let t = tally.get_or_insert_with(|| MonthTally::of(calendar, at));
        if at >= t.end {
            *t = MonthTally::of(calendar, at);
        }
        if at >= t.start {
            t.digest.record(obs);
        }
    }

    /// The current month's window and deliveries at `now`: empty once the
    /// month the tally holds is over.
    pub fn report(
        tally: &Option<MonthTally>,
        calendar: &Calendar,
        now: Millis,
    ) -> (WindowSpec, Digest) {
        let start = calendar.month_start(now);
        let digest = match tally {
            Some(t) if t.start == start => t.digest.clone(),
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

    #[test]
    fn figures_reset_when_the_month_begins_in_the_calendar_zone() {
        let mut cal = Calendar::always();
        cal.tz = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
        let obs = Observation::Delivered {
            relative: 0.5,
            amazing: false,
        };
        let mut tally = None;
        MonthTally::record(&mut tally, &cal, at("2026-11-30T23:30[Europe/Berlin]"), obs);
        let (spec, d) = MonthTally::report(&tally, &cal, at("2026-11-30T23:59[Europe/Berlin]"));
        assert_eq!((spec.label.as_str(), d.count()), (LABEL, 1));
        assert_eq!(spec.span, 30 * 86_400_000);
        // 00:10 Berlin on December 1st is still November in UTC, but a new month here.
        let december = at("2026-12-01T00:10[Europe/Berlin]");
        assert_eq!(MonthTally::report(&tally, &cal, december).1.count(), 0);
        MonthTally::record(&mut tally, &cal, december, obs);
        // A late delivery for the closed month stays out of the new one.
        MonthTally::record(&mut tally, &cal, at("2026-11-30T23:45[Europe/Berlin]"), obs);
        assert_eq!(MonthTally::report(&tally, &cal, december).1.count(), 1);
    }
}
