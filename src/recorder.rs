//! The one recorder every source sends deliveries to: series, windows, counters, ids.

use std::collections::hash_map::RandomState;
use std::collections::{HashSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::delivery::{Delivery, Outcome, key_values, millis};
use crate::margin::{self, Figures};
use crate::sla::{Catalog, Sla};
use crate::window::{
    Digest, LONGEST_ALERT_WINDOW, Millis, Observation, Rolling, WindowSpec, windows_for,
};

/// Histogram bucket edges as fractions of the promise (DESIGN.md §2).
pub const BUCKET_FRACTIONS: [f64; 9] = [0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.5, 2.0, 5.0];

/// Label value every label of the overflow series carries.
pub const OVERFLOW_VALUE: &str = "__overflow__";

/// Outcome of recording a batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    pub accepted: u64,
    /// Already seen `(sla, id)`: acknowledged, counted once.
    pub duplicates: u64,
}

pub struct Recorder {
    catalog: Arc<Catalog>,
    slas: Vec<Mutex<SlaState>>,
}

/// Everything kept for one SLA.
struct SlaState {
    windows: Vec<WindowSpec>,
    compliance: usize,
    amazing_limit: f64,
    /// Series key -> index into `series`; foldhash is seeded per map, so
    /// label values chosen by clients cannot force collisions.
    index: foldhash::HashMap<Box<str>, usize>,
    series: Vec<Series>,
    /// SLA-wide windows; `None` when the SLA has no labels (its one series is it).
    aggregate: Option<Rolling>,
    ids: IdSet,
    overflowed: u64,
}

/// One label combination: windows plus the cumulative Prometheus counters.
struct Series {
    key: Box<str>,
    promise_seconds: f64,
    /// Several promises fold into this series (the overflow series of an SLA with goals).
    mixed_promise: bool,
    rolling: Rolling,
    within: u64,
    late: u64,
    failed: u64,
    /// Non-cumulative counts per [`BUCKET_FRACTIONS`] edge, plus one past the last.
    buckets: [u64; BUCKET_FRACTIONS.len() + 1],
    sum_seconds: f64,
}

impl Recorder {
    pub fn new(catalog: Arc<Catalog>) -> Self {
        let slas = catalog
            .slas
            .iter()
            .map(|s| Mutex::new(SlaState::new(s)))
            .collect();
        Recorder { catalog, slas }
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// Records admitted deliveries (admitted against [`Recorder::catalog`]).
    pub fn record(&self, batch: &[Delivery], now: Millis) -> Recorded {
        let mut out = Recorded::default();
        let mut held: Option<(usize, MutexGuard<'_, SlaState>)> = None;
        for d in batch {
            // Batches are usually one SLA: keep its lock across the run.
            let state = match &mut held {
                Some((sla, guard)) if *sla == d.sla => guard,
                _ => {
                    held = None;
                    &mut held.insert((d.sla, lock(&self.slas[d.sla]))).1
                }
            };
            let sla = &self.catalog.slas[d.sla];
            if let Some(id) = &d.id
                && !state
                    .ids
                    .insert(id, now, retention(sla), self.catalog.limits.max_tracked_ids)
            {
                out.duplicates += 1;
                continue;
            }
            state.record(sla, d);
            out.accepted += 1;
        }
        out
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

    /// Heap bytes held by windows, for the memory self-metric.
    pub fn heap_bytes(&self) -> usize {
        self.slas
            .iter()
            .map(|s| {
                let s = lock(s);
                s.series
                    .iter()
                    .map(|x| x.rolling.heap_bytes())
                    .sum::<usize>()
                    + s.aggregate.as_ref().map_or(0, Rolling::heap_bytes)
            })
            .sum()
    }
}

/// A poisoned lock only means another thread panicked mid-record; the state
/// is still counts and sketches, so keep serving rather than cascade.
fn lock(m: &Mutex<SlaState>) -> MutexGuard<'_, SlaState> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long an id is remembered: as long as a delivery with it could be admitted.
fn retention(sla: &Sla) -> Millis {
    millis(sla.window.max(LONGEST_ALERT_WINDOW))
}

impl SlaState {
    fn new(sla: &Sla) -> Self {
        let (windows, compliance) = windows_for(millis(sla.window));
        SlaState {
            aggregate: (!sla.labels.is_empty()).then(|| Rolling::new(&windows)),
            windows,
            compliance,
            amazing_limit: sla.policy().amazing_limit().unwrap_or(f64::NEG_INFINITY),
            index: foldhash::HashMap::default(),
            series: Vec::new(),
            ids: IdSet::default(),
            overflowed: 0,
        }
    }

    fn record(&mut self, sla: &Sla, d: &Delivery) {
        let (i, promise) = self.series_for(sla, &d.key);
        let series = &mut self.series[i];
        let obs = match d.outcome {
            Outcome::Delivered { seconds } => {
                let relative = seconds / promise;
                let bucket = BUCKET_FRACTIONS.partition_point(|f| *f < relative);
                series.buckets[bucket] += 1;
                series.sum_seconds += seconds;
                if relative <= 1.0 {
                    series.within += 1;
                } else {
                    series.late += 1;
                }
                Observation::Delivered {
                    relative,
                    amazing: relative <= self.amazing_limit,
                }
            }
            Outcome::Failed => {
                series.failed += 1;
                Observation::Failed
            }
        };
        series.rolling.record(d.at, obs);
        if let Some(aggregate) = &mut self.aggregate {
            aggregate.record(d.at, obs);
        }
    }

    /// The series for `key` and the promise (seconds) its delivery is judged by.
    fn series_for(&mut self, sla: &Sla, key: &str) -> (usize, f64) {
        // A label-less SLA has exactly one series: skip the map.
        if let (true, Some(s)) = (sla.labels.is_empty(), self.series.first()) {
            return (0, s.promise_seconds);
        }
        if let Some(&i) = self.index.get(key) {
            let s = &self.series[i];
            if !s.mixed_promise {
                return (i, s.promise_seconds);
            }
        }
        let values: Vec<&str> = key_values(key).collect();
        let promise = sla.promise_for(&values).as_secs_f64();
        if let Some(&i) = self.index.get(key) {
            return (i, promise);
        }
        let (key, mixed): (Box<str>, bool) = if self.series.len() < sla.max_series {
            (key.into(), false)
        } else {
            self.overflowed += 1;
            let overflow = vec![OVERFLOW_VALUE; sla.labels.len()]
                .join(&crate::delivery::KEY_SEPARATOR.to_string());
            if let Some(&i) = self.index.get(overflow.as_str()) {
                return (i, promise);
            }
            (overflow.into(), !sla.single_promise())
        };
        let i = self.series.len();
        self.index.insert(key.clone(), i);
        self.series.push(Series {
            key,
            promise_seconds: if mixed {
                sla.promise.as_secs_f64()
            } else {
                promise
            },
            mixed_promise: mixed,
            rolling: Rolling::new(&self.windows),
            within: 0,
            late: 0,
            failed: 0,
            buckets: [0; BUCKET_FRACTIONS.len() + 1],
            sum_seconds: 0.0,
        });
        (i, promise)
    }

    fn report(&mut self, sla: &Sla, now: Millis) -> SlaReport {
        let policy = sla.policy();
        let n = self.windows.len();
        let figures_of = |rolling: &mut Rolling| -> Vec<Figures> {
            rolling.advance(now);
            (0..n)
                .map(|w| margin::assess(&rolling.window(w, now), &policy))
                .collect()
        };
        let aggregate = match &mut self.aggregate {
            Some(rolling) => figures_of(rolling),
            None => match self.series.first_mut() {
                Some(s) => figures_of(&mut s.rolling),
                None => (0..n)
                    .map(|_| margin::assess(&Digest::new(), &policy))
                    .collect(),
            },
        };
        let series = if self.aggregate.is_some() {
            self.series
                .iter_mut()
                .map(|s| SeriesReport {
                    key: s.key.clone(),
                    promise_seconds: (!s.mixed_promise).then_some(s.promise_seconds),
                    figures: figures_of(&mut s.rolling),
                    counters: s.counters(),
                })
                .collect()
        } else {
            Vec::new()
        };
        // Counters of the single series of a label-less SLA.
        let counters = if self.aggregate.is_none() {
            self.series
                .first()
                .map(|s| (s.promise_seconds, s.counters()))
        } else {
            None
        };
        SlaReport {
            windows: self.windows.clone(),
            compliance: self.compliance,
            aggregate,
            single_counters: counters,
            series,
            overflowed: self.overflowed,
            forgotten_ids: self.ids.forgotten,
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
        }
    }
}

/// Cumulative counts since start for one series.
#[derive(Debug, Clone, PartialEq)]
pub struct Counters {
    pub within: u64,
    pub late: u64,
    pub failed: u64,
    pub buckets: [u64; BUCKET_FRACTIONS.len() + 1],
    pub sum_seconds: f64,
}

/// Everything exposition needs for one SLA at one instant.
#[derive(Debug, Clone)]
pub struct SlaReport {
    pub windows: Vec<WindowSpec>,
    /// Index of the compliance window in `windows`.
    pub compliance: usize,
    /// SLA-wide figures per window.
    pub aggregate: Vec<Figures>,
    /// For an SLA without labels: its one series' counters and promise.
    pub single_counters: Option<(f64, Counters)>,
    /// Per label combination (empty for an SLA without labels).
    pub series: Vec<SeriesReport>,
    pub overflowed: u64,
    pub forgotten_ids: u64,
}

#[derive(Debug, Clone)]
pub struct SeriesReport {
    pub key: Box<str>,
    /// `None` for an overflow series mixing promises.
    pub promise_seconds: Option<f64>,
    pub figures: Vec<Figures>,
    pub counters: Counters,
}

/// Ids seen recently, as 128-bit hashes, forgotten after their retention or
/// oldest first past the cap.
struct IdSet {
    hashers: (RandomState, RandomState),
    seen: HashSet<u128>,
    order: VecDeque<(Millis, u128)>,
    forgotten: u64,
}

impl Default for IdSet {
    fn default() -> Self {
        IdSet {
            hashers: (RandomState::new(), RandomState::new()),
            seen: HashSet::new(),
            order: VecDeque::new(),
            forgotten: 0,
        }
    }
}

impl IdSet {
    /// False when `id` was already seen.
    fn insert(&mut self, id: &str, now: Millis, retention: Millis, cap: usize) -> bool {
        while self
            .order
            .front()
            .is_some_and(|(expires, _)| *expires <= now)
        {
            if let Some((_, h)) = self.order.pop_front() {
                self.seen.remove(&h);
            }
        }
        let h = (u128::from(self.hashers.0.hash_one(id)) << 64)
            | u128::from(self.hashers.1.hash_one(id));
        if !self.seen.insert(h) {
            return false;
        }
        self.order.push_back((now + retention, h));
        while self.order.len() > cap {
            if let Some((_, old)) = self.order.pop_front() {
                self.seen.remove(&old);
                self.forgotten += 1;
            }
        }
        true
    }
}
