//! In-process recording throughput, and scrape cost for 1,000 series.
//!
//! `cargo bench --bench record`. Baselines measured in the same run: a bare
//! sketch insert (the floor any recording pays) and a plain Vec push.

use std::hint::black_box;
use std::sync::Arc;

use amaze_exporter::config::Config;
use amaze_exporter::delivery::{Delivery, Input, Timing};
use amaze_exporter::exposition::{self, SelfMetrics};
use amaze_exporter::recorder::Recorder;
use amaze_exporter::sla::Catalog;
use amaze_exporter::window::{Digest, Observation};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

// The same allocator as the binary, so figures match what it does.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const NOW: i64 = 1_800_000_000_000;
const BATCH: usize = 10_000;

fn catalog(max_series: usize) -> Arc<Catalog> {
    let yaml = format!(
        "version: 1\nslas:\n  - name: api\n    promise: 300ms\n    objective: 99%\n    target_margin: 50%\n    labels: [route]\n    max_series: {max_series}\n  - name: plain\n    promise: 1s\n    objective: 99%\n"
    );
    Arc::new(
        Config::parse(&yaml)
            .expect("bench config is valid")
            .catalog(),
    )
}

/// Deterministic latencies spread over 5ms..400ms.
fn seconds(i: usize) -> f64 {
    0.005 + ((i * 7919) % 1000) as f64 * 0.000_395
}

fn batch(catalog: &Catalog, sla: &str, routes: usize) -> Vec<Delivery> {
    let names: Vec<String> = (0..routes).map(|r| format!("/route/{r}")).collect();
    (0..BATCH)
        .map(|i| {
            let labels = if sla == "api" {
                vec![("route", names[i % routes].as_str())]
            } else {
                vec![]
            };
            let input = Input {
                sla,
                labels: &labels,
                timing: Timing::Took {
                    took: std::time::Duration::from_secs_f64(seconds(i)),
                    at: Some(NOW),
                },
                id: None,
            };
            catalog
                .admit(&input, NOW + 60_000)
                .expect("bench delivery is valid")
        })
        .collect()
}

fn record(c: &mut Criterion) {
    let mut g = c.benchmark_group("record");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("baseline_vec_push", |b| {
        let mut v = Vec::with_capacity(BATCH);
        b.iter(|| {
            v.clear();
            for i in 0..BATCH {
                v.push(black_box(seconds(i)));
            }
        })
    });
    g.bench_function("baseline_sketch_insert", |b| {
        let mut d = Digest::new();
        b.iter(|| {
            for i in 0..BATCH {
                d.record(Observation::Delivered {
                    relative: black_box(seconds(i) / 0.3),
                    late: false,
                    amazing: false,
                });
            }
        })
    });
    let cat = catalog(1000);
    for (name, sla, routes) in [("no_labels", "plain", 1), ("10_label_sets", "api", 10)] {
        let recorder = Recorder::new(cat.clone());
        let deliveries = batch(&cat, sla, routes);
        g.bench_function(name, |b| {
            b.iter(|| recorder.record(black_box(&deliveries), NOW + 60_000, None))
        });
    }
    g.finish();
}

fn scrape(c: &mut Criterion) {
    let cat = catalog(1000);
    let recorder = Recorder::new(cat.clone());
    // 1,000 label sets, each with deliveries spread over the last 30 days so
    // every window and slot is populated.
    let names: Vec<String> = (0..1000).map(|r| format!("/route/{r}")).collect();
    let day = 86_400_000i64;
    let mut deliveries = Vec::new();
    for (r, name) in names.iter().enumerate() {
        for k in 0..200usize {
            let labels = [("route", name.as_str())];
            let at = NOW - (k as i64 * 30 * day / 200) - (r as i64 % 30) * 1000;
            let input = Input {
                sla: "api",
                labels: &labels,
                timing: Timing::Took {
                    took: std::time::Duration::from_secs_f64(seconds(r * 200 + k)),
                    at: Some(at),
                },
                id: None,
            };
            deliveries.push(cat.admit(&input, NOW).expect("valid"));
        }
    }
    deliveries.sort_by_key(|d| d.at);
    recorder.record(&deliveries, NOW, None);
    let metrics = SelfMetrics::new().expect("metrics register");
    let text = exposition::render(&recorder, &metrics, NOW).expect("renders");
    eprintln!(
        "scrape: {} bytes, {} lines, window memory {} bytes",
        text.len(),
        text.lines().count(),
        recorder.heap_bytes()
    );
    let mut g = c.benchmark_group("scrape_1000_series");
    g.sample_size(20);
    g.bench_function("report_only", |b| {
        b.iter(|| black_box(recorder.report(NOW)))
    });
    g.bench_function("families_only", |b| {
        b.iter(|| {
            let reports = recorder.report(NOW);
            let mut f = exposition::collector::Families::default();
            exposition::collector::collect(recorder.catalog(), &reports, &mut f);
            black_box(f.into_vec())
        })
    });
    g.bench_function("render", |b| {
        b.iter(|| black_box(exposition::render(&recorder, &metrics, NOW)))
    });
    // Cold: every window cache invalidated by moving to a new slot each time.
    g.bench_function("render_cold", |b| {
        b.iter_batched(
            || {
                let r = Recorder::new(cat.clone());
                r.record(&deliveries, NOW, None);
                r
            },
            |r| black_box(exposition::render(&r, &metrics, NOW)),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, record, scrape);
criterion_main!(benches);
