//! The exporter's own health: ingest outcomes, scrape cost, memory, build.

use prometheus::core::Collector;
use prometheus::{
    Gauge, GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use super::names::{self, Name};
use crate::source::{Reason, Source};

/// Counters every source updates, registered once.
#[derive(Clone)]
pub struct SelfMetrics {
    /// Where every self-metric is registered.
    pub registry: Registry,
    accepted: IntCounterVec,
    rejected: IntCounterVec,
    duplicates: IntCounterVec,
    /// How long the last scrape spent computing figures.
    pub report_duration: Gauge,
    /// Heap bytes of window sketches.
    pub window_memory: IntGauge,
    /// 1 when the last reload succeeded.
    pub reload_ok: IntGauge,
    /// When the config was last loaded.
    pub reload_time: Gauge,
    /// StatsD packets received.
    pub statsd_packets: IntCounter,
    /// What log sources read.
    pub log_tail: LogTailMetrics,
    /// What probes found.
    pub probe: ProbeMetrics,
    /// Health of the state directory.
    pub storage: StorageMetrics,
    /// The HTTP server's connections.
    pub http: HttpMetrics,
}

/// Why the exporter closed an HTTP connection, the `reason` label of
/// `amaze_http_connections_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// No whole request head within `--web.read-header-timeout`.
    HeaderTimeout,
    /// Kept alive with no request for `--web.idle-timeout`.
    IdleTimeout,
    /// The longest idle one, closed to make room at `--web.max-connections`.
    Evicted,
    /// A new one, at the cap with every connection busy.
    Refused,
    /// Still open when the shutdown grace period ended.
    Shutdown,
}

impl Closed {
    /// Every reason.
    pub const ALL: [Closed; 5] = [
        Closed::HeaderTimeout,
        Closed::IdleTimeout,
        Closed::Evicted,
        Closed::Refused,
        Closed::Shutdown,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Closed::HeaderTimeout => "header_timeout",
            Closed::IdleTimeout => "idle_timeout",
            Closed::Evicted => "evicted",
            Closed::Refused => "refused",
            Closed::Shutdown => "shutdown",
        }
    }
}

/// Open HTTP connections and those closed by the exporter.
#[derive(Clone)]
pub struct HttpMetrics {
    /// Connections open now.
    pub open: IntGauge,
    closed: IntCounterVec,
}

impl HttpMetrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let closed = IntCounterVec::new(opts(names::HTTP_CLOSED), &["reason"])?;
        for reason in Closed::ALL {
            closed.with_label_values(&[reason.as_str()]);
        }
        let open = IntGauge::with_opts(opts(names::HTTP_CONNECTIONS))?;
        registry.register(Box::new(open.clone()))?;
        registry.register(Box::new(closed.clone()))?;
        Ok(HttpMetrics { open, closed })
    }

    /// Counts a connection closed or refused for `reason`.
    pub fn closed(&self, reason: Closed) {
        self.closed.with_label_values(&[reason.as_str()]).inc();
    }
}

/// A write to the state directory, the `operation` label of
/// `amaze_storage_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Appending records to the log.
    Append,
    /// fdatasync of the log.
    Sync,
    /// Writing a snapshot.
    Snapshot,
}

impl Operation {
    /// Every operation.
    pub const ALL: [Operation; 3] = [Operation::Append, Operation::Sync, Operation::Snapshot];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Append => "append",
            Operation::Sync => "sync",
            Operation::Snapshot => "snapshot",
        }
    }
}

/// What each log source reads and notices, by its `name`.
#[derive(Clone)]
pub struct LogTailMetrics {
    /// Files followed.
    pub files: IntGaugeVec,
    /// Bytes read.
    pub read: IntCounterVec,
    /// Bytes not read yet.
    pub behind: IntGaugeVec,
    /// Lines left out by filters.
    pub skipped: IntCounterVec,
    /// Files rotated away.
    pub rotations: IntCounterVec,
    /// Files truncated in place.
    pub truncations: IntCounterVec,
}

impl LogTailMetrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let gauge = |n| IntGaugeVec::new(opts(n), &["name"]);
        let counter = |n| IntCounterVec::new(opts(n), &["name"]);
        let m = LogTailMetrics {
            files: gauge(names::LOG_TAIL_FILES)?,
            read: counter(names::LOG_TAIL_READ)?,
            behind: gauge(names::LOG_TAIL_BEHIND)?,
            skipped: counter(names::LOG_TAIL_SKIPPED)?,
            rotations: counter(names::LOG_TAIL_ROTATIONS)?,
            truncations: counter(names::LOG_TAIL_TRUNCATIONS)?,
        };
        let all: [Box<dyn Collector>; 6] = [
            Box::new(m.files.clone()),
            Box::new(m.read.clone()),
            Box::new(m.behind.clone()),
            Box::new(m.skipped.clone()),
            Box::new(m.rotations.clone()),
            Box::new(m.truncations.clone()),
        ];
        for c in all {
            registry.register(c)?;
        }
        Ok(m)
    }

    /// Shows log source `name`'s series at 0 from the start.
    pub fn register(&self, name: &str) {
        self.files.with_label_values(&[name]);
        self.read.with_label_values(&[name]);
        self.behind.with_label_values(&[name]);
        self.skipped.with_label_values(&[name]);
        self.rotations.with_label_values(&[name]);
        self.truncations.with_label_values(&[name]);
    }

    /// Removes log source `name`'s series (a source a reload took away).
    pub fn unregister(&self, name: &str) {
        let _ = self.files.remove_label_values(&[name]);
        let _ = self.read.remove_label_values(&[name]);
        let _ = self.behind.remove_label_values(&[name]);
        let _ = self.skipped.remove_label_values(&[name]);
        let _ = self.rotations.remove_label_values(&[name]);
        let _ = self.truncations.remove_label_values(&[name]);
    }
}

/// What each probe's last check found, by the probe's `name`.
#[derive(Clone)]
pub struct ProbeMetrics {
    /// 1 or 0.
    pub success: IntGaugeVec,
    /// Seconds, the whole check.
    pub duration: GaugeVec,
    /// Seconds, by `phase`.
    pub phase: GaugeVec,
    /// The last status, 0 for none.
    pub status: IntGaugeVec,
    /// Failed checks by `reason`.
    pub failures: IntCounterVec,
    /// Unix seconds.
    pub cert_expiry: IntGaugeVec,
}

impl ProbeMetrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = ProbeMetrics {
            success: IntGaugeVec::new(opts(names::PROBE_SUCCESS), &["name"])?,
            duration: GaugeVec::new(opts(names::PROBE_DURATION), &["name"])?,
            phase: GaugeVec::new(opts(names::PROBE_PHASE), &["name", "phase"])?,
            status: IntGaugeVec::new(opts(names::PROBE_STATUS), &["name"])?,
            failures: IntCounterVec::new(opts(names::PROBE_FAILURES), &["name", "reason"])?,
            cert_expiry: IntGaugeVec::new(opts(names::PROBE_CERT_EXPIRY), &["name"])?,
        };
        let all: [Box<dyn Collector>; 6] = [
            Box::new(m.success.clone()),
            Box::new(m.duration.clone()),
            Box::new(m.phase.clone()),
            Box::new(m.status.clone()),
            Box::new(m.failures.clone()),
            Box::new(m.cert_expiry.clone()),
        ];
        for c in all {
            registry.register(c)?;
        }
        Ok(m)
    }

    /// Shows probe `name`'s series from the start: its failures at 0 under
    /// every one of `reasons`. The certificate's expiry shows once a server
    /// has shown one (a 0 would read as long expired).
    pub fn register(&self, name: &str, reasons: &[&str]) {
        self.success.with_label_values(&[name]);
        self.duration.with_label_values(&[name]);
        self.status.with_label_values(&[name]);
        for reason in reasons {
            self.failures.with_label_values(&[name, reason]);
        }
    }

    /// Removes every series of probe `name` (a probe a reload took away):
    /// its failures under `reasons`, its times under `phases`.
    pub fn unregister(&self, name: &str, reasons: &[&str], phases: &[&str]) {
        let _ = self.success.remove_label_values(&[name]);
        let _ = self.duration.remove_label_values(&[name]);
        let _ = self.status.remove_label_values(&[name]);
        let _ = self.cert_expiry.remove_label_values(&[name]);
        for phase in phases {
            let _ = self.phase.remove_label_values(&[name, phase]);
        }
        for reason in reasons {
            let _ = self.failures.remove_label_values(&[name, reason]);
        }
    }
}

/// Health of the state directory, updated by the log writer and snapshotter.
#[derive(Clone)]
pub struct StorageMetrics {
    /// 1 while the state directory takes writes.
    pub writable: IntGauge,
    errors: IntCounterVec,
    /// fdatasync calls on the log.
    pub syncs: IntCounter,
    /// Bytes appended to the log.
    pub written: IntCounter,
    /// Bytes the log holds.
    pub wal_bytes: IntGauge,
    /// When the last snapshot was written.
    pub snapshot_time: Gauge,
    /// Its size.
    pub snapshot_bytes: IntGauge,
    /// How long it took.
    pub snapshot_duration: Gauge,
    /// How long the last start took to recover.
    pub recovery_duration: Gauge,
    /// Log records it replayed.
    pub recovery_records: IntGauge,
    /// Bytes of log tail it cut.
    pub recovery_cut: IntGauge,
}

impl StorageMetrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let errors = IntCounterVec::new(opts(names::STORAGE_ERRORS), &["operation"])?;
        for op in Operation::ALL {
            errors.with_label_values(&[op.as_str()]);
        }
        let m = StorageMetrics {
            writable: IntGauge::with_opts(opts(names::STORAGE_WRITABLE))?,
            errors,
            syncs: IntCounter::with_opts(opts(names::WAL_SYNCS))?,
            written: IntCounter::with_opts(opts(names::WAL_WRITTEN))?,
            wal_bytes: IntGauge::with_opts(opts(names::WAL_BYTES))?,
            snapshot_time: Gauge::with_opts(opts(names::SNAPSHOT_TIME))?,
            snapshot_bytes: IntGauge::with_opts(opts(names::SNAPSHOT_BYTES))?,
            snapshot_duration: Gauge::with_opts(opts(names::SNAPSHOT_DURATION))?,
            recovery_duration: Gauge::with_opts(opts(names::RECOVERY_DURATION))?,
            recovery_records: IntGauge::with_opts(opts(names::RECOVERY_RECORDS))?,
            recovery_cut: IntGauge::with_opts(opts(names::RECOVERY_CUT))?,
        };
        let all: [Box<dyn Collector>; 11] = [
            Box::new(m.writable.clone()),
            Box::new(m.errors.clone()),
            Box::new(m.syncs.clone()),
            Box::new(m.written.clone()),
            Box::new(m.wal_bytes.clone()),
            Box::new(m.snapshot_time.clone()),
            Box::new(m.snapshot_bytes.clone()),
            Box::new(m.snapshot_duration.clone()),
            Box::new(m.recovery_duration.clone()),
            Box::new(m.recovery_records.clone()),
            Box::new(m.recovery_cut.clone()),
        ];
        for c in all {
            registry.register(c)?;
        }
        Ok(m)
    }

    /// Counts a failed write.
    pub fn error(&self, operation: Operation) {
        self.errors.with_label_values(&[operation.as_str()]).inc();
    }
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
                .const_label("revision", env!("AMAZE_REVISION"))
                .const_label("build_date", env!("AMAZE_BUILD_DATE")),
        )?;
        build.set(1);
        let reload_ok = IntGauge::with_opts(opts(names::CONFIG_RELOAD_OK))?;
        let reload_time = Gauge::with_opts(opts(names::CONFIG_RELOAD_TIME))?;
        registry.register(Box::new(reload_ok.clone()))?;
        registry.register(Box::new(reload_time.clone()))?;
        let storage = StorageMetrics::new(&registry)?;
        let log_tail = LogTailMetrics::new(&registry)?;
        let probe = ProbeMetrics::new(&registry)?;
        let http = HttpMetrics::new(&registry)?;
        let statsd_packets = IntCounter::with_opts(opts(names::STATSD_PACKETS))?;
        registry.register(Box::new(statsd_packets.clone()))?;
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
            reload_ok,
            reload_time,
            statsd_packets,
            log_tail,
            probe,
            storage,
            http,
        })
    }

    /// Counts `n` deliveries (or events) of `source` recorded.
    pub fn accepted(&self, source: Source, n: u64) {
        self.accepted
            .with_label_values(&[source.as_str()])
            .inc_by(n);
    }

    /// Counts `n` deliveries of `source` acknowledged as already recorded.
    pub fn duplicates(&self, source: Source, n: u64) {
        self.duplicates
            .with_label_values(&[source.as_str()])
            .inc_by(n);
    }

    /// Counts `n` refusals of `source` for `reason`.
    pub fn rejected(&self, source: Source, reason: Reason, n: u64) {
        self.rejected
            .with_label_values(&[source.as_str(), reason.as_str()])
            .inc_by(n);
    }

    /// Pre-creates the series of `source`, every reason it can give
    /// included, so they read 0 before the first event.
    pub fn register_source(&self, source: Source) {
        if source.delivers() {
            self.accepted.with_label_values(&[source.as_str()]);
            self.duplicates.with_label_values(&[source.as_str()]);
        }
        for reason in source.reasons() {
            self.rejected
                .with_label_values(&[source.as_str(), reason.as_str()]);
        }
    }
}
