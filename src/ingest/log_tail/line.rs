//! One log line to one reading: regex named captures or JSON fields, mapped
//! to an SLA, a duration, labels and an optional completion time.

use std::borrow::Cow;

use regex::Regex;

use crate::delivery::Timing;
use crate::ingest::Reading;

/// How lines are read.
#[derive(Debug, Clone)]
pub enum Format {
    /// Named captures (`(?P<name>...)`) are the fields.
    Regex(Regex),
    /// Each line is a JSON object; top-level keys are the fields.
    Json,
}

/// Where the SLA name comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum SlaFrom {
    Fixed(std::sync::Arc<str>),
    Field(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Seconds,
    Millis,
    Micros,
    /// Text such as `183ms` or `2h 5m`.
    Humantime,
}

impl Unit {
    pub fn parse(s: &str) -> Option<Unit> {
        match s {
            "s" => Some(Unit::Seconds),
            "ms" => Some(Unit::Millis),
            "us" => Some(Unit::Micros),
            "humantime" => Some(Unit::Humantime),
            _ => None,
        }
    }
}

/// What a line holds and where.
#[derive(Debug, Clone)]
pub struct LineSpec {
    pub format: Format,
    pub sla: SlaFrom,
    pub duration_field: String,
    pub unit: Unit,
    /// RFC 3339 or unix seconds; completion time is "now" without it.
    pub timestamp_field: Option<String>,
    /// (label, field).
    pub labels: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineError {
    NoMatch,
    NotJson,
    MissingField,
    BadDuration,
    BadTimestamp,
}

impl LineError {
    pub fn reason(self) -> &'static str {
        match self {
            LineError::NoMatch => "no_match",
            LineError::NotJson => "not_json",
            LineError::MissingField => "missing_field",
            LineError::BadDuration => "bad_duration",
            LineError::BadTimestamp => "bad_timestamp",
        }
    }

    pub const ALL: [LineError; 5] = [
        LineError::NoMatch,
        LineError::NotJson,
        LineError::MissingField,
        LineError::BadDuration,
        LineError::BadTimestamp,
    ];
}

impl LineSpec {
    /// Reads one line (without its newline).
    pub fn read(&self, line: &str) -> Result<Reading, LineError> {
        match &self.format {
            Format::Regex(re) => {
                let caps = re.captures(line).ok_or(LineError::NoMatch)?;
                self.build(|name| caps.name(name).map(|m| Cow::Borrowed(m.as_str())))
            }
            Format::Json => {
                let value: serde_json::Value =
                    serde_json::from_str(line).map_err(|_| LineError::NotJson)?;
                let object = value.as_object().ok_or(LineError::NotJson)?;
                self.build(|name| {
                    object.get(name).and_then(|v| match v {
                        serde_json::Value::String(s) => Some(Cow::Borrowed(s.as_str())),
                        serde_json::Value::Number(n) => Some(Cow::Owned(n.to_string())),
                        serde_json::Value::Bool(b) => Some(Cow::Owned(b.to_string())),
                        _ => None,
                    })
                })
            }
        }
    }

    /// Fields are borrowed from the line where they can be: a line is read
    /// millions of times a minute.
    fn build<'a>(
        &self,
        field: impl Fn(&str) -> Option<Cow<'a, str>>,
    ) -> Result<Reading, LineError> {
        let sla = match &self.sla {
            SlaFrom::Fixed(s) => s.clone(),
            SlaFrom::Field(f) => field(f).ok_or(LineError::MissingField)?.as_ref().into(),
        };
        let text = field(&self.duration_field).ok_or(LineError::MissingField)?;
        let seconds = match self.unit {
            Unit::Humantime => humantime::parse_duration(text.trim())
                .map(|d| d.as_secs_f64())
                .map_err(|_| LineError::BadDuration)?,
            unit => {
                let v: f64 = text.trim().parse().map_err(|_| LineError::BadDuration)?;
                v / match unit {
                    Unit::Seconds => 1.0,
                    Unit::Millis => 1e3,
                    _ => 1e6,
                }
            }
        };
        let at = match &self.timestamp_field {
            None => None,
            Some(f) => Some(timestamp(&field(f).ok_or(LineError::MissingField)?)?),
        };
        let labels = self
            .labels
            .iter()
            .map(|(label, f)| {
                (
                    label.clone(),
                    field(f).map(Cow::into_owned).unwrap_or_default(),
                )
            })
            .collect();
        Ok(Reading {
            sla,
            labels,
            // Admission checks the range (negative, absurd) like every source's.
            timing: Timing::Took { seconds, at },
            id: None,
        })
    }
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

    fn regex_spec() -> LineSpec {
        LineSpec {
            format: Format::Regex(
                Regex::new(r#"^(?P<ts>\S+) (?P<route>\S+) (?P<status>\d+) (?P<ms>[\d.]+)ms$"#)
                    .unwrap(),
            ),
            sla: SlaFrom::Fixed("api".into()),
            duration_field: "ms".into(),
            unit: Unit::Millis,
            timestamp_field: Some("ts".into()),
            labels: vec![("route".into(), "route".into())],
        }
    }

    #[test]
    fn regex_lines_give_duration_time_and_labels() {
        let r = regex_spec()
            .read("2026-11-23T10:00:00Z /checkout 200 183.5ms")
            .unwrap();
        assert_eq!(&*r.sla, "api");
        assert_eq!(r.labels, vec![("route".into(), "/checkout".into())]);
        assert_eq!(
            r.timing,
            Timing::Took {
                seconds: 0.1835,
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
        };
        let r = spec
            .read(r#"{"sla":"api","took":"2m 3s","at":1795428000.5,"status":200}"#)
            .unwrap();
        assert_eq!(r.labels, vec![("code".into(), "200".into())]);
        assert_eq!(
            r.timing,
            Timing::Took {
                seconds: 123.0,
                at: Some(1_795_428_000_500)
            }
        );
    }

    #[test]
    fn bad_lines_say_why() {
        let spec = regex_spec();
        assert_eq!(spec.read("garbage").unwrap_err(), LineError::NoMatch);
        assert_eq!(
            spec.read("yesterday /a 200 5ms").unwrap_err(),
            LineError::BadTimestamp
        );
        let json = LineSpec {
            format: Format::Json,
            ..regex_spec()
        };
        assert_eq!(json.read("{not json").unwrap_err(), LineError::NotJson);
        assert_eq!(json.read("[1,2]").unwrap_err(), LineError::NotJson);
        assert_eq!(
            json.read(r#"{"ts":"x"}"#).unwrap_err(),
            LineError::MissingField
        );
        assert_eq!(
            json.read(r#"{"ms":"fast","ts":"2026-11-23T10:00:00Z"}"#)
                .unwrap_err(),
            LineError::BadDuration
        );
    }
}
