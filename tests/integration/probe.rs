//! Active HTTP probes against real HTTP and HTTPS servers on 127.0.0.1
//! ([`crate::targets`]): timed and judged as blackbox_exporter does.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::conformance::{self, Source, wait_for};
use crate::server::{Exporter, Home};
use crate::targets::{self, Pki, SERVER_CERT_EXPIRY};

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
                ("window", "1h"),
                ("target", target),
            ],
        )
        .unwrap_or(0.0)
}

#[test]
fn probe_outcomes_become_timed_or_failed_deliveries() {
    let home = Home::new(&config(&targets::http().base));
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
                ("window", "1h"),
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
    let home = Home::new(&config(&targets::http().base));
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

const HEAD: &str = "version: 1\nslas:\n  - name: site\n    promise: 1s\n    objective: 99%\n    min_deliveries: 1\n    labels: [target]\nsources:\n  probes:\n";

/// One probe entry: `name`, `url`, then its other settings, indented.
fn probe(name: &str, url: &str, settings: &str) -> String {
    let mut entry = format!(
        "    - name: {name}\n      url: {url}\n      sla: site\n      labels: {{target: {name}}}\n      interval: 300ms\n      timeout: 290ms\n"
    );
    for line in settings.lines().filter(|l| !l.trim().is_empty()) {
        entry.push_str(&format!("      {line}\n"));
    }
    entry
}

fn probe_value(ex: &Exporter, metric: &str, name: &str, more: &[(&str, &str)]) -> Option<f64> {
    let mut labels = vec![("name", name)];
    labels.extend_from_slice(more);
    ex.metrics().value(metric, &labels)
}

fn success(ex: &Exporter, name: &str) -> Option<f64> {
    probe_value(ex, "amaze_probe_success", name, &[])
}

fn failures(ex: &Exporter, name: &str, reason: &str) -> f64 {
    probe_value(
        ex,
        "amaze_probe_failures_total",
        name,
        &[("reason", reason)],
    )
    .unwrap_or(0.0)
}

/// Waits until every probe of `names` has checked at least twice.
fn checked_twice(ex: &Exporter, names: &[&str]) {
    for name in names {
        wait_for(&format!("two checks of {name}"), || {
            ex.metrics()
                .value(
                    "amaze_window_deliveries",
                    &[
                        ("sla", "site"),
                        ("scope", "series"),
                        ("window", "1h"),
                        ("target", name),
                    ],
                )
                .unwrap_or(0.0)
                >= 2.0
        });
    }
}

/// Issue 14, input 8: https works in the binary; trust comes from the
/// system's roots or `ca_file`, names from the URL or `server_name`, and
/// the certificate's expiry is exported.
#[test]
fn https_probes_trust_what_they_are_told_and_report_the_expiry() {
    let pki = Pki::new();
    let server = targets::https(&pki, false);
    let mutual = targets::https(&pki, true);
    let ca = pki.ca_file.display().to_string();
    let by_ip = format!("https://127.0.0.1:{}/ok", server.port);
    let ok = format!("{}/ok", server.base);
    let mut c = HEAD.to_owned();
    c += &probe("trusted", &ok, &format!("tls_config: {{ca_file: {ca}}}"));
    c += &probe("system_roots", &ok, "");
    c += &probe(
        "named",
        &by_ip,
        &format!("tls_config: {{ca_file: {ca}, server_name: localhost}}"),
    );
    c += &probe(
        "wrong_name",
        &by_ip,
        &format!("tls_config: {{ca_file: {ca}}}"),
    );
    c += &probe(
        "insecure",
        &by_ip,
        "tls_config: {insecure_skip_verify: true}",
    );
    c += &probe(
        "client_cert",
        &format!("{}/ok", mutual.base),
        &format!(
            "tls_config: {{ca_file: {ca}, cert_file: {}, key_file: {}}}",
            pki.client_cert_file.display(),
            pki.client_key_file.display()
        ),
    );
    c += &probe(
        "no_client_cert",
        &format!("{}/ok", mutual.base),
        &format!("tls_config: {{ca_file: {ca}}}"),
    );
    let home = Home::new(&c);
    let ex = home.start(&[]);
    let all = [
        "trusted",
        "system_roots",
        "named",
        "wrong_name",
        "insecure",
        "client_cert",
        "no_client_cert",
    ];
    checked_twice(&ex, &all);
    for name in ["trusted", "named", "insecure", "client_cert"] {
        assert_eq!(success(&ex, name), Some(1.0), "{name}:\n{}", ex.log());
        assert_eq!(
            probe_value(
                &ex,
                "amaze_probe_tls_cert_expiry_timestamp_seconds",
                name,
                &[]
            ),
            Some(SERVER_CERT_EXPIRY as f64),
            "{name}"
        );
        assert_eq!(
            probe_value(&ex, "amaze_probe_http_status_code", name, &[]),
            Some(200.0)
        );
    }
    for name in ["system_roots", "wrong_name", "no_client_cert"] {
        assert_eq!(success(&ex, name), Some(0.0), "{name}");
    }
    for name in ["system_roots", "wrong_name"] {
        assert!(
            failures(&ex, name, "tls") >= 2.0,
            "{name} fails its handshake"
        );
    }
    // A server that asks for a certificate ends the handshake, or under
    // TLS 1.3 the first read, of a client without one. When its alert is
    // read that is a TLS failure (found by review: it was said as `http`);
    // when the close wins the race, only a connection without an answer.
    wait_for("a refused client certificate said as tls", || {
        failures(&ex, "no_client_cert", "tls") >= 1.0
    });
    assert!(
        failures(&ex, "no_client_cert", "tls") + failures(&ex, "no_client_cert", "http") >= 2.0,
        "{}",
        ex.metrics().0
    );
    // Checks that failed are failed deliveries of the SLA.
    let m = ex.metrics();
    let bad = m
        .value(
            "amaze_window_bad_deliveries",
            &[
                ("sla", "site"),
                ("scope", "series"),
                ("window", "1h"),
                ("target", "wrong_name"),
            ],
        )
        .unwrap();
    assert!(bad >= 2.0);
}

/// A self-signed server certificate given as `ca_file` is trusted as curl
/// and blackbox_exporter trust it, although `openssl req -x509` marks it as
/// a CA (found by the release smoke test: WebPKI alone refuses it). It must
/// still be for the name asked for, and not expired.
#[test]
fn a_self_signed_certificate_in_ca_file_is_trusted_for_its_name_until_it_expires() {
    let dir = tempfile::tempdir().unwrap();
    let current = dir.path().join("current.crt");
    let expired = dir.path().join("expired.crt");
    let server = targets::https_self_signed(&current, (2035, 1, 1));
    let old = targets::https_self_signed(&expired, (2021, 1, 1));
    let mut c = HEAD.to_owned();
    let trust = |file: &std::path::Path| format!("tls_config: {{ca_file: {}}}", file.display());
    c += &probe(
        "self_signed",
        &format!("{}/ok", server.base),
        &trust(&current),
    );
    c += &probe(
        "self_signed_by_ip",
        &format!("https://127.0.0.1:{}/ok", server.port),
        &trust(&current),
    );
    c += &probe("expired", &format!("{}/ok", old.base), &trust(&expired));
    c += &probe(
        "other_cert",
        &format!("{}/ok", server.base),
        &trust(&expired),
    );
    let home = Home::new(&c);
    let ex = home.start(&[]);
    let all = ["self_signed", "self_signed_by_ip", "expired", "other_cert"];
    checked_twice(&ex, &all);
    assert_eq!(success(&ex, "self_signed"), Some(1.0), "{}", ex.log());
    for name in ["self_signed_by_ip", "expired", "other_cert"] {
        assert_eq!(success(&ex, name), Some(0.0), "{name}");
        assert!(
            failures(&ex, name, "tls") >= 2.0,
            "{name} fails its handshake"
        );
    }
    let log = ex.log();
    assert!(log.contains("reason=tls"), "{log}");
}

/// Issue 14, input 9: headers at once and the body 2 s later take 2 s, as
/// blackbox_exporter reports, with the time in the transfer phase.
#[test]
fn a_body_that_comes_slowly_is_timed_whole() {
    let server = targets::http();
    let mut c = HEAD.to_owned();
    c += &format!(
        "    - name: slow\n      url: {}/slow-body\n      sla: site\n      labels: {{target: slow}}\n      interval: 10s\n      timeout: 5s\n      phases: true\n",
        server.base
    );
    let home = Home::new(&c);
    let ex = home.start(&[]);
    wait_for("the first check", || success(&ex, "slow") == Some(1.0));
    let took = probe_value(&ex, "amaze_probe_duration_seconds", "slow", &[]).unwrap();
    assert!((2.0..2.9).contains(&took), "took {took}s");
    let phase = |p| {
        probe_value(
            &ex,
            "amaze_probe_phase_duration_seconds",
            "slow",
            &[("phase", p)],
        )
        .unwrap()
    };
    assert!(phase("transfer") >= 1.9, "transfer {}", phase("transfer"));
    assert!(
        phase("processing") < 0.5,
        "processing {}",
        phase("processing")
    );
    assert!(phase("tls") == 0.0, "no TLS over http");
    // Past the 1s promise: a late delivery, not a fast one.
    let late = ex.metrics().value(
        "amaze_window_bad_deliveries",
        &[
            ("sla", "site"),
            ("scope", "series"),
            ("window", "1h"),
            ("target", "slow"),
        ],
    );
    assert_eq!(late, Some(1.0));
}

/// Redirects followed or not, bodies over the limit, pages in Latin-1,
/// headers and a request body, and a fresh connection for every check.
#[test]
fn redirects_large_pages_other_encodings_and_requests_as_set() {
    let server = targets::http();
    let fresh = targets::http();
    let b = &server.base;
    let mut c = HEAD.to_owned();
    c += &probe("follow", &format!("{b}/redirect"), "");
    c += &probe(
        "no_follow",
        &format!("{b}/redirect"),
        "follow_redirects: false",
    );
    c += &probe(
        "no_follow_302",
        &format!("{b}/redirect"),
        "follow_redirects: false\nexpect_status: [302]",
    );
    c += &probe("loop", &format!("{b}/loop"), "");
    c += &probe("big", &format!("{b}/big"), "");
    c += &probe("too_big", &format!("{b}/big"), "body_limit: 1MiB");
    c += &probe(
        "latin1_bytes",
        &format!("{b}/latin1"),
        "expect_body: ' ok<'",
    );
    c += &probe(
        "latin1_regex",
        &format!("{b}/latin1"),
        "expect_body_regex: '(?-u:caf\\xE9) ok'",
    );
    c += &probe(
        "latin1_utf8_text",
        &format!("{b}/latin1"),
        "expect_body: café",
    );
    c += &probe(
        "echo",
        &format!("{b}/echo"),
        "method: POST\nheaders: {X-Probe: 'yes'}\nbody: ping\nexpect_body: got ping",
    );
    c += &probe(
        "echo_unasked",
        &format!("{b}/echo"),
        "method: POST\nbody: ping",
    );
    c += &probe("fresh", &format!("{}/fresh", fresh.base), "");
    let home = Home::new(&c);
    let ex = home.start(&[]);
    let all = [
        "follow",
        "no_follow",
        "no_follow_302",
        "loop",
        "big",
        "too_big",
        "latin1_bytes",
        "latin1_regex",
        "latin1_utf8_text",
        "echo",
        "echo_unasked",
        "fresh",
    ];
    checked_twice(&ex, &all);
    let log = ex.log();
    for name in [
        "follow",
        "no_follow_302",
        "big",
        "latin1_bytes",
        "latin1_regex",
        "echo",
        "fresh",
    ] {
        assert_eq!(success(&ex, name), Some(1.0), "{name}:\n{log}");
    }
    for (name, reason) in [
        ("no_follow", "status"),
        ("loop", "redirects"),
        ("too_big", "body_too_large"),
        ("latin1_utf8_text", "body_mismatch"),
        ("echo_unasked", "status"),
    ] {
        assert_eq!(success(&ex, name), Some(0.0), "{name}");
        assert!(
            failures(&ex, name, reason) >= 2.0,
            "{name} fails for {reason}:\n{log}"
        );
    }
    let status = |name| probe_value(&ex, "amaze_probe_http_status_code", name, &[]);
    assert_eq!(status("follow"), Some(200.0));
    assert_eq!(status("no_follow"), Some(302.0));
    assert_eq!(status("echo_unasked"), Some(400.0));
    // A fresh connection every check: never one reused.
    let (connections, requests) = (
        fresh.connections.load(Ordering::SeqCst),
        fresh.requests.load(Ordering::SeqCst),
    );
    assert!(requests >= 2);
    assert_eq!(connections, requests, "each check opens its own connection");
    // Every failure reason shows from the start, 0 until it happens.
    assert_eq!(failures(&ex, "follow", "timeout"), 0.0);
    assert!(
        probe_value(
            &ex,
            "amaze_probe_failures_total",
            "follow",
            &[("reason", "resolve")]
        )
        .is_some()
    );
}
