//! The exporter's own health: ingest outcomes, scrape cost, memory, build.

use prometheus::{Gauge, IntCounterVec, IntGauge, Opts, Registry};

use super::names::{self, Name};
use crate::delivery::RefusalKind;

/// Counters every source updates, registered once.
#[derive(Clone)]
pub struct SelfMetrics {
    pub registry: Registry,
    accepted: IntCounterVec,
    rejected: IntCounterVec,
    duplicates: IntCounterVec,
    pub report_duration: Gauge,
    pub window_memory: IntGauge,
}

fn opts(name: Name) -> Opts {
    Opts::new(name.name, name.help)
}

impl SelfMetrics {
    /// Registers the self-metrics, the build info and the process collector.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let accepted = IntCounterVec::new(opts(names::INGEST_ACCEPTED), &["source"])?;
        let rejected = IntCounterVec::new(opts(names::INGEST_REJECTED), &["source", "reason"])?;
        let duplicates = IntCounterVec::new(opts(names::INGEST_DUPLICATES), &["source"])?;
        let report_duration = Gauge::with_opts(opts(names::REPORT_DURATION))?;
        let window_memory = IntGauge::with_opts(opts(names::WINDOW_MEMORY))?;
        let build = IntGauge::with_opts(
            opts(names::BUILD_INFO)
                .const_label("version", env!("CARGO_PKG_VERSION"))
                .const_label(
                    "revision",
                    option_env!("AMAZE_REVISION").unwrap_or("unknown"),
                ),
        )?;
        build.set(1);
        registry.register(Box::new(accepted.clone()))?;
        registry.register(Box::new(rejected.clone()))?;
        registry.register(Box::new(duplicates.clone()))?;
        registry.register(Box::new(report_duration.clone()))?;
        registry.register(Box::new(window_memory.clone()))?;
        registry.register(Box::new(build))?;
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(SelfMetrics {
            registry,
            accepted,
            rejected,
            duplicates,
            report_duration,
            window_memory,
        })
    }

    pub fn accepted(&self, source: &str, n: u64) {
        self.accepted.with_label_values(&[source]).inc_by(n);
    }

    pub fn duplicates(&self, source: &str, n: u64) {
        self.duplicates.with_label_values(&[source]).inc_by(n);
    }

    pub fn rejected(&self, source: &str, reason: &str, n: u64) {
        self.rejected.with_label_values(&[source, reason]).inc_by(n);
    }

    /// Pre-creates the series of a source so they read 0 before the first event.
    pub fn register_source(&self, source: &str, reasons: &[&str]) {
        self.accepted.with_label_values(&[source]);
        self.duplicates.with_label_values(&[source]);
        for reason in reasons {
            self.rejected.with_label_values(&[source, reason]);
        }
    }

    /// Every refusal reason a delivery can get, plus those of request decoding.
    pub fn refusal_reasons() -> Vec<&'static str> {
        let mut r: Vec<&str> = [
            RefusalKind::UnknownSla,
            RefusalKind::Invalid,
            RefusalKind::TooOld,
            RefusalKind::InFuture,
        ]
        .iter()
        .map(|k| k.as_str())
        .collect();
        r.push("malformed");
        r
    }
}
