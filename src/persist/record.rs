//! Log records: one acknowledged batch each, framed with its length and CRC.
//!
//! A record names its SLAs and their label keys, so it replays correctly
//! under a later config: deliveries are re-admitted by SLA name and label
//! name, never by position.
//!
//! Frame: `len: u32 LE | crc32c(payload): u32 LE | payload`, where payload is
//! `RECORD_VERSION: u8` followed by a postcard-encoded [`Batch`], from
//! version 2 the source [`Mark`] that came with it (if any), and from
//! version 3 the open-delivery events of the batch. Up to version 3 a
//! duration was float seconds; from version 4 it is whole nanoseconds.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::delivery::{Delivery, KEY_SEPARATOR, Outcome, key_values};
use crate::recorder::Mark;
use crate::recorder::open::{Event, Kind};
use crate::sla::Catalog;
use crate::window::Millis;

/// Bump when a logged batch changes shape.
pub const RECORD_VERSION: u8 = 4;
/// Oldest version this build still replays: version 1 has no marks, and
/// versions 1 and 2 no events.
const OLDEST_READABLE: u8 = 1;
pub const HEADER_BYTES: usize = 8;
/// No batch comes near this; a larger length means a corrupt header.
pub const MAX_RECORD_BYTES: usize = 1 << 30;

/// A batch of deliveries as logged; `L` is the delivery shape of its version.
#[derive(Debug, Serialize, Deserialize)]
struct Batch<'a, L> {
    /// When the batch was admitted: ids are remembered from then.
    now: Millis,
    #[serde(borrow)]
    slas: Vec<LoggedSla<'a>>,
    deliveries: Vec<L>,
}

#[derive(Debug, Serialize, Deserialize)]
struct LoggedSla<'a> {
    name: &'a str,
    #[serde(borrow)]
    labels: Vec<&'a str>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Logged<'a> {
    /// Index into `Batch::slas`.
    sla: u32,
    /// Label values joined by [`KEY_SEPARATOR`]; `None` repeats the previous.
    key: Option<&'a str>,
    /// Completion time, relative to `Batch::now`.
    at: i64,
    /// Whole nanoseconds; `None` for a failed delivery.
    nanos: Option<u64>,
    id: Option<&'a str>,
}

/// A delivery as versions 1 to 3 logged it: float seconds.
#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct LoggedV3<'a> {
    sla: u32,
    key: Option<&'a str>,
    at: i64,
    seconds: Option<f64>,
    id: Option<&'a str>,
}

impl<'a> From<LoggedV3<'a>> for Logged<'a> {
    fn from(v: LoggedV3<'a>) -> Logged<'a> {
        Logged {
            sla: v.sla,
            key: v.key,
            at: v.at,
            // They were written from durations, so rounding recovers them.
            nanos: v
                .seconds
                .map(|s| Duration::try_from_secs_f64(s).map_or(u64::MAX, |d| d.as_nanos() as u64)),
            id: v.id,
        }
    }
}

/// An open-delivery event; SLAs index `Batch::slas` as deliveries do.
#[derive(Debug, Serialize, Deserialize)]
struct LoggedEvent<'a> {
    sla: u32,
    id: &'a str,
    kind: Kind,
    key: &'a str,
    failed: bool,
    /// Relative to `Batch::now`.
    at: i64,
    explicit_at: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(
        "record version {0} is unknown; this build reads versions {OLDEST_READABLE} to {RECORD_VERSION}"
    )]
    Version(u8),
    #[error("record does not decode: {0}")]
    Decode(#[from] postcard::Error),
}

/// What one record holds besides its deliveries.
#[derive(Default)]
pub struct Extras<'a> {
    /// How far the source that read the batch had read.
    pub mark: Option<&'a Mark>,
    pub events: &'a [Event],
}

/// Position of `sla` in the record's SLA list, adding it if new.
fn logged_sla<'c>(
    catalog: &'c Catalog,
    slas: &mut Vec<(usize, LoggedSla<'c>)>,
    sla: usize,
) -> usize {
    if let Some(i) = slas.iter().position(|(i, _)| *i == sla) {
        return i;
    }
    let s = &catalog.slas[sla];
    slas.push((
        sla,
        LoggedSla {
            name: &s.name,
            labels: s.labels.iter().map(String::as_str).collect(),
        },
    ));
    slas.len() - 1
}

/// Appends the framed record of `batch` and `extras` (admitted against
/// `catalog` at `now`) to `out`.
pub fn encode(
    catalog: &Catalog,
    batch: &[Delivery],
    now: Millis,
    extras: Extras<'_>,
    out: &mut Vec<u8>,
) {
    let mut slas: Vec<(usize, LoggedSla<'_>)> = Vec::new();
    let mut deliveries = Vec::with_capacity(batch.len());
    let mut previous: Option<(usize, &str)> = None;
    for d in batch {
        let sla = logged_sla(catalog, &mut slas, d.sla);
        // Lengths first: most keys differ in length or are empty, and a
        // memcmp call per delivery showed in profiles.
        let same_key = previous.is_some_and(|(s, k): (usize, &str)| {
            s == sla && k.len() == d.key.len() && (k.is_empty() || k == &*d.key)
        });
        previous = Some((sla, &d.key));
        deliveries.push(Logged {
            sla: sla as u32,
            key: (!same_key).then_some(&*d.key),
            at: d.at - now,
            nanos: match d.outcome {
                // Admission caps durations at 400 days, far below u64 nanoseconds.
                Outcome::Delivered { took } => Some(took.as_nanos() as u64),
                Outcome::Failed => None,
            },
            id: d.id.as_deref(),
        });
    }
    let events: Vec<LoggedEvent<'_>> = extras
        .events
        .iter()
        .map(|e| LoggedEvent {
            sla: logged_sla(catalog, &mut slas, e.sla) as u32,
            id: &e.id,
            kind: e.kind,
            key: &e.key,
            failed: e.failed,
            at: e.at - now,
            explicit_at: e.explicit_at,
        })
        .collect();
    let record = Batch {
        now,
        slas: slas.into_iter().map(|(_, s)| s).collect(),
        deliveries,
    };
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_BYTES]);
    out.push(RECORD_VERSION);
    // Writing into a Vec cannot fail.
    let framed = postcard::to_io(&record, &mut *out)
        .and_then(|out| postcard::to_io(&extras.mark, out))
        .and_then(|out| postcard::to_io(&events, out).map(drop));
    debug_assert!(framed.is_ok());
    let payload = &out[start + HEADER_BYTES..];
    let len = payload.len() as u32;
    let crc = crc32c::crc32c(payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// What the start of `buf` holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A whole record whose checksum matches, and its framed length.
    Record { payload: &'a [u8], framed: usize },
    /// Nothing, or a record cut short: the end of what was written.
    End,
    /// A record whose checksum or length is wrong.
    Corrupt(&'static str),
}

pub fn frame(buf: &[u8]) -> Frame<'_> {
    if buf.len() < HEADER_BYTES {
        return Frame::End;
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if len == 0 || len > MAX_RECORD_BYTES {
        return Frame::Corrupt("impossible record length");
    }
    let Some(payload) = buf.get(HEADER_BYTES..HEADER_BYTES + len) else {
        return Frame::End;
    };
    if crc32c::crc32c(payload) != crc {
        return Frame::Corrupt("checksum mismatch");
    }
    Frame::Record {
        payload,
        framed: HEADER_BYTES + len,
    }
}

/// A decoded record, re-admitted against the current catalog.
pub struct Replayed {
    pub now: Millis,
    pub deliveries: Vec<Delivery>,
    /// Deliveries whose SLA or label keys the current config no longer has.
    pub dropped: u64,
    pub mark: Option<Mark>,
    pub events: Vec<Event>,
}

pub fn decode(payload: &[u8], catalog: &Catalog) -> Result<Replayed, RecordError> {
    let (&version, body) = payload.split_first().ok_or(RecordError::Decode(
        postcard::Error::DeserializeUnexpectedEnd,
    ))?;
    if !(OLDEST_READABLE..=RECORD_VERSION).contains(&version) {
        return Err(RecordError::Version(version));
    }
    let (batch, rest): (Batch<'_, Logged<'_>>, _) = if version <= 3 {
        let (old, rest): (Batch<'_, LoggedV3<'_>>, _) = postcard::take_from_bytes(body)?;
        let batch = Batch {
            now: old.now,
            slas: old.slas,
            deliveries: old.deliveries.into_iter().map(Logged::from).collect(),
        };
        (batch, rest)
    } else {
        postcard::take_from_bytes(body)?
    };
    let (mark, rest) = match version {
        1 => (None, rest),
        _ => postcard::take_from_bytes(rest)?,
    };
    let logged_events: Vec<LoggedEvent<'_>> = match version {
        1 | 2 => Vec::new(),
        _ => postcard::from_bytes(rest)?,
    };
    // Per logged SLA: its index now, and for each current label the position
    // of its value in logged keys (None: the label is new, value "").
    type Mapping = Option<(usize, Option<Vec<Option<usize>>>)>;
    let mapping: Vec<Mapping> = batch
        .slas
        .iter()
        .map(|logged| {
            let i = catalog.index(logged.name)?;
            let now = &catalog.slas[i].labels;
            let same = now.len() == logged.labels.len()
                && now.iter().zip(&logged.labels).all(|(a, b)| a == b);
            if same {
                return Some((i, None));
            }
            // A logged label the config dropped makes the key ambiguous.
            if logged.labels.iter().any(|l| !now.iter().any(|n| n == l)) {
                return None;
            }
            let positions = now
                .iter()
                .map(|n| logged.labels.iter().position(|l| l == n))
                .collect();
            Some((i, Some(positions)))
        })
        .collect();
    let mut out = Replayed {
        now: batch.now,
        deliveries: Vec::with_capacity(batch.deliveries.len()),
        dropped: 0,
        mark,
        events: Vec::with_capacity(logged_events.len()),
    };
    for e in &logged_events {
        let Some(Some((sla, positions))) = mapping.get(e.sla as usize) else {
            out.dropped += 1;
            continue;
        };
        out.events.push(Event {
            sla: *sla,
            id: e.id.into(),
            kind: e.kind,
            key: remap(e.key, positions.as_deref()),
            failed: e.failed,
            at: batch.now + e.at,
            explicit_at: e.explicit_at,
        });
    }
    let mut key = "";
    // The deliveries of one series share its key.
    let mut shared: Option<(u32, &str, Arc<str>)> = None;
    for logged in &batch.deliveries {
        if let Some(k) = logged.key {
            key = k;
        }
        let Some(Some((sla, positions))) = mapping.get(logged.sla as usize) else {
            out.dropped += 1;
            continue;
        };
        let key = match &shared {
            Some((s, k, arc)) if *s == logged.sla && std::ptr::eq(*k, key) => arc.clone(),
            _ => {
                let arc: Arc<str> = remap(key, positions.as_deref()).into();
                shared = Some((logged.sla, key, arc.clone()));
                arc
            }
        };
        out.deliveries.push(Delivery {
            sla: *sla,
            key,
            outcome: match logged.nanos {
                Some(nanos) => Outcome::Delivered {
                    took: Duration::from_nanos(nanos),
                },
                None => Outcome::Failed,
            },
            at: batch.now + logged.at,
            id: logged.id.map(Box::from),
        });
    }
    Ok(out)
}

/// A logged key in the current label order (`positions`: where each
/// current label's value sits in the logged key; `None` when unchanged).
fn remap(key: &str, positions: Option<&[Option<usize>]>) -> Box<str> {
    let Some(positions) = positions else {
        return key.into();
    };
    let values: Vec<&str> = key_values(key).collect();
    positions
        .iter()
        .map(|p| p.and_then(|p| values.get(p).copied()).unwrap_or(""))
        .collect::<Vec<_>>()
        .join(&KEY_SEPARATOR.to_string())
        .into()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::Config;
    use crate::delivery::{Input, Timing};

    fn catalog(labels: &str) -> Arc<Catalog> {
        let yaml = format!(
            "version: 1\nslas:\n  - name: api\n    promise: 1s\n    objective: 99%\n    labels: [{labels}]\n"
        );
        Arc::new(Config::parse(&yaml).unwrap().catalog())
    }

    fn delivery(c: &Catalog, route: &str, seconds: f64, id: Option<&str>) -> Delivery {
        let input = Input {
            sla: "api",
            labels: &[("route", route)],
            timing: Timing::Took {
                took: Duration::from_secs_f64(seconds),
                at: Some(990),
            },
            id,
        };
        c.admit(&input, 1_000).unwrap()
    }

    fn framed(c: &Catalog, batch: &[Delivery]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(c, batch, 1_000, Extras::default(), &mut out);
        out
    }

    #[test]
    fn records_read_back_as_written() {
        let c = catalog("route, method");
        let batch = vec![
            delivery(&c, "/a", 0.5, Some("x")),
            delivery(&c, "/a", 1.5, None),
            delivery(&c, "/b", 0.1, None),
        ];
        let mark = Mark {
            source: "log_tail/web".into(),
            position: vec![1, 2, 3],
        };
        let events = [Event {
            sla: 0,
            id: "T-1".into(),
            kind: Kind::Pause,
            key: "/a\u{1f}".into(),
            failed: false,
            at: 900,
            explicit_at: true,
        }];
        let mut bytes = Vec::new();
        let extras = Extras {
            mark: Some(&mark),
            events: &events,
        };
        encode(&c, &batch, 1_000, extras, &mut bytes);
        let Frame::Record { payload, framed } = frame(&bytes) else {
            panic!("not a record");
        };
        assert_eq!(framed, bytes.len());
        let back = decode(payload, &c).unwrap();
        assert_eq!(back.now, 1_000);
        assert_eq!(back.deliveries, batch);
        assert_eq!(back.dropped, 0);
        assert_eq!(back.mark, Some(mark));
        assert_eq!(back.events, events);
    }

    /// Versions 1 to 3 logged float seconds; 1 had no mark and 1 and 2 no
    /// events after the batch.
    #[test]
    fn older_records_with_float_seconds_still_replay() {
        let c = catalog("route");
        let old = Batch {
            now: 1_000,
            slas: vec![LoggedSla {
                name: "api",
                labels: vec!["route"],
            }],
            deliveries: vec![
                LoggedV3 {
                    sla: 0,
                    key: Some("/a"),
                    at: -10,
                    seconds: Some(0.27),
                    id: Some("x"),
                },
                LoggedV3 {
                    sla: 0,
                    key: None,
                    at: -10,
                    seconds: None,
                    id: None,
                },
            ],
        };
        let body = postcard::to_stdvec(&old).unwrap();
        let expected = vec![
            Delivery {
                sla: 0,
                key: "/a".into(),
                outcome: Outcome::Delivered {
                    took: Duration::from_millis(270),
                },
                at: 990,
                id: Some("x".into()),
            },
            Delivery {
                sla: 0,
                key: "/a".into(),
                outcome: Outcome::Failed,
                at: 990,
                id: None,
            },
        ];
        for (version, trailer) in [(1u8, &[][..]), (2, &[0][..]), (3, &[0, 0][..])] {
            let mut payload = vec![version];
            payload.extend_from_slice(&body);
            payload.extend_from_slice(trailer);
            let back = decode(&payload, &c).unwrap();
            assert_eq!(back.deliveries, expected, "version {version}");
            assert_eq!(back.mark, None);
        }
        let mut unknown = vec![5];
        unknown.extend_from_slice(&body);
        assert!(matches!(decode(&unknown, &c), Err(RecordError::Version(5))));
    }

    #[test]
    fn labels_follow_their_names_across_config_changes() {
        let before = catalog("route");
        let bytes = framed(&before, &[delivery(&before, "/a", 0.5, None)]);
        let Frame::Record { payload, .. } = frame(&bytes) else {
            panic!("not a record");
        };
        let after = catalog("method, route");
        let back = decode(payload, &after).unwrap();
        assert_eq!(&*back.deliveries[0].key, "\u{1f}/a");
        let dropped = catalog("method");
        assert_eq!(decode(payload, &dropped).unwrap().dropped, 1);
    }

    #[test]
    fn torn_and_corrupt_frames_are_told_apart() {
        let c = catalog("route");
        let mut bytes = framed(&c, &[delivery(&c, "/a", 0.5, None)]);
        assert_eq!(frame(&bytes[..bytes.len() - 1]), Frame::End);
        assert_eq!(frame(&bytes[..3]), Frame::End);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(frame(&bytes), Frame::Corrupt("checksum mismatch"));
        assert_eq!(frame(&[0; 16]), Frame::Corrupt("impossible record length"));
    }

    /// A fixed batch, mark and events encode to the committed bytes of this
    /// format version.
    #[test]
    fn the_encoding_of_this_version_is_pinned() {
        let c = catalog("route");
        let batch = vec![
            delivery(&c, "/a", 0.27, Some("x")),
            delivery(&c, "/a", 1.5, None),
            delivery(&c, "/b", 0.000_001, None),
        ];
        let mark = Mark {
            source: "log_tail/web".into(),
            position: vec![9, 8, 7],
        };
        let mut bytes = Vec::new();
        let extras = Extras {
            mark: Some(&mark),
            events: &[],
        };
        encode(&c, &batch, 1_000, extras, &mut bytes);
        let events = [Event {
            sla: 0,
            id: "T-1".into(),
            kind: Kind::Start,
            key: "/a".into(),
            failed: false,
            at: 900,
            explicit_at: true,
        }];
        let extras = Extras {
            mark: None,
            events: &events,
        };
        encode(&c, &[], 1_000, extras, &mut bytes);
        crate::persist::golden::check(&format!("record-v{RECORD_VERSION}.bin"), &bytes);
    }
}
