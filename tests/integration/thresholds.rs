//! Exact thresholds and figures that never contradict each other, through the
//! library with an injected clock: every threshold at its edge and 1 ns (or,
//! for open-delivery clocks, 1 ms) either side, and the margin's sign against
//! exact compliance over random samples.

use std::sync::Arc;
use std::time::Duration;

use amaze_exporter::config::Config;
use amaze_exporter::decimal::Decimal;
use amaze_exporter::delivery::{EventInput, Input, Timing};
use amaze_exporter::margin::Status;
use amaze_exporter::recorder::open::{Kind, OpenState};
use amaze_exporter::recorder::{BUCKET_FRACTIONS, Recorder};
use amaze_exporter::sla::Catalog;
use amaze_exporter::window::Millis;
use proptest::prelude::*;

const NOW: Millis = 1_800_000_000_000;
const DAY: Millis = 86_400_000;
const NS: Duration = Duration::from_nanos(1);

fn recorder(sla: &str) -> (Arc<Catalog>, Recorder) {
    let yaml = format!("version: 1\nslas:\n  - name: s\n{sla}    min_deliveries: 1\n");
    let catalog = Arc::new(Config::parse(&yaml).expect(&yaml).catalog());
    (catalog.clone(), Recorder::new(catalog))
}

fn record(catalog: &Catalog, recorder: &Recorder, took: Duration, at: Millis) {
    record_with(catalog, recorder, &[], took, at);
}

fn record_with(
    catalog: &Catalog,
    recorder: &Recorder,
    labels: &[(&str, &str)],
    took: Duration,
    at: Millis,
) {
    let input = Input {
        sla: "s",
        labels,
        timing: Timing::Took { took, at: Some(at) },
        id: None,
    };
    let d = catalog.admit(&input, NOW).expect("admissible");
    recorder.record(&[d], NOW, None);
}

fn dec(text: &str) -> Decimal {
    Decimal::parse(text).unwrap()
}

/// `fraction` x `promise` when that is whole nanoseconds.
fn edge(fraction: Decimal, promise: Duration) -> Option<Duration> {
    let e = fraction.of(promise);
    let exact = fraction.covers(e, promise) && !fraction.covers(e + NS, promise);
    exact.then_some(e)
}

const PROMISES_MS: [u64; 10] = [
    1, 7, 150, 270, 300, 700, 1_000, 1_500, 3_600_000, 14_400_000,
];
const MARGINS: [&str; 8] = ["10%", "12.5%", "20%", "25%", "33%", "50%", "80%", "90%"];

/// Within or late at the promise, in each histogram bucket at its edge, and
/// amazing at the target: a delivery exactly on an edge is on the inclusive
/// side, 1 ns past it is not.
#[test]
fn every_delivery_threshold_is_inclusive_at_its_edge_and_exact_beside_it() {
    for ms in PROMISES_MS {
        let promise = Duration::from_millis(ms);
        for target in MARGINS {
            let (catalog, rec) = recorder(&format!(
                "    promise: {ms}ms\n    objective: 50%\n    target_margin: {target}\n"
            ));
            let limit = edge(dec(target).complement().unwrap(), promise).unwrap();
            for took in [limit - NS, limit, limit + NS] {
                record(&catalog, &rec, took, NOW);
            }
            let report = &rec.report(NOW)[0];
            let ratio = report.aggregate[0]
                .assessment
                .as_ref()
                .unwrap()
                .amazing_ratio;
            assert_eq!(
                ratio,
                Some(2.0 / 3.0),
                "{ms}ms, target {target}: limit {limit:?}"
            );
        }
        let (catalog, rec) = recorder(&format!("    promise: {ms}ms\n    objective: 50%\n"));
        let edges: Vec<Duration> = BUCKET_FRACTIONS
            .iter()
            .filter_map(|f| edge(*f, promise))
            .collect();
        for e in &edges {
            for took in [*e - NS, *e, *e + NS] {
                record(&catalog, &rec, took, NOW);
            }
        }
        let report = &rec.report(NOW)[0];
        let (_, counters) = report.single_counters.as_ref().unwrap();
        // Each edge's bucket holds, cumulatively, everything up to the edge:
        // 3 per smaller edge, and 2 (1 ns before and on) of its own.
        let mut cumulative = 0;
        for (f, count) in BUCKET_FRACTIONS.iter().zip(&counters.buckets) {
            cumulative += count;
            let Some(e) = edge(*f, promise) else { continue };
            let below = edges.iter().filter(|x| **x < e).count() as u64;
            assert_eq!(cumulative, 3 * below + 2, "{ms}ms, edge {f} = {e:?}");
        }
        let ones = edges.len() as u64 * 3;
        let late = edges.iter().filter(|e| **e >= promise).count() as u64 * 3 - 2;
        assert_eq!(counters.within + counters.late, ones);
        assert_eq!(counters.late, late, "{ms}ms: 1 ns past the promise is late");
    }
}

/// Where a goal sets the promise (`tier: gold`), its thresholds are exact
/// too: the goal's promise, every bucket edge and the amaze limit taken of
/// it, each at its edge and 1 ns either side, while the SLA's own promise
/// (2h) judges nothing here.
#[test]
fn goal_promises_are_exact_thresholds_at_their_edges() {
    for ms in PROMISES_MS {
        let goal = Duration::from_millis(ms);
        for target in ["10%", "12.5%", "33%", "90%"] {
            let (catalog, rec) = recorder(&format!(
                "    promise: 2h\n    objective: 50%\n    target_margin: {target}\n    labels: [tier]\n    goals:\n      - match: {{tier: gold}}\n        promise: {ms}ms\n"
            ));
            let limit = edge(dec(target).complement().unwrap(), goal).unwrap();
            let edges: Vec<Duration> = BUCKET_FRACTIONS
                .iter()
                .filter_map(|f| edge(*f, goal))
                .chain([limit, goal])
                .collect();
            let tooks: Vec<Duration> = edges.iter().flat_map(|e| [*e - NS, *e, *e + NS]).collect();
            for took in &tooks {
                record_with(&catalog, &rec, &[("tier", "gold")], *took, NOW);
            }
            let report = &rec.report(NOW)[0];
            let gold = &report.series[0];
            assert_eq!(gold.promise, Some(goal));
            let at_most = |e: Duration| tooks.iter().filter(|t| **t <= e).count() as u64;
            let what = format!("goal {ms}ms, target {target}");
            assert_eq!(gold.counters.within, at_most(goal), "{what}");
            assert_eq!(
                gold.counters.late,
                tooks.len() as u64 - at_most(goal),
                "{what}"
            );
            let mut cumulative = 0;
            for (f, count) in BUCKET_FRACTIONS.iter().zip(&gold.counters.buckets) {
                cumulative += count;
                if let Some(e) = edge(*f, goal) {
                    assert_eq!(cumulative, at_most(e), "{what}, edge {f} = {e:?}");
                }
            }
            let (_, figures) = &gold.figures[0];
            let ratio = figures.assessment.as_ref().unwrap().amazing_ratio;
            let n = tooks.len() as f64;
            assert_eq!(
                ratio,
                Some(at_most(limit) as f64 / n),
                "{what}: limit {limit:?}"
            );
        }
    }
}

/// An open delivery is at risk once its clock passes 1 - alert_margin of the
/// promise, not on it, and overdue once past the promise. Open clocks count
/// whole milliseconds, so the edge is checked at the last whole millisecond
/// on or before it and the next one, whether or not it is whole itself.
#[test]
fn open_deliveries_turn_at_risk_and_overdue_just_past_their_edges() {
    for ms in PROMISES_MS.iter().filter(|ms| **ms < 3_600_000) {
        for alert in MARGINS {
            let (catalog, rec) = recorder(&format!(
                "    promise: {ms}ms\n    objective: 50%\n    target_margin: 95%\n    alert_margin: {alert}\n"
            ));
            let start = EventInput {
                sla: "s",
                id: "T",
                kind: Kind::Start,
                labels: &[],
                failed: false,
                at: Some(NOW),
            };
            let event = catalog.admit_event(&start, NOW).unwrap();
            rec.apply_events(&[event], NOW, None);
            let promise = Duration::from_millis(*ms);
            // The last whole millisecond at or below (1 - alert) x promise.
            let fraction = dec(alert).complement().unwrap();
            let risk = Duration::from_millis(fraction.of(promise).as_millis() as u64);
            assert!(fraction.covers(risk, promise));
            assert!(!fraction.covers(risk + Duration::from_millis(1), promise));
            let state = |after: Duration| {
                let at = NOW + after.as_millis() as Millis;
                rec.open_items(at, |_| true)[0].state
            };
            let ms1 = Duration::from_millis(1);
            assert_eq!(state(risk), OpenState::OnTrack, "{ms}ms, alert {alert}");
            assert_eq!(
                state(risk + ms1),
                OpenState::AtRisk,
                "{ms}ms, alert {alert}"
            );
            assert_eq!(state(promise), OpenState::AtRisk, "{ms}ms on the promise");
            assert_eq!(state(promise + ms1), OpenState::Overdue, "{ms}ms");
        }
    }
}

/// Objectives from 90% to 99.999%, in either spelling.
fn objective() -> impl Strategy<Value = (Decimal, String)> {
    // Both ends (90% and 99.9..9%, 99.999% at five places) as often as
    // anything between them.
    let at = prop_oneof![Just(0.0), Just(1.0), 0.0f64..1.0];
    (1u32..=5, at, any::<bool>()).prop_map(|(scale, at, percent)| {
        let one = 10u64.pow(scale);
        let low = one / 10 * 9;
        let units = (low + ((one - low) as f64 * at) as u64).min(one - 1);
        let o = Decimal::new(units, scale as u8);
        let text = if percent { o.percent() } else { o.to_string() };
        (o, text)
    })
}

/// A small deterministic generator, so a failing case shrinks by its seed.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// n from 1 to 2,000 deliveries over four days, with the late count at
    /// the objective's edge (floor(n(1 - o)) - 1 to + 1), some late ones
    /// failed, some exactly on the promise or 1 ns past it, spread over
    /// three label sets that export every window. In every window, SLA-wide
    /// and per label set, the margin is negative, the status breaching and
    /// the objective quantile past 1 exactly when compliance is below the
    /// objective.
    #[test]
    fn margin_sign_and_status_agree_with_exact_compliance(
        n in 1u64..=2_000,
        (o, text) in objective(),
        offset in -1i64..=1,
        seed in any::<u64>(),
    ) {
        let (catalog, rec) = recorder(&format!(
            "    promise: 1s\n    objective: {text}\n    labels: [route]\n    series_windows: [5m, 30m, 1h, 6h, 1d, 3d, 30d]\n"
        ));
        prop_assert_eq!(catalog.slas[0].objective, o);
        let allowed = n - o.rank(n).min(n);
        let late = (allowed as i64 + offset).clamp(0, n as i64) as u64;
        let mut rng = SplitMix(seed);
        let mut is_late = vec![false; n as usize];
        let mut placed = 0;
        while placed < late {
            let i = rng.below(n) as usize;
            if !std::mem::replace(&mut is_late[i], true) {
                placed += 1;
            }
        }
        let promise = Duration::from_secs(1);
        let mut batch = Vec::with_capacity(n as usize);
        for late in is_late {
            let at = NOW - rng.below(4 * DAY as u64) as Millis;
            let timing = match (late, rng.below(4)) {
                (true, 0) => Timing::Failed { at: Some(at) },
                (true, 1) => Timing::Took { took: promise + NS, at: Some(at) },
                (true, _) => Timing::Took { took: promise + Duration::from_millis(1 + rng.below(4_000)), at: Some(at) },
                (false, 0) => Timing::Took { took: promise, at: Some(at) },
                (false, _) => Timing::Took { took: Duration::from_millis(1 + rng.below(1_000)), at: Some(at) },
            };
            let route = [("route", ["a", "b", "c"][rng.below(3) as usize])];
            let input = Input { sla: "s", labels: &route, timing, id: None };
            batch.push(catalog.admit(&input, NOW).unwrap());
        }
        rec.record(&batch, NOW, None);
        let report = &rec.report(NOW)[0];
        prop_assert!(!report.series.is_empty());
        let series = report
            .series
            .iter()
            .flat_map(|s| s.figures.iter().map(move |(i, f)| (&report.windows[*i], f, &*s.key)));
        let sla_wide = report.windows.iter().zip(&report.aggregate).map(|(w, f)| (w, f, "(SLA-wide)"));
        for (window, f, scope) in sla_wide.chain(series) {
            let Some(a) = &f.assessment else {
                prop_assert_eq!(f.deliveries, 0);
                continue;
            };
            let breached = o.exceeds_share(f.deliveries - f.bad, f.deliveries);
            let label = format!("{} {}", scope, window.label);
            prop_assert_eq!(a.margin < 0.0, breached, "{} margin {} with {}/{} bad", label, a.margin, f.bad, f.deliveries);
            prop_assert_eq!(a.status == Status::Breaching, breached, "{} status", label);
            let q = a.quantiles.iter().find(|(q, _)| *q == o).map(|(_, r)| *r).unwrap();
            prop_assert_eq!(q > 1.0, breached, "{} objective quantile {}", label, q);
        }
    }
}
