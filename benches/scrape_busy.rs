//! `/metrics` with every window of every label set busy.
//!
//! `cargo bench --bench scrape_busy [-- LABEL_SETS...]` (default 1000 and
//! 10000). State per label set: a delivery every 10 minutes over 29 days and
//! every 15 s over the last 6 hours, so every slot of every window ring holds
//! deliveries (built through the library's storage, restored from its
//! snapshot). The release binary serves it; each figure is the median of 7
//! scrapes after one warm-up, plain and with `Accept-Encoding: gzip`.
//!
//! Floor, same run: the very bytes of the plain scrape served as a static
//! body by axum and hyper, the stack the exporter serves with, so what is
//! left above it is computing and encoding the figures.

#[path = "support/exporter.rs"]
mod exporter;
#[path = "support/state.rs"]
mod state;

use std::sync::Arc;
use std::time::{Duration, Instant};

use exporter::Exporter;

use amaze_exporter::config::Config;

const SCRAPES: usize = 7;

/// `AMAZE_SERIES_WINDOWS=1h,30d` exports only those windows per label set.
fn config(label_sets: usize) -> String {
    let chosen = std::env::var("AMAZE_SERIES_WINDOWS")
        .map(|w| format!("    series_windows: [{w}]\n"))
        .unwrap_or_default();
    format!(
        "version: 1
slas:
  - name: api
    promise: 300ms
    objective: 99%
    target_margin: 50%
    window: 30d
    labels: [route]
    max_series: {}
    durability: none
{chosen}",
        label_sets + 10
    )
}

/// What Prometheus 2.x sends with native histograms enabled.
const PROTOBUF: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
/// What Prometheus 2.x sends by default.
const OPENMETRICS: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Median time and the body's size of `SCRAPES` GETs of `url`, classic
/// text unless `accept` says otherwise.
fn scrape(agent: &ureq::Agent, url: &str, gzip: bool) -> (Duration, usize, Vec<u8>) {
    scrape_as(agent, url, gzip, "text/plain")
}

fn scrape_as(
    agent: &ureq::Agent,
    url: &str,
    gzip: bool,
    accept: &str,
) -> (Duration, usize, Vec<u8>) {
    let get = || {
        let mut request = agent.get(url).header("accept", accept);
        if gzip {
            request = request.header("accept-encoding", "gzip");
        }
        let started = Instant::now();
        let mut r = request.call().expect("scrape");
        let body = r
            .body_mut()
            .with_config()
            .limit(1 << 32)
            .read_to_vec()
            .expect("body");
        (started.elapsed(), body)
    };
    let _ = get();
    let mut runs: Vec<(Duration, Vec<u8>)> = (0..SCRAPES).map(|_| get()).collect();
    runs.sort_by_key(|r| r.0);
    let (took, body) = runs.swap_remove(SCRAPES / 2);
    (took, body.len(), body)
}

/// The same bytes as a static body, served by axum on hyper.
fn floor(body: Vec<u8>) -> (String, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let body = axum::body::Bytes::from(body);
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let body = body.clone();
            async move { body }
        }),
    );
    runtime.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/metrics"), runtime)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1_000, 10_000]
    } else {
        sizes
    };
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    for label_sets in sizes {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("amaze.yaml");
        std::fs::write(&config_path, config(label_sets)).expect("write config");
        let catalog = Arc::new(
            Config::parse(&config(label_sets))
                .expect("config")
                .catalog(),
        );
        let data = dir.path().join("data");
        let built = Instant::now();
        let api = [("api".to_owned(), Duration::from_millis(300))];
        let deliveries = state::build(&data, catalog, &api, label_sets, 29);
        let snapshot_bytes: u64 = std::fs::read_dir(&data)
            .expect("state directory")
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "snap"))
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .max()
            .unwrap_or(0);
        let ex = Exporter::start(&config_path, &data);
        let url = format!("{}/metrics", ex.base);
        let (plain, bytes, body) = scrape(&agent, &url, false);
        let (zipped, zipped_bytes, _) = scrape(&agent, &url, true);
        let (proto, proto_bytes, _) = scrape_as(&agent, &url, false, PROTOBUF);
        let (proto_zipped, proto_zipped_bytes, _) = scrape_as(&agent, &url, true, PROTOBUF);
        let (open, open_bytes, _) = scrape_as(&agent, &url, false, OPENMETRICS);
        let samples = String::from_utf8_lossy(&body)
            .lines()
            .filter(|l| !l.starts_with('#'))
            .count();
        let (floor_url, _server) = floor(body);
        let (floor_took, _, _) = scrape(&agent, &floor_url, false);
        let memory = String::from_utf8_lossy(&scrape(&agent, &url, false).2)
            .lines()
            .find_map(|l| {
                l.strip_prefix("amaze_window_memory_bytes ")?
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0);
        println!(
            "{label_sets} label sets ({deliveries} deliveries, built in {:.0} s): {samples} samples, {:.1} MB ({:.0} per label set)",
            built.elapsed().as_secs_f64(),
            bytes as f64 / 1e6,
            samples as f64 / label_sets as f64,
        );
        println!(
            "  scrape {:.0} ms plain, {:.0} ms gzip ({:.2} MB); floor (same bytes, static) {:.0} ms; window memory {:.0} KiB per label set",
            ms(plain),
            ms(zipped),
            zipped_bytes as f64 / 1e6,
            ms(floor_took),
            memory / 1024.0 / label_sets as f64,
        );
        println!(
            "  protobuf (native histograms) {:.0} ms ({:.1} MB), gzip {:.0} ms ({:.2} MB); OpenMetrics text {:.0} ms ({:.1} MB)",
            ms(proto),
            proto_bytes as f64 / 1e6,
            ms(proto_zipped),
            proto_zipped_bytes as f64 / 1e6,
            ms(open),
            open_bytes as f64 / 1e6,
        );
        println!(
            "  snapshot {:.1} MB ({:.0} KiB per label set)",
            snapshot_bytes as f64 / 1e6,
            snapshot_bytes as f64 / 1024.0 / label_sets as f64,
        );
        ex.kill();
    }
}
