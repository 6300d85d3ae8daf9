//! The source contract, checked the same way for every source through the
//! real binary: deliveries arrive, accepted and rejected counters move, and
//! shutdown is clean.

use std::time::{Duration, Instant};

use crate::server::{Exporter, Metrics};

/// What a conformance run needs from one source.
pub struct Source<'a> {
    /// The `source` label of the ingest counters.
    pub name: &'a str,
    /// SLA the good input lands in.
    pub sla: &'a str,
    /// Feeds valid input; returns how many deliveries it holds.
    pub feed_good: &'a dyn Fn(&Exporter) -> u64,
    /// Feeds input that must be refused, without stopping the source; `None`
    /// for a source whose input cannot be malformed (a probe's failure is a
    /// failed delivery, not a refusal).
    pub feed_bad: Option<&'a dyn Fn(&Exporter)>,
}

fn counted(m: &Metrics, sla: &str) -> f64 {
    m.value(
        "amaze_window_deliveries",
        &[("sla", sla), ("scope", "sla"), ("window", "5m")],
    )
    .unwrap_or(0.0)
}

pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the contract against `ex`, then stops it.
pub fn check(ex: Exporter, source: &Source<'_>) {
    let accepted = |m: &Metrics| m.sum("amaze_ingest_accepted_total", &[("source", source.name)]);
    let rejected = |m: &Metrics| m.sum("amaze_ingest_rejected_total", &[("source", source.name)]);
    let before = ex.metrics();
    let n = (source.feed_good)(&ex) as f64;
    wait_for(&format!("{} deliveries from {}", n, source.name), || {
        let m = ex.metrics();
        counted(&m, source.sla) >= counted(&before, source.sla) + n
            && accepted(&m) >= accepted(&before) + n
    });
    if let Some(feed_bad) = source.feed_bad {
        let before = ex.metrics();
        feed_bad(&ex);
        wait_for(&format!("{} to count refused input", source.name), || {
            rejected(&ex.metrics()) > rejected(&before)
        });
    }
    // Still working after bad input.
    let before = ex.metrics();
    let n = (source.feed_good)(&ex) as f64;
    wait_for(
        &format!("{} to keep working after bad input", source.name),
        || counted(&ex.metrics(), source.sla) >= counted(&before, source.sla) + n,
    );
    let log = ex.log();
    assert_eq!(ex.stop(), Some(0), "clean shutdown:\n{log}");
}

#[test]
fn http_push_meets_the_source_contract() {
    let ex = Exporter::start(crate::push::CONFIG);
    check(
        ex,
        &Source {
            name: "http",
            sla: "checkout",
            feed_good: &|ex| {
                let body = "{\"sla\":\"checkout\",\"duration\":\"20ms\"}\n".repeat(25);
                assert_eq!(ex.push(&body).status, 200);
                25
            },
            feed_bad: Some(&|ex| {
                assert_eq!(
                    ex.push("{\"sla\":\"checkout\",\"duration\":\"soon\"}")
                        .status,
                    400
                );
            }),
        },
    );
}
