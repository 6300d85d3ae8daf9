//! Load generator: NDJSON push throughput through the real binary on 127.0.0.1.
//!
//! `cargo bench --bench http_ingest [-- SECONDS CONNECTIONS]`. Starts the
//! release exporter on a free port with a state directory in a temp dir,
//! then measures, each for a bounded time with keep-alive connections:
//! - baseline: `GET /-/healthy`, the server answering an empty request;
//! - NDJSON batches of 1,000 and 10,000 deliveries, for an SLA of each
//!   durability (none: no log; async: logged, synced each second; sync:
//!   logged and fdatasync'd before 2xx), with log bytes per delivery;
//! - single-delivery sync POSTs over 64 connections, against the baseline
//!   over the same 64 connections.
//!
//! Bodies are built before timing starts, so the client spends its CPU on I/O.

#[path = "support/exporter.rs"]
mod exporter;
#[path = "support/load.rs"]
mod load;

use std::sync::Arc;
use std::time::Duration;

use exporter::Exporter;

const MODES: [&str; 3] = ["none", "async", "sync"];

fn config() -> String {
    let mut c = String::from("version: 1\nslas:\n");
    for mode in MODES {
        c.push_str(&format!(
            "  - name: api_{mode}\n    promise: 300ms\n    objective: 99%\n    target_margin: 50%\n    labels: [route, method]\n    durability: {mode}\n"
        ));
    }
    c
}

fn body(mode: &str, lines: usize) -> Vec<u8> {
    let mut s = String::with_capacity(lines * 100);
    for i in 0..lines {
        let ms = 5 + (i * 7919) % 400;
        s.push_str(&format!(
            "{{\"sla\":\"api_{mode}\",\"duration_seconds\":{}.{:03},\"labels\":{{\"route\":\"/r/{}\",\"method\":\"GET\"}}}}\n",
            ms / 1000,
            ms % 1000,
            i % 10
        ));
    }
    s.into_bytes()
}

struct Run {
    requests: u64,
    deliveries: u64,
    elapsed: Duration,
}

/// POSTs `body` (`per_request` deliveries) to the push route, or GETs
/// `/-/healthy` without one, over `connections` for `seconds`.
fn run(
    base: &str,
    connections: usize,
    seconds: u64,
    body: Option<Arc<Vec<u8>>>,
    per_request: u64,
) -> Run {
    let r = match body {
        Some(b) => load::run(
            &format!("{base}/api/v1/deliveries"),
            Some(("application/x-ndjson", b)),
            connections,
            seconds,
        ),
        None => load::run(&format!("{base}/-/healthy"), None, connections, seconds),
    };
    Run {
        requests: r.requests,
        deliveries: r.requests * per_request,
        elapsed: r.elapsed,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; take plain numbers as SECONDS CONNECTIONS.
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let seconds = args.first().copied().unwrap_or(5).clamp(1, 60);
    let connections = args.get(1).copied().unwrap_or(4).clamp(1, 64) as usize;

    let dir = tempfile::tempdir().expect("temp dir");
    let config_path = dir.path().join("amaze.yaml");
    std::fs::write(&config_path, config()).expect("write config");
    let exporter = Exporter::start(&config_path, &dir.path().join("data"));
    let base = exporter.base.clone();

    println!(
        "http_ingest: {seconds}s per run, {connections} connections, 127.0.0.1, exporter pid {}",
        exporter.child.id()
    );
    let baseline = run(&base, connections, seconds, None, 0);
    let baseline_rps = baseline.requests as f64 / baseline.elapsed.as_secs_f64();
    println!("baseline GET /-/healthy: {:>10.0} requests/s", baseline_rps);
    for lines in [1_000usize, 10_000] {
        let mut none_dps = 0.0;
        for mode in MODES {
            let b = Arc::new(body(mode, lines));
            let written = scrape(&base, "amaze_wal_written_bytes_total");
            let r = run(&base, connections, seconds, Some(b.clone()), lines as u64);
            let logged = scrape(&base, "amaze_wal_written_bytes_total") - written;
            let secs = r.elapsed.as_secs_f64();
            let dps = r.deliveries as f64 / secs;
            if mode == "none" {
                none_dps = dps;
            }
            println!(
                "NDJSON x{lines:>6} ({:>4} KiB) durability {mode:>5}: {:>10.0} deliveries/s ({:.2} of durability none), {:>6.0} requests/s, {:.1} log bytes/delivery",
                b.len() / 1024,
                dps,
                dps / none_dps,
                r.requests as f64 / secs,
                logged / r.deliveries as f64,
            );
        }
    }
    let wide = 64;
    let baseline = run(&base, wide, seconds, None, 0);
    let baseline_rps = baseline.requests as f64 / baseline.elapsed.as_secs_f64();
    println!("baseline GET /-/healthy, {wide} connections: {baseline_rps:>10.0} requests/s");
    for mode in ["none", "sync"] {
        let syncs = scrape(&base, "amaze_wal_syncs_total");
        let r = run(&base, wide, seconds, Some(Arc::new(body(mode, 1))), 1);
        let syncs = scrape(&base, "amaze_wal_syncs_total") - syncs;
        let rps = r.requests as f64 / r.elapsed.as_secs_f64();
        println!(
            "single-delivery POSTs durability {mode:>4}, {wide} connections: {rps:>10.0} deliveries/s ({:.3} of baseline), {:.1} requests per fdatasync",
            rps / baseline_rps,
            if syncs > 0.0 {
                r.requests as f64 / syncs
            } else {
                0.0
            },
        );
    }
    exporter.kill();
}

/// The value of an unlabelled sample on `/metrics`.
fn scrape(base: &str, name: &str) -> f64 {
    let text = ureq::get(format!("{base}/metrics"))
        .call()
        .and_then(|mut r| r.body_mut().with_config().limit(64 << 20).read_to_string())
        .expect("scrape");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}
