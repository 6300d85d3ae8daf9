//! `sources.probes[]`: active HTTP checks.

use std::time::Duration;

use super::super::raw::RawProbe;
use super::super::validate::{Problems, duration, required};
use super::{is_label, known_sla};
use crate::ingest::probe::{Method, ProbeConfig};
use crate::sla::Sla;

pub(super) fn probe(
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
