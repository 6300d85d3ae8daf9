//! One log line to one reading: regex named captures or JSON fields, mapped
//! to an SLA, a duration, labels and an optional completion time.

use std::borrow::Cow;
use std::time::Duration;

use regex_automata::meta;
use regex_automata::util::captures::Captures;
use smallvec::SmallVec;

use crate::delivery::{Timing, parse_amount};
pub use crate::ingest::pattern::Pattern;
use crate::ingest::{Reading, Readings, SeriesCache};
use crate::source::Reason;

/// How lines are read.
#[derive(Debug, Clone)]
pub enum Format {
    /// Named captures (`(?P<name>...)`) are the fields.
    Regex(Pattern),
    /// Each line is a JSON object; top-level keys are the fields.
    Json,
}

/// Where the SLA name comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum SlaFrom {
    /// Every line is a delivery of this SLA.
    Fixed(std::sync::Arc<str>),
    /// The SLA's name is in this field of each line.
    Field(String),
}

/// The unit a numeric duration field is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Seconds (`0.183`).
    Seconds,
    /// Milliseconds (`183`).
    Millis,
    /// Microseconds (`183000`).
    Micros,
    /// Text such as `183ms` or `2h 5m`.
    Humantime,
}

/// What a line holds and where.
#[derive(Debug, Clone)]
pub struct LineSpec {
    /// Regex or JSON.
    pub format: Format,
    /// Where the SLA comes from.
    pub sla: SlaFrom,
    /// The field holding the duration.
    pub duration_field: String,
    /// Its unit.
    pub unit: Unit,
    /// RFC 3339 or unix seconds; completion time is "now" without it.
    pub timestamp_field: Option<String>,
    /// (label, field).
    pub labels: Vec<(String, String)>,
    /// Only lines this matches are read (all when `None`).
    pub include: Option<Pattern>,
    /// Lines this matches are left out (health checks, say).
    pub exclude: Option<Pattern>,
    /// A line whose field matches this is a failed delivery (status 5xx).
    pub failed: Option<FailedWhen>,
}

/// When a line is a failed delivery: its `field` matches `pattern`.
#[derive(Debug, Clone)]
pub struct FailedWhen {
    /// The field (capture or JSON key) to look at.
    pub field: String,
    /// What makes it failed, such as `^5\d\d$`.
    pub pattern: Pattern,
}

impl PartialEq for FailedWhen {
    fn eq(&self, other: &Self) -> bool {
        self.field == other.field && self.pattern.as_str() == other.pattern.as_str()
    }
}

/// Why a log line is not a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineError {
    /// The regex does not match.
    NoMatch,
    /// Not a JSON object.
    NotJson,
    /// A field is not UTF-8.
    NotUtf8,
    /// A field the source reads is absent.
    MissingField,
    /// The duration field is not a duration.
    BadDuration,
    /// The timestamp field is not a timestamp.
    BadTimestamp,
    /// Longer than the source's `max_line_bytes`.
    TooLong,
}

impl LineError {
    /// The reason it is counted under.
    pub fn reason(self) -> Reason {
        match self {
            LineError::NoMatch => Reason::NoMatch,
            LineError::NotJson => Reason::NotJson,
            LineError::NotUtf8 => Reason::NotUtf8,
            LineError::MissingField => Reason::MissingField,
            LineError::BadDuration => Reason::BadDuration,
            LineError::BadTimestamp => Reason::BadTimestamp,
            LineError::TooLong => Reason::LineTooLong,
        }
    }

    /// Every line error.
    pub const ALL: [LineError; 7] = [
        LineError::NoMatch,
        LineError::NotJson,
        LineError::NotUtf8,
        LineError::MissingField,
        LineError::BadDuration,
        LineError::BadTimestamp,
        LineError::TooLong,
    ];
}

/// Where each field of a reading is found: capture group indices for a
/// regex, key names for JSON.
#[derive(Debug)]
struct Fields<K> {
    /// `None` when the spec names a fixed SLA.
    sla: Option<K>,
    duration: K,
    timestamp: Option<K>,
    labels: Vec<(String, K)>,
    failed: Option<K>,
}

impl LineSpec {
    /// A reader of lines by this spec.
    pub fn reader(&self) -> LineReader {
        let plan = match &self.format {
            Format::Regex(p) => Plan::Regex(Box::new(RegexPlan {
                fields: self.fields(|name| p.group(name)),
                cache: p.regex().create_cache(),
                caps: p.regex().create_captures(),
                re: p.regex().clone(),
            })),
            Format::Json => Plan::Json(self.fields(str::to_owned)),
        };
        LineReader {
            spec: self.clone(),
            plan,
            series: SeriesCache::default(),
        }
    }

    fn fields<K>(&self, at: impl Fn(&str) -> K) -> Fields<K> {
        Fields {
            sla: match &self.sla {
                SlaFrom::Fixed(_) => None,
                SlaFrom::Field(f) => Some(at(f)),
            },
            duration: at(&self.duration_field),
            timestamp: self.timestamp_field.as_deref().map(&at),
            labels: self
                .labels
                .iter()
                .map(|(l, f)| (l.clone(), at(f)))
                .collect(),
            failed: self.failed.as_ref().map(|f| at(&f.field)),
        }
    }
}

/// Reads lines by one spec. Fields are resolved to capture groups once, and
/// the regex's scratch space is owned here rather than taken from a pool
/// shared between threads: a line is read millions of times a minute.
pub struct LineReader {
    spec: LineSpec,
    plan: Plan,
    /// Lines of one series share their SLA name and labels.
    series: SeriesCache,
}

enum Plan {
    Regex(Box<RegexPlan>),
    Json(Fields<String>),
}

struct RegexPlan {
    re: meta::Regex,
    cache: meta::Cache,
    caps: Captures,
    /// `None`: the regex has no such group.
    fields: Fields<Option<usize>>,
}

impl LineReader {
    /// Reads one line (without its newline), which may be any bytes: a
    /// reading, `None` for a line the filters leave out, or why not.
    pub fn read(&mut self, line: &[u8]) -> Result<Option<Reading>, LineError> {
        let mut one = Readings::default();
        Ok(self
            .read_into(line, &mut one)?
            .then(|| one.readings().next())
            .flatten())
    }

    /// [`LineReader::read`] into a batch: true when the line was added,
    /// false when the filters leave it out. Lines of one series share one
    /// slot of the batch.
    pub fn read_into(&mut self, line: &[u8], out: &mut Readings) -> Result<bool, LineError> {
        let input = regex_automata::Input::new(line);
        if self
            .spec
            .include
            .as_ref()
            .is_some_and(|p| !p.regex().is_match(input.clone()))
            || self
                .spec
                .exclude
                .as_ref()
                .is_some_and(|p| p.regex().is_match(input))
        {
            return Ok(false);
        }
        let (spec, series) = (&self.spec, &mut self.series);
        let mut add = |parts: Parts<'_>| {
            let values: SmallVec<[&str; 4]> = parts.values.iter().map(|v| v.as_ref()).collect();
            let names = spec.labels.iter().map(|(name, _)| name.as_str());
            let slot = series.slot(&parts.sla, names, &values, out);
            out.push(slot, parts.timing, 1);
        };
        match &mut self.plan {
            Plan::Regex(plan) => {
                let RegexPlan {
                    re,
                    cache,
                    caps,
                    fields,
                } = &mut **plan;
                re.search_captures_with(cache, &regex_automata::Input::new(line), caps);
                if !caps.is_match() {
                    // A line of another encoding is told apart from a
                    // regex that does not fit the log.
                    return Err(if std::str::from_utf8(line).is_err() {
                        LineError::NotUtf8
                    } else {
                        LineError::NoMatch
                    });
                }
                let caps = &*caps;
                add(parts(spec, fields, |group| {
                    let span = caps.get_group((*group)?)?;
                    Some(
                        std::str::from_utf8(&line[span.range()])
                            .map(Cow::Borrowed)
                            .map_err(|_| LineError::NotUtf8),
                    )
                })?);
            }
            Plan::Json(fields) => {
                let value: serde_json::Value = serde_json::from_slice(line).map_err(|_| {
                    if std::str::from_utf8(line).is_err() {
                        LineError::NotUtf8
                    } else {
                        LineError::NotJson
                    }
                })?;
                let object = value.as_object().ok_or(LineError::NotJson)?;
                add(parts(spec, fields, |name| {
                    object.get(name).and_then(|v| match v {
                        serde_json::Value::String(s) => Some(Ok(Cow::Borrowed(s.as_str()))),
                        serde_json::Value::Number(n) => Some(Ok(Cow::Owned(n.to_string()))),
                        serde_json::Value::Bool(b) => Some(Ok(Cow::Owned(b.to_string()))),
                        _ => None,
                    })
                })?);
            }
        }
        Ok(true)
    }
}

/// A field's text: absent, or present but not text.
type FieldText<'a> = Option<Result<Cow<'a, str>, LineError>>;

/// What one line says, its text borrowed from the line where it can be.
struct Parts<'a> {
    sla: Cow<'a, str>,
    /// Label values in the spec's label order.
    values: SmallVec<[Cow<'a, str>; 4]>,
    timing: Timing,
}

/// Reads the fields of a line.
fn parts<'a, K>(
    spec: &'a LineSpec,
    fields: &Fields<K>,
    field: impl Fn(&K) -> FieldText<'a>,
) -> Result<Parts<'a>, LineError> {
    let required = |k: &K| field(k).ok_or(LineError::MissingField)?;
    let failed = match (&spec.failed, &fields.failed) {
        (Some(when), Some(k)) => match field(k).transpose()? {
            Some(v) => when.pattern.is_match(v.as_bytes()),
            None => false,
        },
        _ => false,
    };
    let sla = match (&spec.sla, &fields.sla) {
        (SlaFrom::Fixed(s), _) => Cow::Borrowed(&**s),
        (SlaFrom::Field(_), Some(k)) => required(k)?,
        (SlaFrom::Field(_), None) => return Err(LineError::MissingField),
    };
    let took = if failed {
        None
    } else {
        let text = required(&fields.duration)?;
        Some(match spec.unit {
            Unit::Humantime => {
                humantime::parse_duration(text.trim()).map_err(|_| LineError::BadDuration)?
            }
            unit => {
                let unit = match unit {
                    Unit::Seconds => Duration::from_secs(1),
                    Unit::Millis => Duration::from_millis(1),
                    _ => Duration::from_micros(1),
                };
                parse_amount(&text, unit).ok_or(LineError::BadDuration)?
            }
        })
    };
    let at = match &fields.timestamp {
        None => None,
        Some(k) => Some(timestamp(&required(k)?)?),
    };
    // Admission checks the range (absurd) like every source's.
    let timing = match took {
        Some(took) => Timing::Took { took, at },
        None => Timing::Failed { at },
    };
    let mut values = SmallVec::new();
    for (_, k) in &fields.labels {
        values.push(field(k).transpose()?.unwrap_or_default());
    }
    Ok(Parts {
        sla,
        values,
        timing,
    })
}

/// RFC 3339, or unix seconds with an optional fraction; unix milliseconds out.
fn timestamp(text: &str) -> Result<i64, LineError> {
    let text = text.trim();
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Ok(ts.as_millisecond());
    }
    text.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e11)
        .map(|s| (s * 1000.0) as i64)
        .ok_or(LineError::BadTimestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(spec: &LineSpec, line: &str) -> Result<Reading, LineError> {
        spec.reader()
            .read(line.as_bytes())
            .map(|r| r.expect("not filtered"))
    }

    fn regex_spec() -> LineSpec {
        LineSpec {
            format: Format::Regex(
                Pattern::new(r#"^(?P<ts>\S+) (?P<route>\S+) (?P<status>\d+) (?P<ms>[\d.]+)ms$"#)
                    .unwrap(),
            ),
            sla: SlaFrom::Fixed("api".into()),
            duration_field: "ms".into(),
            unit: Unit::Millis,
            timestamp_field: Some("ts".into()),
            labels: vec![("route".into(), "route".into())],
            include: None,
            exclude: None,
            failed: None,
        }
    }

    #[test]
    fn regex_lines_give_duration_time_and_labels() {
        let r = read(&regex_spec(), "2026-11-23T10:00:00Z /checkout 200 183.5ms").unwrap();
        assert_eq!(&*r.sla, "api");
        assert_eq!(*r.labels, [("route".into(), "/checkout".into())]);
        assert_eq!(
            r.timing,
            Timing::Took {
                took: Duration::from_micros(183_500),
                at: Some(1_795_428_000_000)
            }
        );
    }

    #[test]
    fn json_lines_read_fields_of_any_scalar_type() {
        let spec = LineSpec {
            format: Format::Json,
            sla: SlaFrom::Field("sla".into()),
            duration_field: "took".into(),
            unit: Unit::Humantime,
            timestamp_field: Some("at".into()),
            labels: vec![("code".into(), "status".into())],
            include: None,
            exclude: None,
            failed: None,
        };
        let r = read(
            &spec,
            r#"{"sla":"api","took":"2m 3s","at":1795428000.5,"status":200}"#,
        )
        .unwrap();
        assert_eq!(*r.labels, [("code".into(), "200".into())]);
        assert_eq!(
            r.timing,
            Timing::Took {
                took: Duration::from_secs(123),
                at: Some(1_795_428_000_500)
            }
        );
    }

    #[test]
    fn bad_lines_say_why() {
        let spec = regex_spec();
        let mut reader = spec.reader();
        // Another encoding is told apart from a regex that does not fit.
        assert_eq!(
            reader.read(b"\xff\xfe /a 200 5ms").unwrap_err(),
            LineError::NotUtf8
        );
        assert_eq!(
            reader
                .read(b"2026-11-23T10:00:00Z /a 200 5ms")
                .map(|r| r.map(|r| r.labels.to_vec())),
            Ok(Some(vec![("route".into(), "/a".into())])),
            "a reader goes on after a bad line"
        );
        assert_eq!(read(&spec, "garbage").unwrap_err(), LineError::NoMatch);
        assert_eq!(
            read(&spec, "yesterday /a 200 5ms").unwrap_err(),
            LineError::BadTimestamp
        );
        let json = LineSpec {
            format: Format::Json,
            ..regex_spec()
        };
        assert_eq!(read(&json, "{not json").unwrap_err(), LineError::NotJson);
        assert_eq!(
            json.reader().read(b"{\"ms\":\"caf\xe9\"}").unwrap_err(),
            LineError::NotUtf8
        );
        assert_eq!(read(&json, "[1,2]").unwrap_err(), LineError::NotJson);
        assert_eq!(
            read(&json, r#"{"ts":"x"}"#).unwrap_err(),
            LineError::MissingField
        );
        assert_eq!(
            read(&json, r#"{"ms":"fast","ts":"2026-11-23T10:00:00Z"}"#).unwrap_err(),
            LineError::BadDuration
        );
    }

    /// Health checks left out, 5xx lines failed whatever their duration.
    #[test]
    fn filters_and_failed_lines() {
        let spec = LineSpec {
            exclude: Some(Pattern::new(r" /healthz ").unwrap()),
            include: Some(Pattern::new(r"^\S+ /").unwrap()),
            failed: Some(FailedWhen {
                field: "status".into(),
                pattern: Pattern::new("^5").unwrap(),
            }),
            ..regex_spec()
        };
        let mut reader = spec.reader();
        assert_eq!(
            reader.read(b"2026-11-23T10:00:00Z /healthz 200 1ms"),
            Ok(None)
        );
        assert_eq!(reader.read(b"# a comment"), Ok(None), "include");
        let failed = reader
            .read(b"2026-11-23T10:00:00Z /a 503 5ms")
            .unwrap()
            .unwrap();
        assert_eq!(
            failed.timing,
            Timing::Failed {
                at: Some(1_795_428_000_000)
            }
        );
        let ok = reader
            .read(b"2026-11-23T10:00:00Z /a 200 5ms")
            .unwrap()
            .unwrap();
        assert!(matches!(ok.timing, Timing::Took { .. }));
    }
}
