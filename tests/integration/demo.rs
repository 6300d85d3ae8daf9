//! `amaze-exporter demo` against the real binary: it says what to look at
//! and when, rides out an exporter restart, and with its defaults makes the
//! shipped `AmazeMarginLow` alert go pending in a real Prometheus within
//! five minutes.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::e2e::Prometheus;
use crate::server::{Home, free_port, tool_available};

const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/amaze.yaml");

/// `demo` with `flags`, its stdout gathered as it comes.
struct Demo {
    child: Child,
    out: Arc<Mutex<String>>,
}

impl Demo {
    fn start(flags: &[&str]) -> Demo {
        let mut child = Command::new(env!("CARGO_BIN_EXE_amaze-exporter"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .arg("demo")
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("demo starts");
        let stdout = child.stdout.take().unwrap();
        let out = Arc::new(Mutex::new(String::new()));
        let lines = out.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut all = lines.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
        Demo { child, out }
    }

    fn said(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    fn wait_for(&self, text: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.said().contains(text) {
            assert!(
                Instant::now() < deadline,
                "no `{text}` in:\n{}",
                self.said()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The exporter is killed and comes back on its port: the demo says so,
/// goes on pushing, and ends when `--duration` says, with exit 0.
#[test]
fn the_demo_says_what_to_look_at_and_rides_out_a_restart() {
    let home = Home::new(&std::fs::read_to_string(SHIPPED).unwrap());
    let port = free_port();
    let listen = format!("--web.listen-address=127.0.0.1:{port}");
    let exporter = home.start(&[&listen]);
    let target = format!("http://127.0.0.1:{port}");
    let mut demo = Demo::start(&["--target", &target, "--duration", "12s"]);
    demo.wait_for("deliveries pushed", Duration::from_secs(10));
    let said = demo.said();
    for text in [
        "what to look at, and when:",
        "12s     the demo ends",
        "for 12s (--duration)",
    ] {
        assert!(said.contains(text), "no `{text}` in:\n{said}");
    }
    exporter.crash();
    demo.wait_for("does not answer", Duration::from_secs(5));
    let exporter = home.start(&[&listen]);
    demo.wait_for("answers again", Duration::from_secs(10));
    let status = demo.child.wait().expect("demo ends");
    assert!(status.success(), "{status:?}:\n{}", demo.said());
    assert!(demo.said().contains("demo: done:"), "{}", demo.said());
    let m = exporter.metrics();
    let pushed = m
        .value("amaze_ingest_accepted_total", &[("source", "http")])
        .unwrap();
    assert!(pushed >= 200.0, "{pushed} accepted after the restart");
}

/// A target where nothing answers is said plainly within seconds, not
/// waited on for the demo's half hour; bad flags are usage errors.
#[test]
fn the_demo_says_when_nothing_answers_and_refuses_bad_flags() {
    let port = free_port();
    let target = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_amaze-exporter"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["demo", "--target", &target])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(30));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&format!("nothing answers at {target}")),
        "{said}"
    );
    for flags in [["--breach-after", "10s"], ["--erode", "nope"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_amaze-exporter"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .arg("demo")
            .args(flags)
            .args(["--target", &target])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flags:?}");
    }
}

/// With its defaults, against the shipped Prometheus config and rules (scrape
/// and evaluation every 15s), the eroding SLA's `AmazeMarginLow` goes
/// pending within five minutes of the demo's start. The time is printed.
#[test]
fn with_defaults_the_margin_alert_goes_pending_within_five_minutes() {
    if !tool_available("prometheus") {
        return;
    }
    let home = Home::new(&std::fs::read_to_string(SHIPPED).unwrap());
    let exporter = home.start(&[]);
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/config/prometheus");
    let shipped = std::fs::read_to_string(format!("{rules}/prometheus.yml")).unwrap();
    let config = shipped
        .replace("127.0.0.1:9797", exporter.addr())
        .replace("  - amaze-", &format!("  - {rules}/amaze-"));
    assert!(
        config.contains(exporter.addr()) && config.contains(rules),
        "{config}"
    );
    let prometheus = Prometheus::with_config(&config, &["--enable-feature=native-histograms"]);
    let target = format!("http://{}", exporter.addr());
    let started = Instant::now();
    let demo = Demo::start(&["--target", &target]);
    let pending = loop {
        let alerts = prometheus.get("/api/v1/alerts", &[]);
        let all = alerts["data"]["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        // No other SLA pages meanwhile, not even for a moment: they stay
        // healthy from their first deliveries on. (AmazeExporterDown, of no
        // SLA, is pending until Prometheus's first scrape.)
        for a in all.iter().filter(|a| !a["labels"]["sla"].is_null()) {
            assert_eq!(a["labels"]["sla"], "api_latency", "{a}");
        }
        let state = all
            .iter()
            .find(|a| a["labels"]["alertname"] == "AmazeMarginLow")
            .and_then(|a| a["state"].as_str().map(str::to_owned));
        if state.is_some() {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5 * 60),
            "AmazeMarginLow not pending 5 minutes after the demo started:\n{}",
            demo.said()
        );
        std::thread::sleep(Duration::from_secs(2));
    };
    eprintln!(
        "AmazeMarginLow pending {:.0} s after the demo started",
        pending.as_secs_f64()
    );
    // It said so beforehand, with the rest of the plan, as README shows it.
    let said = demo.said().replace(exporter.addr(), "127.0.0.1:9797");
    assert!(
        said.contains("for 30m (--duration), or until Ctrl-C"),
        "{said}"
    );
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let plan = readme
        .split("```\ndemo: what to look at, and when:\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("README shows the demo's plan");
    assert!(plan.lines().count() >= 6, "{plan}");
    for line in plan.lines() {
        assert!(said.contains(line), "README's `{line}` is not in:\n{said}");
    }
    demo.wait_for(
        "demo: 2m30s: AmazeMarginLow is pending for api_latency",
        Duration::from_secs(60),
    );
}
