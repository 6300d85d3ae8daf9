//! `sources.log_tail[]`: files to follow and how their lines read.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde::Deserialize;

use crate::fields::{Problems, Section, Text, bytes, identifier, known_sla, one_of, span, text};
use crate::ingest::log_tail::line::{FailedWhen, Format, LineSpec, Pattern, SlaFrom, Unit};
use crate::ingest::log_tail::{LogTailConfig, StartAt};
use crate::sla::Sla;

/// One `sources.log_tail` entry as written.
#[derive(Debug, Deserialize)]
pub struct RawLogTail {
    pub(crate) name: Option<Text>,
    #[serde(default)]
    pub(crate) paths: Vec<Text>,
    pub(crate) start_at: Option<Text>,
    pub(crate) format: Option<Text>,
    pub(crate) regex: Option<Text>,
    pub(crate) sla: Option<Text>,
    pub(crate) sla_field: Option<Text>,
    pub(crate) duration_field: Option<Text>,
    pub(crate) duration_unit: Option<Text>,
    pub(crate) timestamp_field: Option<Text>,
    #[serde(default)]
    pub(crate) labels: BTreeMap<String, Text>,
    pub(crate) poll_interval: Option<Text>,
    pub(crate) rotate_wait: Option<Text>,
    pub(crate) max_line_bytes: Option<Text>,
    pub(crate) include: Option<Text>,
    pub(crate) exclude: Option<Text>,
    pub(crate) failed_field: Option<Text>,
    pub(crate) failed_match: Option<Text>,
}

/// Every key of the shapes above, for "did you mean".
pub const KEYS: &[&str] = &[
    "name",
    "paths",
    "start_at",
    "format",
    "regex",
    "sla",
    "sla_field",
    "duration_field",
    "duration_unit",
    "timestamp_field",
    "labels",
    "poll_interval",
    "rotate_wait",
    "max_line_bytes",
    "include",
    "exclude",
    "failed_field",
    "failed_match",
];

const START_AT: &[(&str, StartAt)] = &[("beginning", StartAt::Beginning), ("end", StartAt::End)];
const UNITS: &[(&str, Unit)] = &[
    ("s", Unit::Seconds),
    ("ms", Unit::Millis),
    ("us", Unit::Micros),
    ("humantime", Unit::Humantime),
];

pub(super) fn log_tail(
    p: &mut Problems,
    path: &str,
    index: usize,
    raw: &RawLogTail,
    slas: &[Sla],
    names: &mut HashSet<String>,
) -> Option<LogTailConfig> {
    let mut at = Section::new(p, path);
    let name = match &raw.name {
        None => format!("log{index}"),
        Some(t) => at.or("name", Some(t), identifier, String::new()),
    };
    if !names.insert(name.clone()) {
        at.problem(
            "name",
            raw.name.as_ref(),
            format!("duplicate log source name `{name}`"),
        );
    }
    if raw.paths.is_empty() {
        at.problem("paths", None, "required: one or more file paths or globs");
    }
    let paths = at.each("paths", &raw.paths, |s| {
        glob::Pattern::new(s)
            .map(|_| s.to_owned())
            .map_err(|e| format!("`{s}` is not a path glob: {e}"))
    });
    let start_at = at.or(
        "start_at",
        raw.start_at.as_ref(),
        one_of("start", START_AT),
        StartAt::End,
    );
    let format = format(&mut at, raw);
    let sla = sla_from(&mut at, raw, slas);
    let duration_field = at.required("duration_field", raw.duration_field.as_ref(), text);
    let unit = at.or(
        "duration_unit",
        raw.duration_unit.as_ref(),
        one_of("unit", UNITS),
        Unit::Seconds,
    );
    let timestamp_field = at.optional("timestamp_field", raw.timestamp_field.as_ref(), text);
    let poll_interval = at.or(
        "poll_interval",
        raw.poll_interval.as_ref(),
        span(Duration::from_millis(10), Duration::from_secs(60)),
        Duration::from_millis(250),
    );
    let rotate_wait = at.or(
        "rotate_wait",
        raw.rotate_wait.as_ref(),
        span(Duration::ZERO, Duration::from_secs(3600)),
        Duration::from_secs(5),
    );
    let max_line_bytes = at.or(
        "max_line_bytes",
        raw.max_line_bytes.as_ref(),
        bytes(256, 64 << 20),
        1 << 20,
    ) as usize;
    let include = at.optional("include", raw.include.as_ref(), pattern);
    let exclude = at.optional("exclude", raw.exclude.as_ref(), pattern);
    let failed = failed_when(&mut at, raw);
    // Labels are checked against the SLA when every line has the same one.
    let fixed = match &sla {
        Some(SlaFrom::Fixed(name)) => slas.iter().find(|s| *s.name == **name),
        _ => None,
    };
    let labels = at.labels(&raw.labels, fixed, text);
    if let Some(Format::Regex(re)) = &format {
        let read = Read {
            sla: sla.as_ref(),
            duration: duration_field.as_deref(),
            timestamp: timestamp_field.as_deref(),
            labels: &labels,
            failed: failed.as_ref().map(|f| f.field.as_str()),
        };
        captured(&mut at, re, &read);
    }
    if !at.clean() {
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
            include,
            exclude,
            failed,
        },
        poll_interval,
        rotate_wait,
        max_line_bytes,
    })
}

/// `format` (json, or regex with `regex`), and the pattern.
fn format(at: &mut Section<'_>, raw: &RawLogTail) -> Option<Format> {
    let regex = at.optional("regex", raw.regex.as_ref(), pattern);
    match raw.format.as_ref().map(|t| t.value.trim()) {
        None | Some("regex") if raw.regex.is_some() => regex.map(Format::Regex),
        None | Some("json") => Some(Format::Json),
        Some("regex") => {
            let why = "required when format is regex: a pattern with named captures";
            at.problem("regex", None, why);
            None
        }
        Some(other) => {
            let why = format!("`{other}` is not a format: use regex or json");
            at.problem("format", raw.format.as_ref(), why);
            None
        }
    }
}

/// Where a line's SLA comes from: `sla` (one for every line) or
/// `sla_field`, exactly one of them.
fn sla_from(at: &mut Section<'_>, raw: &RawLogTail, slas: &[Sla]) -> Option<SlaFrom> {
    match (&raw.sla, &raw.sla_field) {
        (Some(t), None) => at
            .optional("sla", Some(t), |s| known_sla(slas, s))
            .map(|s| SlaFrom::Fixed(s.name.as_str().into())),
        (None, Some(t)) => Some(SlaFrom::Field(t.value.trim().to_owned())),
        (Some(_), Some(t)) => {
            let why = "give either sla or sla_field, not both";
            at.problem("sla_field", Some(t), why);
            None
        }
        (None, None) => {
            let why = "required: an SLA name, or sla_field naming the field that holds it";
            at.problem("sla", None, why);
            None
        }
    }
}

/// `failed_field` and `failed_match`, both or neither.
fn failed_when(at: &mut Section<'_>, raw: &RawLogTail) -> Option<FailedWhen> {
    match (&raw.failed_field, &raw.failed_match) {
        (None, None) => None,
        (Some(field), Some(m)) => at
            .optional("failed_match", Some(m), pattern)
            .map(|pattern| FailedWhen {
                field: field.value.trim().to_owned(),
                pattern,
            }),
        (Some(_), None) => {
            let why = "required with failed_field: a regex the field's value matches when the delivery failed, such as `^5`";
            at.problem("failed_match", None, why);
            None
        }
        (None, Some(t)) => {
            let why = "required with failed_match: the field to look at";
            at.problem("failed_field", Some(t), why);
            // Its own problems too, all at once.
            let _ = at.optional("failed_match", Some(t), pattern);
            None
        }
    }
}

/// The fields a log source reads from each line.
struct Read<'a> {
    sla: Option<&'a SlaFrom>,
    duration: Option<&'a str>,
    timestamp: Option<&'a str>,
    labels: &'a [(String, String)],
    failed: Option<&'a str>,
}

/// Every field a regex source reads must be a named capture of its regex.
fn captured(at: &mut Section<'_>, re: &Pattern, read: &Read<'_>) {
    let mut fields: Vec<(String, &str)> = read
        .labels
        .iter()
        .map(|(k, f)| (format!("labels.{k}"), f.as_str()))
        .collect();
    fields.extend(read.duration.map(|f| ("duration_field".to_owned(), f)));
    fields.extend(read.timestamp.map(|f| ("timestamp_field".to_owned(), f)));
    if let Some(SlaFrom::Field(f)) = read.sla {
        fields.push(("sla_field".to_owned(), f));
    }
    if let Some(f) = read.failed {
        fields.push(("failed_field".to_owned(), f));
    }
    for (key, field) in fields {
        if !re.has_group(field) {
            at.problem(
                &key,
                None,
                format!("the regex has no named capture `{field}`"),
            );
        }
    }
}

/// A regular expression.
fn pattern(s: &str) -> Result<Pattern, String> {
    Pattern::new(s).map_err(|e| format!("not a regular expression: {e}"))
}
