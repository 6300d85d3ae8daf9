//! Active HTTP probes against test servers on 127.0.0.1.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::Duration;

use crate::conformance::{self, Source, wait_for};
use crate::server::{Exporter, Home};

/// A tiny HTTP server: `/ok` 200 "all ok", `/fail` 500, `/wrongbody` 200
/// "nope", `/slow` answers after 600ms. Runs until the test process ends.
fn target() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    return;
                }
                // Skip the headers.
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let path = request.split_whitespace().nth(1).unwrap_or("/");
                let (status, body) = match path {
                    "/ok" => ("200 OK", "all ok"),
                    "/fail" => ("500 Internal Server Error", "boom"),
                    "/wrongbody" => ("200 OK", "nope"),
                    _ => {
                        std::thread::sleep(Duration::from_millis(600));
                        ("200 OK", "all ok")
                    }
                };
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    format!("http://{addr}")
}

fn config(base: &str) -> String {
    let mut c = String::from(
        "version: 1\nslas:\n  - name: site\n    promise: 500ms\n    objective: 99%\n    min_deliveries: 1\n    labels: [target]\nsources:\n  probes:\n",
    );
    for path in ["ok", "fail", "wrongbody", "slow"] {
        c.push_str(&format!(
            "    - url: {base}/{path}\n      sla: site\n      labels: {{target: {path}}}\n      interval: 150ms\n      timeout: 150ms\n      expect_body: all ok\n"
        ));
    }
    c
}

fn series(ex: &Exporter, metric: &str, target: &str) -> f64 {
    ex.metrics()
        .value(
            metric,
            &[
                ("sla", "site"),
                ("scope", "series"),
                ("window", "5m"),
                ("target", target),
            ],
        )
        .unwrap_or(0.0)
}

#[test]
fn probe_outcomes_become_timed_or_failed_deliveries() {
    let home = Home::new(&config(&target()));
    let ex = home.start(&[]);
    for t in ["ok", "fail", "wrongbody", "slow"] {
        wait_for(&format!("three checks of {t}"), || {
            series(&ex, "amaze_window_deliveries", t) >= 3.0
        });
    }
    assert_eq!(series(&ex, "amaze_window_bad_deliveries", "ok"), 0.0);
    for t in ["fail", "wrongbody", "slow"] {
        assert_eq!(
            series(&ex, "amaze_window_bad_deliveries", t),
            series(&ex, "amaze_window_deliveries", t),
            "every check of {t} failed"
        );
    }
    let m = ex.metrics();
    let fast = m
        .value(
            "amaze_quantile_seconds",
            &[
                ("sla", "site"),
                ("scope", "series"),
                ("window", "5m"),
                ("target", "ok"),
                ("q", "0.5"),
            ],
        )
        .unwrap();
    assert!(fast > 0.0 && fast < 0.15, "response time of /ok: {fast}");
    assert!(ex.log().contains("probe failing"), "{}", ex.log());
}

#[test]
fn probes_meet_the_source_contract() {
    let home = Home::new(&config(&target()));
    let ex = home.start(&[]);
    conformance::check(
        ex,
        &Source {
            name: "probe",
            sla: "site",
            // Probes feed themselves: wait for a few more checks.
            feed_good: &|_| {
                std::thread::sleep(Duration::from_millis(400));
                1
            },
            feed_bad: None,
        },
    );
}
