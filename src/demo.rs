//! `amaze-exporter demo`: realistic deliveries for every configured SLA, one
//! of them eroding, so a new user sees live dashboards and an alert go from
//! pending to firing before the promise breaks.
//!
//! Each second every SLA gets a batch: latency-like SLAs (promise under a
//! minute) 200 deliveries, the others 2. Durations are log-normal around a
//! share of each delivery's own promise (goals included). The eroding SLA
//! follows an [`Erosion`]: quickly to half its alert margin, so
//! `AmazeMarginLow` goes pending within minutes, then slowly to the promise,
//! so the alert fires (after its 10 minutes) before the SLA breaches.

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
    /// How long the demo runs; until interrupted when zero.
    pub duration: Duration,
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
    /// `--breach-after` leaves no time to erode.
    #[error("--breach-after must be at least 1m")]
    TooSoon,
    /// Nothing took a push since the start.
    #[error("nothing answers at {target} ({reason}); start the exporter, or name it with --target")]
    NoExporter {
        /// The exporter's URL.
        target: String,
        /// Why the last push failed.
        reason: String,
    },
    /// The exporter refused a push for good (a config that differs from
    /// the demo's, say); refusals that pass (429, 5xx, no answer) are
    /// retried.
    #[error("the exporter at {target} refused a push: {reason}")]
    Push {
        /// The exporter's URL.
        target: String,
        /// What went wrong.
        reason: String,
    },
}

/// The alert rules' `for:` durations and Prometheus's scrape and rule
/// intervals in the shipped config, which set when alerts change.
const MARGIN_LOW_FOR: Duration = Duration::from_secs(600);
const MARGIN_BREACHED_FOR: Duration = Duration::from_secs(300);
const SCRAPE_AND_EVALUATE: Duration = Duration::from_secs(30);
/// The log-normal spread of the eroding SLA's delivery times, and of the
/// others'.
const ERODING_SPREAD: f64 = 0.5;
const HEALTHY_SPREAD: f64 = 0.25;
/// How long the demo waits for a first push to go through before it says
/// nothing answers (later, a restart is waited out).
const NO_EXPORTER: Duration = Duration::from_secs(10);

/// Where the newest deliveries' quantile is at `breach_after`, as a share of
/// the promise. The hour's quantile lags the newest deliveries (it holds the
/// faster ones from before), so they must pass the promise for the hour's
/// margin to reach zero near `breach_after`; the end-to-end simulation in
/// the tests checks where it does.
const OVERSHOOT: f64 = 1.17;

/// How the eroding SLA slows down: the share of the promise at which the
/// newest deliveries' objective quantile sits, by time since the start.
/// From `healthy` it rises to `low` (a margin of half the alert margin) by
/// `knee`, a fifteenth of `breach_after`, then steadily on, past the promise,
/// so the hour's margin reaches zero about `breach_after` (at most 1.5).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Erosion {
    healthy: f64,
    low: f64,
    knee: Duration,
    breach_after: Duration,
}

impl Erosion {
    /// The erosion of an SLA whose alert margin is `alert_margin` (a share
    /// of the promise, 0 to 1).
    pub fn new(healthy: f64, alert_margin: f64, breach_after: Duration) -> Erosion {
        Erosion {
            healthy,
            low: (1.0 - alert_margin / 2.0).max(healthy),
            knee: breach_after / 15,
            breach_after,
        }
    }

    /// The share of the promise at `elapsed`.
    pub fn share(&self, elapsed: Duration) -> f64 {
        let t = elapsed.as_secs_f64();
        let knee = self.knee.as_secs_f64();
        if t <= knee {
            return self.healthy + (self.low - self.healthy) * t / knee;
        }
        let slope = (OVERSHOOT - self.low) / (self.breach_after.as_secs_f64() - knee);
        (self.low + slope * (t - knee)).min(1.5)
    }

    /// About when the SLA's hour margin falls below its alert margin, so
    /// `AmazeMarginLow` goes pending: the hour also holds the faster
    /// deliveries from before the knee, so its quantile lags the newest
    /// ones; by twice the knee enough slow ones are in.
    pub fn margin_low(&self) -> Duration {
        self.knee * 2
    }
}

/// What to look at, and when, for the SLA `sla` eroding as `erosion` says
/// with an alert margin of `alert_margin`, in a demo of `duration` (zero:
/// until interrupted).
pub fn milestones(
    sla: &str,
    erosion: &Erosion,
    alert_margin: f64,
    duration: Duration,
) -> Vec<(Duration, String)> {
    let mut out = Vec::new();
    if alert_margin > 0.0 {
        let pending = erosion.margin_low() + SCRAPE_AND_EVALUATE;
        let fires = pending + MARGIN_LOW_FOR;
        // The rule holds only while the margin is not negative: with an
        // early breach the alert never reaches its 10 minutes.
        let never = if fires < erosion.breach_after {
            ""
        } else {
            " (it breaks its promise before AmazeMarginLow's 10 minutes: a --breach-after of 13m or more shows the alert fire)"
        };
        out.push((
            pending,
            format!(
                "AmazeMarginLow is pending for {sla} (Prometheus, Alerts): its hour margin is below its {} alert margin; the status page says warning{never}",
                percent(alert_margin)
            ),
        ));
        if never.is_empty() {
            out.push((
                fires,
                format!(
                    "AmazeMarginLow fires for {sla}: the promise still holds, its room is going"
                ),
            ));
        }
    }
    out.push((
        erosion.breach_after,
        format!(
            "{sla} breaks its promise: its margin goes below zero and the status page says breaching"
        ),
    ));
    out.push((
        erosion.breach_after + MARGIN_BREACHED_FOR + SCRAPE_AND_EVALUATE,
        format!("AmazeMarginBreached fires for {sla}"),
    ));
    if !duration.is_zero() {
        out.retain(|(at, _)| *at < duration);
        out.push((duration, "the demo ends".to_owned()));
    }
    out.sort_by_key(|(at, _)| *at);
    out
}

fn percent(x: f64) -> String {
    format!("{}%", (x * 1000.0).round() / 10.0)
}

/// `2m30s`, `13m`, `1h 5m`: an offset as people read it.
fn offset(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs()))
        .to_string()
        .replace(' ', "")
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

/// Pushes traffic for every SLA, eroding one, for `duration` or until
/// interrupted. Says what to look at and when; rides out an exporter that
/// stops answering (a restart) by pushing again every second.
pub fn run(args: DemoArgs) -> Result<(), DemoError> {
    let catalog = Config::load(&args.config)?.catalog();
    if args.breach_after < Duration::from_secs(60) {
        return Err(DemoError::TooSoon);
    }
    let eroding = match &args.erode {
        Some(name) => catalog
            .index(name)
            .ok_or_else(|| DemoError::UnknownSla(name.clone()))?,
        None => catalog.slas.iter().position(latency_like).unwrap_or(0),
    };
    let sla = &catalog.slas[eroding];
    let alert_margin = sla.alert_margin.to_f64();
    let erosion = Erosion::new(healthy_share(eroding), alert_margin, args.breach_after);
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent();
    let base = args.target.trim_end_matches('/');
    let url = format!("{base}/api/v1/deliveries");
    let plan = milestones(&sla.name, &erosion, alert_margin, args.duration);
    let until = if args.duration.is_zero() {
        "until you press Ctrl-C".to_owned()
    } else {
        format!(
            "for {} (--duration), or until Ctrl-C",
            offset(args.duration)
        )
    };
    println!(
        "demo: pushing to {url} for {} SLAs {until}",
        catalog.slas.len()
    );
    println!(
        "demo: `{}` erodes: its newest deliveries' {} quantile goes from {} of the promise to {} by {}, then on past the promise, so its hour margin reaches zero about {} (--breach-after)",
        sla.name,
        sla.objective.percent(),
        percent(erosion.healthy),
        percent(erosion.low),
        offset(erosion.knee),
        offset(args.breach_after),
    );
    println!("demo: what to look at, and when:");
    println!("  now     {base}/ (the status page), and the Grafana dashboards if imported");
    for (at, what) in &plan {
        println!("  {:<7} {what}", offset(*at));
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let started = Instant::now();
    let mut next = plan.iter().peekable();
    let mut sent = 0u64;
    let mut reported = Duration::ZERO;
    let mut down: Option<Duration> = None;
    loop {
        let tick = Instant::now();
        let elapsed = started.elapsed();
        while let Some((at, what)) = next.next_if(|(at, _)| *at <= elapsed) {
            println!("demo: {}: {what}", offset(*at));
        }
        if !args.duration.is_zero() && elapsed >= args.duration {
            println!("demo: done: {sent} deliveries pushed; the exporter keeps them");
            return Ok(());
        }
        let first = sent == 0;
        for (i, s) in catalog.slas.iter().enumerate() {
            // The healthy SLAs spread less, so their few deliveries a second
            // never flash a warning; the eroding one as its schedule was
            // measured with.
            let (share, sigma) = if i == eroding {
                (erosion.share(elapsed), ERODING_SPREAD)
            } else {
                (healthy_share(i), HEALTHY_SPREAD)
            };
            // The first batch is a backlog of 200 for every SLA, so no
            // window is judged on its first handful of deliveries (the
            // slowest of a few would flash a warning).
            let n = if latency_like(s) || first { 200 } else { 2 };
            let body = batch(s, n, share, sigma, &mut rng);
            match push(&agent, &url, &body) {
                Ok(()) => {
                    sent += n as u64;
                    if let Some(since) = down.take() {
                        println!(
                            "demo: {}: {base} answers again ({} without traffic)",
                            offset(elapsed),
                            offset(elapsed.saturating_sub(since))
                        );
                    }
                }
                Err(Refusal::Passing(why)) => {
                    if sent == 0 && elapsed >= NO_EXPORTER {
                        return Err(DemoError::NoExporter {
                            target: args.target.clone(),
                            reason: why,
                        });
                    }
                    if down.is_none() {
                        println!(
                            "demo: {}: {base} does not answer ({why}); pushing again every second",
                            offset(elapsed)
                        );
                        down = Some(elapsed);
                    }
                    break;
                }
                Err(Refusal::Final(reason)) => {
                    return Err(DemoError::Push {
                        target: args.target.clone(),
                        reason,
                    });
                }
            }
        }
        if elapsed >= reported {
            reported += Duration::from_secs(60);
            println!("demo: {}: {sent} deliveries pushed", offset(elapsed));
        }
        std::thread::sleep(Duration::from_secs(1).saturating_sub(tick.elapsed()));
    }
}

/// Why a push did not go through.
enum Refusal {
    /// No answer, 429 or 5xx: it may pass, as while the exporter restarts.
    Passing(String),
    /// Anything else: this config and the exporter's disagree.
    Final(String),
}

fn push(agent: &ureq::Agent, url: &str, body: &str) -> Result<(), Refusal> {
    let mut reply = agent
        .post(url)
        .header("content-type", "application/x-ndjson")
        .send(body.as_bytes())
        .map_err(|e| Refusal::Passing(e.to_string()))?;
    let status = reply.status();
    if status.is_success() {
        return Ok(());
    }
    let text = reply.body_mut().read_to_string().unwrap_or_default();
    if status.as_u16() == 429 || status.is_server_error() {
        return Err(Refusal::Passing(format!("{status}: {}", text.trim())));
    }
    Err(Refusal::Final(refusal(status.as_u16(), &text)))
}

/// A refusal in a line: its status, what it says, and the first of its
/// errors, with a hint when the configs disagree.
fn refusal(status: u16, body: &str) -> String {
    let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let said = json["error"].as_str().unwrap_or(body.trim());
    let errors = json["errors"].as_array().map_or(0, Vec::len);
    let mut out = format!("{status}: {said}");
    if let Some(first) = json["errors"][0]["reason"].as_str() {
        out.push_str(&format!("; first: {first}"));
        if errors > 1 {
            out.push_str(&format!(" ({} more)", errors - 1));
        }
    }
    if out.contains("unknown SLA") {
        out.push_str("; give the demo the exporter's config with --config.file");
    }
    // An odd body must not flood the terminal.
    if out.len() > 400 {
        let cut = (0..=400)
            .rev()
            .find(|&i| out.is_char_boundary(i))
            .unwrap_or(0);
        out.truncate(cut);
        out.push_str("...");
    }
    out
}

/// `n` deliveries of `sla` whose objective quantile lands near `share` of
/// each delivery's promise, log-normal with spread `sigma`.
fn batch(sla: &Sla, n: usize, share: f64, sigma: f64, rng: &mut Rng) -> String {
    // For log-normal times, the objective's z-score sets the median.
    let z = z_score(sla.objective.to_f64());
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

/// The standard normal quantile of `o` (0.5 to 1), within 0.00045
/// (Abramowitz and Stegun, 26.2.23).
fn z_score(o: f64) -> f64 {
    let p = (1.0 - o).clamp(1e-12, 0.5);
    let t = (-2.0 * p.ln()).sqrt();
    t - (2.515_517 + 0.802_853 * t + 0.010_328 * t * t)
        / (1.0 + 1.432_788 * t + 0.189_269 * t * t + 0.001_308 * t * t * t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::{Input, Timing};
    use crate::recorder::Recorder;

    /// The shipped config's eroding SLA under the default schedule, fed the
    /// demo's own batches second by second into a recorder with an injected
    /// clock, its hour margin read every 15 s as Prometheus would: below the
    /// alert margin (and not below zero) within 5 minutes of the start,
    /// held there for AmazeMarginLow's 10 minutes, and below zero only after
    /// that, near `--breach-after`.
    #[test]
    fn the_margin_alert_goes_pending_within_five_minutes_and_fires_before_the_breach() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/amaze.yaml");
        let catalog =
            std::sync::Arc::new(Config::load(std::path::Path::new(path)).unwrap().catalog());
        let i = catalog.slas.iter().position(latency_like).unwrap();
        let sla = &catalog.slas[i];
        assert_eq!(sla.name, "api_latency");
        let alert = sla.alert_margin.to_f64();
        let breach_after = Duration::from_secs(15 * 60);
        let erosion = Erosion::new(healthy_share(i), alert, breach_after);
        let recorder = Recorder::new(catalog.clone());
        let hour = recorder.report(0)[i]
            .windows
            .iter()
            .position(|w| w.label == "1h")
            .unwrap();
        let start: i64 = 1_800_000_000_000;
        let mut rng = Rng(7);
        let (mut pending, mut breached) = (None, None);
        for second in 0..(20 * 60) {
            let now = start + second * 1000;
            let share = erosion.share(Duration::from_secs(second as u64));
            let body = batch(sla, 200, share, ERODING_SPREAD, &mut rng);
            let admitted: Vec<_> = body
                .lines()
                .map(|line| {
                    let v: serde_json::Value = serde_json::from_str(line).unwrap();
                    let labels: Vec<(&str, &str)> = v["labels"]
                        .as_object()
                        .unwrap()
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
                        .collect();
                    let took = Duration::from_secs_f64(v["duration_seconds"].as_f64().unwrap());
                    let input = Input {
                        sla: &sla.name,
                        labels: &labels,
                        timing: Timing::Took { took, at: None },
                        id: None,
                    };
                    catalog.admit(&input, now).unwrap()
                })
                .collect();
            recorder.record(&admitted, now, None);
            if second % 15 != 14 {
                continue;
            }
            let report = &recorder.report(now)[i];
            let Some(a) = &report.aggregate[hour].assessment else {
                continue;
            };
            let t = Duration::from_secs(second as u64 + 1);
            let low = a.margin >= 0.0 && a.margin < alert;
            match pending {
                None if low => pending = Some(t),
                Some(since) if breached.is_none() && a.margin < 0.0 => {
                    breached = Some(t);
                    assert!(
                        t > since + MARGIN_LOW_FOR + SCRAPE_AND_EVALUATE,
                        "breached at {t:?}, pending since {since:?}: AmazeMarginLow never fires"
                    );
                }
                Some(since) if breached.is_none() => assert!(
                    low,
                    "margin {} at {t:?} ends AmazeMarginLow's pending since {since:?}",
                    a.margin
                ),
                _ => {}
            }
        }
        let pending = pending.expect("the margin falls below the alert margin");
        assert!(
            pending + SCRAPE_AND_EVALUATE <= Duration::from_secs(5 * 60),
            "pending at {pending:?}"
        );
        let breached = breached.expect("the promise breaks");
        assert!(
            breached <= breach_after + Duration::from_secs(90),
            "breached at {breached:?}"
        );
        // What the demo says matches: pending, firing, breach, in order.
        let plan = milestones(&sla.name, &erosion, alert, Duration::from_secs(30 * 60));
        assert!(
            plan[0].0 >= pending && plan[0].0 <= pending + Duration::from_secs(60),
            "{plan:?}"
        );
        assert!(plan[1].1.contains("AmazeMarginLow fires"));
        assert!(plan[1].0 < breached);
        assert_eq!(plan.last().unwrap().1, "the demo ends");
    }

    /// An early breach leaves AmazeMarginLow no time to fire: the plan says
    /// so instead of promising it, and stays in time order.
    #[test]
    fn the_plan_is_in_order_and_promises_only_what_can_happen() {
        let short = Erosion::new(0.42, 0.2, Duration::from_secs(300));
        let plan = milestones("api", &short, 0.2, Duration::from_secs(1800));
        assert!(plan.windows(2).all(|w| w[0].0 <= w[1].0), "{plan:?}");
        assert!(
            !plan
                .iter()
                .any(|(_, what)| what.contains("AmazeMarginLow fires"))
        );
        assert!(
            plan[0].1.contains("a --breach-after of 13m or more"),
            "{plan:?}"
        );
        let default = Erosion::new(0.42, 0.2, Duration::from_secs(900));
        let plan = milestones("api", &default, 0.2, Duration::from_secs(1800));
        assert!(
            plan.iter()
                .any(|(_, what)| what.contains("AmazeMarginLow fires"))
        );
        assert!(!plan[0].1.contains("13m or more"));
    }

    /// A refusal of many lines reads as one, with the hint that matters.
    #[test]
    fn refusals_are_one_readable_line() {
        let body = serde_json::json!({
            "error": "100 delivery lines rejected; nothing was recorded",
            "errors": (0..100).map(|i| serde_json::json!({"line": i, "reason": "unknown SLA `api_latency`; configured: checkout"})).collect::<Vec<_>>(),
        })
        .to_string();
        let said = refusal(404, &body);
        assert_eq!(
            said,
            "404: 100 delivery lines rejected; nothing was recorded; first: unknown SLA `api_latency`; configured: checkout (99 more); give the demo the exporter's config with --config.file"
        );
        assert!(refusal(400, &"x".repeat(5000)).len() <= 403);
    }

    #[test]
    fn z_scores_of_common_objectives() {
        for (o, z) in [
            (0.9, 1.2816),
            (0.95, 1.6449),
            (0.98, 2.0537),
            (0.99, 2.3263),
            (0.999, 3.0902),
        ] {
            assert!((z_score(o) - z).abs() < 5e-4, "{o}: {}", z_score(o));
        }
    }

    #[test]
    fn erosion_rises_to_half_the_alert_margin_then_to_the_promise() {
        let e = Erosion::new(0.42, 0.2, Duration::from_secs(900));
        assert_eq!(e.share(Duration::ZERO), 0.42);
        assert!((e.share(Duration::from_secs(60)) - 0.9).abs() < 1e-12);
        assert!((e.share(Duration::from_secs(900)) - OVERSHOOT).abs() < 1e-12);
        assert_eq!(e.share(Duration::from_secs(10_000)), 1.5);
        assert_eq!(offset(Duration::from_secs(150)), "2m30s");
    }

    #[test]
    fn healthy_batches_put_the_objective_quantile_near_its_share() {
        let catalog =
            Config::parse("version: 1\nslas:\n  - name: a\n    promise: 1s\n    objective: 99%\n")
                .unwrap()
                .catalog();
        let mut rng = Rng(42);
        let body = batch(&catalog.slas[0], 20_000, 0.42, ERODING_SPREAD, &mut rng);
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
