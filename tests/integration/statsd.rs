//! StatsD over UDP through the real binary.

use std::net::UdpSocket;

use crate::conformance::{self, Source, wait_for};
use crate::server::{Exporter, Home};

const CONFIG: &str = r#"
version: 1
slas:
  - name: api
    promise: 300ms
    objective: 99%
    min_deliveries: 1
    labels: [route, method]
sources:
  statsd:
    listen: 127.0.0.1:0
    tcp_listen: 127.0.0.1:0
    mappings:
      - metric: api.*.latency
        sla: api
        labels:
          route: $1
          method: tag:method
"#;

/// The exporter, its home (kept alive beside it) and the UDP address its
/// StatsD source bound.
fn start() -> (Home, Exporter, String) {
    let home = Home::new(CONFIG);
    let ex = home.start(&[]);
    let udp = address(&ex, "udp");
    (home, ex, udp)
}

/// The address the StatsD source logged for `transport` (`udp`, `tcp`).
fn address(ex: &Exporter, transport: &str) -> String {
    let mut found = String::new();
    wait_for("the statsd address in the log", || {
        found = ex
            .log()
            .lines()
            .find_map(|l| l.split(&format!(" {transport}=")).nth(1))
            .map(|a| a.split_whitespace().next().unwrap_or("").to_owned())
            .unwrap_or_default();
        !found.is_empty()
    });
    found
}

fn send(to: &str, packet: &[u8]) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.send_to(packet, to).unwrap();
}

#[test]
fn statsd_meets_the_source_contract() {
    let (_home, ex, udp) = start();
    let (good, bad) = (udp.clone(), udp);
    conformance::check(
        ex,
        &Source {
            name: "statsd",
            sla: "api",
            feed_good: &move |_| {
                let packet = "api.checkout.latency:12|ms|#method:GET\n".repeat(20);
                send(&good, packet.as_bytes());
                20
            },
            feed_bad: Some(&move |_| send(&bad, b"\xff\x00garbage|||\napi.x.latency:-1|ms\n")),
        },
    );
}

#[test]
fn timers_become_labelled_deliveries_and_sample_rates_count() {
    let (_home, ex, udp) = start();
    let mut packet = String::new();
    for i in 0..50 {
        packet.push_str(&format!(
            "api.checkout.latency:{}|ms|#method:POST\n",
            10 + i
        ));
    }
    // Two lines sampled at 25%: each stands for four deliveries.
    packet.push_str("api.search.latency:400|ms|@0.25|#method:GET\n");
    packet.push_str("api.search.latency:100|ms|@0.25|#method:GET\n");
    packet.push_str("hits:1|c\nother.metric:5|ms\n");
    send(&udp, packet.as_bytes());
    wait_for("the search deliveries", || {
        series(&ex, "search", "GET") == Some(8.0)
    });
    assert_eq!(series(&ex, "checkout", "POST"), Some(50.0));
    let m = ex.metrics();
    // 400ms is late against 300ms; it stands for four deliveries.
    assert_eq!(
        m.value(
            "amaze_window_bad_deliveries",
            &[
                ("sla", "api"),
                ("scope", "series"),
                ("window", "1h"),
                ("route", "search"),
                ("method", "GET")
            ]
        ),
        Some(4.0)
    );
    let rejected = |reason: &str| {
        m.value(
            "amaze_ingest_rejected_total",
            &[("source", "statsd"), ("reason", reason)],
        )
    };
    assert_eq!(rejected("not_a_timer"), Some(1.0));
    assert_eq!(rejected("unmapped"), Some(1.0));
    assert_eq!(m.value("amaze_statsd_packets_total", &[]), Some(1.0));
}

#[test]
fn garbage_packets_are_counted_by_reason_and_never_stop_the_socket() {
    let (_home, ex, udp) = start();
    for packet in [
        &b"\xff\xfe\xfd"[..],
        b"no-colon|ms",
        b"a:1",
        b"api.x.latency:abc|ms",
        b"api.x.latency:1|ms|@7",
        b"\n\n\n",
        &[0u8; 1500][..],
    ] {
        send(&udp, packet);
    }
    send(&udp, b"api.ok.latency:5|ms\n");
    wait_for("the good line after the garbage", || {
        ex.metrics().value(
            "amaze_window_deliveries",
            &[("sla", "api"), ("scope", "sla"), ("window", "5m")],
        ) == Some(1.0)
    });
    let m = ex.metrics();
    for reason in [
        "not_utf8",
        "no_value",
        "no_type",
        "bad_value",
        "bad_sample_rate",
    ] {
        assert!(
            m.value(
                "amaze_ingest_rejected_total",
                &[("source", "statsd"), ("reason", reason)]
            ) >= Some(1.0),
            "{reason} not counted"
        );
    }
}

/// Over TCP, a line too long to hold is dropped whole and counted once as
/// `line_too_long`; the lines around it are read.
#[test]
fn an_overlong_tcp_line_is_dropped_whole_and_the_next_is_read() {
    use std::io::Write;
    let (_home, ex, _udp) = start();
    let tcp = address(&ex, "tcp");
    let mut stream = std::net::TcpStream::connect(&tcp).unwrap();
    stream.write_all(b"api.a.latency:1|ms\n").unwrap();
    stream.write_all(&vec![b'x'; 200 * 1024]).unwrap();
    stream.write_all(b"yyy\napi.b.latency:2|ms\n").unwrap();
    stream.flush().unwrap();
    wait_for("both short lines", || {
        ex.metrics().value(
            "amaze_window_deliveries",
            &[("sla", "api"), ("scope", "sla"), ("window", "5m")],
        ) == Some(2.0)
    });
    let m = ex.metrics();
    let rejected = |reason| {
        m.value(
            "amaze_ingest_rejected_total",
            &[("source", "statsd"), ("reason", reason)],
        )
    };
    assert_eq!(rejected("line_too_long"), Some(1.0));
    for reason in ["no_value", "no_type", "bad_value", "empty_name"] {
        assert_eq!(
            rejected(reason),
            Some(0.0),
            "{reason}: the long line's tail read as a line"
        );
    }
}

fn series(ex: &Exporter, route: &str, method: &str) -> Option<f64> {
    ex.metrics().value(
        "amaze_window_deliveries",
        &[
            ("sla", "api"),
            ("scope", "series"),
            ("window", "1h"),
            ("route", route),
            ("method", method),
        ],
    )
}

/// Found by review: sample-rate fractions are carried per series across
/// the source's sockets and across a reload of its mappings (five values at
/// `@0.3` over UDP, a reload, five over TCP: 33, not 32), and rates written
/// with an exponent (`@1e-05`, as the PyPI clients write them) count.
#[test]
fn carried_fractions_span_sockets_and_reloads_and_exponent_rates_count() {
    use std::io::Write;
    let (home, ex, udp) = start();
    let tcp = address(&ex, "tcp");
    for _ in 0..5 {
        send(&udp, b"api.carry.latency:100|ms|@0.3|#method:GET\n");
    }
    wait_for("16 from UDP", || series(&ex, "carry", "GET") == Some(16.0));
    // An edit to another mapping: the mappings are replaced live.
    home.write_config(&format!(
        "{CONFIG}      - metric: other.*.latency\n        sla: api\n        labels:\n          route: $1\n"
    ));
    let r = ex.reload();
    assert_eq!(r.status, 200);
    assert!(r.body.contains("reconfigured statsd"), "{}", r.body);
    let mut stream = std::net::TcpStream::connect(&tcp).unwrap();
    for _ in 0..5 {
        stream
            .write_all(b"api.carry.latency:100|ms|@0.3|#method:GET\n")
            .unwrap();
    }
    // The last line has no newline: read at close, as statsd_exporter does.
    stream
        .write_all(b"api.tail.latency:7|ms|#method:GET")
        .unwrap();
    drop(stream);
    wait_for("33 in all and the unended line", || {
        series(&ex, "carry", "GET") == Some(33.0) && series(&ex, "tail", "GET") == Some(1.0)
    });
    send(&udp, b"api.exp.latency:100|ms|@1e-05|#method:GET\n");
    wait_for("a rate of 1e-05 counted as 0.001", || {
        series(&ex, "exp", "GET") == Some(1000.0)
    });
}

/// Found by review: a Unix datagram longer than 64 KiB is cut by the
/// kernel; its cut last line is counted as `truncated`, never recorded
/// under a label cut short.
#[test]
fn a_unix_datagram_past_64_kib_loses_only_its_cut_line_and_says_so() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("dsd.sock");
    let config = CONFIG.replace(
        "    tcp_listen: 127.0.0.1:0\n",
        &format!("    unix_listen: {}\n", socket.display()),
    );
    let home = Home::new(&config);
    let ex = home.start(&[]);
    wait_for("the unix socket", || socket.exists());
    let line = b"api.pad.latency:1|ms|#method:GET\n";
    let mut packet = Vec::new();
    while packet.len() + line.len() <= 65_535 - 10 {
        packet.extend_from_slice(line);
    }
    let whole = packet.len() / line.len();
    // Crosses the 64 KiB boundary.
    packet.extend_from_slice(b"api.cut.latency:7|ms|#method:checkout\n");
    let client = UnixDatagram::unbound().unwrap();
    client.send_to(&packet, &socket).unwrap();
    wait_for("the whole lines", || {
        series(&ex, "pad", "GET") == Some(whole as f64)
    });
    let m = ex.metrics();
    assert_eq!(
        m.value(
            "amaze_ingest_rejected_total",
            &[("source", "statsd"), ("reason", "truncated")]
        ),
        Some(1.0)
    );
    assert!(!m.0.contains("route=\"cut\""), "a cut line was recorded");
}
