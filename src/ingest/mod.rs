//! Sources: each turns its input into deliveries and hands them to the
//! journal through a [`SourceContext`], the one contract every source shares.

pub mod http_push;
pub mod json;
pub mod log_tail;
pub mod open;
pub mod probe;
pub mod statsd;

use std::sync::Arc;

use tokio::sync::watch;

use crate::clock::Clock;
use crate::delivery::{Input, Timing};
use crate::exposition::{OVERLOADED, SelfMetrics, UNAVAILABLE};
use crate::persist::{CommitError, Journal, Pending};
use crate::recorder::{Mark, Recorded};

/// A delivery as a source read it, owning its text; [`Input`] is the
/// borrowed form that admission checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Shared: a source names the same SLA for millions of readings.
    pub sla: Arc<str>,
    pub labels: Vec<(String, String)>,
    pub timing: Timing,
    pub id: Option<String>,
}

/// What every source gets: where deliveries go, what to count, the time,
/// and when to stop.
#[derive(Clone)]
pub struct SourceContext {
    pub journal: Journal,
    pub metrics: SelfMetrics,
    pub clock: Arc<dyn Clock>,
    pub shutdown: Shutdown,
}

/// Resolves when the exporter stops; cheap to clone into every task.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// Sets every [`Shutdown`] made with it.
pub struct StopSources(watch::Sender<bool>);

impl Shutdown {
    pub fn new() -> (StopSources, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (StopSources(tx), Shutdown(rx))
    }

    pub async fn wait(&mut self) {
        // An error means the sender is gone: stopping too.
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

impl StopSources {
    pub fn stop(&self) {
        let _ = self.0.send(true);
    }
}

impl SourceContext {
    /// Admits each reading on its own: refused ones are counted by reason
    /// and dropped, one bad line never holding back the rest. The admitted
    /// ones are committed as one batch.
    pub async fn deliver(
        &self,
        source: &str,
        readings: &[Reading],
    ) -> Result<Recorded, CommitError> {
        self.deliver_marked(source, readings, None).await
    }

    /// As [`SourceContext::deliver`], for a source that read its input up to
    /// `mark`: the mark is recorded with the batch, even when every reading
    /// was refused, so the source resumes after these readings.
    pub async fn deliver_marked(
        &self,
        source: &str,
        readings: &[Reading],
        mark: Option<Mark>,
    ) -> Result<Recorded, CommitError> {
        let mut counted = false;
        // A reload between admission and commit makes the batch stale.
        for _ in 0..3 {
            let catalog = self.journal.recorder().catalog().clone();
            let now = self.clock.now();
            let mut batch = Vec::with_capacity(readings.len());
            let mut labels: Vec<(&str, &str)> = Vec::new();
            for r in readings {
                labels.clear();
                labels.extend(r.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                let input = Input {
                    sla: &r.sla,
                    labels: &labels,
                    timing: r.timing,
                    id: r.id.as_deref(),
                };
                match catalog.admit(&input, now) {
                    Ok(d) => batch.push(d),
                    Err(refusal) if !counted => {
                        self.metrics.rejected(source, refusal.kind.as_str(), 1);
                    }
                    Err(_) => {}
                }
            }
            counted = true;
            if batch.is_empty() && mark.is_none() {
                return Ok(Recorded::default());
            }
            let n = batch.len() as u64;
            let pending = Pending::marked(catalog, batch, now, mark.clone());
            let result = self.journal.commit(pending).await;
            count_commit(&self.metrics, source, n, &result);
            if result != Err(CommitError::Stale) {
                return result;
            }
        }
        Err(CommitError::Stale)
    }
}

/// Counts how a commit of `deliveries` went, for every source alike. A stale
/// batch is admitted again, so it is not counted.
pub fn count_commit(
    metrics: &SelfMetrics,
    source: &str,
    deliveries: u64,
    result: &Result<Recorded, CommitError>,
) {
    match result {
        Ok(r) => {
            metrics.accepted(source, r.accepted);
            metrics.duplicates(source, r.duplicates);
        }
        Err(CommitError::Stale) => {}
        Err(CommitError::Overloaded) => metrics.rejected(source, OVERLOADED, deliveries),
        Err(_) => metrics.rejected(source, UNAVAILABLE, deliveries),
    }
}
