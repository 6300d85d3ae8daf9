//! `amaze-exporter demo`: realistic deliveries for every configured SLA, one
//! of them eroding, so a new user sees live dashboards and a firing alert.
//!
//! Each second every SLA gets a batch: latency-like SLAs (promise under a
//! minute) 200 deliveries, the others 2. Durations are log-normal around a
//! share of each delivery's own promise (goals included); the eroding SLA's
//! durations grow steadily until they break the promise after `breach_after`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::config::{Config, ConfigError};
use crate::sla::Sla;

/// What `amaze-exporter demo` sends, and where.
pub struct DemoArgs {
    /// The config whose SLAs get traffic.
    pub config: PathBuf,
    /// Base URL of the exporter to push to.
    pub target: String,
    /// The SLA whose margin erodes; the first latency-like SLA when `None`.
    pub erode: Option<String>,
    /// When the eroding SLA breaches its promise, from the start.
    pub breach_after: Duration,
    /// Stop after this long; run until interrupted when `None`.
    pub duration: Option<Duration>,
}

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The config file is unreadable or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `--erode` names no configured SLA.
    #[error("SLA `{0}` is not in the config")]
    UnknownSla(String),
    /// The exporter did not take a push.
    #[error("cannot push to {target}: {reason}")]
    Push {
        /// The exporter's URL.
        target: String,
        /// What went wrong.
        reason: String,
    },
}

/// Plausible values for common label keys; others get `<key>-<n>`.
fn values(key: &str) -> Vec<String> {
    let known: &[&str] = match key {
        "route" => &["/checkout", "/search", "/cart", "/login"],
        "method" => &["GET", "POST"],
        "priority" => &["P1", "P2", "P3"],
        "channel" => &["email", "chat", "phone"],
        "warehouse" => &["ams", "fra", "lon"],
        _ => &[],
    };
    if known.is_empty() {
        (1..=3).map(|n| format!("{key}-{n}")).collect()
    } else {
        known.iter().map(|v| (*v).to_owned()).collect()
    }
}

/// xorshift64*: the demo needs variety, not cryptography.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Roughly standard normal (Irwin-Hall with 4 terms).
    fn normal(&mut self) -> f64 {
        ((0..4).map(|_| self.next()).sum::<f64>() - 2.0) * 3f64.sqrt()
    }
}

/// Where an SLA's objective quantile sits, as a share of the promise, before
/// any erosion: distinct per SLA so the dashboards show amazing and meeting.
fn healthy_share(index: usize) -> f64 {
    [0.42, 0.35, 0.7, 0.5][index % 4]
}

fn latency_like(sla: &Sla) -> bool {
    sla.promise < Duration::from_secs(60)
}

/// Pushes traffic for every SLA until interrupted, eroding one.
pub fn run(args: DemoArgs) -> Result<(), DemoError> {
    let catalog = Config::load(&args.config)?.catalog();
    let eroding = match &args.erode {
        Some(name) => catalog
            .index(name)
            .ok_or_else(|| DemoError::UnknownSla(name.clone()))?,
        None => catalog.slas.iter().position(latency_like).unwrap_or(0),
    };
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent();
    let url = format!("{}/api/v1/deliveries", args.target.trim_end_matches('/'));
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let started = Instant::now();
    println!(
        "demo: pushing to {url}; `{}` erodes and breaks its promise after {}",
        catalog.slas[eroding].name,
        humantime::format_duration(args.breach_after)
    );
    let mut sent = 0u64;
    let mut reported = 0;
    loop {
        let tick = Instant::now();
        let elapsed = started.elapsed();
        if args.duration.is_some_and(|d| elapsed >= d) {
            return Ok(());
        }
        for (i, sla) in catalog.slas.iter().enumerate() {
            let mut share = healthy_share(i);
            if i == eroding {
                // From the healthy share up to 1.2x the promise at `breach_after`.
                let progress = elapsed.as_secs_f64() / args.breach_after.as_secs_f64();
                share *= 1.0 + progress * (1.2 / share - 1.0);
            }
            let n = if latency_like(sla) { 200 } else { 2 };
            let body = batch(sla, n, share, &mut rng);
            let reply = agent
                .post(&url)
                .header("content-type", "application/x-ndjson")
                .send(body.as_bytes())
                .map_err(|e| DemoError::Push {
                    target: args.target.clone(),
                    reason: e.to_string(),
                })?;
            if !reply.status().is_success() {
                let mut reply = reply;
                let text = reply.body_mut().read_to_string().unwrap_or_default();
                return Err(DemoError::Push {
                    target: args.target.clone(),
                    reason: format!("{}: {text}", reply.status()),
                });
            }
            sent += n as u64;
        }
        if elapsed.as_secs() >= reported {
            reported += 30;
            println!("demo: {} s, {sent} deliveries pushed", elapsed.as_secs());
        }
        std::thread::sleep(Duration::from_secs(1).saturating_sub(tick.elapsed()));
    }
}

/// `n` deliveries of `sla` whose objective quantile lands near `share` of
/// each delivery's promise.
fn batch(sla: &Sla, n: usize, share: f64, rng: &mut Rng) -> String {
    // For log-normal times, the objective's z-score sets the median.
    let sigma: f64 = 0.5;
    let z = match sla.objective.to_f64() {
        o if o >= 0.99 => 2.33,
        o if o >= 0.95 => 1.64,
        _ => 1.28,
    };
    let median = share * (-z * sigma).exp();
    let keys: Vec<Vec<String>> = sla.labels.iter().map(|k| values(k)).collect();
    let mut out = String::with_capacity(n * 120);
    for _ in 0..n {
        let chosen: Vec<&str> = keys
            .iter()
            .map(|vals| vals[(rng.next() * vals.len() as f64) as usize % vals.len()].as_str())
            .collect();
        let promise = sla.promise_for(&chosen).as_secs_f64();
        let seconds = promise * median * (sigma * rng.normal()).exp();
        let labels: Vec<String> = sla
            .labels
            .iter()
            .zip(&chosen)
            .map(|(k, v)| format!("\"{k}\":\"{v}\""))
            .collect();
        out.push_str(&format!(
            "{{\"sla\":\"{}\",\"duration_seconds\":{seconds:.6},\"labels\":{{{}}}}}\n",
            sla.name,
            labels.join(",")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_batches_put_the_objective_quantile_near_its_share() {
        let catalog =
            Config::parse("version: 1\nslas:\n  - name: a\n    promise: 1s\n    objective: 99%\n")
                .unwrap()
                .catalog();
        let mut rng = Rng(42);
        let body = batch(&catalog.slas[0], 20_000, 0.42, &mut rng);
        let mut secs: Vec<f64> = body
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["duration_seconds"].as_f64().unwrap()
            })
            .collect();
        secs.sort_by(f64::total_cmp);
        let p99 = secs[(0.99 * (secs.len() - 1) as f64) as usize];
        assert!((0.36..0.50).contains(&p99), "{p99}");
    }
}
