//! Pages for people: the status page at `/`, each SLA's page with the
//! promise advisor, and the printable monthly report. Server-rendered HTML
//! with inline SVG and CSS: no script, nothing fetched from elsewhere.

pub mod report;
pub mod sla;
pub mod status;
pub mod svg;

use crate::window::Millis;

/// The one-line glossary every page carries.
const GLOSSARY: &str = "<b>Margin</b>: how far delivery beats the promise for the objective's share of deliveries \
(1 − objective quantile ÷ promise): 100% is instant, 0% is exactly on the promise, negative breaks it. \
<b>Compliance</b>: share delivered within the promise. <b>Error budget</b>: the late deliveries the objective allows; \
<b>burn rate</b> 1 spends it exactly over the window.";

const STYLE: &str = r#"
body { font: 15px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 72em; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; margin: 0 0 .2em; } h2 { font-size: 1.15em; margin: 0; }
.asof { color: #555; margin: 0 0 1em; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(24em, 1fr)); gap: 1em; }
.card { border: 1px solid #ccc; border-left-width: 8px; border-radius: 4px; padding: .8em 1em; break-inside: avoid; }
.card.amazing { border-left-color: #1a7f37; } .card.meeting { border-left-color: #e0b400; }
.card.warning { border-left-color: #e06c00; } .card.breaching { border-left-color: #c62828; } .card.quiet { border-left-color: #999; }
.state { display: inline-block; font-weight: 600; padding: .05em .5em; border-radius: 3px; margin: .3em 0; }
.state.amazing { background: #1a7f37; color: #fff; } .state.meeting { background: #f2cc60; }
.state.warning { background: #e06c00; color: #fff; } .state.breaching { background: #c62828; color: #fff; } .state.quiet { background: #ddd; }
.muted, small { color: #555; } .legend { font-size: .85em; color: #444; }
.risk { color: #c62828; font-weight: 600; }
table { border-collapse: collapse; width: 100%; margin: .6em 0; } th, td { text-align: left; padding: .3em .5em; border-bottom: 1px solid #ddd; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code { background: #f4f4f4; padding: .1em .3em; }
.glossary { font-size: .85em; color: #444; border-top: 1px solid #ddd; margin-top: 1.5em; padding-top: .5em; }
nav a { margin-right: 1em; }
svg { max-width: 100%; height: auto; }
form label { margin-right: 1em; } input { width: 7em; }
@media print { nav, form, .noprint { display: none; } body { margin: 0; max-width: none; } .card { border-color: #888; } }
"#;

/// A whole page: `refresh` seconds between automatic reloads, if any.
fn page(title: &str, now: Millis, refresh: Option<u32>, body: &str) -> String {
    let refresh = refresh.map_or(String::new(), |s| {
        format!("<meta http-equiv=\"refresh\" content=\"{s}\">\n")
    });
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n{refresh}<style>{STYLE}</style></head><body>\n\
         {body}\n<p class=\"glossary\">{GLOSSARY}</p>\n<p class=\"muted\">As of {asof}.</p>\n</body></html>\n",
        title = escape(title),
        asof = as_of(now),
    )
}

/// `2026-11-30 14:02:11 UTC`.
fn as_of(now: Millis) -> String {
    jiff::Timestamp::from_millisecond(now)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

/// `12.3%`; an em dash for `None`.
fn percent(x: Option<f64>) -> String {
    x.map_or("—".to_owned(), |x| format!("{:.1}%", x * 100.0))
}

/// Minimal HTML escaping for text from the config and the query.
pub fn escape(s: &str) -> String {
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

/// Percent-encodes a query value (an SLA name).
fn query_value(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn markup_in_config_text_is_escaped() {
        assert_eq!(
            super::escape("<b>\"a&b\"</b>"),
            "&lt;b&gt;&quot;a&amp;b&quot;&lt;/b&gt;"
        );
        assert_eq!(super::query_value("a b&c"), "a+b%26c");
    }
}
