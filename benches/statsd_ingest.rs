//! StatsD over UDP through the release binary on 127.0.0.1.
//!
//! `cargo bench --bench statsd_ingest [-- SECONDS LINES_PER_PACKET]`
//! (defaults 5 and 20). One sender thread sends timer packets as fast as it
//! can for SECONDS, then the exporter's counters are read once they settle:
//! packets received (`amaze_statsd_packets_total`), so loss = sent -
//! received, and deliveries recorded. The baseline is the same sender against
//! a bare UDP socket in this process that only counts packets, in the same run.

#[path = "support/exporter.rs"]
mod exporter;

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use exporter::Exporter;

const CONFIG: &str = "version: 1\nslas:\n  - name: api\n    promise: 300ms\n    objective: 99%\n    labels: [route]\n    durability: none\nsources:\n  statsd:\n    listen: 127.0.0.1:0\n    mappings:\n      - metric: api.*.latency\n        sla: api\n        labels: {route: $1}\n";

fn packet(lines: usize) -> Vec<u8> {
    let routes = ["checkout", "search", "cart", "login"];
    (0..lines)
        .map(|i| format!("api.{}.latency:{}|ms\n", routes[i % 4], 5 + i * 7 % 300))
        .collect::<String>()
        .into_bytes()
}

/// Sends `packet` to `to` for `seconds`; returns packets sent and the time taken.
fn blast(to: &str, packet: &[u8], seconds: u64) -> (u64, f64) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("sender");
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut sent = 0u64;
    while Instant::now() < deadline {
        for _ in 0..64 {
            if socket.send_to(packet, to).is_ok() {
                sent += 1;
            }
        }
    }
    (sent, started.elapsed().as_secs_f64())
}

fn scrape(base: &str, name: &str) -> f64 {
    let text = ureq::get(format!("{base}/metrics"))
        .call()
        .and_then(|mut r| r.body_mut().with_config().limit(64 << 20).read_to_string())
        .unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let seconds = args.first().copied().unwrap_or(5).clamp(1, 60);
    let lines = args.get(1).copied().unwrap_or(20).clamp(1, 200) as usize;
    let body = packet(lines);

    // Baseline: a bare socket that only counts what arrives.
    let sink = UdpSocket::bind("127.0.0.1:0").expect("sink");
    sink.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let sink_addr = sink.local_addr().expect("addr").to_string();
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let counter = {
        let (received, stop) = (received.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_535];
            while !stop.load(Ordering::Relaxed) {
                if sink.recv_from(&mut buf).is_ok() {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let (base_sent, base_secs) = blast(&sink_addr, &body, seconds);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    counter.join().expect("counter");
    let base_received = received.load(Ordering::Relaxed);

    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("amaze.yaml");
    std::fs::write(&config, CONFIG).expect("config");
    let exporter = Exporter::start(&config, &dir.path().join("data"));
    let base = exporter.base.clone();
    let udp = exporter.udp.clone().expect("the statsd address in the log");
    let (sent, secs) = blast(&udp, &body, seconds);
    // Let the exporter drain its socket buffer.
    let mut got = -1.0;
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = scrape(&base, "amaze_statsd_packets_total");
        if now == got {
            break;
        }
        got = now;
    }
    let recorded = scrape(&base, "amaze_ingest_accepted_total{source=\"statsd\"}");
    exporter.kill();
    let pct = |lost: f64, of: f64| if of > 0.0 { 100.0 * lost / of } else { 0.0 };
    println!(
        "statsd_ingest: {seconds}s, {lines} timer lines per packet ({} bytes), one sender, 127.0.0.1",
        body.len()
    );
    println!(
        "baseline bare socket: {:>9.0} packets/s sent, {:>9.0} received/s, {:.1}% lost",
        base_sent as f64 / base_secs,
        base_received as f64 / base_secs,
        pct((base_sent - base_received) as f64, base_sent as f64)
    );
    println!(
        "amaze-exporter:       {:>9.0} packets/s sent, {:>9.0} received/s ({:.2} of baseline), {:.1}% lost; {:>10.0} lines/s parsed and recorded",
        sent as f64 / secs,
        got / secs,
        (got / secs) / (base_received as f64 / base_secs),
        pct(sent as f64 - got, sent as f64),
        recorded / secs
    );
}
