//! Sources: each turns its input into deliveries (or open-delivery events)
//! and hands them to the journal through [`SourceContext::commit`], the one
//! way in. It admits against the catalog in force, commits, admits again
//! when a reload overtakes the batch, and counts every outcome under the
//! source's [`Source`] and each refusal's [`Reason`].
//!
//! # Adding a source
//!
//! A kind of source configured under `sources:` is one module, its settings
//! beside it, and one registration line:
//!
//! 1. `src/source.rs`: a [`Source`] variant (its `source` label), and the
//!    reasons it can give in [`Source::reasons`] (the match is exhaustive:
//!    leaving it out does not compile). Every refusal is a [`Reason`].
//! 2. `src/ingest/<name>/mod.rs`: a pure parser from input to [`Readings`],
//!    an `async fn run(config, SourceContext)` that reads until
//!    [`SourceContext::shutdown`] and hands what it read to
//!    [`SourceContext::deliver`] (readings) or [`SourceContext::commit`]
//!    (anything else), counting lines it cannot read with
//!    [`SourceContext::refuse`] (it never writes the recorder or the journal
//!    itself), and how its settings are checked, started (with
//!    [`Task::spawn`]), changed on reload and stopped: a unit type
//!    implementing [`Kind`], or, for a list of sources known by name,
//!    [`Named`] on the settings ([`ListOf`] is then the kind).
//! 3. `src/ingest/<name>/config.rs`: its YAML shape (`Raw...`, fields
//!    `pub(crate)`), its `KEYS` (a test reads the shape and checks them), its
//!    checked settings type (with `PartialEq`, which a reload compares) and
//!    its validator, declared field by field with [`crate::fields::Section`].
//! 4. One line in the `sources!` list below: `key in name: name::Kind` (or
//!    `key in name: ListOf<name::Config>`). It declares the module and
//!    gives the kind its field in [`RawSources`] (the YAML), [`Sources`]
//!    (the checked config) and [`RunningSources`] (what the supervisor
//!    starts, reconfigures and stops), its keys in [`SOURCE_KEYS`] and its
//!    label in [`CONFIGURED`]. A `Source` without this line fails the unit
//!    test `every_source_is_a_route_or_a_registered_kind`. Its counters
//!    show from its start: [`Task::spawn`] registers them.
//! 5. `tests/integration/exporter.rs`: configure it in
//!    `every_source_is_started_and_counted_from_the_start` and feed it one
//!    delivery; the test fails for a [`Source`] that is missing there, or
//!    configured but never started (not registered).
//! 6. Test it against the real client software it stands in for.

pub mod events;
pub mod json;
mod kind;
pub mod pattern;
pub mod push;
pub mod readings;

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;

use crate::auth::Denied;
use crate::clock::Clock;
use crate::delivery::{Series, Timing};
use crate::exposition::SelfMetrics;
use crate::persist::{CommitError, Journal, Pending};
use crate::recorder::{Mark, Recorded, Recorder};
use crate::sla::{Catalog, LiveCatalog};
use crate::window::Millis;

pub use crate::persist::Batch;
pub use crate::source::{Reason, Source};
pub use kind::{Changes, Kind, ListOf, Named, StartError, Task};

kind::sources! {
    /// Timers over UDP, TCP or a Unix datagram socket.
    statsd in statsd: statsd::Statsd,
    /// Followed log files.
    log_tail in log_tail: ListOf<log_tail::LogTailConfig>,
    /// Active HTTP checks.
    probes in probe: ListOf<probe::ProbeConfig>,
    /// Which OTLP spans become deliveries of which SLA.
    otlp in otlp: otlp::Otlp,
}
use json::ItemError;
pub use readings::{Labels, Reading, Readings, SeriesCache, Slot};

/// Admissions tried when reloads keep overtaking a batch.
const RETRIES: usize = 3;

/// A batch ready to commit, and the items refused one by one while
/// admitting it (counted, not fatal: one bad line never holds back the rest).
#[derive(Debug)]
pub struct Admitted {
    /// What to record.
    pub batch: Batch,
    /// Reasons of the items left out of it.
    pub dropped: Vec<Reason>,
}

impl Admitted {
    /// The whole input, nothing left out.
    pub fn all(batch: Batch) -> Admitted {
        Admitted {
            batch,
            dropped: Vec::new(),
        }
    }
}

/// Why nothing of a commit was recorded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refused {
    /// The input itself: every problem, each with its line and reason.
    #[error("{} item{} refused", .0.len(), if .0.len() == 1 { "" } else { "s" })]
    Input(Vec<ItemError>),
    /// The caller may not write here.
    #[error(transparent)]
    Denied(#[from] Denied),
    /// The journal could not take it (full disk, full queue, shutting down).
    #[error(transparent)]
    Storage(CommitError),
    /// Reloads kept overtaking the batch.
    #[error("the config kept changing while the batch was in flight")]
    Unsettled,
    /// A bug: reading the input failed (a decoder panicked). Logged, not
    /// counted under any reason.
    #[error("reading the input failed: {0}")]
    Internal(String),
}

/// What every source gets: where deliveries go, the catalog in force, what
/// to count, the time, and when to stop. Cheap to clone.
#[derive(Clone)]
pub struct SourceContext {
    journal: Journal,
    catalog: LiveCatalog,
    metrics: SelfMetrics,
    clock: Arc<dyn Clock>,
    /// Resolves when the exporter stops.
    pub shutdown: Shutdown,
}

/// Resolves when the exporter stops; cheap to clone into every task.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// Sets every [`Shutdown`] made with it.
pub struct StopSources(watch::Sender<bool>);

impl Shutdown {
    /// A shutdown signal and its trigger.
    pub fn new() -> (StopSources, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (StopSources(tx), Shutdown(rx))
    }

    /// Waits until the exporter stops.
    pub async fn wait(&mut self) {
        // An error means the sender is gone: stopping too.
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

impl StopSources {
    /// Tells every source to stop.
    pub fn stop(&self) {
        let _ = self.0.send(true);
    }
}

impl SourceContext {
    /// The context of every source of one exporter.
    pub fn new(
        journal: Journal,
        catalog: LiveCatalog,
        metrics: SelfMetrics,
        clock: Arc<dyn Clock>,
        shutdown: Shutdown,
    ) -> SourceContext {
        SourceContext {
            journal,
            catalog,
            metrics,
            clock,
            shutdown,
        }
    }

    /// This context with a stop signal of its own, and the signal: for a
    /// source that can be stopped alone (a reload took it away or changed
    /// it) while the others go on.
    pub fn with_own_stop(&self) -> (StopSources, SourceContext) {
        let (stop, shutdown) = Shutdown::new();
        let ctx = SourceContext {
            shutdown,
            ..self.clone()
        };
        (stop, ctx)
    }

    /// Whether the log writer runs, so writes can be recorded at all.
    pub fn writer_alive(&self) -> bool {
        self.journal.alive()
    }

    /// The catalog in force now.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.get()
    }

    /// The time, from the injected clock.
    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    /// The recorder in force, to read figures, open items and marks from.
    /// Writes go through [`SourceContext::commit`].
    pub fn recorder(&self) -> Arc<Recorder> {
        self.journal.recorder()
    }

    /// The exporter's own metrics, for a source's own counters (packets
    /// received, files followed); outcomes of input are counted by
    /// [`SourceContext::commit`] and [`SourceContext::refuse`].
    pub fn metrics(&self) -> &SelfMetrics {
        &self.metrics
    }

    /// Counts `n` items of `source` refused before admission: lines that do
    /// not parse, requests refused before their body is read.
    pub fn refuse(&self, source: Source, reason: Reason, n: u64) {
        self.metrics.rejected(source, reason, n);
    }

    /// The one way in. `admit` reads the input against the catalog in force
    /// at `now` into a batch and anything the caller wants back (`T`, such
    /// as where each item was); the batch is logged and applied as durably
    /// as its SLAs ask. When a reload overtakes it before it is logged, it is
    /// admitted again under the new catalog, at most three times. Every
    /// outcome is counted under `source`: recorded, duplicates, each refused
    /// item, a refused caller, a storage failure and each event that did not
    /// apply.
    pub async fn commit<T, F, Fut>(
        &self,
        source: Source,
        mut admit: F,
    ) -> Result<(Recorded, T), Refused>
    where
        F: FnMut(Arc<Catalog>, Millis) -> Fut,
        Fut: Future<Output = Result<(Admitted, T), Refused>>,
    {
        let mut items = 0;
        for _ in 0..RETRIES {
            let catalog = self.catalog();
            let now = self.now();
            let (admitted, extra) = match admit(catalog.clone(), now).await {
                Ok(a) => a,
                Err(refused) => {
                    self.count_refused(source, &refused, 0);
                    return Err(refused);
                }
            };
            items = admitted.batch.len() as u64;
            if admitted.batch.is_empty() {
                self.count_dropped(source, &admitted.dropped);
                return Ok((Recorded::default(), extra));
            }
            let result = self
                .journal
                .commit(Pending::new(catalog, admitted.batch, now))
                .await;
            if result == Err(CommitError::Stale) {
                continue;
            }
            self.count_dropped(source, &admitted.dropped);
            return match result {
                Ok(recorded) => {
                    self.metrics.accepted(source, recorded.accepted);
                    self.metrics.duplicates(source, recorded.duplicates);
                    for refused in recorded.events.iter().filter_map(|e| e.as_ref().err()) {
                        self.metrics.rejected(source, refused.reason(), 1);
                    }
                    Ok((recorded, extra))
                }
                Err(e) => {
                    let refused = Refused::Storage(e);
                    self.count_refused(source, &refused, items);
                    Err(refused)
                }
            };
        }
        self.count_refused(source, &Refused::Unsettled, items);
        Err(Refused::Unsettled)
    }

    /// Commits what a source read: each reading admitted on its own (the
    /// refused ones counted and left out), the rest as one batch, with
    /// `mark` (how far the source read) even when every reading was refused,
    /// so the source resumes after them.
    pub async fn deliver(
        &self,
        source: Source,
        readings: &Readings,
        mark: Option<Mark>,
    ) -> Result<Recorded, Refused> {
        let admit = |catalog: Arc<Catalog>, now| {
            std::future::ready(Ok((
                admit_readings(&catalog, readings, mark.clone(), now),
                (),
            )))
        };
        self.commit(source, admit)
            .await
            .map(|(recorded, ())| recorded)
    }

    fn count_dropped(&self, source: Source, dropped: &[Reason]) {
        for reason in dropped {
            self.metrics.rejected(source, *reason, 1);
        }
    }

    /// Counts a refusal; `items` is how many deliveries a storage failure
    /// turned away.
    fn count_refused(&self, source: Source, refused: &Refused, items: u64) {
        match refused {
            Refused::Input(errors) => {
                for e in errors {
                    self.metrics.rejected(source, e.kind, 1);
                }
            }
            Refused::Denied(d) => self.metrics.rejected(source, d.reason(), 1),
            Refused::Storage(CommitError::Overloaded) | Refused::Unsettled => {
                self.metrics.rejected(source, Reason::Overloaded, items);
            }
            Refused::Storage(_) => {
                self.metrics
                    .rejected(source, Reason::StorageUnavailable, items);
            }
            Refused::Internal(why) => tracing::error!(%source, why, "input not read"),
        }
    }
}

/// Admits each reading on its own against `catalog` at `now`, each series
/// once.
fn admit_readings(
    catalog: &Catalog,
    readings: &Readings,
    mark: Option<Mark>,
    now: Millis,
) -> Admitted {
    let mut labels: Vec<(&str, &str)> = Vec::new();
    let series: Vec<Result<Series, Reason>> = readings
        .all_series()
        .iter()
        .map(|(sla, values)| {
            labels.clear();
            labels.extend(values.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            catalog.series(sla, &labels).map_err(|e| e.kind)
        })
        .collect();
    let mut deliveries = Vec::with_capacity(readings.len());
    let mut dropped = Vec::new();
    for (slot, timing) in by_series(readings, series.len()) {
        let admitted = match series.get(slot) {
            Some(Ok(series)) => catalog
                .admit_to(series, timing, None, now)
                .map_err(|e| e.kind),
            Some(Err(reason)) => Err(*reason),
            None => Err(Reason::Invalid),
        };
        match admitted {
            Ok(d) => deliveries.push(d),
            Err(reason) => dropped.push(reason),
        }
    }
    Admitted {
        batch: Batch::Deliveries { deliveries, mark },
        dropped,
    }
}

/// The items of `readings` series by series (in the order each series was
/// added, each series' items in the order read), so the journal names each
/// series once; deliveries without ids record the same in any order.
/// Items of a slot past `series` come last.
fn by_series(readings: &Readings, series: usize) -> impl Iterator<Item = (usize, Timing)> + '_ {
    // A counting sort: where each series' items begin, then each item.
    let mut starts = vec![0usize; series + 2];
    for (slot, _) in readings.items() {
        starts[slot.min(series) + 2] += 1;
    }
    for i in 2..starts.len() {
        starts[i] += starts[i - 1];
    }
    let mut order = vec![0u32; readings.len()];
    for (i, (slot, _)) in readings.items().enumerate() {
        let at = &mut starts[slot.min(series) + 1];
        order[*at] = i as u32;
        *at += 1;
    }
    order
        .into_iter()
        .filter_map(move |i| readings.item(i as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every source that is not an HTTP route of its own is a kind in the
    /// `sources!` list: a new `Source` without its registration line fails
    /// here, before any integration test.
    #[test]
    fn every_source_is_a_route_or_a_registered_kind() {
        for source in Source::ALL {
            let route = matches!(source, Source::Http | Source::Events | Source::Reload);
            assert!(
                route || CONFIGURED.contains(source),
                "{source:?} has no line in the sources! list of src/ingest/mod.rs"
            );
        }
        assert!(
            CONFIGURED.contains(&Source::Otlp),
            "OTLP's rules are a kind too"
        );
    }
    use crate::recorder::open::EventError;

    /// A batch is admitted series by series, each series' deliveries in
    /// the order read, so the journal names each series once.
    #[test]
    fn readings_are_admitted_series_by_series() {
        let sla: Arc<str> = "api".into();
        let labels = |route: &str| -> Labels { vec![("route".into(), route.into())].into() };
        let took = |ms| Timing::Took {
            took: std::time::Duration::from_millis(ms),
            at: None,
        };
        let mut batch = Readings::default();
        let (a, b) = (
            batch.series(&sla, &labels("/a")),
            batch.series(&sla, &labels("/b")),
        );
        for (slot, ms) in [(b, 1), (a, 2), (b, 3), (a, 4), (a, 5)] {
            batch.push(slot, took(ms), 1);
        }
        let order: Vec<(usize, Timing)> = by_series(&batch, 2).collect();
        assert_eq!(
            order,
            [
                (0, took(2)),
                (0, took(4)),
                (0, took(5)),
                (1, took(1)),
                (1, took(3))
            ]
        );
    }

    fn listed(source: Source, given: &[Reason]) {
        let reasons = source.reasons();
        for r in given {
            assert!(
                reasons.contains(r),
                "{source} can give {r}, which it does not list"
            );
        }
    }

    /// Every reason a decoder, admission, the journal or auth can return is
    /// in the list of each source that can meet it, so `/metrics` shows it
    /// from the start.
    #[test]
    fn every_reason_a_source_can_give_is_listed() {
        let admission = [
            Reason::UnknownSla,
            Reason::Invalid,
            Reason::TooOld,
            Reason::InFuture,
        ];
        let storage = [Reason::StorageUnavailable, Reason::Overloaded];
        let request = [Reason::Malformed, Reason::TooManyLines];
        let denied = [
            crate::auth::Denied::Missing.reason(),
            crate::auth::Denied::NotAdmin(String::new()).reason(),
        ];
        for source in Source::ALL.iter().filter(|s| s.delivers()) {
            listed(*source, &admission);
            listed(*source, &storage);
        }
        for source in [Source::Http, Source::Events] {
            listed(source, &request);
            listed(source, &denied);
        }
        listed(Source::Reload, &denied);
        let events = [
            EventError::Unknown(String::new()),
            EventError::Conflict(String::new()),
            EventError::Full(String::new()),
        ];
        listed(Source::Events, &events.map(|e| e.reason()));
        let lines: Vec<Reason> = log_tail::line::LineError::ALL
            .iter()
            .map(|e| e.reason())
            .collect();
        listed(Source::LogTail, &lines);
        let statsd: Vec<Reason> = statsd::parser::ParseError::ALL
            .iter()
            .map(|e| e.reason())
            .collect();
        listed(Source::Statsd, &statsd);
        listed(Source::Statsd, &[Reason::NotATimer, Reason::Unmapped]);
    }
}
