//! The landing page at `/`: every SLA's promise, margin and status at a glance.

use std::fmt::Write;

use crate::margin::{Figures, Status};
use crate::recorder::Recorder;
use crate::window::Millis;

/// Renders the page as of `now`; `telemetry_path` is where `/metrics` lives.
pub fn render(recorder: &Recorder, telemetry_path: &str, now: Millis) -> String {
    let catalog = recorder.catalog();
    let reports = recorder.report(now);
    let mut rows = String::new();
    for (sla, report) in catalog.slas.iter().zip(&reports) {
        let window = &report.windows[report.compliance];
        let hour = report.windows.iter().position(|w| w.label == "1h");
        let figures = |i: usize| &report.aggregate[i];
        let (margin, status) = cells(figures(report.compliance));
        let (hour_margin, _) = hour.map_or((String::new(), None), |h| cells(figures(h)));
        let status_cell = match status {
            Some(s) => format!("<td class=\"{0}\">{0}</td>", s.as_str()),
            None => "<td class=\"quiet\">too few deliveries</td>".to_owned(),
        };
        let [on_track, at_risk, overdue] = report.open.by_state;
        let open = if on_track + at_risk + overdue == 0 {
            String::new()
        } else {
            format!(
                "<a href=\"/api/v1/open?sla={sla}\">{total}</a>{risk}",
                sla = escape(&sla.name),
                total = on_track + at_risk + overdue,
                risk = if at_risk + overdue > 0 {
                    format!("<br><span class=\"risk\">{at_risk} at risk, {overdue} overdue</span>")
                } else {
                    String::new()
                }
            )
        };
        let _ = writeln!(
            rows,
            "<tr><td><strong>{name}</strong><br><small>{description}</small></td>\
             <td>{promise}</td><td>{objective}</td><td>{target}</td>\
             <td>{window} margin<br><b>{margin}</b></td><td>{hour_margin}</td>{status_cell}\
             <td>{deliveries}</td><td>{open}</td></tr>",
            name = escape(&sla.name),
            description = escape(&sla.description),
            promise = humantime::format_duration(sla.promise),
            objective = sla.objective.percent(),
            target = sla.target_margin.map_or("none".to_owned(), |t| t.percent()),
            window = escape(&window.label),
            deliveries = figures(report.compliance).deliveries,
        );
    }
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>amaze-exporter</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font: 15px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 64em; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ text-align: left; padding: .5em .7em; border-bottom: 1px solid #ddd; vertical-align: top; }}
th {{ background: #f4f4f4; }}
td.amazing {{ color: #fff; background: #1a7f37; }}
td.meeting {{ color: #222; background: #f2cc60; }}
td.breaching {{ color: #fff; background: #c62828; }}
td.quiet {{ color: #777; }}
.risk {{ color: #c62828; }}
code {{ background: #f4f4f4; padding: .1em .3em; }}
</style></head><body>
<h1>amaze-exporter</h1>
<p>How far delivery beats each promise. The margin is 1 - (objective quantile / promise):
1 is instant, 0 is exactly at the SLA, negative is a breach.</p>
<table>
<tr><th>SLA</th><th>promise</th><th>objective</th><th>target margin</th><th>compliance window</th><th>last hour</th><th>status</th><th>deliveries</th><th>open</th></tr>
{rows}</table>
<p><a href="{metrics}">{metrics}</a>: every figure for Prometheus ·
<a href="/api/v1/slas">/api/v1/slas</a>: the same as JSON ·
<a href="/api/v1/open">/api/v1/open</a>: open deliveries, soonest due first ·
<a href="/-/healthy">/-/healthy</a> · <a href="/-/ready">/-/ready</a></p>
<p>Push deliveries: <code>POST /api/v1/deliveries</code> with JSON or NDJSON, for example
<code>{{"sla":"{example}","duration":"183ms"}}</code>. Reload the config: <code>POST /-/reload</code>.</p>
</body></html>
"#,
        metrics = escape(telemetry_path),
        example = catalog
            .slas
            .first()
            .map_or(String::new(), |s| escape(&s.name)),
    )
}

fn cells(f: &Figures) -> (String, Option<Status>) {
    match &f.assessment {
        Some(a) => (percent(a.margin), Some(a.status)),
        None => (String::new(), None),
    }
}

fn percent(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// Minimal HTML escaping for text from the config.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn markup_in_config_text_is_escaped() {
        assert_eq!(
            super::escape("<b>\"a&b\"</b>"),
            "&lt;b&gt;&quot;a&amp;b&quot;&lt;/b&gt;"
        );
    }
}
