//! End to end with a real Prometheus (Debian package `prometheus`) on
//! 127.0.0.1: it scrapes the exporter with the shipped rules; every dashboard
//! query returns data, every recording rule produces series, and an eroding
//! margin makes the margin alert pending.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::dashboards::{DASHBOARDS, data_queries, load, queries};
use crate::server::{Exporter, Home, tool_available};

pub struct Prometheus {
    child: Child,
    base: String,
    agent: ureq::Agent,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// A Prometheus scraping `target` with native histograms and the
    /// shipped rules, fleet rules included.
    fn start(target: &str) -> Prometheus {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config/prometheus");
        Prometheus::with_config(
            &format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {dir}/amaze-rules.yml\n  - {dir}/amaze-fleet-rules.yml\n\
                 scrape_configs:\n  - job_name: amaze-exporter\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ),
            &["--enable-feature=native-histograms"],
        )
    }

    /// A Prometheus on a free port running `config`, with extra `flags`.
    pub fn with_config(config: &str, flags: &[&str]) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write config");
        let port = crate::server::free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .args(flags)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .new_agent();
        let p = Prometheus {
            child,
            base: format!("http://127.0.0.1:{port}"),
            agent,
            _dir: dir,
        };
        p.wait_for("Prometheus to be ready", || {
            p.agent
                .get(format!("{}/-/ready", p.base))
                .call()
                .is_ok_and(|r| r.status() == 200)
        });
        p
    }

    /// The JSON answer of the API at `path`.
    pub fn get(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let mut req = self.agent.get(format!("{}{path}", self.base));
        for (k, v) in query {
            req = req.query(*k, *v);
        }
        let mut r = req.call().expect("Prometheus API");
        let body = r.body_mut().read_to_string().expect("body");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
    }

    /// The instant result of `expr`; panics when Prometheus rejects it.
    pub fn query(&self, expr: &str) -> Vec<Value> {
        let v = self.get("/api/v1/query", &[("query", expr)]);
        assert_eq!(v["status"], "success", "{expr}: {v}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    pub fn wait_for(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `n` deliveries of `sla`, durations spread up to `worst` x `promise_ms`,
/// cycling through each label's values.
fn traffic(sla: &str, n: usize, promise_ms: f64, worst: f64, labels: &[(&str, &[&str])]) -> String {
    (0..n)
        .map(|i| {
            let ms = promise_ms * worst * ((i * 7919) % 1000 + 1) as f64 / 1000.0;
            let labels: Vec<String> = labels
                .iter()
                .enumerate()
                .map(|(k, (key, values))| {
                    format!("\"{key}\":\"{}\"", values[(i / (k + 1)) % values.len()])
                })
                .collect();
            format!(
                "{{\"sla\":\"{sla}\",\"duration_seconds\":{},\"labels\":{{{}}}}}\n",
                ms / 1000.0,
                labels.join(",")
            )
        })
        .collect()
}

fn push(ex: &Exporter, body: &str) {
    let r = ex.push(body);
    assert_eq!(r.status, 200, "{}", r.body);
}

fn api_latency(worst: f64, n: usize) -> String {
    traffic(
        "api_latency",
        n,
        300.0,
        worst,
        &[
            ("route", &["/checkout", "/search", "/cart", "/login"]),
            ("method", &["GET", "POST"]),
        ],
    )
}

#[test]
fn prometheus_runs_the_rules_and_every_dashboard_query_returns_data() {
    if !tool_available("prometheus") {
        return;
    }
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/amaze.yaml")).unwrap();
    let home = Home::new(&shipped);
    let ex = home.start(&[]);
    // Healthy traffic for every shipped SLA, enough for every label set to be
    // assessed. The SLAs other than api_latency get theirs again after
    // Prometheus' first scrape: the fleet margin's rate() counts from a
    // series' second sample.
    push(&ex, &api_latency(0.45, 2400));
    let others = || {
        // Support tickets are judged by their priority's goal: 1h, 4h, else 8h.
        for (priority, hours) in [("P1", 1.0), ("P2", 4.0), ("P3", 8.0)] {
            push(
                &ex,
                &traffic(
                    "support_first_response",
                    90,
                    hours * 3600.0 * 1000.0,
                    0.4,
                    &[
                        ("channel", &["email", "chat", "phone"]),
                        ("priority", &[priority]),
                    ],
                ),
            );
        }
        push(
            &ex,
            &traffic(
                "order_shipping",
                120,
                48.0 * 3600.0 * 1000.0,
                0.7,
                &[("warehouse", &["ams", "fra", "lon"])],
            ),
        );
    };
    others();

    let prom = Prometheus::start(ex.addr());
    prom.wait_for("a scrape and a rule evaluation", || {
        !prom.query("sla:amaze_margin:ratio").is_empty()
    });
    others();

    // Erode api_latency's margin step by step: its hour's p99 rises toward the promise.
    for worst in [0.7, 0.8, 0.85, 0.9, 0.92, 0.95] {
        push(&ex, &api_latency(worst, 400));
        std::thread::sleep(Duration::from_millis(1500));
    }
    prom.wait_for("AmazeMarginLow pending or firing for api_latency", || {
        let alerts = prom.get("/api/v1/alerts", &[]);
        alerts["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| {
                a["labels"]["alertname"] == "AmazeMarginLow"
                    && a["labels"]["sla"] == "api_latency"
                    && (a["state"] == "pending" || a["state"] == "firing")
            })
    });
    let healthy_alerts = prom.get("/api/v1/alerts", &[]);
    for a in healthy_alerts["data"]["alerts"]
        .as_array()
        .into_iter()
        .flatten()
    {
        assert_eq!(
            a["labels"]["sla"], "api_latency",
            "only the eroded SLA alerts: {a}"
        );
    }

    // (b) Every recording rule produces series, fleet rules included.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config/prometheus/");
    let rules = std::fs::read_to_string(format!("{dir}amaze-rules.yml")).unwrap()
        + &std::fs::read_to_string(format!("{dir}amaze-fleet-rules.yml")).unwrap();
    for record in rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- record: "))
    {
        prom.wait_for(&format!("recording rule {record}"), || {
            !prom.query(record).is_empty()
        });
    }

    // (a) Every dashboard query parses and returns data, variables
    // substituted, for at least one shipped SLA (a panel may switch between
    // queries by SLA: seconds, or shares of the promise where goals differ).
    let slas = prom.get("/api/v1/label/sla/values", &[("match[]", "amaze_sla_info")]);
    assert_eq!(
        slas["data"].as_array().map(Vec::len),
        Some(3),
        "$sla values: {slas}"
    );
    let shipped = ["api_latency", "support_first_response", "order_shipping"];
    let with = |expr: &str, sla: &str| {
        expr.replace("$__rate_interval", "1m")
            .replace("=~\"$sla\"", &format!("=~\"{sla}\""))
            .replace("$sla", sla)
    };
    for name in DASHBOARDS {
        for (title, expr) in queries(&load(name)) {
            prom.wait_for(&format!("data for {name} / {title}: {expr}"), || {
                shipped
                    .iter()
                    .any(|sla| !prom.query(&with(&expr, sla)).is_empty())
            });
        }
    }
    // The quantile panel: seconds where one promise judges the SLA, shares
    // of the promise where goals differ, never both; and the last day when
    // the hour has no assessed figures (here: a window no SLA has).
    let detail = load("amaze-sla-detail.json");
    let panel = detail["panels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == 3)
        .unwrap();
    let target = |id: &str| {
        panel["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["refId"] == id)
            .unwrap()["expr"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (seconds, shares) = (target("A"), target("B"));
    for (sla, in_seconds) in [("api_latency", true), ("support_first_response", false)] {
        prom.wait_for(&format!("quantiles of {sla} in one unit"), || {
            let has = |expr: &str| !prom.query(&with(expr, sla)).is_empty();
            has(&seconds) == in_seconds && has(&shares) != in_seconds
        });
    }
    let quiet_hour = with(&seconds, "api_latency").replace("window=\"1h\"", "window=\"2h\"");
    let day = prom.query(&quiet_hour);
    assert!(
        !day.is_empty() && day.iter().all(|s| s["metric"]["window"] == "1d"),
        "{quiet_hour}: {day:?}"
    );
    // (c) No panel is blank for any SLA: one of its data queries (reference
    // lines aside) returns data with `$sla` set to each one, per-label goals
    // and all.
    for name in DASHBOARDS {
        for (title, exprs) in data_queries(&load(name)) {
            for sla in shipped {
                prom.wait_for(&format!("{name} / {title} for {sla}: {exprs:?}"), || {
                    exprs.iter().any(|e| !prom.query(&with(e, sla)).is_empty())
                });
            }
        }
    }
}
