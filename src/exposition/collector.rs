//! Turns recorder reports into Prometheus metric families, at scrape time.

use std::collections::HashMap;
use std::time::Duration;

use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};

use super::format::NativeSample;
use super::names::{self, Kind, Name};
use crate::delivery::key_values;
use crate::margin::{Figures, Status};
use crate::recorder::open::OpenState;
use crate::recorder::{BUCKET_FRACTIONS, Counters, NativeBuckets, SlaReport};
use crate::sla::{Catalog, Sla};
use crate::window::WindowSpec;

/// Families under construction, in first-use order.
#[derive(Default)]
pub struct Families {
    list: Vec<MetricFamily>,
    index: HashMap<&'static str, usize>,
    /// Samples of [`names::DURATION_RATIO`], which only protobuf carries;
    /// `None` when the scrape is in a text format, so none are copied.
    native: Option<Vec<NativeSample>>,
}

type Labels = Vec<LabelPair>;

fn pair(name: &str, value: &str) -> LabelPair {
    let mut p = LabelPair::new();
    p.set_name(name.to_owned());
    p.set_value(value.to_owned());
    p
}

fn with(base: &Labels, extra: &[(&str, &str)]) -> Labels {
    let mut labels = Vec::with_capacity(base.len() + extra.len());
    labels.extend(base.iter().cloned());
    labels.extend(extra.iter().map(|(k, v)| pair(k, v)));
    labels
}

impl Families {
    fn push(&mut self, name: Name, labels: Labels, fill: impl FnOnce(&mut Metric)) {
        let i = *self.index.entry(name.name).or_insert_with(|| {
            let mut f = MetricFamily::new();
            f.set_name(name.name.to_owned());
            f.set_help(name.help.to_owned());
            f.set_field_type(match name.kind {
                Kind::Gauge => MetricType::GAUGE,
                Kind::Counter => MetricType::COUNTER,
                Kind::Histogram => MetricType::HISTOGRAM,
            });
            self.list.push(f);
            self.list.len() - 1
        });
        let mut m = Metric::from_label(labels);
        fill(&mut m);
        self.list[i].mut_metric().push(m);
    }

    /// Adds a gauge sample of `name`.
    pub fn gauge(&mut self, name: Name, labels: Labels, value: f64) {
        self.push(name, labels, |m| {
            let mut g = Gauge::new();
            g.set_value(value);
            m.set_gauge(g);
        });
    }

    /// Adds a counter sample of `name`.
    pub fn counter(&mut self, name: Name, labels: Labels, value: f64) {
        self.push(name, labels, |m| {
            let mut c = Counter::new();
            c.set_value(value);
            m.set_counter(c);
        });
    }

    fn histogram(&mut self, name: Name, labels: Labels, promise: Duration, counters: &Counters) {
        self.push(name, labels, |m| {
            let mut h = Histogram::new();
            let mut cumulative = 0;
            for (fraction, count) in BUCKET_FRACTIONS.iter().zip(&counters.buckets) {
                cumulative += count;
                let mut b = Bucket::new();
                // The nearest float to the exact edge, so `le` reads `0.27`,
                // not `0.27000000000000002`, and parses back to the same value.
                let edge = fraction.of_seconds(promise);
                b.set_upper_bound(edge.parse().unwrap_or(f64::NAN));
                b.set_cumulative_count(cumulative);
                h.bucket.push(b);
            }
            h.set_sample_count(cumulative + counters.buckets[BUCKET_FRACTIONS.len()]);
            h.set_sample_sum(counters.sum_seconds);
            m.set_histogram(h);
        });
    }

    /// Families that also gather the native-histogram samples.
    pub fn with_native() -> Families {
        Families {
            native: Some(Vec::new()),
            ..Families::default()
        }
    }

    fn native(&mut self, labels: &Labels, buckets: &NativeBuckets) {
        let Some(native) = &mut self.native else {
            return;
        };
        let labels = labels
            .iter()
            .map(|l| (l.name().to_owned(), l.value().to_owned()))
            .collect();
        native.push((labels, buckets.clone()));
    }

    /// The families, in first-use order.
    pub fn into_vec(self) -> Vec<MetricFamily> {
        self.list
    }

    /// The classic families and the native-histogram samples, if gathered.
    pub fn into_parts(self) -> (Vec<MetricFamily>, Option<Vec<NativeSample>>) {
        (self.list, self.native)
    }
}

/// Every SLA family: settings, figures per series and window, counters.
pub fn collect(catalog: &Catalog, reports: &[SlaReport], out: &mut Families) {
    for (sla, report) in catalog.slas.iter().zip(reports) {
        let base = vec![pair("sla", &sla.name)];
        settings(sla, &base, out);
        let aggregate_promise = sla.single_promise().then_some(sla.promise);
        let scope = with(&base, &[("scope", "sla")]);
        figures(report, &scope, aggregate_promise, &report.aggregate, out);
        for s in &report.series {
            let labels = series_labels(sla, &base, &s.key);
            let scoped = with(&labels, &[("scope", "series")]);
            for (w, f) in &s.figures {
                let window = &report.windows[*w];
                window_figures(window, *w == report.compliance, &scoped, s.promise, f, out);
            }
            counters(&labels, s.promise, &s.counters, out);
        }
        if let Some((promise, c)) = &report.single_counters {
            counters(&base, Some(*promise), c, out);
        }
        out.gauge(
            names::SERIES,
            base.clone(),
            report
                .series
                .len()
                .max(usize::from(report.single_counters.is_some())) as f64,
        );
        out.counter(
            names::SERIES_OVERFLOW,
            base.clone(),
            report.overflowed as f64,
        );
        for (state, n) in OpenState::ALL.iter().zip(report.open.by_state) {
            let labels = with(&base, &[("state", state.as_str())]);
            out.gauge(names::OPEN, labels, n as f64);
        }
        out.gauge(names::OPEN_OLDEST, base.clone(), report.open.oldest_ratio);
        out.counter(
            names::OPEN_OVERDUE,
            base.clone(),
            report.open.became_overdue as f64,
        );
        out.counter(names::IDS_FORGOTTEN, base, report.forgotten_ids as f64);
    }
}

fn series_labels(sla: &Sla, base: &Labels, key: &str) -> Labels {
    let mut labels = base.clone();
    for (name, value) in sla.labels.iter().zip(key_values(key)) {
        if !value.is_empty() {
            labels.push(pair(name, value));
        }
    }
    labels
}

fn settings(sla: &Sla, base: &Labels, out: &mut Families) {
    out.gauge(
        names::SLA_INFO,
        with(
            base,
            &[
                ("description", &sla.description),
                ("durability", sla.durability.as_str()),
            ],
        ),
        1.0,
    );
    out.gauge(names::SLA_PROMISE, base.clone(), sla.promise.as_secs_f64());
    for goal in &sla.goals {
        let matched: Vec<(&str, &str)> = goal
            .matches
            .iter()
            .map(|(i, v)| (sla.labels[*i].as_str(), v.as_str()))
            .collect();
        out.gauge(
            names::GOAL_PROMISE,
            with(base, &matched),
            goal.promise.as_secs_f64(),
        );
    }
    out.gauge(names::SLA_OBJECTIVE, base.clone(), sla.objective.to_f64());
    if let Some(t) = sla.target_margin {
        out.gauge(names::SLA_TARGET_MARGIN, base.clone(), t.to_f64());
    }
    out.gauge(
        names::SLA_ALERT_MARGIN,
        base.clone(),
        sla.alert_margin.to_f64(),
    );
    out.gauge(names::SLA_WINDOW, base.clone(), sla.window.as_secs_f64());
    out.gauge(
        names::SLA_MIN_DELIVERIES,
        base.clone(),
        sla.min_deliveries as f64,
    );
    out.gauge(
        names::SLA_FORECAST_HORIZON,
        base.clone(),
        sla.forecast_horizon.as_secs_f64(),
    );
}

fn figures(
    report: &SlaReport,
    scope: &Labels,
    promise: Option<Duration>,
    figures: &[Figures],
    out: &mut Families,
) {
    for (i, (window, f)) in report.windows.iter().zip(figures).enumerate() {
        window_figures(window, i == report.compliance, scope, promise, f, out);
    }
}

fn window_figures(
    window: &WindowSpec,
    is_compliance: bool,
    scope: &Labels,
    promise: Option<Duration>,
    f: &Figures,
    out: &mut Families,
) {
    let labels = with(scope, &[("window", &window.label)]);
    out.gauge(
        names::WINDOW_DELIVERIES,
        labels.clone(),
        f.deliveries as f64,
    );
    out.gauge(names::WINDOW_BAD, labels.clone(), f.bad as f64);
    let Some(a) = &f.assessment else {
        return;
    };
    out.gauge(names::MARGIN, labels.clone(), a.margin);
    for status in Status::ALL {
        out.gauge(
            names::STATUS,
            with(&labels, &[("status", status.as_str())]),
            f64::from(u8::from(a.status == status)),
        );
    }
    out.gauge(names::COMPLIANCE, labels.clone(), a.compliance);
    out.gauge(names::BURN_RATE, labels.clone(), a.burn_rate);
    if is_compliance {
        out.gauge(
            names::BUDGET_REMAINING,
            labels.clone(),
            a.budget_remaining(),
        );
    }
    if let Some(r) = a.amazing_ratio {
        out.gauge(names::AMAZING, labels.clone(), r);
    }
    for (q, relative) in &a.quantiles {
        let labels = with(&labels, &[("q", &q.to_string())]);
        // Relative to each delivery's own promise: defined for every series,
        // mixed promises included.
        out.gauge(names::RELATIVE_QUANTILE, labels.clone(), *relative);
        if let Some(promise) = promise {
            out.gauge(names::QUANTILE, labels, relative * promise.as_secs_f64());
        }
    }
}

fn counters(labels: &Labels, promise: Option<Duration>, c: &Counters, out: &mut Families) {
    for (result, n) in [("within", c.within), ("late", c.late), ("failed", c.failed)] {
        out.counter(
            names::DELIVERIES,
            with(labels, &[("result", result)]),
            n as f64,
        );
    }
    if let Some(promise) = promise {
        out.histogram(names::DURATION, labels.clone(), promise, c);
    }
    out.native(labels, &c.native);
}
