//! `/metrics` in each exposition format a scraper can ask for: protobuf with
//! native histograms of r, OpenMetrics text, and the classic text format.

use prometheus_client::encoding::prometheus_protobuf::prometheus_data_model::{
    MetricFamily, MetricType,
};
use prost::Message;

use crate::server::Exporter;

const PROTOBUF: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
const OPENMETRICS: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Promise 1s: 0 ms, 500 ms, exactly 1 s, 1 s + 1 ns, 3 s, and one failure.
fn fed() -> Exporter {
    let ex = Exporter::start(
        "version: 1\nslas:\n  - name: api\n    promise: 1s\n    objective: 90%\n    min_deliveries: 1\n",
    );
    for line in [
        r#"{"sla":"api","duration":"0ms"}"#,
        r#"{"sla":"api","duration":"500ms"}"#,
        r#"{"sla":"api","duration":"1s"}"#,
        r#"{"sla":"api","duration_seconds":1.000000001}"#,
        r#"{"sla":"api","duration":"3s"}"#,
        r#"{"sla":"api","failed":true}"#,
    ] {
        assert_eq!(ex.push(line).status, 200, "{line}");
    }
    ex
}

fn get(ex: &Exporter, accept: &str) -> (String, Vec<u8>) {
    let r = ex.get_bytes("/metrics", &[("accept", accept)]);
    assert_eq!(r.status, 200);
    let content_type = r.header("content-type").unwrap_or_default().to_owned();
    (content_type, r.body)
}

fn decode(mut body: &[u8]) -> Vec<MetricFamily> {
    let mut families = Vec::new();
    while !body.is_empty() {
        families.push(MetricFamily::decode_length_delimited(&mut body).expect("a MetricFamily"));
    }
    families
}

/// The native histogram of r: a delivery on the promise is in the bucket
/// whose upper bound is 1, a nanosecond later in the next; 0 ms in the zero
/// bucket; the failure in the top bucket (upper bound 1024).
#[test]
fn protobuf_carries_native_histograms_of_r() {
    let ex = fed();
    let (content_type, body) = get(&ex, PROTOBUF);
    assert_eq!(
        content_type,
        "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
    );
    let families = decode(&body);
    let family = |name: &str| {
        families
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
    };
    let ratio = family("amaze_delivery_duration_ratio");
    assert_eq!(ratio.r#type, MetricType::Histogram as i32);
    let h = ratio.metric[0].histogram.as_ref().unwrap();
    assert_eq!(ratio.metric[0].label[0].value, "api");
    assert_eq!(h.schema, 7);
    assert_eq!(h.sample_count, 6);
    assert_eq!(h.zero_count, 1);
    assert!(
        (h.sample_sum - 5.500000001).abs() < 1e-12,
        "{}",
        h.sample_sum
    );
    // Buckets -128 (r = 0.5), 0 (r = 1), 1 (1 s + 1 ns), 203 (r = 3), 1280 (failed).
    let spans: Vec<(i32, u32)> = h
        .positive_span
        .iter()
        .map(|s| (s.offset, s.length))
        .collect();
    assert_eq!(spans, [(-128, 1), (127, 2), (201, 1), (1076, 1)]);
    assert_eq!(h.positive_delta, [1, 0, 0, 0, 0]);
    assert!(h.bucket.is_empty(), "native only");
    // The classic families come along, same names and values as text.
    let deliveries = family("amaze_deliveries_total");
    assert_eq!(deliveries.r#type, MetricType::Counter as i32);
    let by_result = |result: &str| {
        deliveries
            .metric
            .iter()
            .find(|m| {
                m.label
                    .iter()
                    .any(|l| l.name == "result" && l.value == result)
            })
            .and_then(|m| m.counter.as_ref())
            .map(|c| c.value)
    };
    assert_eq!(
        (by_result("within"), by_result("late"), by_result("failed")),
        (Some(3.0), Some(2.0), Some(1.0))
    );
    let classic = family("amaze_delivery_duration_seconds");
    let h = classic.metric[0].histogram.as_ref().unwrap();
    assert_eq!(h.sample_count, 5);
    let at_promise = h.bucket.iter().find(|b| b.upper_bound == 1.0).unwrap();
    assert_eq!(at_promise.cumulative_count, 3);
    assert!(
        family("process_cpu_seconds_total").metric[0]
            .counter
            .is_some()
    );
}

#[test]
fn openmetrics_when_asked_and_text_otherwise() {
    let ex = fed();
    let (content_type, body) = get(&ex, OPENMETRICS);
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = String::from_utf8(body).unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(text.contains("# TYPE amaze_deliveries counter\n"), "{text}");
    assert!(
        text.contains("amaze_deliveries_total{sla=\"api\",result=\"late\"} 2.0\n"),
        "{text}"
    );
    assert!(text.contains("amaze_margin_ratio{sla=\"api\",scope=\"sla\",window=\"5m\"} "));
    assert!(
        !text.contains("amaze_delivery_duration_ratio"),
        "native only"
    );
    assert!(text.contains("\nprocess_threads "), "no empty braces");

    let (content_type, body) = get(&ex, "*/*");
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains("# TYPE amaze_deliveries_total counter\n"));
    assert!(!text.contains("# EOF"));
    assert!(!text.contains("amaze_delivery_duration_ratio"));
}
