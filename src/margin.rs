//! The pure maths of DESIGN.md §2: margin, status, compliance, burn rate, amaze ratio.
//!
//! Every quantile is the nearest-rank one, and its side of the promise comes
//! from exact counts (see [`Digest::quantile`]), so the margin is negative
//! exactly when compliance is below the objective.

use std::time::Duration;

use crate::decimal::Decimal;
use crate::window::Digest;

/// Quantiles exported for every window besides the objective's own: p50, p90, p99.
pub const REPORTED_QUANTILES: [Decimal; 3] =
    [Decimal::new(5, 1), Decimal::new(9, 1), Decimal::new(99, 2)];

/// Histogram bucket edges as fractions of the promise (DESIGN.md §2),
/// exact, so a delivery on an edge lands in that edge's bucket.
pub const BUCKET_FRACTIONS: [Decimal; 9] = [
    Decimal::new(1, 1),
    Decimal::new(25, 2),
    Decimal::new(5, 1),
    Decimal::new(75, 2),
    Decimal::new(9, 1),
    Decimal::ONE,
    Decimal::new(15, 1),
    Decimal::new(2, 0),
    Decimal::new(5, 0),
];

/// The exact thresholds one promise judges a duration by, as whole
/// nanoseconds computed once: the promise, the bucket edges and the amaze
/// limit. A duration is on the inclusive side of each (d <= edge).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Judge {
    promise: u64,
    edges: [u64; BUCKET_FRACTIONS.len()],
    amazing: Option<u64>,
}

/// How one delivery's duration compares with its promise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// Index of the first [`BUCKET_FRACTIONS`] edge it is within, or their
    /// count when beyond the last.
    pub bucket: usize,
    /// Longer than the promise.
    pub late: bool,
    /// Within (1 - target_margin) x the promise.
    pub amazing: bool,
    /// Duration over promise, for the sketch.
    pub relative: f64,
}

impl Judge {
    /// Thresholds of `promise`; `amazing_limit` is 1 - target_margin.
    pub fn new(promise: Duration, amazing_limit: Option<Decimal>) -> Judge {
        let promise = u64::try_from(promise.as_nanos()).unwrap_or(u64::MAX);
        Judge {
            promise,
            edges: BUCKET_FRACTIONS.map(|f| f.floor_of(promise)),
            amazing: amazing_limit.map(|l| l.floor_of(promise)),
        }
    }

    /// Judges a delivery that took `took`.
    pub fn judge(&self, took: Duration) -> Verdict {
        let d = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        Verdict {
            bucket: self.edges.partition_point(|edge| *edge < d),
            late: d > self.promise,
            amazing: self.amazing.is_some_and(|limit| d <= limit),
            relative: d as f64 / self.promise.max(1) as f64,
        }
    }
}

/// The lowest margin reported: "at least one full promise late".
pub const MARGIN_FLOOR: f64 = -1.0;

/// What an SLA asks of a window's deliveries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Fraction o of deliveries that must be within the promise, in (0, 1).
    pub objective: Decimal,
    /// The amaze goal: deliver within (1 - target) x promise.
    pub target_margin: Option<Decimal>,
    /// Fewer deliveries than this and the window is not assessed.
    pub min_deliveries: u64,
}

impl Policy {
    /// Quantiles to report: p50, p90, p99 and the objective's, ascending, once each.
    pub fn quantiles(&self) -> Vec<Decimal> {
        let mut qs = REPORTED_QUANTILES.to_vec();
        if !qs.contains(&self.objective) {
            qs.push(self.objective);
            qs.sort();
        }
        qs
    }

    /// Largest share of the promise that still counts as amazing: 1 - target.
    pub fn amazing_limit(&self) -> Option<Decimal> {
        self.target_margin.and_then(Decimal::complement)
    }
}

/// Where a window's margin stands against the SLA (DESIGN.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Margin at or above the target margin.
    Amazing,
    /// Within the promise, below the target margin.
    Meeting,
    /// Negative margin: compliance below the objective.
    Breaching,
}

impl Status {
    /// Every status, in the order `amaze_status` lists them.
    pub const ALL: [Status; 3] = [Status::Amazing, Status::Meeting, Status::Breaching];

    /// The `status` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Amazing => "amazing",
            Status::Meeting => "meeting",
            Status::Breaching => "breaching",
        }
    }
}

/// Figures of one series over one window.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// Deliveries in the window, failed ones included.
    pub deliveries: u64,
    /// Failed or later than the promise.
    pub bad: u64,
    /// `None` below `min_deliveries`: low traffic must not page anyone.
    pub assessment: Option<Assessment>,
}

/// The figures of a window with at least `min_deliveries` deliveries.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// 1 - q(objective), floored at -1.
    pub margin: f64,
    /// Amazing, meeting or breaching, decided from exact counts.
    pub status: Status,
    /// (n - bad) / n.
    pub compliance: f64,
    /// (bad / n) / (1 - objective): 1 spends the budget exactly over the window.
    pub burn_rate: f64,
    /// Share of deliveries within the target margin, when the SLA sets one.
    pub amazing_ratio: Option<f64>,
    /// (q, relative time) for [`Policy::quantiles`]; +inf where failures rank.
    pub quantiles: Vec<(Decimal, f64)>,
}

impl Assessment {
    /// Error budget left over this window: 1 - burn rate, negative when overspent.
    pub fn budget_remaining(&self) -> f64 {
        1.0 - self.burn_rate
    }
}

/// Assesses one window's digest against `policy`.
///
/// The status is decided from exact counts: breaching when fewer than the
/// objective's rank ceil(o x n) deliveries were within the promise, amazing
/// when at least that many were within the target margin. The margin's size
/// comes from the sketch and is kept inside its status's range, so the
/// gauges never contradict each other or the amaze ratio.
pub fn assess(digest: &Digest, policy: &Policy) -> Figures {
    let n = digest.count();
    let bad = digest.bad();
    let assessment = (n >= policy.min_deliveries.max(1)).then(|| {
        let amazing = policy
            .amazing_limit()
            .map(|l| digest.amazing_at(l.to_f64()));
        let rank = policy.objective.rank(n);
        let status = match amazing {
            _ if rank > n - bad => Status::Breaching,
            Some(a) if rank <= a.within => Status::Amazing,
            _ => Status::Meeting,
        };
        let q = digest
            .quantile(policy.objective, amazing)
            .unwrap_or(f64::INFINITY);
        // 1 - (1 - t) need not be t in floats: hold the margin in its range.
        let target = policy.target_margin.map_or(f64::INFINITY, Decimal::to_f64);
        let margin = match status {
            Status::Breaching => (1.0 - q).clamp(MARGIN_FLOOR, -f64::EPSILON),
            Status::Meeting => (1.0 - q).clamp(0.0, target.next_down()),
            Status::Amazing => (1.0 - q).max(target),
        };
        Assessment {
            margin,
            status,
            compliance: (n - bad) as f64 / n as f64,
            burn_rate: policy.objective.burn_rate(bad, n),
            amazing_ratio: amazing.map(|a| a.within as f64 / n as f64),
            quantiles: policy
                .quantiles()
                .into_iter()
                .map(|q| (q, digest.quantile(q, amazing).unwrap_or(f64::INFINITY)))
                .collect(),
        }
    });
    Figures {
        deliveries: n,
        bad,
        assessment,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::Observation;

    fn dec(text: &str) -> Decimal {
        Decimal::parse(text).unwrap()
    }

    fn policy() -> Policy {
        Policy {
            objective: dec("99%"),
            target_margin: Some(dec("50%")),
            min_deliveries: 10,
        }
    }

    fn digest(relatives: &[f64], failed: usize) -> Digest {
        let mut d = Digest::new();
        for &r in relatives {
            d.record(Observation::Delivered {
                relative: r,
                late: r > 1.0,
                amazing: r <= 0.5,
            });
        }
        for _ in 0..failed {
            d.record(Observation::Failed);
        }
        d
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    /// 100 deliveries at 0.01, 0.02, ..., 1.00 of the promise.
    /// p99 rank = ceil(0.99 x 100) = 99 -> r = 0.99; margin = 0.01.
    #[test]
    fn hundred_evenly_spread_deliveries() {
        let rs: Vec<f64> = (1..=100).map(|i| i as f64 / 100.0).collect();
        let f = assess(&digest(&rs, 0), &policy());
        let a = f.assessment.unwrap();
        assert_eq!(f.deliveries, 100);
        assert_eq!(f.bad, 0);
        assert!(close(a.margin, 0.01, 0.99 * 0.01), "{}", a.margin);
        assert_eq!(a.status, Status::Meeting);
        assert_eq!(a.compliance, 1.0);
        assert_eq!(a.burn_rate, 0.0);
        assert_eq!(a.budget_remaining(), 1.0);
        // r <= 0.5: 50 of 100.
        assert_eq!(a.amazing_ratio, Some(0.5));
    }

    /// 99 fast deliveries at 0.2 and one at 3.0: p99 rank 99 is still 0.2.
    /// margin = 0.8 -> amazing; compliance 0.99; burn = 0.01/0.01 = 1.
    #[test]
    fn one_late_delivery_in_a_hundred_is_within_objective() {
        let mut rs = vec![0.2; 99];
        rs.push(3.0);
        let a = assess(&digest(&rs, 0), &policy()).assessment.unwrap();
        assert!(close(a.margin, 0.8, 0.2 * 0.01), "{}", a.margin);
        assert_eq!(a.status, Status::Amazing);
        assert!(close(a.compliance, 0.99, 1e-12));
        assert_eq!(a.burn_rate, 1.0);
        assert_eq!(a.budget_remaining(), 0.0);
    }

    /// Two late of 100 at 1.2: p99 rank 99 lands on 1.2 -> margin -0.2,
    /// breaching; burn = 0.02 / 0.01 = 2, budget remaining = -1.
    #[test]
    fn two_late_deliveries_breach_a_99_percent_objective() {
        let mut rs = vec![0.2; 98];
        rs.extend([1.2, 1.2]);
        let a = assess(&digest(&rs, 0), &policy()).assessment.unwrap();
        assert!(close(a.margin, -0.2, 1.2 * 0.01), "{}", a.margin);
        assert_eq!(a.status, Status::Breaching);
        assert_eq!(a.burn_rate, 2.0);
        assert_eq!(a.budget_remaining(), -1.0);
    }

    /// Issue 12, input 1: promise 1s, objective 95%, 14 x 100ms and 1 x 2s.
    /// Compliance 14/15 < 0.95, so the margin must be negative: the 95%
    /// rank is ceil(14.25) = 15, the 2 s delivery.
    #[test]
    fn one_late_in_fifteen_breaches_a_95_percent_objective() {
        let mut rs = vec![0.1; 14];
        rs.push(2.0);
        let p = Policy {
            objective: dec("95%"),
            ..policy()
        };
        let a = assess(&digest(&rs, 0), &p).assessment.unwrap();
        assert!(close(a.margin, -1.0, 0.02), "{}", a.margin);
        assert_eq!(a.status, Status::Breaching);
        assert_eq!(a.compliance, 14.0 / 15.0);
        let p99 = a
            .quantiles
            .iter()
            .find(|(q, _)| *q == dec("0.99"))
            .unwrap()
            .1;
        assert!(close(p99, 2.0, 0.02), "{p99}");
    }

    /// Issue 12, input 3: 99.99% over 9,999 fast and 2 late deliveries.
    #[test]
    fn a_four_nines_objective_is_held_exactly() {
        let mut rs = vec![0.1; 9_999];
        rs.extend([2.0, 2.0]);
        for spelling in ["99.99%", "0.9999"] {
            let p = Policy {
                objective: dec(spelling),
                ..policy()
            };
            let a = assess(&digest(&rs, 0), &p).assessment.unwrap();
            assert_eq!(a.status, Status::Breaching, "{spelling}");
            assert!(a.margin < 0.0, "{spelling}: {}", a.margin);
            assert_eq!(
                p.quantiles().last().map(ToString::to_string).as_deref(),
                Some("0.9999")
            );
        }
    }

    /// Failures alone above 1 - o: the quantile is +inf and the margin -1.
    #[test]
    fn failures_beyond_the_budget_floor_the_margin() {
        let a = assess(&digest(&[0.1; 97], 3), &policy())
            .assessment
            .unwrap();
        assert_eq!(a.margin, -1.0);
        assert_eq!(a.status, Status::Breaching);
        let p99 = a
            .quantiles
            .iter()
            .find(|(q, _)| *q == dec("0.99"))
            .unwrap()
            .1;
        assert_eq!(p99, f64::INFINITY);
        assert!(close(a.compliance, 0.97, 1e-12));
    }

    /// Very late deliveries floor the margin at -1 even when finite.
    #[test]
    fn margin_is_floored() {
        let a = assess(&digest(&[5.0; 20], 0), &policy())
            .assessment
            .unwrap();
        assert_eq!(a.margin, -1.0);
    }

    /// Every delivery exactly on the promise: margin 0, meeting, not breaching.
    #[test]
    fn deliveries_on_the_promise_meet_it() {
        let a = assess(&digest(&[1.0; 20], 0), &policy())
            .assessment
            .unwrap();
        assert_eq!(a.margin, 0.0);
        assert_eq!(a.status, Status::Meeting);
    }

    #[test]
    fn low_traffic_is_counted_not_assessed() {
        let f = assess(&digest(&[3.0; 9], 0), &policy());
        assert_eq!(f.deliveries, 9);
        assert_eq!(f.bad, 9);
        assert_eq!(f.assessment, None);
    }

    #[test]
    fn without_a_target_nothing_is_amazing() {
        let p = Policy {
            target_margin: None,
            ..policy()
        };
        let a = assess(&digest(&[0.01; 20], 0), &p).assessment.unwrap();
        assert_eq!(a.status, Status::Meeting);
        assert_eq!(a.amazing_ratio, None);
    }

    #[test]
    fn objective_quantile_is_reported_once() {
        let p = policy();
        assert_eq!(p.quantiles(), REPORTED_QUANTILES.to_vec());
        let p = Policy {
            objective: dec("95%"),
            ..p
        };
        let labels: Vec<String> = p.quantiles().iter().map(ToString::to_string).collect();
        assert_eq!(labels, ["0.5", "0.9", "0.95", "0.99"]);
    }

    fn exact(relative: f64, late: bool, amazing: bool, n: usize) -> Digest {
        let mut d = Digest::new();
        for _ in 0..n {
            d.record(Observation::Delivered {
                relative,
                late,
                amazing,
            });
        }
        d
    }

    /// 270ms against 300ms at a 10% target is exactly on the amaze limit;
    /// its float ratio is 0.9000000000000001. Amazing all the same, and the
    /// margin no less than the target.
    #[test]
    fn a_delivery_on_the_amaze_limit_is_amazing() {
        let p = Policy {
            objective: dec("50%"),
            target_margin: Some(dec("10%")),
            min_deliveries: 1,
        };
        let a = assess(&exact(0.27 / 0.3, false, true, 1), &p)
            .assessment
            .unwrap();
        assert_eq!(a.status, Status::Amazing);
        assert!(a.margin >= 0.1, "{}", a.margin);
        assert_eq!(a.amazing_ratio, Some(1.0));
        // 1 ns past the limit: meeting, however the ratio rounds.
        let a = assess(&exact(0.9, false, false, 20), &p)
            .assessment
            .unwrap();
        assert_eq!(a.status, Status::Meeting);
        assert!(a.margin < 0.1, "{}", a.margin);
        assert_eq!(a.amazing_ratio, Some(0.0));
    }

    #[test]
    fn status_boundaries() {
        let p = policy();
        let on_target = assess(&exact(0.5, false, true, 20), &p).assessment.unwrap();
        assert_eq!(on_target.status, Status::Amazing);
        let on_promise = assess(&exact(1.0, false, false, 20), &p)
            .assessment
            .unwrap();
        assert_eq!(on_promise.status, Status::Meeting);
        assert_eq!(on_promise.margin, 0.0);
        let past = assess(&exact(1.0, true, false, 20), &p).assessment.unwrap();
        assert_eq!(past.status, Status::Breaching);
        assert!(past.margin < 0.0);
    }
}
