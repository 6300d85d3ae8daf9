//! The one recorder every source's deliveries end in: series, windows, counters, ids.
//!
//! Each SLA's state sits behind its own lock and is shared between the
//! recorders of successive configs, so a reload keeps every window.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod clocks;
mod history;
mod id_set;
mod legacy;
mod marks;
mod month;
pub mod native;
pub mod open;

pub use clocks::{OpenSummary, OpenView};
pub use history::{DAYS_KEPT, HOUR, History, Stamp, Stamps, hours_kept};
use id_set::IdSet;
pub use legacy::{SlaDataV2, SlaDataV3, SlaDataV4, SlaDataV5, SlaDataV6, SlaDataV7};
pub use marks::{Mark, Marks};
pub use month::LABEL as CALENDAR_MONTH_LABEL;
pub use native::NativeBuckets;
use open::{EventError, OpenItems, Transition};

use crate::decimal::Decimal;
use crate::delivery::{Delivery, KEY_SEPARATOR, Outcome, key_values, millis};
pub use crate::margin::BUCKET_FRACTIONS;
use crate::margin::{self, Figures, Judge};
use crate::sla::{Catalog, Sla};
use crate::window::{
    Digest, LONGEST_ALERT_WINDOW, Millis, Observation, Rolling, WindowSpec, windows_for,
};

/// Label value every label of the overflow series carries.
pub const OVERFLOW_VALUE: &str = "__overflow__";

/// Position in the write-ahead log just past a record; 0 is "before any".
pub type Lsn = u64;

/// Outcome of recording a batch.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Recorded {
    /// Deliveries recorded.
    pub accepted: u64,
    /// Already seen `(sla, id)`: acknowledged, counted once.
    pub duplicates: u64,
    /// Of `accepted`, those older than every window: in the history only.
    pub backfilled: u64,
    /// What each open-delivery event did, in order.
    pub events: Vec<Result<Transition, EventError>>,
}

/// Every SLA's state for one catalog: what deliveries are applied to and figures are read from.
pub struct Recorder {
    catalog: Arc<Catalog>,
    slas: Vec<Arc<Mutex<SlaState>>>,
    /// Shared between configs like the SLA states.
    marks: Arc<Mutex<Marks>>,
}

/// Everything kept for one SLA: what its config implies, and its data.
pub struct SlaState {
    /// Every window, for the SLA-wide figures.
    windows: Vec<WindowSpec>,
    /// Indexes into `windows` of those each label set keeps
    /// (`Sla::series_windows`; none for an SLA without labels).
    series_windows: Vec<usize>,
    compliance: usize,
    /// Hour points its history keeps ([`hours_kept`]).
    hours_kept: i64,
    /// The default promise deliveries are judged by, which history points
    /// remember (zero until the first config is applied).
    promise: Duration,
    /// The objective in force, which history points remember too.
    objective: Decimal,
    /// Largest share of the promise that counts as amazing, if targeted.
    amazing_limit: Option<Decimal>,
    /// Series key -> index into `data.series`; foldhash is seeded per map, so
    /// label values chosen by clients cannot force collisions.
    index: foldhash::HashMap<Box<str>, usize>,
    data: SlaData,
}

/// The part of an SLA's state that snapshots keep.
#[derive(Serialize, Deserialize)]
pub struct SlaData {
    /// Label keys, in the order series keys hold their values.
    labels: Vec<String>,
    series: Vec<Series>,
    /// Every delivery of the SLA in every window, for its SLA-wide figures;
    /// `None` only in state from format 5 and older, rebuilt from the series
    /// at restore.
    aggregate: Option<Rolling>,
    ids: IdSet,
    overflowed: u64,
    /// Log records up to here are applied to this SLA; later ones are not.
    lsn: Lsn,
    open: OpenItems,
    /// SLA-wide deliveries of the current calendar month, if reported.
    month: Option<month::MonthTally>,
    /// SLA-wide deliveries per hour and per day, for trends and reports.
    history: History,
}

impl SlaData {
    /// What a snapshot encodes, copied cheaply under the SLA's lock so the
    /// encoding can happen outside it: window slots are shared until
    /// written (see [`Rolling`]), and the id set keeps only what it stores.
    pub fn snapshot_copy(&self) -> SlaData {
        SlaData {
            labels: self.labels.clone(),
            series: self.series.clone(),
            aggregate: self.aggregate.clone(),
            ids: self.ids.stored_copy(),
            overflowed: self.overflowed,
            lsn: self.lsn,
            open: self.open.clone(),
            month: self.month.clone(),
            history: self.history.clone(),
        }
    }
}

/// One label combination: the windows it exports, plus the cumulative
/// Prometheus counters.
#[derive(Clone, Serialize, Deserialize)]
struct Series {
    key: Box<str>,
    promise: Duration,
    /// The thresholds of `promise`, set whenever it is.
    #[serde(skip)]
    judge: Judge,
    /// Several promises fold into this series (the overflow series of an SLA with goals).
    mixed_promise: bool,
    /// The SLA's `series_windows` only; `None` when it exports none per
    /// label set (an SLA without labels reports from its aggregate).
    rolling: Option<Rolling>,
    within: u64,
    late: u64,
    failed: u64,
    /// Non-cumulative counts per [`BUCKET_FRACTIONS`] edge, plus one past the last.
    buckets: [u64; BUCKET_FRACTIONS.len() + 1],
    sum_seconds: f64,
    /// Native-histogram buckets of r, for merging across instances.
    native: NativeBuckets,
}

impl Recorder {
    /// An empty recorder for `catalog`.
    pub fn new(catalog: Arc<Catalog>) -> Self {
        Recorder::with_states(catalog, Arc::default(), |_| None)
    }

    /// A recorder for `catalog` that takes over the state of every SLA it
    /// shares by name with `self`, adapted to its new settings. SLAs gone from
    /// `catalog` are dropped.
    pub fn reconfigure(&self, catalog: Arc<Catalog>) -> Recorder {
        Recorder::with_states(catalog, self.marks.clone(), |sla| {
            let i = self.catalog.index(&sla.name)?;
            let shared = self.slas[i].clone();
            lock(&shared).reconfigure(sla);
            Some(shared)
        })
    }

    /// A recorder for `catalog` holding restored data, by SLA name.
    pub fn restore(
        catalog: Arc<Catalog>,
        mut data: std::collections::HashMap<String, SlaData>,
        marks: Marks,
    ) -> Recorder {
        Recorder::with_states(catalog, Arc::new(Mutex::new(marks)), |sla| {
            let data = data.remove(&sla.name)?;
            Some(Arc::new(Mutex::new(SlaState::restore(data, sla))))
        })
    }

    fn with_states(
        catalog: Arc<Catalog>,
        marks: Arc<Mutex<Marks>>,
        mut existing: impl FnMut(&Sla) -> Option<Arc<Mutex<SlaState>>>,
    ) -> Recorder {
        let slas = catalog
            .slas
            .iter()
            .map(|s| existing(s).unwrap_or_else(|| Arc::new(Mutex::new(SlaState::new(s)))))
            .collect();
        Recorder {
            catalog,
            slas,
            marks,
        }
    }

    /// The catalog deliveries are admitted against.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// Records deliveries admitted against [`Recorder::catalog`]. `lsn` is the
    /// end of the log record holding them, if logged: deliveries of an SLA
    /// whose state already covers it (restored from a snapshot) are skipped.
    ///
    /// Each SLA's share of the batch is applied under one hold of its lock,
    /// so a snapshot sees all of a record for an SLA or none of it.
    pub fn record(&self, batch: &[Delivery], now: Millis, lsn: Option<Lsn>) -> Recorded {
        let mut out = Recorded::default();
        let mut first = 0;
        while let Some(pos) = batch[first..].iter().position(|d| {
            // The first delivery of an SLA not met before in this batch.
            !batch[..first].iter().any(|e| e.sla == d.sla)
        }) {
            let start = first + pos;
            let sla_index = batch[start].sla;
            first = start + 1;
            let mut state = lock(&self.slas[sla_index]);
            if let Some(lsn) = lsn {
                if state.data.lsn >= lsn {
                    continue;
                }
                state.data.lsn = lsn;
            }
            let sla = &self.catalog.slas[sla_index];
            let cap = self.catalog.limits.max_tracked_ids;
            for d in batch[start..].iter().filter(|d| d.sla == sla_index) {
                let history_only = d.at < now - retention(sla);
                if let Some(id) = &d.id
                    && !state.take_id(sla, id, d.at, now, cap)
                {
                    out.duplicates += 1;
                    continue;
                }
                if history_only {
                    if state.backfill(sla, d, now) {
                        out.accepted += 1;
                        out.backfilled += 1;
                    }
                    continue;
                }
                state.record(sla, d, now);
                out.accepted += 1;
            }
        }
        out
    }

    /// How many of `batch` recording it at `now` would count as repeats:
    /// ids already recorded, or given earlier in the batch. Records nothing
    /// (a dry run's answer).
    pub fn repeats(&self, batch: &[Delivery], now: Millis) -> u64 {
        let mut seen = std::collections::HashSet::new();
        let mut repeats = 0;
        for d in batch {
            let Some(id) = &d.id else {
                continue;
            };
            let (sla, mut state) = (&self.catalog.slas[d.sla], lock(&self.slas[d.sla]));
            let calendar = sla.clock();
            let full = state.data.ids.hash(id);
            let before_today = state.data.history.before_today(calendar, d.at, now);
            let known = state.data.ids.contains_hash(full)
                || (before_today && state.data.history.remembers(calendar, d.at, full as u64));
            if known || !seen.insert((d.sla, id.clone())) {
                repeats += 1;
            }
        }
        repeats
    }

    /// Takes a source's mark (see [`Marks::apply`]). Called before the
    /// deliveries that came with it are recorded, while snapshots read marks
    /// after every SLA: a snapshot never holds deliveries read past its mark.
    pub fn apply_mark(&self, mark: &Mark, lsn: Lsn, logged: bool) {
        lock_marks(&self.marks).apply(mark, lsn, logged);
    }

    /// Where `source` had read up to, by its last recorded batch.
    pub fn mark(&self, source: &str) -> Option<Vec<u8>> {
        lock_marks(&self.marks).get(source).map(<[u8]>::to_vec)
    }

    /// Every source's mark, for a snapshot.
    pub fn marks(&self) -> Marks {
        lock_marks(&self.marks).clone()
    }

    /// Figures of every SLA at `now`, computed now (never cached between scrapes).
    pub fn report(&self, now: Millis) -> Vec<SlaReport> {
        self.catalog
            .slas
            .iter()
            .zip(&self.slas)
            .map(|(sla, state)| lock(state).report(sla, now))
            .collect()
    }

    /// How many SLAs it holds (the catalog's).
    pub fn len(&self) -> usize {
        self.slas.len()
    }

    /// Whether it holds no SLA.
    pub fn is_empty(&self) -> bool {
        self.slas.is_empty()
    }

    /// `f` of SLA `i`'s name and data, under its lock alone; `None` past
    /// the last SLA.
    pub fn with_data<T>(&self, i: usize, f: impl FnOnce(&str, &SlaData) -> T) -> Option<T> {
        let (sla, state) = (self.catalog.slas.get(i)?, self.slas.get(i)?);
        let mut state = lock(state);
        // Closed base slots belong in the history a snapshot keeps.
        state.settle_history(sla, None);
        Some(f(&sla.name, &state.data))
    }

    /// Calls `f` with each SLA's name and data, one SLA locked at a time.
    pub fn for_each_data<E>(
        &self,
        mut f: impl FnMut(&str, &SlaData) -> Result<(), E>,
    ) -> Result<(), E> {
        for (sla, state) in self.catalog.slas.iter().zip(&self.slas) {
            let mut state = lock(state);
            state.settle_history(sla, None);
            f(&sla.name, &state.data)?;
        }
        Ok(())
    }

    /// SLA `i`'s config and its SLA-wide deliveries per window at `now`;
    /// `None` past the last SLA.
    pub fn windows(&self, i: usize, now: Millis) -> Option<(&Sla, Windows)> {
        let (sla, state) = (self.catalog.slas.get(i)?, self.slas.get(i)?);
        Some((sla, lock(state).windows_at(sla, now)))
    }

    /// `f` of SLA `i`'s config and history, under its lock; `None` past
    /// the last SLA.
    pub fn with_history<T>(&self, i: usize, f: impl FnOnce(&Sla, &History) -> T) -> Option<T> {
        let (sla, state) = (self.catalog.slas.get(i)?, self.slas.get(i)?);
        let mut state = lock(state);
        state.settle_history(sla, None);
        let history = &state.data.history;
        // The base slot still open is not in the history yet: lay it over.
        match state
            .data
            .aggregate
            .as_ref()
            .and_then(Rolling::pending_base)
        {
            Some((at, slot)) => {
                let stamp = Stamp {
                    calendar: sla.clock(),
                    promise: sla.promise,
                    objective: sla.objective,
                };
                let shown = history.overlaid(stamp, at, slot);
                Some(f(sla, &shown))
            }
            None => Some(f(sla, history)),
        }
    }

    /// Drops every slot that has left its window by `now`, and every
    /// history point that has aged out.
    pub fn advance(&self, now: Millis) {
        for (sla, state) in self.catalog.slas.iter().zip(&self.slas) {
            let mut state = lock(state);
            let hours = state.hours_kept;
            if let Some(a) = &mut state.data.aggregate {
                a.advance(now);
            }
            state.settle_history(sla, Some(now));
            state.data.history.prune(sla.clock(), hours, now);
            for r in state
                .data
                .series
                .iter_mut()
                .filter_map(|s| s.rolling.as_mut())
            {
                r.advance(now);
            }
        }
    }

    /// Heap bytes held by windows, for the memory self-metric.
    pub fn heap_bytes(&self) -> usize {
        self.slas
            .iter()
            .map(|s| {
                let s = lock(s);
                let series: usize = s
                    .data
                    .series
                    .iter()
                    .filter_map(|x| x.rolling.as_ref())
                    .map(Rolling::heap_bytes)
                    .sum();
                series
                    + s.data.aggregate.as_ref().map_or(0, Rolling::heap_bytes)
                    + s.data.history.heap_bytes()
            })
            .sum()
    }
}

/// A poisoned lock only means another thread panicked mid-record; the state
/// is still counts and sketches, so keep serving rather than cascade.
fn lock(m: &Mutex<SlaState>) -> MutexGuard<'_, SlaState> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn lock_marks(m: &Mutex<Marks>) -> MutexGuard<'_, Marks> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long an id is remembered: as long as a delivery with it could be admitted.
fn retention(sla: &Sla) -> Millis {
    millis(sla.window.max(LONGEST_ALERT_WINDOW))
}

fn overflow_key(labels: usize) -> Box<str> {
    vec![OVERFLOW_VALUE; labels]
        .join(&KEY_SEPARATOR.to_string())
        .into()
}

impl SlaState {
    fn new(sla: &Sla) -> Self {
        SlaState::restore(
            SlaData {
                labels: sla.labels.clone(),
                series: Vec::new(),
                aggregate: None,
                ids: IdSet::default(),
                overflowed: 0,
                lsn: 0,
                open: OpenItems::default(),
                month: None,
                history: History::default(),
            },
            sla,
        )
    }

    /// State for `sla` from data kept under possibly different settings.
    fn restore(data: SlaData, sla: &Sla) -> Self {
        let (windows, compliance) = windows_for(millis(sla.window));
        let mut state = SlaState {
            windows,
            series_windows: Vec::new(),
            compliance,
            hours_kept: 0,
            promise: Duration::ZERO,
            objective: Decimal::ZERO,
            amazing_limit: None,
            index: foldhash::HashMap::default(),
            data,
        };
        state.data.ids.rebuild();
        state.reconfigure(sla);
        state
    }

    /// Adapts data to `sla`'s (possibly new) settings, keeping every delivery.
    ///
    /// New deliveries are judged against the new promise; recorded ones keep
    /// the relative time they were judged by. Series keys follow the new
    /// label keys (a dropped key merges the series that differed only by it);
    /// a changed compliance window is re-sliced from the old one.
    fn reconfigure(&mut self, sla: &Sla) {
        let (windows, compliance) = windows_for(millis(sla.window));
        // Restored state may come from other settings: reshape always (rings
        // that did not change carry over as they are).
        let aggregate = match self.data.aggregate.take() {
            Some(mut a) => {
                // A base slot closed by the re-slicing still reaches the history.
                a.follow_closed();
                a.reshape(&windows)
            }
            // State from format 5 and older: the series held every window.
            None => {
                let mut all = Rolling::new(&windows);
                for r in self.data.series.iter().filter_map(|s| s.rolling.clone()) {
                    all.absorb(r.reshape(&windows));
                }
                all
            }
        };
        let mut aggregate = aggregate;
        aggregate.follow_closed();
        self.data.aggregate = Some(aggregate);
        self.series_windows = (0..windows.len())
            .filter(|&i| !sla.labels.is_empty() && sla.series_windows.contains(&windows[i].label))
            .collect();
        let series_specs: Vec<WindowSpec> = self
            .series_windows
            .iter()
            .map(|&i| windows[i].clone())
            .collect();
        self.windows = windows;
        self.compliance = compliance;
        self.hours_kept = hours_kept(millis(sla.window));
        self.data.history.forget_lookups();
        // The base slot the re-slicing closed was judged by the promise in
        // force until now (by the new one at a restore: the first config).
        if self.promise.is_zero() {
            (self.promise, self.objective) = (sla.promise, sla.objective);
        }
        self.settle_history(sla, None);
        (self.promise, self.objective) = (sla.promise, sla.objective);
        self.amazing_limit = sla.policy().amazing_limit();
        let old_labels = std::mem::replace(&mut self.data.labels, sla.labels.clone());
        let old = std::mem::take(&mut self.data.series);
        self.index.clear();
        let overflow = overflow_key(sla.labels.len());
        let old_overflow = overflow_key(old_labels.len());
        // A key in the old label order, in the new one.
        let rekey = |key: &str| -> Box<str> {
            if old_labels == sla.labels {
                return key.into();
            }
            if key == &*old_overflow {
                return overflow.clone();
            }
            let values: Vec<&str> = key_values(key).collect();
            sla.labels
                .iter()
                .map(|l| {
                    old_labels
                        .iter()
                        .position(|o| o == l)
                        .and_then(|i| values.get(i).copied())
                        .unwrap_or("")
                })
                .collect::<Vec<_>>()
                .join(&KEY_SEPARATOR.to_string())
                .into()
        };
        self.data.open.reconfigure(sla.clock(), |key| {
            let key = rekey(key);
            let values: Vec<&str> = key_values(&key).collect();
            let promise = sla.promise_for(&values);
            (key, promise)
        });
        for mut s in old {
            // Rings a label set keeps carry over; a newly chosen window
            // starts from the widest ring it had.
            s.rolling = match s.rolling.take() {
                _ if series_specs.is_empty() => None,
                Some(r) => Some(r.reshape(&series_specs)),
                None => Some(Rolling::new(&series_specs)),
            };
            let key = rekey(&s.key);
            let key = if self.index.contains_key(&key) || self.data.series.len() < sla.max_series {
                key
            } else {
                overflow.clone()
            };
            let values: Vec<&str> = key_values(&key).collect();
            s.mixed_promise = key == overflow && !sla.single_promise();
            let promise = if s.mixed_promise {
                sla.promise
            } else {
                sla.promise_for(&values)
            };
            if promise != s.promise {
                // The classic histogram's edges are fractions of the
                // promise: its counts cannot move to the new edges, so it
                // starts again (a counter reset to Prometheus).
                s.buckets = [0; BUCKET_FRACTIONS.len() + 1];
                s.sum_seconds = 0.0;
            }
            s.promise = promise;
            s.judge = Judge::new(s.promise, self.amazing_limit);
            match self.index.get(&key) {
                Some(&i) => self.data.series[i].absorb(s),
                None => {
                    s.key = key.clone();
                    self.index.insert(key, self.data.series.len());
                    self.data.series.push(s);
                }
            }
        }
    }

    fn record(&mut self, sla: &Sla, d: &Delivery, now: Millis) {
        let (i, promise) = self.series_for(sla, &d.key);
        let series = &mut self.data.series[i];
        let obs = match d.outcome {
            Outcome::Delivered { took } => {
                // Every threshold compares whole nanoseconds; the ratio
                // only sizes the sketch.
                let verdict = if series.mixed_promise {
                    Judge::new(promise, self.amazing_limit).judge(took)
                } else {
                    series.judge.judge(took)
                };
                series.buckets[verdict.bucket] += 1;
                series.sum_seconds += took.as_secs_f64();
                series.native.observe(verdict.relative, verdict.late);
                if verdict.late {
                    series.late += 1;
                } else {
                    series.within += 1;
                }
                Observation::Delivered {
                    relative: verdict.relative,
                    late: verdict.late,
                    amazing: verdict.amazing,
                }
            }
            Outcome::Failed => {
                series.failed += 1;
                series.native.observe_failed();
                Observation::Failed
            }
        };
        if let Some(r) = &mut series.rolling {
            r.record(d.at, obs);
        }
        // The history takes the SLA-wide base slots as they close; a late
        // delivery, whose slot has closed, is recorded there itself.
        let (in_open_slot, closed) = match &mut self.data.aggregate {
            Some(a) => (a.record(d.at, obs), a.has_closed()),
            None => (false, false),
        };
        if closed {
            self.settle_history(sla, Some(now));
        }
        let calendar = sla.clock();
        if !in_open_slot {
            let stamp = Stamp {
                calendar,
                promise: sla.promise,
                objective: sla.objective,
            };
            self.data
                .history
                .record(stamp, self.hours_kept, d.at, now, obs);
        }
        if sla.calendar_month {
            month::MonthTally::record(&mut self.data.month, calendar, d.at, now, obs);
        }
    }

    /// Moves the SLA-wide base slots closed since last time into the
    /// history; `now` decides which points have aged out (`None`: none).
    fn settle_history(&mut self, sla: &Sla, now: Option<Millis>) {
        let Some(a) = &mut self.data.aggregate else {
            return;
        };
        let stamp = Stamp {
            calendar: sla.clock(),
            promise: self.promise,
            objective: self.objective,
        };
        for (at, slot) in a.take_closed() {
            let now = now.unwrap_or(at);
            self.data
                .history
                .absorb(stamp, self.hours_kept, at, now, &slot);
        }
    }

    /// Records a delivery older than every window in the SLA's history
    /// alone: counters, windows and label sets describe the present. False
    /// when it is a repeat (by id) or older than the history keeps.
    fn backfill(&mut self, sla: &Sla, d: &Delivery, now: Millis) -> bool {
        let obs = match d.outcome {
            Outcome::Delivered { took } => {
                let values: Vec<&str> = key_values(&d.key).collect();
                let verdict = Judge::new(sla.promise_for(&values), self.amazing_limit).judge(took);
                Observation::Delivered {
                    relative: verdict.relative,
                    late: verdict.late,
                    amazing: verdict.amazing,
                }
            }
            Outcome::Failed => Observation::Failed,
        };
        let stamp = Stamp {
            calendar: sla.clock(),
            promise: sla.promise,
            objective: sla.objective,
        };
        self.data.history.backfill(stamp, d.at, now, obs)
    }

    /// Whether `id` of a delivery completed at `at` is new, remembering it:
    /// in the id set while a delivery with it could be admitted live, and,
    /// for one dated before today (an import, mostly), with its day for as
    /// long as the history keeps that day. So a re-import counts a row once
    /// even after the id set has forgotten it, while live traffic, dated
    /// today, costs the history nothing.
    fn take_id(&mut self, sla: &Sla, id: &str, at: Millis, now: Millis, cap: usize) -> bool {
        let calendar = sla.clock();
        let dated_before_today = self.data.history.before_today(calendar, at, now);
        // Hashed once for the id set and the day (which keeps 64 of the 128
        // bits: a collision among a year of ids is far rarer than a lost disk).
        let full = self.data.ids.hash(id);
        let hash = full as u64;
        if dated_before_today && self.data.history.remembers(calendar, at, hash) {
            return false;
        }
        // Every id goes to the id set too, so the same id dated elsewhere
        // within its retention counts once as well.
        let new = self.data.ids.insert_hash(full, now, retention(sla), cap);
        if new && dated_before_today {
            let stamp = Stamp {
                calendar,
                promise: self.promise,
                objective: self.objective,
            };
            let forgotten = self.data.history.remember(stamp, at, now, hash, cap);
            self.data.ids.forgotten += forgotten;
        }
        new
    }

    /// The series for `key` and the promise its delivery is judged by.
    fn series_for(&mut self, sla: &Sla, key: &str) -> (usize, Duration) {
        // A label-less SLA has exactly one series: skip the map.
        if let (true, Some(s)) = (sla.labels.is_empty(), self.data.series.first()) {
            return (0, s.promise);
        }
        if let Some(&i) = self.index.get(key) {
            let s = &self.data.series[i];
            if !s.mixed_promise {
                return (i, s.promise);
            }
        }
        let values: Vec<&str> = key_values(key).collect();
        let promise = sla.promise_for(&values);
        if let Some(&i) = self.index.get(key) {
            return (i, promise);
        }
        let (key, mixed): (Box<str>, bool) = if self.data.series.len() < sla.max_series {
            (key.into(), false)
        } else {
            self.data.overflowed += 1;
            let overflow = overflow_key(sla.labels.len());
            if let Some(&i) = self.index.get(&overflow) {
                return (i, promise);
            }
            (overflow, !sla.single_promise())
        };
        let i = self.data.series.len();
        self.index.insert(key.clone(), i);
        let series_promise = if mixed { sla.promise } else { promise };
        self.data.series.push(Series {
            key,
            promise: series_promise,
            judge: Judge::new(series_promise, self.amazing_limit),
            mixed_promise: mixed,
            rolling: (!self.series_windows.is_empty()).then(|| {
                let specs: Vec<WindowSpec> = self
                    .series_windows
                    .iter()
                    .map(|&i| self.windows[i].clone())
                    .collect();
                Rolling::new(&specs)
            }),
            within: 0,
            late: 0,
            failed: 0,
            buckets: [0; BUCKET_FRACTIONS.len() + 1],
            sum_seconds: 0.0,
            native: NativeBuckets::default(),
        });
        (i, promise)
    }

    /// The SLA-wide deliveries of every window at `now`, the calendar
    /// month last when the SLA reports one (it is then the compliance window).
    fn windows_at(&mut self, sla: &Sla, now: Millis) -> Windows {
        let mut digests: Vec<Digest> = match &mut self.data.aggregate {
            Some(a) => {
                a.advance(now);
                (0..self.windows.len()).map(|w| a.window(w, now)).collect()
            }
            None => (0..self.windows.len()).map(|_| Digest::new()).collect(),
        };
        self.settle_history(sla, Some(now));
        let mut specs = self.windows.clone();
        let mut compliance = self.compliance;
        if sla.calendar_month {
            let calendar = sla.clock();
            let (spec, digest) = month::MonthTally::report(&self.data.month, calendar, now);
            specs.push(spec);
            digests.push(digest);
            compliance = specs.len() - 1;
        }
        Windows {
            specs,
            compliance,
            digests,
        }
    }

    fn report(&mut self, sla: &Sla, now: Millis) -> SlaReport {
        let policy = sla.policy();
        let labelled = !sla.labels.is_empty();
        let Windows {
            specs: windows,
            compliance,
            digests: merged,
        } = self.windows_at(sla, now);
        let mut series = Vec::new();
        for s in &mut self.data.series {
            let mut figures = Vec::with_capacity(self.series_windows.len());
            if let Some(r) = &mut s.rolling {
                r.advance(now);
                for (ring, &w) in self.series_windows.iter().enumerate() {
                    figures.push((w, margin::assess(&r.window(ring, now), &policy)));
                }
            }
            if labelled {
                series.push(SeriesReport {
                    key: s.key.clone(),
                    promise: (!s.mixed_promise).then_some(s.promise),
                    figures,
                    counters: s.counters(),
                });
            }
        }
        let single_counters = if labelled {
            None
        } else {
            self.data.series.first().map(|s| (s.promise, s.counters()))
        };
        SlaReport {
            windows,
            compliance,
            aggregate: merged.iter().map(|d| margin::assess(d, &policy)).collect(),
            single_counters,
            series,
            overflowed: self.data.overflowed,
            forgotten_ids: self.data.ids.forgotten,
            open: clocks::summarize(&mut self.data.open, sla, now),
        }
    }
}

impl Series {
    fn counters(&self) -> Counters {
        Counters {
            within: self.within,
            late: self.late,
            failed: self.failed,
            buckets: self.buckets,
            sum_seconds: self.sum_seconds,
            native: self.native.clone(),
        }
    }

    /// Takes over `other`'s deliveries and counts (a label key was dropped).
    fn absorb(&mut self, other: Series) {
        match (&mut self.rolling, other.rolling) {
            (Some(mine), Some(theirs)) => mine.absorb(theirs),
            (mine @ None, theirs) => *mine = theirs,
            (Some(_), None) => {}
        }
        self.within += other.within;
        self.late += other.late;
        self.failed += other.failed;
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
        self.sum_seconds += other.sum_seconds;
        self.native.merge(&other.native);
    }
}

/// An SLA's deliveries per window, SLA-wide.
#[derive(Debug, Clone)]
pub struct Windows {
    /// Its windows, alert windows first, finest first; the calendar month last.
    pub specs: Vec<WindowSpec>,
    /// Index of the compliance window in `specs`.
    pub compliance: usize,
    /// The deliveries in each window, as `specs` lists them.
    pub digests: Vec<Digest>,
}

/// Cumulative counts since start for one series.
#[derive(Debug, Clone, PartialEq)]
pub struct Counters {
    /// Completed within the promise.
    pub within: u64,
    /// Completed after it.
    pub late: u64,
    /// Never delivered.
    pub failed: u64,
    /// Completed deliveries per bucket (not cumulative).
    pub buckets: [u64; BUCKET_FRACTIONS.len() + 1],
    /// Seconds of completed deliveries.
    pub sum_seconds: f64,
    /// Native-histogram buckets of r = duration / promise.
    pub native: NativeBuckets,
}

/// Everything exposition needs for one SLA at one instant.
#[derive(Debug, Clone)]
pub struct SlaReport {
    /// Its windows, alert windows first, finest first.
    pub windows: Vec<WindowSpec>,
    /// Index of the compliance window in `windows`.
    pub compliance: usize,
    /// SLA-wide figures per window.
    pub aggregate: Vec<Figures>,
    /// For an SLA without labels: its one series' promise and counters.
    pub single_counters: Option<(Duration, Counters)>,
    /// Per label combination (empty for an SLA without labels).
    pub series: Vec<SeriesReport>,
    /// Deliveries folded into the overflow series.
    pub overflowed: u64,
    /// Ids forgotten early because `limits.max_tracked_ids` was reached.
    pub forgotten_ids: u64,
    /// Its open deliveries.
    pub open: OpenSummary,
}

/// One label combination's figures and counters.
#[derive(Debug, Clone)]
pub struct SeriesReport {
    /// Label values joined by the key separator.
    pub key: Box<str>,
    /// `None` for an overflow series mixing promises.
    pub promise: Option<Duration>,
    /// Figures of the windows the SLA exports per label set
    /// (`Sla::series_windows`), as (index into `SlaReport::windows`, figures).
    pub figures: Vec<(usize, Figures)>,
    /// Counters since start.
    pub counters: Counters,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::delivery::{Input, Reach, Timing};

    /// Tickets carried over from snapshot format 3, an hour's promise each,
    /// listed at 8h: one that fell due before a pause at an instant that
    /// release did not keep (due_at null) leads, before one that fell due at
    /// a known instant (5h30); then one running short of its promise, then
    /// one paused short of it.
    #[test]
    fn a_format_3_ticket_past_due_at_an_unknown_instant_lists_first() {
        const H: Millis = 3_600_000;
        let yaml = "version: 1\nslas:\n  - name: desk\n    promise: 1h\n    objective: 90%\n";
        let catalog = Arc::new(Config::parse(yaml).unwrap().catalog());
        let rec = Recorder::new(catalog);
        lock(&rec.slas[0]).data.open = open::tests::format_3(&[
            ("known", H / 2, Some(5 * H)),
            ("paused", H / 4, None),
            ("running", 0, Some(8 * H - H / 2)),
            ("unknown", 2 * H, Some(5 * H)),
        ]);
        let listed = rec.open_items(8 * H, |_| true);
        let ids: Vec<&str> = listed.iter().map(|v| v.id.as_str()).collect();
        assert_eq!(ids, ["unknown", "known", "running", "paused"]);
        assert_eq!(listed[0].due_at, None);
        assert_eq!(listed[0].state, open::OpenState::Overdue);
        assert_eq!(listed[1].due_at.as_deref(), Some("1970-01-01T05:30:00Z"));
        assert_eq!(listed[3].due_at, None);
        assert!(listed[3].paused);
    }

    const DAY: Millis = 86_400_000;

    fn batch(
        catalog: &Catalog,
        ids: std::ops::Range<u32>,
        at: Millis,
        now: Millis,
    ) -> Vec<Delivery> {
        ids.map(|i| {
            let id = format!("r{i}");
            let input = Input {
                sla: "desk",
                labels: &[],
                timing: Timing::Took {
                    took: Duration::from_secs(60),
                    at: Some(at),
                },
                id: Some(&id),
            };
            catalog.admit_reaching(&input, now, Reach::History).unwrap()
        })
        .collect()
    }

    /// An export imported while its rows were inside the window, imported
    /// again once they have left it (and the id set has forgotten them),
    /// counts nothing twice; live rows dated today cost the history no id.
    #[test]
    fn a_reimport_after_the_window_counts_nothing_twice() {
        let yaml = "version: 1\nslas:\n  - name: desk\n    promise: 4h\n    objective: 95%\n    window: 30d\n";
        let catalog = Arc::new(Config::parse(yaml).unwrap().catalog());
        let r = Recorder::new(catalog.clone());
        let now = 1_795_600_000_000;
        let first = r.record(&batch(&catalog, 0..12, now - 7 * DAY, now), now, None);
        assert_eq!((first.accepted, first.backfilled), (12, 0));
        let later = now + 40 * DAY;
        let again = r.record(&batch(&catalog, 0..12, now - 7 * DAY, later), later, None);
        assert_eq!((again.accepted, again.duplicates), (0, 12));
        let new = r.record(&batch(&catalog, 12..14, now - 7 * DAY, later), later, None);
        assert_eq!((new.accepted, new.backfilled), (2, 2));
        // The same id dated elsewhere, while the id set still holds it.
        let moved = r.record(&batch(&catalog, 12..13, now - 9 * DAY, later), later, None);
        assert_eq!(moved.duplicates, 1);
        assert_eq!(
            r.repeats(&batch(&catalog, 0..14, now - 7 * DAY, later), later),
            14
        );
        // Today's rows go to the id set alone.
        let today = r.record(&batch(&catalog, 100..101, later, later), later, None);
        assert_eq!(today.accepted, 1);
        let hash = lock(&r.slas[0]).data.ids.hash("r100") as u64;
        let kept = r.with_history(0, |sla, h| h.remembers(sla.clock(), later, hash));
        assert_eq!(kept, Some(false));
    }
}
