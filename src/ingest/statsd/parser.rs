//! StatsD lines as clients really send them, parsed without allocating
//! per value:
//!
//! - etsy: `name:value|type[|@rate]`, several metrics on a line as
//!   `name:1|ms:2|ms|@0.1`, several lines in a packet;
//! - DogStatsD: `name:1:2:3|ms|@0.5|#tag:v,flag` (several values, tags; an
//!   empty list or a trailing comma is fine), with its `c:` container and
//!   `T` timestamp fields ignored; service checks (`_sc|`) and events
//!   (`_e{`) are told apart, not metrics;
//! - Telegraf and InfluxDB: tags in the name, `name,tag=v,tag2=v2:1|ms`.
//!
//! Only timers carry delivery times: type `ms`, and DogStatsD's `h` and `d`
//! (histograms and distributions). Values are kept as written so they
//! convert exactly in the mapping's unit.

use std::fmt;

use smallvec::SmallVec;

use crate::decimal::Decimal;
use crate::delivery::Amount;
use crate::source::Reason;

/// One metric line, borrowing from the packet.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Line<'a> {
    /// The metric name, without Telegraf tags.
    pub name: &'a str,
    /// Each metric the line holds, in order (one or two, nearly always: held
    /// inline).
    pub samples: SmallVec<[Sample<'a>; 2]>,
    /// `key:value` (or bare `key`) tags: DogStatsD's and Telegraf's.
    pub tags: SmallVec<[Tag<'a>; 4]>,
}

/// One value of a line, with its type and sample rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    /// The value as written.
    pub value: &'a str,
    /// Timer (with its value, read once) or not.
    pub kind: Kind,
    /// Fraction of events this value stands for, in (0, 1], exact.
    pub rate: Decimal,
}

/// A tag: a name and a value (`""` for a bare flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag<'a> {
    /// Its name.
    pub key: &'a str,
    /// Its value.
    pub value: &'a str,
}

/// What a line measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// `ms`, `h` or `d`: a duration, in units the mapping names.
    Timer(Amount),
    /// Counters, gauges, sets and the rest: not delivery times.
    Other,
}

impl Sample<'_> {
    /// A timer's value; `None` for other types.
    pub fn timer(&self) -> Option<Amount> {
        match self.kind {
            Kind::Timer(amount) => Some(amount),
            Kind::Other => None,
        }
    }
}

/// Why a line holds no metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Bytes that are not UTF-8.
    NotUtf8,
    /// No `:value`.
    NoValue,
    /// No `|type`.
    NoType,
    /// No metric name.
    EmptyName,
    /// A value that is not a non-negative number.
    BadValue,
    /// A sample rate outside (0, 1].
    BadSampleRate,
    /// A DogStatsD service check (`_sc|...`): not a metric.
    ServiceCheck,
    /// A DogStatsD event (`_e{...}`): not a metric.
    Event,
}

impl ParseError {
    /// The reason it is counted under.
    pub fn reason(self) -> Reason {
        match self {
            ParseError::NotUtf8 => Reason::NotUtf8,
            ParseError::NoValue => Reason::NoValue,
            ParseError::NoType => Reason::NoType,
            ParseError::EmptyName => Reason::EmptyName,
            ParseError::BadValue => Reason::BadValue,
            ParseError::BadSampleRate => Reason::BadSampleRate,
            ParseError::ServiceCheck => Reason::ServiceCheck,
            ParseError::Event => Reason::Event,
        }
    }

    /// Every parse error.
    pub const ALL: [ParseError; 8] = [
        ParseError::NotUtf8,
        ParseError::NoValue,
        ParseError::NoType,
        ParseError::EmptyName,
        ParseError::BadValue,
        ParseError::BadSampleRate,
        ParseError::ServiceCheck,
        ParseError::Event,
    ];
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            ParseError::NotUtf8 => "line is not UTF-8",
            ParseError::NoValue => "no `:value` after the name",
            ParseError::NoType => "no `|type` after the value",
            ParseError::EmptyName => "metric name is empty",
            ParseError::BadValue => "value is not a finite, non-negative number",
            ParseError::BadSampleRate => "sample rate is not a number in (0, 1]",
            ParseError::ServiceCheck => "a DogStatsD service check, not a metric",
            ParseError::Event => "a DogStatsD event, not a metric",
        };
        f.write_str(text)
    }
}

impl std::error::Error for ParseError {}

/// The non-empty lines of a packet (or stream chunk), unparsed. Lines end
/// with `\n` (a `\r` before it is dropped).
pub fn raw_lines(packet: &[u8]) -> impl Iterator<Item = &[u8]> {
    packet
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
}

/// Every non-empty line of a packet (or stream chunk), parsed.
pub fn lines(packet: &[u8]) -> impl Iterator<Item = Result<Line<'_>, ParseError>> {
    raw_lines(packet).map(|l| {
        let mut line = Line::default();
        line_into(l, &mut line).map(|()| line)
    })
}

/// Parses one line.
pub fn line(text: &str) -> Result<Line<'_>, ParseError> {
    let mut line = Line::default();
    line_into(text.as_bytes(), &mut line)?;
    Ok(line)
}

/// Parses one line into `line`, reusing its space (a receiver parses
/// millions a second); on an error `line` holds nothing of use.
pub fn line_into<'a>(bytes: &'a [u8], line: &mut Line<'a>) -> Result<(), ParseError> {
    line.name = "";
    line.samples.clear();
    line.tags.clear();
    let text = std::str::from_utf8(bytes).map_err(|_| ParseError::NotUtf8)?;
    if text.starts_with("_sc|") {
        return Err(ParseError::ServiceCheck);
    }
    if text.starts_with("_e{") {
        return Err(ParseError::Event);
    }
    let (head, rest) = split_once(text, b':').ok_or(ParseError::NoValue)?;
    // Telegraf: `name,tag=value,...`.
    let mut head_parts = Split::new(head, b',');
    let name = head_parts.next().unwrap_or("");
    // Most names have nothing to trim; `trim` costs a Unicode scan.
    let name = match (name.as_bytes().first(), name.as_bytes().last()) {
        (Some(a), Some(z)) if a.is_ascii_graphic() && z.is_ascii_graphic() => name,
        _ => name.trim(),
    };
    if name.is_empty() {
        return Err(ParseError::EmptyName);
    }
    line.name = name;
    line.tags.extend(
        head_parts
            .filter(|t| !t.is_empty())
            .map(|t| tag_of(t, b'=')),
    );
    let samples = &mut line.samples;
    let mut sections = Split::new(rest, b'|');
    // The values before the next type: DogStatsD's `1:2:3` or one value.
    let mut pending: Option<&str> = sections.next();
    // Where the samples the last type named begin: a rate applies to them.
    let mut group = 0;
    for section in sections {
        if let Some(values) = pending.take() {
            // etsy puts the next metric's value after the type: `ms:2`.
            let (kind, next) = match split_once(section, b':') {
                Some((k, n)) => (k, Some(n)),
                None => (section, None),
            };
            let timer = match kind {
                "" => return Err(ParseError::NoType),
                "ms" | "h" | "d" => true,
                _ => false,
            };
            group = samples.len();
            for value in Split::new(values, b':') {
                let kind = match timer {
                    true => Kind::Timer(Amount::parse(value).ok_or(ParseError::BadValue)?),
                    false => Kind::Other,
                };
                samples.push(Sample {
                    value,
                    kind,
                    rate: Decimal::ONE,
                });
            }
            pending = next;
        } else if let Some(rate) = section.strip_prefix('@') {
            // `@0.1`, or etsy's `@0.1:2` with the next metric's value.
            let (rate, next) = match split_once(rate, b':') {
                Some((r, n)) => (r, Some(n)),
                None => (rate, None),
            };
            let rate = sample_rate(rate)?;
            for s in &mut samples[group..] {
                s.rate = rate;
            }
            pending = next;
        } else if let Some(list) = section.strip_prefix('#') {
            let tags = Split::new(list, b',').filter(|t| !t.is_empty());
            line.tags.extend(tags.map(|t| tag_of(t, b':')));
        }
        // Other sections (DogStatsD `c:` container ids, `T` timestamps,
        // `e:` external data) are not about the duration.
    }
    if pending.is_some() {
        return Err(ParseError::NoType);
    }
    Ok(())
}

/// `key<sep>value`, or a bare `key` with an empty value.
fn tag_of(text: &str, sep: u8) -> Tag<'_> {
    match split_once(text, sep) {
        Some((key, value)) => Tag { key, value },
        None => Tag {
            key: text,
            value: "",
        },
    }
}

/// `text` before and after the first `sep` (an ASCII byte, so both halves
/// are whole UTF-8).
fn split_once(text: &str, sep: u8) -> Option<(&str, &str)> {
    // Pieces are a few bytes long: a plain loop beats memchr's setup.
    let at = text.bytes().position(|b| b == sep)?;
    Some((&text[..at], &text[at + 1..]))
}

/// The pieces of `text` between `sep`s: the hot loop of a receiver, where
/// `str::split` spends more on its generality.
struct Split<'a> {
    rest: Option<&'a str>,
    sep: u8,
}

impl<'a> Split<'a> {
    fn new(text: &'a str, sep: u8) -> Split<'a> {
        Split {
            rest: Some(text),
            sep,
        }
    }
}

impl<'a> Iterator for Split<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        match split_once(rest, self.sep) {
            Some((piece, after)) => {
                self.rest = Some(after);
                Some(piece)
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

/// Sample rates below this count as it (one value stands for at most 1,000).
pub const MIN_RATE: Decimal = Decimal::new(1, 3);

/// A sample rate in (0, 1], exact; with an exponent too (`1e-05`, as the
/// PyPI `statsd` and `datadog` clients write small rates). Rates below
/// [`MIN_RATE`] read as it.
fn sample_rate(text: &str) -> Result<Decimal, ParseError> {
    let rate = match Decimal::parse(text) {
        Ok(r) => r,
        Err(_) => {
            let plain = without_exponent(text).ok_or(ParseError::BadSampleRate)?;
            match Decimal::parse(&plain) {
                Ok(r) => r,
                // More digits than a decimal holds: a rate far below the floor.
                Err(_) if plain.starts_with("0.000") => MIN_RATE,
                Err(_) => return Err(ParseError::BadSampleRate),
            }
        }
    };
    if rate <= Decimal::ZERO || rate > Decimal::ONE {
        return Err(ParseError::BadSampleRate);
    }
    Ok(rate.max(MIN_RATE))
}

/// `2.5e-3` as `0.0025`: the mantissa's digits with the point moved.
fn without_exponent(text: &str) -> Option<String> {
    let (mantissa, exponent) = text.split_once(['e', 'E'])?;
    let exponent: i32 = exponent.parse().ok().filter(|e: &i32| e.abs() <= 40)?;
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let digits = format!("{whole}{fraction}");
    // Where the point goes, counted in digits from the left.
    let point = whole.len() as i32 + exponent;
    Some(if point <= 0 {
        format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else if point as usize >= digits.len() {
        format!("{digits}{}", "0".repeat(point as usize - digits.len()))
    } else {
        let (a, b) = digits.split_at(point as usize);
        format!("{a}.{b}")
    })
}

impl<'a> Line<'a> {
    /// The value of tag `key`; `Some("")` for a bare `key`.
    pub fn tag(&self, key: &str) -> Option<&'a str> {
        tag(&self.tags, key)
    }
}

/// The value of tag `key` among `tags` (the first, when repeated).
pub fn tag<'a>(tags: &[Tag<'a>], key: &str) -> Option<&'a str> {
    tags.iter().find(|t| t.key == key).map(|t| t.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(text: &str) -> Decimal {
        Decimal::parse(text).unwrap()
    }

    #[test]
    fn sample_rates_with_an_exponent_read_exactly() {
        for (text, want) in [
            ("2.5e-1", "0.25"),
            ("1e-2", "0.01"),
            ("1E-3", "0.001"),
            ("1e-05", "0.001"),
            ("1e-9", "0.001"),
            ("3e-30", "0.001"),
            ("0.1e1", "1"),
        ] {
            assert_eq!(sample_rate(text), Ok(rate(want)), "{text}");
        }
    }

    #[test]
    fn timers_with_rates_and_tags() {
        let l = line("checkout.latency:183.5|ms|@0.25|#route:/checkout,env:prod").unwrap();
        assert_eq!(l.name, "checkout.latency");
        assert_eq!(
            l.samples.as_slice(),
            [Sample {
                value: "183.5",
                kind: Kind::Timer(Amount::Exact(rate("183.5"))),
                rate: rate("0.25")
            }]
        );
        assert_eq!(l.tag("route"), Some("/checkout"));
        assert_eq!(l.tag("missing"), None);
        let multi = line("a:1:2:3|d").unwrap();
        let values: Vec<&str> = multi.samples.iter().map(|s| s.value).collect();
        assert_eq!(values, ["1", "2", "3"]);
        assert_eq!(line("hits:1|c").unwrap().samples[0].kind, Kind::Other);
        // A counter's value is not a duration: not read, not refused.
        assert_eq!(line("hits:-1|c").unwrap().samples[0].kind, Kind::Other);
    }

    /// Issue 14, input 5: what statsd_exporter keeps, we keep.
    #[test]
    fn empty_tag_lists_and_trailing_commas_are_fine() {
        let l = line("api.a.latency:10|ms|#").unwrap();
        assert!(l.tags.is_empty());
        let l = line("api.b.latency:10|ms|#method:GET,").unwrap();
        assert_eq!(l.tag("method"), Some("GET"));
        assert_eq!(l.tags.len(), 1);
    }

    #[test]
    fn etsy_multi_metric_lines() {
        let l = line("t:1|ms:2|ms|@0.5:3|c").unwrap();
        let got: Vec<(&str, bool, Decimal)> = l
            .samples
            .iter()
            .map(|s| (s.value, s.timer().is_some(), s.rate))
            .collect();
        assert_eq!(
            got,
            [
                ("1", true, Decimal::ONE),
                ("2", true, rate("0.5")),
                ("3", false, Decimal::ONE)
            ]
        );
    }

    #[test]
    fn telegraf_tags_in_the_name_and_dogstatsd_extras() {
        let l =
            line("api.latency,route=/a,host=web1:12|ms|#env:prod|c:abc123|T1700000000").unwrap();
        assert_eq!(l.name, "api.latency");
        assert_eq!(l.tag("route"), Some("/a"));
        assert_eq!(l.tag("host"), Some("web1"));
        assert_eq!(l.tag("env"), Some("prod"));
        assert_eq!(l.samples.len(), 1);
    }

    #[test]
    fn service_checks_and_events_are_told_apart() {
        assert_eq!(line("_sc|db.up|0|#env:prod"), Err(ParseError::ServiceCheck));
        assert_eq!(line("_e{5,4}:title|text"), Err(ParseError::Event));
    }

    #[test]
    fn malformed_lines_get_specific_errors() {
        let cases = [
            ("nocolon|ms", ParseError::NoValue),
            ("a:1", ParseError::NoType),
            ("a:1|", ParseError::NoType),
            (":1|ms", ParseError::EmptyName),
            (",x=1:1|ms", ParseError::EmptyName),
            ("a:x|ms", ParseError::BadValue),
            ("a:-5|ms", ParseError::BadValue),
            ("a:NaN|ms", ParseError::BadValue),
            ("a:inf|ms", ParseError::BadValue),
            ("a:1|ms|@0", ParseError::BadSampleRate),
            ("a:1|ms|@1e1", ParseError::BadSampleRate),
            ("a:1|ms|@e-5", ParseError::BadSampleRate),
            ("a:1|ms|@-1e-5", ParseError::BadSampleRate),
            ("a:1|ms|@1.5", ParseError::BadSampleRate),
            ("a:1|ms|@x", ParseError::BadSampleRate),
            ("a:1|ms:2", ParseError::NoType),
        ];
        for (text, expected) in cases {
            assert_eq!(line(text), Err(expected), "{text}");
        }
    }

    #[test]
    fn packets_hold_several_lines_and_bad_ones_do_not_stop_the_rest() {
        let packet = b"a:1|ms\n\nbroken\r\nb:2|ms|#k:v\n\xff\xfe:1|ms\n";
        let parsed: Vec<_> = lines(packet).collect();
        assert_eq!(parsed.len(), 4);
        assert_eq!(parsed[0].as_ref().unwrap().name, "a");
        assert_eq!(parsed[1], Err(ParseError::NoValue));
        assert_eq!(parsed[2].as_ref().unwrap().tag("k"), Some("v"));
        assert_eq!(parsed[3], Err(ParseError::NotUtf8));
    }
}
