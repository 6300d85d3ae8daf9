//! Overload: does the exporter shed instead of falling over, keep `/metrics`
//! answering, hold memory bounded, and record every delivery it said 2xx to?
//!
//! `cargo bench --bench overload [-- SECONDS CLIENTS]` (defaults 5 and 4).
//! First CLIENTS clients (raw keep-alive connections sending a pre-built
//! request, so the generator costs little CPU) push 10,000-line NDJSON batches back to back for
//! SECONDS: the sustainable rate, nothing shed. Then 10 x CLIENTS clients do
//! the same (ten times the offered concurrency) against the same exporter,
//! whose `limits.max_inflight_bytes` is 8 MiB. Meanwhile a probe times
//! `/metrics` every 100 ms. Reports deliveries/s accepted and offered,
//! statuses, `/metrics` latency against the idle baseline, peak RSS, and
//! checks that the exporter counted exactly the deliveries answered 2xx.

#[path = "support/exporter.rs"]
mod exporter;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use exporter::Exporter;

const LINES: usize = 10_000;

#[derive(Default)]
struct Tally {
    ok_deliveries: AtomicU64,
    ok: AtomicU64,
    shed: AtomicU64,
    other: AtomicU64,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
}

/// One keep-alive connection sending a pre-built request: the load
/// generator shares the cores with the exporter, so it must cost little.
struct RawClient {
    stream: std::net::TcpStream,
    buf: Vec<u8>,
}

impl RawClient {
    fn connect(addr: &str) -> RawClient {
        let stream = std::net::TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).ok();
        RawClient {
            stream,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Sends `request` and returns the response status (0 on a broken connection).
    fn send(&mut self, request: &[u8]) -> u16 {
        use std::io::{Read, Write};
        if self.stream.write_all(request).is_err() {
            return 0;
        }
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        loop {
            let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                match self.stream.read(&mut chunk) {
                    Ok(0) | Err(_) => return 0,
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
                continue;
            };
            let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
            let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while self.buf.len() < end + 4 + length {
                match self.stream.read(&mut chunk) {
                    Ok(0) | Err(_) => return 0,
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
            return status;
        }
    }
}

fn push_phase(base: &str, clients: usize, seconds: f64, request: &Arc<Vec<u8>>) -> (Tally, f64) {
    let tally = Arc::new(Tally::default());
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let addr = base.trim_start_matches("http://").to_owned();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (tally, request, addr) = (tally.clone(), request.clone(), addr.clone());
            std::thread::spawn(move || {
                let mut client = RawClient::connect(&addr);
                while Instant::now() < deadline {
                    match client.send(&request) {
                        200 => {
                            tally.ok.fetch_add(1, Ordering::Relaxed);
                            tally
                                .ok_deliveries
                                .fetch_add(LINES as u64, Ordering::Relaxed);
                        }
                        // No back-off: the worst client, retrying at once.
                        429 | 503 => {
                            tally.shed.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            tally.other.fetch_add(1, Ordering::Relaxed);
                            client = RawClient::connect(&addr);
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    let elapsed = started.elapsed().as_secs_f64();
    (Arc::try_unwrap(tally).unwrap_or_default(), elapsed)
}

/// Times `/metrics` every 100 ms until `stop`; returns the latencies in ms.
fn probe(base: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<f64>> {
    std::thread::spawn(move || {
        let agent = agent();
        let mut out = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let t = Instant::now();
            let ok = agent
                .get(format!("{base}/metrics"))
                .call()
                .is_ok_and(|r| r.status() == 200);
            out.push(if ok {
                t.elapsed().as_secs_f64() * 1e3
            } else {
                f64::INFINITY
            });
            std::thread::sleep(Duration::from_millis(100));
        }
        out
    })
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(((v.len() as f64 - 1.0) * p).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

fn scrape_value(base: &str, prefix: &str) -> f64 {
    agent()
        .get(format!("{base}/metrics"))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix(prefix)?.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

fn main() {
    let args: Vec<f64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let seconds = args.first().copied().unwrap_or(5.0);
    let clients = args.get(1).copied().unwrap_or(4.0) as usize;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("amaze.yaml");
    std::fs::write(
        &config,
        "version: 1\nlimits:\n  max_inflight_bytes: 8388608\nslas:\n  - name: api\n    promise: 300ms\n    objective: 99%\n    labels: [route]\n",
    )
    .expect("config");
    let ex = Exporter::start(&config, &dir.path().join("data"));
    let pid = ex.child.id();
    let body: String = (0..LINES)
        .map(|i| format!("{{\"sla\":\"api\",\"labels\":{{\"route\":\"/r{}\"}},\"duration_seconds\":0.{:03}}}\n", i % 8, i % 1000))
        .collect();
    let addr = ex.base.trim_start_matches("http://").to_owned();
    let mut request = format!(
        "POST /api/v1/deliveries HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body.as_bytes());
    println!(
        "overload: {LINES}-line batches ({} KiB), {seconds} s per phase",
        body.len() / 1024
    );
    let body = Arc::new(request);

    let stop = Arc::new(AtomicBool::new(false));
    let idle = probe(ex.base.clone(), stop.clone());
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let idle = idle.join().unwrap_or_default();

    let hwm = || {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:").map(|v| v.trim().to_owned()))
            .unwrap_or_default()
    };
    println!("peak RSS idle: {}", hwm());
    let (sustained, t1) = push_phase(&ex.base, clients, seconds, &body);
    println!("peak RSS after the sustained phase: {}", hwm());
    let stop = Arc::new(AtomicBool::new(false));
    let during = probe(ex.base.clone(), stop.clone());
    let (overload, t2) = push_phase(&ex.base, clients * 10, seconds, &body);
    stop.store(true, Ordering::Relaxed);
    let during = during.join().unwrap_or_default();

    let rate = |t: &Tally, secs: f64| t.ok_deliveries.load(Ordering::Relaxed) as f64 / secs;
    let offered = |t: &Tally, secs: f64| {
        (t.ok.load(Ordering::Relaxed)
            + t.shed.load(Ordering::Relaxed)
            + t.other.load(Ordering::Relaxed)) as f64
            * LINES as f64
            / secs
    };
    for (name, t, secs, c) in [
        ("sustained", &sustained, t1, clients),
        ("overload", &overload, t2, clients * 10),
    ] {
        println!(
            "{name:<10} {c:>3} clients: accepted {:>10.0} deliveries/s, offered {:>10.0}/s; 2xx {} shed(429/503) {} other {}",
            rate(t, secs),
            offered(t, secs),
            t.ok.load(Ordering::Relaxed),
            t.shed.load(Ordering::Relaxed),
            t.other.load(Ordering::Relaxed)
        );
    }
    println!(
        "offered concurrency 10x; offered rate {:.1}x the sustained rate; accepted {:.2}x",
        offered(&overload, t2) / rate(&sustained, t1),
        rate(&overload, t2) / rate(&sustained, t1)
    );
    println!(
        "/metrics latency: idle p50 {:.1} ms p99 {:.1} ms; under overload p50 {:.1} ms p99 {:.1} ms, {} probes, all answered: {}",
        percentile(idle.clone(), 0.5),
        percentile(idle, 0.99),
        percentile(during.clone(), 0.5),
        percentile(during.clone(), 0.99),
        during.len(),
        during.iter().all(|v| v.is_finite())
    );
    println!("peak RSS after the overload phase: {}", hwm());
    let answered = sustained.ok_deliveries.load(Ordering::Relaxed)
        + overload.ok_deliveries.load(Ordering::Relaxed);
    let counted = scrape_value(&ex.base, "amaze_ingest_accepted_total{source=\"http\"}") as u64;
    println!("deliveries answered 2xx {answered}, recorded {counted}");
    assert_eq!(
        answered, counted,
        "every 2xx must be recorded, and nothing else"
    );
    ex.kill();
}
