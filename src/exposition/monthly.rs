//! The monthly SLA report: per SLA, whether the month kept its promise and
//! by how much, from the days of its history, as JSON, Markdown or CSV (the
//! printable HTML page is in `pages`).
//!
//! Days are dates in the SLA's calendar zone (UTC without a calendar), so a
//! month is the calendar month there. Counts are exact; the margin comes
//! from the merged 1% sketches of the month's days.

use std::fmt::Write;

use std::time::Duration;

use jiff::civil::Date;
use serde::Serialize;

use crate::decimal::Decimal;
use crate::margin::{self, Figures};
use crate::recorder::Recorder;
use crate::window::{Digest, Millis};

/// Worst days listed per SLA.
pub const WORST_DAYS: usize = 3;

/// A calendar month, `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Month {
    first: Date,
}

/// Why a month was not understood.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("month `{0}` is not YYYY-MM (such as 2026-11)")]
pub struct MonthError(String);

impl Month {
    /// Parses `2026-11`.
    pub fn parse(text: &str) -> Result<Month, MonthError> {
        let bad = || MonthError(text.to_owned());
        let (year, month) = text.split_once('-').ok_or_else(bad)?;
        if year.len() != 4 || month.len() != 2 {
            return Err(bad());
        }
        let year: i16 = year.parse().map_err(|_| bad())?;
        let month: i8 = month.parse().map_err(|_| bad())?;
        let first = Date::new(year, month, 1).map_err(|_| bad())?;
        Ok(Month { first })
    }

    /// The month holding `date`.
    pub fn of(date: Date) -> Month {
        Month {
            first: date.first_of_month(),
        }
    }

    /// The month holding instant `at` (unix ms) in UTC.
    pub fn utc(at: Millis) -> Month {
        let at = jiff::Timestamp::from_millisecond(at).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        Month::of(at.to_zoned(jiff::tz::TimeZone::UTC).date())
    }

    /// Its first day.
    pub fn first(self) -> Date {
        self.first
    }

    /// The first day of the next month.
    pub fn end(self) -> Date {
        self.first.last_of_month().tomorrow().unwrap_or(Date::MAX)
    }

    /// The month before.
    pub fn previous(self) -> Month {
        Month::of(self.first.yesterday().unwrap_or(self.first))
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.first.year(), self.first.month())
    }
}

/// The report of one month.
#[derive(Debug, Serialize)]
pub struct MonthReport {
    /// `YYYY-MM`.
    pub month: String,
    /// When it was made (RFC 3339, UTC).
    pub generated_at: String,
    /// One entry per SLA, in config order.
    pub slas: Vec<SlaMonth>,
}

/// One SLA's month.
#[derive(Debug, Serialize)]
pub struct SlaMonth {
    /// The SLA's name.
    pub sla: String,
    /// What it promises, in words.
    pub description: String,
    /// Its promise in words: `8h`, or `8h; priority=P1 1h` with goals.
    pub promise: String,
    /// The promise in seconds.
    pub promise_seconds: f64,
    /// Share that must be within the promise.
    pub objective: f64,
    /// Its amaze goal, if set.
    pub target_margin: Option<f64>,
    /// The zone the month's days are dated in (several, joined by ` and `,
    /// if a reload changed the calendar's zone; the calendar's now when the
    /// month holds no day).
    pub time_zone: String,
    /// Whether the month has ended (by the clock in that zone).
    pub complete: bool,
    /// The first day the history holds a delivery on (it starts when the
    /// exporter first recorded or was backfilled, and keeps 400 days).
    pub history_from: Option<String>,
    /// Whether the history reaches back to the month's first day: if not,
    /// the days before `history_from` are missing from the figures.
    pub history_covers_month: bool,
    /// When a reload changed the promise: the default promises the month's
    /// deliveries were judged by, in seconds (figures are as judged then).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub judged_by_seconds: Vec<f64>,
    /// When a reload changed the objective after the month: the one in
    /// force now (`objective` is the one the month was recorded under, and
    /// judges it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objective_now: Option<f64>,
    /// When the objective changed within the month: every one in force
    /// (the month is then judged by today's).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub objectives_then: Vec<f64>,
    /// Deliveries completed in the month, failed ones included.
    pub deliveries: u64,
    /// Of them, failed or later than the promise.
    pub bad: u64,
    /// Share within the promise; absent below `min_deliveries`.
    pub compliance: Option<f64>,
    /// The month's amaze margin; absent below `min_deliveries`.
    pub margin: Option<f64>,
    /// `amazing`, `meeting` or `breaching`.
    pub status: Option<&'static str>,
    /// Share of the month's error budget spent: bad / ((1 - objective) x n).
    pub budget_used: Option<f64>,
    /// Whether the promise was kept: compliance at or above the objective.
    pub kept: Option<bool>,
    /// Compliance minus objective, in percentage points.
    pub compliance_over_objective_points: Option<f64>,
    /// Its [`WORST_DAYS`] lowest-margin days with enough deliveries, worst first.
    pub worst_days: Vec<DayFigures>,
}

/// One day's figures.
#[derive(Debug, Serialize)]
pub struct DayFigures {
    /// The date, in the SLA's zone.
    pub date: String,
    /// Deliveries completed that day.
    pub deliveries: u64,
    /// Share within the promise.
    pub compliance: f64,
    /// The day's amaze margin.
    pub margin: f64,
    /// `amazing`, `meeting` or `breaching`.
    pub status: &'static str,
}

/// The report of `month` from `recorder`'s history, at `now`.
pub fn report(recorder: &Recorder, month: Month, now: Millis) -> MonthReport {
    let slas = (0..recorder.len())
        .filter_map(|i| {
            recorder.with_history(i, |sla, history| {
                let zone = &sla.clock().tz;
                let today = sla.clock().date_of(now);
                let stamps = history.stamps_between(month.first(), month.end());
                // A month is judged by the objective in force while it was
                // recorded, if one was: a reload does not rewrite a closed
                // month's verdict.
                let mut policy = sla.policy();
                if let [then] = stamps.objectives.as_slice() {
                    policy.objective = *then;
                }
                let mut total = Digest::new();
                let mut days = Vec::new();
                for (date, d) in history.days_between(month.first(), month.end()) {
                    total.merge(d);
                    if let Some(a) = margin::assess(d, &policy).assessment {
                        days.push(DayFigures {
                            date: date.to_string(),
                            deliveries: d.count(),
                            compliance: a.compliance,
                            margin: a.margin,
                            status: a.status.as_str(),
                        });
                    }
                }
                // Most late deliveries first, then the lowest margin: one
                // failure puts a day at the margin's floor at a high objective.
                days.sort_by(|a, b| {
                    a.compliance
                        .total_cmp(&b.compliance)
                        .then(a.margin.total_cmp(&b.margin))
                });
                days.truncate(WORST_DAYS);
                let (judged_by, zones) = (&stamps.promises, &stamps.zones);
                let oldest = history.days().next().map(|(d, _)| d);
                let Figures {
                    deliveries,
                    bad,
                    assessment,
                } = margin::assess(&total, &policy);
                let objective = policy.objective.to_f64();
                SlaMonth {
                    sla: sla.name.clone(),
                    description: sla.description.clone(),
                    promise: promise_text(sla),
                    promise_seconds: sla.promise.as_secs_f64(),
                    objective,
                    target_margin: sla.target_margin.map(Decimal::to_f64),
                    time_zone: if zones.is_empty() {
                        zone.iana_name().unwrap_or("UTC").to_owned()
                    } else {
                        zones.join(" and ")
                    },
                    complete: today >= month.end(),
                    history_from: oldest.map(|d| d.to_string()),
                    history_covers_month: oldest.is_some_and(|d| d <= month.first()),
                    judged_by_seconds: match judged_by.as_slice() {
                        [one] if *one == sla.promise => Vec::new(),
                        all => all.iter().map(Duration::as_secs_f64).collect(),
                    },
                    objective_now: (policy.objective != sla.objective)
                        .then(|| sla.objective.to_f64()),
                    objectives_then: if stamps.objectives.len() > 1 {
                        stamps.objectives.iter().map(|o| o.to_f64()).collect()
                    } else {
                        Vec::new()
                    },
                    deliveries,
                    bad,
                    compliance: assessment.as_ref().map(|a| a.compliance),
                    margin: assessment.as_ref().map(|a| a.margin),
                    status: assessment.as_ref().map(|a| a.status.as_str()),
                    budget_used: assessment.as_ref().map(|a| a.burn_rate),
                    kept: assessment
                        .as_ref()
                        .map(|a| a.status != margin::Status::Breaching),
                    compliance_over_objective_points: assessment
                        .as_ref()
                        // Ten places: past them is float noise (5.000000000000004).
                        .map(|a| ((a.compliance - objective) * 1e12).round() / 1e10),
                    worst_days: days,
                }
            })
        })
        .collect();
    MonthReport {
        month: month.to_string(),
        generated_at: jiff::Timestamp::from_millisecond(now)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string(),
        slas,
    }
}

/// A duration for people, largest units first, as a config writes it:
/// `2d`, `8h`, `1h 30m`, `300ms`. Below a millisecond, humantime's form.
pub fn duration_text(d: Duration) -> String {
    if !d.subsec_nanos().is_multiple_of(1_000_000) || d.is_zero() {
        return humantime::format_duration(d).to_string();
    }
    let mut ms = d.as_millis();
    let mut parts = Vec::new();
    for (unit, suffix) in [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
        (1, "ms"),
    ] {
        if ms >= unit {
            parts.push(format!("{}{suffix}", ms / unit));
            ms %= unit;
        }
    }
    parts.join(" ")
}

/// The default promise, then each goal's (`8h; priority=P1 1h`): each
/// delivery is judged by its own.
fn promise_text(sla: &crate::sla::Sla) -> String {
    let mut text = duration_text(sla.promise);
    for goal in &sla.goals {
        let _ = write!(
            text,
            "; {} {}",
            sla.goal_labels(goal),
            duration_text(goal.promise)
        );
    }
    text
}

/// `0.1234` as `12.34%`; empty for `None`.
pub fn percent(x: Option<f64>) -> String {
    x.map_or(String::new(), |x| format!("{:.2}%", x * 100.0))
}

/// An objective as its exact decimal says: `0.99999` is `99.999%`, never
/// rounded to `100.00%`.
pub fn objective_text(objective: f64) -> String {
    // Display writes the shortest decimal that reads back as the same f64,
    // which for a parsed objective is the text it was parsed from.
    Decimal::parse(&objective.to_string())
        .map_or_else(|_| format!("{:.2}%", objective * 100.0), Decimal::percent)
}

/// Compliance `x` beside `objective`, cut (not rounded) to one digit more
/// than the objective's percentage has, and at least `places`: so it never
/// reads on the other side of the objective. 99.98% beside 99.99% reads
/// `99.980%`, not `100.0%`; 99.995% reads `99.995%`.
pub fn compliance_text(x: f64, objective: f64, places: usize) -> String {
    cut_percent(x, &[objective], places)
}

/// A margin beside the edges its status turns at (zero, and the target or
/// alert margins in `edges`), cut as [`compliance_text`] cuts: 0.4996
/// beside a 50% target reads `49.9%`, not `50.0%`, and -0.00001 reads
/// `-0.1%`, not `-0.0%`.
pub fn margin_text(margin: f64, edges: &[f64], places: usize) -> String {
    cut_percent(margin, edges, places)
}

/// A burn rate to two places, rounded up: above 1 (budget overspent) it
/// never reads `1.00`.
pub fn burn_text(burn: f64) -> String {
    let up = ((burn * 100.0) - 1e-6).ceil() / 100.0;
    // Adding 0 turns -0 into 0.
    format!("{:.2}", up.max(0.0) + 0.0)
}

/// `x` as a percentage cut toward minus infinity, to one digit more than
/// any of `edges` has as a percentage, and at least `places`: a share at or
/// above an edge reads at or above it, and one below reads below.
fn cut_percent(x: f64, edges: &[f64], places: usize) -> String {
    let places = edges
        .iter()
        .map(|e| {
            objective_text(*e)
                .trim_end_matches('%')
                .split_once('.')
                .map_or(0, |(_, d)| d.len())
                + 1
        })
        .fold(places, usize::max);
    let scale = 10f64.powi(places as i32);
    // A hair above the cut, so a share that is exactly a cut value but
    // reads a little below it in floats keeps its last digit.
    let cut = ((x * 100.0 * scale) + 1e-6).floor() / scale;
    format!("{cut:.places$}%")
}

/// The verdict in words: `kept, beaten by 12.34%`. At the margin's floor
/// the objective's share includes failures or deliveries past twice the
/// promise: missed by 100% or more.
pub fn verdict(s: &SlaMonth) -> String {
    match (s.kept, s.margin) {
        (Some(true), Some(m)) => format!(
            "kept, beaten by {}",
            margin_text(m, s.target_margin.as_slice(), 2)
        ),
        (Some(false), Some(m)) if m <= crate::margin::MARGIN_FLOOR => {
            "broken, missed by 100% or more".to_owned()
        }
        (Some(false), Some(m)) => format!(
            "broken, missed by {}",
            margin_text(m, &[], 2).trim_start_matches('-')
        ),
        _ => "too few deliveries to judge".to_owned(),
    }
}

/// What to know before reading an SLA's month: its zone, whether it is
/// over, what the history holds, and a changed promise.
pub fn notes(s: &SlaMonth, month: &str) -> String {
    let mut notes = vec![format!("Days dated in {}", s.time_zone)];
    if !s.complete && s.history_from.is_some() {
        notes.push("the month is not over".to_owned());
    }
    match (&s.history_from, s.history_covers_month) {
        (None, _) => notes.push("the history holds no delivery yet".to_owned()),
        (Some(from), false) if from.as_str() >= month_end(month).as_str() => notes.push(format!(
            "the history's first delivery is on {from}, after this month: no figures"
        )),
        (Some(from), false) => notes.push(format!(
            "the history's first delivery is on {from}: days before it hold none"
        )),
        (Some(_), true) => {}
    }
    if let Some(now) = s.objective_now {
        notes.push(format!(
            "judged by the objective in force then, {} (now {})",
            objective_text(s.objective),
            objective_text(now)
        ));
    }
    if !s.objectives_then.is_empty() {
        let then: Vec<String> = s
            .objectives_then
            .iter()
            .map(|o| objective_text(*o))
            .collect();
        notes.push(format!(
            "a reload changed the objective during the month ({}): judged by today's",
            then.join(", ")
        ));
    }
    if !s.judged_by_seconds.is_empty() {
        let then: Vec<String> = s
            .judged_by_seconds
            .iter()
            .map(|x| duration_text(Duration::from_secs_f64(*x)))
            .collect();
        notes.push(format!(
            "a reload changed the promise: these deliveries were judged against {} (now {})",
            then.join(" and "),
            duration_text(Duration::from_secs_f64(s.promise_seconds))
        ));
    }
    notes.join("; ") + "."
}

/// The first day of the month after `month` (`YYYY-MM`), as `YYYY-MM-DD`.
fn month_end(month: &str) -> String {
    Month::parse(month).map_or(String::new(), |m| m.end().to_string())
}

/// Text for a Markdown table cell or paragraph: one line, with what could
/// break a table (`|`) or pass HTML through (`<`, `>`, `&`) escaped, and a
/// leading character that would start a heading, quote or list.
fn md(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.trim().chars().enumerate() {
        match c {
            '\\' | '|' | '<' | '>' | '&' => {
                out.push('\\');
                out.push(c);
            }
            '#' | '-' | '+' | '*' | '=' if i == 0 => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' | '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The report as a Markdown document.
pub fn markdown(r: &MonthReport) -> String {
    let mut out = format!(
        "# SLA report for {}\n\nGenerated {}.\n\n",
        r.month, r.generated_at
    );
    out.push_str(
        "| SLA | promise | objective | deliveries | compliance | margin | budget used | kept? |\n\
         |---|---|---|---:|---:|---:|---:|---|\n",
    );
    for s in &r.slas {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            md(&s.sla),
            md(&s.promise),
            objective_text(s.objective),
            s.deliveries,
            s.compliance
                .map_or(String::new(), |c| compliance_text(c, s.objective, 2)),
            s.margin.map_or(String::new(), |m| margin_text(
                m,
                s.target_margin.as_slice(),
                2
            )),
            percent(s.budget_used),
            verdict(s),
        );
    }
    for s in &r.slas {
        let _ = write!(out, "\n## {}\n\n", md(&s.sla));
        if !s.description.is_empty() {
            let _ = writeln!(out, "{}\n", md(&s.description));
        }
        let _ = writeln!(out, "{}\n", md(&notes(s, &r.month)));
        if s.worst_days.is_empty() {
            out.push_str("No day had enough deliveries to judge.\n");
            continue;
        }
        out.push_str("| worst days | deliveries | compliance | margin |\n|---|---:|---:|---:|\n");
        for d in &s.worst_days {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                d.date,
                d.deliveries,
                compliance_text(d.compliance, s.objective, 2),
                margin_text(d.margin, s.target_margin.as_slice(), 2),
            );
        }
    }
    out
}

/// The report as CSV (RFC 4180): one row per SLA, worst days as
/// `date margin` pairs separated by `;`.
pub fn csv(r: &MonthReport) -> String {
    let mut out = String::from(
        "month,sla,promise,promise_seconds,objective,target_margin,time_zone,complete,deliveries,bad,compliance,margin,status,budget_used,kept,worst_days,notes\n",
    );
    let num = |x: Option<f64>| x.map_or(String::new(), |x| x.to_string());
    for s in &r.slas {
        let worst: Vec<String> = s
            .worst_days
            .iter()
            .map(|d| format!("{} {}", d.date, d.margin))
            .collect();
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.month,
            quote(&s.sla),
            quote(&s.promise),
            s.promise_seconds,
            s.objective,
            num(s.target_margin),
            quote(&s.time_zone),
            s.complete,
            s.deliveries,
            s.bad,
            num(s.compliance),
            num(s.margin),
            s.status.unwrap_or(""),
            num(s.budget_used),
            s.kept.map_or(String::new(), |k| k.to_string()),
            quote(&worst.join(";")),
            quote(&notes(s, &r.month)),
        );
    }
    out
}

/// A CSV field, quoted when it holds a comma, quote or line break.
fn quote(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Objectives read as their decimal text, and compliance never reads on
    /// the other side of its objective.
    #[test]
    fn shares_read_on_their_side_of_the_objective() {
        assert_eq!(objective_text(0.99999), "99.999%");
        assert_eq!(objective_text(0.999), "99.9%");
        assert_eq!(objective_text(0.95), "95%");
        assert_eq!(compliance_text(9_999.0 / 10_001.0, 0.9999, 1), "99.980%");
        assert_eq!(compliance_text(0.99995, 0.9999, 1), "99.995%");
        assert_eq!(compliance_text(0.9999, 0.9999, 1), "99.990%");
        assert_eq!(compliance_text(14.0 / 15.0, 0.95, 1), "93.3%");
        assert_eq!(compliance_text(0.999_999, 0.99, 1), "99.9%");
        assert_eq!(compliance_text(1.0, 0.99, 1), "100.0%");
        assert_eq!(compliance_text(0.0, 0.99, 1), "0.0%");
        assert_eq!(
            compliance_text(99_998.0 / 100_000.0, 0.99999, 1),
            "99.9980%"
        );
        // Margins on their side of zero and of the target; burn rates of 1.
        assert_eq!(margin_text(0.4996, &[0.5], 1), "49.9%");
        assert_eq!(margin_text(0.5, &[0.5], 1), "50.0%");
        assert_eq!(margin_text(0.0999999967, &[0.1], 1), "9.9%");
        assert_eq!(margin_text(-0.000_01, &[], 2), "-0.01%");
        assert_eq!(margin_text(0.000_01, &[], 2), "0.00%");
        assert_eq!(margin_text(0.3, &[0.125], 1), "30.00%");
        assert_eq!(burn_text(1.0008), "1.01");
        assert_eq!(burn_text(1.0), "1.00");
        assert_eq!(burn_text(0.9992), "1.00");
        assert_eq!(burn_text(0.0), "0.00");
    }

    #[test]
    fn months_parse_strictly() {
        assert_eq!(Month::parse("2026-11").unwrap().to_string(), "2026-11");
        for bad in ["2026-13", "2026-1", "26-11", "2026/11", "", "2026-11-01"] {
            assert!(Month::parse(bad).is_err(), "{bad}");
        }
        let nov = Month::parse("2026-11").unwrap();
        assert_eq!(nov.end(), jiff::civil::date(2026, 12, 1));
        assert_eq!(nov.previous().to_string(), "2026-10");
        assert_eq!(
            Month::parse("2026-01").unwrap().previous().to_string(),
            "2025-12"
        );
    }

    /// A month of generated deliveries, recorded as they happened, against
    /// an exact recount by Berlin date: counts and compliance exact, the
    /// margin within 1%, the worst days the exact worst days.
    #[test]
    fn a_month_of_deliveries_equals_an_exact_recount() {
        use std::sync::Arc;
        use std::time::Duration;

        use crate::config::Config;
        use crate::delivery::{Input, Timing};

        let yaml = "version: 1
calendars:
  - name: office
    timezone: Europe/Berlin
    hours:
      mon-fri: \"09:00-17:00\"
slas:
  - name: desk
    promise: 4h
    objective: 90%
    target_margin: 25%
    window: calendar_month
    calendar: office
";
        let catalog = Arc::new(Config::parse(yaml).unwrap().catalog());
        let r = Recorder::new(catalog.clone());
        let berlin = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
        let start: Millis = "2026-10-31T20:00:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond();
        // (Berlin date, minutes) of every delivery.
        let mut exact: Vec<(Date, Option<u64>)> = Vec::new();
        let mut at = start;
        let mut i: u64 = 0;
        while at < start + 31 * 86_400_000 + 6 * 3_600_000 {
            let date = jiff::Timestamp::from_millisecond(at)
                .unwrap()
                .to_zoned(berlin.clone())
                .date();
            let day = u64::from(date.day().unsigned_abs());
            // Each day its own spread: later days slower, every 37th failed.
            let minutes = (i * 7919 % 100) * (day + 20) * 240 / 100 / 50;
            let timing = if i.is_multiple_of(37) {
                Timing::Failed { at: Some(at) }
            } else {
                Timing::Took {
                    took: Duration::from_secs(minutes * 60),
                    at: Some(at),
                }
            };
            exact.push((date, (!i.is_multiple_of(37)).then_some(minutes)));
            let input = Input {
                sla: "desk",
                labels: &[],
                timing,
                id: None,
            };
            let d = catalog.admit(&input, at).unwrap();
            r.record(&[d], at, None);
            at += 20 * 60_000;
            i += 1;
        }
        let now = at;
        let month = Month::parse("2026-11").unwrap();
        let rep = report(&r, month, now);
        let s = &rep.slas[0];
        assert_eq!(
            (
                s.time_zone.as_str(),
                s.complete,
                s.history_from.as_deref(),
                s.history_covers_month
            ),
            ("Europe/Berlin", true, Some("2026-10-31"), true)
        );
        let november: Vec<Option<u64>> = exact
            .iter()
            .filter(|(d, _)| d.year() == 2026 && d.month() == 11)
            .map(|(_, m)| *m)
            .collect();
        // 30 days of 72 deliveries, dated by Berlin's midnight.
        assert_eq!(s.deliveries, 30 * 72);
        let bad = november
            .iter()
            .filter(|m| m.is_none_or(|m| m > 240))
            .count() as u64;
        assert_eq!(s.bad, bad);
        let n = november.len() as f64;
        assert_eq!(s.compliance, Some((n - bad as f64) / n));
        assert_eq!(s.budget_used, Some(bad as f64 / (0.1 * n)));
        let margin_of = |values: &[Option<u64>]| {
            let mut v: Vec<u64> = values.iter().map(|m| m.unwrap_or(u64::MAX)).collect();
            v.sort_unstable();
            let q = v[(0.9 * v.len() as f64).ceil() as usize - 1];
            if q == u64::MAX {
                -1.0
            } else {
                (1.0 - q as f64 / 240.0).max(-1.0)
            }
        };
        let expected = margin_of(&november);
        let got = s.margin.unwrap();
        assert!(
            (got - expected).abs() <= 0.0101 * (1.0 - expected),
            "{got} vs {expected}"
        );
        assert_eq!(s.kept, Some(expected >= 0.0));
        // The worst days by exact margin are the report's.
        // Worst: most late or failed (exact), then the lowest exact margin.
        let mut by_day: Vec<(Date, f64, usize)> = (1..=30)
            .map(|day| {
                let date = jiff::civil::date(2026, 11, day);
                let values: Vec<Option<u64>> = exact
                    .iter()
                    .filter(|(d, _)| *d == date)
                    .map(|(_, m)| *m)
                    .collect();
                let bad = values.iter().filter(|m| m.is_none_or(|m| m > 240)).count();
                (date, margin_of(&values), bad)
            })
            .collect();
        by_day.sort_by(|a, b| b.2.cmp(&a.2).then(a.1.total_cmp(&b.1)));
        let worst: Vec<String> = s.worst_days.iter().map(|d| d.date.clone()).collect();
        let exact_worst: Vec<String> = by_day[..WORST_DAYS]
            .iter()
            .map(|(d, _, _)| d.to_string())
            .collect();
        assert_eq!(worst, exact_worst);
        for (d, (_, m, _)) in s.worst_days.iter().zip(&by_day) {
            assert!(
                (d.margin - m).abs() <= 0.0101 * (1.0 - m),
                "{} {} vs {m}",
                d.date,
                d.margin
            );
            assert_eq!(d.deliveries, 72);
        }
        // Every rendering carries the figures.
        assert!(markdown(&rep).contains(&format!("| desk | 4h | 90% | {} |", 30 * 72)));
        let csv = csv(&rep);
        assert_eq!(csv.lines().count(), 2);
        assert!(
            csv.lines()
                .nth(1)
                .unwrap()
                .starts_with("2026-11,desk,4h,14400,0.9,0.25,Europe/Berlin,true,2160,")
        );
    }

    #[test]
    fn markdown_text_cannot_break_the_table_or_pass_html() {
        assert_eq!(md("a|b"), "a\\|b");
        assert_eq!(md("# Injected\n| x |"), "\\# Injected \\| x \\|");
        assert_eq!(
            md("<script>alert(1)</script>"),
            "\\<script\\>alert(1)\\</script\\>"
        );
        assert_eq!(md("support_first_response"), "support_first_response");
    }

    #[test]
    fn durations_read_as_a_config_writes_them() {
        let d = |ms: u64| duration_text(Duration::from_millis(ms));
        assert_eq!(d(172_800_000), "2d");
        assert_eq!(d(5_400_000), "1h 30m");
        assert_eq!(d(300), "300ms");
        assert_eq!(d(1_500), "1s 500ms");
        assert_eq!(duration_text(Duration::from_micros(1500)), "1ms 500us");
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(quote("a,b"), "\"a,b\"");
        assert_eq!(quote("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(quote("plain"), "plain");
    }
}
