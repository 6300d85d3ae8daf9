//! The `sources:` section: each source's settings, checked against the SLAs.

use super::Sources;
use std::collections::HashSet;
use std::time::Duration;

use super::raw::{RawLogTail, RawMapping, RawProbe, RawSources, RawStatsd};
use super::validate::{Problems, duration, required};
use crate::ingest::log_tail::line::{Format, LineSpec, SlaFrom, Unit};
use crate::ingest::log_tail::{LogTailConfig, StartAt};
use crate::ingest::probe::{Method, ProbeConfig};
use crate::ingest::statsd::{LabelValue, Mapping, Segment, StatsdConfig};
use crate::sla::Sla;

const DEFAULT_STATSD_LISTEN: &str = "127.0.0.1:8125";

pub(super) fn validate(p: &mut Problems, raw: &RawSources, slas: &[Sla]) -> Sources {
    Sources {
        statsd: raw
            .statsd
            .as_ref()
            .and_then(|s| statsd(p, "sources.statsd", s, slas)),
        log_tail: {
            let mut names = HashSet::new();
            raw.log_tail
                .iter()
                .enumerate()
                .filter_map(|(i, t)| {
                    log_tail(p, &format!("sources.log_tail[{i}]"), i, t, slas, &mut names)
                })
                .collect()
        },
        probes: raw
            .probes
            .iter()
            .enumerate()
            .filter_map(|(i, r)| probe(p, &format!("sources.probes[{i}]"), i, r, slas))
            .collect(),
    }
}

fn probe(
    p: &mut Problems,
    path: &str,
    index: usize,
    raw: &RawProbe,
    slas: &[Sla],
) -> Option<ProbeConfig> {
    let before = p.len();
    let url = required(p, path, "url", raw.url.as_ref(), |s| {
        if s.starts_with("http://") || s.starts_with("https://") {
            Ok(s.to_owned())
        } else {
            Err(format!("`{s}` is not an http:// or https:// URL"))
        }
    });
    let method = p
        .parse(
            &format!("{path}.method"),
            raw.method.as_ref(),
            |s| match s {
                "GET" => Ok(Method::Get),
                "HEAD" => Ok(Method::Head),
                "POST" => Ok(Method::Post),
                _ => Err(format!("`{s}` is not a method: use GET, HEAD or POST")),
            },
        )
        .unwrap_or(Method::Get);
    let sla = required(p, path, "sla", raw.sla.as_ref(), |s| known_sla(slas, s));
    let mut labels = Vec::new();
    for (key, value) in &raw.labels {
        if !is_label(p, format!("{path}.labels.{key}"), value, sla, key) {
            continue;
        }
        labels.push((key.clone(), value.value.trim().to_owned()));
    }
    let interval = p
        .parse(&format!("{path}.interval"), raw.interval.as_ref(), |s| {
            duration(s, Duration::from_millis(100), Duration::from_secs(86400))
        })
        .unwrap_or(Duration::from_secs(15));
    let timeout = p
        .parse(&format!("{path}.timeout"), raw.timeout.as_ref(), |s| {
            duration(s, Duration::from_millis(10), Duration::from_secs(300))
        })
        .unwrap_or(Duration::from_secs(5).min(interval));
    if timeout > interval {
        p.at(
            format!("{path}.timeout"),
            raw.timeout.as_ref(),
            "longer than the interval: checks would overlap",
        );
    }
    let expect_status = raw
        .expect_status
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            p.parse(&format!("{path}.expect_status[{i}]"), Some(t), |s| {
                s.parse::<u16>()
                    .ok()
                    .filter(|c| (100..600).contains(c))
                    .ok_or_else(|| format!("`{s}` is not an HTTP status"))
            })
        })
        .collect();
    if p.len() > before {
        return None;
    }
    Some(ProbeConfig {
        name: raw
            .name
            .as_ref()
            .map_or(format!("probe{index}"), |n| n.value.trim().to_owned()),
        url: url?,
        method,
        sla: sla?.name.as_str().into(),
        labels,
        interval,
        timeout,
        expect_status,
        expect_body: raw.expect_body.as_ref().map(|t| t.value.clone()),
    })
}

fn log_tail(
    p: &mut Problems,
    path: &str,
    index: usize,
    raw: &RawLogTail,
    slas: &[Sla],
    names: &mut HashSet<String>,
) -> Option<LogTailConfig> {
    let before = p.len();
    let name = match &raw.name {
        None => format!("log{index}"),
        Some(t) => p
            .parse(&format!("{path}.name"), Some(t), |s| {
                if !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    Ok(s.to_owned())
                } else {
                    Err(format!(
                        "`{s}` is not a name: use letters, digits, `_` and `-`"
                    ))
                }
            })
            .unwrap_or_default(),
    };
    if !names.insert(name.clone()) {
        p.at(
            format!("{path}.name"),
            raw.name.as_ref(),
            format!("duplicate log source name `{name}`"),
        );
    }
    if raw.paths.is_empty() {
        p.at(
            format!("{path}.paths"),
            None,
            "required: one or more file paths or globs",
        );
    }
    let paths: Vec<String> = raw
        .paths
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            p.parse(&format!("{path}.paths[{i}]"), Some(t), |s| {
                glob::Pattern::new(s)
                    .map(|_| s.to_owned())
                    .map_err(|e| format!("`{s}` is not a path glob: {e}"))
            })
        })
        .collect();
    let start_at = p
        .parse(
            &format!("{path}.start_at"),
            raw.start_at.as_ref(),
            |s| match s {
                "end" => Ok(StartAt::End),
                "beginning" => Ok(StartAt::Beginning),
                _ => Err(format!("`{s}` is not a start: use beginning or end")),
            },
        )
        .unwrap_or(StartAt::End);
    let regex = raw.regex.as_ref().and_then(|t| {
        p.parse(&format!("{path}.regex"), Some(t), |s| {
            regex::Regex::new(s).map_err(|e| format!("not a regular expression: {e}"))
        })
    });
    let format = match raw.format.as_ref().map(|t| t.value.trim()) {
        None | Some("regex") if raw.regex.is_some() => regex.map(Format::Regex),
        None | Some("json") => Some(Format::Json),
        Some("regex") => {
            p.at(
                format!("{path}.regex"),
                None,
                "required when format is regex: a pattern with named captures",
            );
            None
        }
        Some(other) => {
            p.at(
                format!("{path}.format"),
                raw.format.as_ref(),
                format!("`{other}` is not a format: use regex or json"),
            );
            None
        }
    };
    let sla = match (&raw.sla, &raw.sla_field) {
        (Some(t), None) => p
            .parse(&format!("{path}.sla"), Some(t), |s| known_sla(slas, s))
            .map(|s| SlaFrom::Fixed(s.name.as_str().into())),
        (None, Some(t)) => Some(SlaFrom::Field(t.value.trim().to_owned())),
        (Some(_), Some(t)) => {
            p.at(
                format!("{path}.sla_field"),
                Some(t),
                "give either sla or sla_field, not both",
            );
            None
        }
        (None, None) => {
            p.at(
                format!("{path}.sla"),
                None,
                "required: an SLA name, or sla_field naming the field that holds it",
            );
            None
        }
    };
    let duration_field = required(
        p,
        path,
        "duration_field",
        raw.duration_field.as_ref(),
        |s| Ok(s.to_owned()),
    );
    let unit = p
        .parse(
            &format!("{path}.duration_unit"),
            raw.duration_unit.as_ref(),
            |s| {
                Unit::parse(s)
                    .ok_or_else(|| format!("`{s}` is not a unit: use s, ms, us or humantime"))
            },
        )
        .unwrap_or(Unit::Seconds);
    let timestamp_field = raw
        .timestamp_field
        .as_ref()
        .map(|t| t.value.trim().to_owned());
    let fixed = match &sla {
        Some(SlaFrom::Fixed(name)) => slas.iter().find(|s| *s.name == **name),
        _ => None,
    };
    let mut labels = Vec::new();
    for (key, field) in &raw.labels {
        if !is_label(p, format!("{path}.labels.{key}"), field, fixed, key) {
            continue;
        }
        labels.push((key.clone(), field.value.trim().to_owned()));
    }
    // Every field a regex source reads must be a named capture.
    if let Some(Format::Regex(re)) = &format {
        let names: HashSet<&str> = re.capture_names().flatten().collect();
        let mut fields: Vec<(String, &str)> = labels
            .iter()
            .map(|(k, f)| (format!("labels.{k}"), f.as_str()))
            .collect();
        fields.extend(
            duration_field
                .as_deref()
                .map(|f| ("duration_field".to_owned(), f)),
        );
        fields.extend(
            timestamp_field
                .as_deref()
                .map(|f| ("timestamp_field".to_owned(), f)),
        );
        if let Some(SlaFrom::Field(f)) = &sla {
            fields.push(("sla_field".to_owned(), f));
        }
        for (at, field) in fields {
            if !names.contains(field) {
                p.at(
                    format!("{path}.{at}"),
                    None,
                    format!("the regex has no named capture `{field}`"),
                );
            }
        }
    }
    let poll_interval = p
        .parse(
            &format!("{path}.poll_interval"),
            raw.poll_interval.as_ref(),
            |s| duration(s, Duration::from_millis(10), Duration::from_secs(60)),
        )
        .unwrap_or(Duration::from_millis(250));
    let exactly_once = p
        .parse(
            &format!("{path}.exactly_once"),
            raw.exactly_once.as_ref(),
            |s| {
                s.parse::<bool>()
                    .map_err(|_| format!("`{s}` is not true or false"))
            },
        )
        .unwrap_or(true);
    if p.len() > before {
        return None;
    }
    Some(LogTailConfig {
        name,
        paths,
        start_at,
        spec: LineSpec {
            format: format?,
            sla: sla?,
            duration_field: duration_field?,
            unit,
            timestamp_field,
            labels,
        },
        poll_interval,
        exactly_once,
    })
}

/// Whether `key` is a label of `sla` (when the SLA is known); records the
/// problem at `at` when it is not.
fn is_label(
    p: &mut Problems,
    at: impl Into<String>,
    value: &super::raw::Text,
    sla: Option<&Sla>,
    key: &str,
) -> bool {
    let Some(sla) = sla else { return true };
    if sla.labels.iter().any(|l| l == key) {
        return true;
    }
    let allowed = if sla.labels.is_empty() {
        "it has none".to_owned()
    } else {
        sla.labels.join(", ")
    };
    p.at(
        at,
        Some(value),
        format!("`{key}` is not a label of SLA `{}` ({allowed})", sla.name),
    );
    false
}

fn known_sla<'a>(slas: &'a [Sla], name: &str) -> Result<&'a Sla, String> {
    slas.iter().find(|x| x.name == name).ok_or_else(|| {
        let names: Vec<&str> = slas.iter().map(|x| x.name.as_str()).collect();
        format!("unknown SLA `{name}`; configured: {}", names.join(", "))
    })
}

fn statsd(p: &mut Problems, path: &str, raw: &RawStatsd, slas: &[Sla]) -> Option<StatsdConfig> {
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
    let sla = required(p, path, "sla", raw.sla.as_ref(), |s| {
        slas.iter().find(|x| x.name == s).ok_or_else(|| {
            let names: Vec<&str> = slas.iter().map(|x| x.name.as_str()).collect();
            format!("unknown SLA `{s}`; configured: {}", names.join(", "))
        })
    });
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
