//! Log tail against mtail on the same generated log, one after the other.
//!
//! `cargo bench --bench log_vs_mtail [-- LINES RUNS]` (defaults 1,000,000 and
//! 3). Writes a log of `<route> <ms>ms` lines, then, interleaved RUNS times:
//! - mtail (Debian package `mtail`) in one-shot mode with a histogram
//!   program of the same bucket edges, timed by `/usr/bin/time`;
//! - the release exporter tailing the file from its beginning, timed from
//!   spawn until every line is counted, its CPU and peak RSS read from /proc,
//!   once with the default `durability: sync` and once with `none`.
//!
//! Reports wall time, lines/s, CPU seconds per million lines and peak RSS,
//! and checks that both count the same lines in every bucket.

#[path = "support/exporter.rs"]
mod exporter;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use exporter::Exporter;

/// The promise; bucket edges are these fractions of it (as the exporter's).
const PROMISE_MS: f64 = 300.0;
const FRACTIONS: [f64; 9] = [0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.5, 2.0, 5.0];

fn write_log(path: &Path, lines: usize) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("log"));
    let routes = ["/checkout", "/search", "/cart", "/login"];
    for i in 0..lines {
        // Half-millisecond values never sit on a bucket edge, so float
        // rounding cannot put a line in different buckets for the two tools.
        let ms = (i * 7919 % 2000) as f64 * 0.5 + 0.25;
        writeln!(out, "{} {ms}ms", routes[i % 4]).expect("write");
    }
}

fn mtail_program(dir: &Path) {
    let edges: Vec<String> = FRACTIONS
        .iter()
        .map(|f| format!("{}", f * PROMISE_MS / 1000.0))
        .collect();
    let prog = format!(
        "histogram request_seconds buckets {}\n\n/^(?P<route>\\S+) (?P<ms>\\d+\\.\\d+)ms$/ {{\n  request_seconds = $ms / 1000.0\n}}\n",
        edges.join(", ")
    );
    std::fs::create_dir_all(dir).expect("progs");
    std::fs::write(dir.join("requests.mtail"), prog).expect("program");
}

/// `durability`: `sync` is the default (every batch fsynced before the next
/// is read); `none` keeps state in snapshots only, as mtail keeps none.
fn exporter_config(log: &Path, durability: &str) -> String {
    format!(
        "version: 1\nslas:\n  - name: web\n    promise: {PROMISE_MS}ms\n    objective: 99%\n    durability: {durability}\n\
         sources:\n  log_tail:\n    - name: bench\n      paths: [\"{}\"]\n      start_at: beginning\n\
         \x20     regex: '^(?P<route>\\S+) (?P<ms>\\d+\\.\\d+)ms$'\n      sla: web\n      duration_field: ms\n      duration_unit: ms\n      poll_interval: 10ms\n",
        log.display()
    )
}

struct Run {
    wall: f64,
    cpu: f64,
    rss_kib: u64,
    /// Cumulative count per bucket edge, then +Inf.
    buckets: Vec<u64>,
}

fn run_mtail(progs: &Path, log: &Path) -> Run {
    let started = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%U %S %M"])
        .arg("mtail")
        .args([
            "--one_shot",
            "--one_shot_format=prometheus",
            "--logtostderr",
        ])
        .arg(format!("--progs={}", progs.display()))
        .arg(format!("--logs={}", log.display()))
        .output()
        .expect("run mtail (apt-get install mtail)");
    let wall = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let times: Vec<f64> = stderr
        .lines()
        .last()
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    assert!(times.len() == 3, "mtail failed: {stderr}");
    let mut buckets = vec![0; FRACTIONS.len() + 1];
    for line in stdout
        .lines()
        .filter(|l| l.starts_with("request_seconds_bucket"))
    {
        let le = line
            .split("le=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or("");
        let value: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let index = if le == "+Inf" {
            FRACTIONS.len()
        } else {
            let le: f64 = le.parse().expect("le");
            FRACTIONS
                .iter()
                .position(|f| (f * PROMISE_MS / 1000.0 - le).abs() < 1e-9)
                .expect("a known edge")
        };
        buckets[index] += value as u64;
    }
    Run {
        wall,
        cpu: times[0] + times[1],
        rss_kib: times[2] as u64,
        buckets,
    }
}

fn scrape(base: &str) -> String {
    ureq::get(format!("{base}/metrics"))
        .call()
        .and_then(|mut r| r.body_mut().with_config().limit(64 << 20).read_to_string())
        .unwrap_or_default()
}

fn sample(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

fn run_exporter(config: &Path, data: &Path, lines: usize) -> Run {
    let _ = std::fs::remove_dir_all(data);
    let started = Instant::now();
    let exporter = Exporter::start(config, data);
    let pid = exporter.child.id();
    let base = exporter.base.clone();
    let deadline = Instant::now() + Duration::from_secs(600);
    let text = loop {
        let text = scrape(&base);
        if sample(&text, "amaze_ingest_accepted_total{source=\"log\"}") as usize >= lines {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "exporter did not consume the log"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let wall = started.elapsed().as_secs_f64();
    // utime and stime, fields 14 and 15 of /proc/PID/stat, in clock ticks.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let mut buckets = Vec::new();
    for f in FRACTIONS {
        let le = f * PROMISE_MS / 1000.0;
        let v = text
            .lines()
            .filter(|l| l.starts_with("amaze_delivery_duration_seconds_bucket"))
            .find(|l| {
                l.split("le=\"")
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                    .and_then(|s| s.parse::<f64>().ok())
                    .is_some_and(|x| (x - le).abs() < 1e-9)
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0);
        buckets.push(v as u64);
    }
    buckets.push(sample(&text, "amaze_delivery_duration_seconds_count{sla=\"web\"}") as u64);
    exporter.kill();
    Run {
        wall,
        cpu,
        rss_kib,
        buckets,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let lines = args.first().copied().unwrap_or(1_000_000);
    let runs = args.get(1).copied().unwrap_or(3).max(1);
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("access.log");
    write_log(&log, lines);
    let progs = dir.path().join("progs");
    mtail_program(&progs);
    let config = dir.path().join("amaze.yaml");
    std::fs::write(&config, exporter_config(&log, "sync")).expect("config");
    let config_fast = dir.path().join("amaze-durability-none.yaml");
    std::fs::write(&config_fast, exporter_config(&log, "none")).expect("config");
    let mb = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
    println!("log_vs_mtail: {lines} lines ({mb:.1} MB), {runs} interleaved runs");
    let (mut mtail, mut ours, mut fast) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs {
        let m = run_mtail(&progs, &log);
        let o = run_exporter(&config, &dir.path().join("data"), lines);
        let f = run_exporter(&config_fast, &dir.path().join("data"), lines);
        println!(
            "run {i}: mtail {:.2} s wall, {:.2} s CPU, {} MiB | sync {:.2} s, {:.2} s CPU, {} MiB | durability none {:.2} s, {:.2} s CPU, {} MiB",
            m.wall,
            m.cpu,
            m.rss_kib / 1024,
            o.wall,
            o.cpu,
            o.rss_kib / 1024,
            f.wall,
            f.cpu,
            f.rss_kib / 1024
        );
        assert_eq!(
            m.buckets, o.buckets,
            "bucket counts differ (mtail vs durability sync)"
        );
        assert_eq!(
            m.buckets, f.buckets,
            "bucket counts differ (mtail vs durability none)"
        );
        mtail.push(m);
        ours.push(o);
        fast.push(f);
    }
    let n = lines as f64;
    let report = |name: &str, runs: &[Run]| {
        let wall = median(runs.iter().map(|r| r.wall).collect());
        let cpu = median(runs.iter().map(|r| r.cpu).collect());
        let rss = median(runs.iter().map(|r| r.rss_kib as f64).collect());
        println!(
            "{name:<15} median {wall:>6.2} s wall, {:>10.0} lines/s, {:>6.2} CPU s per million lines, {:>5.0} MiB peak RSS",
            n / wall,
            cpu / n * 1e6,
            rss / 1024.0
        );
        (wall, cpu)
    };
    let (mw, mc) = report("mtail", &mtail);
    let (ow, oc) = report("sync", &ours);
    let (fw, fc) = report("durability none", &fast);
    println!(
        "vs mtail: sync {:.1}x the lines/s, {:.3} of the CPU per line; durability none {:.1}x, {:.3}; buckets identical: {:?}",
        mw / ow,
        oc / mc,
        mw / fw,
        fc / mc,
        ours[0].buckets
    );
}
