//! Restart time with 30 days of state: 100 SLAs x 10 label sets.
//!
//! `cargo bench --bench restart`. Builds the state through the library's own
//! storage (journal, log, final snapshot), then times the release binary from
//! spawn to "listening", several times each:
//! - baseline: the same binary on an empty state directory;
//! - snapshot: the state above, restored from its snapshot;
//! - log only: the snapshots moved away, so every logged delivery is replayed.

#[path = "support/exporter.rs"]
mod exporter;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use exporter::Exporter;

use amaze_exporter::clock::{Clock, SystemClock};
use amaze_exporter::config::Config;
use amaze_exporter::delivery::{Input, Timing};
use amaze_exporter::exposition::SelfMetrics;
use amaze_exporter::persist::{Batch, Options, Pending, Storage};
use amaze_exporter::sla::{Catalog, LiveCatalog};

const SLAS: usize = 100;
const LABEL_SETS: usize = 10;
const MINUTE: i64 = 60_000;
const DAY: i64 = 1440 * MINUTE;

fn config() -> String {
    let mut c = String::from("version: 1\nslas:\n");
    for i in 0..SLAS {
        c.push_str(&format!(
            "  - name: sla_{i}\n    promise: {}ms\n    objective: 99%\n    target_margin: 50%\n    window: 30d\n    labels: [route]\n",
            100 + i * 10
        ));
    }
    c
}

/// Completion times for one series: every 10 minutes over 30 days, and
/// every 15 seconds over the last 6 hours, so every slot of every ring holds data.
fn times(now: i64) -> impl Iterator<Item = i64> {
    let sparse = (1..30 * 144).map(move |k| now - 30 * DAY + MINUTE + k * 10 * MINUTE);
    let dense = (0..6 * 240).map(move |k| now - 6 * 60 * MINUTE + k * 15_000);
    sparse.chain(dense).filter(move |t| *t <= now)
}

fn build(dir: &Path, catalog: Arc<Catalog>) -> u64 {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let metrics = SelfMetrics::new().expect("metrics");
    let clock = SystemClock;
    let now = clock.now();
    let options = Options {
        path: dir.to_owned(),
        snapshot_interval: Duration::from_secs(3600),
        snapshot_log_bytes: u64::MAX,
    };
    let (storage, _) = Storage::open(
        &options,
        LiveCatalog::new(catalog.clone()),
        Arc::new(SystemClock),
        metrics.storage,
    )
    .expect("open storage");
    let mut total = 0;
    runtime.block_on(async {
        for s in 0..SLAS {
            let name = format!("sla_{s}");
            let promise = (100 + s * 10) as f64 / 1000.0;
            let mut batch = Vec::new();
            for l in 0..LABEL_SETS {
                let route = format!("/route/{l}");
                for (k, at) in times(now).enumerate() {
                    // Spread over 0.05..2 x the promise, skewed fast.
                    let u = ((k * 7919 + l * 104_729) % 10_000) as f64 / 10_000.0;
                    let seconds = promise * 0.05 * 40f64.powf(u * u);
                    let input = Input {
                        sla: &name,
                        labels: &[("route", &route)],
                        timing: Timing::Took {
                            took: std::time::Duration::from_secs_f64(seconds),
                            at: Some(at),
                        },
                        id: None,
                    };
                    batch.push(catalog.admit(&input, now).expect("admissible"));
                    if batch.len() == 10_000 {
                        total += batch.len() as u64;
                        let batch = Batch::deliveries(std::mem::take(&mut batch));
                        let pending = Pending::new(catalog.clone(), batch, now);
                        storage.journal().commit(pending).await.expect("commit");
                    }
                }
            }
            total += batch.len() as u64;
            let pending = Pending::new(catalog.clone(), Batch::deliveries(batch), now);
            storage.journal().commit(pending).await.expect("commit");
        }
        storage.close().await;
    });
    total
}

/// Spawns the binary, returns (spawn-to-listening, the restore time it logged).
fn start(config: &Path, data: &Path) -> (Duration, String) {
    let exporter = Exporter::start(config, data);
    let measured = (exporter.startup, exporter.took.clone().unwrap_or_default());
    // kill -9: a clean stop would write yet another snapshot.
    exporter.kill();
    measured
}

fn size(dir: &Path, ext: &str) -> u64 {
    walk(dir)
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

fn walk(dir: &Path) -> impl Iterator<Item = std::path::PathBuf> {
    let mut all = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                all.push(p);
            }
        }
    }
    all.into_iter()
}

fn report(what: &str, runs: &[(Duration, String)], baseline: f64) -> f64 {
    let mut secs: Vec<f64> = runs.iter().map(|r| r.0.as_secs_f64()).collect();
    secs.sort_by(f64::total_cmp);
    let median = secs[secs.len() / 2];
    let logged: Vec<&str> = runs.iter().map(|r| r.1.as_str()).collect();
    println!(
        "{what:<28} median {:>8.1} ms to listening ({:>6.1}x baseline); restore logged {:?}",
        median * 1000.0,
        if baseline > 0.0 {
            median / baseline
        } else {
            1.0
        },
        logged
    );
    median
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config_path = dir.path().join("amaze.yaml");
    std::fs::write(&config_path, config()).expect("write config");
    let catalog = Arc::new(Config::parse(&config()).expect("config").catalog());
    let data = dir.path().join("data");
    let empty = dir.path().join("empty");

    let built = Instant::now();
    let deliveries = build(&data, catalog);
    println!(
        "restart: {SLAS} SLAs x {LABEL_SETS} label sets, {deliveries} deliveries over 30 days, built in {:.1} s; snapshot {:.1} MB, log {:.1} MB",
        built.elapsed().as_secs_f64(),
        size(&data, "snap") as f64 / 1e6,
        size(&data, "wal") as f64 / 1e6,
    );
    let runs = 5;
    let baseline: Vec<_> = (0..runs)
        .map(|_| {
            let _ = std::fs::remove_dir_all(&empty);
            start(&config_path, &empty)
        })
        .collect();
    let base = report("baseline (empty state)", &baseline, 0.0);
    std::thread::sleep(Duration::from_secs(3));
    let snap: Vec<_> = (0..runs).map(|_| start(&config_path, &data)).collect();
    report("snapshot + empty log tail", &snap, base);
    let moved = dir.path().join("moved");
    std::fs::create_dir_all(&moved).expect("mkdir");
    for p in walk(&data).filter(|p| p.extension().is_some_and(|e| e == "snap")) {
        std::fs::rename(&p, moved.join(p.file_name().expect("name"))).expect("move snapshot");
    }
    // Each start from the log alone writes no snapshot (killed), so all replay.
    let replay: Vec<_> = (0..3).map(|_| start(&config_path, &data)).collect();
    let secs = report("log only (full replay)", &replay, base);
    println!(
        "replay rate: {:.2} M deliveries/s",
        deliveries as f64 / secs / 1e6
    );
    // AMAZE_KEEP=1 leaves the state behind, for profiling a start by hand.
    if std::env::var("AMAZE_KEEP").as_deref() == Ok("1") {
        for p in walk(&moved) {
            let _ = std::fs::rename(&p, data.join(p.file_name().expect("name")));
        }
        println!("state kept in {}", dir.keep().display());
    }
}
