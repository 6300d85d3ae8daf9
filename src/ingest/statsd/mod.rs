//! StatsD over UDP: timer lines mapped to SLAs and labels by config.
//!
//! A packet may hold many lines; each is parsed, mapped and admitted on its
//! own, so a bad line is counted by reason and never stops the socket. A
//! sampled timer (`@0.1`) stands for 1/rate events and is recorded that many
//! times (rounded, at most 1,000).

pub mod parser;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;

use super::{Reading, Reason, Source, SourceContext};
use crate::delivery::{Timing, parse_amount};
use parser::{Kind, Line};

/// Largest UDP payload.
const PACKET_BYTES: usize = 65_535;
/// Readings gathered from waiting packets before they are committed together.
const BATCH: usize = 4096;

/// `sources.statsd`: where to listen and how timers map to SLAs.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsdConfig {
    /// The UDP address to receive on.
    pub listen: SocketAddr,
    /// Tried in order; the first that matches a timer's name wins.
    pub mappings: Vec<Mapping>,
}

/// Timers whose name matches `pattern` become deliveries of `sla`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    /// The metric name pattern, one segment per dot.
    pub pattern: Vec<Segment>,
    /// The SLA its timers are deliveries of.
    pub sla: std::sync::Arc<str>,
    /// Label names and where each value comes from.
    pub labels: Vec<(String, LabelValue)>,
}

/// One dot-separated part of a metric name pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    /// This exact segment.
    Literal(String),
    /// `*`: any one segment, captured as `$1`, `$2`, ... in order.
    Any,
}

/// Where a mapped label's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelValue {
    /// This text.
    Literal(String),
    /// `$N`: the Nth `*` of the pattern (from 1).
    Capture(usize),
    /// `tag:NAME`: a DogStatsD tag's value ("" when absent).
    Tag(String),
}

impl Mapping {
    /// Parses `checkout.*.latency` into segments.
    pub fn pattern(text: &str) -> Result<Vec<Segment>, String> {
        text.split('.')
            .map(|s| match s {
                "" => Err(format!("`{text}` has an empty segment")),
                "*" => Ok(Segment::Any),
                s if s.contains('*') => Err(format!(
                    "`{text}`: `*` must stand for a whole segment, as in `api.*.latency`"
                )),
                s => Ok(Segment::Literal(s.to_owned())),
            })
            .collect()
    }

    /// The `*` captures when `name` matches.
    fn matches<'a>(&self, name: &'a str) -> Option<Vec<&'a str>> {
        let mut captures = Vec::new();
        let mut parts = name.split('.');
        for segment in &self.pattern {
            let part = parts.next()?;
            match segment {
                Segment::Any => captures.push(part),
                Segment::Literal(l) if l == part => {}
                Segment::Literal(_) => return None,
            }
        }
        parts.next().is_none().then_some(captures)
    }
}

/// The readings one parsed line yields, or why it yields none.
pub fn readings(mappings: &[Mapping], line: &Line<'_>) -> Result<Vec<Reading>, Reason> {
    if line.kind != Kind::Timer {
        return Err(Reason::NotATimer);
    }
    let (mapping, captures) = mappings
        .iter()
        .find_map(|m| m.matches(line.name).map(|c| (m, c)))
        .ok_or(Reason::Unmapped)?;
    let labels: Vec<(String, String)> = mapping
        .labels
        .iter()
        .map(|(key, value)| {
            let v = match value {
                LabelValue::Literal(l) => l.as_str(),
                LabelValue::Capture(n) => captures.get(n - 1).copied().unwrap_or(""),
                LabelValue::Tag(t) => line.tag(t).unwrap_or(""),
            };
            (key.clone(), v.to_owned())
        })
        .collect();
    let copies = (1.0 / line.sample_rate).round().clamp(1.0, 1000.0) as usize;
    let mut out = Vec::with_capacity(line.values.len() * copies);
    for value in &line.values {
        let reading = Reading {
            sla: mapping.sla.clone(),
            labels: labels.clone(),
            timing: Timing::Took {
                // The parser checked the value; past Duration's range it
                // saturates and admission refuses it as too long.
                took: parse_amount(value, Duration::from_millis(1)).unwrap_or(Duration::MAX),
                at: None,
            },
            id: None,
        };
        out.extend(std::iter::repeat_n(reading, copies));
    }
    Ok(out)
}

/// Binds the configured address; a failure here stops the exporter's start.
pub async fn bind(config: &StatsdConfig) -> std::io::Result<UdpSocket> {
    let socket = UdpSocket::bind(config.listen).await?;
    tracing::info!(udp = %socket.local_addr()?, "statsd listening");
    Ok(socket)
}

/// Receives until shutdown; nothing a packet holds stops the loop.
pub async fn run(socket: UdpSocket, config: StatsdConfig, ctx: SourceContext) {
    let mut buf = vec![0u8; PACKET_BYTES];
    let mut shutdown = ctx.shutdown.clone();
    let mut pending = Vec::new();
    loop {
        let received = tokio::select! {
            () = shutdown.wait() => break,
            r = socket.recv_from(&mut buf) => r,
        };
        match received {
            Ok((n, _)) => take(&config, &ctx, &buf[..n], &mut pending),
            Err(e) => {
                tracing::warn!(error = %e, "statsd receive failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        }
        // Drain what is already waiting, then commit it as one batch.
        while pending.len() < BATCH {
            match socket.try_recv_from(&mut buf) {
                Ok((n, _)) => take(&config, &ctx, &buf[..n], &mut pending),
                Err(_) => break,
            }
        }
        if let Err(e) = ctx.deliver(Source::Statsd, &pending, None).await {
            tracing::warn!(error = %e, dropped = pending.len(), "statsd deliveries not recorded");
        }
        pending.clear();
    }
    tracing::info!("statsd stopped");
}

fn take(config: &StatsdConfig, ctx: &SourceContext, packet: &[u8], out: &mut Vec<Reading>) {
    ctx.metrics().statsd_packets.inc();
    for line in parser::lines(packet) {
        let result = line
            .map_err(parser::ParseError::reason)
            .and_then(|l| readings(&config.mappings, &l));
        match result {
            Ok(r) => out.extend(r),
            Err(reason) => ctx.refuse(Source::Statsd, reason, 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping() -> Mapping {
        Mapping {
            pattern: Mapping::pattern("api.*.latency").unwrap(),
            sla: "api".into(),
            labels: vec![
                ("route".into(), LabelValue::Capture(1)),
                ("method".into(), LabelValue::Tag("method".into())),
                ("env".into(), LabelValue::Literal("prod".into())),
            ],
        }
    }

    #[test]
    fn timers_map_to_readings_with_captured_and_tagged_labels() {
        let line = parser::line("api.checkout.latency:250|ms|@0.5|#method:POST").unwrap();
        let r = readings(&[mapping()], &line).unwrap();
        assert_eq!(r.len(), 2, "a 50% sample stands for two deliveries");
        assert_eq!(
            r[0].labels,
            vec![
                ("route".into(), "checkout".into()),
                ("method".into(), "POST".into()),
                ("env".into(), "prod".into())
            ]
        );
        assert_eq!(
            r[0].timing,
            Timing::Took {
                took: Duration::from_millis(250),
                at: None
            }
        );
    }

    /// The same text reads as the same duration in every source: decimal
    /// milliseconds exactly, rounded half up to the nanosecond.
    #[test]
    fn values_convert_exactly_from_their_text() {
        for (value, nanos) in [
            ("300.0000005", 300_000_001),
            ("300.0000004", 300_000_000),
            ("0.1", 100_000),
            ("1.5e-3", 1_500),
        ] {
            let text = format!("api.x.latency:{value}|ms");
            let line = parser::line(&text).unwrap();
            let r = readings(&[mapping()], &line).unwrap();
            let Timing::Took { took, .. } = r[0].timing else {
                panic!("{value}: {:?}", r[0].timing);
            };
            assert_eq!(took, Duration::from_nanos(nanos), "{value}");
        }
    }

    /// Every reason the parser and mapper can give is pre-created for
    /// StatsD on `/metrics`.
    #[test]
    fn every_reason_statsd_gives_is_listed() {
        let listed = Source::Statsd.reasons();
        let given = parser::ParseError::ALL
            .iter()
            .map(|e| e.reason())
            .chain([Reason::NotATimer, Reason::Unmapped]);
        for r in given {
            assert!(listed.contains(&r), "{r}");
        }
    }

    #[test]
    fn unmapped_and_non_timer_lines_say_why() {
        let m = [mapping()];
        let other = parser::line("api.checkout.latency:1|c").unwrap();
        assert_eq!(readings(&m, &other), Err(Reason::NotATimer));
        let longer = parser::line("api.checkout.latency.p99:1|ms").unwrap();
        assert_eq!(readings(&m, &longer), Err(Reason::Unmapped));
        assert!(Mapping::pattern("api.che*.x").is_err());
        assert!(Mapping::pattern("api..x").is_err());
    }
}
