//! `sources.log_tail[]`: files to follow and how their lines read.

use std::collections::HashSet;
use std::time::Duration;

use super::super::raw::RawLogTail;
use super::super::validate::{Problems, duration, required};
use super::{is_label, known_sla};
use crate::ingest::log_tail::line::{Format, LineSpec, Pattern, SlaFrom, Unit};
use crate::ingest::log_tail::{LogTailConfig, StartAt};
use crate::sla::Sla;

pub(super) fn log_tail(
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
            Pattern::new(s).map_err(|e| format!("not a regular expression: {e}"))
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
            if !re.has_group(field) {
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
    })
}
