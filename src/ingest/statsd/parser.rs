//! StatsD and DogStatsD lines, parsed without allocating: `name:value|type[|@rate][|#tags]`.
//!
//! Only timers carry delivery times: type `ms`, and DogStatsD's `h` and `d`
//! (histograms and distributions, read as milliseconds). A line of another
//! type parses, and the source counts it as ignored.

use std::fmt;
use std::time::Duration;

use crate::delivery::parse_amount;
use crate::source::Reason;

/// One metric line, borrowing from the packet.
#[derive(Debug, Clone, PartialEq)]
pub struct Line<'a> {
    /// The metric name.
    pub name: &'a str,
    /// Values in the line's unit, as written (checked to be non-negative
    /// numbers) so they convert exactly; DogStatsD allows several
    /// (`name:1:2|ms`).
    pub values: Vec<&'a str>,
    /// Timer or not.
    pub kind: Kind,
    /// Fraction of events this line stands for, (0, 1].
    pub sample_rate: f64,
    /// Raw `key:value` (or bare `key`) DogStatsD tags.
    pub tags: Vec<&'a str>,
}

/// What a line measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `ms`, `h` or `d`: milliseconds.
    Timer,
    /// Counters, gauges, sets and the rest: not delivery times.
    Other,
}

/// Why a line is not a metric.
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
    /// A tag list with an empty tag.
    BadTags,
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
            ParseError::BadTags => Reason::BadTags,
        }
    }

    /// Every parse error.
    pub const ALL: [ParseError; 7] = [
        ParseError::NotUtf8,
        ParseError::NoValue,
        ParseError::NoType,
        ParseError::EmptyName,
        ParseError::BadValue,
        ParseError::BadSampleRate,
        ParseError::BadTags,
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
            ParseError::BadTags => "tags are empty or hold an empty tag",
        };
        f.write_str(text)
    }
}

impl std::error::Error for ParseError {}

/// Every non-empty line of a packet, parsed. Lines end with `\n` (a `\r`
/// before it is dropped).
pub fn lines(packet: &[u8]) -> impl Iterator<Item = Result<Line<'_>, ParseError>> {
    packet
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
        .map(|l| {
            std::str::from_utf8(l)
                .map_err(|_| ParseError::NotUtf8)
                .and_then(line)
        })
}

/// Parses one line.
pub fn line(text: &str) -> Result<Line<'_>, ParseError> {
    let mut sections = text.split('|');
    let head = sections.next().unwrap_or("");
    let (name, values) = head.split_once(':').ok_or(ParseError::NoValue)?;
    if name.trim().is_empty() {
        return Err(ParseError::EmptyName);
    }
    let kind = match sections.next() {
        None | Some("") => return Err(ParseError::NoType),
        Some("ms" | "h" | "d") => Kind::Timer,
        Some(_) => Kind::Other,
    };
    let mut sample_rate = 1.0;
    let mut tags = Vec::new();
    for section in sections {
        if let Some(rate) = section.strip_prefix('@') {
            sample_rate = rate
                .parse::<f64>()
                .ok()
                .filter(|r| *r > 0.0 && *r <= 1.0)
                .ok_or(ParseError::BadSampleRate)?;
        } else if let Some(list) = section.strip_prefix('#') {
            for tag in list.split(',') {
                if tag.is_empty() {
                    return Err(ParseError::BadTags);
                }
                tags.push(tag);
            }
        }
        // Other sections (DogStatsD `c:` container ids, `T` timestamps) are ignored.
    }
    let values = if kind == Kind::Timer {
        values
            .split(':')
            .map(|v| {
                parse_amount(v, Duration::from_millis(1))
                    .map(|_| v)
                    .ok_or(ParseError::BadValue)
            })
            .collect::<Result<Vec<&str>, _>>()?
    } else {
        Vec::new()
    };
    Ok(Line {
        name: name.trim(),
        values,
        kind,
        sample_rate,
        tags,
    })
}

impl Line<'_> {
    /// The value of tag `key` (`key:value`); `Some("")` for a bare `key`.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find_map(|t| match t.split_once(':') {
            Some((k, v)) if k == key => Some(v),
            None if *t == key => Some(""),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_with_rates_and_tags() {
        let l = line("checkout.latency:183.5|ms|@0.25|#route:/checkout,env:prod").unwrap();
        assert_eq!(l.name, "checkout.latency");
        assert_eq!(l.values, vec!["183.5"]);
        assert_eq!(l.kind, Kind::Timer);
        assert_eq!(l.sample_rate, 0.25);
        assert_eq!(l.tag("route"), Some("/checkout"));
        assert_eq!(l.tag("missing"), None);
        let multi = line("a:1:2:3|d").unwrap();
        assert_eq!(multi.values, vec!["1", "2", "3"]);
        assert_eq!(line("hits:1|c").unwrap().kind, Kind::Other);
    }

    #[test]
    fn malformed_lines_get_specific_errors() {
        let cases = [
            ("nocolon|ms", ParseError::NoValue),
            ("a:1", ParseError::NoType),
            ("a:1|", ParseError::NoType),
            (":1|ms", ParseError::EmptyName),
            ("a:x|ms", ParseError::BadValue),
            ("a:-5|ms", ParseError::BadValue),
            ("a:NaN|ms", ParseError::BadValue),
            ("a:inf|ms", ParseError::BadValue),
            ("a:1|ms|@0", ParseError::BadSampleRate),
            ("a:1|ms|@1.5", ParseError::BadSampleRate),
            ("a:1|ms|@x", ParseError::BadSampleRate),
            ("a:1|ms|#", ParseError::BadTags),
            ("a:1|ms|#x,,y", ParseError::BadTags),
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
