//! OTLP trace requests (`POST /v1/traces`): spans read into deliveries by
//! the `sources.otlp.spans` rules. Pure: no HTTP, no clock.
//!
//! A span's delivery is judged from its start to its end (whole
//! nanoseconds) and completes at its end; status ERROR, or a status code of
//! 500 or more where its rule names the attribute, makes it failed. Its
//! trace and span ids are its id, so an exporter's retry counts once.

mod config;
pub mod grpc;

use std::borrow::Cow;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{Span, span, status};
use prost::Message;

use tokio::task::JoinHandle;

use super::json::ItemError;
use super::{Admitted, Batch, Changes, Kind, Reason, Refused, Source, SourceContext, StartError};
use crate::auth::Denied;
use crate::delivery::{Input, Timing};
use crate::fields::Problems;
use crate::sla::{Catalog, Sla};
use crate::span_rule::{SpanFacts, SpanRule, route};
use crate::window::Millis;

pub use config::{RawOtlp, RawSpanRule};

/// OTLP as a kind of source (`sources.otlp`). Its rules go into the catalog,
/// so a reload changes them with the SLAs; its receivers are routes of the
/// HTTP server and the gRPC listener ([`grpc`]), not tasks of their own.
pub struct Otlp;

impl Kind for Otlp {
    type Raw = Option<RawOtlp>;
    type Config = Vec<SpanRule>;
    type Running = ();
    const KEYS: &'static [&'static str] = config::KEYS;
    const SOURCE: Source = Source::Otlp;

    fn validate(p: &mut Problems, at: &str, raw: &Option<RawOtlp>, slas: &[Sla]) -> Vec<SpanRule> {
        config::otlp(p, at, raw.as_ref(), slas)
    }

    async fn start(_: Vec<SpanRule>, _: &SourceContext) -> Result<(), StartError> {
        Ok(())
    }

    async fn apply(_: &mut (), _: Vec<SpanRule>, _: &SourceContext, _: &mut Changes) {}

    fn stop(_: ()) -> Vec<JoinHandle<()>> {
        Vec::new()
    }
}

/// How a request body is encoded (OTLP/HTTP: by its `Content-Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json`, OTLP's JSON mapping (hex ids, lowerCamelCase).
    Json,
}

/// What became of a request's spans besides those recorded.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Outcome {
    /// Spans that matched a rule but were refused, for OTLP's partial success.
    pub rejected: u64,
    /// The first refusal, in words.
    pub message: String,
}

/// Inflates a gzip body (`Content-Encoding: gzip`, as OTel exporters send
/// with compression on) to at most `limit` bytes: more is refused as too
/// large, so a small body cannot inflate without bound.
pub fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, Refused> {
    use std::io::Read;
    let refuse = |kind: Reason, why: String| {
        Refused::Input(vec![ItemError {
            line: 1,
            item: None,
            field: None,
            reason: why,
            kind,
        }])
    };
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::GzDecoder::new(body)
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| {
            refuse(
                Reason::Malformed,
                format!("the gzip body does not inflate: {e}"),
            )
        })?;
    if out.len() > limit {
        return Err(refuse(
            Reason::BodyTooLarge,
            format!("the gzip body inflates past limits.max_body_bytes ({limit} bytes)"),
        ));
    }
    Ok(out)
}

/// Reads a request body.
pub fn decode(body: &[u8], encoding: Encoding) -> Result<ExportTraceServiceRequest, Refused> {
    let malformed = |why: String| {
        Refused::Input(vec![ItemError {
            line: 1,
            item: None,
            field: None,
            reason: why,
            kind: Reason::Malformed,
        }])
    };
    match encoding {
        Encoding::Protobuf => ExportTraceServiceRequest::decode(body)
            .map_err(|e| malformed(format!("not an OTLP ExportTraceServiceRequest: {e}"))),
        Encoding::Json => serde_json::from_slice(body)
            .map_err(|e| malformed(format!("not an OTLP/JSON ExportTraceServiceRequest: {e}"))),
    }
}

/// The kind of a span as rules spell it.
fn kind(span: &Span) -> &'static str {
    match span::SpanKind::try_from(span.kind) {
        Ok(span::SpanKind::Server) => "server",
        Ok(span::SpanKind::Client) => "client",
        Ok(span::SpanKind::Producer) => "producer",
        Ok(span::SpanKind::Consumer) => "consumer",
        _ => "internal",
    }
}

/// An attribute's value as text: strings as they are, numbers and booleans
/// as written; other values (arrays, maps, bytes) match nothing.
fn text<'a>(attributes: &'a [KeyValue], key: &str) -> Option<Cow<'a, str>> {
    let value = attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?;
    match value.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(Cow::Borrowed(s)),
        any_value::Value::IntValue(i) => Some(Cow::Owned(i.to_string())),
        any_value::Value::BoolValue(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        any_value::Value::DoubleValue(d) => Some(Cow::Owned(d.to_string())),
        _ => None,
    }
}

/// `trace_id:span_id` in lower-case hex, as OTLP/JSON writes them.
fn span_key(trace_id: &[u8], span_id: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let push = |out: &mut String, bytes: &[u8]| {
        for b in bytes {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    };
    let mut out = String::with_capacity(2 * (trace_id.len() + span_id.len()) + 1);
    push(&mut out, trace_id);
    out.push(':');
    push(&mut out, span_id);
    out
}

/// Admits every span of `request` a rule matches against `catalog` at
/// `now`. Spans no rule matches are counted as `unmapped` and otherwise
/// ignored; matched spans refused by admission are left out and reported in
/// the [`Outcome`]. `may_write` is asked of every matched span's SLA: one
/// refusal refuses the request.
pub fn admit(
    catalog: &Catalog,
    request: &ExportTraceServiceRequest,
    now: Millis,
    may_write: impl Fn(&str) -> Result<(), Denied>,
) -> Result<(Admitted, Outcome), Refused> {
    let spans: usize = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    let max = catalog.limits.max_lines_per_request;
    if spans > max {
        return Err(Refused::Input(vec![ItemError {
            line: 1,
            item: None,
            field: None,
            reason: format!(
                "{spans} spans in one request; limits.max_lines_per_request is {max}: send smaller batches"
            ),
            kind: Reason::TooManyLines,
        }]));
    }
    let mut deliveries = Vec::new();
    let mut dropped = Vec::new();
    let mut outcome = Outcome::default();
    for resource_spans in &request.resource_spans {
        let resource: &[KeyValue] = resource_spans
            .resource
            .as_ref()
            .map_or(&[], |r| &r.attributes);
        for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
            let facts = SpanFacts {
                name: &span.name,
                kind: kind(span),
                attribute: |key: &str| text(&span.attributes, key).or_else(|| text(resource, key)),
            };
            let Some(rule) = route(&catalog.spans, &facts) else {
                dropped.push(Reason::Unmapped);
                continue;
            };
            may_write(&rule.sla).map_err(Refused::Denied)?;
            let values: Vec<(&str, Cow<'_, str>)> = rule
                .labels
                .iter()
                .filter_map(|(label, attribute)| {
                    Some((label.as_str(), (facts.attribute)(attribute)?))
                })
                .collect();
            let pairs: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_ref())).collect();
            let errored = span
                .status
                .as_ref()
                .is_some_and(|s| s.code == status::StatusCode::Error as i32);
            // Unix nanoseconds fit an i64 until 2262; later ones saturate.
            let nanos = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            // A failed span keeps only its end, so check the order here:
            // it is refused like any span that ends before it starts.
            if span.end_time_unix_nano < span.start_time_unix_nano {
                if outcome.rejected == 0 {
                    outcome.message = format!("span `{}`: it ends before it starts", span.name);
                }
                outcome.rejected += 1;
                dropped.push(Reason::Invalid);
                continue;
            }
            let timing = if errored || rule.status_failed(&facts) {
                Timing::Failed {
                    at: Some(nanos(span.end_time_unix_nano) / 1_000_000),
                }
            } else {
                Timing::Between {
                    started: nanos(span.start_time_unix_nano),
                    delivered: nanos(span.end_time_unix_nano),
                }
            };
            let id = (!span.trace_id.is_empty() || !span.span_id.is_empty())
                .then(|| span_key(&span.trace_id, &span.span_id));
            let input = Input {
                sla: &rule.sla,
                labels: &pairs,
                timing,
                id: id.as_deref(),
            };
            match catalog.admit(&input, now) {
                Ok(d) => deliveries.push(d),
                Err(r) => {
                    if outcome.rejected == 0 {
                        outcome.message =
                            format!("span `{}`: {}: {}", span.name, r.field, r.reason);
                    }
                    outcome.rejected += 1;
                    dropped.push(r.kind);
                }
            }
        }
    }
    Ok((
        Admitted {
            batch: Batch::deliveries(deliveries),
            dropped,
        },
        outcome,
    ))
}
