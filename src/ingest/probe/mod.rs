//! Active HTTP probes: a request on an interval, measured as
//! blackbox_exporter measures it ([`check`]); the whole response's time is
//! the delivery time, and a failed check (no answer, an unexpected status
//! or body, a timeout) is a failed delivery, counted by reason.

pub mod check;
mod config;
pub mod tls;

use std::collections::HashSet;
use std::time::Duration;

use url::Url;

use super::{Named, Reading, Readings, Source, SourceContext, Task};
use crate::delivery::Timing;
use crate::exposition::ProbeMetrics;
use crate::fields::Problems;
use crate::ingest::pattern::Pattern;
use crate::sla::Sla;
pub use check::{Checked, Phases, Reason as FailureReason};
pub use config::{RawProbe, RawProbeTls};
pub use tls::ProbeTls;

impl Named for ProbeConfig {
    type Raw = RawProbe;
    const LABEL: &'static str = "probe";
    const KEYS: &'static [&'static str] = config::KEYS;
    const SOURCE: Source = Source::Probe;

    fn read(
        p: &mut Problems,
        at: &str,
        index: usize,
        raw: &RawProbe,
        slas: &[Sla],
        names: &mut HashSet<String>,
    ) -> Option<Self> {
        config::probe(p, at, index, raw, slas, names)
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn start(self, ctx: &SourceContext) -> Task<Self> {
        register(&ctx.metrics().probe, &self);
        let config = self.clone();
        Task::spawn(Self::SOURCE, self, ctx, |ctx| run(config, ctx))
    }

    fn forget(&self, ctx: &SourceContext) {
        unregister(&ctx.metrics().probe, self);
    }
}

/// Body bytes a check reads at most unless the probe sets `body_limit`.
pub const DEFAULT_BODY_LIMIT: u64 = 10 << 20;

/// The HTTP method a probe sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `HEAD`: no body comes back.
    Head,
    /// `POST`, with the probe's `body`.
    Post,
    /// `PUT`, with the probe's `body`.
    Put,
    /// `PATCH`, with the probe's `body`.
    Patch,
    /// `DELETE`.
    Delete,
    /// `OPTIONS`.
    Options,
}

impl Method {
    /// Every method, by its name.
    pub const ALL: [(&'static str, Method); 7] = [
        ("GET", Method::Get),
        ("HEAD", Method::Head),
        ("POST", Method::Post),
        ("PUT", Method::Put),
        ("PATCH", Method::Patch),
        ("DELETE", Method::Delete),
        ("OPTIONS", Method::Options),
    ];

    /// Its name on the wire.
    pub fn as_str(self) -> &'static str {
        Method::ALL
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("GET", |(name, _)| name)
    }
}

/// One `sources.probes` entry: what to check, how often, and which SLA it feeds.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeConfig {
    /// Its name in logs and metrics (`probe0`, `probe1`, ... when not given).
    pub name: String,
    /// What to request: an http or https URL.
    pub url: Url,
    /// How.
    pub method: Method,
    /// Request headers, in order (`Host` and `User-Agent` replace ours).
    pub headers: Vec<(String, String)>,
    /// The request body, if any.
    pub body: Option<String>,
    /// The SLA each check is a delivery of.
    pub sla: std::sync::Arc<str>,
    /// Labels of every delivery.
    pub labels: Vec<(String, String)>,
    /// Time between checks.
    pub interval: Duration,
    /// A check with no complete answer by then fails.
    pub timeout: Duration,
    /// Whether 3xx answers are followed (at most [`check::MAX_REDIRECTS`]).
    pub follow_redirects: bool,
    /// Body bytes read at most; a longer body fails the check.
    pub body_limit: u64,
    /// Accepted statuses of the final response; any 2xx when empty.
    pub expect_status: Vec<u16>,
    /// Bytes the body must hold (the text's UTF-8 bytes).
    pub expect_body: Option<String>,
    /// A regex the body must match, on bytes, whatever its encoding.
    pub expect_body_regex: Option<Pattern>,
    /// Whether each phase's time is exported.
    pub phases: bool,
    /// Trust and identity for https.
    pub tls: ProbeTls,
}

/// Shows `config`'s series from the start.
pub fn register(metrics: &ProbeMetrics, config: &ProbeConfig) {
    let reasons = FailureReason::ALL.map(FailureReason::as_str);
    metrics.register(&config.name, &reasons);
    if config.phases {
        for (phase, _) in Phases::default().labelled() {
            metrics
                .phase
                .with_label_values(&[config.name.as_str(), phase]);
        }
    }
}

/// Removes `config`'s series (a probe a reload took away).
pub fn unregister(metrics: &ProbeMetrics, config: &ProbeConfig) {
    let reasons = FailureReason::ALL.map(FailureReason::as_str);
    let phases = Phases::default().labelled().map(|(p, _)| p);
    metrics.unregister(&config.name, &reasons, &phases);
}

/// Probes until shutdown; the first check runs at once.
pub async fn run(config: ProbeConfig, ctx: SourceContext) {
    let connector = match check::connector(&config) {
        Ok(c) => c,
        Err(e) => {
            // The files were read when the config was; this is a bug or a
            // key rustls cannot use.
            tracing::error!(name = %config.name, error = %e, "probe not started: its TLS settings do not work");
            return;
        }
    };
    tracing::info!(name = %config.name, url = %config.url, "probe running");
    let mut shutdown = ctx.shutdown.clone();
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The reason of the failure last logged: a probe that goes on failing
    // logs again only when the reason changes (connect refused while the
    // target starts, then a certificate it does not trust).
    let mut failing = None;
    loop {
        tokio::select! {
            () = shutdown.wait() => break,
            _ = ticker.tick() => {}
        }
        let checked = tokio::select! {
            () = shutdown.wait() => break,
            c = check::check(&config, &connector) => c,
        };
        show(&ctx.metrics().probe, &config, &checked);
        let timing = match &checked.result {
            None => {
                if failing.take().is_some() {
                    tracing::info!(name = %config.name, "probe recovered");
                }
                Timing::Took {
                    took: checked.took,
                    at: None,
                }
            }
            Some(failure) => {
                if failing.replace(failure.reason) != Some(failure.reason) {
                    tracing::warn!(
                        name = %config.name,
                        url = %config.url,
                        reason = failure.reason.as_str(),
                        why = %failure.detail,
                        "probe failing"
                    );
                }
                Timing::Failed { at: None }
            }
        };
        let reading = Reading {
            sla: config.sla.clone(),
            labels: config.labels.clone().into(),
            timing,
        };
        let readings = Readings::from_iter([reading]);
        if let Err(e) = ctx.deliver(Source::Probe, &readings, None).await {
            tracing::warn!(name = %config.name, error = %e, "probe result not recorded");
        }
    }
    tracing::info!(name = %config.name, "probe stopped");
}

/// Puts what a check found on the probe's gauges and counters.
fn show(metrics: &ProbeMetrics, config: &ProbeConfig, checked: &Checked) {
    let name = config.name.as_str();
    metrics
        .success
        .with_label_values(&[name])
        .set(i64::from(checked.result.is_none()));
    metrics
        .duration
        .with_label_values(&[name])
        .set(checked.took.as_secs_f64());
    metrics
        .status
        .with_label_values(&[name])
        .set(checked.status.map_or(0, i64::from));
    if let Some(f) = &checked.result {
        metrics
            .failures
            .with_label_values(&[name, f.reason.as_str()])
            .inc();
    }
    if let Some(expiry) = checked.cert_expiry {
        metrics.cert_expiry.with_label_values(&[name]).set(expiry);
    }
    if config.phases {
        for (phase, took) in checked.phases.labelled() {
            metrics
                .phase
                .with_label_values(&[name, phase])
                .set(took.as_secs_f64());
        }
    }
}
