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

/// Bucket bounds within one octave, and where to start looking for a
/// mantissa's: a bucket is found from a value's binary exponent and one or
/// two comparisons of its mantissa here, with no logarithm, and its bounds
/// are these scaled by a power of two, so a value and its bucket's bounds
/// agree exactly.
struct Octave {
    /// 2^(j/128) for j in 0..=128.
    bounds: [f64; 129],
    /// For mantissas in [1 + k/256, 1 + (k+1)/256): the first j whose bound
    /// is at least 1 + k/256. Buckets are wider than 1/256 of an octave's
    /// start, so the answer is this j or the next.
    start: [u8; 256],
}

static OCTAVE: std::sync::LazyLock<Octave> = std::sync::LazyLock::new(|| {
    let bounds: [f64; 129] = std::array::from_fn(|j| (j as f64 / PER_OCTAVE).exp2());
    let start = std::array::from_fn(|k| {
        let low = 1.0 + k as f64 / 256.0;
        bounds.partition_point(|&b| b < low) as u8
    });
    Octave { bounds, start }
});

/// 2^e, exactly, for the exponents bucket bounds use.
fn pow2(e: i32) -> f64 {
    match e {
        -1022..=1023 => f64::from_bits(((e + 1023) as u64) << 52),
        _ => 2f64.powi(e),
    }
}

/// Upper bound of bucket `index` at [`SCHEMA`]: 2^(index/128).
pub fn upper_bound(index: i32) -> f64 {
    let per = 1i32 << SCHEMA;
    OCTAVE.bounds[index.rem_euclid(per) as usize] * pow2(index.div_euclid(per))
}

/// The bucket of a completed delivery, `None` for the zero bucket. `late`
/// comes from the exact nanosecond comparison with the promise, so a
/// delivery on the promise is in bucket 0 and one a nanosecond past it in
/// bucket 1 even where the float ratio rounds to 1.
pub fn index_of(relative: f64, late: bool) -> Option<i32> {
    if !late && relative <= ZERO_THRESHOLD {
        return None;
    }
    let bits = relative.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let index = if relative.is_nan() {
        0
    } else if biased == 0x7ff || biased > 1023 + 10 {
        // Infinite, or past the top bucket's bound of 2^10.
        TOP_INDEX
    } else if biased == 0 {
        // Subnormal (never produced: the zero bucket takes tiny values).
        i32::MIN + 1
    } else {
        // r = m x 2^e with m in [1, 2): the bucket is e x 128 + j for the
        // first bound 2^(j/128) at or above m.
        let mantissa = f64::from_bits((bits & ((1 << 52) - 1)) | (1023 << 52));
        let octave = &*OCTAVE;
        let j = usize::from(octave.start[((bits >> 44) & 0xff) as usize]);
        let j = j + usize::from(octave.bounds[j] < mantissa);
        ((biased - 1023) << SCHEMA) + j as i32
    };
    let index = index.min(TOP_INDEX);
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

    /// The table search gives the buckets of ceil(log2(r) x 128), the
    /// definition, wherever the logarithm is not within rounding of a bound.
    #[test]
    fn buckets_are_ceil_of_log2_times_128() {
        let mut r: f64 = 3e-9;
        let mut checked = 0;
        while r < 2000.0 {
            let scaled = r.log2() * PER_OCTAVE;
            let exact = scaled.ceil() as i32;
            // Past the clamps, late is exactly r > 1.
            let got = index_of(r, r > 1.0).unwrap();
            if (scaled - scaled.round()).abs() > 1e-9 {
                assert_eq!(got, exact.min(TOP_INDEX), "{r}");
                checked += 1;
            }
            r *= 1.000_731;
        }
        assert!(checked > 30_000, "{checked}");
        assert_eq!(index_of(f64::INFINITY, true), Some(TOP_INDEX));
        assert_eq!(index_of(1e300, true), Some(TOP_INDEX));
        assert_eq!(index_of(1024.0, true), Some(TOP_INDEX));
        assert_eq!(
            index_of(1024.0 * (1.0 + f64::EPSILON), true),
            Some(TOP_INDEX)
        );
        assert_eq!(
            index_of(upper_bound(TOP_INDEX - 1), true),
            Some(TOP_INDEX - 1)
        );
        assert_eq!(
            index_of(ZERO_THRESHOLD * 2.0, false),
            Some(-128 * 128 + 128)
        );
    }

    /// Each stretch of 1/256 of an octave holds at most one bucket bound,
    /// which the one-comparison search relies on.
    #[test]
    fn a_bound_at_most_per_stretch() {
        for k in 0..256 {
            let (low, high) = (1.0 + k as f64 / 256.0, 1.0 + (k + 1) as f64 / 256.0);
            let inside = OCTAVE
                .bounds
                .iter()
                .filter(|&&b| low <= b && b < high)
                .count();
            assert!(inside <= 1, "stretch {k}: {inside}");
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
