//! Every metric name the exporter exposes, with its help text, defined once.
//!
//! Rules, dashboards and tests read names from here (see `ALL`), so a rename
//! is one edit and a test catches any file left behind.

/// Prometheus metric type of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A value that goes up and down.
    Gauge,
    /// A count that only goes up (`_total`).
    Counter,
    /// Bucketed observations (`_bucket`, `_sum`, `_count`).
    Histogram,
}

/// A metric family's name, help text and type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Name {
    /// The name, `amaze_` first, base units and `_total` as Prometheus asks.
    pub name: &'static str,
    /// The `# HELP` text.
    pub help: &'static str,
    /// The `# TYPE`.
    pub kind: Kind,
}

macro_rules! names {
    ($($id:ident = $name:literal, $kind:ident, $help:literal;)*) => {
        $(
            #[doc = $help]
            pub const $id: Name = Name { name: $name, help: $help, kind: Kind::$kind };
        )*
        /// Every family, for tests that check rules and dashboards use real names.
        pub const ALL: &[Name] = &[$($id),*];
    };
}

names! {
    // SLA settings, so one static rule file serves every SLA.
    SLA_INFO = "amaze_sla_info", Gauge, "SLA description and durability mode (sync, async, none); always 1.";
    SLA_PROMISE = "amaze_sla_promise_seconds", Gauge, "Default promise T of the SLA.";
    GOAL_PROMISE = "amaze_goal_promise_seconds", Gauge, "Promise that replaces the default for deliveries with these labels.";
    SLA_OBJECTIVE = "amaze_sla_objective_ratio", Gauge, "Fraction of deliveries that must be within the promise.";
    SLA_TARGET_MARGIN = "amaze_sla_target_margin_ratio", Gauge, "Amaze goal: margin at or above which the SLA is amazing.";
    SLA_ALERT_MARGIN = "amaze_sla_alert_margin_ratio", Gauge, "Margin below which the SLA should warn.";
    SLA_WINDOW = "amaze_sla_window_seconds", Gauge, "Compliance window of the SLA.";
    SLA_MIN_DELIVERIES = "amaze_sla_min_deliveries", Gauge, "Deliveries a window needs before it is assessed.";
    SLA_FORECAST_HORIZON = "amaze_sla_forecast_horizon_seconds", Gauge, "Warn when the margin's trend reaches zero within this.";
    // Figures per series and window, computed at scrape time.
    WINDOW_DELIVERIES = "amaze_window_deliveries", Gauge, "Deliveries completed within the window.";
    WINDOW_BAD = "amaze_window_bad_deliveries", Gauge, "Deliveries within the window that failed or took longer than the promise.";
    MARGIN = "amaze_margin_ratio", Gauge, "Amaze margin: 1 minus the objective quantile of delivery time over promise; negative when breached, floored at -1.";
    STATUS = "amaze_status", Gauge, "1 for the current status (amazing, meeting, breaching), 0 for the others.";
    COMPLIANCE = "amaze_compliance_ratio", Gauge, "Share of deliveries within the promise.";
    BURN_RATE = "amaze_burn_rate_ratio", Gauge, "Error budget burn rate: share of bad deliveries over the share the objective allows.";
    BUDGET_REMAINING = "amaze_error_budget_remaining_ratio", Gauge, "Error budget left over the compliance window; negative when overspent.";
    AMAZING = "amaze_amazing_ratio", Gauge, "Share of deliveries within the target margin of the promise.";
    QUANTILE = "amaze_quantile_seconds", Gauge, "Nearest-rank delivery time quantile over the window, for series with one promise; +Inf when failures reach it.";
    RELATIVE_QUANTILE = "amaze_relative_quantile_ratio", Gauge, "Nearest-rank quantile of delivery time over each delivery's own promise (1 is exactly on the promise); +Inf when failures reach it.";
    // Cumulative counters per series, for PromQL's rate() and histogram_quantile().
    DELIVERIES = "amaze_deliveries_total", Counter, "Deliveries recorded, by result (within, late, failed).";
    DURATION = "amaze_delivery_duration_seconds", Histogram, "Delivery time of completed deliveries; bucket edges are fractions of the promise.";
    DURATION_RATIO = "amaze_delivery_duration_ratio", Histogram, "Delivery time over each delivery's own promise, as a native histogram (schema 7, buckets 0.54% wide; 1 is a bucket boundary; failed deliveries in the top bucket, whose upper bound is 1024). Protobuf scrapes only.";
    SERIES = "amaze_series", Gauge, "Label combinations tracked for the SLA.";
    SERIES_OVERFLOW = "amaze_series_overflow_total", Counter, "Deliveries folded into the overflow series because the SLA reached max_series.";
    OPEN = "amaze_open_deliveries", Gauge, "Open deliveries (started, not finished) by state: on_track, at_risk (clock past 1 - alert_margin of the promise), overdue (past the promise).";
    OPEN_OLDEST = "amaze_open_oldest_elapsed_ratio", Gauge, "Largest clock time over promise among open deliveries; above 1 is overdue, 0 when none are open.";
    OPEN_OVERDUE = "amaze_open_overdue_total", Counter, "Open deliveries that went past their promise before finishing.";
    IDS_FORGOTTEN = "amaze_ids_forgotten_total", Counter, "Delivery ids forgotten early because limits.max_tracked_ids was reached.";
    // The exporter itself.
    INGEST_ACCEPTED = "amaze_ingest_accepted_total", Counter, "Deliveries recorded, by source (open deliveries when they finish).";
    INGEST_REJECTED = "amaze_ingest_rejected_total", Counter, "Deliveries, events, lines and requests refused, by source and reason.";
    INGEST_DUPLICATES = "amaze_ingest_duplicates_total", Counter, "Deliveries acknowledged but not counted again because their (sla, id) was already recorded.";
    HTTP_CONNECTIONS = "amaze_http_connections", Gauge, "HTTP connections open now.";
    HTTP_CLOSED = "amaze_http_connections_closed_total", Counter, "HTTP connections the exporter closed or refused, by reason (header_timeout, idle_timeout, evicted, refused, shutdown).";
    STATSD_PACKETS = "amaze_statsd_packets_total", Counter, "Datagrams (UDP, Unix) and TCP reads received by the StatsD source.";
    LOG_TAIL_FILES = "amaze_log_tail_files", Gauge, "Files a log source follows, rotated ones not yet let go included.";
    LOG_TAIL_READ = "amaze_log_tail_read_bytes_total", Counter, "Bytes a log source has read.";
    LOG_TAIL_BEHIND = "amaze_log_tail_behind_bytes", Gauge, "Bytes written to a log source's files and not read yet.";
    LOG_TAIL_SKIPPED = "amaze_log_tail_skipped_lines_total", Counter, "Lines a log source left out by its include and exclude filters.";
    LOG_TAIL_ROTATIONS = "amaze_log_tail_rotations_total", Counter, "Files a log source saw rotated away (renamed off its paths).";
    LOG_TAIL_TRUNCATIONS = "amaze_log_tail_truncations_total", Counter, "Files a log source found truncated in place and read again from the start.";
    PROBE_SUCCESS = "amaze_probe_success", Gauge, "1 when a probe's last check answered as expected, 0 when it failed.";
    PROBE_DURATION = "amaze_probe_duration_seconds", Gauge, "How long a probe's last check took, from the lookup to the end of the body.";
    PROBE_PHASE = "amaze_probe_phase_duration_seconds", Gauge, "Time a probe's last check spent in each phase (resolve, connect, tls, processing, transfer), for probes with phases: true.";
    PROBE_STATUS = "amaze_probe_http_status_code", Gauge, "Status of a probe's last response; 0 when none came.";
    PROBE_FAILURES = "amaze_probe_failures_total", Counter, "Failed checks of a probe, by reason.";
    PROBE_CERT_EXPIRY = "amaze_probe_tls_cert_expiry_timestamp_seconds", Gauge, "When the first of the certificates a probe's server showed expires, in unix seconds.";
    REPORT_DURATION = "amaze_report_duration_seconds", Gauge, "Time the previous scrape spent computing figures.";
    WINDOW_MEMORY = "amaze_window_memory_bytes", Gauge, "Heap bytes held by window sketches.";
    BUILD_INFO = "amaze_build_info", Gauge, "Build of the running exporter; always 1.";
    CONFIG_RELOAD_OK = "amaze_config_last_reload_successful", Gauge, "1 if the last config reload succeeded (or none was tried), 0 if it was rejected.";
    CONFIG_RELOAD_TIME = "amaze_config_last_reload_success_timestamp_seconds", Gauge, "When the config was last loaded successfully.";
    // Durable state.
    STORAGE_WRITABLE = "amaze_storage_writable", Gauge, "1 while the state directory takes writes; 0 while ingest answers 503.";
    STORAGE_ERRORS = "amaze_storage_errors_total", Counter, "Failed writes to the state directory, by operation (append, sync, snapshot).";
    WAL_SYNCS = "amaze_wal_syncs_total", Counter, "fdatasync calls on the write-ahead log; each covers a group of requests.";
    WAL_WRITTEN = "amaze_wal_written_bytes_total", Counter, "Bytes appended to the write-ahead log.";
    WAL_BYTES = "amaze_wal_bytes", Gauge, "Bytes the write-ahead log holds on disk.";
    SNAPSHOT_TIME = "amaze_snapshot_last_success_timestamp_seconds", Gauge, "When the last snapshot was written.";
    SNAPSHOT_BYTES = "amaze_snapshot_bytes", Gauge, "Size of the last snapshot written.";
    SNAPSHOT_DURATION = "amaze_snapshot_duration_seconds", Gauge, "Time the last snapshot took to write.";
    RECOVERY_DURATION = "amaze_recovery_duration_seconds", Gauge, "Time the last start spent loading the snapshot and replaying the log.";
    RECOVERY_RECORDS = "amaze_recovery_replayed_records", Gauge, "Log records replayed at the last start.";
    RECOVERY_CUT = "amaze_recovery_cut_bytes", Gauge, "Bytes of torn or corrupt log tail cut off at the last start.";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_follow_conventions() {
        let mut seen = std::collections::HashSet::new();
        for n in ALL {
            assert!(seen.insert(n.name), "duplicate {}", n.name);
            assert!(n.name.starts_with("amaze_"), "{}", n.name);
            assert_eq!(
                n.kind == Kind::Counter,
                n.name.ends_with("_total"),
                "{}",
                n.name
            );
            assert!(!n.help.is_empty());
        }
    }
}
