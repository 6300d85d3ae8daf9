//! StatsD over UDP through the release binary on 127.0.0.1, beside collectd's
//! statsd plugin (Debian `collectd-core`) at the same send rate, in one run.
//!
//! `cargo bench --bench statsd_ingest [-- SECONDS]` (default 5 per receiver).
//!
//! Three packet shapes, as clients send them: one etsy timer a packet (the
//! PyPI `statsd` client unpipelined), 20 a packet (a pipeline, 500 bytes),
//! and 20 DogStatsD timers with two tags each, mapped by tag (a buffering
//! `datadog` client, 1,000 bytes). Four routes, values 5-299 ms. For each:
//!
//! 1. Baseline: one sender thread sends as fast as it can to a bare UDP
//!    socket in this process that only counts packets: the highest send rate
//!    this machine reaches, and what a receiver doing nothing gets of it.
//! 2. collectd's statsd plugin, then the exporter, each sent the same
//!    packets at that rate, paced, for SECONDS. Loss is what the kernel
//!    dropped at the receiver's socket (`/proc/net/udp`, drops), the same
//!    measure for both; the exporter's own count of packets
//!    (`amaze_statsd_packets_total`) and deliveries recorded are printed
//!    beside it. collectd does not read DogStatsD tags; its figure for that
//!    shape is the loss only.
//!
//! The sender runs on CPU 0 and every receiver (the bare socket's thread,
//! collectd, each exporter thread) on CPU 1, as a receiver on its own
//! machine would be: a receiver's threads never slow the sender, so each
//! is sent the same.

#[path = "support/exporter.rs"]
mod exporter;

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use exporter::Exporter;

const CONFIG: &str = "version: 1\nslas:\n  - name: api\n    promise: 300ms\n    objective: 99%\n    labels: [route, method]\n    durability: async\nsources:\n  statsd:\n    listen: 127.0.0.1:0\n    mappings:\n      - metric: api.*.latency\n        sla: api\n        labels: {route: $1}\n      - metric: api.latency\n        sla: api\n        labels: {route: tag:route, method: tag:method}\n";

const ROUTES: [&str; 4] = ["checkout", "search", "cart", "login"];

/// `lines` etsy timers, or DogStatsD timers with tags, one packet.
fn packet(lines: usize, tagged: bool) -> Vec<u8> {
    (0..lines)
        .map(|i| {
            let (route, ms) = (ROUTES[i % 4], 5 + i * 7 % 295);
            match tagged {
                false => format!("api.{route}.latency:{ms}|ms\n"),
                true => format!("api.latency:{ms}|ms|#route:{route},method:GET\n"),
            }
        })
        .collect::<String>()
        .into_bytes()
}

/// The CPU senders run on; receivers get the other one, so a receiver's
/// threads never slow the sender and every receiver is sent the same.
const SENDER_CPU: usize = 0;
const RECEIVER_CPU: usize = 1;

/// Keeps the calling thread on `cpu`.
fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET stays in it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Keeps every thread of process `pid` (and those it starts) on `cpu`.
fn pin_process(pid: u32, cpu: usize) {
    let _ = Command::new("taskset")
        .args(["-a", "-p", "-c", &cpu.to_string(), &pid.to_string()])
        .stdout(Stdio::null())
        .status();
}

/// Sends `packet` to `to` for `seconds`, at most `rate` packets a second
/// (paced in bursts of 32); returns packets sent and the time taken.
fn send(to: &str, packet: &[u8], seconds: u64, rate: Option<f64>) -> (u64, f64) {
    pin(SENDER_CPU);
    let socket = UdpSocket::bind("127.0.0.1:0").expect("sender");
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut sent = 0u64;
    while Instant::now() < deadline {
        if let Some(rate) = rate {
            let due = started + Duration::from_secs_f64(sent as f64 / rate);
            while Instant::now() < due {
                std::hint::spin_loop();
            }
        }
        for _ in 0..32 {
            if socket.send_to(packet, to).is_ok() {
                sent += 1;
            }
        }
    }
    (sent, started.elapsed().as_secs_f64())
}

/// Packets the kernel dropped at the UDP socket bound to `port` on 127.0.0.1.
fn drops(port: u16) -> u64 {
    let table = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    let local = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| l.split_whitespace().nth(1) == Some(local.as_str()))
        .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
        .sum()
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
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

/// collectd with only its statsd plugin, on `port`.
fn collectd(dir: &std::path::Path, port: u16) -> Option<Child> {
    let conf = dir.join("collectd.conf");
    std::fs::write(
        &conf,
        format!(
            "Hostname \"bench\"\nFQDNLookup false\nInterval 10\nBaseDir \"{}\"\nPIDFile \"{}/collectd.pid\"\nLoadPlugin statsd\n<Plugin statsd>\n  Host \"127.0.0.1\"\n  Port \"{port}\"\n  TimerPercentile 99\n</Plugin>\n",
            dir.display(),
            dir.display()
        ),
    )
    .ok()?;
    let child = Command::new("taskset")
        .args(["-c", &RECEIVER_CPU.to_string(), "collectd", "-f"])
        .arg("-C")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    // Up once its socket is bound.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let bound = std::fs::read_to_string("/proc/net/udp")
            .unwrap_or_default()
            .contains(&format!("0100007F:{port:04X}"));
        if bound {
            return Some(child);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn main() {
    let seconds = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<u64>().ok())
        .unwrap_or(5)
        .clamp(1, 60);
    println!(
        "statsd_ingest: {seconds}s per receiver, one sender on CPU {SENDER_CPU}, receivers on CPU {RECEIVER_CPU}, 127.0.0.1"
    );
    for (lines, tagged, shape) in [
        (1, false, "1 etsy timer a packet"),
        (20, false, "20 etsy timers a packet"),
        (20, true, "20 DogStatsD timers with 2 tags a packet"),
    ] {
        let body = packet(lines, tagged);
        println!("\n{shape} ({} bytes):", body.len());
        shape_run(&body, lines, seconds);
    }
}

fn pct(lost: f64, of: f64) -> f64 {
    if of > 0.0 { 100.0 * lost / of } else { 0.0 }
}

/// The baseline, collectd and the exporter, sent `body` for `seconds` each.
fn shape_run(body: &[u8], lines: usize, seconds: u64) {
    // 1. Baseline: a bare socket that only counts what arrives.
    let sink = UdpSocket::bind("127.0.0.1:0").expect("sink");
    sink.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let sink_addr = sink.local_addr().expect("addr").to_string();
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let counter = {
        let (received, stop) = (received.clone(), stop.clone());
        std::thread::spawn(move || {
            pin(RECEIVER_CPU);
            let mut buf = vec![0u8; 65_535];
            while !stop.load(Ordering::Relaxed) {
                if sink.recv_from(&mut buf).is_ok() {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let (base_sent, base_secs) = send(&sink_addr, body, seconds, None);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    counter.join().expect("counter");
    let base_received = received.load(Ordering::Relaxed);
    let rate = base_sent as f64 / base_secs;
    println!(
        "baseline bare socket:  {:>9.0} packets/s sent, {:>9.0} received/s, {:.2}% lost",
        rate,
        base_received as f64 / base_secs,
        pct((base_sent - base_received) as f64, base_sent as f64)
    );

    let dir = tempfile::tempdir().expect("temp dir");

    // 2. collectd's statsd plugin at the baseline's rate.
    let port = free_port();
    match collectd(dir.path(), port) {
        Some(mut child) => {
            let before = drops(port);
            let (sent, secs) = send(&format!("127.0.0.1:{port}"), body, seconds, Some(rate));
            std::thread::sleep(Duration::from_millis(500));
            let dropped = drops(port) - before;
            let _ = child.kill();
            let _ = child.wait();
            println!(
                "collectd statsd:       {:>9.0} packets/s sent, {:>9.0} received/s, {:.2}% lost",
                sent as f64 / secs,
                (sent - dropped) as f64 / secs,
                pct(dropped as f64, sent as f64)
            );
        }
        None => println!("collectd statsd:       not run (apt-get install collectd-core)"),
    }

    // 3. The exporter at the same rate.
    let config = dir.path().join("amaze.yaml");
    std::fs::write(&config, CONFIG).expect("config");
    let exporter = Exporter::start(&config, &dir.path().join("data"));
    pin_process(exporter.child.id(), RECEIVER_CPU);
    let base = exporter.base.clone();
    let udp = exporter.udp.clone().expect("the statsd address in the log");
    let port: u16 = udp
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let before = drops(port);
    let (sent, secs) = send(&udp, body, seconds, Some(rate));
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
    let dropped = drops(port) - before;
    let recorded = scrape(&base, "amaze_ingest_accepted_total{source=\"statsd\"}");
    exporter.kill();
    println!(
        "amaze-exporter:        {:>9.0} packets/s sent, {:>9.0} received/s, {:.2}% lost (kernel drops; {:.2}% by its own count)",
        sent as f64 / secs,
        got / secs,
        pct(dropped as f64, sent as f64),
        pct(sent as f64 - got, sent as f64),
    );
    println!(
        "                       {:>9.0} timers/s recorded: {recorded:.0} of the {:.0} in the packets received",
        recorded / secs,
        got * lines as f64
    );
}
