//! The exposition formats `/metrics` speaks, chosen by the scraper's `Accept`
//! header as Prometheus' own clients choose them: the protobuf format (the
//! only one that carries native histograms), OpenMetrics text, and the
//! classic text format for everyone else.
//!
//! Classic text is written by the `prometheus` crate's `TextEncoder`;
//! protobuf and OpenMetrics by the official `prometheus-client` crate, fed
//! from the same metric families through [`Exposed`].

use std::fmt;

use prometheus::proto::{Metric, MetricFamily, MetricType as ProtoType};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, MetricEncoder, NativeHistogram, NativeHistogramBuckets, NoLabelSet,
};
use prometheus_client::metrics::MetricType;

use super::names::Name;
use crate::recorder::NativeBuckets;
use crate::recorder::native::{SCHEMA, ZERO_THRESHOLD};

/// A format `/metrics` can answer in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited`,
    /// length-delimited `MetricFamily` messages; the only one with native histograms.
    Protobuf,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
    /// The Prometheus text format 0.0.4.
    Text,
}

impl Format {
    /// Every format, in the order preferred when a scraper weighs them equally.
    const ALL: [Format; 3] = [Format::Protobuf, Format::OpenMetrics, Format::Text];

    /// The format a scraper's `Accept` header asks for: the offered media
    /// range with the highest `q` (RFC 9110 section 12.5.1), ties going to
    /// protobuf, then OpenMetrics. Protobuf needs both its `proto` and
    /// `encoding=delimited` parameters, as client_golang's `expfmt` requires.
    /// Text when the header is absent, names nothing this exporter speaks,
    /// or cannot be read.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Text;
        };
        let mut best: Option<(f64, Format)> = None;
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let mut q: f64 = 1.0;
            let mut proto_ok = false;
            let mut encoding_ok = false;
            for param in parts {
                let Some((key, value)) = param.split_once('=') else {
                    continue;
                };
                let value = value.trim().trim_matches('"');
                match key.trim().to_ascii_lowercase().as_str() {
                    // RFC 9110 allows 0 to 1; more is read as 1, so it cannot outrank.
                    "q" => q = value.parse::<f64>().map_or(0.0, |q| q.min(1.0)),
                    "proto" => proto_ok = value == "io.prometheus.client.MetricFamily",
                    "encoding" => encoding_ok = value == "delimited",
                    _ => {}
                }
            }
            let format = match media.as_str() {
                "application/vnd.google.protobuf" if proto_ok && encoding_ok => Format::Protobuf,
                "application/openmetrics-text" => Format::OpenMetrics,
                "text/plain" | "text/*" | "*/*" => Format::Text,
                _ => continue,
            };
            if q.is_nan() || q <= 0.0 {
                continue;
            }
            let rank = |f: Format| Format::ALL.iter().position(|&g| g == f);
            let better = match best {
                None => true,
                Some((bq, bf)) => q > bq || (q == bq && rank(format) < rank(bf)),
            };
            if better {
                best = Some((q, format));
            }
        }
        best.map_or(Format::Text, |(_, f)| f)
    }

    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Protobuf => {
                "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
            }
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// One native histogram sample: its labels and buckets.
pub type NativeSample = (Vec<(String, String)>, NativeBuckets);

/// Metric families handed to `prometheus-client`'s encoders at one scrape:
/// the classic families, and native histograms that only protobuf carries.
#[derive(Debug)]
pub struct Exposed {
    /// Every classic family, in order.
    pub families: Vec<MetricFamily>,
    /// The native-histogram family and its samples; left out of text formats.
    pub native: Option<(Name, Vec<NativeSample>)>,
}

impl Collector for Exposed {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        for family in &self.families {
            let (kind, name) = match family.get_field_type() {
                // prometheus-client adds `_total` itself.
                ProtoType::COUNTER => (
                    MetricType::Counter,
                    family
                        .name()
                        .strip_suffix("_total")
                        .unwrap_or(family.name()),
                ),
                ProtoType::GAUGE => (MetricType::Gauge, family.name()),
                ProtoType::HISTOGRAM => (MetricType::Histogram, family.name()),
                // Neither is built by this exporter.
                ProtoType::SUMMARY | ProtoType::UNTYPED => continue,
            };
            let proto = family.get_field_type();
            let mut out = encoder.encode_descriptor(name, family.help(), None, kind)?;
            for metric in family.get_metric() {
                let labels: Vec<(&str, &str)> = metric
                    .get_label()
                    .iter()
                    .map(|l| (l.name(), l.value()))
                    .collect();
                // `metric{}` is valid OpenMetrics, but reads oddly.
                if labels.is_empty() {
                    sample(&mut out, proto, metric)?;
                } else {
                    sample(&mut out.encode_family(&labels)?, proto, metric)?;
                }
            }
        }
        if let Some((name, samples)) = &self.native {
            let mut out =
                encoder.encode_descriptor(name.name, name.help, None, MetricType::Histogram)?;
            for (labels, buckets) in samples {
                let (spans, deltas) = buckets.spans_and_deltas();
                let native = NativeHistogram {
                    schema: SCHEMA,
                    zero_threshold: ZERO_THRESHOLD,
                    zero_count: buckets.zero_count(),
                    negative: NativeHistogramBuckets {
                        spans: &[],
                        deltas: &[],
                    },
                    positive: NativeHistogramBuckets {
                        spans: &spans,
                        deltas: &deltas,
                    },
                    created: None,
                };
                out.encode_family(labels)?
                    .encode_histogram_with_native::<NoLabelSet>(
                        buckets.sum(),
                        buckets.count(),
                        &[],
                        None,
                        native,
                    )?;
            }
        }
        Ok(())
    }
}

/// Encodes one classic sample of a family of type `proto`.
fn sample(out: &mut MetricEncoder, proto: ProtoType, metric: &Metric) -> Result<(), fmt::Error> {
    match proto {
        ProtoType::COUNTER => {
            out.encode_counter::<NoLabelSet, _, f64>(&metric.get_counter().value(), None)
        }
        ProtoType::HISTOGRAM => {
            let h = metric.get_histogram();
            // Per-bucket counts with +Inf last; the encoders accumulate them again.
            let mut buckets = Vec::with_capacity(h.get_bucket().len() + 1);
            let mut below = 0;
            for b in h.get_bucket() {
                let n = b.cumulative_count();
                buckets.push((b.upper_bound(), n.saturating_sub(below)));
                below = n;
            }
            let count = h.get_sample_count();
            buckets.push((f64::INFINITY, count.saturating_sub(below)));
            out.encode_histogram::<NoLabelSet>(h.get_sample_sum(), count, &buckets, None)
        }
        _ => out.encode_gauge(&metric.get_gauge().value()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMETHEUS_NATIVE: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
    const PROMETHEUS_DEFAULT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

    /// The headers Prometheus 2.x sends with and without native histograms.
    #[test]
    fn prometheus_gets_what_it_asks_for() {
        assert_eq!(Format::negotiate(Some(PROMETHEUS_NATIVE)), Format::Protobuf);
        assert_eq!(
            Format::negotiate(Some(PROMETHEUS_DEFAULT)),
            Format::OpenMetrics
        );
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
        assert_eq!(Format::negotiate(Some("text/html")), Format::Text);
    }

    #[test]
    fn weights_and_parameters_decide() {
        assert_eq!(
            Format::negotiate(Some("text/plain;q=0.9, application/openmetrics-text;q=0.5")),
            Format::Text
        );
        // Another protobuf message, or text encoding of it, is not ours.
        assert_eq!(
            Format::negotiate(Some(
                "application/vnd.google.protobuf;proto=other.Msg;encoding=delimited"
            )),
            Format::Text
        );
        assert_eq!(
            Format::negotiate(Some(
                "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text"
            )),
            Format::Text
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=0, text/plain")),
            Format::Text
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=nonsense")),
            Format::Text
        );
        assert_eq!(
            Format::negotiate(Some("text/plain, application/openmetrics-text")),
            Format::OpenMetrics
        );
        // q above 1 (or infinite) counts as 1: it cannot outrank.
        assert_eq!(
            Format::negotiate(Some("text/plain;q=1.5, application/openmetrics-text")),
            Format::OpenMetrics
        );
        assert_eq!(
            Format::negotiate(Some("text/plain;q=1e400, application/openmetrics-text")),
            Format::OpenMetrics
        );
        // Protobuf without its parameters is not the delimited format.
        assert_eq!(
            Format::negotiate(Some("application/vnd.google.protobuf")),
            Format::Text
        );
    }
}
