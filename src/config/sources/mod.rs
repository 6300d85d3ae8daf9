//! The `sources:` section: each source's settings, checked against the SLAs.

mod log_tail;
mod otlp;
mod probe;
mod statsd;

pub(super) use otlp::otlp;

use std::collections::HashSet;

use super::Sources;
use super::raw::{RawSources, Text};
use super::validate::Problems;
use crate::sla::Sla;

pub(super) fn validate(p: &mut Problems, raw: &RawSources, slas: &[Sla]) -> Sources {
    Sources {
        statsd: raw
            .statsd
            .as_ref()
            .and_then(|s| statsd::statsd(p, "sources.statsd", s, slas)),
        log_tail: {
            let mut names = HashSet::new();
            raw.log_tail
                .iter()
                .enumerate()
                .filter_map(|(i, t)| {
                    log_tail::log_tail(p, &format!("sources.log_tail[{i}]"), i, t, slas, &mut names)
                })
                .collect()
        },
        probes: {
            let mut names = HashSet::new();
            raw.probes
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    probe::probe(p, &format!("sources.probes[{i}]"), i, r, slas, &mut names)
                })
                .collect()
        },
    }
}

/// Whether `key` is a label of `sla` (when the SLA is known); records the
/// problem at `at` when it is not.
pub(super) fn is_label(
    p: &mut Problems,
    at: impl Into<String>,
    value: &Text,
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

pub(super) fn known_sla<'a>(slas: &'a [Sla], name: &str) -> Result<&'a Sla, String> {
    slas.iter().find(|x| x.name == name).ok_or_else(|| {
        let names: Vec<&str> = slas.iter().map(|x| x.name.as_str()).collect();
        if names.is_empty() {
            // Every SLA has problems of its own, listed with it.
            format!("unknown SLA `{name}`: no SLA in this file is valid yet")
        } else {
            format!("unknown SLA `{name}`; configured: {}", names.join(", "))
        }
    })
}
