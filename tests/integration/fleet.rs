//! Scale-out with real software: three exporters with one config behind
//! haproxy (Debian package `haproxy`), an HA pair fed every delivery, and a
//! single exporter fed the same deliveries, all scraped by a real
//! Prometheus with native histograms (Debian package `prometheus`) that
//! loads the fleet rules `amaze-exporter rules` generates. The fleet's
//! counts and compliance equal the single instance's; its margin is within
//! 1 point in every window; killing and restarting an instance changes
//! nothing once it is back, with no counter reset.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::e2e::Prometheus;
use crate::server::{Exporter, Home, free_port, tool_available};

const CONFIG: &str = "version: 1
slas:
  - name: checkout
    promise: 300ms
    objective: 99%
    min_deliveries: 10
    labels: [route]
";

const WINDOWS: [&str; 7] = ["5m", "30m", "1h", "6h", "1d", "3d", "30d"];

/// An exporter on a fixed port, so it can come back where Prometheus and
/// haproxy look for it.
struct Instance {
    home: Home,
    port: u16,
    exporter: Option<Exporter>,
}

impl Instance {
    fn start() -> Instance {
        let mut i = Instance {
            home: Home::new(CONFIG),
            port: free_port(),
            exporter: None,
        };
        i.restart();
        i
    }

    fn restart(&mut self) {
        let listen = format!("--web.listen-address=127.0.0.1:{}", self.port);
        self.exporter = Some(self.home.start(&[&listen]));
    }

    fn kill(&mut self) {
        if let Some(e) = self.exporter.take() {
            e.crash();
        }
    }

    fn target(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn push(&self, body: &str) {
        let r = self.exporter.as_ref().expect("running").push(body);
        assert_eq!(r.status, 200, "{}", r.body);
    }
}

struct Haproxy {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    fn start(backends: &[String]) -> Haproxy {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let servers: String = backends
            .iter()
            .enumerate()
            .map(|(i, b)| format!("  server s{i} {b}\n"))
            .collect();
        let config = format!(
            "defaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\
             frontend deliveries\n  bind 127.0.0.1:{port}\n  default_backend exporters\n\
             backend exporters\n  balance roundrobin\n{servers}"
        );
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, config).expect("write haproxy.cfg");
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start haproxy");
        let h = Haproxy {
            child,
            port,
            _dir: dir,
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return h;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("haproxy did not listen on {port}");
    }

    /// Posts one request through the balancer.
    fn push(&self, agent: &ureq::Agent, body: &str) {
        let mut r = agent
            .post(format!("http://127.0.0.1:{}/api/v1/deliveries", self.port))
            .header("content-type", "application/x-ndjson")
            .send(body)
            .expect("haproxy answers");
        assert_eq!(
            r.status(),
            200,
            "{}",
            r.body_mut().read_to_string().unwrap_or_default()
        );
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Milliseconds of delivery `i` of the traffic, `None` when it failed:
/// mostly within 80% of the promise, 1 in 150 late at 1.5x, 1 in 600 failed.
fn duration_ms(i: usize) -> Option<f64> {
    match i {
        _ if i % 600 == 7 => None,
        _ if i % 150 == 3 => Some(450.0),
        _ => Some(240.0 * ((i * 7919) % 1000 + 1) as f64 / 1000.0),
    }
}

fn delivery(i: usize) -> String {
    let route = ["/pay", "/cart"][i % 2];
    match duration_ms(i) {
        None => format!(
            "{{\"sla\":\"checkout\",\"failed\":true,\"labels\":{{\"route\":\"{route}\"}}}}\n"
        ),
        Some(ms) => format!(
            "{{\"sla\":\"checkout\",\"duration_seconds\":{},\"labels\":{{\"route\":\"{route}\"}}}}\n",
            ms / 1000.0
        ),
    }
}

/// The exact margin of deliveries `ids`: 1 - the nearest-rank 99th
/// percentile of r, failures last.
fn exact_margin(ids: impl Iterator<Item = usize>) -> f64 {
    let mut r: Vec<f64> = ids
        .map(|i| duration_ms(i).map_or(f64::INFINITY, |ms| ms / 300.0))
        .collect();
    r.sort_by(f64::total_cmp);
    let rank = (0.99 * r.len() as f64).ceil() as usize;
    1.0 - r[rank - 1]
}

fn value(sample: &Value) -> f64 {
    sample["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The one value of `expr`, or NaN when it has none.
fn one(p: &Prometheus, expr: &str) -> f64 {
    let r = p.query(expr);
    assert!(r.len() <= 1, "{expr}: {r:?}");
    r.first().map_or(f64::NAN, value)
}

#[test]
fn a_fleet_behind_haproxy_merges_to_the_single_instance_figures() {
    if !tool_available("haproxy") || !tool_available("prometheus") {
        return;
    }
    let mut fleet: Vec<Instance> = (0..3).map(|_| Instance::start()).collect();
    let single = Instance::start();
    let pair = [Instance::start(), Instance::start()];
    let lb = Haproxy::start(&fleet.iter().map(Instance::target).collect::<Vec<_>>());

    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("amaze.yaml");
    std::fs::write(&config_path, CONFIG).unwrap();
    let rules = Command::new(env!("CARGO_BIN_EXE_amaze-exporter"))
        .args(["rules", "--config.file"])
        .arg(&config_path)
        .output()
        .unwrap();
    assert!(rules.status.success());
    let rules_path = dir.path().join("fleet-rules.yml");
    std::fs::write(&rules_path, &rules.stdout).unwrap();
    let targets = |list: &[&Instance]| {
        list.iter()
            .map(|i| format!("\"{}\"", i.target()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let prometheus = Prometheus::with_config(
        &format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\n\
             scrape_configs:\n\
             \x20 - job_name: fleet\n    static_configs:\n      - targets: [{}]\n\
             \x20 - job_name: single\n    static_configs:\n      - targets: [{}]\n\
             \x20 - job_name: ha\n    static_configs:\n\
             \x20     - targets: [{}]\n        labels: {{replica: a}}\n\
             \x20     - targets: [{}]\n        labels: {{replica: b}}\n",
            rules_path.display(),
            targets(&fleet.iter().collect::<Vec<_>>()),
            targets(&[&single]),
            targets(&[&pair[0]]),
            targets(&[&pair[1]]),
        ),
        &["--enable-feature=native-histograms"],
    );

    // Each series' first scrape is the base its rate() counts from: one
    // delivery per route on every instance first, copied to the others.
    let warm_up = delivery(0) + &delivery(1);
    for i in &fleet {
        i.push(&warm_up);
        single.push(&warm_up);
        for p in &pair {
            p.push(&warm_up);
        }
    }
    prometheus.wait_for("every exporter's native histograms scraped", || {
        one(
            &prometheus,
            "count(count_over_time(amaze_delivery_duration_ratio[1m]) >= 2)",
        ) == 12.0
    });

    // The traffic: through haproxy to the fleet, and the same requests to
    // the single exporter and to both replicas.
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent();
    let n = 3000;
    for chunk in (0..n).collect::<Vec<_>>().chunks(50) {
        let body: String = chunk.iter().map(|&i| delivery(i)).collect();
        lb.push(&agent, &body);
        single.push(&body);
        for p in &pair {
            p.push(&body);
        }
    }
    let total = (n + 6) as f64;
    // The warm-up is delivery 0 and 1 on each of the three instances.
    let exact = exact_margin((0..n).chain([0, 1, 0, 1, 0, 1]));
    for i in &fleet {
        let text = i.exporter.as_ref().unwrap().metrics().0;
        let got: f64 = text
            .lines()
            .find_map(|l| {
                l.strip_prefix(
                    "amaze_window_deliveries{sla=\"checkout\",scope=\"sla\",window=\"5m\"} ",
                )
            })
            .and_then(|v| v.parse().ok())
            .unwrap_or_default();
        assert!(
            got > 900.0,
            "haproxy spread the traffic: {got} on one instance"
        );
    }
    let settled = |job: &str| {
        one(
            &prometheus,
            &format!("fleet:amaze_window_deliveries:sum{{job=\"{job}\",window=\"5m\"}}"),
        ) == total
    };
    prometheus.wait_for("the fleet rules to see every delivery", || {
        settled("fleet") && settled("single") && settled("ha")
    });
    // Two more evaluations, so every rate() holds the last scrape.
    std::thread::sleep(Duration::from_secs(3));
    assert_matches_single(&prometheus, "fleet", total, exact);
    assert_matches_single(&prometheus, "ha", total, exact);

    // Kill an instance (SIGKILL) and bring it back on its port: its state
    // comes back from disk, the fleet figures with it, and no counter resets.
    fleet[1].kill();
    prometheus.wait_for("the killed instance to be seen down", || {
        one(&prometheus, "up{job=\"fleet\"} == 0") == 0.0
    });
    fleet[1].restart();
    prometheus.wait_for("the fleet to recover", || {
        one(&prometheus, "sum(up{job=\"fleet\"})") == 3.0 && settled("fleet")
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_matches_single(&prometheus, "fleet", total, exact);
    assert_eq!(
        one(
            &prometheus,
            "sum(resets(amaze_deliveries_total{job=\"fleet\"}[10m]))"
        ),
        0.0,
        "a restart looked like a counter reset"
    );
    drop(lb);
}

/// Counts and compliance of `job` equal the single exporter's; its margin
/// is within 1 point of the single exporter's (whose sketch is within 1%)
/// and within 0.6 points of the exact margin (one native bucket is 0.54%
/// wide), in every window.
fn assert_matches_single(p: &Prometheus, job: &str, total: f64, exact_margin: f64) {
    for w in WINDOWS {
        let fleet = |metric: &str| {
            one(
                p,
                &format!("fleet:{metric}{{job=\"{job}\",sla=\"checkout\",window=\"{w}\"}}"),
            )
        };
        let single = |metric: &str| {
            one(
                p,
                &format!("{metric}{{job=\"single\",scope=\"sla\",window=\"{w}\"}}"),
            )
        };
        assert_eq!(fleet("amaze_window_deliveries:sum"), total, "{job} {w}");
        assert_eq!(single("amaze_window_deliveries"), total, "{w}");
        let (compliance, exact) = (
            fleet("amaze_compliance:ratio"),
            single("amaze_compliance_ratio"),
        );
        assert!(
            (compliance - exact).abs() < 1e-12,
            "{job} {w}: {compliance} against {exact}"
        );
        let (margin, exact) = (fleet("amaze_margin:ratio"), single("amaze_margin_ratio"));
        assert!(
            (margin - exact).abs() <= 0.01,
            "{job} {w}: margin {margin} against {exact}"
        );
        assert!(
            (margin - exact_margin).abs() <= 0.006,
            "{job} {w}: margin {margin} against the exact {exact_margin}"
        );
        let burn = fleet("amaze_burn_rate:ratio");
        let exact = single("amaze_burn_rate_ratio");
        assert!(
            (burn - exact).abs() < 1e-9,
            "{job} {w}: burn {burn} against {exact}"
        );
    }
}
