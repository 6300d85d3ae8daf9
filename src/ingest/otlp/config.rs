//! `sources.otlp.spans[]`: which spans received over OTLP become deliveries
//! of which SLA.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::fields::{Problems, Section, Text, known_sla};
use crate::sla::Sla;
use crate::span_rule::SpanRule;

/// `sources.otlp` as written.
#[derive(Debug, Deserialize)]
pub struct RawOtlp {
    #[serde(default)]
    pub(crate) spans: Vec<RawSpanRule>,
}

/// One `sources.otlp.spans` entry as written.
#[derive(Debug, Deserialize)]
pub struct RawSpanRule {
    pub(crate) sla: Option<Text>,
    #[serde(default, rename = "match")]
    pub(crate) matches: BTreeMap<String, Text>,
    #[serde(default)]
    pub(crate) labels: BTreeMap<String, Text>,
    pub(crate) failed_status_code: Option<Text>,
}

/// Every key of the shapes above, for "did you mean".
pub const KEYS: &[&str] = &["spans", "sla", "match", "labels", "failed_status_code"];

/// Span kinds as the rules spell them (OTLP's `SPAN_KIND_*`, lower case).
pub const SPAN_KINDS: [&str; 5] = ["internal", "server", "client", "producer", "consumer"];

pub(super) fn otlp(
    p: &mut Problems,
    at: &str,
    raw: Option<&RawOtlp>,
    slas: &[Sla],
) -> Vec<SpanRule> {
    let Some(raw) = raw else {
        return Vec::new();
    };
    let mut rules = Vec::new();
    for (i, r) in raw.spans.iter().enumerate() {
        let path = format!("{at}.spans[{i}]");
        let mut at = Section::new(p, &path);
        let sla = at.required("sla", r.sla.as_ref(), |s| known_sla(slas, s));
        let mut matches = Vec::new();
        for (key, value) in &r.matches {
            let v = value.value.trim();
            let problem = match key.as_str() {
                _ if key.trim().is_empty() => Some("an empty key matches nothing".to_owned()),
                _ if v.is_empty() => Some("an empty value: leave the key out".to_owned()),
                "span.kind" if !SPAN_KINDS.contains(&v) => Some(format!(
                    "`{v}` is not a span kind: {}",
                    SPAN_KINDS.join(", ")
                )),
                _ => None,
            };
            match problem {
                Some(why) => at.problem(&format!("match.{key}"), Some(value), why),
                None => matches.push((key.trim().to_owned(), v.to_owned())),
            }
        }
        let labels = at.labels(&r.labels, sla, |attribute| {
            if attribute.is_empty() {
                Err("name the attribute the label is read from".to_owned())
            } else {
                Ok(attribute.to_owned())
            }
        });
        let failed_status_code = r
            .failed_status_code
            .as_ref()
            .map(|t| t.value.trim().to_owned());
        if let (Some(""), Some(text)) = (failed_status_code.as_deref(), &r.failed_status_code) {
            at.problem(
                "failed_status_code",
                Some(text),
                "name the attribute holding the status code, or leave the key out".to_owned(),
            );
        }
        if !at.clean() {
            continue;
        }
        if let Some(sla) = sla {
            rules.push(SpanRule {
                sla: sla.name.clone(),
                matches,
                labels,
                failed_status_code,
            });
        }
    }
    rules
}
