//! Load generator: OTLP/HTTP protobuf span throughput through the real
//! binary on 127.0.0.1, beside the same deliveries pushed as NDJSON in the
//! same run.
//!
//! `cargo bench --bench otlp_ingest [-- SECONDS CONNECTIONS]`. The release
//! exporter serves one SLA with `durability: sync` (every batch fdatasync'd
//! before its answer) and a `sources.otlp` rule reading its `route` label
//! from `http.route`. Each request carries 512 server spans of service
//! `shop` (5 to 404 ms, ten routes, a trace and span id each), as an OTel
//! SDK's batch processor sends them; the NDJSON requests carry the same 512
//! deliveries. Ids are not tracked (`max_tracked_ids: 0`) in either, so the
//! prebuilt bodies can be sent again and again.

#[path = "support/exporter.rs"]
mod exporter;
#[path = "support/load.rs"]
mod load;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use exporter::Exporter;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span};
use prost::Message;

const BATCH: usize = 512;

const CONFIG: &str = "version: 1
limits:
  max_tracked_ids: 0
slas:
  - name: checkout
    promise: 300ms
    objective: 99%
    labels: [route]
    durability: sync
sources:
  otlp:
    spans:
      - sla: checkout
        match: {service.name: shop, span.kind: server}
        labels: {route: http.route}
";

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

fn ms(i: usize) -> u64 {
    5 + (i as u64 * 7919) % 400
}

/// 512 spans, ending a second before the run starts.
fn otlp_body(now: u64) -> Vec<u8> {
    let spans = (0..BATCH)
        .map(|i| {
            let end = now - 1_000_000_000;
            Span {
                trace_id: (i as u128 + 1).to_be_bytes().to_vec(),
                span_id: (i as u64 + 1).to_be_bytes().to_vec(),
                name: "checkout".to_owned(),
                kind: span::SpanKind::Server as i32,
                start_time_unix_nano: end - ms(i) * 1_000_000,
                end_time_unix_nano: end,
                attributes: vec![text("http.route", &format!("/r/{}", i % 10))],
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![text("service.name", "shop")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn ndjson_body() -> Vec<u8> {
    let mut s = String::new();
    for i in 0..BATCH {
        let ms = ms(i);
        s.push_str(&format!(
            "{{\"sla\":\"checkout\",\"duration_seconds\":{}.{:03},\"labels\":{{\"route\":\"/r/{}\"}}}}\n",
            ms / 1000,
            ms % 1000,
            i % 10
        ));
    }
    s.into_bytes()
}

/// Items per second: `BATCH` per request POSTed to `url` for `seconds`.
fn run(url: &str, content_type: &str, body: Arc<Vec<u8>>, connections: usize, seconds: u64) -> f64 {
    let r = load::run(url, Some((content_type, body)), connections, seconds);
    r.requests as f64 * BATCH as f64 / r.elapsed.as_secs_f64()
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let seconds = args.first().copied().unwrap_or(5).clamp(1, 60);
    let connections = args.get(1).copied().unwrap_or(4).clamp(1, 64) as usize;
    let dir = tempfile::tempdir().expect("temp dir");
    let config_path = dir.path().join("amaze.yaml");
    std::fs::write(&config_path, CONFIG).expect("write config");
    let exporter = Exporter::start(&config_path, &dir.path().join("data"));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64;
    let otlp = Arc::new(otlp_body(now));
    let ndjson = Arc::new(ndjson_body());
    println!(
        "otlp_ingest: {seconds}s per run, {connections} connections, {BATCH} per request, durability sync; OTLP body {} KiB, NDJSON body {} KiB",
        otlp.len() / 1024,
        ndjson.len() / 1024
    );
    let base = exporter.base.clone();
    // Alternated, twice each, so both see the same machine.
    for round in 1..=2 {
        let spans = run(
            &format!("{base}/v1/traces"),
            "application/x-protobuf",
            otlp.clone(),
            connections,
            seconds,
        );
        let lines = run(
            &format!("{base}/api/v1/deliveries"),
            "application/x-ndjson",
            ndjson.clone(),
            connections,
            seconds,
        );
        println!(
            "round {round}: OTLP/HTTP protobuf {spans:>10.0} spans/s; NDJSON {lines:>10.0} deliveries/s; OTLP/NDJSON {:.2}",
            spans / lines
        );
    }
    exporter.kill();
}
