//! StatsD: timer lines mapped to SLAs and labels by config, received over
//! UDP, TCP and a Unix datagram socket ([`receive`]).
//!
//! A packet may hold many lines; each is parsed, mapped and admitted on its
//! own, so a bad line is counted by reason and never stops the socket. A
//! sampled timer (`@0.1`) stands for 1/rate events: the fractions are
//! carried per series, so ten lines at `@0.4` count 25 and ten at `@0.3`
//! count 33 with a third carried to the next (rates below 0.001 count as
//! 0.001, at most 1,000 deliveries a value).

mod config;
pub mod parser;
pub mod receive;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use smallvec::SmallVec;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::readings::encode_values;
use super::{
    Changes, Kind, Labels, Readings, Reason, Slot, Source, SourceContext, StartError, Task,
};
use crate::decimal::Decimal;
use crate::delivery::Timing;
use crate::fields::Problems;
use crate::sla::Sla;
use parser::{Line, Tag};

pub use config::{RawMapping, RawStatsd};
pub use receive::{Listeners, LiveMappings, bind, run};

/// StatsD as a kind of source (`sources.statsd`): one set of sockets, whose
/// mappings a reload changes in place.
pub struct Statsd;

/// The running StatsD source, and where its mappings are changed in place.
pub struct Running {
    task: Task<StatsdConfig>,
    live: watch::Sender<Arc<Vec<Mapping>>>,
}

impl Kind for Statsd {
    type Raw = Option<RawStatsd>;
    type Config = Option<StatsdConfig>;
    type Running = Option<Running>;
    const KEYS: &'static [&'static str] = config::KEYS;
    const SOURCE: Source = Source::Statsd;

    fn validate(
        p: &mut Problems,
        at: &str,
        raw: &Option<RawStatsd>,
        slas: &[Sla],
    ) -> Option<StatsdConfig> {
        raw.as_ref().and_then(|s| config::statsd(p, at, s, slas))
    }

    async fn start(
        config: Option<StatsdConfig>,
        ctx: &SourceContext,
    ) -> Result<Option<Running>, StartError> {
        match config {
            None => Ok(None),
            Some(config) => start(config, ctx).await.map(Some),
        }
    }

    async fn apply(
        running: &mut Option<Running>,
        wanted: Option<StatsdConfig>,
        ctx: &SourceContext,
        changes: &mut Changes,
    ) {
        let label = "statsd".to_owned();
        match (running.take(), wanted) {
            (None, None) => {}
            (Some(kept), Some(config)) if same_sockets(&kept.task.config, &config) => {
                if kept.task.config.mappings != config.mappings {
                    let _ = kept.live.send(Arc::new(config.mappings.clone()));
                    changes.reconfigured.push(format!("{label} mappings"));
                }
                *running = Some(Running {
                    task: kept.task.with_config(config),
                    live: kept.live,
                });
            }
            (Some(old), wanted) => {
                // New addresses: the old sockets close first, as the new
                // may be on some of the same ports.
                let previous = old.task.stop().await;
                match wanted {
                    None => changes.stopped.push(label),
                    Some(config) => match start(config, ctx).await {
                        Ok(started) => {
                            *running = Some(started);
                            changes.reconfigured.push(label);
                        }
                        Err(e) => {
                            changes.failed.push(format!("{label}: {e}"));
                            match start(previous, ctx).await {
                                Ok(kept) => *running = Some(kept),
                                Err(e) => changes.failed.push(format!(
                                    "{label}: the previous settings failed too: {e}"
                                )),
                            }
                        }
                    },
                }
            }
            (None, Some(config)) => match start(config, ctx).await {
                Ok(started) => {
                    *running = Some(started);
                    changes.started.push(label);
                }
                Err(e) => changes.failed.push(format!("{label}: {e}")),
            },
        }
    }

    fn stop(running: Option<Running>) -> Vec<JoinHandle<()>> {
        running.map(|r| r.task.signal()).into_iter().collect()
    }
}

/// Binds `config`'s sockets and starts receiving on them.
async fn start(config: StatsdConfig, ctx: &SourceContext) -> Result<Running, StartError> {
    let listeners = bind(&config).await?;
    let (live, mappings) = watch::channel(Arc::new(config.mappings.clone()));
    let task = Task::spawn(Source::Statsd, config, ctx, |ctx| {
        run(listeners, mappings, ctx)
    });
    Ok(Running { task, live })
}

/// Whether two StatsD configs listen on the same sockets.
fn same_sockets(a: &StatsdConfig, b: &StatsdConfig) -> bool {
    a.listen == b.listen && a.tcp_listen == b.tcp_listen && a.unix_listen == b.unix_listen
}

/// `sources.statsd`: where to listen and how timers map to SLAs.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsdConfig {
    /// The UDP address to receive on.
    pub listen: SocketAddr,
    /// A TCP address to receive newline-ended lines on, if any.
    pub tcp_listen: Option<SocketAddr>,
    /// A Unix datagram socket to receive on, if any (DogStatsD's UDS).
    pub unix_listen: Option<PathBuf>,
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
    /// What one unit of a timer's value is: a millisecond unless the client
    /// sends seconds (the `datadog` client's `timed`) or microseconds.
    pub unit: Duration,
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
    fn matches<'a>(&self, name: &'a str) -> Option<SmallVec<[&'a str; 4]>> {
        let mut captures = SmallVec::new();
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

/// Names and series a mapper remembers; past either, it starts afresh (the
/// fractions carried for the series forgotten, under one delivery each).
const REMEMBERED: usize = 10_000;

/// Maps lines to readings. One per receiving thread: it remembers what each
/// metric name maps to and each series' labels, so a line costs two lookups
/// and the readings of a series share their labels, and it carries the
/// fractions sample rates leave per series so totals are exact.
#[derive(Debug, Default)]
pub struct Mapper {
    /// The fractions carried per series, shared with the source's other
    /// sockets and kept across mapping reloads.
    carries: Carries,
    /// By metric name: its mapping, and its series by the values of the
    /// tags that mapping reads.
    names: foldhash::HashMap<Box<str>, Named>,
    /// By mapping and label values: the series' place in `series`.
    by_labels: foldhash::HashMap<(usize, Box<[u8]>), usize>,
    series: Vec<Series>,
    /// Label or tag values of the line at hand, length-prefixed so no two
    /// lists read the same.
    scratch: Vec<u8>,
}

#[derive(Debug)]
struct Named {
    /// The first mapping that matches; none for an unmapped name.
    mapping: Option<usize>,
    /// Places in `Mapper::series`, by tag values.
    by_tags: foldhash::HashMap<Box<[u8]>, usize>,
}

/// Fractions of sampled events not yet recorded, per series (SLA and label
/// values), shared by every socket of a StatsD source and kept when its
/// mappings are reloaded: ten values at `@0.3` count 33 whether they come
/// over UDP, TCP or both. Past 10,000 series it starts afresh.
#[derive(Debug, Clone, Default)]
pub struct Carries(Arc<Mutex<foldhash::HashMap<Box<[u8]>, Fraction>>>);

impl Carries {
    /// The whole events one more value at `rate` makes for series `key`.
    fn take(&self, key: &[u8], rate: Decimal) -> u64 {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if all.len() >= REMEMBERED && !all.contains_key(key) {
            all.clear();
        }
        all.entry(key.into()).or_default().take(rate)
    }
}

#[derive(Debug)]
struct Series {
    labels: Labels,
    /// Its key among the [`Carries`]: SLA and label values.
    key: Box<[u8]>,
    /// Its slot in the batch being filled: valid while the batch id matches.
    slot: Option<(u64, Slot)>,
}

/// A non-negative fraction `num / den`, in lowest terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fraction {
    num: u128,
    den: u128,
}

impl Default for Fraction {
    fn default() -> Self {
        Fraction { num: 0, den: 1 }
    }
}

impl Fraction {
    /// Adds the events one value sampled at `rate` stands for (1 / rate)
    /// and takes the whole ones out.
    fn take(&mut self, rate: Decimal) -> u64 {
        let (units, scale) = (
            u128::from(rate.units()),
            10u128.pow(u32::from(rate.scale())),
        );
        // num/den + scale/units
        let num = self.num * units + scale * self.den;
        let den = self.den * units;
        let g = gcd(num, den);
        let (num, den) = (num / g, den / g);
        let whole = num / den;
        *self = Fraction {
            num: num - whole * den,
            den,
        };
        u64::try_from(whole).unwrap_or(u64::MAX)
    }
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

/// A mapped label's value for a line: text, a capture or a tag.
fn label_value<'a>(value: &'a LabelValue, captures: &[&'a str], tags: &[Tag<'a>]) -> &'a str {
    match value {
        LabelValue::Literal(l) => l,
        LabelValue::Capture(n) => captures.get(n - 1).copied().unwrap_or(""),
        LabelValue::Tag(t) => parser::tag(tags, t).unwrap_or(""),
    }
}

impl Mapper {
    /// A mapper that carries fractions in `carries`.
    pub fn new(carries: Carries) -> Mapper {
        Mapper {
            carries,
            ..Mapper::default()
        }
    }

    /// Adds to `out` the deliveries one parsed line stands for (each value
    /// as many times as its sample rate says), or says why there are none.
    pub fn readings(
        &mut self,
        mappings: &[Mapping],
        line: &Line<'_>,
        out: &mut Readings,
    ) -> Result<(), Reason> {
        if line.samples.iter().all(|s| s.timer().is_none()) {
            return Err(Reason::NotATimer);
        }
        let (mapping, index) = self.series_of(mappings, line)?;
        let series = &mut self.series[index];
        let slot = match series.slot {
            Some((batch, slot)) if batch == out.id() => slot,
            _ => {
                let slot = out.series(&mapping.sla, &series.labels);
                series.slot = Some((out.id(), slot));
                slot
            }
        };
        for (amount, rate) in line
            .samples
            .iter()
            .filter_map(|s| Some((s.timer()?, s.rate)))
        {
            let copies = if rate == Decimal::ONE {
                1
            } else {
                self.carries.take(&series.key, rate).min(1000)
            };
            let timing = Timing::Took {
                // Past Duration's range it saturates and admission refuses
                // it as too long.
                took: amount.of(mapping.unit),
                at: None,
            };
            out.push(slot, timing, copies as usize);
        }
        Ok(())
    }

    /// The mapping of `line` and its series' place in `self.series`: two
    /// lookups for a name and tag values seen before.
    fn series_of<'m>(
        &mut self,
        mappings: &'m [Mapping],
        line: &Line<'_>,
    ) -> Result<(&'m Mapping, usize), Reason> {
        if let Some(named) = self.names.get(line.name) {
            let mapping = &mappings[named.mapping.ok_or(Reason::Unmapped)?];
            encode_values(&mut self.scratch, tag_values(mapping, &line.tags));
            if let Some(index) = named.by_tags.get(self.scratch.as_slice()) {
                return Ok((mapping, *index));
            }
        }
        self.learn(mappings, line)
    }

    /// [`Mapper::series_of`] for a name or tag values not seen before.
    fn learn<'m>(
        &mut self,
        mappings: &'m [Mapping],
        line: &Line<'_>,
    ) -> Result<(&'m Mapping, usize), Reason> {
        if self.names.len() >= REMEMBERED || self.series.len() >= REMEMBERED {
            self.names.clear();
            self.by_labels.clear();
            self.series.clear();
        }
        let named = self.names.entry(line.name.into()).or_insert_with(|| Named {
            mapping: mappings.iter().position(|m| m.matches(line.name).is_some()),
            by_tags: Default::default(),
        });
        let mapping_index = named.mapping.ok_or(Reason::Unmapped)?;
        let mapping = &mappings[mapping_index];
        encode_values(&mut self.scratch, tag_values(mapping, &line.tags));
        let by_tags: Box<[u8]> = self.scratch.as_slice().into();
        let captures = mapping.matches(line.name).unwrap_or_default();
        let value = |v| label_value(v, &captures, &line.tags);
        encode_values(
            &mut self.scratch,
            mapping.labels.iter().map(|(_, v)| value(v)),
        );
        let key = (mapping_index, self.scratch.as_slice().into());
        let index = match self.by_labels.get(&key) {
            Some(index) => *index,
            None => {
                let labels = mapping
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), value(v).to_owned()))
                    .collect();
                let mut carry_key = Vec::with_capacity(mapping.sla.len() + 1 + self.scratch.len());
                carry_key.extend_from_slice(mapping.sla.as_bytes());
                carry_key.push(0xff);
                carry_key.extend_from_slice(&self.scratch);
                self.series.push(Series {
                    labels,
                    key: carry_key.into(),
                    slot: None,
                });
                self.by_labels.insert(key, self.series.len() - 1);
                self.series.len() - 1
            }
        };
        named.by_tags.insert(by_tags, index);
        Ok((mapping, index))
    }
}

/// The values of the tags `mapping` reads, in its label order.
fn tag_values<'a>(mapping: &'a Mapping, tags: &'a [Tag<'a>]) -> impl Iterator<Item = &'a str> {
    mapping.labels.iter().filter_map(|(_, v)| match v {
        LabelValue::Tag(t) => Some(parser::tag(tags, t).unwrap_or("")),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::Reading;
    use crate::source::Source;

    fn mapping() -> Mapping {
        Mapping {
            pattern: Mapping::pattern("api.*.latency").unwrap(),
            sla: "api".into(),
            labels: vec![
                ("route".into(), LabelValue::Capture(1)),
                ("method".into(), LabelValue::Tag("method".into())),
                ("env".into(), LabelValue::Literal("prod".into())),
            ],
            unit: Duration::from_millis(1),
        }
    }

    fn readings(mappings: &[Mapping], line: &Line<'_>) -> Result<Vec<Reading>, Reason> {
        let mut out = Readings::default();
        Mapper::default().readings(mappings, line, &mut out)?;
        Ok(out.readings().collect())
    }

    #[test]
    fn timers_map_to_readings_with_captured_and_tagged_labels() {
        let line = parser::line("api.checkout.latency:250|ms|@0.5|#method:POST").unwrap();
        let r = readings(&[mapping()], &line).unwrap();
        assert_eq!(r.len(), 2, "a 50% sample stands for two deliveries");
        assert_eq!(
            *r[0].labels,
            [
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

    /// Issue 14, input 6: ten lines at `@0.4` stand for 25 deliveries, ten
    /// at `@0.3` for 33 and a third carried, exactly.
    #[test]
    fn sample_rates_are_weighted_exactly() {
        let mut mapper = Mapper::default();
        let count = |mapper: &mut Mapper, text: &str, n: usize| -> usize {
            let line = parser::line(text).unwrap();
            let mut out = Readings::default();
            for _ in 0..n {
                mapper.readings(&[mapping()], &line, &mut out).unwrap();
            }
            out.len()
        };
        assert_eq!(count(&mut mapper, "api.a.latency:100|ms|@0.4", 10), 25);
        assert_eq!(count(&mut mapper, "api.b.latency:100|ms|@0.3", 10), 33);
        // The third carried makes the next three lines ten, not nine.
        assert_eq!(count(&mut mapper, "api.b.latency:100|ms|@0.3", 2), 7);
        assert_eq!(count(&mut mapper, "api.b.latency:100|ms|@0.3", 1), 3);
        // Series carry apart: /a's remainder is its own.
        assert_eq!(count(&mut mapper, "api.c.latency:100|ms|@0.3", 3), 10);
    }

    /// Issue 14, input 7: the `datadog` client's `timed` sends seconds.
    #[test]
    fn each_mapping_reads_values_in_its_unit() {
        let seconds = Mapping {
            unit: Duration::from_secs(1),
            ..mapping()
        };
        let line = parser::line("api.x.latency:0.05|ms").unwrap();
        let r = readings(&[seconds], &line).unwrap();
        assert_eq!(
            r[0].timing,
            Timing::Took {
                took: Duration::from_millis(50),
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
