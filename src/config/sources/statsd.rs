//! `sources.statsd`: the UDP listener and metric-name mappings.

use super::super::raw::{RawMapping, RawStatsd};
use super::super::validate::{Problems, required};
use super::{is_label, known_sla};
use crate::ingest::statsd::{LabelValue, Mapping, Segment, StatsdConfig};
use crate::sla::Sla;

const DEFAULT_STATSD_LISTEN: &str = "127.0.0.1:8125";

pub(super) fn statsd(
    p: &mut Problems,
    path: &str,
    raw: &RawStatsd,
    slas: &[Sla],
) -> Option<StatsdConfig> {
    let listen = match &raw.listen {
        None => DEFAULT_STATSD_LISTEN.parse().ok(),
        Some(t) => p.parse(&format!("{path}.listen"), Some(t), |s| {
            s.parse()
                .map_err(|e| format!("`{s}` is not a listen address such as 127.0.0.1:8125 ({e})"))
        }),
    };
    if raw.mappings.is_empty() {
        p.at(
            format!("{path}.mappings"),
            None,
            "at least one mapping from metric names to an SLA is required",
        );
    }
    let mappings: Vec<Option<Mapping>> = raw
        .mappings
        .iter()
        .enumerate()
        .map(|(i, m)| mapping(p, &format!("{path}.mappings[{i}]"), m, slas))
        .collect();
    Some(StatsdConfig {
        listen: listen?,
        mappings: mappings.into_iter().collect::<Option<Vec<_>>>()?,
    })
}

fn mapping(p: &mut Problems, path: &str, raw: &RawMapping, slas: &[Sla]) -> Option<Mapping> {
    let pattern = required(p, path, "metric", raw.metric.as_ref(), Mapping::pattern);
    let sla = required(p, path, "sla", raw.sla.as_ref(), |s| known_sla(slas, s));
    let captures = pattern.as_ref().map_or(usize::MAX, |p| {
        p.iter().filter(|s| **s == Segment::Any).count()
    });
    let mut labels = Vec::new();
    for (key, value) in &raw.labels {
        let at = format!("{path}.labels.{key}");
        if !is_label(p, &at, value, sla, key) {
            continue;
        }
        let parsed = p.parse(&at, Some(value), |v| label_value(v, captures));
        labels.extend(parsed.map(|v| (key.clone(), v)));
    }
    Some(Mapping {
        pattern: pattern?,
        sla: sla?.name.as_str().into(),
        labels,
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
