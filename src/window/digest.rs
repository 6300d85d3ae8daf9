//! The digest of one time slot: a relative-time sketch plus exact outcome counts.
//!
//! No clock, no config, no I/O: values in, figures out.

use sketches_ddsketch::{Config, DDSketch};

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
    /// Delivered in `relative` x promise; `amazing` when within the target margin.
    Delivered { relative: f64, amazing: bool },
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
    pub fn new() -> Self {
        Digest {
            sketch: DDSketch::new(sketch_config()),
            failed: 0,
            late: 0,
            amazing: 0,
        }
    }

    pub fn record(&mut self, obs: Observation) {
        match obs {
            Observation::Delivered { relative, amazing } => {
                self.sketch.add(relative);
                self.late += u64::from(relative > 1.0);
                self.amazing += u64::from(amazing);
            }
            Observation::Failed => self.failed += 1,
        }
    }

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

    pub fn failed(&self) -> u64 {
        self.failed
    }

    /// Failed or later than the promise (r > 1).
    pub fn bad(&self) -> u64 {
        self.failed + self.late
    }

    /// Delivered within the target margin.
    pub fn amazing(&self) -> u64 {
        self.amazing
    }

    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// The q-quantile of r over every delivery, failures ranked last at +inf.
    ///
    /// Uses the sketch's lower-quantile rank, floor(q x (n - 1)), over all n
    /// deliveries; when that rank falls among the failures the answer is +inf.
    /// `None` for an empty digest or q outside [0, 1].
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = (q * (n - 1) as f64) as u64;
        let delivered = n - self.failed;
        if rank >= delivered {
            return Some(f64::INFINITY);
        }
        if delivered == 1 {
            return self.sketch.quantile(0.0).ok().flatten();
        }
        // Ask the sketch for the same rank among delivered values only; the
        // half step keeps floor() on `rank` despite float rounding.
        let q_delivered = ((rank as f64 + 0.5) / (delivered - 1) as f64).min(1.0);
        self.sketch.quantile(q_delivered).ok().flatten()
    }

    /// Bytes held by this digest, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.sketch.length() * std::mem::size_of::<u64>()
    }
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
            amazing: r <= 0.5,
        }
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
        assert_eq!(d.amazing(), 2);
    }

    #[test]
    fn failures_rank_last() {
        let mut d = Digest::new();
        for _ in 0..98 {
            d.record(delivered(0.2));
        }
        d.record(Observation::Failed);
        d.record(Observation::Failed);
        // n = 100, rank(0.99) = floor(98.01) = 98: the first failure.
        assert_eq!(d.quantile(0.99), Some(f64::INFINITY));
        // rank(0.97) = floor(96.03) = 96: still a delivered value.
        let q = d.quantile(0.97).unwrap();
        assert!((q - 0.2).abs() <= 0.2 * RELATIVE_ACCURACY, "{q}");
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
        for q in [0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(back.quantile(q), d.quantile(q), "q={q}");
        }
        let mut merged = back.clone();
        merged.merge(&d);
        assert_eq!(merged.count(), 2 * d.count());
    }

    #[test]
    fn empty_digest_has_no_quantile() {
        assert_eq!(Digest::new().quantile(0.5), None);
    }

    #[test]
    fn single_value_is_its_own_quantile() {
        let mut d = Digest::new();
        d.record(delivered(0.3));
        assert_eq!(d.quantile(0.99), Some(0.3));
    }

    #[test]
    fn all_failed_is_infinite() {
        let mut d = Digest::new();
        d.record(Observation::Failed);
        assert_eq!(d.quantile(0.5), Some(f64::INFINITY));
    }
}
