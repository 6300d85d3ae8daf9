//! The digest of one time slot: a relative-time sketch plus exact outcome counts.
//!
//! No clock, no config, no I/O: values in, figures out.

use sketches_ddsketch::{Config, DDSketch};

use crate::decimal::Decimal;

/// Relative accuracy of every quantile (DESIGN.md §2: alpha 1%).
pub const RELATIVE_ACCURACY: f64 = 0.01;
/// Bins per sketch: 2048 bins of gamma ~1.0202 span a ratio of ~1e18 between
/// the smallest and largest value kept apart; beyond it the lowest bins
/// collapse, which only blurs the lowest quantiles. Bins grow in chunks of
/// 128 as values spread, so typical sketches hold far fewer.
const MAX_BINS: u32 = 2048;
/// Relative times below this (a billionth of the promise) count as instant.
const MIN_RELATIVE: f64 = 1e-9;

/// The sketch settings. They equal the crate's defaults on purpose: its
/// standard binary decoding (used by snapshots) rebuilds sketches with the
/// default config, and only sketches of equal config merge.
fn sketch_config() -> Config {
    Config::new(RELATIVE_ACCURACY, MAX_BINS, MIN_RELATIVE)
}

/// One observed delivery as the window code sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Observation {
    /// Delivered in `relative` x promise. `late` (beyond the promise) and
    /// `amazing` (within the target margin) are decided exactly from the
    /// durations by the caller, never from the rounded ratio.
    Delivered {
        /// Duration over promise.
        relative: f64,
        /// Longer than the promise, decided exactly.
        late: bool,
        /// Within the target margin, decided exactly.
        amazing: bool,
    },
    /// Never delivered: late by definition, at relative time +inf.
    Failed,
}

/// Distribution of relative times r = d / T, with failures counted at r = +inf.
#[derive(Clone)]
pub struct Digest {
    sketch: DDSketch,
    failed: u64,
    late: u64,
    amazing: u64,
}

impl Default for Digest {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Digest")
            .field("count", &self.count())
            .field("failed", &self.failed)
            .field("late", &self.late)
            .field("amazing", &self.amazing)
            .finish()
    }
}

impl Digest {
    /// An empty digest.
    pub fn new() -> Self {
        Digest {
            sketch: DDSketch::new(sketch_config()),
            failed: 0,
            late: 0,
            amazing: 0,
        }
    }

    /// Counts one delivery.
    pub fn record(&mut self, obs: Observation) {
        match obs {
            Observation::Delivered {
                relative,
                late,
                amazing,
            } => {
                self.sketch.add(relative);
                self.late += u64::from(late);
                self.amazing += u64::from(amazing);
            }
            Observation::Failed => self.failed += 1,
        }
    }

    /// Adds `other`'s deliveries to this one.
    pub fn merge(&mut self, other: &Digest) {
        // Every digest is built from the same config, so merge cannot fail.
        let merged = self.sketch.merge(&other.sketch);
        debug_assert!(merged.is_ok(), "digests share one sketch config");
        self.failed += other.failed;
        self.late += other.late;
        self.amazing += other.amazing;
    }

    /// All deliveries, failed ones included.
    pub fn count(&self) -> u64 {
        self.sketch.count() as u64 + self.failed
    }

    /// Deliveries that failed.
    pub fn failed(&self) -> u64 {
        self.failed
    }

    /// Failed or later than the promise (r > 1).
    pub fn bad(&self) -> u64 {
        self.failed + self.late
    }

    /// Deliveries within the amaze limit `limit` (1 - target margin, as a
    /// share of the promise), for reads that judge by it.
    ///
    /// Each delivery's verdict was counted exactly when it was recorded, by
    /// the target margin in force then. The count is used when the sketch
    /// agrees it was taken at `limit`: the delivery at its rank is within 1%
    /// below the limit, and the next within 1% above. After a reload that
    /// changed the target margin the verdicts of older deliveries were taken
    /// at another limit; then the count is read from the sketch at `limit`,
    /// exact but for deliveries within 1% of it, until those deliveries
    /// leave the window. So the amaze ratio, the status and every quantile
    /// judge by the target margin in force.
    pub fn amazing_at(&self, limit: f64) -> Amazing {
        let delivered = self.count() - self.failed;
        let counted = self.amazing.min(delivered);
        let slack = 1e-9;
        let below = |rank: u64| {
            self.value_at(rank, delivered)
                .is_none_or(|v| v <= limit * (1.0 + RELATIVE_ACCURACY) * (1.0 + slack))
        };
        let above = |rank: u64| {
            self.value_at(rank, delivered)
                .is_none_or(|v| v >= limit * (1.0 - RELATIVE_ACCURACY) * (1.0 - slack))
        };
        // The exact extremes settle a limit clearly outside them whatever
        // the verdicts say: below the fastest none is within, past the
        // slowest all are. "Clearly": a delivery exactly on the limit may
        // read a float ulp past it, and its exact verdict stands.
        let (fastest, slowest) = (self.sketch.min(), self.sketch.max());
        let within = if delivered == 0 || fastest.is_some_and(|f| limit < f * (1.0 - 1e-12)) {
            0
        } else if slowest.is_some_and(|s| limit > s * (1.0 + 1e-12)) {
            delivered
        } else if limit < MIN_RELATIVE
            || ((counted == 0 || below(counted)) && (counted == delivered || above(counted + 1)))
        {
            counted
        } else {
            self.sketch_at_most(limit, delivered)
        };
        Amazing { limit, within }
    }

    /// Whether it holds no delivery.
    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// The nearest-rank q-quantile of r: the smallest r such that at least
    /// q x n deliveries have r at or below it (rank ceil(q x n), failures
    /// ranked last at +inf). `None` for an empty digest.
    ///
    /// Whether that delivery was within the promise, and within the amaze
    /// limit (`amazing`, from [`Digest::amazing_at`]), is known exactly from
    /// the counts. So the answer is at most 1 exactly when at least the rank
    /// many deliveries were within, and at most `amazing_limit` exactly
    /// when at least that many were amazing: the quantile never contradicts
    /// compliance or the amaze ratio. Its size comes from the sketch, within
    /// [`RELATIVE_ACCURACY`] of the exact value.
    pub fn quantile(&self, q: Decimal, amazing: Option<Amazing>) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = q.rank(n).min(n);
        let delivered = n - self.failed;
        if rank > delivered {
            return Some(f64::INFINITY);
        }
        let estimate = self.value_at(rank, delivered)?;
        let side = |estimate: f64, edge: f64, on_or_below: bool| {
            if on_or_below {
                estimate.min(edge)
            } else {
                estimate.max(edge.next_up())
            }
        };
        let within = delivered - self.late;
        let mut value = side(estimate, 1.0, rank <= within);
        if let Some(Amazing { limit, within }) = amazing {
            value = side(value, limit, rank <= within);
        }
        Some(value)
    }

    /// Deliveries with relative time at or below `x` (failures never are).
    ///
    /// Exact at `x = 1` (the promise) and at the amaze limit of `amazing`,
    /// where the counts are exact. Elsewhere it is read from the sketch:
    /// exact for every delivery more than [`RELATIVE_ACCURACY`] away from
    /// `x`, so only deliveries within 1% of `x` can land on the wrong side.
    pub fn count_at_most(&self, x: f64, amazing: Option<Amazing>) -> u64 {
        let delivered = self.count() - self.failed;
        if x == 1.0 {
            return delivered - self.late;
        }
        if let Some(a) = amazing.filter(|a| a.limit == x) {
            return a.within;
        }
        self.sketch_at_most(x, delivered)
    }

    /// Of the `delivered`, how many the sketch puts at or below `x`.
    fn sketch_at_most(&self, x: f64, delivered: u64) -> u64 {
        if delivered == 0 || x.is_nan() || x < 0.0 {
            return 0;
        }
        // The largest rank whose sketch value is at or below x: values
        // rise with rank, so search.
        let (mut low, mut high) = (0, delivered);
        while low < high {
            let mid = low + (high - low).div_ceil(2);
            if self.value_at(mid, delivered).unwrap_or(f64::INFINITY) <= x {
                low = mid;
            } else {
                high = mid - 1;
            }
        }
        low
    }

    /// The sketch's value at `rank` (from 1) among the `delivered` values.
    fn value_at(&self, rank: u64, delivered: u64) -> Option<f64> {
        let q = if delivered <= 1 {
            0.0
        } else {
            // The sketch ranks floor(q' x (m - 1)) from 0 among the m
            // delivered values; the half step keeps floor() on rank - 1
            // despite float rounding.
            ((rank as f64 - 0.5) / (delivered - 1) as f64).clamp(0.0, 1.0)
        };
        // The sketch answers the top rank with the exact maximum and the
        // others with a bin's value, which can lie past it: held within the
        // exact extremes, quantiles never fall as q rises.
        let value = self.sketch.quantile(q).ok().flatten()?;
        let low = self.sketch.min().unwrap_or(value);
        let high = self.sketch.max().unwrap_or(value);
        Some(value.clamp(low.min(high), high))
    }

    /// Bytes held by this digest, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.sketch.length() * std::mem::size_of::<u64>()
    }
}

/// The amaze limit a read judges by, with how many deliveries were within
/// it ([`Digest::amazing_at`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Amazing {
    /// 1 - target margin, as a share of the promise.
    pub limit: f64,
    /// Deliveries at or below it.
    pub within: u64,
}

/// A digest as snapshots store it: the sketch in DataDog's standard binary
/// encoding (stable across crate versions) beside the exact counts.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    sketch: Vec<u8>,
    failed: u64,
    late: u64,
    amazing: u64,
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Stored {
            sketch: self.sketch.to_java_bytes(),
            failed: self.failed,
            late: self.late,
            amazing: self.amazing,
        }
        .serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let stored = Stored::deserialize(d)?;
        let mut sketch = DDSketch::from_java_bytes(&stored.sketch)
            .map_err(|e| D::Error::custom(format!("bad sketch: {e}")))?;
        // Decoding rebuilds the crate's default config; merging an empty
        // sketch of ours proves it equals ours (merge refuses any other)
        // without copying the bins.
        sketch
            .merge(&DDSketch::new(sketch_config()))
            .map_err(|_| D::Error::custom("sketch has a different accuracy"))?;
        let mut digest = Digest {
            sketch,
            ..Digest::new()
        };
        digest.failed = stored.failed;
        digest.late = stored.late;
        digest.amazing = stored.amazing;
        Ok(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivered(r: f64) -> Observation {
        Observation::Delivered {
            relative: r,
            late: r > 1.0,
            amazing: r <= 0.5,
        }
    }

    fn q(text: &str) -> Decimal {
        Decimal::parse(text).unwrap()
    }

    #[test]
    fn counts_outcomes_exactly() {
        let mut d = Digest::new();
        for r in [0.1, 0.4, 0.9, 1.0, 1.5] {
            d.record(delivered(r));
        }
        d.record(Observation::Failed);
        assert_eq!(d.count(), 6);
        assert_eq!(d.failed(), 1);
        assert_eq!(d.bad(), 2, "1.5 is late, 1.0 is exactly on time");
        assert_eq!(d.amazing_at(0.5).within, 2);
    }

    /// 1,000 deliveries at r = 0.001 .. 1.000 and 10 failures: below any x,
    /// the count is exact but for deliveries within 1% of x.
    #[test]
    fn count_at_most_is_exact_but_within_one_percent_of_x() {
        let mut d = Digest::new();
        for i in 1..=1000 {
            d.record(delivered(i as f64 / 1000.0));
        }
        for _ in 0..10 {
            d.record(Observation::Failed);
        }
        assert_eq!(d.count_at_most(1.0, None), 1000, "exact at the promise");
        assert_eq!(
            d.count_at_most(0.5, Some(d.amazing_at(0.5))),
            500,
            "exact at the amaze limit"
        );
        assert_eq!(d.count_at_most(10.0, None), 1000, "failures never count");
        assert_eq!(d.count_at_most(-1.0, None), 0);
        for x in [0.05, 0.25, 0.333, 0.72, 0.9] {
            let exact = (x * 1000.0_f64).floor() as u64;
            let low = (x / (1.0 + RELATIVE_ACCURACY) * 1000.0).floor() as u64;
            let high = (x * (1.0 + RELATIVE_ACCURACY) * 1000.0).floor() as u64;
            let got = d.count_at_most(x, None);
            assert!((low..=high).contains(&got), "x={x}: {got} vs exact {exact}");
        }
        assert_eq!(Digest::new().count_at_most(1.0, None), 0);
    }

    #[test]
    fn failures_rank_last() {
        let mut d = Digest::new();
        for _ in 0..98 {
            d.record(delivered(0.2));
        }
        d.record(Observation::Failed);
        d.record(Observation::Failed);
        // n = 100, rank(0.99) = 99: the first failure.
        assert_eq!(d.quantile(q("0.99"), None), Some(f64::INFINITY));
        // rank(0.98) = 98: the last delivered value.
        let v = d.quantile(q("0.98"), None).unwrap();
        assert!((v - 0.2).abs() <= 0.2 * RELATIVE_ACCURACY, "{v}");
    }

    /// 14 deliveries at 0.1 and one at 2.0: the 95% rank is ceil(14.25) = 15,
    /// the late one; the old lower-rank definition answered 0.1.
    #[test]
    fn nearest_rank_reaches_a_single_late_delivery() {
        let mut d = Digest::new();
        for _ in 0..14 {
            d.record(delivered(0.1));
        }
        d.record(delivered(2.0));
        let p95 = d.quantile(q("0.95"), None).unwrap();
        assert!((p95 - 2.0).abs() <= 2.0 * RELATIVE_ACCURACY, "{p95}");
        let p90 = d.quantile(q("0.9"), None).unwrap();
        assert!((p90 - 0.1).abs() <= 0.1 * RELATIVE_ACCURACY, "{p90}");
    }

    /// The sketch's bin around 1 reports 1.01 for a delivery exactly on the
    /// promise; the exact counts put it back on the right side.
    #[test]
    fn a_quantile_never_contradicts_the_counts() {
        let mut on_time = Digest::new();
        on_time.record(delivered(1.0));
        assert_eq!(on_time.quantile(q("0.5"), None), Some(1.0));
        let mut just_late = Digest::new();
        just_late.record(Observation::Delivered {
            relative: 0.999_999,
            late: true,
            amazing: false,
        });
        assert!(just_late.quantile(q("0.5"), None).unwrap() > 1.0);
    }

    /// A delivery exactly on the amaze limit (270ms against 300ms at 10%)
    /// has the ratio 0.9000000000000001 in floats; one just past it may read
    /// below 0.9. The exact flag puts each on its side.
    #[test]
    fn a_quantile_never_contradicts_the_amaze_count() {
        let on_limit = Observation::Delivered {
            relative: 0.270 / 0.300,
            late: false,
            amazing: true,
        };
        let past_limit = Observation::Delivered {
            relative: 0.9,
            late: false,
            amazing: false,
        };
        let mut d = Digest::new();
        d.record(on_limit);
        assert_eq!(d.quantile(q("0.5"), Some(d.amazing_at(0.9))), Some(0.9));
        let mut d = Digest::new();
        d.record(past_limit);
        assert!(d.quantile(q("0.5"), Some(d.amazing_at(0.9))).unwrap() > 0.9);
    }

    #[test]
    fn stored_digest_reads_back_identical() {
        let mut d = Digest::new();
        for i in 1..2000 {
            d.record(delivered(f64::from(i) / 700.0));
        }
        d.record(Observation::Failed);
        let bytes = postcard::to_stdvec(&d).unwrap();
        let back: Digest = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back.count(), d.count());
        assert_eq!(
            (back.failed, back.late, back.amazing),
            (d.failed, d.late, d.amazing)
        );
        for level in ["0", "0.1", "0.5", "0.9", "0.99", "0.999", "1"] {
            assert_eq!(
                back.quantile(q(level), None),
                d.quantile(q(level), None),
                "q={level}"
            );
        }
        let mut merged = back.clone();
        merged.merge(&d);
        assert_eq!(merged.count(), 2 * d.count());
    }

    #[test]
    fn empty_digest_has_no_quantile() {
        assert_eq!(Digest::new().quantile(q("0.5"), None), None);
    }

    #[test]
    fn single_value_is_its_own_quantile() {
        let mut d = Digest::new();
        d.record(delivered(0.3));
        assert_eq!(d.quantile(q("0.99"), None), Some(0.3));
    }

    #[test]
    fn all_failed_is_infinite() {
        let mut d = Digest::new();
        d.record(Observation::Failed);
        assert_eq!(d.quantile(q("0.5"), None), Some(f64::INFINITY));
    }

    /// Twenty deliveries 1 ns past a 1 s promise: the bin around them reads
    /// 1.01, the top rank the exact maximum. Every quantile is held within
    /// the exact extremes, so none falls as q rises.
    #[test]
    fn quantiles_never_fall_as_q_rises() {
        let mut d = Digest::new();
        for _ in 0..20 {
            d.record(Observation::Delivered {
                relative: 1.000_000_001,
                late: true,
                amazing: false,
            });
        }
        let qs = ["0.5", "0.9", "0.95", "0.99", "1"].map(|l| d.quantile(q(l), None).unwrap());
        assert!(qs.windows(2).all(|w| w[0] <= w[1]), "{qs:?}");
        assert!(qs.iter().all(|&v| v == 1.000_000_001), "{qs:?}");
    }

    /// Twenty deliveries at 0.8 counted amazing under a 10% target margin
    /// (limit 0.9); a reload raises it to 50% (limit 0.5). The verdicts were
    /// taken at another limit, so the count is read from the sketch: none is
    /// within 0.5, and the quantiles stay at 0.8 instead of being pinned to
    /// the new limit.
    #[test]
    fn verdicts_taken_under_another_target_margin_are_read_again() {
        let mut d = Digest::new();
        for _ in 0..20 {
            d.record(Observation::Delivered {
                relative: 0.8,
                late: false,
                amazing: true,
            });
        }
        assert_eq!(
            d.amazing_at(0.9).within,
            20,
            "the limit they were judged by"
        );
        let raised = d.amazing_at(0.5);
        assert_eq!(raised.within, 0);
        let p95 = d.quantile(q("0.95"), Some(raised)).unwrap();
        assert!((p95 - 0.8).abs() <= 0.8 * RELATIVE_ACCURACY, "{p95}");
        // Lowered to 5% (limit 0.95): all twenty are within it.
        let lowered = d.amazing_at(0.95);
        assert_eq!(lowered.within, 20);
        // Counted not amazing under 50%, then lowered back to 10%.
        let mut e = Digest::new();
        for _ in 0..20 {
            e.record(Observation::Delivered {
                relative: 0.8,
                late: false,
                amazing: false,
            });
        }
        assert_eq!(e.amazing_at(0.5).within, 0);
        assert_eq!(e.amazing_at(0.9).within, 20);
        // Raised by a hair: the limit is below the fastest delivery, so none
        // is within it, and no quantile falls below the fastest.
        let hair = d.amazing_at(0.799_999_999);
        assert_eq!(hair.within, 0);
        assert_eq!(d.quantile(q("0.5"), Some(hair)), Some(0.8));
        let p50 = e.quantile(q("0.5"), Some(e.amazing_at(0.9))).unwrap();
        assert!((p50 - 0.8).abs() <= 0.8 * RELATIVE_ACCURACY, "{p50}");
    }
}
