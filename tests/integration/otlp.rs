//! OTLP/HTTP with the real OpenTelemetry SDK (PyPI `opentelemetry-sdk`,
//! `opentelemetry-exporter-otlp-proto-http`): spans of known durations,
//! statuses and attributes become deliveries of the SLA their rule names.

use std::process::Command;

use crate::server::{Exporter, Home, python_has, tool_available};

const CONFIG: &str = "version: 1
slas:
  - name: checkout
    promise: 300ms
    objective: 90%
    min_deliveries: 1
    labels: [route]
sources:
  otlp:
    spans:
      - sla: checkout
        match: {service.name: shop, span.kind: server, span.name: checkout}
        labels: {route: http.route}
        failed_status_code: http.response.status_code
";

fn sdk_available() -> bool {
    tool_available("python3")
        && python_has("opentelemetry.sdk", "opentelemetry-sdk")
        && python_has(
            "opentelemetry.exporter.otlp.proto.http",
            "opentelemetry-exporter-otlp-proto-http",
        )
}

#[test]
fn spans_from_the_python_sdk_become_deliveries_once() {
    sdk_sends(&[]);
}

/// The same, with the exporter's gzip compression on.
#[test]
fn gzipped_spans_from_the_python_sdk_count_alike() {
    sdk_sends(&["gzip"]);
}

/// The same over OTLP/gRPC (`opentelemetry-exporter-otlp-proto-grpc`).
#[test]
fn spans_over_grpc_count_alike() {
    sdk_sends(&["grpc"]);
}

/// The same on the OTLP/HTTP listener of its own, which serves nothing else.
#[test]
fn spans_on_the_otlp_http_listener_count_alike() {
    sdk_sends(&["own"]);
}

/// Runs python3 with `args`; its stdout lines, once it exited 0.
fn python(args: &[&str]) -> Vec<String> {
    let out = Command::new("python3")
        .args(args)
        .output()
        .expect("run python3");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    said.lines().map(str::to_owned).collect()
}

/// The address the exporter logged with `what` (an OTLP listener).
fn logged_addr(ex: &Exporter, what: &str) -> String {
    ex.log()
        .lines()
        .find(|l| l.contains(what))
        .and_then(|l| l.split("addr=").nth(1))
        .and_then(|a| a.split_whitespace().next())
        .unwrap_or_else(|| panic!("{what}: no address logged"))
        .to_owned()
}

fn sdk_sends(args: &[&str]) {
    if !sdk_available()
        || !python_has(
            "opentelemetry.exporter.otlp.proto.grpc",
            "opentelemetry-exporter-otlp-proto-grpc",
        )
    {
        return;
    }
    let home = Home::new(CONFIG);
    let ex = home.start(&[
        "--otlp.grpc-listen-address=127.0.0.1:0",
        "--otlp.http-listen-address=127.0.0.1:0",
    ]);
    let logged = |what: &str| logged_addr(&ex, what);
    let (endpoint, args) = match args {
        ["grpc"] => (logged("OTLP/gRPC listening"), args),
        ["own"] => {
            let own = format!("http://{}", logged("OTLP/HTTP listening"));
            let r = ureq::get(format!("{own}/metrics")).call();
            assert!(
                matches!(r, Err(ureq::Error::StatusCode(404))),
                "only /v1/traces there"
            );
            (format!("{own}/v1/traces"), &[][..])
        }
        _ => (format!("{}/v1/traces", ex.base), args),
    };
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/otlp/send_spans.py"
    );
    let mut argv = vec![script, endpoint.as_str()];
    argv.extend_from_slice(args);
    let said = python(&argv);
    assert_eq!(said, ["SUCCESS", "SUCCESS"]);

    let m = ex.metrics();
    let counter = |result: &str, route: &str| {
        m.value(
            "amaze_deliveries_total",
            &[("sla", "checkout"), ("route", route), ("result", result)],
        )
        .unwrap_or(0.0)
    };
    let total = |result: &str| counter(result, "/pay") + counter(result, "/cart");
    // 5..500 ms against 300ms: 60 within, 40 late; the 7th (ERROR) and the
    // 8th (503), both within in time, failed.
    assert_eq!(
        (total("within"), total("late"), total("failed")),
        (58.0, 40.0, 2.0)
    );
    assert_eq!(
        counter("late", "/pay") + counter("within", "/pay") + counter("failed", "/pay"),
        50.0
    );
    let ingest = |name: &str, extra: &[(&str, &str)]| {
        let mut labels = vec![("source", "otlp")];
        labels.extend_from_slice(extra);
        m.value(name, &labels)
    };
    assert_eq!(ingest("amaze_ingest_accepted_total", &[]), Some(100.0));
    assert_eq!(
        ingest("amaze_ingest_duplicates_total", &[]),
        Some(100.0),
        "the retry counted once"
    );
    assert_eq!(
        ingest("amaze_ingest_rejected_total", &[("reason", "unmapped")]),
        Some(6.0),
        "3 client spans, sent twice"
    );
    // Nearest-rank p50 of the 100, failures last: 5..500 ms without 35
    // and 40 ms, the 50th is 260 ms.
    let p50 = m
        .value(
            "amaze_quantile_seconds",
            &[
                ("sla", "checkout"),
                ("scope", "sla"),
                ("window", "5m"),
                ("q", "0.5"),
            ],
        )
        .unwrap();
    assert!((p50 - 0.26).abs() <= 0.26 * 0.01, "{p50}");
}

/// A protobuf POST to `/v1/traces`: the status, and the `google.rpc.Status`
/// of an error answer.
fn post_protobuf(ex: &Exporter, body: &[u8], encoding: Option<&str>) -> (u16, tonic_types::Status) {
    use prost::Message;
    let mut headers = vec![("content-type", "application/x-protobuf")];
    headers.extend(encoding.map(|e| ("content-encoding", e)));
    let r = ex.post_bytes("/v1/traces", &headers, body);
    let status = tonic_types::Status::decode(&r.body[..]).unwrap_or_default();
    (r.status, status)
}

#[test]
fn bad_bodies_are_refused_clearly_and_change_nothing() {
    let ex = Exporter::start(CONFIG);
    let post = |content_type: &str, body: &[u8]| ex.post("/v1/traces", content_type, body);
    // Errors come as google.rpc.Status, code INVALID_ARGUMENT (3).
    let (status, answer) = post_protobuf(&ex, &[0x0a, 0xff, 0x01, 0x02], None);
    assert_eq!((status, answer.code), (400, 3), "{answer:?}");
    assert!(
        answer
            .message
            .contains("not an OTLP ExportTraceServiceRequest"),
        "{answer:?}"
    );
    let r = post("application/json", br#"{"resourceSpans": 5}"#);
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["code"], 3, "{}", r.body);
    assert!(
        r.body
            .contains("not an OTLP/JSON ExportTraceServiceRequest"),
        "{}",
        r.body
    );
    let r = post("text/plain", b"hello");
    assert_eq!(r.status, 415, "{}", r.body);
    // gzip that does not inflate, and gzip that inflates past max_body_bytes.
    let (status, answer) = post_protobuf(&ex, b"not gzip at all", Some("gzip"));
    assert_eq!(status, 400, "{answer:?}");
    assert!(answer.message.contains("does not inflate"), "{answer:?}");
    let bomb = {
        use std::io::Write;
        let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&vec![0u8; 17 << 20]).unwrap();
        z.finish().unwrap()
    };
    assert!(bomb.len() < 100_000);
    let (status, answer) = post_protobuf(&ex, &bomb, Some("gzip"));
    assert_eq!(status, 413, "{answer:?}");
    assert!(
        answer
            .message
            .contains("inflates past limits.max_body_bytes"),
        "{answer:?}"
    );
    let (status, answer) = post_protobuf(&ex, b"x", Some("br"));
    assert_eq!((status, answer.code), (415, 3), "{answer:?}");
    assert!(
        answer.message.contains("`br` is not supported"),
        "{answer:?}"
    );
    // A span that ends before it starts is refused alone, as a partial success.
    let span = |name: &str, start: u64, end: u64| {
        format!(
            r#"{{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b17{}","name":"{name}","kind":2,"startTimeUnixNano":"{start}","endTimeUnixNano":"{end}"}}"#,
            name.len() % 10
        )
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let body = format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"shop"}}}}]}},"scopeSpans":[{{"spans":[{},{},{},{}]}}]}}]}}"#,
        span("checkout", now - 200_000_000, now - 100_000_000),
        span("checkout", now - 100_000_000, now - 200_000_000),
        // 56 years: past the 400 days a delivery may take.
        span("checkout", 1, now).replace("c1b17", "c1b18"),
        // Failed, but still ending before it starts.
        span("checkout", now - 100_000_000, now - 200_000_000)
            .replace("c1b17", "c1b19")
            .replace(r#""kind":2,"#, r#""kind":2,"status":{"code":2},"#),
    );
    // A full success is `{}`: OTLP/JSON leaves unset fields out.
    let r = post("application/json", br#"{"resourceSpans":[]}"#);
    assert_eq!((r.status, r.body.as_str()), (200, "{}"));
    let r = post("application/json", body.as_bytes());
    assert_eq!(r.status, 200, "{}", r.body);
    let answer = r.json();
    assert_eq!(answer["partialSuccess"]["rejectedSpans"], 3, "{answer}");
    let message = answer["partialSuccess"]["errorMessage"]
        .as_str()
        .unwrap_or("");
    assert!(message.starts_with("span `checkout`"), "{message}");
    let m = ex.metrics();
    assert_eq!(
        m.value("amaze_ingest_accepted_total", &[("source", "otlp")]),
        Some(1.0)
    );
    assert_eq!(
        m.value(
            "amaze_ingest_rejected_total",
            &[("source", "otlp"), ("reason", "malformed")]
        ),
        Some(5.0)
    );
    assert_eq!(
        m.value(
            "amaze_ingest_rejected_total",
            &[("source", "otlp"), ("reason", "body_too_large")]
        ),
        Some(1.0)
    );
}

/// More spans than `limits.max_lines_per_request` in one request: 413,
/// nothing recorded.
#[test]
fn too_many_spans_are_refused_whole() {
    let ex = Exporter::start(&CONFIG.replace(
        "version: 1\n",
        "version: 1\nlimits:\n  max_lines_per_request: 2\n",
    ));
    let span = r#"{"name":"checkout","kind":2,"startTimeUnixNano":"1","endTimeUnixNano":"2"}"#;
    let body =
        format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{span},{span},{span}]}}]}}]}}"#);
    let r = ex.post("/v1/traces", "application/json", body.as_bytes());
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.body.contains("3 spans in one request"), "{}", r.body);
    let m = ex.metrics();
    assert_eq!(
        m.value(
            "amaze_ingest_rejected_total",
            &[("source", "otlp"), ("reason", "too_many_lines")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.value("amaze_ingest_accepted_total", &[("source", "otlp")]),
        Some(0.0)
    );
}

/// Over gRPC, a message that is not protobuf, and one over the size limit
/// (plain or gzipped), get OTLP's permanent INVALID_ARGUMENT and are
/// counted, as over HTTP; tonic's decoder would answer INTERNAL,
/// OUT_OF_RANGE and RESOURCE_EXHAUSTED, which exporters retry.
#[test]
fn grpc_refuses_undecodable_and_oversized_messages_for_good() {
    if !tool_available("python3") || !python_has("grpc", "grpcio") {
        return;
    }
    let home = Home::new(&CONFIG.replace(
        "version: 1\n",
        "version: 1\nlimits:\n  max_body_bytes: 65536\n",
    ));
    let ex = home.start(&["--otlp.grpc-listen-address=127.0.0.1:0"]);
    let addr = logged_addr(&ex, "OTLP/gRPC listening");
    let script = r#"
import sys, grpc
channel = grpc.insecure_channel(sys.argv[1])
export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
big = b"\x0a\xa0\x8d\x06" + b"\x00" * 100000
for body, compression in [(b"\x0a\xff\x01", None), (big, None), (big, grpc.Compression.Gzip)]:
    try:
        export(body, timeout=5, compression=compression)
        print("OK")
    except grpc.RpcError as e:
        print(e.code().name)
"#;
    let said = python(&["-c", script, &addr]);
    assert_eq!(
        said,
        ["INVALID_ARGUMENT", "INVALID_ARGUMENT", "INVALID_ARGUMENT"]
    );
    let m = ex.metrics();
    let refused = |reason: &str| {
        m.value(
            "amaze_ingest_rejected_total",
            &[("source", "otlp"), ("reason", reason)],
        )
    };
    assert_eq!(
        (refused("malformed"), refused("body_too_large")),
        (Some(1.0), Some(2.0))
    );
}
