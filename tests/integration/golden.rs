//! The golden `/metrics`: a fixed config, fixed deliveries and events and an
//! injected clock render byte for byte as `tests/golden/metrics.txt`, which
//! `promtool check metrics` accepts. `AMAZE_BLESS=1` writes it after an
//! intended change; review the diff like code.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use amaze_exporter::config::Config;
use amaze_exporter::delivery::{EventInput, Input, Kind, Timing};
use amaze_exporter::exposition::{SelfMetrics, render};
use amaze_exporter::recorder::Recorder;
use amaze_exporter::source::Source;
use amaze_exporter::window::Millis;

use crate::server::tool_available;

fn golden() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// The exposition of the golden state at its fixed instant.
fn golden_text() -> String {
    let yaml = std::fs::read_to_string(golden().join("config.yaml")).unwrap();
    let catalog = Arc::new(Config::parse(&yaml).unwrap().catalog());
    let recorder = Recorder::new(catalog.clone());
    // Monday 2026-11-23 14:00 in Berlin.
    let now: Millis = "2026-11-23T13:00:00Z"
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_millisecond();
    let mut batch = Vec::new();
    let mut admit = |sla, labels: &[(&str, &str)], timing| {
        let input = Input {
            sla,
            labels,
            timing,
            id: None,
        };
        batch.push(catalog.admit(&input, now).unwrap());
    };
    for i in 0..400i64 {
        let route = ["/checkout", "/search", "/cart"][i as usize % 3];
        let ms = 20 + (i * 7919) % 260 + if i % 97 == 0 { 200 } else { 0 };
        let took = Duration::from_millis(ms as u64);
        admit(
            "api",
            &[("route", route)],
            Timing::Took {
                took,
                at: Some(now - i * 97_000),
            },
        );
    }
    for i in 0..40i64 {
        let priority = ["P1", "P2"][i as usize % 2];
        let took = Duration::from_secs(600 + (i as u64 * 1_327) % 10_800);
        admit(
            "tickets",
            &[("priority", priority)],
            Timing::Took {
                took,
                at: Some(now - i * 3_600_000),
            },
        );
    }
    for i in 0..30i64 {
        let timing = if i == 7 {
            Timing::Failed {
                at: Some(now - i * 7_200_000),
            }
        } else {
            let took = Duration::from_secs(3600 * (12 + (i as u64 * 5) % 40));
            Timing::Took {
                took,
                at: Some(now - i * 7_200_000),
            }
        };
        admit("shipping", &[], timing);
    }
    recorder.record(&batch, now, None);
    let event = |id, kind, hours_ago: i64| {
        let input = EventInput {
            sla: "tickets",
            id,
            kind,
            labels: if kind == Kind::Start {
                &[("priority", "P1")]
            } else {
                &[]
            },
            failed: false,
            at: Some(now - hours_ago * 3_600_000),
        };
        catalog.admit_event(&input, now).unwrap()
    };
    let events = [
        event("T-1", Kind::Start, 3),
        event("T-2", Kind::Start, 1),
        event("T-2", Kind::Pause, 0),
    ];
    recorder.apply_events(&events, now, None);
    // The exporter's own counters as a fresh start has them, every source
    // the config configures pre-created.
    let metrics = SelfMetrics::new().unwrap();
    for source in [Source::Http, Source::Events, Source::Reload] {
        metrics.register_source(source);
    }
    metrics.accepted(Source::Http, 470);
    let text = render(&recorder, &metrics, now).unwrap();
    without_volatile(&text)
}

/// Families that differ between runs of the same build: process figures,
/// timings and memory, and the build itself.
const VOLATILE: [&str; 4] = [
    "process_",
    "amaze_build_info",
    "amaze_report_duration_seconds",
    "amaze_window_memory_bytes",
];

/// `text` without the [`VOLATILE`] families (their HELP, TYPE and samples).
fn without_volatile(text: &str) -> String {
    text.lines()
        .filter(|l| {
            let name = l
                .strip_prefix("# HELP ")
                .or_else(|| l.strip_prefix("# TYPE "))
                .unwrap_or(l);
            !VOLATILE.iter().any(|v| name.starts_with(v))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn metrics_render_byte_for_byte_as_the_golden_text() {
    let text = golden_text();
    assert_eq!(text, golden_text(), "rendering is deterministic");
    let path = golden().join("metrics.txt");
    if std::env::var("AMAZE_BLESS").as_deref() == Ok("1") {
        std::fs::write(&path, &text).unwrap();
    }
    let want =
        std::fs::read_to_string(&path).expect("tests/golden/metrics.txt (AMAZE_BLESS=1 writes it)");
    if text != want {
        let first = text
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(text.lines().count().min(want.lines().count()));
        panic!(
            "/metrics differs from tests/golden/metrics.txt at line {}:\n  now:    {}\n  golden: {}\nIf the change is intended, run with AMAZE_BLESS=1 and review the diff.",
            first + 1,
            text.lines().nth(first).unwrap_or("(end)"),
            want.lines().nth(first).unwrap_or("(end)")
        );
    }
    if tool_available("promtool") {
        crate::promtool::check_metrics(&want);
    }
}
