//! Raw config to domain types, collecting every problem with its YAML path.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::calendars::Calendars;
use super::raw::{RawConfig, RawGoal, RawLimits, RawSla};
use super::{Config, Limits, VERSION};
use crate::calendar::Calendar;
use crate::decimal::{Decimal, DecimalError};
use crate::fields::{Problem, Problems, Section, Text, count, one_of, span, text};
use crate::sla::{Durability, Goal, Sla};

/// Longest promise or window accepted: beyond a year a figure means nothing.
const MAX_SPAN: Duration = Duration::from_secs(400 * 86400);
const MIN_WINDOW: Duration = Duration::from_secs(3600);
const DEFAULT_WINDOW: Duration = Duration::from_secs(30 * 86400);
/// `window: calendar_month` reports per calendar month.
pub const CALENDAR_MONTH: &str = "calendar_month";
const MONTH_SPAN: Duration = Duration::from_secs(31 * 86400);
const DEFAULT_MIN_DELIVERIES: usize = 10;
const NANOSECOND: Duration = Duration::from_nanos(1);
const DEFAULT_MAX_SERIES: usize = 1000;
const DEFAULT_FORECAST_HORIZON: Duration = Duration::from_secs(86400);
const MAX_LABELS: usize = 16;
/// Label names the exporter itself puts on series, and `replica`, which
/// the fleet rules read to tell HA replicas apart.
pub const RESERVED_LABELS: [&str; 9] = [
    "sla",
    "window",
    "scope",
    "le",
    "quantile",
    "q",
    "result",
    "status",
    crate::exposition::fleet::REPLICA_LABEL,
];

pub fn validate(raw: RawConfig) -> Result<Config, Vec<Problem>> {
    let mut p = Problems::default();
    match p.parse("version", raw.version.as_ref(), |s| {
        s.parse::<u32>()
            .map_err(|_| format!("`{s}` is not a version number"))
    }) {
        Some(VERSION) => {}
        Some(v) => p.at(
            "version",
            raw.version.as_ref(),
            format!("version {v} is not supported; this build reads version {VERSION}"),
        ),
        None if raw.version.is_none() => p.at(
            "version",
            None,
            format!("required: add `version: {VERSION}`"),
        ),
        None => {}
    }
    let limits = limits(&mut p, &raw.limits);
    let calendars = super::calendars::validate(&mut p, &raw.calendars);
    let mut slas = Vec::new();
    match &raw.slas {
        None => p.at("slas", None, "required: a list of SLAs"),
        Some(list) if list.is_empty() => p.at("slas", None, "at least one SLA is required"),
        Some(list) => {
            let mut names = HashSet::new();
            for (i, raw_sla) in list.iter().enumerate() {
                let path = format!("slas[{i}]");
                if let Some(name) = &raw_sla.name
                    && !names.insert(name.value.trim())
                {
                    p.at(
                        format!("{path}.name"),
                        Some(name),
                        format!("duplicate SLA name `{}`", name.value.trim()),
                    );
                }
                slas.extend(sla(&mut p, &path, raw_sla, &calendars));
            }
        }
    }
    let sources = raw.sources.validate(&mut p, &slas);
    let auth = super::auth::validate(&mut p, &raw.auth, &slas);
    if p.is_empty() {
        Ok(Config {
            limits,
            auth,
            slas,
            sources,
        })
    } else {
        Err(p.into_vec())
    }
}

fn limits(p: &mut Problems, raw: &RawLimits) -> Limits {
    let d = Limits::default();
    let mut at = Section::new(p, "limits");
    let hour = Duration::from_secs(3600);
    let limits = Limits {
        max_body_bytes: at.or(
            "max_body_bytes",
            raw.max_body_bytes.as_ref(),
            count(1024, 1 << 30),
            d.max_body_bytes,
        ),
        max_future_skew: at.or(
            "max_future_skew",
            raw.max_future_skew.as_ref(),
            span(Duration::ZERO, hour),
            d.max_future_skew,
        ),
        max_label_value_length: at.or(
            "max_label_value_length",
            raw.max_label_value_length.as_ref(),
            count(1, 4096),
            d.max_label_value_length,
        ),
        max_tracked_ids: at.or(
            "max_tracked_ids",
            raw.max_tracked_ids.as_ref(),
            count(0, 100_000_000),
            d.max_tracked_ids,
        ),
        max_lines_per_request: at.or(
            "max_lines_per_request",
            raw.max_lines_per_request.as_ref(),
            count(1, 10_000_000),
            d.max_lines_per_request,
        ),
        max_inflight_bytes: at.or(
            "max_inflight_bytes",
            raw.max_inflight_bytes.as_ref(),
            count(1 << 20, 1 << 40),
            d.max_inflight_bytes,
        ),
        max_open_deliveries: at.or(
            "max_open_deliveries",
            raw.max_open_deliveries.as_ref(),
            count(1, 100_000_000),
            d.max_open_deliveries,
        ),
    };
    // A body that fits the one limit and not the other could never be taken.
    if limits.max_inflight_bytes < limits.max_body_bytes {
        at.problem(
            "max_inflight_bytes",
            raw.max_inflight_bytes.as_ref(),
            format!(
                "{} is below max_body_bytes ({}): a body of that size could never be taken",
                limits.max_inflight_bytes, limits.max_body_bytes
            ),
        );
    }
    limits
}

const DURABILITIES: &[(&str, Durability)] = &[
    ("sync", Durability::Sync),
    ("async", Durability::Async),
    ("none", Durability::None),
];

/// The calendar named by `text`; a problem when none of that name is
/// defined (an invalid one is reported where it is defined).
fn calendar(at: &mut Section<'_>, text: &Text, calendars: &Calendars) -> Option<Arc<Calendar>> {
    let name = text.value.trim();
    if let Some(valid) = calendars.get(name) {
        return valid.clone();
    }
    let mut known: Vec<&str> = calendars.keys().map(String::as_str).collect();
    known.sort_unstable();
    let known = if known.is_empty() {
        "none".to_owned()
    } else {
        known.join(", ")
    };
    let why = format!("no calendar named `{name}`; defined: {known}");
    at.problem("calendar", Some(text), why);
    None
}

fn sla(p: &mut Problems, path: &str, raw: &RawSla, calendars: &Calendars) -> Option<Sla> {
    let mut at = Section::new(p, path).starting_at(&[
        raw.name.as_ref(),
        raw.description.as_ref(),
        raw.promise.as_ref(),
        raw.objective.as_ref(),
        raw.target_margin.as_ref(),
        raw.window.as_ref(),
    ]);
    let name = at.required("name", raw.name.as_ref(), |s| {
        sla_name(s).map(str::to_owned)
    });
    let description = at.or("description", raw.description.as_ref(), text, String::new());
    let promise = at.required("promise", raw.promise.as_ref(), span(NANOSECOND, MAX_SPAN));
    let objective = at.required("objective", raw.objective.as_ref(), fraction(false));
    let target_margin = at.optional("target_margin", raw.target_margin.as_ref(), fraction(false));
    let alert_margin = at.optional("alert_margin", raw.alert_margin.as_ref(), fraction(true));
    let (window, calendar_month) = window(&mut at, raw.window.as_ref());
    let min_deliveries = at.or(
        "min_deliveries",
        raw.min_deliveries.as_ref(),
        count(1, 1 << 40),
        DEFAULT_MIN_DELIVERIES,
    );
    let max_series = at.or(
        "max_series",
        raw.max_series.as_ref(),
        count(1, 1_000_000),
        DEFAULT_MAX_SERIES,
    );
    let durability = at.or(
        "durability",
        raw.durability.as_ref(),
        one_of("durability", DURABILITIES),
        Durability::Sync,
    );
    let horizon = span(Duration::from_secs(60), MAX_SPAN);
    let forecast_horizon = at.or(
        "forecast_horizon",
        raw.forecast_horizon.as_ref(),
        horizon,
        DEFAULT_FORECAST_HORIZON,
    );
    // The checks specific to SLAs.
    margins_agree(&mut at, raw, alert_margin, target_margin);
    let calendar = raw
        .calendar
        .as_ref()
        .and_then(|t| calendar(&mut at, t, calendars));
    if raw.calendar.is_some() && calendar.is_none() {
        // Unknown (reported just now) or invalid (reported at the calendar).
        return None;
    }
    let series_windows = series_windows(&mut at, raw.series_windows.as_deref(), window);
    let labels = labels(at.problems(), path, &raw.labels);
    let goals: Vec<Goal> = raw
        .goals
        .iter()
        .enumerate()
        .filter_map(|(i, g)| goal(at.problems(), &format!("{path}.goals[{i}]"), g, &labels))
        .collect();
    if !at.clean() {
        return None;
    }
    Some(Sla {
        name: name?,
        description,
        promise: promise?,
        objective: objective?,
        target_margin,
        alert_margin: alert_margin
            .or_else(|| target_margin.and_then(Decimal::half))
            .unwrap_or(Decimal::ZERO),
        window,
        min_deliveries: min_deliveries as u64,
        labels,
        goals,
        max_series,
        durability,
        forecast_horizon,
        calendar,
        calendar_month,
        series_windows,
    })
}

/// `window`: a rolling span, or `calendar_month` (rolling figures over the
/// longest month besides the month's own), and which it is.
fn window(at: &mut Section<'_>, raw: Option<&Text>) -> (Duration, bool) {
    if raw.is_some_and(|w| w.value.trim() == CALENDAR_MONTH) {
        return (MONTH_SPAN, true);
    }
    let rolling = span(MIN_WINDOW, MAX_SPAN);
    let window = at.or(
        "window",
        raw,
        |s| rolling(s).map_err(|e| format!("{e}; or `{CALENDAR_MONTH}` for calendar months")),
        DEFAULT_WINDOW,
    );
    (window, false)
}

/// The warning must not fire while the SLA is amazing: `alert_margin` at
/// most `target_margin`.
fn margins_agree(
    at: &mut Section<'_>,
    raw: &RawSla,
    alert: Option<Decimal>,
    target: Option<Decimal>,
) {
    if let (Some(alert), Some(target)) = (alert, target)
        && alert > target
    {
        let why = format!(
            "{} is above target_margin {}: the warning would fire while the SLA is amazing",
            alert.percent(),
            target.percent()
        );
        at.problem("alert_margin", raw.alert_margin.as_ref(), why);
    }
}

/// `series_windows`: windows of this SLA's `window`, by label; the default
/// when absent.
fn series_windows(at: &mut Section<'_>, listed: Option<&[Text]>, window: Duration) -> Vec<String> {
    let Some(listed) = listed else {
        return crate::sla::DEFAULT_SERIES_WINDOWS
            .map(str::to_owned)
            .to_vec();
    };
    let (windows, _) = crate::window::windows_for(window.as_millis() as i64);
    let known: Vec<&str> = windows.iter().map(|w| w.label.as_str()).collect();
    let mut chosen = Vec::new();
    for (i, t) in listed.iter().enumerate() {
        let label = t.value.trim();
        if known.contains(&label) {
            chosen.push(label.to_owned());
        } else {
            let why = format!(
                "`{label}` is not a window of this SLA: {}",
                known.join(", ")
            );
            at.problem(&format!("series_windows[{i}]"), Some(t), why);
        }
    }
    chosen
}

fn labels(p: &mut Problems, path: &str, raw: &[Text]) -> Vec<String> {
    if raw.len() > MAX_LABELS {
        p.at(
            format!("{path}.labels"),
            raw.first(),
            format!("{} labels; at most {MAX_LABELS} are allowed", raw.len()),
        );
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, t) in raw.iter().enumerate() {
        let key = t.value.trim();
        let at = format!("{path}.labels[{i}]");
        if let Err(m) = label_name(key) {
            p.at(at, Some(t), m);
        } else if !seen.insert(key.to_owned()) {
            p.at(at, Some(t), format!("duplicate label `{key}`"));
        } else {
            out.push(key.to_owned());
        }
    }
    out
}

fn goal(p: &mut Problems, path: &str, raw: &RawGoal, labels: &[String]) -> Option<Goal> {
    let promise =
        Section::new(p, path).required("promise", raw.promise.as_ref(), span(NANOSECOND, MAX_SPAN));
    let mut matches = Vec::new();
    match &raw.matches {
        None => p.at(
            format!("{path}.match"),
            None,
            "required: the labels this goal applies to, e.g. `match: {priority: P1}`",
        ),
        Some(m) if m.is_empty() => p.at(
            format!("{path}.match"),
            None,
            "must name at least one label",
        ),
        Some(m) => {
            for (key, value) in m {
                match labels.iter().position(|l| l == key) {
                    Some(i) => matches.push((i, value.value.clone())),
                    None => p.at(
                        format!("{path}.match.{key}"),
                        Some(value),
                        format!(
                            "`{key}` is not one of this SLA's labels ({})",
                            if labels.is_empty() {
                                "it has none".to_owned()
                            } else {
                                labels.join(", ")
                            }
                        ),
                    ),
                }
            }
        }
    }
    Some(Goal {
        matches,
        promise: promise?,
    })
}

fn sla_name(s: &str) -> Result<&str, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if ok {
        Ok(s)
    } else {
        Err(format!(
            "`{s}` is not a valid SLA name: use 1-64 letters, digits, `_`, `-` or `.`, starting with a letter"
        ))
    }
}

fn label_name(s: &str) -> Result<(), String> {
    let ok = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Err(format!(
            "`{s}` is not a valid Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)"
        ));
    }
    if s.starts_with("__") || RESERVED_LABELS.contains(&s) {
        return Err(format!(
            "`{s}` is reserved by the exporter; reserved: {}, and names starting with __",
            RESERVED_LABELS.join(", ")
        ));
    }
    Ok(())
}

/// Most digits after the point an objective or margin may have: exact, far
/// finer than any SLA, and always distinct from 1 as a float.
const FRACTION_DIGITS: u8 = 12;

/// `99%`, `99.9%` or `0.99`, held exactly as written; strictly between 0
/// and 1 (or from 0 when `allow_zero`), with at most [`FRACTION_DIGITS`]
/// digits after the point.
fn fraction(allow_zero: bool) -> impl Fn(&str) -> Result<Decimal, String> {
    move |s| fraction_of(s, allow_zero)
}

fn fraction_of(s: &str, allow_zero: bool) -> Result<Decimal, String> {
    let value = Decimal::parse(s).map_err(|e| match e {
        DecimalError::Syntax(_) => format!("`{s}` is not a fraction: write e.g. `99%` or `0.99`"),
        other => other.to_string(),
    })?;
    if value.scale() > FRACTION_DIGITS {
        return Err(format!(
            "`{s}` has more than {FRACTION_DIGITS} digits after the point (as a fraction of 1); \
             write e.g. `99.999%`"
        ));
    }
    let low_ok = allow_zero || value > Decimal::ZERO;
    if !low_ok || value >= Decimal::ONE {
        let range = if allow_zero {
            "from 0% up to (not including) 100%"
        } else {
            "strictly between 0% and 100%"
        };
        return Err(format!("`{s}` is out of range: must be {range}"));
    }
    Ok(value)
}
