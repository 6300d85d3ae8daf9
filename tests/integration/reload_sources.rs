//! A reload applies to sources: probes, log sources and StatsD started,
//! stopped and reconfigured to match the file, nothing read twice or lost;
//! settings that need a restart named in the answer.

use std::io::Write;
use std::net::UdpSocket;
use std::path::Path;

use crate::conformance::wait_for;
use crate::server::{Exporter, Home};
use crate::targets;

fn config(dir: &Path, target: &str, udp: u16, tcp: Option<u16>, second: bool) -> String {
    let (mapping, probe, paths) = match second {
        false => (
            "api.*.latency",
            "a",
            format!("[\"{}/a.log\"]", dir.display()),
        ),
        true => (
            "svc.*.time",
            "b",
            format!("[\"{0}/a.log\", \"{0}/b.log\"]", dir.display()),
        ),
    };
    let tcp = tcp.map_or(String::new(), |p| {
        format!("    tcp_listen: 127.0.0.1:{p}\n")
    });
    format!(
        r#"version: 1
slas:
  - name: site
    promise: 1s
    objective: 99%
    labels: [target]
  - name: api
    promise: 300ms
    objective: 99%
    labels: [route]
    durability: async
sources:
  statsd:
    listen: 127.0.0.1:{udp}
{tcp}    mappings:
      - metric: {mapping}
        sla: api
        labels: {{route: $1}}
  probes:
    - name: {probe}
      url: {target}/ok
      sla: site
      labels: {{target: {probe}}}
      interval: 200ms
      timeout: 150ms
  log_tail:
    - name: access
      paths: {paths}
      start_at: beginning
      regex: '^(?P<route>\S+) (?P<ms>\d+)ms$'
      sla: api
      duration_field: ms
      duration_unit: ms
      labels: {{route: route}}
      poll_interval: 20ms
"#
    )
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn append(path: &Path, lines: usize, route: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for i in 0..lines {
        writeln!(f, "{route} {}ms", 10 + i).unwrap();
    }
}

fn route_count(ex: &Exporter, route: &str) -> f64 {
    ex.metrics()
        .value(
            "amaze_window_deliveries",
            &[
                ("sla", "api"),
                ("scope", "series"),
                ("window", "1h"),
                ("route", route),
            ],
        )
        .unwrap_or(0.0)
}

fn send(port: u16, line: &str) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.send_to(line.as_bytes(), ("127.0.0.1", port)).unwrap();
}

#[test]
fn a_reload_starts_stops_and_reconfigures_sources() {
    let target = targets::http();
    let logs = tempfile::tempdir().unwrap();
    let udp = free_udp_port();
    let home = Home::new(&config(logs.path(), &target.base, udp, None, false));
    let ex = home.start(&[]);
    append(&logs.path().join("a.log"), 5, "/a");
    append(&logs.path().join("b.log"), 4, "/b");
    wait_for("probe a", || {
        ex.metrics().value("amaze_probe_success", &[("name", "a")]) == Some(1.0)
    });
    wait_for("5 lines of a.log", || route_count(&ex, "/a") == 5.0);
    send(udp, "api.x.latency:5|ms");
    wait_for("the StatsD timer", || route_count(&ex, "x") == 1.0);

    home.write_config(&config(logs.path(), &target.base, udp, None, true));
    let r = ex.reload();
    assert_eq!(r.status, 200, "{}", r.body);
    for said in [
        "started probe b",
        "stopped probe a",
        "reconfigured statsd mappings, log access",
    ] {
        assert!(r.body.contains(said), "`{said}` not in:\n{}", r.body);
    }
    assert!(!r.body.contains("restart needed"), "{}", r.body);

    // The probe taken away leaves no series; the new one checks.
    wait_for("probe b", || {
        ex.metrics().value("amaze_probe_success", &[("name", "b")]) == Some(1.0)
    });
    let m = ex.metrics();
    assert!(
        !m.0.contains("name=\"a\""),
        "probe a's series are left:\n{}",
        m.0
    );
    // The log source resumes: a.log is not read again, b.log is read.
    append(&logs.path().join("a.log"), 2, "/a");
    wait_for("b.log and the new lines of a.log", || {
        route_count(&ex, "/b") == 4.0 && route_count(&ex, "/a") == 7.0
    });
    // StatsD maps by the new mapping, on the same socket.
    send(udp, "svc.y.time:5|ms");
    send(udp, "api.x.latency:5|ms");
    wait_for("the newly mapped timer", || route_count(&ex, "y") == 1.0);
    wait_for("the old name, now unmapped", || {
        ex.metrics().value(
            "amaze_ingest_rejected_total",
            &[("source", "statsd"), ("reason", "unmapped")],
        ) == Some(1.0)
    });
    assert_eq!(route_count(&ex, "x"), 1.0);
    wait_for("the reload in the log", || {
        ex.log().contains("config reloaded")
    });

    // Nothing changed: nothing restarted.
    let r = ex.reload();
    assert!(r.body.contains("sources unchanged"), "{}", r.body);
}

/// New StatsD addresses rebind its sockets; the ones that stay keep
/// receiving.
#[test]
fn new_statsd_addresses_are_bound_on_reload() {
    let target = targets::http();
    let logs = tempfile::tempdir().unwrap();
    let udp = free_udp_port();
    let tcp = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let home = Home::new(&config(logs.path(), &target.base, udp, None, false));
    let ex = home.start(&[]);
    home.write_config(&config(logs.path(), &target.base, udp, Some(tcp), false));
    let r = ex.reload();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("reconfigured statsd"), "{}", r.body);
    send(udp, "api.u.latency:5|ms");
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    stream.write_all(b"api.t.latency:5|ms\n").unwrap();
    wait_for("a timer over each transport", || {
        route_count(&ex, "u") == 1.0 && route_count(&ex, "t") == 1.0
    });

    // An address that will not bind: the old one keeps serving, and the
    // reload says it did not fully apply (found by review: it said 200).
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().port();
    home.write_config(&config(logs.path(), &target.base, udp, Some(busy), false));
    let r = ex.reload();
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(
        r.body.contains("not every source could follow it"),
        "{}",
        r.body
    );
    assert_eq!(
        ex.metrics()
            .value("amaze_config_last_reload_successful", &[]),
        Some(0.0)
    );
    send(udp, "api.u.latency:5|ms");
    wait_for("the old addresses still serve", || {
        route_count(&ex, "u") == 2.0
    });
}

/// A setting the HTTP server took at start is named, and the rest applies.
#[test]
fn settings_that_need_a_restart_are_named() {
    let target = targets::http();
    let logs = tempfile::tempdir().unwrap();
    let udp = free_udp_port();
    let first = config(logs.path(), &target.base, udp, None, false);
    let home = Home::new(&first);
    let ex = home.start(&[]);
    home.write_config(&first.replace(
        "version: 1\n",
        "version: 1\nlimits:\n  max_body_bytes: 1024\n",
    ));
    let r = ex.reload();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body
            .contains("restart needed to apply: limits.max_body_bytes"),
        "{}",
        r.body
    );
    wait_for("the reload in the log", || {
        ex.log().contains("restart_needed=limits.max_body_bytes")
    });
}
