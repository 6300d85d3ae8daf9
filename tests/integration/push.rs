//! HTTP push through the real binary: figures, formats, idempotency, bad input.

use crate::server::{Exporter, Metrics};

pub const CONFIG: &str = r#"
version: 1
limits:
  max_body_bytes: 65536
slas:
  - name: checkout
    promise: 300ms
    objective: 99%
    target_margin: 50%
    min_deliveries: 10
    labels: [route]
  - name: tickets
    promise: 4h
    objective: 95%
    min_deliveries: 1
    labels: [priority]
    goals:
      - match: {priority: P1}
        promise: 1h
"#;

const SLA: (&str, &str) = ("sla", "checkout");
const AGG: (&str, &str) = ("scope", "sla");
const W5M: (&str, &str) = ("window", "5m");
/// Label sets export the last hour unless their SLA chooses otherwise.
const W1H: (&str, &str) = ("window", "1h");

/// Deterministic durations in seconds, spread from 5ms to ~330ms.
fn durations(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| 0.005 + ((i * 7919 + 13) % 1000) as f64 * 0.000_325)
        .collect()
}

fn ndjson(ds: &[f64], route: &str) -> String {
    ds.iter()
        .map(|d| format!("{{\"sla\":\"checkout\",\"duration_seconds\":{d},\"labels\":{{\"route\":\"{route}\"}}}}\n"))
        .collect()
}

/// The quantile definition of DESIGN.md computed exactly: sorted relative
/// times, failures last at +inf, lower rank floor(q (n - 1)).
fn exact_quantile(relatives: &[f64], failed: usize, q: f64) -> f64 {
    let mut all: Vec<f64> = relatives.to_vec();
    all.extend(std::iter::repeat_n(f64::INFINITY, failed));
    all.sort_by(f64::total_cmp);
    all[(q * (all.len() - 1) as f64) as usize]
}

fn deliveries_in_window(m: &Metrics) -> f64 {
    m.value("amaze_window_deliveries", &[SLA, AGG, W5M])
        .unwrap_or(0.0)
}

#[test]
fn pushed_deliveries_set_every_figure_as_designed() {
    let ex = Exporter::start(CONFIG);
    let ds = durations(300);
    let mut body = ndjson(&ds, "/pay");
    body.push_str("{\"sla\":\"checkout\",\"failed\":true,\"labels\":{\"route\":\"/pay\"}}\n");
    let r = ex.push(&body);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["accepted"], 301);

    let promise = 0.3;
    let rel: Vec<f64> = ds.iter().map(|d| d / promise).collect();
    let n = 301.0;
    let late = rel.iter().filter(|r| **r > 1.0).count() as f64;
    let bad = late + 1.0;
    let q99 = exact_quantile(&rel, 1, 0.99);
    let expected_margin = (1.0 - q99).max(-1.0);
    let m = ex.metrics();
    for scope in [
        vec![SLA, AGG, W5M],
        vec![SLA, ("route", "/pay"), ("scope", "series"), W1H],
    ] {
        let margin = m
            .value("amaze_margin_ratio", &scope)
            .expect("margin exported");
        // The sketch answers within 1% of the exact quantile: |margin error| <= 1% of q.
        assert!(
            (margin - expected_margin).abs() <= 0.01 * q99 + 1e-12,
            "margin {margin} vs exact {expected_margin}"
        );
        assert_eq!(m.value("amaze_window_deliveries", &scope), Some(n));
        assert_eq!(m.value("amaze_window_bad_deliveries", &scope), Some(bad));
        let compliance = m.value("amaze_compliance_ratio", &scope).unwrap();
        assert!((compliance - (n - bad) / n).abs() < 1e-12);
        let burn = m.value("amaze_burn_rate_ratio", &scope).unwrap();
        assert!((burn - (bad / n) / 0.01).abs() < 1e-9, "burn {burn}");
        let amazing = rel.iter().filter(|r| **r <= 0.5).count() as f64 / n;
        assert!((m.value("amaze_amazing_ratio", &scope).unwrap() - amazing).abs() < 1e-12);
        for q in [0.5, 0.9, 0.99] {
            let mut labels = scope.clone();
            let qs = q.to_string();
            labels.push(("q", &qs));
            let got = m.value("amaze_quantile_seconds", &labels).unwrap();
            let exact = exact_quantile(&rel, 1, q) * promise;
            assert!(
                (got - exact).abs() <= 0.01 * exact,
                "p{q}: {got} vs {exact}"
            );
        }
    }
    let status = |s: &str| m.value("amaze_status", &[SLA, AGG, W5M, ("status", s)]);
    let expected = if expected_margin < 0.0 {
        "breaching"
    } else if expected_margin >= 0.5 {
        "amazing"
    } else {
        "meeting"
    };
    assert_eq!(status(expected), Some(1.0));
    // Budget is exported for the compliance window only.
    let budget = m
        .value(
            "amaze_error_budget_remaining_ratio",
            &[SLA, AGG, ("window", "30d")],
        )
        .unwrap();
    assert!((budget - (1.0 - (bad / n) / 0.01)).abs() < 1e-9);
    assert_eq!(
        m.value("amaze_error_budget_remaining_ratio", &[SLA, AGG, W5M]),
        None
    );

    // Cumulative counters and the promise-relative histogram, exact.
    let route = ("route", "/pay");
    assert_eq!(
        m.value("amaze_deliveries_total", &[SLA, route, ("result", "late")]),
        Some(late)
    );
    assert_eq!(
        m.value(
            "amaze_deliveries_total",
            &[SLA, route, ("result", "failed")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.value(
            "amaze_deliveries_total",
            &[SLA, route, ("result", "within")]
        ),
        Some(300.0 - late)
    );
    let edges = [
        "0.03", "0.075", "0.15", "0.225", "0.27", "0.3", "0.45", "0.6", "1.5",
    ];
    for le in edges {
        let bound: f64 = le.parse().unwrap();
        let expected = ds.iter().filter(|d| **d <= bound).count() as f64;
        assert_eq!(
            m.value(
                "amaze_delivery_duration_seconds_bucket",
                &[SLA, route, ("le", le)]
            ),
            Some(expected),
            "le={le}"
        );
    }
    assert_eq!(
        m.value("amaze_delivery_duration_seconds_count", &[SLA, route]),
        Some(300.0)
    );
}

#[test]
fn goals_judge_each_label_set_by_its_own_promise() {
    let ex = Exporter::start(CONFIG);
    // 30 minutes is half of P1's 1h promise and an eighth of the default 4h.
    let body = "{\"sla\":\"tickets\",\"duration\":\"30m\",\"labels\":{\"priority\":\"P1\"}}\n\
                {\"sla\":\"tickets\",\"duration\":\"30m\",\"labels\":{\"priority\":\"P3\"}}\n";
    assert_eq!(ex.push(body).status, 200);
    let m = ex.metrics();
    let t = ("sla", "tickets");
    let series = |p| [t, ("priority", p), ("scope", "series"), W1H];
    let p1 = m.value("amaze_margin_ratio", &series("P1")).unwrap();
    let p3 = m.value("amaze_margin_ratio", &series("P3")).unwrap();
    assert!((p1 - 0.5).abs() <= 0.005, "{p1}");
    assert!((p3 - 0.875).abs() <= 0.00125, "{p3}");
    // The SLA-wide margin merges relative times: the nearest-rank p95 of
    // {0.125, 0.5} is rank ceil(0.95 x 2) = 2, so 0.5.
    let all = m.value("amaze_margin_ratio", &[t, AGG, W5M]).unwrap();
    assert!((all - 0.5).abs() <= 0.005, "{all}");
    // Seconds quantiles only where one promise applies.
    assert!(
        m.value(
            "amaze_quantile_seconds",
            &[
                t,
                ("priority", "P1"),
                ("scope", "series"),
                W1H,
                ("q", "0.5")
            ]
        )
        .is_some()
    );
    assert!(
        m.value("amaze_quantile_seconds", &[t, AGG, W5M, ("q", "0.5")])
            .is_none()
    );
    assert_eq!(
        m.value("amaze_goal_promise_seconds", &[t, ("priority", "P1")]),
        Some(3600.0)
    );
    let le = m.value(
        "amaze_delivery_duration_seconds_bucket",
        &[t, ("priority", "P1"), ("le", "3600")],
    );
    assert_eq!(le, Some(1.0), "P1 histogram edges are fractions of 1h");
}

#[test]
fn every_body_shape_is_accepted() {
    let ex = Exporter::start(CONFIG);
    let one = br#"{"sla":"checkout","duration":"120ms"}"#;
    let pretty = b"{\n  \"sla\": \"checkout\",\n  \"duration\": \"120ms\"\n}\n";
    let array =
        br#"[{"sla":"checkout","duration":"120ms"},{"sla":"checkout","duration_seconds":0.1}]"#;
    let ndjson = b"{\"sla\":\"checkout\",\"duration\":\"1ms\"}\n\n{\"sla\":\"checkout\",\"duration\":\"2ms\"}\n";
    let mut total = 0;
    for (ct, body, n) in [
        ("application/json", &one[..], 1),
        ("application/json", &pretty[..], 1),
        ("application/json", &array[..], 2),
        ("application/x-ndjson", &ndjson[..], 2),
        ("application/x-www-form-urlencoded", &array[..], 2),
        ("application/x-www-form-urlencoded", &ndjson[..], 2),
        ("text/plain", &pretty[..], 1),
    ] {
        let r = ex.post("/api/v1/deliveries", ct, body);
        assert_eq!(r.status, 200, "{ct}: {}", r.body);
        assert_eq!(r.json()["accepted"], n);
        total += n;
    }
    assert_eq!(deliveries_in_window(&ex.metrics()), total as f64);
}

#[test]
fn a_bad_line_rejects_the_whole_batch_with_every_error() {
    let ex = Exporter::start(CONFIG);
    let body = "{\"sla\":\"checkout\",\"duration\":\"10ms\"}\n\
                {\"sla\":\"checkout\",\"duration\":\"fast\"}\n\
                {\"sla\":\"checkout\",\"duration_seconds\":-1}\n\
                {\"sla\":\"checkout\",\"duration\":\"10ms\",\"labels\":{\"colour\":\"red\"}}\n\
                {\"sla\":\"checkout\",\"duration\":\"10ms\"\n\
                {\"sla\":\"checkout\",\"duration_seconds\":1e12}\n\
                {\"sla\":\"checkout\",\"duration\":\"10ms\",\"delivered_at\":\"2001-01-01T00:00:00Z\"}\n\
                {\"sla\":\"checkout\",\"duration\":\"10ms\",\"delivered_at\":\"2999-01-01T00:00:00Z\"}\n\
                {\"sla\":\"checkout\",\"started_at\":\"2026-01-01T10:00:00Z\",\"delivered_at\":\"2026-01-01T09:00:00Z\"}\n";
    let r = ex.push(body);
    assert_eq!(r.status, 400, "{}", r.body);
    let errors = r.json()["errors"].as_array().unwrap().clone();
    let lines: Vec<u64> = errors.iter().map(|e| e["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, vec![2, 3, 4, 5, 6, 7, 8, 9]);
    let field = |i: usize| errors[i]["field"].as_str().unwrap_or("").to_owned();
    assert_eq!(field(0), "duration");
    assert_eq!(field(1), "duration_seconds");
    assert_eq!(field(2), "labels.colour");
    assert_eq!(field(4), "duration_seconds");
    assert!(
        errors[5]["reason"]
            .as_str()
            .unwrap()
            .contains("before the SLA's longest window")
    );
    assert!(
        errors[6]["reason"]
            .as_str()
            .unwrap()
            .contains("in the future")
    );
    assert!(
        errors[7]["reason"]
            .as_str()
            .unwrap()
            .contains("before started_at")
    );
    let m = ex.metrics();
    assert_eq!(deliveries_in_window(&m), 0.0, "nothing recorded");
    // Lines 3, 4, 6 and 9 are invalid values; lines 2 and 5 do not parse.
    assert_eq!(
        m.value(
            "amaze_ingest_rejected_total",
            &[("source", "http"), ("reason", "invalid")]
        ),
        Some(4.0)
    );
    assert_eq!(
        m.value(
            "amaze_ingest_rejected_total",
            &[("source", "http"), ("reason", "malformed")]
        ),
        Some(2.0)
    );
    assert_eq!(
        m.value(
            "amaze_ingest_rejected_total",
            &[("source", "http"), ("reason", "too_old")]
        ),
        Some(1.0)
    );
}

#[test]
fn unknown_sla_is_not_found() {
    let ex = Exporter::start(CONFIG);
    let r = ex.push("{\"sla\":\"nope\",\"duration\":\"1s\"}\n");
    assert_eq!(r.status, 404);
    let reason = r.json()["errors"][0]["reason"].as_str().unwrap().to_owned();
    assert!(
        reason.contains("unknown SLA `nope`") && reason.contains("checkout"),
        "{reason}"
    );
}

#[test]
fn malformed_bodies_get_clear_errors() {
    let ex = Exporter::start(CONFIG);
    for (ct, body, needle) in [
        (
            "application/json",
            &b"{\"sla\": "[..],
            "not one JSON object",
        ),
        (
            "application/json",
            &b"[{\"sla\":\"checkout\"},"[..],
            "not a JSON array",
        ),
        ("application/x-ndjson", &b"   \n"[..], "no deliveries"),
        (
            "application/x-ndjson",
            &b"{\"sla\":\"checkout\",\"duration\":\"1\xff\"}"[..],
            "not UTF-8",
        ),
        (
            "application/x-ndjson",
            &b"[1,2]"[..],
            "expected a delivery object ({\\\"field\\\": value, ...}), found an array",
        ),
    ] {
        let r = ex.post("/api/v1/deliveries", ct, body);
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(r.body.contains(needle), "{needle}: {}", r.body);
    }
    assert_eq!(ex.get("/api/v1/deliveries").status, 405);
}

#[test]
fn oversized_body_is_refused_with_413() {
    let ex = Exporter::start(CONFIG);
    let body = ndjson(&durations(1000), "/x");
    assert!(body.len() > 65536);
    let r = ex.push(&body);
    assert_eq!(r.status, 413);
    assert!(r.body.contains("max_body_bytes"), "{}", r.body);
    assert_eq!(deliveries_in_window(&ex.metrics()), 0.0);
}

#[test]
fn retried_ids_are_counted_once() {
    let ex = Exporter::start(CONFIG);
    let body = "{\"sla\":\"checkout\",\"duration\":\"10ms\",\"id\":\"req-1\"}\n{\"sla\":\"checkout\",\"duration\":\"10ms\",\"id\":\"req-1\"}\n";
    let r = ex.push(body);
    assert_eq!(
        (
            r.json()["accepted"].as_u64(),
            r.json()["duplicates"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let r = ex.push(body);
    assert_eq!(
        (
            r.json()["accepted"].as_u64(),
            r.json()["duplicates"].as_u64()
        ),
        (Some(0), Some(2))
    );
    // The same id under another SLA is another delivery.
    let r = ex.push("{\"sla\":\"tickets\",\"duration\":\"1h\",\"id\":\"req-1\"}\n");
    assert_eq!(r.json()["accepted"], 1);
    let m = ex.metrics();
    assert_eq!(deliveries_in_window(&m), 1.0);
    assert_eq!(
        m.value("amaze_ingest_duplicates_total", &[("source", "http")]),
        Some(3.0)
    );
}

#[test]
fn low_traffic_exports_counts_but_no_margin() {
    let ex = Exporter::start(CONFIG);
    assert_eq!(ex.push(&ndjson(&[0.9; 9], "/slow")).status, 200);
    let m = ex.metrics();
    assert_eq!(deliveries_in_window(&m), 9.0);
    assert_eq!(
        m.value("amaze_window_bad_deliveries", &[SLA, AGG, W5M]),
        Some(9.0)
    );
    assert_eq!(m.value("amaze_margin_ratio", &[SLA, AGG, W5M]), None);
    assert_eq!(
        m.value("amaze_status", &[SLA, AGG, W5M, ("status", "breaching")]),
        None
    );
    // The tenth delivery makes the window count.
    assert_eq!(ex.push(&ndjson(&[0.9], "/slow")).status, 200);
    assert_eq!(
        ex.metrics().value("amaze_margin_ratio", &[SLA, AGG, W5M]),
        Some(-1.0)
    );
}
