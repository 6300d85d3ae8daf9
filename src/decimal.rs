//! Exact decimals as config text writes them: objectives, margins, bucket
//! edges. `99.99%` is 9999 / 10^4, never the float 0.9998999999999999, so
//! thresholds compare exactly and labels print as written.

use std::cmp::Ordering;
use std::fmt;
use std::time::Duration;

/// Most digits after the point a [`Decimal`] keeps (10^18 fits in a `u64`).
pub const MAX_SCALE: u8 = 18;

const POW10: [u64; MAX_SCALE as usize + 1] = {
    let mut p = [1u64; MAX_SCALE as usize + 1];
    let mut i = 1;
    while i < p.len() {
        p[i] = p[i - 1] * 10;
        i += 1;
    }
    p
};

/// A non-negative decimal held exactly: `units / 10^scale`, in lowest terms
/// (no trailing zero in `units` unless `scale` is 0), so equal values are
/// equal structs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Decimal {
    units: u64,
    scale: u8,
}

/// Why a text is not a [`Decimal`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    /// Not a plain decimal or percentage.
    #[error("`{0}` is not a decimal number: write e.g. `99.9%` or `0.999`")]
    Syntax(String),
    /// More digits after the point than can be held.
    #[error("`{0}` has more than {MAX_SCALE} digits after the point")]
    TooPrecise(String),
    /// More digits than a `u64` holds.
    #[error("`{0}` is too large")]
    TooLarge(String),
}

impl Decimal {
    /// 0.
    pub const ZERO: Decimal = Decimal::new(0, 0);
    /// 1.
    pub const ONE: Decimal = Decimal::new(1, 0);

    /// `units / 10^scale`, reduced to lowest terms.
    ///
    /// # Panics
    /// When `scale` exceeds [`MAX_SCALE`]; constants only, never input.
    pub const fn new(mut units: u64, mut scale: u8) -> Decimal {
        assert!(scale <= MAX_SCALE, "scale beyond MAX_SCALE");
        while scale > 0 && units.is_multiple_of(10) {
            units /= 10;
            scale -= 1;
        }
        Decimal { units, scale }
    }

    /// Parses `99.99%`, `0.9999`, `12.5%`, `5` or `.5` exactly. Digit
    /// separators `_` are allowed; signs, exponents and anything else are not.
    pub fn parse(text: &str) -> Result<Decimal, DecimalError> {
        let s = text.trim();
        let (number, percent) = match s.strip_suffix('%') {
            Some(n) => (n.trim_end(), true),
            None => (s, false),
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        let digits = |part: &str| part.chars().all(|c| c.is_ascii_digit() || c == '_');
        let significant = whole
            .chars()
            .chain(fraction.chars())
            .any(|c| c.is_ascii_digit());
        if !significant || !digits(whole) || !digits(fraction) || number.starts_with('_') {
            return Err(DecimalError::Syntax(text.to_owned()));
        }
        let fraction = fraction.trim_end_matches(['0', '_']);
        let scale =
            fraction.chars().filter(char::is_ascii_digit).count() + 2 * usize::from(percent);
        if scale > MAX_SCALE as usize {
            return Err(DecimalError::TooPrecise(text.to_owned()));
        }
        let mut units: u64 = 0;
        for c in whole
            .chars()
            .chain(fraction.chars())
            .filter(char::is_ascii_digit)
        {
            units = units
                .checked_mul(10)
                .and_then(|u| u.checked_add(u64::from(c as u8 - b'0')))
                .ok_or_else(|| DecimalError::TooLarge(text.to_owned()))?;
        }
        Ok(Decimal::lowest(units, scale as u8))
    }

    /// `units / 10^scale` in lowest terms at full precision: `50%` is
    /// 5 / 10, not 50 / 100.
    fn lowest(mut units: u64, mut scale: u8) -> Decimal {
        while scale > 0 && units.is_multiple_of(10) {
            units /= 10;
            scale -= 1;
        }
        Decimal { units, scale }
    }

    /// Reads plain decimal digits with at most one point (`183`, `0.27`,
    /// `5.`), as sources read millions of values a second: `None` for
    /// anything else (signs, exponents, spaces, `_`), or past the range
    /// and precision of [`Decimal::parse`], which reads the same text the
    /// same.
    pub fn parse_plain(text: &[u8]) -> Option<Decimal> {
        let mut units: u64 = 0;
        let mut scale: usize = 0;
        let (mut point, mut digits) = (false, false);
        // Zeros after the point not yet known to be followed by a digit.
        let mut zeros: usize = 0;
        for &b in text {
            match b {
                b'.' if !point => point = true,
                b'0'..=b'9' => {
                    digits = true;
                    let d = u64::from(b - b'0');
                    if point && d == 0 {
                        zeros += 1;
                        continue;
                    }
                    for _ in 0..zeros {
                        units = units.checked_mul(10)?;
                    }
                    units = units.checked_mul(10)?.checked_add(d)?;
                    if point {
                        scale += zeros + 1;
                    }
                    zeros = 0;
                }
                _ => return None,
            }
        }
        if !digits || scale > MAX_SCALE as usize {
            return None;
        }
        Some(Decimal::lowest(units, scale as u8))
    }

    /// The digits without the point: `0.9999` is 9999 (units of 10^-4).
    pub fn units(self) -> u64 {
        self.units
    }

    /// Digits after the point, in lowest terms (`0.9999` has 4, `5` none).
    pub fn scale(self) -> u8 {
        self.scale
    }

    /// The nearest `f64`: what Prometheus parses from this value's text.
    pub fn to_f64(self) -> f64 {
        // Both operands are exact below 2^53, so the one division rounds once.
        if self.units < 1 << 53 && self.scale <= 15 {
            return self.units as f64 / POW10[self.scale as usize] as f64;
        }
        self.to_string().parse().unwrap_or(f64::NAN)
    }

    /// `1 - self`, for values up to 1.
    pub fn complement(self) -> Option<Decimal> {
        let one = POW10[self.scale as usize];
        (self.units <= one).then(|| Decimal::new(one - self.units, self.scale))
    }

    /// Half of this value, exact (`50%` -> `25%`); `None` past [`MAX_SCALE`].
    pub fn half(self) -> Option<Decimal> {
        if self.units.is_multiple_of(2) {
            return Some(Decimal::new(self.units / 2, self.scale));
        }
        (self.scale < MAX_SCALE).then(|| Decimal::new(self.units * 5, self.scale + 1))
    }

    /// Nearest rank of this quantile among `n` values: ceil(self x n), at
    /// least 1 (Hyndman and Fan's definition 1, the one SLA contracts mean).
    pub fn rank(self, n: u64) -> u64 {
        let scaled = u128::from(self.units) * u128::from(n);
        let one = u128::from(POW10[self.scale as usize]);
        let rank = scaled.div_ceil(one);
        u64::try_from(rank).unwrap_or(u64::MAX).max(1)
    }

    /// Whether `part / whole` is below this value, exactly. `whole` > 0.
    pub fn exceeds_share(self, part: u64, whole: u64) -> bool {
        u128::from(part) * u128::from(POW10[self.scale as usize])
            < u128::from(self.units) * u128::from(whole)
    }

    /// Whether `part <= self x whole`, exactly, in nanoseconds.
    pub fn covers(self, part: Duration, whole: Duration) -> bool {
        let left = part
            .as_nanos()
            .checked_mul(u128::from(POW10[self.scale as usize]));
        let right = whole.as_nanos().checked_mul(u128::from(self.units));
        match (left, right) {
            (Some(l), Some(r)) => l <= r,
            // Only a product past 3.4e38 overflows: the larger side is that one.
            (None, _) => false,
            (_, None) => true,
        }
    }

    /// `bad / n` over `1 - self`: how fast a budget of `1 - self` is spent
    /// (SRE workbook ch. 5, burn rate). Infinite when this value is 1.
    pub fn burn_rate(self, bad: u64, n: u64) -> f64 {
        let one = POW10[self.scale as usize];
        let allowed = one.saturating_sub(self.units);
        if n == 0 {
            return 0.0;
        }
        if allowed == 0 {
            return if bad == 0 { 0.0 } else { f64::INFINITY };
        }
        // bad x 10^s / (n x allowed): one division of exactly known integers.
        (u128::from(bad) * u128::from(one)) as f64 / (u128::from(n) * u128::from(allowed)) as f64
    }

    /// floor(self x `nanos`), saturating at `u64::MAX`: for a whole number
    /// of nanoseconds d, d <= self x T exactly when d <= floor(self x T), so
    /// a threshold can be compared as one integer.
    pub fn floor_of(self, nanos: u64) -> u64 {
        let scaled = u128::from(nanos) * u128::from(self.units);
        u64::try_from(scaled / u128::from(POW10[self.scale as usize])).unwrap_or(u64::MAX)
    }

    /// This value times `unit`, rounded to the nearest nanosecond and
    /// saturating at [`Duration::MAX`]: `0.05` of a second is 50 ms.
    pub fn of(self, unit: Duration) -> Duration {
        // In u64 when it fits (any duration under 584 years): u128 division
        // is a library call, and sources convert millions a second.
        let one = POW10[self.scale as usize];
        if let Ok(unit) = u64::try_from(unit.as_nanos())
            && let Some(scaled) = unit.checked_mul(self.units)
            && let Some(rounded) = scaled.checked_add(one / 2)
        {
            return Duration::from_nanos(rounded / one);
        }
        let one = u128::from(one);
        let Some(scaled) = unit.as_nanos().checked_mul(u128::from(self.units)) else {
            return Duration::MAX;
        };
        let nanos = (scaled + one / 2) / one;
        let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
        if secs == u64::MAX {
            return Duration::MAX;
        }
        Duration::new(secs, (nanos % 1_000_000_000) as u32)
    }

    /// This value as a percentage, exactly: `0.125` is `12.5%`.
    pub fn percent(self) -> String {
        format!(
            "{}%",
            decimal_text(u128::from(self.units) * 100, u32::from(self.scale))
        )
    }

    /// This value times `whole`, exact in seconds, as decimal text
    /// (`0.9` of `300ms` is `0.27`): histogram bucket edges.
    pub fn of_seconds(self, whole: Duration) -> String {
        let nanos = whole.as_nanos() * u128::from(self.units);
        decimal_text(nanos, u32::from(self.scale) + 9)
    }
}

/// `value / 10^scale` as the shortest decimal text that is exactly it.
fn decimal_text(value: u128, scale: u32) -> String {
    let mut digits = value.to_string();
    let mut scale = scale as usize;
    while scale > 0 && digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
        scale -= 1;
    }
    if value == 0 {
        return "0".to_owned();
    }
    if scale == 0 {
        return digits;
    }
    if digits.len() <= scale {
        format!("0.{}{digits}", "0".repeat(scale - digits.len()))
    } else {
        let (whole, fraction) = digits.split_at(digits.len() - scale);
        format!("{whole}.{fraction}")
    }
}

impl fmt::Display for Decimal {
    /// The shortest text that is exactly this value: `0.9999`, `0.5`, `1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&decimal_text(u128::from(self.units), u32::from(self.scale)))
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Decimal) -> Ordering {
        let left = u128::from(self.units) * u128::from(POW10[other.scale as usize]);
        let right = u128::from(other.units) * u128::from(POW10[self.scale as usize]);
        left.cmp(&right)
    }
}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Decimal) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::parse(s).unwrap()
    }

    #[test]
    fn percent_and_decimal_spellings_are_one_value() {
        for (percent, decimal) in [
            ("99.99%", "0.9999"),
            ("99.9%", "0.999"),
            ("99.999%", "0.99999"),
            ("50%", "0.5"),
            ("12.5%", "0.125"),
            ("100%", "1"),
            ("0%", "0"),
        ] {
            assert_eq!(d(percent), d(decimal), "{percent}");
            assert_eq!(d(percent).to_string(), decimal, "{percent}");
        }
        assert_eq!(d("0.9999").to_f64(), 0.9999);
        assert_eq!(d(".5"), d("0.50"));
        assert_eq!(d("0.125").percent(), "12.5%");
        assert_eq!(d("0.9999").percent(), "99.99%");
        assert_eq!(d("1").percent(), "100%");
        assert_eq!(d("1_000"), Decimal::new(1000, 0));
    }

    #[test]
    fn bad_text_is_refused_with_its_reason() {
        for bad in [
            "", "%", ".", "abc", "-1", "+1", "1e-3", "0,5", "1.2.3", "_1", "1 %x",
        ] {
            assert!(
                matches!(Decimal::parse(bad), Err(DecimalError::Syntax(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            Decimal::parse("0.1234567890123456789"),
            Err(DecimalError::TooPrecise(_))
        ));
        assert!(matches!(
            Decimal::parse("99999999999999999999"),
            Err(DecimalError::TooLarge(_))
        ));
    }

    #[test]
    fn nearest_rank_is_ceil_of_q_times_n() {
        assert_eq!(d("95%").rank(15), 15, "14.25 rounds up");
        assert_eq!(d("99%").rank(100), 99);
        assert_eq!(d("99.99%").rank(10_001), 10_000, "10000.0001 rounds up");
        assert_eq!(d("99.99%").rank(10_000), 9_999);
        assert_eq!(d("50%").rank(1), 1);
        assert_eq!(Decimal::ZERO.rank(5), 1, "the smallest value");
    }

    #[test]
    fn shares_and_thresholds_compare_exactly() {
        // 9,999 of 10,001 within is 0.99980002 < 0.9999.
        assert!(d("99.99%").exceeds_share(9_999, 10_001));
        assert!(
            !d("99.99%").exceeds_share(10_000, 10_001),
            "0.99990001 is not below"
        );
        assert!(!d("95%").exceeds_share(19, 20));
        let ms = Duration::from_millis;
        assert!(d("0.9").covers(ms(270), ms(300)));
        assert!(!d("0.9").covers(ms(270) + Duration::from_nanos(1), ms(300)));
        assert!(d("0.45").covers(ms(135), ms(300)));
        assert!(d("0.75").covers(ms(525), ms(700)));
        assert!(d("1.5").covers(ms(1050), ms(700)));
        assert_eq!(d("0.9").of_seconds(ms(300)), "0.27");
        assert_eq!(d("0.9").floor_of(300_000_000), 270_000_000);
        assert_eq!(d("0.33").floor_of(7), 2, "2.31 ns: 2 is within, 3 is not");
        assert_eq!(d("0.05").of(Duration::from_secs(1)), ms(50));
        assert_eq!(d("183.5").of(ms(1)), Duration::from_micros(183_500));
        assert_eq!(
            d("0.0000000005").of(Duration::from_secs(1)),
            Duration::from_nanos(1)
        );
        assert_eq!(d("5").of_seconds(Duration::from_secs(3600)), "18000");
        assert_eq!(d("0.1").of_seconds(Duration::from_nanos(1)), "0.0000000001");
    }

    #[test]
    fn complement_half_and_order() {
        assert_eq!(d("10%").complement(), Some(d("0.9")));
        assert_eq!(d("99.99%").complement(), Some(d("0.0001")));
        assert_eq!(d("1.5").complement(), None);
        assert_eq!(d("50%").half(), Some(d("25%")));
        assert_eq!(d("0.3").half(), Some(d("0.15")));
        assert!(d("0.25") < d("0.3"));
        assert!(d("0.9999") > d("0.999"));
        assert_eq!(d("0.5").cmp(&d("50%")), Ordering::Equal);
    }

    #[test]
    fn burn_rate_divides_once() {
        assert_eq!(d("95%").burn_rate(1, 15), 100.0 / 75.0);
        assert!((d("99%").burn_rate(2, 100) - 2.0).abs() < 1e-15);
        assert_eq!(d("99%").burn_rate(0, 100), 0.0);
    }
}
