//! `/metrics`: SLA figures computed at scrape time plus the exporter's self-metrics;
//! and the landing page that shows them to people.

pub mod collector;
pub mod landing;
pub mod names;
mod self_metrics;
pub mod summary;

use std::time::Instant;

use prometheus::{Encoder, TextEncoder};

pub use self_metrics::{
    Closed, HttpMetrics, LogTailMetrics, Operation, ProbeMetrics, SelfMetrics, StorageMetrics,
};

use crate::recorder::Recorder;
use crate::window::Millis;

/// Content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn encode(families: &[prometheus::proto::MetricFamily]) -> Result<String, prometheus::Error> {
    let mut buf = Vec::with_capacity(64 * 1024);
    TextEncoder::new().encode(families, &mut buf)?;
    String::from_utf8(buf).map_err(|e| prometheus::Error::Msg(e.to_string()))
}

/// Renders every metric as of `now`.
pub fn render(
    recorder: &Recorder,
    metrics: &SelfMetrics,
    now: Millis,
) -> Result<String, prometheus::Error> {
    let started = Instant::now();
    let reports = recorder.report(now);
    let mut families = collector::Families::default();
    collector::collect(recorder.catalog(), &reports, &mut families);
    metrics.report_duration.set(started.elapsed().as_secs_f64());
    metrics
        .window_memory
        .set(i64::try_from(recorder.heap_bytes()).unwrap_or(i64::MAX));
    let mut all = families.into_vec();
    all.extend(metrics.registry.gather());
    encode(&all)
}
