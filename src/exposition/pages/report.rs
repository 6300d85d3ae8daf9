//! The printable monthly report (`/report?month=YYYY-MM`).

use std::fmt::Write;

use super::{escape, page, query_value};
use crate::exposition::monthly::{self, MonthReport, percent};
use crate::window::Millis;

/// Renders `report` as a page.
pub fn render(report: &MonthReport, now: Millis) -> String {
    let mut rows = String::new();
    let mut details = String::new();
    for s in &report.slas {
        let class = match s.kept {
            Some(true) if s.status == Some("amazing") => "amazing",
            Some(true) => "meeting",
            Some(false) => "breaching",
            None => "quiet",
        };
        let _ = writeln!(
            rows,
            "<tr data-sla=\"{name}\"><td><a href=\"/slas/{q}\">{name}</a></td><td>{promise}</td><td class=\"num\">{objective}</td>\
             <td class=\"num\">{deliveries}</td><td class=\"num\">{compliance}</td><td class=\"num\">{margin}</td>\
             <td class=\"num\">{budget}</td><td><span class=\"state {class}\">{verdict}</span></td></tr>",
            name = escape(&s.sla),
            q = query_value(&s.sla),
            promise = escape(&s.promise),
            objective = monthly::objective_text(s.objective),
            deliveries = s.deliveries,
            compliance = s
                .compliance
                .map_or("—".to_owned(), |c| monthly::compliance_text(
                    c,
                    s.objective,
                    2
                )),
            margin = s.margin.map_or("—".to_owned(), |m| monthly::margin_text(
                m,
                s.target_margin.as_slice(),
                2
            )),
            budget = percent(s.budget_used),
            verdict = escape(&monthly::verdict(s)),
        );
        let _ = write!(
            details,
            "<h2>{}</h2><p class=\"muted\">{}<br>{}</p>",
            escape(&s.sla),
            escape(&s.description),
            escape(&monthly::notes(s, &report.month)),
        );
        if s.worst_days.is_empty() {
            details.push_str("<p>No day had enough deliveries to judge.</p>\n");
            continue;
        }
        details.push_str(
            "<table><tr><th>worst days</th><th class=\"num\">deliveries</th><th class=\"num\">compliance</th><th class=\"num\">margin</th></tr>\n",
        );
        for d in &s.worst_days {
            let _ = writeln!(
                details,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                d.date,
                d.deliveries,
                monthly::compliance_text(d.compliance, s.objective, 2),
                monthly::margin_text(d.margin, s.target_margin.as_slice(), 2),
            );
        }
        details.push_str("</table>\n");
    }
    let body = format!(
        "<nav class=\"noprint\"><a href=\"/\">status</a><a href=\"/report?month={prev}\">previous month</a><a href=\"/report?month={next}\">next month</a>\
         <a href=\"/api/v1/report?month={month}&amp;format=csv\">CSV</a><a href=\"/api/v1/report?month={month}&amp;format=markdown\">Markdown</a>\
         <a href=\"/api/v1/report?month={month}\">JSON</a></nav>\n<h1>SLA report for {month}</h1>\n\
         <p>Did we keep each promise, and by how much? Budget used is the share of the month's error budget spent \
         (over 100% breaks the promise).</p>\n\
         <table><tr><th>SLA</th><th>promise</th><th class=\"num\">objective</th><th class=\"num\">deliveries</th>\
         <th class=\"num\">compliance</th><th class=\"num\">margin</th><th class=\"num\">budget used</th><th>promise kept?</th></tr>\n\
         {rows}</table>\n{details}",
        month = escape(&report.month),
        prev = monthly::Month::parse(&report.month)
            .map_or(String::new(), |m| m.previous().to_string()),
        next = monthly::Month::parse(&report.month)
            .map_or(String::new(), |m| monthly::Month::of(m.end()).to_string()),
    );
    page(&format!("SLA report {}", report.month), now, None, &body)
}
