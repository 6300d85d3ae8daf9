//! StatsD as real clients send it: the PyPI `statsd` (UDP and TCP) and
//! `datadog` (UDP, tags, sample rates, `timed` in seconds, the Unix socket)
//! packages send known timings; the counts and quantiles equal what was sent.

use std::process::Command;

use crate::conformance::wait_for;
use crate::server::{Exporter, Metrics, python_has};

fn python(script: &str) {
    let out = Command::new("python3")
        .args(["-c", script])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn address(ex: &Exporter, key: &str) -> String {
    ex.log()
        .split(&format!("{key}="))
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no {key}= in the log:\n{}", ex.log()))
}

fn counted(m: &Metrics, sla: &str, labels: &[(&str, &str)]) -> f64 {
    let mut all = vec![("sla", sla)];
    all.extend_from_slice(labels);
    m.sum("amaze_deliveries_total", &all)
}

#[test]
fn pypi_statsd_and_datadog_clients_are_counted_as_sent() {
    if !python_has("statsd", "statsd") || !python_has("datadog", "datadog") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("dsd.socket");
    let config = format!(
        r#"version: 1
slas:
  - name: api
    promise: 300ms
    objective: 99%
    min_deliveries: 1
    labels: [route, method]
  - name: jobs
    promise: 2s
    objective: 99%
    min_deliveries: 1
sources:
  statsd:
    listen: 127.0.0.1:0
    tcp_listen: 127.0.0.1:0
    unix_listen: {}
    mappings:
      - metric: api.*.latency
        sla: api
        labels: {{route: $1, method: "tag:method"}}
      - metric: jobs.run
        sla: jobs
        duration_unit: s
"#,
        socket.display()
    );
    let ex = Exporter::start(&config);
    let udp = address(&ex, "udp");
    let tcp = address(&ex, "tcp");
    let (udp_host, udp_port) = udp.rsplit_once(':').unwrap();
    let (tcp_host, tcp_port) = tcp.rsplit_once(':').unwrap();
    // `statsd`: 100 timings over UDP (10..1000ms), 50 over TCP, and a
    // `timer` context around a 20ms sleep.
    python(&format!(
        r#"
import statsd, time
udp = statsd.StatsClient("{udp_host}", {udp_port})
for i in range(100):
    udp.timing("api.checkout.latency", 10 * (i + 1))
tcp = statsd.TCPStatsClient("{tcp_host}", {tcp_port})
for i in range(50):
    tcp.timing("api.search.latency", 5 + i)
tcp.close()
with udp.timer("api.timer.latency"):
    time.sleep(0.02)
"#
    ));
    // `datadog`: tagged timings, ten at sample rate 0.4 (standing for 25),
    // histograms and distributions over the Unix socket, and `timed`,
    // which sends seconds by default.
    python(&format!(
        r#"
import datadog, datadog.dogstatsd.base, time
# The client samples before it sends: make every sampled call go out, so
# the ten lines at 0.4 arrive and stand for 25.
datadog.dogstatsd.base.random = lambda: 0.0
dsd = datadog.DogStatsd(host="{udp_host}", port={udp_port}, disable_telemetry=True)
for i in range(40):
    dsd.timing("api.cart.latency", 100 + i, tags=["method:POST", "env:prod"])
for i in range(10):
    dsd.timing("api.sampled.latency", 50, sample_rate=0.4, tags=["method:GET"])
@dsd.timed("jobs.run")
def job():
    time.sleep(0.05)
for _ in range(3):
    job()
dsd.flush()
uds = datadog.DogStatsd(socket_path="{}", disable_telemetry=True)
# The kernel queues at most net.unix.max_dgram_qlen (10) datagrams and the
# client drops what does not fit: pace it as a real service would.
for i in range(20):
    uds.histogram("api.uds.latency", 200 + i, tags=["method:PUT"])
    uds.distribution("api.uds.latency", 200 + i, tags=["method:PUT"])
    time.sleep(0.002)
uds.flush()
"#,
        socket.display()
    ));
    let expected = [
        ("api", vec![("route", "checkout")], 100.0),
        ("api", vec![("route", "search")], 50.0),
        ("api", vec![("route", "timer")], 1.0),
        ("api", vec![("route", "cart"), ("method", "POST")], 40.0),
        ("api", vec![("route", "sampled"), ("method", "GET")], 25.0),
        ("api", vec![("route", "uds"), ("method", "PUT")], 40.0),
        ("jobs", vec![], 3.0),
    ];
    wait_for("every client's timings", || {
        let m = ex.metrics();
        expected
            .iter()
            .all(|(sla, labels, n)| counted(&m, sla, labels) == *n)
    });
    let m = ex.metrics();
    let at = |sla: &str, route: Option<&str>, q: &str| {
        let mut labels = vec![("sla", sla), ("window", "1h"), ("q", q)];
        match route {
            Some(r) => labels.extend([("scope", "series"), ("route", r)]),
            None => labels.push(("scope", "sla")),
        }
        // The series of a route carries its method label too.
        m.0.lines()
            .filter(|l| l.starts_with("amaze_quantile_seconds{"))
            .find(|l| {
                labels
                    .iter()
                    .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
            })
            .and_then(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no quantile {labels:?}"))
    };
    // checkout: 10, 20, ... 1000 ms; nearest-rank p50 is the 50th, p90 the 90th.
    let within = |got: f64, exact: f64| (got - exact).abs() <= exact * 0.01;
    assert!(within(at("api", Some("checkout"), "0.5"), 0.5), "p50");
    assert!(within(at("api", Some("checkout"), "0.9"), 0.9), "p90");
    assert!(
        within(at("api", Some("search"), "0.5"), 0.029),
        "p50 of 5..54ms"
    );
    // `timed` sent seconds: 50ms sleeps, not 0.05ms.
    let job = at("jobs", None, "0.5");
    assert!((0.049..0.5).contains(&job), "a 50ms job took {job} s");
    let late = m.value(
        "amaze_window_bad_deliveries",
        &[
            ("sla", "api"),
            ("scope", "series"),
            ("window", "1h"),
            ("route", "checkout"),
        ],
    );
    assert_eq!(late, Some(70.0), "310..1000ms are late against 300ms");
}
