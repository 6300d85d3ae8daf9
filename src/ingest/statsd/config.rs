//! `sources.statsd`: the UDP listener and metric-name mappings.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::fields::{Problems, Section, Text, known_sla, one_of};
use crate::ingest::statsd::{LabelValue, Mapping, Segment, StatsdConfig};
use crate::sla::Sla;

/// `sources.statsd` as written.
#[derive(Debug, Deserialize)]
pub struct RawStatsd {
    pub(crate) listen: Option<Text>,
    pub(crate) tcp_listen: Option<Text>,
    pub(crate) unix_listen: Option<Text>,
    #[serde(default)]
    pub(crate) mappings: Vec<RawMapping>,
}

/// One `sources.statsd.mappings` entry as written.
#[derive(Debug, Deserialize)]
pub struct RawMapping {
    pub(crate) metric: Option<Text>,
    pub(crate) sla: Option<Text>,
    pub(crate) duration_unit: Option<Text>,
    #[serde(default)]
    pub(crate) labels: BTreeMap<String, Text>,
}

/// Every key of the shapes above, for "did you mean".
pub const KEYS: &[&str] = &[
    "listen",
    "tcp_listen",
    "unix_listen",
    "mappings",
    "metric",
    "sla",
    "duration_unit",
    "labels",
];

const DEFAULT_STATSD_LISTEN: &str = "127.0.0.1:8125";

const UNITS: &[(&str, Duration)] = &[
    ("ms", Duration::from_millis(1)),
    ("s", Duration::from_secs(1)),
    ("us", Duration::from_micros(1)),
];

pub(super) fn statsd(
    p: &mut Problems,
    path: &str,
    raw: &RawStatsd,
    slas: &[Sla],
) -> Option<StatsdConfig> {
    let mut at = Section::new(p, path);
    let listen = at
        .optional("listen", raw.listen.as_ref(), address)
        .or_else(|| {
            raw.listen
                .is_none()
                .then(|| DEFAULT_STATSD_LISTEN.parse().ok())
                .flatten()
        });
    let tcp_listen = at.optional("tcp_listen", raw.tcp_listen.as_ref(), address);
    let unix_listen = at.optional("unix_listen", raw.unix_listen.as_ref(), |s| {
        if s.starts_with('/') {
            Ok(PathBuf::from(s))
        } else {
            Err(format!("`{s}` is not an absolute path for a Unix socket"))
        }
    });
    if raw.mappings.is_empty() {
        let why = "at least one mapping from metric names to an SLA is required";
        at.problem("mappings", None, why);
    }
    let mappings: Vec<Option<Mapping>> = raw
        .mappings
        .iter()
        .enumerate()
        .map(|(i, m)| mapping(at.problems(), &format!("{path}.mappings[{i}]"), m, slas))
        .collect();
    Some(StatsdConfig {
        listen: listen?,
        tcp_listen,
        unix_listen,
        mappings: mappings.into_iter().collect::<Option<Vec<_>>>()?,
    })
}

/// A socket address such as `127.0.0.1:8125`.
fn address(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|e| format!("`{s}` is not a listen address such as 127.0.0.1:8125 ({e})"))
}

fn mapping(p: &mut Problems, path: &str, raw: &RawMapping, slas: &[Sla]) -> Option<Mapping> {
    let mut at = Section::new(p, path);
    let pattern = at.required("metric", raw.metric.as_ref(), Mapping::pattern);
    let sla = at.required("sla", raw.sla.as_ref(), |s| known_sla(slas, s));
    let unit = at.or(
        "duration_unit",
        raw.duration_unit.as_ref(),
        one_of("unit", UNITS),
        Duration::from_millis(1),
    );
    let captures = pattern.as_ref().map_or(usize::MAX, |p| {
        p.iter().filter(|s| **s == Segment::Any).count()
    });
    let labels = at.labels(&raw.labels, sla, |v| label_value(v, captures));
    Some(Mapping {
        pattern: pattern?,
        sla: sla?.name.as_str().into(),
        labels,
        unit,
    })
}

/// `$N` (a capture), `tag:NAME` (a DogStatsD tag) or a literal.
fn label_value(v: &str, captures: usize) -> Result<LabelValue, String> {
    if let Some(n) = v.strip_prefix('$') {
        let n: usize = n
            .parse()
            .map_err(|_| format!("`{v}`: write `$1` for the first `*` of the metric"))?;
        if n == 0 || n > captures {
            return Err(format!(
                "`{v}`: the metric pattern has {captures} `*` to capture"
            ));
        }
        return Ok(LabelValue::Capture(n));
    }
    if let Some(tag) = v.strip_prefix("tag:") {
        if tag.is_empty() {
            return Err("`tag:` needs a tag name, as in `tag:route`".into());
        }
        return Ok(LabelValue::Tag(tag.to_owned()));
    }
    Ok(LabelValue::Literal(v.to_owned()))
}
