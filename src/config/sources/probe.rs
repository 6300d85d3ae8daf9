//! `sources.probes[]`: active HTTP checks.

use std::time::Duration;

use super::super::fields::{Section, one_of, span};
use super::super::raw::RawProbe;
use super::super::validate::Problems;
use super::{is_label, known_sla};
use crate::ingest::probe::{Method, ProbeConfig};
use crate::sla::Sla;

const METHODS: &[(&str, Method)] = &[
    ("GET", Method::Get),
    ("HEAD", Method::Head),
    ("POST", Method::Post),
];

pub(super) fn probe(
    p: &mut Problems,
    path: &str,
    index: usize,
    raw: &RawProbe,
    slas: &[Sla],
) -> Option<ProbeConfig> {
    let mut at = Section::new(p, path);
    let url = at.required("url", raw.url.as_ref(), |s| {
        if s.starts_with("http://") || s.starts_with("https://") {
            Ok(s.to_owned())
        } else {
            Err(format!("`{s}` is not an http:// or https:// URL"))
        }
    });
    let method = at.or(
        "method",
        raw.method.as_ref(),
        one_of("method", METHODS),
        Method::Get,
    );
    let sla = at.required("sla", raw.sla.as_ref(), |s| known_sla(slas, s));
    let interval = at.or(
        "interval",
        raw.interval.as_ref(),
        span(Duration::from_millis(100), Duration::from_secs(86400)),
        Duration::from_secs(15),
    );
    let timeout = at.or(
        "timeout",
        raw.timeout.as_ref(),
        span(Duration::from_millis(10), Duration::from_secs(300)),
        Duration::from_secs(5).min(interval),
    );
    if timeout > interval {
        let why = "longer than the interval: checks would overlap";
        at.problem("timeout", raw.timeout.as_ref(), why);
    }
    let expect_status = at.each("expect_status", &raw.expect_status, |s| {
        s.parse::<u16>()
            .ok()
            .filter(|c| (100..600).contains(c))
            .ok_or_else(|| format!("`{s}` is not an HTTP status"))
    });
    let mut labels = Vec::new();
    for (key, value) in &raw.labels {
        if is_label(
            at.problems(),
            format!("{path}.labels.{key}"),
            value,
            sla,
            key,
        ) {
            labels.push((key.clone(), value.value.trim().to_owned()));
        }
    }
    if !at.clean() {
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
