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
#[path = "support/state.rs"]
mod state;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use exporter::Exporter;

use amaze_exporter::config::Config;

const SLAS: usize = 100;
const LABEL_SETS: usize = 10;

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
    let slas: Vec<_> = (0..SLAS)
        .map(|s| {
            (
                format!("sla_{s}"),
                Duration::from_millis(100 + s as u64 * 10),
            )
        })
        .collect();
    let deliveries = state::build(&data, catalog, &slas, LABEL_SETS, 30);
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
