//! Load generator: NDJSON push throughput through the real binary on 127.0.0.1.
//!
//! `cargo bench --bench http_ingest [-- SECONDS CONNECTIONS]`. Starts the
//! release exporter on a free port, then measures, each for a bounded time
//! with the same client threads and keep-alive connections:
//! - baseline: `GET /-/healthy`, the server answering an empty request;
//! - NDJSON batches of 1,000 and 10,000 deliveries.
//!
//! Bodies are built before timing starts, so the client spends its CPU on I/O.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const CONFIG: &str = "version: 1\nslas:\n  - name: api\n    promise: 300ms\n    objective: 99%\n    target_margin: 50%\n    labels: [route, method]\n";

fn body(lines: usize) -> Vec<u8> {
    let mut s = String::with_capacity(lines * 100);
    for i in 0..lines {
        let ms = 5 + (i * 7919) % 400;
        s.push_str(&format!(
            "{{\"sla\":\"api\",\"duration_seconds\":{}.{:03},\"labels\":{{\"route\":\"/r/{}\",\"method\":\"GET\"}}}}\n",
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

fn run(
    base: &str,
    connections: usize,
    seconds: u64,
    body: Option<Arc<Vec<u8>>>,
    per_request: u64,
) -> Run {
    let requests = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let threads: Vec<_> = (0..connections)
        .map(|_| {
            let (base, body, requests) = (base.to_owned(), body.clone(), requests.clone());
            std::thread::spawn(move || {
                let agent = ureq::Agent::config_builder()
                    .http_status_as_error(true)
                    .build()
                    .new_agent();
                while Instant::now() < deadline {
                    let ok = match &body {
                        Some(b) => agent
                            .post(format!("{base}/api/v1/deliveries"))
                            .header("content-type", "application/x-ndjson")
                            .send(&b[..])
                            .and_then(|mut r| r.body_mut().read_to_string()),
                        None => agent
                            .get(format!("{base}/-/healthy"))
                            .call()
                            .and_then(|mut r| r.body_mut().read_to_string()),
                    };
                    if let Err(e) = ok {
                        panic!("request failed: {e}");
                    }
                    requests.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    let requests = requests.load(Ordering::Relaxed);
    Run {
        requests,
        deliveries: requests * per_request,
        elapsed: started.elapsed(),
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
    let config = dir.path().join("amaze.yaml");
    std::fs::write(&config, CONFIG).expect("write config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_amaze-exporter"))
        .arg(format!("--config.file={}", config.display()))
        .arg("--web.listen-address=127.0.0.1:0")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start exporter");
    let stderr = child.stderr.take().expect("stderr");
    let mut addr = String::new();
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        if let Some(a) = line.split("addr=").nth(1) {
            addr = a.split_whitespace().next().unwrap_or("").to_owned();
            break;
        }
    }
    assert!(!addr.is_empty(), "exporter did not report its address");
    let base = format!("http://{addr}");

    println!(
        "http_ingest: {seconds}s per run, {connections} connections, 127.0.0.1, exporter pid {}",
        child.id()
    );
    let baseline = run(&base, connections, seconds, None, 0);
    let baseline_rps = baseline.requests as f64 / baseline.elapsed.as_secs_f64();
    println!("baseline GET /-/healthy: {:>10.0} requests/s", baseline_rps);
    for lines in [1_000usize, 10_000] {
        let b = Arc::new(body(lines));
        let r = run(&base, connections, seconds, Some(b.clone()), lines as u64);
        let secs = r.elapsed.as_secs_f64();
        let dps = r.deliveries as f64 / secs;
        let rps = r.requests as f64 / secs;
        println!(
            "NDJSON x{lines:>6} ({:>4} KiB): {:>10.0} deliveries/s, {:>7.0} requests/s ({:.4} of baseline requests/s), {:.0} MB/s",
            b.len() / 1024,
            dps,
            rps,
            rps / baseline_rps,
            rps * b.len() as f64 / 1e6
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}
