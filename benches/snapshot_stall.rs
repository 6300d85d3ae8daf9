//! Pushes to one SLA while another, large SLA is snapshotted.
//!
//! `cargo bench --bench snapshot_stall`. State: SLA `big` with 1,000 label
//! sets, each with a delivery every 10 minutes over 29 days and every 15 s
//! over the last 6 hours, so every slot of every window ring is populated
//! (built through the library's own storage). SLA `small` is empty.
//!
//! The release binary then serves that state twice, the same load each time:
//! one client pushes single deliveries to `small` (durability sync) one after
//! another and records each latency, while another pushes batches of 10 to
//! `big` (async) 100 times a second. The baseline run never snapshots
//! (`--storage.snapshot-interval=1h`); the measured run snapshots every
//! second, so snapshots of `big` run back to back.

#[path = "support/exporter.rs"]
mod exporter;
#[path = "support/state.rs"]
mod state;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use exporter::Exporter;

use amaze_exporter::config::Config;

const LABEL_SETS: usize = 1_000;
const PUSHES: usize = 1_500;

const CONFIG: &str = "version: 1
slas:
  - name: big
    promise: 300ms
    objective: 99%
    target_margin: 50%
    window: 30d
    labels: [route]
    max_series: 2000
    durability: async
  - name: small
    promise: 300ms
    objective: 99%
    durability: sync
";

struct Run {
    latencies: Vec<Duration>,
    snapshots: f64,
    snapshot_seconds: f64,
    snapshot_bytes: f64,
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Serves `data` with `flags` and measures pushes to `small` under load on `big`.
fn run(config: &Path, data: &Path, flags: &[&str]) -> Run {
    let ex = Exporter::start_with(config, data, flags);
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let stop = Arc::new(AtomicBool::new(false));
    let background = {
        let (agent, base, stop) = (agent.clone(), ex.base.clone(), stop.clone());
        // AMAZE_BIG_LOAD=0 leaves `big` alone: what remains is disk, not locks.
        let load = std::env::var("AMAZE_BIG_LOAD").map_or(true, |v| v != "0");
        std::thread::spawn(move || {
            let mut k = 0usize;
            while load && !stop.load(Ordering::Relaxed) {
                let body: String = (0..10)
                    .map(|i| {
                        format!(
                            "{{\"sla\":\"big\",\"labels\":{{\"route\":\"/route/{}\"}},\"duration\":\"{}ms\"}}\n",
                            (k * 10 + i) % LABEL_SETS,
                            50 + (k + i) % 200
                        )
                    })
                    .collect();
                let _ = agent
                    .post(format!("{base}/api/v1/deliveries"))
                    .header("content-type", "application/x-ndjson")
                    .send(body);
                k += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    // Let the first snapshot begin.
    std::thread::sleep(Duration::from_secs(2));
    let mut latencies = Vec::with_capacity(PUSHES);
    for i in 0..PUSHES {
        let started = Instant::now();
        let r = agent
            .post(format!("{}/api/v1/deliveries", ex.base))
            .header("content-type", "application/x-ndjson")
            .send(format!(
                "{{\"sla\":\"small\",\"duration\":\"{}ms\"}}\n",
                100 + i % 100
            ))
            .expect("push");
        assert_eq!(r.status().as_u16(), 200);
        latencies.push(started.elapsed());
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    let _ = background.join();
    let mut r = agent
        .get(format!("{}/metrics", ex.base))
        .call()
        .expect("scrape");
    let text = r
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .expect("body");
    let snapshot_seconds = metric(&text, "amaze_snapshot_duration_seconds");
    let snapshot_bytes = metric(&text, "amaze_snapshot_bytes");
    let snapshots = text
        .lines()
        .find_map(|l| l.strip_prefix("amaze_snapshot_last_success_timestamp_seconds "))
        .map_or(0.0, |_| 1.0);
    ex.kill();
    latencies.sort();
    Run {
        latencies,
        snapshots,
        snapshot_seconds,
        snapshot_bytes,
    }
}

fn report(what: &str, r: &Run, baseline: Option<&Run>) {
    let q = |v: &[Duration], p: f64| v[((v.len() as f64 * p).ceil() as usize).min(v.len()) - 1];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (p50, p99, max) = (
        q(&r.latencies, 0.5),
        q(&r.latencies, 0.99),
        q(&r.latencies, 1.0),
    );
    let ratio = baseline.map_or(String::new(), |b| {
        format!(
            " ({:.1}x / {:.1}x / {:.1}x baseline)",
            ms(p50) / ms(q(&b.latencies, 0.5)),
            ms(p99) / ms(q(&b.latencies, 0.99)),
            ms(max) / ms(q(&b.latencies, 1.0))
        )
    });
    println!(
        "{what:<34} pushes to `small`: p50 {:>6.1} ms, p99 {:>6.1} ms, max {:>6.1} ms{ratio}",
        ms(p50),
        ms(p99),
        ms(max)
    );
    if baseline.is_some() && r.snapshots > 0.0 {
        println!(
            "{:<34} last snapshot: {:.1} MB in {:.2} s",
            "",
            r.snapshot_bytes / 1e6,
            r.snapshot_seconds
        );
    }
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config_path = dir.path().join("amaze.yaml");
    std::fs::write(&config_path, CONFIG).expect("write config");
    let catalog = Arc::new(Config::parse(CONFIG).expect("config").catalog());
    let data = dir.path().join("data");
    let built = Instant::now();
    let big = [("big".to_owned(), Duration::from_millis(300))];
    let deliveries = state::build(&data, catalog, &big, LABEL_SETS, 29);
    println!(
        "snapshot_stall: `big` holds {LABEL_SETS} label sets, {deliveries} deliveries over 29 days (built in {:.0} s); {PUSHES} sequential pushes to `small`, 1,000 deliveries/s to `big` meanwhile",
        built.elapsed().as_secs_f64()
    );
    let baseline = run(&config_path, &data, &["--storage.snapshot-interval=1h"]);
    report("baseline (no snapshot)", &baseline, None);
    let during = run(&config_path, &data, &["--storage.snapshot-interval=1s"]);
    report("snapshots back to back", &during, Some(&baseline));
}
