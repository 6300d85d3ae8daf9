//! State with every window busy, built through the library's own storage
//! (journal, log, final snapshot) for the load benches to serve.
//!
//! Included by each bench with `#[path = "support/state.rs"] mod state;`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use amaze_exporter::clock::{Clock, SystemClock};
use amaze_exporter::delivery::{Input, Timing};
use amaze_exporter::exposition::SelfMetrics;
use amaze_exporter::persist::{Batch, Options, Pending, Storage};
use amaze_exporter::sla::{Catalog, LiveCatalog};

const MINUTE: i64 = 60_000;
const DAY: i64 = 1440 * MINUTE;
/// Deliveries committed together.
const BATCH: usize = 10_000;

/// Completion times for one series: every 10 minutes over `days`, and every
/// 15 seconds over the last 6 hours, so every slot of every ring holds data.
fn times(now: i64, days: i64) -> impl Iterator<Item = i64> {
    let sparse = (1..days * 144).map(move |k| now - days * DAY + MINUTE + k * 10 * MINUTE);
    let dense = (0..6 * 240).map(move |k| now - 6 * 60 * MINUTE + k * 15_000);
    sparse.chain(dense).filter(move |t| *t <= now)
}

/// Writes to `dir` the deliveries of `label_sets` routes (`route` label,
/// `/route/N`) for each of `slas` (name and promise) over `days`: spread
/// over 0.05 to 2 times the promise, skewed fast. Returns how many.
pub fn build(
    dir: &Path,
    catalog: Arc<Catalog>,
    slas: &[(String, Duration)],
    label_sets: usize,
    days: i64,
) -> u64 {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let metrics = SelfMetrics::new().expect("metrics");
    let now = SystemClock.now();
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
        let commit = |batch: Vec<_>| {
            let pending = Pending::new(catalog.clone(), Batch::deliveries(batch), now);
            let journal = storage.journal().clone();
            async move { journal.commit(pending).await.expect("commit") }
        };
        for (name, promise) in slas {
            let mut batch = Vec::new();
            for l in 0..label_sets {
                let route = format!("/route/{l}");
                for (k, at) in times(now, days).enumerate() {
                    let u = ((k * 7919 + l * 104_729) % 10_000) as f64 / 10_000.0;
                    let input = Input {
                        sla: name,
                        labels: &[("route", &route)],
                        timing: Timing::Took {
                            took: promise.mul_f64(0.05 * 40f64.powf(u * u)),
                            at: Some(at),
                        },
                        id: None,
                    };
                    batch.push(catalog.admit(&input, now).expect("admissible"));
                    if batch.len() == BATCH {
                        total += batch.len() as u64;
                        commit(std::mem::take(&mut batch)).await;
                    }
                }
            }
            total += batch.len() as u64;
            commit(batch).await;
        }
        storage.close().await;
    });
    total
}
