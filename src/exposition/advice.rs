//! The promise advisor (`GET /api/v1/advice`): from each window's stored
//! deliveries, the promise a team could make and still meet its target
//! margin, and what-if figures for a promise and objective a manager types.
//!
//! The advised promise is T' = q / (1 - target margin), q the objective's
//! nearest-rank quantile in seconds: a team whose objective quantile is q
//! beats T' by exactly the target margin. q comes from the 1% sketch, so T'
//! is within 1% of the exact figure. What-if compliance counts deliveries at
//! or under the typed promise: exact at the SLA's own promise and amaze
//! limit, otherwise exact but for deliveries within 1% of it.
//!
//! Each delivery is judged by its own promise (a goal's, or the default),
//! so quantiles are of d / T. For an SLA with goals the advice is a factor
//! every promise could be multiplied by, and a typed promise scales every
//! goal's promise alike (T2 / default promise).

use std::time::Duration;

use serde::Serialize;

use crate::decimal::Decimal;
use crate::margin::{MARGIN_FLOOR, Status};
use crate::recorder::Recorder;
use crate::sla::Sla;
use crate::window::{Digest, Millis, RELATIVE_ACCURACY};

/// What a manager asks: which SLA, and optionally a promise and objective
/// to try, and a target margin other than the SLA's.
#[derive(Debug, Clone, Default)]
pub struct Question {
    /// The SLA's name.
    pub sla: String,
    /// A promise to try.
    pub promise: Option<Duration>,
    /// An objective to try, in (0, 1).
    pub objective: Option<Decimal>,
    /// The target margin to advise for; the SLA's (or none) otherwise.
    pub target_margin: Option<Decimal>,
}

/// Why there is no advice.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AdviceError {
    /// No SLA of that name.
    #[error("unknown SLA `{0}`")]
    UnknownSla(String),
}

/// The advisor's answer.
#[derive(Debug, Serialize)]
pub struct Advice {
    /// The SLA's name.
    pub sla: String,
    /// Its default promise in seconds.
    pub promise_seconds: f64,
    /// Its goals' promises; each advised promise is the goal's times
    /// `advised_scale`, and a typed promise scales them all alike.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub goals: Vec<GoalPromise>,
    /// Its objective.
    pub objective: f64,
    /// The target margin the advice is for (the SLA's unless asked for
    /// another; 0 when neither: the tightest promise still kept).
    pub target_margin: f64,
    /// Relative accuracy of every quantile below (0.01).
    pub relative_accuracy: f64,
    /// Per window, finest first.
    pub windows: Vec<WindowAdvice>,
    /// Figures had the typed promise and objective been in force.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub what_if: Option<WhatIf>,
}

/// Advice from one window's deliveries.
#[derive(Debug, Serialize)]
pub struct WindowAdvice {
    /// The window's label.
    pub window: String,
    /// Deliveries in it.
    pub deliveries: u64,
    /// The objective's nearest-rank quantile of duration over each
    /// delivery's own promise; absent with too few deliveries or when
    /// failures reach it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objective_quantile_ratio: Option<f64>,
    /// The same in seconds: for an SLA without goals whose window was
    /// judged by one promise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objective_quantile_seconds: Option<f64>,
    /// T' = q / (1 - target margin), for the default promise; absent when
    /// the window's deliveries were judged by more than one promise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advised_promise_seconds: Option<f64>,
    /// T' / T: the factor every promise (each goal's too) could be
    /// multiplied by, since each delivery is judged by its own promise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advised_scale: Option<f64>,
    /// When a reload changed the promise within the window: the default
    /// promises its deliveries were judged by, in seconds. Seconds above
    /// are of the one that judged them, and absent when several did.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub judged_by_seconds: Vec<f64>,
    /// Why there is no quantile: too few deliveries, or failures reach
    /// the objective's rank (no promise would be kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<&'static str>,
}

/// A goal's promise, for an SLA with goals.
#[derive(Debug, Serialize)]
pub struct GoalPromise {
    /// The labels it matches, `priority=P1`.
    pub labels: String,
    /// Its promise in seconds.
    pub promise_seconds: f64,
}

/// The typed promise and objective, and how each window would have fared.
#[derive(Debug, Serialize)]
pub struct WhatIf {
    /// The promise tried, in seconds.
    pub promise_seconds: f64,
    /// The objective tried.
    pub objective: f64,
    /// Per window, finest first.
    pub windows: Vec<WhatIfWindow>,
}

/// One window under the typed promise and objective.
#[derive(Debug, Serialize)]
pub struct WhatIfWindow {
    /// The window's label.
    pub window: String,
    /// Deliveries in it.
    pub deliveries: u64,
    /// Share within the typed promise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compliance: Option<f64>,
    /// 1 - q / typed promise, q the typed objective's quantile; floored at -1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub margin: Option<f64>,
    /// `meeting` or `breaching` against the typed objective (`amazing`
    /// when the margin reaches the target margin).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
    /// Whether the compliance is exact (the typed promise is the one the
    /// deliveries were judged by, or its amaze limit), rather than exact but
    /// for deliveries within 1%.
    pub exact: bool,
    /// Why there are no figures: too few deliveries, or several promises
    /// judged them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<&'static str>,
}

/// The promise a window's relative times are of: the SLA's, unless a
/// reload changed it within the window.
#[derive(Debug, Clone, PartialEq)]
enum Base {
    /// Every delivery was judged by this default promise.
    One(Duration),
    /// By several: figures in seconds cannot be given.
    Mixed(Vec<Duration>),
}

impl Base {
    fn of(judged_by: Vec<Duration>, current: Duration) -> Base {
        match judged_by.as_slice() {
            [] => Base::One(current),
            [one] => Base::One(*one),
            _ => Base::Mixed(judged_by),
        }
    }

    fn promise(&self) -> Option<Duration> {
        match self {
            Base::One(p) => Some(*p),
            Base::Mixed(_) => None,
        }
    }

    /// The promises, in seconds, when not just `current`.
    fn shown(&self, current: Duration) -> Vec<f64> {
        match self {
            Base::One(p) if *p == current => Vec::new(),
            Base::One(p) => vec![p.as_secs_f64()],
            Base::Mixed(all) => all.iter().map(Duration::as_secs_f64).collect(),
        }
    }
}

/// Answers `question` from `recorder`'s windows at `now`.
pub fn advise(
    recorder: &Recorder,
    question: &Question,
    now: Millis,
) -> Result<Advice, AdviceError> {
    let i = recorder
        .catalog()
        .index(&question.sla)
        .ok_or_else(|| AdviceError::UnknownSla(question.sla.clone()))?;
    let (sla, windows) = recorder
        .windows(i, now)
        .ok_or_else(|| AdviceError::UnknownSla(question.sla.clone()))?;
    let target = question.target_margin.or(sla.target_margin);
    let objective = question.objective.unwrap_or(sla.objective);
    let assessed = |d: &Digest| d.count() >= sla.min_deliveries.max(1);
    // What judged each window's deliveries, from the history's hours.
    let bases: Vec<Base> = recorder
        .with_history(i, |_, h| {
            windows
                .specs
                .iter()
                .map(|spec| Base::of(h.judged_by_since(now - spec.span), sla.promise))
                .collect()
        })
        .unwrap_or_default();
    let base_of = |w: usize| bases.get(w).cloned().unwrap_or(Base::One(sla.promise));
    let keep = target.map_or(1.0, |t| 1.0 - t.to_f64());
    let advice = windows
        .specs
        .iter()
        .zip(&windows.digests)
        .enumerate()
        .map(|(w, (spec, d))| {
            let base = base_of(w);
            let q = assessed(d).then(|| d.quantile(objective, None)).flatten();
            let why = match q {
                None => Some(TOO_FEW),
                Some(r) if !r.is_finite() => Some(FAILURES),
                Some(_) => None,
            };
            let r = q.filter(|r| r.is_finite());
            let seconds = |r: f64| base.promise().map(|p| r * p.as_secs_f64());
            WindowAdvice {
                window: spec.label.clone(),
                deliveries: d.count(),
                objective_quantile_ratio: r,
                objective_quantile_seconds: r.filter(|_| sla.goals.is_empty()).and_then(seconds),
                advised_promise_seconds: r.and_then(seconds).map(|q| q / keep),
                advised_scale: r.map(|r| r / keep),
                judged_by_seconds: base.shown(sla.promise),
                why,
            }
        })
        .collect();
    let what_if = (question.promise.is_some() || question.objective.is_some()).then(|| {
        let promise = question.promise.unwrap_or(sla.promise);
        WhatIf {
            promise_seconds: promise.as_secs_f64(),
            objective: objective.to_f64(),
            windows: windows
                .specs
                .iter()
                .zip(&windows.digests)
                .enumerate()
                .map(|(w, (spec, d))| {
                    let mut x = what_if(d, sla, &base_of(w), promise, objective, target);
                    if !assessed(d) {
                        (x.compliance, x.margin, x.status) = (None, None, None);
                        x.why = Some(TOO_FEW);
                    }
                    WhatIfWindow {
                        window: spec.label.clone(),
                        ..x
                    }
                })
                .collect(),
        }
    });
    Ok(Advice {
        sla: sla.name.clone(),
        promise_seconds: sla.promise.as_secs_f64(),
        goals: sla
            .goals
            .iter()
            .map(|g| GoalPromise {
                labels: sla.goal_labels(g),
                promise_seconds: g.promise.as_secs_f64(),
            })
            .collect(),
        objective: objective.to_f64(),
        target_margin: target.map_or(0.0, Decimal::to_f64),
        relative_accuracy: RELATIVE_ACCURACY,
        windows: advice,
        what_if,
    })
}

/// One window's figures had `promise` and `objective` been in force; none
/// when several promises judged its deliveries.
fn what_if(
    d: &Digest,
    sla: &Sla,
    base: &Base,
    promise: Duration,
    objective: Decimal,
    target: Option<Decimal>,
) -> WhatIfWindow {
    let n = d.count();
    let none = WhatIfWindow {
        window: String::new(),
        deliveries: n,
        compliance: None,
        margin: None,
        status: None,
        exact: false,
        why: Some(MIXED),
    };
    let Some(judged) = base.promise() else {
        return none;
    };
    // The amaze limit deliveries were judged by, if it is the SLA's still.
    let limit = sla
        .policy()
        .amazing_limit()
        .filter(|_| judged == sla.promise);
    let limit_f64 = limit.map(Decimal::to_f64);
    // The typed promise as a share of the one deliveries were judged by:
    // exact counts sit at 1 and at the amaze limit.
    let x = if promise == judged {
        1.0
    } else if let Some(l) = limit.filter(|l| l.of(judged) == promise) {
        l.to_f64()
    } else {
        promise.as_secs_f64() / judged.as_secs_f64()
    };
    let exact = promise == judged || limit.is_some_and(|l| l.of(judged) == promise);
    let within = d.count_at_most(x, limit_f64.map(|l| d.amazing_at(l)));
    let (compliance, margin, status) = if n == 0 {
        (None, None, None)
    } else {
        let kept = within >= objective.rank(n);
        let q = d
            .quantile(objective, None)
            .map_or(f64::INFINITY, |r| r * judged.as_secs_f64());
        let raw = (1.0 - q / promise.as_secs_f64()).max(MARGIN_FLOOR);
        // The sign follows the counts, as for the SLA's own margin.
        let margin = if kept {
            raw.max(0.0)
        } else {
            raw.min(-f64::EPSILON)
        };
        let status = match target {
            _ if !kept => Status::Breaching,
            Some(t) if margin >= t.to_f64() => Status::Amazing,
            _ => Status::Meeting,
        };
        (
            Some(within as f64 / n as f64),
            Some(margin),
            Some(status.as_str()),
        )
    };
    WhatIfWindow {
        window: String::new(),
        deliveries: n,
        compliance,
        margin,
        status,
        exact,
        why: None,
    }
}

/// Fewer deliveries than `min_deliveries`.
const TOO_FEW: &str = "too few deliveries";
/// The objective's rank falls among failed deliveries.
const FAILURES: &str = "failures reach the objective's rank: no promise would be kept";
/// A reload changed the promise within the window.
const MIXED: &str = "several promises judged these deliveries";

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::Config;
    use crate::delivery::{Input, Timing};

    const NOW: Millis = 1_795_600_000_000;

    /// 1,000 deliveries of 1..=1000 ms over the last 50 minutes against a
    /// 1s promise, 99% objective, 20% target margin, and 5 failures.
    fn recorder() -> (Recorder, Vec<Option<u64>>) {
        let yaml = "version: 1\nslas:\n  - name: api\n    promise: 1s\n    objective: 99%\n    target_margin: 20%\n";
        let catalog = Arc::new(Config::parse(yaml).unwrap().catalog());
        let r = Recorder::new(catalog.clone());
        let mut batch = Vec::new();
        let mut exact = Vec::new();
        for i in 0..1005u64 {
            let timing = if i < 1000 {
                exact.push(Some(i + 1));
                Timing::Took {
                    took: Duration::from_millis(i + 1),
                    at: Some(NOW - (i as i64 % 50) * 60_000),
                }
            } else {
                exact.push(None);
                Timing::Failed {
                    at: Some(NOW - 60_000),
                }
            };
            let input = Input {
                sla: "api",
                labels: &[],
                timing,
                id: None,
            };
            batch.push(catalog.admit(&input, NOW).unwrap());
        }
        r.record(&batch, NOW, None);
        (r, exact)
    }

    /// Nearest rank of `o` over `values` (ms; failures last), in seconds.
    fn exact_quantile(values: &[Option<u64>], o: f64) -> Option<f64> {
        let mut v: Vec<u64> = values.iter().map(|x| x.unwrap_or(u64::MAX)).collect();
        v.sort_unstable();
        let rank = (o * v.len() as f64).ceil() as usize;
        let x = v[rank - 1];
        (x != u64::MAX).then(|| x as f64 / 1000.0)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= b.abs() * RELATIVE_ACCURACY
    }

    #[test]
    fn advised_promise_is_the_quantile_over_one_minus_the_target() {
        let (r, exact) = recorder();
        let q = Question {
            sla: "api".into(),
            ..Question::default()
        };
        let advice = advise(&r, &q, NOW).unwrap();
        assert_eq!(advice.target_margin, 0.2);
        let hour = advice.windows.iter().find(|w| w.window == "1h").unwrap();
        assert_eq!(hour.deliveries, 1005);
        // rank ceil(0.99 x 1005) = 995 -> 995 ms; T' = 0.995 / 0.8.
        let q_exact = exact_quantile(&exact, 0.99).unwrap();
        assert_eq!(q_exact, 0.995);
        let got = hour.objective_quantile_seconds.unwrap();
        assert!(close(got, q_exact), "{got} vs {q_exact}");
        let advised = hour.advised_promise_seconds.unwrap();
        assert!(close(advised, q_exact / 0.8), "{advised}");
        let five = advice.windows.iter().find(|w| w.window == "5m").unwrap();
        assert_eq!(five.deliveries, 5 * 20 + 5, "minutes 0-4 and the failures");
    }

    #[test]
    fn what_if_matches_an_exact_recount_within_the_bound() {
        let (r, exact) = recorder();
        for (promise_ms, objective) in
            [(500u64, "90%"), (1000, "99.9%"), (800, "99%"), (950, "95%")]
        {
            let q = Question {
                sla: "api".into(),
                promise: Some(Duration::from_millis(promise_ms)),
                objective: Some(Decimal::parse(objective).unwrap()),
                target_margin: None,
            };
            let advice = advise(&r, &q, NOW).unwrap();
            let w = advice.what_if.unwrap();
            let hour = w.windows.iter().find(|w| w.window == "1h").unwrap();
            let n = exact.len() as f64;
            let within = exact
                .iter()
                .filter(|x| x.is_some_and(|ms| ms <= promise_ms))
                .count();
            let compliance = hour.compliance.unwrap();
            // Exact but for deliveries within 1% of the typed promise.
            let slack = (promise_ms as f64 * RELATIVE_ACCURACY).ceil() + 1.0;
            assert!(
                (compliance * n - within as f64).abs() <= slack,
                "{promise_ms}ms: {compliance} vs {within}/{n}"
            );
            assert_eq!(hour.exact, promise_ms == 1000 || promise_ms == 800);
            if hour.exact {
                assert_eq!(compliance, within as f64 / n);
            }
            let o = Decimal::parse(objective).unwrap().to_f64();
            let expected = match exact_quantile(&exact, o) {
                Some(q) => (1.0 - q / (promise_ms as f64 / 1000.0)).max(-1.0),
                None => -1.0,
            };
            let margin = hour.margin.unwrap();
            assert!(
                (margin - expected).abs() <= 0.0101 * (1.0 - expected).abs().max(1.0),
                "{promise_ms}ms {objective}: {margin} vs {expected}"
            );
            let kept = within as f64 >= (o * n).ceil();
            assert_eq!(
                hour.status != Some("breaching"),
                kept,
                "{promise_ms}ms {objective}"
            );
        }
    }

    #[test]
    fn an_unknown_sla_is_an_error() {
        let (r, _) = recorder();
        let q = Question {
            sla: "nope".into(),
            ..Question::default()
        };
        assert_eq!(
            advise(&r, &q, NOW).unwrap_err(),
            AdviceError::UnknownSla("nope".into())
        );
    }
}
