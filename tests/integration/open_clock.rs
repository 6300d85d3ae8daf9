//! Open deliveries against a minute-by-minute reference: random tickets on
//! two SLAs with different business calendars, paused before and after they
//! fall due; every field of the open list and its order, through the library
//! with an injected clock.

use std::sync::Arc;

use amaze_exporter::config::Config;
use amaze_exporter::delivery::EventInput;
use amaze_exporter::recorder::Recorder;
use amaze_exporter::recorder::open::{Kind, OpenState};
use amaze_exporter::window::Millis;
use jiff::civil::Weekday;
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use proptest::prelude::*;

const MINUTE: Millis = 60_000;

const CONFIG: &str = r#"version: 1
calendars:
  - name: berlin
    timezone: Europe/Berlin
    hours:
      mon-fri: "09:00-17:00"
  - name: new_york
    timezone: America/New_York
    hours:
      mon-fri: "08:00-12:00, 13:00-18:00"
      sat: "10:00-14:00"
slas:
  - name: berlin_desk
    promise: 4h
    objective: 90%
    alert_margin: 25%
    calendar: berlin
  - name: ny_desk
    promise: 6h
    objective: 90%
    alert_margin: 10%
    calendar: new_york
"#;

/// Whether the minute starting at `at` is working time, read straight off
/// the wall clock in the SLA's zone (independent of `calendar.rs`).
fn working_minute(sla: &str, at: Millis) -> bool {
    let (zone, hours): (&str, fn(Weekday, i32) -> bool) = match sla {
        "berlin_desk" => ("Europe/Berlin", |day, m| {
            day.to_monday_one_offset() <= 5 && (9 * 60..17 * 60).contains(&m)
        }),
        _ => ("America/New_York", |day, m| match day {
            Weekday::Saturday => (10 * 60..14 * 60).contains(&m),
            Weekday::Sunday => false,
            _ => (8 * 60..12 * 60).contains(&m) || (13 * 60..18 * 60).contains(&m),
        }),
    };
    let local: Zoned = Timestamp::from_millisecond(at)
        .unwrap()
        .to_zoned(TimeZone::get(zone).unwrap());
    let minute = i32::from(local.hour()) * 60 + i32::from(local.minute());
    hours(local.weekday(), minute)
}

/// One ticket: its SLA and the minutes (from a base instant) at which it
/// starts, then alternately pauses and resumes.
#[derive(Debug, Clone)]
struct Ticket {
    sla: &'static str,
    events: Vec<i64>,
}

/// What the reference says of a ticket at `now`.
struct Expected {
    elapsed: Millis,
    paused: bool,
    due: Option<Millis>,
}

fn reference(t: &Ticket, base: Millis, now: Millis, promise: Millis) -> Expected {
    let at = |m: i64| base + m * MINUTE;
    let running_at = |instant: Millis| {
        let started = t.events.iter().filter(|m| at(**m) <= instant).count();
        started % 2 == 1
    };
    let mut elapsed = 0;
    let mut due = None;
    let mut minute = at(t.events[0]);
    while minute < now {
        if running_at(minute) && working_minute(t.sla, minute) {
            elapsed += MINUTE;
            if elapsed == promise {
                due = Some(minute + MINUTE);
            }
        }
        minute += MINUTE;
    }
    let paused = !running_at(now);
    if due.is_none() && !paused {
        // Project forward: the clock keeps running from now.
        let mut projected = elapsed;
        while projected < promise {
            if working_minute(t.sla, minute) {
                projected += MINUTE;
            }
            minute += MINUTE;
        }
        due = Some(minute);
    }
    Expected {
        elapsed,
        paused,
        due,
    }
}

fn ticket() -> impl Strategy<Value = Ticket> {
    (
        prop::bool::ANY,
        prop::collection::vec(1i64..3 * 24 * 60, 1..6),
        0i64..7 * 24 * 60,
    )
        .prop_map(|(berlin, gaps, start)| {
            let mut events = vec![start];
            for g in gaps {
                events.push(events.last().unwrap() + g);
            }
            Ticket {
                sla: if berlin { "berlin_desk" } else { "ny_desk" },
                events,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn open_list_matches_a_minute_by_minute_reference(
        tickets in prop::collection::vec(ticket(), 1..6),
        after in 0i64..2 * 24 * 60,
    ) {
        let catalog = Arc::new(Config::parse(CONFIG).unwrap().catalog());
        let recorder = Recorder::new(catalog.clone());
        // Monday 2026-10-19 00:00 UTC: the range crosses Europe's DST end
        // (October 25th) and America's (November 1st).
        let base: Millis = "2026-10-19T00:00:00Z".parse::<Timestamp>().unwrap().as_millisecond();
        let last = tickets.iter().flat_map(|t| t.events.iter()).max().copied().unwrap_or(0);
        let now = base + (last + after) * MINUTE;
        let mut events = Vec::new();
        for (i, t) in tickets.iter().enumerate() {
            let id = format!("T-{i}");
            for (k, m) in t.events.iter().enumerate() {
                let kind = match k {
                    0 => Kind::Start,
                    k if k % 2 == 1 => Kind::Pause,
                    _ => Kind::Resume,
                };
                let input = EventInput { sla: t.sla, id: &id, kind, labels: &[], failed: false, at: Some(base + m * MINUTE) };
                events.push((base + m * MINUTE, catalog.admit_event(&input, now).unwrap()));
            }
        }
        // Events of different tickets interleave in time, as clients send them.
        events.sort_by_key(|(at, _)| *at);
        let events: Vec<_> = events.into_iter().map(|(_, e)| e).collect();
        let applied = recorder.apply_events(&events, now, None);
        prop_assert!(applied.events.iter().all(Result::is_ok), "{:?}", applied.events);

        let listed = recorder.open_items(now, |_| true);
        prop_assert_eq!(listed.len(), tickets.len());
        for (i, t) in tickets.iter().enumerate() {
            let id = format!("T-{i}");
            let view = listed.iter().find(|v| v.id == id).unwrap();
            let sla = &catalog.slas[catalog.index(t.sla).unwrap()];
            let promise = sla.promise.as_millis() as Millis;
            let want = reference(t, base, now, promise);
            prop_assert_eq!(view.elapsed_seconds, want.elapsed as f64 / 1000.0, "{} {:?}", id, t);
            prop_assert_eq!(view.remaining_seconds, (promise - want.elapsed) as f64 / 1000.0);
            prop_assert_eq!(view.paused, want.paused, "{} paused", id);
            let due = want.due.map(|d| Timestamp::from_millisecond(d).unwrap().to_string());
            prop_assert_eq!(&view.due_at, &due, "{} due {:?}", id, t);
            let at_risk_after = promise - promise * if t.sla == "berlin_desk" { 25 } else { 10 } / 100;
            let state = if want.elapsed > promise {
                OpenState::Overdue
            } else if want.elapsed > at_risk_after {
                OpenState::AtRisk
            } else {
                OpenState::OnTrack
            };
            prop_assert_eq!(view.state, state, "{} state", id);
        }
        // Soonest due first, ties by SLA and id; tickets paused short of
        // their promise last, by clock time remaining, then SLA and id.
        let key = |v: &amaze_exporter::recorder::OpenView| {
            let due = v.due_at.as_ref().map(|d| d.parse::<Timestamp>().unwrap().as_millisecond());
            let remaining = if due.is_some() { 0 } else { (v.remaining_seconds * 1000.0) as i64 };
            (due.is_none(), due, remaining, v.sla.clone(), v.id.clone())
        };
        for pair in listed.windows(2) {
            prop_assert!(key(&pair[0]) <= key(&pair[1]), "{:?} before {:?}", pair[0], pair[1]);
        }
    }
}
