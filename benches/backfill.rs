//! Backfill and the managers' view through the release binary.
//!
//! `cargo bench --bench backfill [-- ROWS]` (default 1,000,000). The data:
//! ROWS tickets of one SLA labelled by priority (P1/P2/P3 promises 1h, 4h,
//! 8h) and channel, each with an id, durations 2 minutes to 12 hours
//! (log-spread), written as NDJSON in the push format. Measured in one run:
//! - baseline: the rows dated within the last 30 days, pushed straight to
//!   `POST /api/v1/deliveries` in chunks of 10,000 by this process;
//! - `amaze-exporter import` of the same rows to a running exporter (both
//!   passes: every row checked, then recorded), then again (all duplicates);
//! - `import` of the rows spread over 400 days (history only past 30 days)
//!   to a running exporter, and offline into a state directory;
//! - what the history costs: `amaze_window_memory_bytes` and the snapshot's
//!   size with 400 days of history against the 30-day exporter;
//! - the status page, a month's report and the advice with that history.

#[path = "support/exporter.rs"]
mod exporter;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use exporter::Exporter;

const CONFIG: &str = "version: 1
slas:
  - name: desk
    promise: 8h
    objective: 95%
    target_margin: 50%
    window: 30d
    labels: [priority, channel]
    goals:
      - match: {priority: P1}
        promise: 1h
      - match: {priority: P2}
        promise: 4h
";

const DAY: i64 = 86_400_000;

fn rows(n: usize, now: i64, days: i64) -> String {
    let mut s = String::with_capacity(n * 150);
    for i in 0..n as i64 {
        let at = now - 60_000 - i * (days * DAY - 2 * 3_600_000) / n as i64;
        // 2 minutes to 12 hours, spread evenly in log scale.
        let u = ((i * 7919) % 1000) as f64 / 1000.0;
        let seconds = (120.0 * 360f64.powf(u)) as i64;
        let at = jiff::Timestamp::from_millisecond(at).unwrap();
        s.push_str(&format!(
            "{{\"sla\":\"desk\",\"id\":\"t{i}\",\"duration_seconds\":{seconds},\"labels\":{{\"priority\":\"P{}\",\"channel\":\"{}\"}},\"delivered_at\":\"{at}\"}}\n",
            1 + i % 3,
            if i % 2 == 0 { "email" } else { "chat" }
        ));
    }
    s
}

fn import(file: &Path, extra: &[String]) -> (Duration, String) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_amaze-exporter"))
        .arg("import")
        .arg(file)
        .args(extra)
        .output()
        .expect("run import");
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (took, String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn get(agent: &ureq::Agent, url: &str) -> String {
    agent
        .get(url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap()
}

fn metric(agent: &ureq::Agent, base: &str, name: &str) -> f64 {
    get(agent, &format!("{base}/metrics"))
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Median of `n` timed GETs, in milliseconds.
fn latency(agent: &ureq::Agent, url: &str, n: usize) -> f64 {
    let mut times: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            get(agent, url);
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[n / 2]
}

fn snapshot_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".snap"))
        .map(|e| e.metadata().unwrap().len())
        .max()
        .unwrap_or(0)
}

fn rate(rows: usize, took: Duration) -> String {
    format!(
        "{:>9.0} rows/s ({:.2} s)",
        rows as f64 / took.as_secs_f64(),
        took.as_secs_f64()
    )
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("amaze.yaml");
    std::fs::write(&config, CONFIG).unwrap();
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(300)))
        .build()
        .new_agent();
    let now = jiff::Timestamp::now().as_millisecond();
    let recent = rows(n, now, 30);
    let year = rows(n, now, 399);
    let recent_file = dir.path().join("recent.ndjson");
    let year_file = dir.path().join("year.ndjson");
    std::fs::File::create(&recent_file)
        .unwrap()
        .write_all(recent.as_bytes())
        .unwrap();
    std::fs::File::create(&year_file)
        .unwrap()
        .write_all(year.as_bytes())
        .unwrap();
    println!(
        "backfill: {n} rows, {:.0} MB of NDJSON per file, one labelled SLA with goals, 2 cores",
        recent.len() as f64 / 1e6
    );

    // Baseline: the 30-day rows pushed straight over HTTP.
    let pushed = Exporter::start(&config, &dir.path().join("pushed"));
    let chunks: Vec<String> = recent
        .lines()
        .collect::<Vec<_>>()
        .chunks(10_000)
        .map(|c| c.join("\n") + "\n")
        .collect();
    let started = Instant::now();
    for body in &chunks {
        let r = agent
            .post(format!("{}/api/v1/deliveries", pushed.base))
            .header("content-type", "application/x-ndjson")
            .send(body.as_bytes())
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let push_took = started.elapsed();
    let memory_30d = metric(&agent, &pushed.base, "amaze_window_memory_bytes ");
    println!("  baseline: push, 30 days          {}", rate(n, push_took));

    let imported = Exporter::start(&config, &dir.path().join("imported"));
    let target = format!("--target={}", imported.base);
    let (took, said) = import(&recent_file, std::slice::from_ref(&target));
    println!(
        "  import, 30 days (check + record) {}  {said}",
        rate(n, took)
    );
    let (took, said) = import(&recent_file, std::slice::from_ref(&target));
    println!(
        "  import again (all duplicates)    {}  {said}",
        rate(n, took)
    );
    let same = get(&agent, &format!("{}/api/v1/slas", imported.base))
        == get(&agent, &format!("{}/api/v1/slas", pushed.base));
    println!("  figures equal the push's: {same}");
    let mut child = pushed.child;
    terminate(&child);
    let _ = child.wait();
    let snapshot_30d = snapshot_bytes(&dir.path().join("pushed"));
    imported.kill();

    let history = Exporter::start(&config, &dir.path().join("history"));
    let (took, said) = import(&year_file, &[format!("--target={}", history.base)]);
    println!(
        "  import, 400 days                 {}  {said}",
        rate(n, took)
    );
    let memory_year = metric(&agent, &history.base, "amaze_window_memory_bytes ");
    println!(
        "  window and history memory: {:.1} MB with 400 days of history, {:.1} MB for the 30-day push",
        memory_year / 1e6,
        memory_30d / 1e6
    );
    let month = jiff::Zoned::now()
        .with_time_zone(jiff::tz::TimeZone::UTC)
        .date()
        .first_of_month()
        .yesterday()
        .unwrap();
    let month = month.strftime("%Y-%m").to_string();
    for (what, path) in [
        ("status page", "/".to_owned()),
        ("month report", format!("/api/v1/report?month={month}")),
        ("advice", "/api/v1/advice?sla=desk&promise=6h".to_owned()),
        ("baseline: /-/healthy", "/-/healthy".to_owned()),
    ] {
        println!(
            "  {what:<22} {:>7.2} ms (median of 20)",
            latency(&agent, &format!("{}{path}", history.base), 20)
        );
    }
    let mut child = history.child;
    terminate(&child);
    let _ = child.wait();
    let offline_dir = dir.path().join("offline");
    let (took, said) = import(
        &year_file,
        &[
            format!("--storage.path={}", offline_dir.display()),
            format!("--config.file={}", config.display()),
        ],
    );
    println!(
        "  import, 400 days, offline        {}  {said}",
        rate(n, took)
    );
    println!(
        "  snapshot: {:.1} MB with 400 days of history (offline import's final snapshot), {:.1} MB for the 30-day push",
        snapshot_bytes(&offline_dir) as f64 / 1e6,
        snapshot_30d as f64 / 1e6
    );
}

/// SIGTERM, for a final snapshot.
fn terminate(child: &std::process::Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
}
