//! Open-delivery event bodies (`POST /api/v1/deliveries/{start,pause,resume,
//! finish,events}`): every item read as an event and admitted against the
//! catalog, all or nothing, the same way push bodies are. Pure: no HTTP, no
//! clock.

use std::borrow::Cow;

use serde::Deserialize;

use super::Refused;
use super::json::{self, Framing, ItemError, Labels, parse};
use crate::auth::Denied;
use crate::delivery::{Event, EventInput, Kind};
use crate::sla::Catalog;
use crate::window::Millis;

/// One event as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent<'a> {
    /// Batch form only: start, pause, resume or finish.
    #[serde(borrow, default)]
    event: Option<Cow<'a, str>>,
    #[serde(borrow)]
    sla: Cow<'a, str>,
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow, default)]
    labels: Labels<'a>,
    /// RFC 3339; the time of arrival when absent.
    #[serde(borrow, default)]
    at: Option<Cow<'a, str>>,
    #[serde(default)]
    failed: bool,
}

/// An admitted event with the line and position it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// 1-based line of the body where it starts.
    pub line: usize,
    /// 1-based position in the body.
    pub item: usize,
    /// The event.
    pub event: Event,
}

/// Decodes and admits every event of a body against `catalog` at `now`, or
/// reports every bad one. `kind` is the endpoint's, which takes one event
/// object; `None` (the batch endpoint) reads each item's `event` field.
/// `may_write` is asked about each item's SLA before anything else is said
/// of it, as for pushes.
pub fn decode(
    catalog: &Catalog,
    body: &[u8],
    framing: Framing,
    kind: Option<Kind>,
    now: Millis,
    may_write: impl Fn(&str) -> Result<(), Denied>,
) -> Result<Vec<Decoded>, Refused> {
    let mut denied = None;
    let max = catalog.limits.max_lines_per_request;
    let results = json::items(body, framing, max, |line, item, text| {
        let bad = |field: &str, reason: String| {
            ItemError::malformed(line, Some(item), Some(field.to_owned()), reason)
        };
        let raw: RawEvent<'_> = parse(line, item, text, "an event object")?;
        if let Err(d) = may_write(&raw.sla) {
            denied.get_or_insert(d);
        }
        let kind = match (kind, raw.event.as_deref()) {
            (Some(k), None) => k,
            (Some(_), Some(_)) => {
                return Err(bad(
                    "event",
                    "the endpoint names the event; leave `event` out".into(),
                ));
            }
            (None, Some(e)) => Kind::parse(e).ok_or_else(|| {
                bad(
                    "event",
                    format!("`{e}` is not an event; use start, pause, resume or finish"),
                )
            })?,
            (None, None) => {
                return Err(bad(
                    "event",
                    "required: start, pause, resume or finish".into(),
                ));
            }
        };
        let at = match raw.at.as_deref().map(|s| s.parse::<jiff::Timestamp>()) {
            None => None,
            Some(Ok(t)) => Some(t.as_millisecond()),
            Some(Err(e)) => return Err(bad("at", format!("not an RFC 3339 timestamp: {e}"))),
        };
        let labels: Vec<(&str, &str)> = raw.labels.0.iter().map(|(k, v)| (&**k, &**v)).collect();
        let input = EventInput {
            sla: &raw.sla,
            id: &raw.id,
            kind,
            labels: &labels,
            failed: raw.failed,
            at,
        };
        let event = catalog.admit_event(&input, now).map_err(|r| ItemError {
            line,
            item: Some(item),
            field: Some(r.field),
            reason: r.reason,
            kind: r.kind,
        })?;
        Ok(Decoded { line, item, event })
    })
    .map_err(|e| Refused::Input(vec![e]))?;
    if let Some(d) = denied {
        return Err(Refused::Denied(d));
    }
    if kind.is_some() && results.len() > 1 {
        let why = "send one event object; use /api/v1/deliveries/events for many";
        return Err(Refused::Input(vec![ItemError::malformed(
            1, None, None, why,
        )]));
    }
    json::all_or_nothing(results).map_err(Refused::Input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::source::Reason;

    fn catalog() -> Catalog {
        Config::parse("version: 1\nslas:\n  - name: desk\n    promise: 1h\n    objective: 90%\n    labels: [priority]\n")
            .unwrap()
            .catalog()
    }

    const NOW: Millis = 1_800_000_000_000;

    fn open(_: &str) -> Result<(), Denied> {
        Ok(())
    }

    fn input_errors<T: std::fmt::Debug>(r: Result<T, Refused>) -> Vec<ItemError> {
        match r {
            Err(Refused::Input(errors)) => errors,
            other => panic!("not an input refusal: {other:?}"),
        }
    }

    /// Errors name their field and item, as push errors do, in arrays and
    /// NDJSON alike.
    #[test]
    fn errors_name_the_field_and_the_item() {
        let array = r#"[{"event":"start","sla":"desk","id":"a"},{"event":"start","sla":"desk","id":5},{"event":"stop","sla":"desk","id":"c"}]"#;
        let errors = input_errors(decode(
            &catalog(),
            array.as_bytes(),
            Framing::Json,
            None,
            NOW,
            open,
        ));
        let at: Vec<(usize, Option<usize>, Option<&str>)> = errors
            .iter()
            .map(|e| (e.line, e.item, e.field.as_deref()))
            .collect();
        assert_eq!(at, [(1, Some(2), Some("id")), (1, Some(3), Some("event"))]);
        assert!(
            errors[0].reason.contains("expected a string"),
            "{}",
            errors[0].reason
        );
        let ndjson = "{\"event\":\"start\",\"sla\":\"desk\",\"id\":\"a\"}\n\n{\"event\":\"pause\",\"sla\":\"nope\",\"id\":\"a\"}\n";
        let errors = input_errors(decode(
            &catalog(),
            ndjson.as_bytes(),
            Framing::Ndjson,
            None,
            NOW,
            open,
        ));
        assert_eq!((errors[0].line, errors[0].item), (3, Some(2)));
        assert_eq!(errors[0].kind, Reason::UnknownSla);
        assert_eq!(errors[0].field.as_deref(), Some("sla"));
        let scalar = input_errors(decode(&catalog(), b"5", Framing::Json, None, NOW, open));
        assert!(
            scalar[0].reason.contains("expected an event object"),
            "{}",
            scalar[0].reason
        );
    }

    #[test]
    fn the_endpoint_names_the_kind() {
        let one = r#"{"sla":"desk","id":"a","labels":{"priority":"P1"}}"#;
        let decoded = decode(
            &catalog(),
            one.as_bytes(),
            Framing::Json,
            Some(Kind::Start),
            NOW,
            open,
        )
        .unwrap();
        assert_eq!(decoded[0].event.kind, Kind::Start);
        assert_eq!(&*decoded[0].event.key, "P1");
        let named = r#"{"event":"start","sla":"desk","id":"a"}"#;
        let errors = input_errors(decode(
            &catalog(),
            named.as_bytes(),
            Framing::Json,
            Some(Kind::Start),
            NOW,
            open,
        ));
        assert_eq!(errors[0].field.as_deref(), Some("event"));
        // Many events on a one-event endpoint: refused whole, nothing decoded.
        let two = r#"[{"sla":"desk","id":"a"},{"sla":"desk","id":"b"}]"#;
        let errors = input_errors(decode(
            &catalog(),
            two.as_bytes(),
            Framing::Json,
            Some(Kind::Start),
            NOW,
            open,
        ));
        assert!(
            errors[0].reason.contains("send one event object"),
            "{errors:?}"
        );
    }

    /// A caller refused an SLA hears only that, not whether it exists.
    #[test]
    fn a_refused_sla_is_said_before_any_other_problem() {
        let only_desk = |sla: &str| {
            if sla == "desk" {
                Ok(())
            } else {
                Err(Denied::Sla {
                    token: "t".into(),
                    sla: sla.into(),
                })
            }
        };
        let body = r#"{"event":"start","sla":"nope","id":5}"#;
        let r = decode(
            &catalog(),
            body.as_bytes(),
            Framing::Json,
            None,
            NOW,
            only_desk,
        );
        assert!(
            matches!(r, Err(Refused::Input(_))),
            "a body that does not parse names no SLA"
        );
        let body = r#"{"event":"start","sla":"nope","id":"a"}"#;
        let r = decode(
            &catalog(),
            body.as_bytes(),
            Framing::Json,
            None,
            NOW,
            only_desk,
        );
        assert!(matches!(r, Err(Refused::Denied(_))), "{r:?}");
    }
}
