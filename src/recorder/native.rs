//! Cumulative native-histogram buckets of r = duration / promise: the one
//! distribution Prometheus can sum across instances and take a quantile of.
//!
//! Buckets follow Prometheus' exponential scheme (see
//! <https://prometheus.io/docs/specs/native_histograms/>): at schema `s`,
//! bucket `i` holds `base^(i-1) < r <= base^i` with `base = 2^(2^-s)`, so
//! buckets are upper-inclusive and r = 1 (on the promise) is the upper bound
//! of bucket 0. Schema [`SCHEMA`] makes every bucket 0.54% wide, so a
//! quantile read from summed buckets is within 0.55% of the exact one.

use serde::{Deserialize, Serialize};

/// Prometheus native-histogram schema: growth factor 2^(1/128) = 1.00543.
/// Schema 6 (1.09% wide) could miss the 1% bound; 8 doubles the buckets.
pub const SCHEMA: i32 = 7;

/// Buckets per doubling of r at [`SCHEMA`].
const PER_OCTAVE: f64 = (1u32 << SCHEMA) as f64;

/// Width of the zero bucket: client_golang's default, 2^-128. Only a delivery
/// of 0 ns comes near it.
pub const ZERO_THRESHOLD: f64 = 2.938_735_877_055_719e-39;

/// Index of the top bucket, whose upper bound is r = 1024. Failed deliveries,
/// and deliveries slower than 1024 x their promise, are counted there: every
/// one of them floors the margin at -1 either way, and a finite bound keeps
/// PromQL's quantiles finite.
pub const TOP_INDEX: i32 = 10 << SCHEMA;

/// Upper bound of bucket `index` at [`SCHEMA`].
pub fn upper_bound(index: i32) -> f64 {
    (f64::from(index) / PER_OCTAVE).exp2()
}

/// The bucket of a completed delivery, `None` for the zero bucket. `late`
/// comes from the exact nanosecond comparison with the promise, so a
/// delivery on the promise is in bucket 0 and one a nanosecond past it in
/// bucket 1 even where the float ratio rounds to 1.
pub fn index_of(relative: f64, late: bool) -> Option<i32> {
    if !late && relative <= ZERO_THRESHOLD {
        return None;
    }
    // ceil(log2(r) x 2^schema), within i32 for every positive finite float;
    // NaN (never produced) would land in bucket 0.
    let raw = (relative.log2() * PER_OCTAVE).ceil();
    let mut index = raw.clamp(f64::from(i32::MIN + 1), f64::from(TOP_INDEX)) as i32;
    // log2 may round across a boundary: hold r in (bound(i - 1), bound(i)]
    // as `upper_bound` computes the bounds.
    if index > i32::MIN + 1 && relative <= upper_bound(index - 1) {
        index -= 1;
    } else if index < TOP_INDEX && relative > upper_bound(index) {
        index += 1;
    }
    Some(if late { index.max(1) } else { index.min(0) })
}

/// Counts per bucket since the process (or its restored state) began; never
/// decreasing, so Prometheus can `rate()` it like a counter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NativeBuckets {
    /// Deliveries in the zero bucket.
    zero: u64,
    /// (index, count) with count > 0, ascending by index.
    buckets: Vec<(i32, u64)>,
    /// Sum of r over completed deliveries (failed ones have no r).
    sum: f64,
}

impl NativeBuckets {
    /// Counts a completed delivery; see [`index_of`].
    pub fn observe(&mut self, relative: f64, late: bool) {
        self.sum += relative;
        match index_of(relative, late) {
            None => self.zero += 1,
            Some(i) => self.add(i, 1),
        }
    }

    /// Counts a failed delivery in the top bucket.
    pub fn observe_failed(&mut self) {
        self.add(TOP_INDEX, 1);
    }

    fn add(&mut self, index: i32, n: u64) {
        match self.buckets.binary_search_by_key(&index, |&(i, _)| i) {
            Ok(at) => self.buckets[at].1 += n,
            Err(at) => self.buckets.insert(at, (index, n)),
        }
    }

    /// Adds every count of `other` (series folded together, or summed for the report).
    pub fn merge(&mut self, other: &NativeBuckets) {
        self.zero += other.zero;
        self.sum += other.sum;
        for &(i, n) in &other.buckets {
            self.add(i, n);
        }
    }

    /// Deliveries counted, the zero bucket included.
    pub fn count(&self) -> u64 {
        self.zero + self.buckets.iter().map(|&(_, n)| n).sum::<u64>()
    }

    /// Sum of r over completed deliveries.
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// Deliveries in the zero bucket.
    pub fn zero_count(&self) -> u64 {
        self.zero
    }

    /// The positive buckets as Prometheus encodes them: spans of consecutive
    /// indexes as (offset from the end of the previous span, length), and
    /// each bucket's count as the delta from the bucket before it.
    pub fn spans_and_deltas(&self) -> (Vec<(i32, u32)>, Vec<i64>) {
        let mut spans: Vec<(i32, u32)> = Vec::new();
        let mut deltas = Vec::with_capacity(self.buckets.len());
        let mut next: Option<i32> = None;
        let mut previous = 0i64;
        for &(index, count) in &self.buckets {
            match (next, spans.last_mut()) {
                (Some(n), Some(span)) if n == index => span.1 += 1,
                (Some(n), _) => spans.push((index - n, 1)),
                (None, _) => spans.push((index, 1)),
            }
            next = Some(index + 1);
            let count = i64::try_from(count).unwrap_or(i64::MAX);
            deltas.push(count - previous);
            previous = count;
        }
        (spans, deltas)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// r = 1 is the upper bound of bucket 0; just past it is bucket 1, even
    /// when the float ratio rounds to exactly 1.
    #[test]
    fn the_promise_is_a_bucket_boundary() {
        assert_eq!(upper_bound(0), 1.0);
        assert_eq!(index_of(1.0, false), Some(0));
        assert_eq!(index_of(1.0, true), Some(1));
        assert_eq!(index_of(1.0 + f64::EPSILON, true), Some(1));
        assert_eq!(index_of(1.0 - f64::EPSILON, false), Some(0));
        assert_eq!(index_of(2.0, true), Some(128));
        assert_eq!(index_of(0.5, false), Some(-128));
        assert_eq!(upper_bound(128), 2.0);
        for i in [-300, -5, 5, 77, 1000] {
            assert_eq!(index_of(upper_bound(i), i > 0), Some(i), "bound of {i}");
        }
    }

    /// Every r lies inside its bucket, and the bucket is under 0.55% wide.
    #[test]
    fn each_value_lies_in_its_bucket() {
        let mut r = 1e-6;
        while r < 1000.0 {
            let late = r > 1.0;
            let i = index_of(r, late).unwrap();
            let (low, high) = (upper_bound(i - 1), upper_bound(i));
            assert!(
                low < r && r <= high * (1.0 + 1e-12),
                "{r} in ({low}, {high}]"
            );
            assert!(high / low < 1.0055);
            r *= 1.0137;
        }
    }

    #[test]
    fn zero_failed_and_huge_values_have_their_buckets() {
        let mut h = NativeBuckets::default();
        h.observe(0.0, false);
        h.observe(5000.0, true);
        h.observe_failed();
        assert_eq!(h.zero_count(), 1);
        assert_eq!(h.count(), 3);
        assert_eq!(h.spans_and_deltas(), (vec![(TOP_INDEX, 1)], vec![2]));
        assert_eq!(upper_bound(TOP_INDEX), 1024.0);
    }

    /// Spans and deltas as Prometheus reads them, gaps included.
    #[test]
    fn spans_and_deltas_follow_the_protobuf_encoding() {
        let mut h = NativeBuckets::default();
        for (r, n) in [(1.0, 3), (upper_bound(-1), 1), (upper_bound(5), 4)] {
            for _ in 0..n {
                h.observe(r, r > 1.0);
            }
        }
        // Buckets -1:1, 0:3, 5:4.
        assert_eq!(h.spans_and_deltas(), (vec![(-1, 2), (4, 1)], vec![1, 2, 1]));
        let mut other = NativeBuckets::default();
        other.observe(1.0, false);
        h.merge(&other);
        assert_eq!(h.count(), 9);
        assert_eq!(h.spans_and_deltas().1, vec![1, 3, 0]);
    }
}
