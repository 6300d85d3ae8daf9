//! Open deliveries: started, maybe paused, not yet finished. The state
//! machine every start, pause, resume and finish goes through, and each
//! item's clock, which runs on its SLA's calendar.
//!
//! A repeated event changes nothing and succeeds: an event repeats the last
//! one when it is of the same kind and either gives no `at` or the same `at`.
//! Anything else that does not follow (resume while running, an event dated
//! before the previous one, finish of an unknown id) is refused.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::delivery::{Event, Kind};

use crate::calendar::Calendar;
use crate::decimal::Decimal;
use crate::source::Reason;
use crate::window::Millis;

/// What an event did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Transition {
    /// Opened; its clock runs.
    Started,
    /// Its clock stopped.
    Paused,
    /// Its clock runs again.
    Resumed,
    /// Recorded as a delivery of this many seconds of clock time.
    Finished {
        /// Clock seconds; `None` when it failed.
        seconds: Option<f64>,
        /// Whether it was within its promise.
        within_promise: bool,
    },
    /// A repeat of the last event, or a finish of a finished delivery.
    Unchanged,
}

/// Why an event was refused; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The id was never started (404).
    #[error("no open delivery `{0}` for this SLA; start it first")]
    Unknown(String),
    /// The event does not follow the last one (409).
    #[error("{0}")]
    Conflict(String),
    /// The SLA holds `limits.max_open_deliveries` open deliveries.
    #[error("{0}")]
    Full(String),
}

impl EventError {
    /// The reason it is counted under.
    pub fn reason(&self) -> Reason {
        match self {
            EventError::Unknown(_) => Reason::UnknownId,
            EventError::Conflict(_) => Reason::Conflict,
            EventError::Full(_) => Reason::TooManyOpen,
        }
    }

    /// The HTTP status that says it.
    pub fn status(&self) -> u16 {
        match self {
            EventError::Unknown(_) => 404,
            EventError::Conflict(_) => 409,
            EventError::Full(_) => 429,
        }
    }
}

/// Where an open delivery's clock stands against its promise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenState {
    /// Within 1 - alert_margin of the promise.
    OnTrack = 0,
    /// Past 1 - alert_margin of it.
    AtRisk = 1,
    /// Past the promise.
    Overdue = 2,
}

impl OpenState {
    /// Every state, in index order.
    pub const ALL: [OpenState; 3] = [OpenState::OnTrack, OpenState::AtRisk, OpenState::Overdue];

    /// The `state` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            OpenState::OnTrack => "on_track",
            OpenState::AtRisk => "at_risk",
            OpenState::Overdue => "overdue",
        }
    }

    /// The state named `s`, if any.
    pub fn parse(s: &str) -> Option<OpenState> {
        OpenState::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// One open delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenItem {
    /// Its label values, joined by the key separator.
    pub key: Box<str>,
    /// Its promise by its labels; a reload sets it again, so the finish is
    /// judged by the promise every delivery is judged by when it arrives.
    pub promise: Duration,
    /// When it started.
    pub started: Millis,
    last: (Kind, Millis),
    /// Clock time of the running stretches before the last pause.
    banked: Millis,
    /// When the clock last started running; `None` while paused.
    running_since: Option<Millis>,
    /// The instant its clock reached the promise, once a pause has banked
    /// that much (a running clock's due instant is computed instead).
    fell_due: Option<Millis>,
    /// It fell due before a pause that a release without `fell_due`
    /// recorded (snapshot format 3), or in a stretch `stretches` no longer
    /// holds: when is unknown.
    fell_due_unknown: bool,
    overdue_counted: bool,
    /// Its closed running stretches, oldest first, so the instant its clock
    /// reached a promise a reload sets can be found again.
    stretches: Vec<Stretch>,
    /// Whether `stretches` goes back to the start (not for items from
    /// snapshot formats before 8, nor past [`MAX_STRETCHES`]).
    stretches_complete: bool,
}

/// A closed running stretch of an open delivery's clock: where the clock
/// stood when it began, and when that was. It ran until the next stretch's
/// `banked_before` (or the item's `banked`, for the last).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stretch {
    banked_before: Millis,
    since: Millis,
}

/// Closed stretches an open delivery keeps; older ones are let go (a
/// ticket paused this often is rare, and only a reload asks for them).
pub const MAX_STRETCHES: usize = 64;

impl OpenItem {
    /// Clock time at `now`: working time while not paused.
    pub fn elapsed(&self, calendar: &Calendar, now: Millis) -> Millis {
        self.banked
            + self
                .running_since
                .map_or(0, |since| calendar.working_between(since, now))
    }

    /// Whether its clock is stopped.
    pub fn paused(&self) -> bool {
        self.running_since.is_none()
    }

    /// Its state with `elapsed` clock time: overdue past the promise, at
    /// risk past `at_risk_after` (1 - alert_margin) of it, compared exactly.
    pub fn state(&self, elapsed: Millis, at_risk_after: Decimal) -> OpenState {
        if ms(elapsed) > self.promise {
            OpenState::Overdue
        } else if !at_risk_after.covers(ms(elapsed), self.promise) {
            OpenState::AtRisk
        } else {
            OpenState::OnTrack
        }
    }

    /// The instant its clock reaches (or reached) the promise, to the
    /// millisecond clocks count in. Known once that has happened, paused or
    /// not, and ahead of time while the clock runs; `None` while paused short
    /// of the promise, since the rest depends on when it resumes, and for
    /// the rare item whose instant an older release did not record.
    pub fn due(&self, calendar: &Calendar) -> Option<Millis> {
        if let Some(at) = self.fell_due {
            return Some(at);
        }
        let since = self.running_since?;
        calendar.add_working(since, self.left(self.banked)?)
    }

    /// Whether it is known to have fallen due without the instant.
    pub fn fell_due_unknown(&self) -> bool {
        self.fell_due_unknown
    }

    /// The instant its clock reached the promise in a closed stretch, if it
    /// did there and the stretch is still known.
    fn reached_in_stretches(&self, calendar: &Calendar) -> Option<Millis> {
        let ends = self
            .stretches
            .iter()
            .skip(1)
            .map(|s| s.banked_before)
            .chain([self.banked]);
        self.stretches.iter().zip(ends).find_map(|(stretch, end)| {
            let left = self.left(stretch.banked_before)?;
            (stretch.banked_before + left <= end)
                .then(|| calendar.add_working(stretch.since, left))
                .flatten()
        })
    }

    /// Takes a new promise: the instant its clock reached it is found again
    /// in the stretches when it already has, and is unknown only when they
    /// no longer reach back that far.
    fn repromise(&mut self, promise: Duration, calendar: &Calendar) {
        self.promise = promise;
        self.fell_due = None;
        self.fell_due_unknown = false;
        if ms(self.banked) >= promise {
            self.fell_due = self.reached_in_stretches(calendar);
            self.fell_due_unknown = self.fell_due.is_none();
        }
    }

    /// Clock milliseconds from `banked` until the promise is reached (the
    /// first whole millisecond at or past it); `None` once past it.
    fn left(&self, banked: Millis) -> Option<Millis> {
        let left = self.promise.checked_sub(ms(banked))?;
        Some(left.as_nanos().div_ceil(1_000_000) as Millis)
    }
}

/// Clock milliseconds as a duration.
fn ms(millis: Millis) -> Duration {
    Duration::from_millis(u64::try_from(millis).unwrap_or(0))
}

/// An SLA's open deliveries, and how many ever went overdue.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenItems {
    items: BTreeMap<Box<str>, OpenItem>,
    /// Items that ever went past their promise.
    pub became_overdue: u64,
}

/// A finish's delivery: the item's key, clock time (None if failed), when.
#[derive(Debug, PartialEq)]
pub struct Finished {
    /// The item's label values.
    pub key: Box<str>,
    /// Clock time; `None` when it failed.
    pub took: Option<Duration>,
    /// When it finished.
    pub at: Millis,
}

impl OpenItems {
    /// How many are open.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Every open item with its id, by id.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &OpenItem)> {
        self.items.iter().map(|(k, v)| (&**k, v))
    }

    /// Sets every item's promise again, by its labels, and its labels' order
    /// (a reload). `rekey` maps an old key to the new one and its promise;
    /// clocks count by `calendar`.
    pub fn reconfigure(
        &mut self,
        calendar: &Calendar,
        mut rekey: impl FnMut(&str) -> (Box<str>, Duration),
    ) {
        for item in self.items.values_mut() {
            let (key, promise) = rekey(&item.key);
            if promise != item.promise {
                item.repromise(promise, calendar);
            }
            item.key = key;
        }
    }

    /// Applies `e`. `finished` tells whether the id was already finished;
    /// `promise` is the promise for the event's labels; at most `cap`
    /// deliveries stay open.
    pub fn apply(
        &mut self,
        e: &Event,
        calendar: &Calendar,
        promise: Duration,
        finished: bool,
        cap: usize,
    ) -> Result<(Transition, Option<Finished>), EventError> {
        let open = self.items.len();
        let Some(item) = self.items.get_mut(&e.id) else {
            return match (e.kind, finished) {
                (Kind::Start, false) if open >= cap => Err(EventError::Full(format!(
                    "{open} deliveries are open, limits.max_open_deliveries; finish some first"
                ))),
                (Kind::Start, false) => {
                    self.items.insert(
                        e.id.clone(),
                        OpenItem {
                            key: e.key.clone(),
                            promise,
                            started: e.at,
                            last: (Kind::Start, e.at),
                            banked: 0,
                            running_since: Some(e.at),
                            fell_due: None,
                            fell_due_unknown: false,
                            overdue_counted: false,
                            stretches: Vec::new(),
                            stretches_complete: true,
                        },
                    );
                    Ok((Transition::Started, None))
                }
                (Kind::Finish, true) => Ok((Transition::Unchanged, None)),
                (_, true) => Err(EventError::Conflict(format!(
                    "delivery `{}` is already finished",
                    e.id
                ))),
                (_, false) => Err(EventError::Unknown(e.id.to_string())),
            };
        };
        let (last_kind, last_at) = item.last;
        let repeat = e.kind == last_kind && (!e.explicit_at || e.at == last_at);
        if repeat && e.kind != Kind::Finish && (e.kind != Kind::Start || e.key == item.key) {
            return Ok((Transition::Unchanged, None));
        }
        if e.at < last_at {
            return Err(EventError::Conflict(format!(
                "{} at {} is before the delivery's last event ({} at {})",
                e.kind.as_str(),
                rfc3339(e.at),
                last_kind.as_str(),
                rfc3339(last_at)
            )));
        }
        match (e.kind, item.running_since) {
            (Kind::Start, _) => Err(EventError::Conflict(format!(
                "delivery `{}` is already open since {}{}",
                e.id,
                rfc3339(item.started),
                if e.key != item.key {
                    " with other labels"
                } else {
                    ""
                }
            ))),
            (Kind::Pause, None) => Err(EventError::Conflict(format!(
                "delivery `{}` is already paused since {}",
                e.id,
                rfc3339(last_at)
            ))),
            (Kind::Resume, Some(_)) => Err(EventError::Conflict(format!(
                "delivery `{}` is not paused",
                e.id
            ))),
            (Kind::Pause, Some(since)) => {
                let left = item.left(item.banked);
                if item.stretches.len() == MAX_STRETCHES {
                    item.stretches.remove(0);
                    item.stretches_complete = false;
                }
                item.stretches.push(Stretch {
                    banked_before: item.banked,
                    since,
                });
                item.banked += calendar.working_between(since, e.at);
                if let (None, Some(left)) = (item.fell_due, left)
                    && ms(item.banked) >= item.promise
                {
                    item.fell_due = calendar.add_working(since, left);
                }
                item.running_since = None;
                item.last = (Kind::Pause, e.at);
                Ok((Transition::Paused, None))
            }
            (Kind::Resume, None) => {
                item.running_since = Some(e.at);
                item.last = (Kind::Resume, e.at);
                Ok((Transition::Resumed, None))
            }
            (Kind::Finish, _) => {
                let elapsed = item.elapsed(calendar, e.at);
                if ms(elapsed) > item.promise && !item.overdue_counted {
                    self.became_overdue += 1;
                }
                let within_promise = !e.failed && ms(elapsed) <= item.promise;
                let took = (!e.failed).then_some(ms(elapsed));
                let key = item.key.clone();
                self.items.remove(&e.id);
                Ok((
                    Transition::Finished {
                        seconds: took.map(|t| t.as_secs_f64()),
                        within_promise,
                    },
                    Some(Finished {
                        key,
                        took,
                        at: e.at,
                    }),
                ))
            }
        }
    }

    /// Counts items that went overdue by `now` and were not counted yet.
    pub fn count_overdue(&mut self, calendar: &Calendar, now: Millis) {
        for item in self.items.values_mut() {
            if !item.overdue_counted && ms(item.elapsed(calendar, now)) > item.promise {
                item.overdue_counted = true;
                self.became_overdue += 1;
            }
        }
    }
}

/// [`OpenItems`] read from snapshot versions 4 to 7, which stored them
/// without the stretches a reload finds a due instant again in.
#[derive(Debug, Default, Deserialize)]
#[serde(from = "OpenItemsV4")]
pub struct OpenItemsUpTo7(pub OpenItems);

#[derive(Deserialize)]
struct OpenItemsV4 {
    items: BTreeMap<Box<str>, OpenItemV4>,
    became_overdue: u64,
}

#[derive(Deserialize)]
struct OpenItemV4 {
    key: Box<str>,
    promise: Duration,
    started: Millis,
    last: (Kind, Millis),
    banked: Millis,
    running_since: Option<Millis>,
    fell_due: Option<Millis>,
    fell_due_unknown: bool,
    overdue_counted: bool,
}

impl From<OpenItemsV4> for OpenItemsUpTo7 {
    fn from(v: OpenItemsV4) -> OpenItemsUpTo7 {
        let items = v.items.into_iter().map(|(id, i)| {
            let item = OpenItem {
                key: i.key,
                promise: i.promise,
                started: i.started,
                last: i.last,
                banked: i.banked,
                running_since: i.running_since,
                fell_due: i.fell_due,
                fell_due_unknown: i.fell_due_unknown,
                overdue_counted: i.overdue_counted,
                stretches: Vec::new(),
                stretches_complete: false,
            };
            (id, item)
        });
        OpenItemsUpTo7(OpenItems {
            items: items.collect(),
            became_overdue: v.became_overdue,
        })
    }
}

/// [`OpenItems`] as snapshot version 3 stored them: without the instant
/// a paused item fell due.
#[derive(Deserialize)]
pub struct OpenItemsV3 {
    items: BTreeMap<Box<str>, OpenItemV3>,
    became_overdue: u64,
}

#[derive(Deserialize)]
struct OpenItemV3 {
    key: Box<str>,
    promise_ms: Millis,
    started: Millis,
    last: (Kind, Millis),
    banked: Millis,
    running_since: Option<Millis>,
    overdue_counted: bool,
}

impl From<OpenItemsV3> for OpenItems {
    fn from(v: OpenItemsV3) -> OpenItems {
        let items = v.items.into_iter().map(|(id, i)| {
            let item = OpenItemV4 {
                key: i.key,
                promise: ms(i.promise_ms),
                started: i.started,
                last: i.last,
                banked: i.banked,
                running_since: i.running_since,
                fell_due: None,
                fell_due_unknown: i.banked >= i.promise_ms,
                overdue_counted: i.overdue_counted,
            };
            (id, item)
        });
        let v4 = OpenItemsV4 {
            items: items.collect(),
            became_overdue: v.became_overdue,
        };
        OpenItemsUpTo7::from(v4).0
    }
}

/// An instant as RFC 3339, for messages and listings.
pub(super) fn rfc3339(ms: Millis) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(|_| ms.to_string(), |t| t.to_string())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    const H: Millis = 3_600_000;

    /// Open items as snapshot format 3 stored them, read by this release:
    /// (id, clock time banked, running since), each promised an hour and
    /// started at 0.
    pub(in crate::recorder) fn format_3(items: &[(&str, Millis, Option<Millis>)]) -> OpenItems {
        OpenItems::from(OpenItemsV3 {
            items: items
                .iter()
                .map(|(id, banked, running_since)| {
                    let last = match running_since {
                        Some(at) => (Kind::Resume, *at),
                        None => (Kind::Pause, 4 * H),
                    };
                    let item = OpenItemV3 {
                        key: "".into(),
                        promise_ms: H,
                        started: 0,
                        last,
                        banked: *banked,
                        running_since: *running_since,
                        overdue_counted: false,
                    };
                    ((*id).into(), item)
                })
                .collect(),
            became_overdue: 0,
        })
    }

    fn event(kind: Kind, at: Millis) -> Event {
        Event {
            sla: 0,
            id: "T-1".into(),
            kind,
            key: "".into(),
            failed: false,
            at,
            explicit_at: true,
        }
    }

    /// A reload that changes the promise finds the instant the clock
    /// reached the new one in the stretches it ran: before a pause, exactly
    /// at a pause, or ahead while running; a ticket from an older format, or
    /// one whose stretch was let go, says the instant is unknown.
    #[test]
    fn a_new_promise_finds_its_due_instant_in_the_clock_stretches() {
        let cal = Calendar::always();
        let mut open = OpenItems::default();
        let item = |open: &OpenItems| open.items.get("T-1").unwrap().clone();
        // Started at 0, paused at 2h, resumed at 4h: running, 2h banked.
        open.apply(&event(Kind::Start, 0), &cal, ms(8 * H), false, 10)
            .unwrap();
        open.apply(&event(Kind::Pause, 2 * H), &cal, ms(8 * H), false, 10)
            .unwrap();
        open.apply(&event(Kind::Resume, 4 * H), &cal, ms(8 * H), false, 10)
            .unwrap();
        assert_eq!(item(&open).due(&cal), Some(10 * H));
        // 10 minutes: reached before the pause, at 0 + 10m.
        open.reconfigure(&cal, |k| (k.into(), ms(H / 6)));
        assert_eq!(item(&open).due(&cal), Some(H / 6));
        assert!(!item(&open).fell_due_unknown());
        // Exactly the 2h banked: reached at the pause.
        open.reconfigure(&cal, |k| (k.into(), ms(2 * H)));
        assert_eq!(item(&open).due(&cal), Some(2 * H));
        // 3h: not yet reached; ahead, while running: 4h + 1h.
        open.reconfigure(&cal, |k| (k.into(), ms(3 * H)));
        assert_eq!(item(&open).due(&cal), Some(5 * H));
        // Paused short of a new promise: unknown until it resumes.
        open.apply(
            &event(Kind::Pause, 4 * H + H / 2),
            &cal,
            ms(3 * H),
            false,
            10,
        )
        .unwrap();
        assert_eq!(item(&open).due(&cal), None);
        assert!(!item(&open).fell_due_unknown());
        // Lowered below the clock while paused: found in the second stretch.
        open.reconfigure(&cal, |k| (k.into(), ms(2 * H + H / 4)));
        assert_eq!(item(&open).due(&cal), Some(4 * H + H / 4));
        // An item from format 7 has no stretches: unknown, listed first.
        let mut old = item(&open);
        old.stretches.clear();
        old.stretches_complete = false;
        old.repromise(ms(H), &cal);
        assert_eq!(old.due(&cal), None);
        assert!(old.fell_due_unknown());
    }

    /// Past [`MAX_STRETCHES`] pauses the oldest stretch is let go.
    #[test]
    fn stretches_are_bounded() {
        let cal = Calendar::always();
        let mut open = OpenItems::default();
        open.apply(&event(Kind::Start, 0), &cal, ms(1000 * H), false, 10)
            .unwrap();
        for i in 0..(MAX_STRETCHES as i64 + 1) {
            open.apply(
                &event(Kind::Pause, 2 * i * H + H),
                &cal,
                ms(1000 * H),
                false,
                10,
            )
            .unwrap();
            open.apply(
                &event(Kind::Resume, 2 * i * H + 2 * H),
                &cal,
                ms(1000 * H),
                false,
                10,
            )
            .unwrap();
        }
        let mut item = open.items.get("T-1").unwrap().clone();
        assert_eq!(item.stretches.len(), MAX_STRETCHES);
        assert!(!item.stretches_complete);
        // Reached in the first stretch, which is gone.
        item.repromise(ms(H / 2), &cal);
        assert!(item.fell_due_unknown());
        // Reached in a stretch still kept: stretch k runs from 2kH, banked kH.
        item.repromise(ms(10 * H + H / 2), &cal);
        assert_eq!(item.due(&cal), Some(20 * H + H / 2));
    }

    #[test]
    fn a_paused_clock_stops_and_the_finish_records_clock_time() {
        let cal = Calendar::always();
        let mut open = OpenItems::default();
        let apply = |open: &mut OpenItems, kind, at| {
            open.apply(&event(kind, at), &cal, ms(4 * H), false, 10)
        };
        assert_eq!(
            apply(&mut open, Kind::Start, 0).unwrap().0,
            Transition::Started
        );
        assert_eq!(
            apply(&mut open, Kind::Pause, H).unwrap().0,
            Transition::Paused
        );
        let item = open.iter().next().unwrap().1.clone();
        assert_eq!(item.elapsed(&cal, 10 * H), H);
        assert_eq!(item.due(&cal), None);
        assert_eq!(
            apply(&mut open, Kind::Resume, 10 * H).unwrap().0,
            Transition::Resumed
        );
        let item = open.iter().next().unwrap().1.clone();
        assert_eq!(
            item.state(item.elapsed(&cal, 12 * H), Decimal::new(75, 2)),
            OpenState::OnTrack
        );
        assert_eq!(
            item.state(item.elapsed(&cal, 12 * H + H / 2), Decimal::new(75, 2)),
            OpenState::AtRisk
        );
        assert_eq!(item.due(&cal), Some(13 * H));
        let (t, f) = apply(&mut open, Kind::Finish, 12 * H).unwrap();
        assert_eq!(
            t,
            Transition::Finished {
                seconds: Some(3.0 * 3600.0),
                within_promise: true
            }
        );
        assert_eq!(f.unwrap().at, 12 * H);
        assert!(open.is_empty());
    }

    #[test]
    fn repeats_change_nothing_and_impossible_transitions_are_refused() {
        let cal = Calendar::always();
        let mut open = OpenItems::default();
        let mut apply =
            |kind, at, finished| open.apply(&event(kind, at), &cal, ms(4 * H), finished, 10);
        assert_eq!(
            apply(Kind::Pause, 0, false),
            Err(EventError::Unknown("T-1".into()))
        );
        assert_eq!(apply(Kind::Finish, 0, false).unwrap_err().status(), 404);
        apply(Kind::Start, H, false).unwrap();
        assert_eq!(
            apply(Kind::Start, H, false).unwrap().0,
            Transition::Unchanged
        );
        assert_eq!(apply(Kind::Start, 2 * H, false).unwrap_err().status(), 409);
        let resume = apply(Kind::Resume, 2 * H, false).unwrap_err();
        assert!(resume.to_string().contains("not paused"), "{resume}");
        let early = apply(Kind::Pause, 0, false).unwrap_err();
        assert!(early.to_string().contains("before"), "{early}");
        apply(Kind::Pause, 2 * H, false).unwrap();
        assert_eq!(
            apply(Kind::Pause, 2 * H, false).unwrap().0,
            Transition::Unchanged
        );
        assert_eq!(apply(Kind::Pause, 3 * H, false).unwrap_err().status(), 409);
        apply(Kind::Finish, 3 * H, false).unwrap();
        // Finished: a repeated finish succeeds, anything else conflicts.
        assert_eq!(
            apply(Kind::Finish, 3 * H, true).unwrap().0,
            Transition::Unchanged
        );
        assert_eq!(apply(Kind::Resume, 4 * H, true).unwrap_err().status(), 409);
        assert_eq!(apply(Kind::Start, 4 * H, true).unwrap_err().status(), 409);
    }

    /// A 7.5ms promise is not cut to 7ms: 5ms is within 67% of it (5.025ms),
    /// the clock reaches it in the 8th millisecond, and a pause at 7ms is
    /// short of it.
    #[test]
    fn sub_millisecond_promises_are_kept_exactly() {
        let cal = Calendar::always();
        let mut open = OpenItems::default();
        let promise = Duration::from_micros(7_500);
        let risk = Decimal::new(67, 2);
        open.apply(&event(Kind::Start, 0), &cal, promise, false, 10)
            .unwrap();
        let item = open.iter().next().unwrap().1.clone();
        assert_eq!(item.state(5, risk), OpenState::OnTrack);
        assert_eq!(item.state(6, risk), OpenState::AtRisk);
        assert_eq!(item.state(7, risk), OpenState::AtRisk);
        assert_eq!(item.state(8, risk), OpenState::Overdue);
        assert_eq!(item.due(&cal), Some(8));
        open.apply(&event(Kind::Pause, 7), &cal, promise, false, 10)
            .unwrap();
        assert_eq!(open.iter().next().unwrap().1.due(&cal), None);
    }

    /// Items from snapshot format 3 that had fell due before a pause carry
    /// no instant; the listing puts them first.
    #[test]
    fn format_3_items_past_their_promise_have_an_unknown_due_instant() {
        let v3 = |banked| OpenItemV3 {
            key: "".into(),
            promise_ms: H,
            started: 0,
            last: (Kind::Resume, 5 * H),
            banked,
            running_since: Some(5 * H),
            overdue_counted: false,
        };
        let items = OpenItems::from(OpenItemsV3 {
            items: [("late".into(), v3(2 * H)), ("short".into(), v3(H / 2))].into(),
            became_overdue: 1,
        });
        let cal = Calendar::always();
        let get = |id: &str| items.items.get(id).unwrap();
        assert!(get("late").fell_due_unknown());
        assert_eq!(get("late").due(&cal), None);
        assert!(!get("short").fell_due_unknown());
        assert_eq!(get("short").due(&cal), Some(5 * H + H / 2));
    }

    #[test]
    fn overdue_items_are_counted_once() {
        let cal = Calendar::always();
        let mut open = OpenItems::default();
        open.apply(&event(Kind::Start, 0), &cal, ms(H), false, 10)
            .unwrap();
        open.count_overdue(&cal, H / 2);
        assert_eq!(open.became_overdue, 0);
        open.count_overdue(&cal, 2 * H);
        open.count_overdue(&cal, 3 * H);
        open.apply(&event(Kind::Finish, 4 * H), &cal, ms(H), false, 10)
            .unwrap();
        assert_eq!(open.became_overdue, 1);
        open.apply(&event(Kind::Start, 5 * H), &cal, ms(H), false, 1)
            .unwrap();
        let mut other = event(Kind::Start, 5 * H);
        other.id = "T-2".into();
        let full = open.apply(&other, &cal, ms(H), false, 1).unwrap_err();
        assert_eq!(full.status(), 429, "{full}");
    }
}
