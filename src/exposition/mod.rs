//! `/metrics`: SLA figures computed at scrape time plus the exporter's
//! self-metrics, in the format the scraper asks for; the fleet rules that
//! merge them across instances; and the landing page that shows them to people.

pub mod advice;
pub mod collector;
pub mod fleet;
pub mod format;
pub mod monthly;
pub mod names;
pub mod pages;
mod self_metrics;
pub mod summary;

use std::time::Instant;

use prometheus::{Encoder, TextEncoder};
use prometheus_client::registry::Registry;

pub use format::Format;
pub use self_metrics::{
    Closed, HttpMetrics, LogTailMetrics, Operation, ProbeMetrics, SelfMetrics, StorageMetrics,
};

use crate::recorder::Recorder;
use crate::window::Millis;

/// Why `/metrics` could not be rendered (an encoder refused a value; not
/// expected with the families this exporter builds).
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The classic text encoder failed.
    #[error("text encoding: {0}")]
    Text(#[from] prometheus::Error),
    /// `prometheus-client` failed to encode a family.
    #[error("{0}")]
    Client(String),
}

/// Renders every metric as of `now` in the classic text format.
pub fn render(
    recorder: &Recorder,
    metrics: &SelfMetrics,
    now: Millis,
) -> Result<String, RenderError> {
    let bytes = render_as(recorder, metrics, now, Format::Text)?;
    String::from_utf8(bytes).map_err(|e| RenderError::Client(e.to_string()))
}

/// Renders every metric as of `now` in `format`; see [`Format`].
pub fn render_as(
    recorder: &Recorder,
    metrics: &SelfMetrics,
    now: Millis,
    format: Format,
) -> Result<Vec<u8>, RenderError> {
    let started = Instant::now();
    let reports = recorder.report(now);
    // Only protobuf carries native histograms: text scrapes skip them.
    let mut families = match format {
        Format::Protobuf => collector::Families::with_native(),
        Format::OpenMetrics | Format::Text => collector::Families::default(),
    };
    collector::collect(recorder.catalog(), &reports, &mut families);
    metrics.report_duration.set(started.elapsed().as_secs_f64());
    metrics
        .window_memory
        .set(i64::try_from(recorder.heap_bytes()).unwrap_or(i64::MAX));
    let (mut all, native) = families.into_parts();
    all.extend(metrics.registry.gather());
    let mut out = Vec::with_capacity(64 * 1024);
    match format {
        Format::Text => TextEncoder::new().encode(&all, &mut out)?,
        Format::Protobuf | Format::OpenMetrics => {
            let mut registry = Registry::default();
            registry.register_collector(Box::new(format::Exposed {
                families: all,
                native: native.map(|samples| (names::DURATION_RATIO, samples)),
            }));
            let client = |e: &dyn std::fmt::Display| RenderError::Client(e.to_string());
            if format == Format::Protobuf {
                out = prometheus_client::encoding::prometheus_protobuf::encode_to_vec(&registry)
                    .map_err(|e| client(&e))?;
            } else {
                let mut text = String::with_capacity(64 * 1024);
                prometheus_client::encoding::text::encode(&mut text, &registry)
                    .map_err(|e| client(&e))?;
                out = text.into_bytes();
            }
        }
    }
    Ok(out)
}
