//! The status page at `/`: each SLA's state in words and pictures, for a
//! manager to read in five seconds.

use std::fmt::Write;

use super::{escape, page, query_value, svg};
use crate::exposition::monthly::{compliance_text, margin_text};
use crate::margin::{self, Figures, Status};
use crate::recorder::{HOUR, History, Recorder, SlaReport};
use crate::sla::Sla;
use crate::window::Millis;

/// Seconds between automatic reloads.
pub const REFRESH_SECONDS: u32 = 30;

/// The window the warning reads, as `AmazeMarginLow` does.
pub const ALERT_WINDOW: &str = "1h";

/// What the page says about an SLA, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The compliance window breaks the promise.
    Breaching,
    /// The last hour's margin is below the alert margin: the condition of
    /// `AmazeMarginLow` (and of `AmazeMarginBreached` when negative).
    Warning,
    /// Meeting the promise, below the target margin.
    Meeting,
    /// At or above the target margin.
    Amazing,
    /// Too few deliveries to judge.
    Quiet,
}

impl State {
    /// The class and the word on the page.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Breaching => "breaching",
            State::Warning => "warning",
            State::Meeting => "meeting",
            State::Amazing => "amazing",
            State::Quiet => "quiet",
        }
    }
}

/// The page's state for an SLA from its report: the compliance window's
/// status, unless the last hour's margin is below the alert margin.
pub fn state(sla: &Sla, report: &SlaReport) -> State {
    let window = report.aggregate[report.compliance].assessment.as_ref();
    let hour = hour_figures(report).and_then(|f| f.assessment.as_ref());
    match (window.map(|a| a.status), hour) {
        (Some(Status::Breaching), _) => State::Breaching,
        (_, Some(h)) if h.margin < sla.alert_margin.to_f64() => State::Warning,
        (Some(Status::Amazing), _) => State::Amazing,
        (Some(Status::Meeting), _) => State::Meeting,
        (None, _) => State::Quiet,
    }
}

fn hour_figures(report: &SlaReport) -> Option<&Figures> {
    let i = report
        .windows
        .iter()
        .position(|w| w.label == ALERT_WINDOW)?;
    report.aggregate.get(i)
}

/// Renders the page as of `now`; `telemetry_path` is where `/metrics` lives.
pub fn render(recorder: &Recorder, telemetry_path: &str, now: Millis) -> String {
    let catalog = recorder.catalog();
    let reports = recorder.report(now);
    let mut cards = String::new();
    for (i, (sla, report)) in catalog.slas.iter().zip(&reports).enumerate() {
        let (hours, days) = recorder
            .with_history(i, |sla, h| trends(sla, h, now))
            .unwrap_or_default();
        card(&mut cards, sla, report, &hours, &days);
    }
    let month = crate::exposition::monthly::Month::utc(now);
    let body = format!(
        "<h1>SLA status</h1>\n<nav class=\"noprint\"><a href=\"/report?month={this}\">report for {this}</a>\
         <a href=\"/report?month={last}\">report for {last}</a><a href=\"/api/v1/open\">open items</a>\
         <a href=\"{metrics}\">metrics</a><a href=\"/api/v1/slas\">JSON</a></nav>\n\
         <p class=\"asof\">How far delivery beats each promise. Reloads every {REFRESH_SECONDS} s.</p>\n\
         <div class=\"cards\">\n{cards}</div>\n\
         <p class=\"muted noprint\">Push deliveries with <code>POST /api/v1/deliveries</code>; backfill a year of \
         them with <code>amaze-exporter import</code>.</p>",
        this = month,
        last = month.previous(),
        metrics = escape(telemetry_path),
    );
    page("SLA status", now, Some(REFRESH_SECONDS), &body)
}

/// Margins per hour over the last day and per day over the compliance
/// window (at most 31 days), oldest first; `None` where nothing was
/// delivered. A point with fewer than `min_deliveries` is drawn too, marked
/// (see [`svg::Point`]): a trend of a quiet SLA is still a trend.
pub fn trends(
    sla: &Sla,
    history: &History,
    now: Millis,
) -> (Vec<Option<svg::Point>>, Vec<Option<svg::Point>>) {
    let mut policy = sla.policy();
    let min = policy.min_deliveries;
    policy.min_deliveries = 1;
    let margin_of = |d: &crate::window::Digest| {
        margin::assess(d, &policy).assessment.map(|a| svg::Point {
            margin: a.margin,
            few: d.count() < min,
        })
    };
    let first_hour = (now.div_euclid(HOUR) - 23) * HOUR;
    let mut hours = vec![None; 24];
    for (start, d) in history.hours_from(first_hour) {
        if let Some(slot) = hours.get_mut(((start - first_hour) / HOUR) as usize) {
            *slot = margin_of(d);
        }
    }
    let calendar = sla.clock();
    let span_days = (sla.window.as_secs().div_ceil(86_400)).clamp(1, 31) as i32;
    let today = calendar.date_of(now);
    let first = today
        .checked_sub(jiff::Span::new().days(span_days - 1))
        .unwrap_or(today);
    let mut days = vec![None; span_days as usize];
    for (date, d) in history.days_between(first, today.tomorrow().unwrap_or(today)) {
        let offset = first.until(date).map_or(0, |s| s.get_days()) as usize;
        if let Some(slot) = days.get_mut(offset) {
            *slot = margin_of(d);
        }
    }
    (hours, days)
}

/// The two trend pictures with their legends: margin per hour over the
/// last day, per day over the compliance window.
pub fn trend_pictures(
    sla: &Sla,
    hours: &[Option<svg::Point>],
    days: &[Option<svg::Point>],
) -> String {
    let target = sla.target_margin.map(|t| t.to_f64());
    format!(
        "<div class=\"legend\">Margin per hour, last 24 hours; hollow points rest on fewer than {min} deliveries</div>{hourly}\
         <div class=\"legend\">Margin per day, last {n} days</div>{daily}",
        min = sla.min_deliveries,
        hourly = svg::trend(
            "margin per hour",
            hours,
            target,
            ("23 hours ago", "this hour")
        ),
        n = days.len(),
        daily = svg::trend(
            "margin per day",
            days,
            target,
            (
                &format!("{} days ago", days.len().saturating_sub(1)),
                "today"
            )
        ),
    )
}

fn card(
    out: &mut String,
    sla: &Sla,
    report: &SlaReport,
    hours: &[Option<svg::Point>],
    days: &[Option<svg::Point>],
) {
    let state = state(sla, report);
    let window = &report.windows[report.compliance];
    let figures = &report.aggregate[report.compliance];
    let a = figures.assessment.as_ref();
    let hour = hour_figures(report).and_then(|f| f.assessment.as_ref());
    let alert = sla.alert_margin.to_f64();
    let target = sla.target_margin.map(|t| t.to_f64());
    // `over 30d`, or `this month` for a calendar month.
    let over = if window.label == crate::recorder::CALENDAR_MONTH_LABEL {
        "this month".to_owned()
    } else {
        format!("over {}", window.label)
    };
    let says = match state {
        State::Breaching => format!(
            "Breaching: {} of deliveries within the promise {}, below the {} objective.",
            a.map_or("—".to_owned(), |a| compliance_text(
                a.compliance,
                sla.objective.to_f64(),
                1
            )),
            over,
            sla.objective.percent()
        ),
        State::Warning => format!(
            "Warning: the last hour's margin is {}, below the {} alert margin{}.",
            margin_or_dash(hour.map(|h| h.margin), sla),
            sla.alert_margin.percent(),
            if hour.is_some_and(|h| h.margin < 0.0) {
                "; the last hour breaks the promise"
            } else {
                ""
            }
        ),
        State::Amazing => format!(
            "Amazing: beats the promise by {} {}{}.",
            margin_or_dash(a.map(|a| a.margin), sla),
            over,
            target.map_or(String::new(), |_| format!(
                ", at or above its {} target",
                sla.target_margin.map_or(String::new(), |t| t.percent())
            ))
        ),
        State::Meeting => format!(
            "Meeting: beats the promise by {} {}{}.",
            margin_or_dash(a.map(|a| a.margin), sla),
            over,
            sla.target_margin.map_or(String::new(), |t| format!(
                ", short of its {} target",
                t.percent()
            ))
        ),
        State::Quiet => format!(
            "Too few deliveries to judge: {} {}, {} needed.",
            figures.deliveries, over, sla.min_deliveries
        ),
    };
    let name = escape(&sla.name);
    let [on_track, at_risk, overdue] = report.open.by_state;
    let open = if on_track + at_risk + overdue == 0 {
        String::new()
    } else {
        format!(
            "<p><a href=\"/api/v1/open?sla={q}\">{total} open</a>{risk}</p>",
            q = query_value(&sla.name),
            total = on_track + at_risk + overdue,
            risk = if at_risk + overdue > 0 {
                format!(": <span class=\"risk\">{at_risk} at risk, {overdue} overdue</span>")
            } else {
                String::new()
            }
        )
    };
    let _ = writeln!(
        out,
        "<section class=\"card {class}\" data-sla=\"{name}\" data-state=\"{class}\">\
<h2><a href=\"/slas/{q}\">{name}</a></h2><small>{description}</small><br>\
<span class=\"state {class}\">{word}</span> {says}\
<p class=\"muted\">Promise {promise} for {objective} of deliveries{target_text}; {deliveries} deliveries {over}.</p>\
{scale}<div class=\"legend\">● {wlabel} {wm} &nbsp; ○ last hour {hm} &nbsp; alert below {am}</div>\
{trends}\
<div class=\"legend\">Error budget left {over}</div>{budget}{open}</section>",
        class = state.as_str(),
        q = query_value(&sla.name),
        description = escape(&sla.description),
        word = state.as_str(),
        promise = crate::exposition::monthly::duration_text(sla.promise),
        objective = sla.objective.percent(),
        target_text = sla.target_margin.map_or(String::new(), |t| format!(
            ", aiming {} faster",
            t.percent()
        )),
        deliveries = figures.deliveries,
        wlabel = escape(&window.label),
        scale = svg::margin_scale(
            &[
                (window.label.as_str(), a.map(|a| a.margin)),
                ("last hour", hour.map(|h| h.margin))
            ],
            target,
            alert
        ),
        wm = margin_or_dash(a.map(|a| a.margin), sla),
        hm = margin_or_dash(hour.map(|h| h.margin), sla),
        am = sla.alert_margin.percent(),
        trends = trend_pictures(sla, hours, days),
        budget = svg::budget_bar(a.map(|a| a.budget_remaining())),
    );
}

/// The margin edges an SLA's status and warning turn at: its target and
/// alert margins (zero is always one).
pub fn edges(sla: &Sla) -> Vec<f64> {
    sla.target_margin
        .iter()
        .chain([&sla.alert_margin])
        .map(|d| d.to_f64())
        .collect()
}

/// A margin cut so it reads on its side of every edge; an em dash for `None`.
fn margin_or_dash(margin: Option<f64>, sla: &Sla) -> String {
    margin.map_or("—".to_owned(), |m| margin_text(m, &edges(sla), 1))
}
