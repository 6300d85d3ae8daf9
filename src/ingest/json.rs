//! Push bodies: one JSON object, a JSON array or NDJSON, decoded into inputs
//! with every bad line reported by number. Pure: no HTTP, no clock.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::delivery::{RefusalKind, Timing, amount};
use crate::window::Millis;

/// How the body is framed, from its content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `application/json`: one object or one array.
    Json,
    /// `application/x-ndjson` (or jsonl): one object per line.
    Ndjson,
    /// Anything else (curl's default included): an array if it starts with
    /// `[`, one object if the whole body is one, NDJSON otherwise.
    Detect,
}

impl Framing {
    pub fn from_content_type(content_type: Option<&str>) -> Framing {
        let essence = content_type
            .and_then(|c| c.split(';').next())
            .map(|c| c.trim().to_ascii_lowercase());
        match essence.as_deref() {
            Some("application/json") => Framing::Json,
            Some(
                "application/x-ndjson"
                | "application/jsonl"
                | "application/jsonlines"
                | "application/x-jsonlines",
            ) => Framing::Ndjson,
            _ => Framing::Detect,
        }
    }
}

/// One problem with one delivery of a push body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineError {
    /// 1-based line of the body where the delivery starts.
    pub line: usize,
    /// Offending field, when one is to blame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub reason: String,
    /// Refusal reason for the rejected-events counter.
    #[serde(skip)]
    pub kind: &'static str,
}

impl LineError {
    fn malformed(line: usize, field: Option<String>, reason: impl Into<String>) -> Self {
        LineError {
            line,
            field,
            reason: reason.into(),
            kind: "malformed",
        }
    }
}

/// One delivery as pushed, borrowing from the body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDelivery<'a> {
    #[serde(borrow)]
    pub sla: Cow<'a, str>,
    #[serde(borrow, default)]
    pub duration: Option<Cow<'a, str>>,
    /// A JSON number, kept as its text so every source reads it alike.
    #[serde(borrow, default, deserialize_with = "number_text")]
    pub duration_seconds: Option<&'a str>,
    #[serde(borrow, default)]
    pub started_at: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub delivered_at: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub labels: Labels<'a>,
    #[serde(default)]
    pub failed: bool,
    #[serde(borrow, default)]
    pub id: Option<Cow<'a, str>>,
}

/// A JSON number's text (`null` reads as absent): `0.27` stays exactly
/// 0.27 rather than the nearest float.
fn number_text<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<&'a str>, D::Error> {
    let raw = <&'a RawValue>::deserialize(d)?;
    match raw.get() {
        "null" => Ok(None),
        text if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) => Ok(Some(text)),
        text => Err(serde::de::Error::invalid_type(
            serde::de::Unexpected::Other(text),
            &"a number of seconds",
        )),
    }
}

/// A JSON object of string label values, kept in order without a map.
#[derive(Debug, Default)]
pub struct Labels<'a>(pub Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl<'de: 'a, 'a> Deserialize<'de> for Labels<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Labels<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of string label values")
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Labels::default())
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some(entry) = map.next_entry::<Cow<'a, str>, Cow<'a, str>>()? {
                    out.push(entry);
                }
                Ok(Labels(out))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// Splits a body into (line, item text) pairs according to its framing.
/// Refusal reason of a body with more items than `limits.max_lines_per_request`.
pub const TOO_MANY_LINES: &str = "too_many_lines";

/// Splits a body into at most `max_items` (line, item text) pairs.
pub fn split(
    body: &str,
    framing: Framing,
    max_items: usize,
) -> Result<Vec<(usize, &str)>, LineError> {
    let trimmed = body.trim_start();
    let framing = match framing {
        Framing::Detect if trimmed.starts_with('[') => Framing::Json,
        Framing::Detect if serde_json::from_str::<&RawValue>(body).is_ok() => Framing::Json,
        Framing::Detect => Framing::Ndjson,
        f => f,
    };
    let items = match framing {
        Framing::Json if trimmed.starts_with('[') => {
            let list: Vec<&RawValue> = serde_json::from_str(body).map_err(|e| {
                LineError::malformed(e.line(), None, format!("body is not a JSON array: {e}"))
            })?;
            let mut line = 1;
            let mut scanned = 0;
            list.into_iter()
                .map(|raw| {
                    let text = raw.get();
                    let offset = text.as_ptr() as usize - body.as_ptr() as usize;
                    line += memchr::memchr_iter(b'\n', &body.as_bytes()[scanned..offset]).count();
                    scanned = offset;
                    (line, text)
                })
                .collect()
        }
        Framing::Json => {
            let raw: &RawValue = serde_json::from_str(body).map_err(|e| {
                LineError::malformed(e.line(), None, format!("body is not one JSON object: {e}"))
            })?;
            let text = raw.get();
            let offset = text.as_ptr() as usize - body.as_ptr() as usize;
            vec![(
                1 + memchr::memchr_iter(b'\n', &body.as_bytes()[..offset]).count(),
                text,
            )]
        }
        _ => body
            .split('\n')
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty())
            .collect(),
    };
    if items.is_empty() {
        return Err(LineError::malformed(1, None, "no deliveries in the body"));
    }
    if items.len() > max_items {
        return Err(LineError {
            line: items[max_items].0,
            field: None,
            reason: format!(
                "the body holds {} items; limits.max_lines_per_request is {max_items}: split it",
                items.len()
            ),
            kind: TOO_MANY_LINES,
        });
    }
    Ok(items)
}

/// The HTTP status for a refused body: 413 when it holds too many items,
/// 404 when only unknown SLAs are at fault, else 400.
pub fn refusal_status(errors: &[LineError]) -> u16 {
    if errors.iter().any(|e| e.kind == TOO_MANY_LINES) {
        413
    } else if errors
        .iter()
        .all(|e| e.kind == RefusalKind::UnknownSla.as_str())
    {
        404
    } else {
        400
    }
}

/// Parses one item; on failure names the field at fault where serde can tell.
pub fn parse(line: usize, text: &str) -> Result<RawDelivery<'_>, LineError> {
    serde_json::from_str(text).map_err(|first| {
        // Rare path: parse again to learn which field failed.
        let mut de = serde_json::Deserializer::from_str(text);
        let field = match serde_path_to_error::deserialize::<_, RawDelivery<'_>>(&mut de) {
            Err(e) => Some(e.path().to_string()).filter(|p| !matches!(p.as_str(), "" | "." | "?")),
            Ok(_) => None,
        };
        let reason = first.to_string();
        // serde_json appends "at line L column C" relative to the item; drop it
        // for one-line items, where the body line is already reported.
        let reason = match (reason.rfind(" at line "), text.contains('\n')) {
            (Some(at), false) => reason[..at].to_owned(),
            _ => reason,
        };
        LineError::malformed(line, field, reason)
    })
}

/// How long a pushed delivery took, or why that cannot be read.
pub fn timing(raw: &RawDelivery<'_>, line: usize) -> Result<Timing, LineError> {
    let bad =
        |field: &str, reason: String| LineError::malformed(line, Some(field.to_owned()), reason);
    let timestamp = |field: &str, s: &str| -> Result<jiff::Timestamp, LineError> {
        s.parse::<jiff::Timestamp>()
            .map_err(|e| bad(field, format!("`{s}` is not an RFC 3339 timestamp: {e}")))
    };
    let delivered = raw
        .delivered_at
        .as_deref()
        .map(|s| timestamp("delivered_at", s))
        .transpose()?;
    let delivered_at: Option<Millis> = delivered.map(|t| t.as_millisecond());
    let timing = match (&raw.duration, raw.duration_seconds, &raw.started_at) {
        (Some(_), Some(_), _) => {
            return Err(bad(
                "duration",
                "give `duration` or `duration_seconds`, not both".into(),
            ));
        }
        (Some(_), None, Some(_)) | (None, Some(_), Some(_)) => {
            return Err(bad(
                "started_at",
                "give a duration or started_at + delivered_at, not both".into(),
            ));
        }
        _ if raw.failed => Timing::Failed { at: delivered_at },
        (Some(text), None, None) => {
            let d = humantime::parse_duration(text.trim()).map_err(|e| {
                bad(
                    "duration",
                    format!("`{text}` is not a duration ({e}); write e.g. `183ms` or `2h 5m`"),
                )
            })?;
            Timing::Took {
                took: d,
                at: delivered_at,
            }
        }
        (None, Some(seconds), None) => Timing::Took {
            took: amount("duration_seconds", seconds, Duration::from_secs(1)).map_err(|r| {
                LineError {
                    line,
                    field: Some(r.field),
                    reason: r.reason,
                    kind: r.kind.as_str(),
                }
            })?,
            at: delivered_at,
        },
        (None, None, Some(started)) => {
            let Some(delivered) = delivered else {
                return Err(bad("delivered_at", "required with started_at".into()));
            };
            // Nanoseconds fit an i64 until 2262; later instants saturate.
            let nanos = |t: jiff::Timestamp| i64::try_from(t.as_nanosecond()).unwrap_or(i64::MAX);
            Timing::Between {
                started: nanos(timestamp("started_at", started)?),
                delivered: nanos(delivered),
            }
        }
        (None, None, None) => {
            return Err(bad("duration", "missing: give `duration`, `duration_seconds`, or `started_at` + `delivered_at` (or `failed: true`)".into()));
        }
    };
    Ok(timing)
}

/// Label pairs of a pushed delivery, borrowed.
pub fn labels<'a>(raw: &'a RawDelivery<'a>) -> Vec<(&'a str, &'a str)> {
    raw.labels
        .0
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(
            Framing::from_content_type(Some("application/json; charset=utf-8")),
            Framing::Json
        );
        assert_eq!(
            Framing::from_content_type(Some("application/x-ndjson")),
            Framing::Ndjson
        );
        assert_eq!(
            Framing::from_content_type(Some("application/x-www-form-urlencoded")),
            Framing::Detect
        );
        assert_eq!(Framing::from_content_type(None), Framing::Detect);
    }

    #[test]
    fn detects_array_object_and_ndjson() {
        let array = "[\n{\"sla\":\"a\"},\n\n{\"sla\":\"b\"}\n]";
        let items = split(array, Framing::Detect, 10).unwrap();
        assert_eq!(
            items.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
            vec![2, 4]
        );

        let pretty = "{\n  \"sla\": \"a\",\n  \"duration\": \"1s\"\n}\n";
        assert_eq!(split(pretty, Framing::Detect, 10).unwrap().len(), 1);

        let ndjson = "{\"sla\":\"a\"}\n\n{\"sla\":\"b\"}\r\n";
        let items = split(ndjson, Framing::Detect, 10).unwrap();
        assert_eq!(items, vec![(1, "{\"sla\":\"a\"}"), (3, "{\"sla\":\"b\"}")]);
    }

    #[test]
    fn empty_body_is_an_error() {
        assert!(split("  \n ", Framing::Detect, 10).is_err());
        assert!(split("[]", Framing::Json, 10).is_err());
    }

    #[test]
    fn bodies_past_the_line_limit_are_too_large() {
        let body = "{}\n{}\n{}\n";
        assert_eq!(split(body, Framing::Ndjson, 3).map(|i| i.len()), Ok(3));
        let e = split(body, Framing::Ndjson, 2).unwrap_err();
        assert_eq!((e.line, e.kind), (3, TOO_MANY_LINES));
        assert_eq!(refusal_status(&[e]), 413);
    }

    #[test]
    fn field_errors_name_the_field() {
        let e = parse(7, r#"{"sla":"a","duration_seconds":"fast"}"#).unwrap_err();
        assert_eq!(e.line, 7);
        assert_eq!(e.field.as_deref(), Some("duration_seconds"));
        let e = parse(1, r#"{"sla":"a","durration":"1s"}"#).unwrap_err();
        assert!(
            e.reason.contains("unknown field `durration`"),
            "{}",
            e.reason
        );
        let e = parse(1, r#"{"sla":"a","labels":{"k":1}}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("labels.k"));
    }

    fn timing(json: &str) -> Result<Timing, LineError> {
        super::timing(&parse(1, json)?, 1)
    }

    #[test]
    fn timings() {
        assert_eq!(
            timing(r#"{"sla":"a","duration":"2h 5m"}"#).unwrap(),
            Timing::Took {
                took: Duration::from_secs(7500),
                at: None
            }
        );
        assert_eq!(
            timing(r#"{"sla":"a","duration_seconds":0.183}"#).unwrap(),
            Timing::Took {
                took: Duration::from_millis(183),
                at: None
            }
        );
        assert_eq!(
            timing(r#"{"sla":"a","started_at":"2026-01-01T10:00:00Z","delivered_at":"2026-01-01T12:00:00+01:00"}"#).unwrap(),
            Timing::Between { started: 1_767_261_600_000_000_000, delivered: 1_767_265_200_000_000_000 }
        );
        assert_eq!(
            timing(r#"{"sla":"a","failed":true}"#).unwrap(),
            Timing::Failed { at: None }
        );
    }

    #[test]
    fn timing_errors() {
        for (json, field) in [
            (r#"{"sla":"a"}"#, "duration"),
            (r#"{"sla":"a","duration":"soon"}"#, "duration"),
            (
                r#"{"sla":"a","duration":"1s","duration_seconds":1}"#,
                "duration",
            ),
            (
                r#"{"sla":"a","started_at":"2026-01-01T10:00:00Z"}"#,
                "delivered_at",
            ),
            (
                r#"{"sla":"a","started_at":"yesterday","delivered_at":"2026-01-01T10:00:00Z"}"#,
                "started_at",
            ),
            (
                r#"{"sla":"a","duration":"1s","started_at":"2026-01-01T10:00:00Z"}"#,
                "started_at",
            ),
        ] {
            let e = timing(json).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{json}: {e:?}");
        }
    }
}
