//! The binary as an operator meets it: flags, `check`, exit codes, health.

use std::process::Command;

use crate::server::Exporter;

fn exporter(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_amaze-exporter"))
        .args(args)
        .output()
        .expect("run amaze-exporter")
}

const BROKEN: &str = r#"
version: 1
slas:
  - name: api
    promise: 300 furlongs
    objective: 120%
    labels: [route, le, replica]
  - name: api
    promise: 1s
    objective: 99%
    target_margin: 10%
    alert_margin: 20%
    window: 5m
    goals:
      - match: {tier: gold}
        promise: 1s
"#;

#[test]
fn check_lists_every_problem_with_its_path_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.yaml");
    std::fs::write(&path, BROKEN).unwrap();
    let out = exporter(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "slas[0].promise (line 5)",
        "slas[0].objective (line 6)",
        "slas[0].labels[1] (line 7)",
        "slas[0].labels[2] (line 7): `replica` is reserved",
        "slas[1].name (line 8): duplicate SLA name `api`",
        "slas[1].alert_margin (line 12)",
        "slas[1].window (line 13)",
        "slas[1].goals[0].match.tier",
    ] {
        assert!(err.contains(needle), "missing `{needle}` in:\n{err}");
    }
}

#[test]
fn serve_refuses_a_bad_config_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.yaml");
    std::fs::write(
        &path,
        "version: 1\nslas:\n  - name: x\n    promise: 1s\n    objective: 99%\n    surprise: 1\n",
    )
    .unwrap();
    let out = exporter(&[
        &format!("--config.file={}", path.display()),
        "--web.listen-address=127.0.0.1:0",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("slas[0].surprise (line 6): unknown key `surprise`")
    );
    let out = exporter(&[
        "--config.file=/nonexistent/amaze.yaml",
        "--web.listen-address=127.0.0.1:0",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config file"));
}

#[test]
fn check_accepts_the_shipped_config() {
    let out = exporter(&[
        "check",
        "--config",
        concat!(env!("CARGO_MANIFEST_DIR"), "/config/amaze.yaml"),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid, 3 SLAs"));
}

#[test]
fn health_endpoints_and_self_metrics() {
    let ex = Exporter::start(crate::push::CONFIG);
    assert_eq!(ex.get("/-/healthy").status, 200);
    assert_eq!(ex.get("/-/ready").status, 200);
    let m = ex.metrics();
    assert_eq!(
        m.value("amaze_sla_promise_seconds", &[("sla", "checkout")]),
        Some(0.3)
    );
    assert_eq!(
        m.value("amaze_sla_objective_ratio", &[("sla", "checkout")]),
        Some(0.99)
    );
    assert_eq!(
        m.value("amaze_sla_target_margin_ratio", &[("sla", "checkout")]),
        Some(0.5)
    );
    assert_eq!(
        m.value("amaze_sla_alert_margin_ratio", &[("sla", "checkout")]),
        Some(0.25),
        "defaults to half the target"
    );
    assert_eq!(
        m.value("amaze_sla_window_seconds", &[("sla", "checkout")]),
        Some(30.0 * 86400.0)
    );
    assert_eq!(
        m.value("amaze_ingest_accepted_total", &[("source", "http")]),
        Some(0.0)
    );
    assert!(m.0.contains("amaze_build_info{"), "build info exported");
    assert!(
        m.0.contains("process_resident_memory_bytes"),
        "process metrics exported"
    );
    assert_eq!(ex.get("/nowhere").status, 404);
}

#[test]
fn landing_page_lists_every_sla_with_its_margin_and_status() {
    let ex = Exporter::start(crate::push::CONFIG);
    let body: String = (0..100)
        .map(|i| {
            format!(
                "{{\"sla\":\"checkout\",\"duration\":\"{}ms\"}}\n",
                10 + i % 50
            )
        })
        .collect();
    assert_eq!(ex.push(&body).status, 200);
    let page = ex.get("/");
    assert_eq!(page.status, 200);
    for expected in [
        "data-sla=\"checkout\" data-state=\"amazing\"",
        "data-sla=\"tickets\"",
        "Promise 300ms",
        "Promise 4h",
        "href=\"/metrics\"",
        "POST /api/v1/deliveries",
        "<meta http-equiv=\"refresh\" content=\"30\">",
        "As of ",
    ] {
        assert!(
            page.body.contains(expected),
            "missing {expected}:\n{}",
            page.body
        );
    }
    // p99 of 10..59ms against 300ms: margin 1 - 0.059/0.3 = 80.3% (sketch within 1%).
    let margin = page
        .body
        .split("● 30d ")
        .nth(1)
        .and_then(|s| s.split('%').next())
        .and_then(|m| m.parse::<f64>().ok())
        .expect("margin on the page");
    assert!((margin - 80.3).abs() < 0.7, "{margin}");
}

/// Every source is started when configured, and counted from the start:
/// `/metrics` shows every reason each source can give, at 0, before anything
/// arrives, and one delivery through each (pushed, an event, a StatsD
/// timer, a log line, a probe) is counted under it. A source added to
/// `Source` but not configured and fed here, or configured but never
/// started, fails this test.
#[test]
fn every_source_is_started_and_counted_from_the_start() {
    use std::io::{Read, Write};

    use amaze_exporter::source::Source;
    let logs = tempfile::tempdir().unwrap();
    std::fs::write(logs.path().join("a.log"), "120\n").unwrap();
    // A page for the probe to check.
    let page = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let page_addr = page.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in page.incoming().flatten().take(8) {
            let mut stream = stream;
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    let config = format!(
        r#"version: 1
slas:
  - name: api
    promise: 1s
    objective: 99%
sources:
  statsd:
    listen: 127.0.0.1:0
    mappings:
      - metric: api.latency
        sla: api
  log_tail:
    - name: web
      paths: ["{}/*.log"]
      start_at: beginning
      regex: '^(?P<ms>\d+)$'
      sla: api
      duration_field: ms
      duration_unit: ms
      poll_interval: 50ms
  probes:
    - url: http://{page_addr}/
      sla: api
      interval: 1h
  otlp:
    spans:
      - sla: api
        match: {{span.name: work}}
"#,
        logs.path().display()
    );
    let ex = Exporter::start(&config);
    let m = ex.metrics();
    for source in Source::ALL {
        for reason in source.reasons() {
            let labels = [("source", source.as_str()), ("reason", reason.as_str())];
            let value = m.value("amaze_ingest_rejected_total", &labels);
            assert!(value.is_some(), "{source}/{reason} is not pre-created");
        }
    }
    // One delivery through each source.
    assert_eq!(
        ex.push("{\"sla\":\"api\",\"duration\":\"10ms\"}\n").status,
        200
    );
    for kind in ["start", "finish"] {
        let r = ex.post(
            &format!("/api/v1/deliveries/{kind}"),
            "application/json",
            br#"{"sla":"api","id":"T-1"}"#,
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let span = format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"name":"work","startTimeUnixNano":"{}","endTimeUnixNano":"{now}"}}]}}]}}]}}"#,
        now - 10_000_000
    );
    let r = ex.post("/v1/traces", "application/json", span.as_bytes());
    assert_eq!(r.status, 200, "{}", r.body);
    let udp = ex
        .log()
        .split("udp=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .map(str::to_owned)
        .expect("statsd logs its address");
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        socket.send_to(b"api.latency:12|ms", &udp).unwrap();
        let m = ex.metrics();
        let missing: Vec<&str> = Source::ALL
            .iter()
            .filter(|s| s.delivers())
            .filter(|s| {
                m.value("amaze_ingest_accepted_total", &[("source", s.as_str())])
                    .is_none_or(|n| n < 1.0)
            })
            .map(|s| s.as_str())
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nothing counted under {missing:?}: configured but not started?"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Issue 16 (in part): a scraper that asks for gzip gets it; what it
/// decompresses is the plain exposition.
#[test]
fn metrics_are_gzipped_when_the_scraper_asks() {
    use std::io::Read;
    let ex = crate::server::Exporter::start(
        "version: 1\nslas:\n  - name: api\n    promise: 300ms\n    objective: 99%\n    min_deliveries: 1\n",
    );
    assert_eq!(ex.push(r#"{"sla":"api","duration":"100ms"}"#).status, 200);
    let r = ex.get_bytes("/metrics", &[("accept-encoding", "gzip")]);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let zipped = r.body;
    let mut text = String::new();
    flate2::read::GzDecoder::new(zipped.as_slice())
        .read_to_string(&mut text)
        .unwrap();
    let plain = ex.metrics().0;
    assert!(
        zipped.len() * 3 < plain.len(),
        "{} of {}",
        zipped.len(),
        plain.len()
    );
    let figure = |t: &str| {
        t.lines()
            .find(|l| l.starts_with("amaze_deliveries_total{sla=\"api\",result=\"within\""))
            .map(str::to_owned)
    };
    assert_eq!(figure(&text), figure(&plain));
    assert!(figure(&text).is_some_and(|l| l.ends_with(" 1")), "{text}");
}

/// Issue 16 (in part): an SLA chooses the windows exported per label set;
/// the SLA-wide series keeps every window, and a window the SLA does not
/// have is a config problem naming the ones it has.
#[test]
fn series_windows_choose_what_each_label_set_exports() {
    let ex = crate::server::Exporter::start(
        "version: 1\nslas:\n  - name: api\n    promise: 300ms\n    objective: 99%\n    min_deliveries: 1\n    labels: [route]\n    series_windows: [1h, 30d]\n",
    );
    assert_eq!(
        ex.push(r#"{"sla":"api","labels":{"route":"/a"},"duration":"100ms"}"#)
            .status,
        200
    );
    let m = ex.metrics();
    let windows = |scope: &str| {
        let mut w: Vec<String> =
            m.0.lines()
                .filter(|l| l.starts_with("amaze_window_deliveries{"))
                .filter(|l| l.contains(&format!("scope=\"{scope}\"")))
                .filter_map(|l| {
                    l.split("window=\"")
                        .nth(1)?
                        .split('"')
                        .next()
                        .map(str::to_owned)
                })
                .collect();
        w.sort();
        w
    };
    assert_eq!(windows("series"), ["1h", "30d"]);
    assert_eq!(windows("sla").len(), 7, "{:?}", windows("sla"));
}

/// The SLA-wide windows are kept apart from the label sets', so choosing
/// other windows per label set on a reload changes nothing SLA-wide, a newly
/// chosen window starts from what the label set kept, and the state survives
/// a restart in the new shape.
#[test]
fn series_windows_follow_a_reload_and_the_sla_wide_figures_stay() {
    let home = crate::server::Home::new(
        "version: 1\nslas:\n  - name: api\n    promise: 300ms\n    objective: 90%\n    min_deliveries: 1\n    labels: [route]\n",
    );
    let ex = home.start(&[]);
    let body: String = (0..40)
        .map(|i| {
            let route = ["/a", "/b"][i % 2];
            let ms = if i % 10 == 0 { 400 } else { 5 * i };
            format!(
                "{{\"sla\":\"api\",\"labels\":{{\"route\":\"{route}\"}},\"duration\":\"{ms}ms\"}}\n"
            )
        })
        .collect();
    assert_eq!(ex.push(&body).status, 200);
    let sla_wide = |ex: &crate::server::Exporter| {
        let m = ex.metrics();
        ["5m", "1h", "30d"].map(|w| {
            let at = [("sla", "api"), ("scope", "sla"), ("window", w)];
            (
                m.value("amaze_window_deliveries", &at),
                m.value("amaze_window_bad_deliveries", &at),
                m.value("amaze_margin_ratio", &at),
            )
        })
    };
    let before = sla_wide(&ex);
    assert_eq!(before[0].0, Some(40.0));
    assert_eq!(before[0].1, Some(4.0));
    let series = |ex: &crate::server::Exporter, w: &str| {
        ex.metrics().value(
            "amaze_window_deliveries",
            &[
                ("sla", "api"),
                ("route", "/a"),
                ("scope", "series"),
                ("window", w),
            ],
        )
    };
    assert_eq!((series(&ex, "1h"), series(&ex, "30d")), (Some(20.0), None));

    home.write_config(
        "version: 1\nslas:\n  - name: api\n    promise: 300ms\n    objective: 90%\n    min_deliveries: 1\n    labels: [route]\n    series_windows: [5m, 30d]\n",
    );
    assert_eq!(ex.reload().status, 200);
    assert_eq!(sla_wide(&ex), before);
    assert_eq!(
        (series(&ex, "5m"), series(&ex, "30d")),
        (Some(20.0), Some(20.0))
    );
    assert_eq!(series(&ex, "1h"), None);
    ex.stop();
    let ex = home.start(&[]);
    assert_eq!(sla_wide(&ex), before);
    assert_eq!(
        (series(&ex, "5m"), series(&ex, "30d")),
        (Some(20.0), Some(20.0))
    );

    let err = amaze_exporter::config::Config::parse(
        "version: 1\nslas:\n  - name: api\n    promise: 1s\n    objective: 99%\n    series_windows: [1h, 2h]\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("slas[0].series_windows[1] (line 6): `2h` is not a window of this SLA: 5m, 30m, 1h, 6h, 1d, 3d, 30d"),
        "{err}"
    );
}
