//! State written by every release format (`tests/fixtures/state/v*`, made by
//! `generate.sh` with the release that wrote each) loads with the figures it
//! was written with: a snapshot of batch A, and batch B in the log after it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use amaze_exporter::clock::Clock;
use amaze_exporter::config::Config;
use amaze_exporter::decimal::Decimal;
use amaze_exporter::exposition::SelfMetrics;
use amaze_exporter::persist::{Options, Storage};
use amaze_exporter::sla::LiveCatalog;
use amaze_exporter::window::Millis;

/// Every snapshot format version with a fixture; the newest must be the
/// current one. Log records moved with snapshots up to version 4 and have
/// not changed since.
const VERSIONS: [u32; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

#[test]
fn the_current_format_versions_have_fixtures() {
    use amaze_exporter::persist::{RECORD_VERSION, SNAPSHOT_VERSION};
    assert_eq!(VERSIONS.last(), Some(&SNAPSHOT_VERSION));
    assert_eq!(RECORD_VERSION, 4);
    for v in VERSIONS {
        assert!(
            dir().join(format!("v{v}")).is_dir(),
            "no fixture for version {v}: run generate.sh"
        );
    }
}

struct Fixed(Millis);

impl Clock for Fixed {
    fn now(&self) -> Millis {
        self.0
    }
}

fn dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state")
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// The deliveries `generate.sh` pushed (and, from version 2, the log lines
/// it wrote), as (route, milliseconds or `None` for failed), duplicates
/// left out.
fn pushed(version: u32) -> Vec<(&'static str, Option<u64>)> {
    let mut out = Vec::new();
    for i in 0..200u64 {
        let route = if i % 3 == 0 { "/b" } else { "/a" };
        out.push((route, Some((i * 37) % 299 * 2 + 2)));
    }
    for i in 0..100u64 {
        if i % 20 == 0 {
            out.push(("/a", None));
        } else {
            out.push(("/c", Some(i * 5 + 1)));
        }
    }
    if version >= 2 {
        for offset in [0, 5] {
            out.extend((1..=10).map(|i| ("/log", Some(i * 10 + offset))));
        }
    }
    out
}

#[test]
fn state_of_every_format_version_loads_with_its_figures() {
    let text = std::fs::read_to_string(dir().join("config.yaml")).unwrap();
    let text = text.replace("LOGS", "/nonexistent");
    let catalog = Arc::new(Config::parse(&text).unwrap().catalog());
    let now: Millis = "2026-11-20T12:05:00Z"
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_millisecond();
    for version in VERSIONS {
        let expected = pushed(version);
        let home = tempfile::tempdir().unwrap();
        let data = home.path().join("data");
        copy(&dir().join(format!("v{version}")), &data);
        let options = Options {
            path: data,
            snapshot_interval: Duration::from_secs(3600),
            snapshot_log_bytes: u64::MAX,
        };
        let metrics = SelfMetrics::new().unwrap();
        let (storage, recovery) = Storage::open(
            &options,
            LiveCatalog::new(catalog.clone()),
            Arc::new(Fixed(now)),
            metrics.storage,
        )
        .unwrap_or_else(|e| panic!("version {version}: {e}"));
        assert!(
            recovery.snapshot.is_some(),
            "version {version}: no snapshot"
        );
        assert!(recovery.records >= 1, "version {version}: batch B replayed");
        let logged = if version >= 2 { 111 } else { 101 };
        assert_eq!(recovery.deliveries, logged, "version {version}");
        let recorder = storage.journal().recorder();
        let reports = recorder.report(now);
        let report = &reports[0];
        let day = report.windows.iter().position(|w| w.label == "1d").unwrap();
        let figures = &report.aggregate[day];
        let late = expected
            .iter()
            .filter(|(_, ms)| ms.is_none_or(|ms| ms > 300))
            .count() as u64;
        assert_eq!(
            figures.deliveries,
            expected.len() as u64,
            "version {version}"
        );
        assert_eq!(figures.bad, late, "version {version}");
        let routes: &[&str] = if version >= 2 {
            &["/a", "/b", "/c", "/log"]
        } else {
            &["/a", "/b", "/c"]
        };
        for route in routes {
            let mine: Vec<Option<u64>> = expected
                .iter()
                .filter(|(r, _)| r == route)
                .map(|(_, ms)| *ms)
                .collect();
            let s = report
                .series
                .iter()
                .find(|s| &*s.key == *route)
                .unwrap_or_else(|| panic!("version {version}: no series {route}"));
            let c = &s.counters;
            let failed = mine.iter().filter(|m| m.is_none()).count() as u64;
            let late = mine.iter().filter(|m| m.is_some_and(|ms| ms > 300)).count() as u64;
            assert_eq!(
                (c.within + c.late + c.failed, c.late, c.failed),
                (mine.len() as u64, late, failed),
                "version {version} {route}"
            );
            // Native buckets are kept from version 5; older state starts
            // them with the log replayed after its snapshot.
            let native = c.native.count();
            if version >= 5 {
                assert_eq!(native, mine.len() as u64, "version {version} {route}");
            } else {
                assert!(native <= mine.len() as u64, "version {version} {route}");
            }
        }
        // History is kept from version 7: every delivery in its day and
        // hour (all of them completed on 2026-11-20, 11:00 to 11:59 UTC).
        // Older state starts it with the log replayed after its snapshot.
        let (days, hours) = recorder
            .with_history(0, |_, h| {
                let days: u64 = h.days().map(|(_, d)| d.count()).sum();
                let hours: u64 = h.hours_from(0).map(|(_, d)| d.count()).sum();
                (days, hours)
            })
            .unwrap();
        if version >= 7 {
            assert_eq!(
                (days, hours),
                (expected.len() as u64, expected.len() as u64)
            );
        } else {
            assert!(
                days <= expected.len() as u64 && days == hours,
                "version {version}"
            );
        }
        // Quantiles of r over the restored sketches, against the exact
        // nearest-rank values (failures last).
        // The log tail's read position (from version 2) and open
        // deliveries (from version 3) came through too.
        assert_eq!(
            recorder.mark("log_tail/web").is_some(),
            version >= 2,
            "version {version}"
        );
        let open = recorder.open_items(now, |_| true);
        let desk = &reports[1].aggregate[day];
        if version >= 3 {
            let listed: Vec<(&str, f64, bool)> = open
                .iter()
                .map(|v| (v.id.as_str(), v.elapsed_seconds, v.paused))
                .collect();
            // T-2: 30 minutes before its pause, 10 since it resumed; T-3:
            // 45 minutes; T-1 finished after 50 minutes, within its hour.
            assert_eq!(
                listed,
                [("T-3", 2700.0, false), ("T-2", 2400.0, false)],
                "version {version}"
            );
            assert_eq!((desk.deliveries, desk.bad), (1, 0), "version {version}");
            // A reload lowering the desk's promise to 20 minutes: T-2 reached
            // it at 11:30, before its pause. From version 8 the clock's
            // stretches say so; before, the instant is unknown and T-2 leads.
            let lowered = text.replace("promise: 1h", "promise: 20m");
            let lowered = Arc::new(Config::parse(&lowered).unwrap().catalog());
            let reloaded = recorder.reconfigure(lowered);
            let open = reloaded.open_items(now, |_| true);
            let due: Vec<(&str, Option<&str>)> = open
                .iter()
                .map(|v| (v.id.as_str(), v.due_at.as_deref()))
                .collect();
            let t2 = if version >= 8 {
                ("T-2", Some("2026-11-20T11:30:00Z"))
            } else {
                ("T-2", None)
            };
            let t3 = ("T-3", Some("2026-11-20T11:40:00Z"));
            assert_eq!(due, [t2, t3], "version {version}");
        } else {
            assert!(open.is_empty());
            assert_eq!(desk.deliveries, 0);
        }
        let mut relative: Vec<f64> = expected
            .iter()
            .map(|(_, ms)| ms.map_or(f64::INFINITY, |ms| ms as f64 / 300.0))
            .collect();
        relative.sort_by(f64::total_cmp);
        let assessed = figures.assessment.as_ref().unwrap();
        for (q, got) in &assessed.quantiles {
            let exact = relative[Decimal::rank(*q, relative.len() as u64) as usize - 1];
            let ok = if exact.is_infinite() {
                got.is_infinite()
            } else {
                (got - exact).abs() <= exact * 0.01 + 1e-12
            };
            assert!(ok, "version {version} q={q}: {got} against {exact}");
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(storage.close());
    }
}
