//! One SLA's page (`/slas/{name}`): its figures per window, its trends,
//! and the promise advisor with a what-if form.

use std::fmt::Write;

use super::{escape, page, percent, query_value, status};
use crate::exposition::advice::{self, Advice, AdviceError, Question};
use crate::exposition::monthly::{burn_text, compliance_text, margin_text, objective_text};
use crate::recorder::Recorder;
use crate::window::Millis;

/// Renders the page of the SLA `question` names, answering its what-if;
/// `error` says why the what-if asked could not be read.
pub fn render(
    recorder: &Recorder,
    question: &Question,
    error: Option<&str>,
    now: Millis,
) -> Result<String, AdviceError> {
    let advice = advice::advise(recorder, question, now)?;
    let catalog = recorder.catalog();
    let i = catalog
        .index(&question.sla)
        .ok_or_else(|| AdviceError::UnknownSla(question.sla.clone()))?;
    let sla = &catalog.slas[i];
    let report = &recorder.report(now)[i];
    let state = status::state(sla, report);
    let (hours, days) = recorder
        .with_history(i, |sla, h| status::trends(sla, h, now))
        .unwrap_or_default();
    let mut rows = String::new();
    for (w, f) in report.windows.iter().zip(&report.aggregate) {
        let a = f.assessment.as_ref();
        let _ = writeln!(
            rows,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            escape(&w.label),
            f.deliveries,
            a.map_or("—".to_owned(), |a| compliance_text(
                a.compliance,
                sla.objective.to_f64(),
                1
            )),
            a.map_or("—".to_owned(), |a| margin_text(
                a.margin,
                &status::edges(sla),
                1
            )),
            a.map_or("—".to_owned(), |a| burn_text(a.burn_rate)),
            a.map_or("too few deliveries", |a| a.status.as_str()),
        );
    }
    let body = format!(
        "<nav class=\"noprint\"><a href=\"/\">all SLAs</a></nav>\n<h1>{name}</h1><p>{description}</p>\n\
         <p><span class=\"state {class}\">{class}</span> Promise {promise} for {objective} of deliveries; \
         target margin {target}; alert below {alert}.</p>\n\
         <table><tr><th>window</th><th class=\"num\">deliveries</th><th class=\"num\">compliance</th>\
         <th class=\"num\">margin</th><th class=\"num\">burn rate</th><th>status</th></tr>\n{rows}</table>\n\
         {trends}\n\
         {advisor}",
        name = escape(&sla.name),
        description = escape(&sla.description),
        class = state.as_str(),
        promise = crate::exposition::monthly::duration_text(sla.promise),
        objective = sla.objective.percent(),
        target = sla.target_margin.map_or("none".to_owned(), |t| t.percent()),
        alert = sla.alert_margin.percent(),
        trends = status::trend_pictures(sla, &hours, &days),
        advisor = advisor(&advice, question, error),
    );
    Ok(page(&sla.name, now, None, &body))
}

/// A duration for people: whole minutes from an hour up, whole seconds
/// from a minute up, milliseconds below.
fn seconds(s: f64) -> String {
    let ms = (s * 1000.0).round().max(0.0) as u64;
    let unit = match ms {
        3_600_000.. => 60_000,
        60_000.. => 1_000,
        _ => 1,
    };
    let rounded = (ms + unit / 2) / unit * unit;
    crate::exposition::monthly::duration_text(std::time::Duration::from_millis(rounded))
}
fn advisor(advice: &Advice, question: &Question, error: Option<&str>) -> String {
    let mut out = format!(
        "<h2>What could we promise?</h2>\n<p>The promise each window's deliveries would beat by a {t} margin: \
         T′ = q ÷ (1 − {t}), q the time {o} of deliveries came within. Quantiles are within {acc}% of the exact ones.</p>\n\
         <table><tr><th>window</th><th class=\"num\">deliveries</th><th class=\"num\">{o} within</th><th class=\"num\">could promise</th></tr>\n",
        t = percent(Some(advice.target_margin)),
        o = objective_text(advice.objective),
        acc = advice.relative_accuracy * 100.0,
    );
    for w in &advice.windows {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&w.window),
            w.deliveries,
            match (w.objective_quantile_seconds, w.objective_quantile_ratio) {
                (Some(q), _) => seconds(q),
                (None, Some(r)) => format!("{:.1}% of its promise", r * 100.0),
                (None, None) => w.why.unwrap_or("—").to_owned(),
            },
            match (w.advised_scale, w.judged_by_seconds.len()) {
                (Some(scale), 0) => {
                    let mut text = seconds(scale * advice.promise_seconds);
                    for g in &advice.goals {
                        text.push_str(&format!(
                            "; {} {}",
                            escape(&g.labels),
                            seconds(scale * g.promise_seconds)
                        ));
                    }
                    text
                }
                (Some(scale), _) => format!(
                    "{:.2}x each promise (judged by {})",
                    scale,
                    w.judged_by_seconds
                        .iter()
                        .map(|s| seconds(*s))
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
                (None, _) => "—".to_owned(),
            },
        );
    }
    out.push_str("</table>\n");
    let _ = writeln!(
        out,
        "<form method=\"get\" action=\"/slas/{q}\"><b>What if</b> we had promised \
         <label><input name=\"promise\" placeholder=\"{p}\" value=\"{pv}\"></label>for \
         <label><input name=\"objective\" placeholder=\"{o}\" value=\"{ov}\"></label>of deliveries? \
         <button>Show</button></form>{error}",
        q = query_value(&advice.sla),
        p = seconds(advice.promise_seconds),
        o = objective_text(advice.objective),
        pv = question
            .promise
            .map_or(String::new(), crate::exposition::monthly::duration_text),
        ov = question.objective.map_or(String::new(), |o| o.percent()),
        error = error.map_or(String::new(), |e| format!(
            "<p class=\"risk\">{}</p>",
            escape(e)
        )),
    );
    if let Some(w) = &advice.what_if {
        let _ = writeln!(
            out,
            "<p>Had the promise been {} for {} of deliveries:</p>\n<table><tr><th>window</th><th class=\"num\">deliveries</th>\
             <th class=\"num\">compliance</th><th class=\"num\">margin</th><th>status</th><th>compliance is</th></tr>",
            seconds(w.promise_seconds),
            objective_text(w.objective),
        );
        for x in &w.windows {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
                escape(&x.window),
                x.deliveries,
                x.compliance
                    .map_or("—".to_owned(), |c| compliance_text(c, w.objective, 1)),
                x.margin.map_or("—".to_owned(), |m| margin_text(
                    m,
                    &[advice.target_margin],
                    1
                )),
                x.status.or(x.why).unwrap_or("—"),
                match (x.compliance, x.exact) {
                    (None, _) => "—",
                    (Some(_), true) => "exact",
                    (Some(_), false) => "exact but for deliveries within 1% of the promise",
                },
            );
        }
        out.push_str("</table>\n");
    }
    out
}
