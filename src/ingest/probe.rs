//! Active HTTP probes: a request on an interval; its response time is the
//! delivery time, and a failed check (error, timeout, unexpected status or
//! body) is a failed delivery.

use std::time::{Duration, Instant};

use super::{Reading, Readings, Source, SourceContext};
use crate::delivery::Timing;

/// Most of a response body read to look for `expect_body`.
const BODY_LIMIT: u64 = 1 << 20;

/// The HTTP method a probe sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `HEAD`.
    Head,
    /// `POST` with an empty body.
    Post,
}

/// One `sources.probes` entry: what to check, how often, and which SLA it feeds.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeConfig {
    /// Its name in logs (the URL when not given).
    pub name: String,
    /// What to request.
    pub url: String,
    /// How.
    pub method: Method,
    /// The SLA each check is a delivery of.
    pub sla: std::sync::Arc<str>,
    /// Labels of every delivery.
    pub labels: Vec<(String, String)>,
    /// Time between checks.
    pub interval: Duration,
    /// A check slower than this fails.
    pub timeout: Duration,
    /// Accepted statuses; any 2xx when empty.
    pub expect_status: Vec<u16>,
    /// A substring the body must hold.
    pub expect_body: Option<String>,
}

/// How one check went.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Answered as expected, after this long.
    Ok(Duration),
    /// Failed, and why.
    Failed(String),
}

/// Runs one check, blocking for at most about `timeout`.
pub fn check(agent: &ureq::Agent, config: &ProbeConfig) -> Outcome {
    let started = Instant::now();
    let response = match config.method {
        Method::Get => agent.get(&config.url).call(),
        Method::Head => agent.head(&config.url).call(),
        Method::Post => agent.post(&config.url).send_empty(),
    };
    let mut response = match response {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(format!("request failed: {e}")),
    };
    let status = response.status().as_u16();
    let status_ok = if config.expect_status.is_empty() {
        (200..300).contains(&status)
    } else {
        config.expect_status.contains(&status)
    };
    if !status_ok {
        return Outcome::Failed(format!("unexpected status {status}"));
    }
    if let Some(expected) = &config.expect_body {
        let body = response
            .body_mut()
            .with_config()
            .limit(BODY_LIMIT)
            .read_to_string();
        match body {
            Ok(b) if b.contains(expected.as_str()) => {}
            Ok(_) => return Outcome::Failed(format!("body does not contain `{expected}`")),
            Err(e) => return Outcome::Failed(format!("cannot read body: {e}")),
        }
    }
    Outcome::Ok(started.elapsed())
}

/// Probes until shutdown; the first check runs at once.
pub async fn run(config: ProbeConfig, ctx: SourceContext) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(config.timeout))
        .build()
        .into();
    tracing::info!(name = %config.name, url = %config.url, "probe running");
    let mut shutdown = ctx.shutdown.clone();
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            () = shutdown.wait() => break,
            _ = ticker.tick() => {}
        }
        let (a, c) = (agent.clone(), config.clone());
        let Ok(outcome) = tokio::task::spawn_blocking(move || check(&a, &c)).await else {
            continue;
        };
        let timing = match &outcome {
            Outcome::Ok(took) => {
                if std::mem::replace(&mut failing, false) {
                    tracing::info!(name = %config.name, "probe recovered");
                }
                Timing::Took {
                    took: *took,
                    at: None,
                }
            }
            Outcome::Failed(why) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(name = %config.name, url = %config.url, why, "probe failing");
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
