//! Each SLA's history: its deliveries per hour over the compliance window and
//! per day for [`DAYS_KEPT`] days, for the status page's trend, the monthly
//! report and backfill. Pure: time is a parameter.
//!
//! A point keeps the digest of the deliveries that completed in it (exact
//! counts beside the 1% sketch), so any run of points merges into exact
//! counts and a margin within the sketch's bound: a month is its days
//! merged. Hours are UTC hours; days are dates in the SLA's calendar zone
//! (UTC without a calendar), so months follow the zone. Points with no
//! delivery are not stored.
//!
//! Deliveries reach it without a sketch insert of their own: the SLA-wide
//! windows' 30-second base slots are merged in as they close
//! ([`History::absorb`]; a base slot lies in one hour and one day in every
//! zone, whose offsets are whole minutes), and only late deliveries, whose
//! base slot has closed, are recorded one by one. Readers lay the base slot
//! still open over it ([`History::overlaid`]).
//!
//! Size per SLA: at most [`hours_kept`] hour points (the compliance window,
//! at least a day, plus the current hour) and [`DAYS_KEPT`] day points. A
//! point is 32 bytes of counts plus its sketch, 8 bytes per bin between its
//! fastest and slowest delivery (a bin is 2% wide: a spread of 100x is 233
//! bins, about 2 KB); a day adds about 9 bytes per id it keeps (ids of
//! deliveries dated before the day they were recorded, such as imports).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::calendar::Calendar;
use crate::decimal::Decimal;
use crate::window::{Digest, Millis, Observation};

/// Days of history kept, today included.
pub use crate::calendar::HISTORY_DAYS as DAYS_KEPT;

/// One hour in milliseconds: the width of an hour point.
pub const HOUR: Millis = 3_600_000;

/// Hour points an SLA with compliance window `window` keeps: the window in
/// whole hours, at least a day, plus the hour under way.
pub fn hours_kept(window: Millis) -> i64 {
    ((window + HOUR - 1) / HOUR).max(24) + 1
}

/// Deliveries per hour and per day; see the module doc for its bounds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct History {
    /// Hour number since the epoch (UTC) -> deliveries completed in it.
    /// Points are shared between clones until written, so a snapshot copies
    /// a history in pointer copies while the SLA's lock is held.
    hours: BTreeMap<i64, Arc<Point>>,
    /// Date in the calendar's zone -> deliveries completed on it.
    days: BTreeMap<Date, Arc<Point>>,
    /// The days last looked up, so deliveries of the same day skip the
    /// time-zone lookup; rebuilt on demand.
    #[serde(skip)]
    lookups: Lookups,
    /// Ids kept over every day, counted on first need.
    #[serde(skip)]
    id_count: Option<usize>,
}

/// Recently looked-up days: `(start, end, date)`, the instants `[start,
/// end)` being that date in the calendar's zone.
#[derive(Debug, Clone, Default)]
struct Lookups {
    /// The last delivery's day.
    at: Option<(Millis, Millis, Date)>,
    /// The clock's day's span, with the oldest day kept then.
    now: Option<(Millis, Millis, Date)>,
}

/// One hour's or day's deliveries, and what they were judged by.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Point {
    digest: Digest,
    /// The default promises its deliveries were judged by, sorted and
    /// distinct: one, unless a reload changed the promise meanwhile.
    judged_by: Vec<Duration>,
    /// The objectives in force when they were recorded, sorted and distinct.
    objectives: Vec<Decimal>,
    /// Day points: the zone the date is in (the calendar's when first dated).
    zone: Option<Box<str>>,
    /// Day points: hashes of the ids of deliveries dated before the day
    /// they were recorded on (backfilled ones, mostly), kept as long as the
    /// day, so a re-import counts them once however late it comes.
    ids: foldhash::HashSet<u64>,
}

impl Point {
    fn judged(&mut self, stamp: Stamp<'_>) {
        if let Err(i) = self.judged_by.binary_search(&stamp.promise) {
            self.judged_by.insert(i, stamp.promise);
        }
        if let Err(i) = self.objectives.binary_search(&stamp.objective) {
            self.objectives.insert(i, stamp.objective);
        }
    }
}

/// What judged a run of days, each sorted and distinct.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stamps {
    /// Default promises.
    pub promises: Vec<Duration>,
    /// Objectives.
    pub objectives: Vec<Decimal>,
    /// Zones the days are dated in.
    pub zones: Vec<String>,
}

/// What a delivery is recorded with: the calendar its day is dated by and
/// the default promise it was judged by.
#[derive(Debug, Clone, Copy)]
pub struct Stamp<'a> {
    /// Dates days (in its zone).
    pub calendar: &'a Calendar,
    /// The SLA's default promise in force.
    pub promise: Duration,
    /// The SLA's objective in force.
    pub objective: Decimal,
}

/// The day `at` falls on in `calendar`'s zone and the instants it spans,
/// `(start, end, date)`, through `cached` when `at` falls in the day it holds.
fn cached_span(
    cached: &mut Option<(Millis, Millis, Date)>,
    calendar: &Calendar,
    at: Millis,
) -> (Millis, Millis, Date) {
    if let Some((start, end, date)) = *cached
        && (start..end).contains(&at)
    {
        return (start, end, date);
    }
    let date = calendar.date_of(at);
    let start = calendar.day_start(date);
    let end = date
        .tomorrow()
        .map_or(Millis::MAX, |d| calendar.day_start(d));
    if start <= at && at < end {
        *cached = Some((start, end, date));
        (start, end, date)
    } else {
        // Bounds the zone cannot give: this instant alone.
        (at, at + 1, date)
    }
}

impl History {
    /// Counts a delivery completed at `at`, recorded at `now`, in its hour
    /// (if still kept) and its day.
    pub fn record(
        &mut self,
        stamp: Stamp<'_>,
        hours: i64,
        at: Millis,
        now: Millis,
        obs: Observation,
    ) {
        self.add(stamp, hours, at, now, |d| d.record(obs));
    }

    /// Adds the deliveries of a closed base slot starting at `at` (wholly
    /// inside one hour and one day) to their hour and day.
    pub fn absorb(&mut self, stamp: Stamp<'_>, hours: i64, at: Millis, now: Millis, slot: &Digest) {
        self.add(stamp, hours, at, now, |d| d.merge(slot));
    }

    fn add(
        &mut self,
        stamp: Stamp<'_>,
        hours: i64,
        at: Millis,
        now: Millis,
        apply: impl Fn(&mut Digest),
    ) {
        let hour = at.div_euclid(HOUR);
        let oldest_hour = now.div_euclid(HOUR) - hours + 1;
        if hour >= oldest_hour {
            if !self.hours.contains_key(&hour) {
                // A new point is the moment to drop the aged ones.
                self.hours = self.hours.split_off(&oldest_hour);
            }
            let point = Arc::make_mut(self.hours.entry(hour).or_default());
            apply(&mut point.digest);
            point.judged(stamp);
        }
        if let Some(day) = self.day_entry(stamp, at, now) {
            apply(&mut day.digest);
        }
    }

    /// A copy with `slot` (the open base slot, starting at `at`) added: what
    /// readers see. Points are shared; the two it changes are copied.
    pub fn overlaid(&self, stamp: Stamp<'_>, at: Millis, slot: &Digest) -> History {
        let mut copy = self.clone();
        let hour = Arc::make_mut(copy.hours.entry(at.div_euclid(HOUR)).or_default());
        hour.digest.merge(slot);
        hour.judged(stamp);
        let date = stamp.calendar.date_of(at);
        let day = Arc::make_mut(copy.days.entry(date).or_default());
        day.digest.merge(slot);
        day.judged(stamp);
        day.zone.get_or_insert_with(|| zone_name(stamp.calendar));
        copy
    }

    /// Counts a delivery older than every window in its day only. False
    /// (nothing counted) when the day is older than [`DAYS_KEPT`]. Its id,
    /// if any, is to be checked with [`History::remembers`] and kept with
    /// [`History::remember`] by the caller, who knows the other ids too.
    pub fn backfill(
        &mut self,
        stamp: Stamp<'_>,
        at: Millis,
        now: Millis,
        obs: Observation,
    ) -> bool {
        let Some(day) = self.day_entry(stamp, at, now) else {
            return false;
        };
        day.digest.record(obs);
        true
    }

    /// Whether id hash `id` of a delivery completed at `at` is kept with its day.
    pub fn remembers(&self, calendar: &Calendar, at: Millis, id: u64) -> bool {
        self.days
            .get(&calendar.date_of(at))
            .is_some_and(|day| day.ids.contains(&id))
    }

    /// Keeps id hash `id` with the day of `at` (if that day is kept), at
    /// most `cap` ids over all days: past it the oldest days' ids are
    /// forgotten. Returns how many were.
    pub fn remember(
        &mut self,
        stamp: Stamp<'_>,
        at: Millis,
        now: Millis,
        id: u64,
        cap: usize,
    ) -> u64 {
        let mut count = match self.id_count {
            Some(n) => n,
            None => self.days.values().map(|d| d.ids.len()).sum(),
        };
        if let Some(day) = self.day_entry(stamp, at, now)
            && day.ids.insert(id)
        {
            count += 1;
        }
        let mut forgotten = 0;
        while count > cap {
            let Some(oldest) = self.days.values_mut().find(|d| !d.ids.is_empty()) else {
                break;
            };
            let day = Arc::make_mut(oldest);
            let n = day.ids.len();
            day.ids.clear();
            count -= n;
            forgotten += n as u64;
        }
        self.id_count = Some(count);
        forgotten
    }

    /// Whether `at` is before the start of `now`'s day in the calendar's zone.
    pub fn before_today(&mut self, calendar: &Calendar, at: Millis, now: Millis) -> bool {
        self.oldest_day(calendar, now);
        match self.lookups.now {
            Some((start, _, _)) => at < start,
            None => calendar.date_of(at) < calendar.date_of(now),
        }
    }

    /// Forgets the days looked up: the calendar (its zone) may have changed.
    pub fn forget_lookups(&mut self) {
        self.lookups = Lookups::default();
    }

    /// The oldest day kept at `now`, looked up once a day.
    fn oldest_day(&mut self, calendar: &Calendar, now: Millis) -> Date {
        match self.lookups.now {
            Some((start, end, oldest)) if (start..end).contains(&now) => oldest,
            _ => {
                let (start, end, _) = cached_span(&mut None, calendar, now);
                let oldest = calendar.oldest_history_day(now);
                self.lookups.now = Some((start, end, oldest));
                oldest
            }
        }
    }

    /// The day point of `at`, stamped, unless older than the days kept.
    fn day_entry(&mut self, stamp: Stamp<'_>, at: Millis, now: Millis) -> Option<&mut Point> {
        let calendar = stamp.calendar;
        let (_, _, date) = cached_span(&mut self.lookups.at, calendar, at);
        let oldest = self.oldest_day(calendar, now);
        if date < oldest {
            return None;
        }
        if !self.days.contains_key(&date) {
            self.days = self.days.split_off(&oldest);
            self.id_count = None;
        }
        let day = Arc::make_mut(self.days.entry(date).or_default());
        day.judged(stamp);
        if day.zone.is_none() {
            day.zone = Some(zone_name(calendar));
        }
        Some(day)
    }

    /// Drops the points that have aged out by `now`.
    pub fn prune(&mut self, calendar: &Calendar, hours: i64, now: Millis) {
        self.id_count = None;
        self.hours = self.hours.split_off(&(now.div_euclid(HOUR) - hours + 1));
        self.days = self.days.split_off(&calendar.oldest_history_day(now));
    }

    /// Hour points from `from` (inclusive, unix ms) on, oldest first, as
    /// (start of the hour, its deliveries).
    pub fn hours_from(&self, from: Millis) -> impl Iterator<Item = (Millis, &Digest)> {
        self.hours
            .range(from.div_euclid(HOUR)..)
            .map(|(h, p)| (h * HOUR, &p.digest))
    }

    /// The default promises the deliveries of the hours from `from` on
    /// were judged by, sorted and distinct.
    pub fn judged_by_since(&self, from: Millis) -> Vec<Duration> {
        let mut all: Vec<Duration> = self
            .hours
            .range(from.div_euclid(HOUR)..)
            .flat_map(|(_, p)| p.judged_by.iter().copied())
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// Day points in `[from, to)`, oldest first.
    pub fn days_between(&self, from: Date, to: Date) -> impl Iterator<Item = (Date, &Digest)> {
        self.days
            .range(from..to.max(from))
            .map(|(date, p)| (*date, &p.digest))
    }

    /// What judged the deliveries of the days in `[from, to)`, and the
    /// zones those days are dated in.
    pub fn stamps_between(&self, from: Date, to: Date) -> Stamps {
        let mut stamps = Stamps::default();
        for p in self.days.range(from..to.max(from)).map(|(_, p)| p) {
            stamps.promises.extend(p.judged_by.iter().copied());
            stamps.objectives.extend(p.objectives.iter().copied());
            stamps.zones.extend(p.zone.as_deref().map(str::to_owned));
        }
        stamps.promises.sort();
        stamps.promises.dedup();
        stamps.objectives.sort();
        stamps.objectives.dedup();
        stamps.zones.sort();
        stamps.zones.dedup();
        stamps
    }

    /// Every day point, oldest first.
    pub fn days(&self) -> impl Iterator<Item = (Date, &Digest)> {
        self.days.iter().map(|(date, p)| (*date, &p.digest))
    }

    /// Points held: (hours, days).
    pub fn len(&self) -> (usize, usize) {
        (self.hours.len(), self.days.len())
    }

    /// Whether it holds no point.
    pub fn is_empty(&self) -> bool {
        self.hours.is_empty() && self.days.is_empty()
    }

    /// Heap bytes held, for the memory self-metric.
    pub fn heap_bytes(&self) -> usize {
        const POINT: usize = std::mem::size_of::<Point>() + 16;
        self.hours
            .values()
            .chain(self.days.values())
            .map(|p| {
                POINT
                    + p.digest.heap_bytes()
                    + p.ids.capacity() * 9
                    + p.judged_by.capacity() * 16
                    + p.zone.as_ref().map_or(0, |z| z.len())
            })
            .sum()
    }
}

/// The calendar's IANA zone name (`UTC` without one).
fn zone_name(calendar: &Calendar) -> Box<str> {
    calendar.tz.iana_name().unwrap_or("UTC").into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Millis = 24 * HOUR;
    const OBS: Observation = Observation::Delivered {
        relative: 0.5,
        late: false,
        amazing: true,
    };

    fn stamp(calendar: &Calendar) -> Stamp<'_> {
        Stamp {
            calendar,
            promise: Duration::from_secs(1),
            objective: Decimal::parse("99%").unwrap(),
        }
    }

    fn berlin() -> Calendar {
        let mut cal = Calendar::always();
        cal.tz = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
        cal
    }

    fn at(s: &str) -> Millis {
        s.parse::<jiff::Zoned>()
            .unwrap()
            .timestamp()
            .as_millisecond()
    }

    #[test]
    fn days_are_dated_in_the_calendar_zone() {
        let cal = berlin();
        let mut h = History::default();
        // 23:30 UTC on November 30th is already December 1st in Berlin.
        let t = at("2026-11-30T23:30Z[UTC]");
        h.record(stamp(&cal), 25, t, t, OBS);
        let days: Vec<_> = h.days().map(|(d, x)| (d, x.count())).collect();
        assert_eq!(days, vec![(jiff::civil::date(2026, 12, 1), 1)]);
        let hours: Vec<_> = h.hours_from(0).map(|(s, x)| (s, x.count())).collect();
        assert_eq!(hours, vec![(at("2026-11-30T23:00Z[UTC]"), 1)]);
    }

    /// 400 simulated days of one delivery an hour: the points never exceed
    /// the stated bound, and the oldest kept day is 399 days back.
    #[test]
    fn history_stays_within_its_bounds_over_400_days() {
        let cal = Calendar::always();
        let mut h = History::default();
        let start = at("2026-01-01T00:00Z[UTC]");
        let keep = hours_kept(30 * DAY);
        for hour in 0..(420 * 24) {
            let t = start + hour * HOUR;
            h.record(stamp(&cal), keep, t, t, OBS);
            // A late delivery of the day before goes straight to its points.
            h.record(stamp(&cal), keep, t - DAY, t, OBS);
            let (hours, days) = h.len();
            assert!(hours as i64 <= keep, "{hours} hour points");
            assert!(days as i32 <= DAYS_KEPT, "{days} day points");
        }
        let now = start + 420 * DAY - 1;
        assert_eq!(h.len(), (keep as usize, DAYS_KEPT as usize));
        let oldest = h.days().next().unwrap().0;
        assert_eq!(
            oldest,
            cal.date_of(now)
                .checked_sub(jiff::Span::new().days(399))
                .unwrap()
        );
        // Bounded bytes too: one bin per point here.
        assert!(
            h.heap_bytes() < (keep as usize + 400) * 2048,
            "{}",
            h.heap_bytes()
        );
    }

    #[test]
    fn days_keep_ids_once_and_refuse_days_past_the_history() {
        let cal = Calendar::always();
        let mut h = History::default();
        let now = at("2026-11-30T12:00Z[UTC]");
        let old = now - 100 * DAY;
        assert!(!h.remembers(&cal, old, 7));
        assert_eq!(h.remember(stamp(&cal), old, now, 7, 10), 0);
        assert!(h.remembers(&cal, old + 1, 7), "same day");
        assert!(!h.remembers(&cal, old + DAY, 7), "another day");
        assert!(h.backfill(stamp(&cal), old, now, OBS));
        assert_eq!(h.days().map(|(_, d)| d.count()).sum::<u64>(), 1);
        assert!(!h.backfill(stamp(&cal), now - 400 * DAY, now, OBS));
        assert!(cal.in_history(now - 399 * DAY, now));
        assert!(!cal.in_history(now - 400 * DAY, now));
        // Past the cap, the oldest days' ids go first.
        for i in 0..10 {
            h.remember(stamp(&cal), old + DAY, now, 100 + i, 10);
        }
        assert!(
            !h.remembers(&cal, old, 7),
            "the oldest day's ids were forgotten"
        );
        assert!(h.remembers(&cal, old + DAY, 109));
        assert!(h.before_today(&cal, now - 13 * HOUR, now));
        assert!(!h.before_today(&cal, now - 11 * HOUR, now));
    }

    #[test]
    fn absorbed_slots_and_the_overlay_equal_recording_one_by_one() {
        let cal = berlin();
        let now = at("2026-11-30T23:20Z[UTC]");
        let (mut one, mut slots) = (History::default(), History::default());
        let mut slot = Digest::new();
        let mut slot_start = None;
        for i in 0..600i64 {
            let t = now - 3_600_000 + i * 6_000;
            one.record(stamp(&cal), 49, t, now, OBS);
            let start = t - t.rem_euclid(30_000);
            if slot_start.is_some_and(|s| s != start) {
                slots.absorb(stamp(&cal), 49, slot_start.unwrap(), now, &slot);
                slot = Digest::new();
            }
            slot_start = Some(start);
            slot.record(OBS);
        }
        let shown = slots.overlaid(stamp(&cal), slot_start.unwrap(), &slot);
        let points = |h: &History| {
            let hours: Vec<_> = h.hours_from(0).map(|(s, d)| (s, d.count())).collect();
            let days: Vec<_> = h.days().map(|(d, x)| (d, x.count())).collect();
            (hours, days)
        };
        assert_eq!(points(&shown), points(&one));
        assert_eq!(
            points(&one).1.len(),
            2,
            "November 30th and December 1st in Berlin"
        );
        assert!(
            points(&slots).1.iter().map(|(_, n)| n).sum::<u64>() < 600,
            "the overlay is a copy"
        );
    }

    /// Points remember the promise their deliveries were judged by and the
    /// zone their day is dated in, so a reload's change shows.
    #[test]
    fn points_keep_what_judged_them() {
        let cal = berlin();
        let mut h = History::default();
        let t = at("2026-11-30T12:00Z[UTC]");
        h.record(stamp(&cal), 25, t, t, OBS);
        let five = Stamp {
            promise: Duration::from_secs(5),
            ..stamp(&cal)
        };
        h.record(five, 25, t + 60_000, t, OBS);
        assert_eq!(
            h.judged_by_since(t - HOUR),
            vec![Duration::from_secs(1), Duration::from_secs(5)]
        );
        assert!(h.judged_by_since(t + HOUR).is_empty());
        let day = jiff::civil::date(2026, 11, 30);
        let stamps = h.stamps_between(day, day.tomorrow().unwrap());
        assert_eq!(stamps.promises.len(), 2);
        assert_eq!(stamps.objectives.len(), 1);
        assert_eq!(stamps.zones, vec!["Europe/Berlin".to_owned()]);
    }

    #[test]
    fn prune_drops_what_aged_out_without_new_deliveries() {
        let cal = Calendar::always();
        let mut h = History::default();
        let t = at("2026-11-30T12:00Z[UTC]");
        h.record(stamp(&cal), 25, t, t, OBS);
        h.prune(&cal, 25, t + 25 * HOUR);
        assert_eq!(h.len(), (0, 1));
        h.prune(&cal, 25, t + 400 * DAY);
        assert!(h.is_empty());
    }

    #[test]
    fn history_round_trips_through_postcard() {
        let cal = berlin();
        let mut h = History::default();
        let t = at("2026-11-30T12:00Z[UTC]");
        h.record(stamp(&cal), 25, t, t, OBS);
        h.remember(stamp(&cal), t - 30 * DAY, t, 1, 10);
        let back: History = postcard::from_bytes(&postcard::to_stdvec(&h).unwrap()).unwrap();
        assert_eq!(back.len(), (1, 2));
        assert!(back.remembers(&cal, t - 30 * DAY, 1));
    }
}
