//! `GET /api/v1/slas`: every SLA's promise, figures per window and open
//! deliveries as JSON, computed like a scrape, for tools and scripts.

use serde::Serialize;

use crate::recorder::open::OpenState;
use crate::recorder::{Recorder, SlaReport};
use crate::sla::Sla;
use crate::window::Millis;

/// One SLA as `GET /api/v1/slas` shows it.
#[derive(Debug, Serialize)]
pub struct SlaSummary {
    /// Its name.
    pub name: String,
    /// What it promises, in words.
    pub description: String,
    /// Its default promise.
    pub promise_seconds: f64,
    /// Share that must be within the promise.
    pub objective: f64,
    /// The amaze goal, if set.
    pub target_margin: Option<f64>,
    /// Warn below this margin.
    pub alert_margin: f64,
    /// The compliance window's label (`30d`, `calendar_month`).
    pub compliance_window: String,
    /// Its business calendar, if any.
    pub calendar: Option<String>,
    /// Its label names.
    pub labels: Vec<String>,
    /// SLA-wide figures per window.
    pub windows: Vec<WindowSummary>,
    /// Its open deliveries.
    pub open: OpenCounts,
}

/// SLA-wide figures of one window; the assessed ones are absent below
/// `min_deliveries`.
#[derive(Debug, Serialize)]
pub struct WindowSummary {
    /// The window's label.
    pub window: String,
    /// Deliveries in it.
    pub deliveries: u64,
    /// Failed or late ones.
    pub bad: u64,
    /// The amaze margin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub margin: Option<f64>,
    /// `amazing`, `meeting` or `breaching`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
    /// Share within the promise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compliance: Option<f64>,
    /// Error-budget burn rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burn_rate: Option<f64>,
    /// Compliance window only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_budget_remaining: Option<f64>,
    /// Share within the target margin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amazing_ratio: Option<f64>,
}

/// Open deliveries by state.
#[derive(Debug, Serialize)]
pub struct OpenCounts {
    /// Within 1 - alert_margin of their promise.
    pub on_track: u64,
    /// Past that.
    pub at_risk: u64,
    /// Past their promise.
    pub overdue: u64,
    /// Largest clock time over promise among open deliveries.
    pub oldest_elapsed_ratio: f64,
}

/// Every SLA at `now`.
pub fn slas(recorder: &Recorder, now: Millis) -> Vec<SlaSummary> {
    let reports = recorder.report(now);
    recorder
        .catalog()
        .slas
        .iter()
        .zip(&reports)
        .map(|(sla, report)| summarize(sla, report))
        .collect()
}

fn summarize(sla: &Sla, report: &SlaReport) -> SlaSummary {
    let windows = report
        .windows
        .iter()
        .zip(&report.aggregate)
        .enumerate()
        .map(|(i, (w, f))| {
            let a = f.assessment.as_ref();
            // JSON has no infinities: a margin is finite, burn rates may not be.
            let finite = |v: f64| v.is_finite().then_some(v);
            WindowSummary {
                window: w.label.clone(),
                deliveries: f.deliveries,
                bad: f.bad,
                margin: a.map(|a| a.margin),
                status: a.map(|a| a.status.as_str()),
                compliance: a.map(|a| a.compliance),
                burn_rate: a.and_then(|a| finite(a.burn_rate)),
                error_budget_remaining: a
                    .filter(|_| i == report.compliance)
                    .and_then(|a| finite(a.budget_remaining())),
                amazing_ratio: a.and_then(|a| a.amazing_ratio),
            }
        })
        .collect();
    let count = |s: OpenState| report.open.by_state[s as usize];
    SlaSummary {
        name: sla.name.clone(),
        description: sla.description.clone(),
        promise_seconds: sla.promise.as_secs_f64(),
        objective: sla.objective.to_f64(),
        target_margin: sla.target_margin.map(|t| t.to_f64()),
        alert_margin: sla.alert_margin.to_f64(),
        compliance_window: report.windows[report.compliance].label.clone(),
        calendar: sla.calendar.as_ref().map(|c| c.name.clone()),
        labels: sla.labels.clone(),
        windows,
        open: OpenCounts {
            on_track: count(OpenState::OnTrack),
            at_risk: count(OpenState::AtRisk),
            overdue: count(OpenState::Overdue),
            oldest_elapsed_ratio: report.open.oldest_ratio,
        },
    }
}
