//! Push bodies (`POST /api/v1/deliveries`): every item read as a delivery
//! and admitted against the catalog, all or nothing. Pure: no HTTP, no clock.

use std::borrow::Cow;
use std::time::Duration;

use serde::Deserialize;

use super::Refused;
use super::json::{self, Framing, ItemError, Labels, number_text, parse};
use crate::auth::Denied;
use crate::delivery::{Delivery, Input, Reach, Timing, amount};
use crate::sla::Catalog;
use crate::window::Millis;

/// One delivery as pushed, borrowing from the body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDelivery<'a> {
    /// The SLA's name.
    #[serde(borrow)]
    pub sla: Cow<'a, str>,
    /// A humantime duration (`183ms`, `2h 5m`).
    #[serde(borrow, default)]
    pub duration: Option<Cow<'a, str>>,
    /// A JSON number, kept as its text so every source reads it alike.
    #[serde(borrow, default, deserialize_with = "number_text")]
    pub duration_seconds: Option<&'a str>,
    /// RFC 3339; with `delivered_at`, the duration is the time between.
    #[serde(borrow, default)]
    pub started_at: Option<Cow<'a, str>>,
    /// RFC 3339: when it completed; now when absent.
    #[serde(borrow, default)]
    pub delivered_at: Option<Cow<'a, str>>,
    /// Label values by label name.
    #[serde(borrow, default)]
    pub labels: Labels<'a>,
    /// Never delivered.
    #[serde(default)]
    pub failed: bool,
    /// Makes a retry idempotent per SLA.
    #[serde(borrow, default)]
    pub id: Option<Cow<'a, str>>,
}

/// How long a pushed delivery took, or why that cannot be read.
pub fn timing(raw: &RawDelivery<'_>, line: usize, item: usize) -> Result<Timing, ItemError> {
    let bad = |field: &str, reason: String| {
        ItemError::malformed(line, Some(item), Some(field.to_owned()), reason)
    };
    let timestamp = |field: &str, s: &str| -> Result<jiff::Timestamp, ItemError> {
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
                ItemError {
                    line,
                    item: Some(item),
                    field: Some(r.field),
                    reason: r.reason,
                    kind: r.kind,
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

/// Decodes and admits a whole body against `catalog` at `now`, dated as
/// far back as `reach` allows: every
/// delivery, or every error (line, item, field, reason) and nothing else.
/// `may_write` is asked about each item's SLA before anything else is said
/// of it: a caller refused one SLA learns nothing of the rest, not even
/// which SLAs exist.
pub fn decode(
    catalog: &Catalog,
    body: &[u8],
    framing: Framing,
    now: Millis,
    reach: Reach,
    may_write: impl Fn(&str) -> Result<(), Denied>,
) -> Result<Vec<Delivery>, Refused> {
    let mut denied = None;
    let max = catalog.limits.max_lines_per_request;
    let results = json::items(body, framing, max, |line, item, text| {
        let raw: RawDelivery<'_> = parse(line, item, text, "a delivery object")?;
        if let Err(d) = may_write(&raw.sla) {
            denied.get_or_insert(d);
        }
        let timing = timing(&raw, line, item)?;
        let labels = labels(&raw);
        let input = Input {
            sla: &raw.sla,
            labels: &labels,
            timing,
            id: raw.id.as_deref(),
        };
        catalog
            .admit_reaching(&input, now, reach)
            .map_err(|r| ItemError {
                line,
                item: Some(item),
                field: Some(r.field),
                reason: r.reason,
                kind: r.kind,
            })
    })
    .map_err(|e| Refused::Input(vec![e]))?;
    if let Some(d) = denied {
        return Err(Refused::Denied(d));
    }
    json::all_or_nothing(results).map_err(Refused::Input)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn field_errors_name_the_field() {
        let e = parse::<RawDelivery<'_>>(
            7,
            1,
            r#"{"sla":"a","duration_seconds":"fast"}"#,
            "a delivery object",
        )
        .unwrap_err();
        assert_eq!(e.line, 7);
        assert_eq!(e.field.as_deref(), Some("duration_seconds"));
        let e =
            parse::<RawDelivery<'_>>(1, 1, r#"{"sla":"a","durration":"1s"}"#, "a delivery object")
                .unwrap_err();
        assert!(
            e.reason.contains("unknown field `durration`"),
            "{}",
            e.reason
        );
        let e =
            parse::<RawDelivery<'_>>(1, 1, r#"{"sla":"a","labels":{"k":1}}"#, "a delivery object")
                .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("labels.k"));
        let e = parse::<RawDelivery<'_>>(1, 1, r#"{"sla":"a","sla":"b"}"#, "a delivery object")
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("sla"), "{}", e.reason);
        // A delivery is an object: serde would read an array of its fields.
        for (text, found) in [
            (r#"["a","1s"]"#, "an array"),
            (r#""a""#, "a string"),
            ("1", "a number"),
            ("null", "null"),
            ("true", "a boolean"),
        ] {
            let e = parse::<RawDelivery<'_>>(3, 2, text, "a delivery object").unwrap_err();
            assert_eq!((e.line, e.item), (3, Some(2)));
            assert!(
                e.reason.ends_with(&format!("found {found}")),
                "{}",
                e.reason
            );
            assert!(
                e.reason.starts_with("expected a delivery object"),
                "{}",
                e.reason
            );
        }
    }

    fn timing(json: &str) -> Result<Timing, ItemError> {
        let raw: RawDelivery<'_> = parse(1, 1, json, "a delivery object")?;
        super::timing(&raw, 1, 1)
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
