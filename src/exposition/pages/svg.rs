//! Small server-rendered SVG pictures: the margin scale, trend lines and
//! the budget bar. Plain shapes and text, readable in print and without
//! colour (every mark is also labelled).

use std::fmt::Write;

/// Width of every picture, in CSS pixels.
const WIDTH: f64 = 360.0;
/// Margins are drawn from -50% (a clear breach) to 100% (instant).
const LOW: f64 = -0.5;
const HIGH: f64 = 1.0;

fn x_of(margin: f64) -> f64 {
    let m = margin.clamp(LOW, HIGH);
    8.0 + (m - LOW) / (HIGH - LOW) * (WIDTH - 16.0)
}

/// The margin against the promise (0%) and the target margin, with the
/// alert margin marked: one dot per figure, such as the compliance window
/// and the last hour.
pub fn margin_scale(figures: &[(&str, Option<f64>)], target: Option<f64>, alert: f64) -> String {
    let mut s = format!(
        r#"<svg class="scale" role="img" viewBox="0 0 {WIDTH} 48" width="{WIDTH}" height="48"><title>margin scale</title>"#
    );
    let zero = x_of(0.0);
    let _ = write!(
        s,
        r##"<rect x="8" y="18" width="{w:.1}" height="10" fill="#f3c1c1"/><rect x="{zero:.1}" y="18" width="{g:.1}" height="10" fill="#f7e3a3"/>"##,
        w = zero - 8.0,
        g = WIDTH - 8.0 - zero,
    );
    if let Some(t) = target {
        let tx = x_of(t);
        let _ = write!(
            s,
            r##"<rect x="{tx:.1}" y="18" width="{w:.1}" height="10" fill="#bfe3c6"/><line x1="{tx:.1}" x2="{tx:.1}" y1="14" y2="32" stroke="#1a7f37" stroke-width="2"/><text x="{tx:.1}" y="11" text-anchor="middle" font-size="10">target {p}</text>"##,
            w = WIDTH - 8.0 - tx,
            p = pct(t),
        );
    }
    let ax = x_of(alert);
    let _ = write!(
        s,
        r##"<line x1="{ax:.1}" x2="{ax:.1}" y1="16" y2="30" stroke="#b35900" stroke-dasharray="2 2"/><line x1="{zero:.1}" x2="{zero:.1}" y1="14" y2="32" stroke="#c62828" stroke-width="2"/><text x="{px:.1}" y="44" text-anchor="end" font-size="10">promise</text><text x="{alx:.1}" y="44" font-size="10">alert {p}</text>"##,
        px = zero - 4.0,
        alx = ax + 4.0,
        p = pct(alert),
    );
    // Filled: the first figure (the compliance window); hollow: the others.
    // The page's legend says which is which.
    for (i, (label, value)) in figures.iter().enumerate() {
        let Some(m) = value else { continue };
        let (r, fill) = if i == 0 { (6.0, "#222") } else { (4.5, "#fff") };
        let _ = write!(
            s,
            r##"<circle cx="{x:.1}" cy="23" r="{r}" fill="{fill}" stroke="#222" stroke-width="1.5"><title>{label}: {p}</title></circle>"##,
            x = x_of(*m),
            p = pct(*m),
        );
    }
    s.push_str("</svg>");
    s
}

/// One point of a trend line: a margin, and whether it rests on fewer
/// deliveries than the SLA's `min_deliveries` (drawn hollow).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// The margin of the point's deliveries.
    pub margin: f64,
    /// Fewer deliveries than `min_deliveries`.
    pub few: bool,
}

/// A trend line of margins over evenly spaced points (`None`: nothing
/// delivered, drawn as a gap), with the promise and target lines.
pub fn trend(
    title: &str,
    points: &[Option<Point>],
    target: Option<f64>,
    (first, last): (&str, &str),
) -> String {
    const HEIGHT: f64 = 82.0;
    const PLOT: f64 = 70.0;
    let y_of = |m: f64| 6.0 + (HIGH - m.clamp(LOW, HIGH)) / (HIGH - LOW) * (PLOT - 12.0);
    let step = if points.len() > 1 {
        (WIDTH - 16.0) / (points.len() - 1) as f64
    } else {
        0.0
    };
    let mut s = format!(
        r#"<svg class="trend" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}"><title>{title}</title>"#
    );
    let zero = y_of(0.0);
    let _ = write!(
        s,
        r##"<rect x="8" y="{zero:.1}" width="{w:.1}" height="{h:.1}" fill="#fbe3e3"/><line x1="8" x2="{e:.1}" y1="{zero:.1}" y2="{zero:.1}" stroke="#c62828"/>"##,
        w = WIDTH - 16.0,
        h = PLOT - 6.0 - zero,
        e = WIDTH - 8.0,
    );
    if let Some(t) = target {
        let ty = y_of(t);
        let _ = write!(
            s,
            r##"<line x1="8" x2="{e:.1}" y1="{ty:.1}" y2="{ty:.1}" stroke="#1a7f37" stroke-dasharray="4 3"/>"##,
            e = WIDTH - 8.0,
        );
    }
    // One polyline per run of assessed points.
    let mut run: Vec<String> = Vec::new();
    let flush = |run: &mut Vec<String>, s: &mut String| {
        match run.len() {
            0 => {}
            1 => {
                let (x, y) = run[0].split_once(',').unwrap_or(("0", "0"));
                let _ = write!(s, r##"<circle cx="{x}" cy="{y}" r="2" fill="#222"/>"##);
            }
            _ => {
                let _ = write!(
                    s,
                    r##"<polyline fill="none" stroke="#222" stroke-width="1.8" points="{}"/>"##,
                    run.join(" ")
                );
            }
        }
        run.clear();
    };
    let mut few = String::new();
    for (i, p) in points.iter().enumerate() {
        match p {
            Some(p) => {
                let (x, y) = (8.0 + step * i as f64, y_of(p.margin));
                run.push(format!("{x:.1},{y:.1}"));
                if p.few {
                    let _ = write!(
                        few,
                        r##"<circle cx="{x:.1}" cy="{y:.1}" r="2.5" fill="#fff" stroke="#666"/>"##
                    );
                }
            }
            None => flush(&mut run, &mut s),
        }
    }
    flush(&mut run, &mut s);
    s.push_str(&few);
    let _ = write!(
        s,
        r##"<text x="8" y="{y}" font-size="9" fill="#555">{first}</text><text x="{e:.1}" y="{y}" font-size="9" fill="#555" text-anchor="end">{last}</text>"##,
        y = HEIGHT - 2.0,
        e = WIDTH - 8.0,
    );
    s.push_str("</svg>");
    s
}

/// Budget remaining as a bar: full is untouched, empty is spent; an
/// overspent budget is a red bar with its figure.
pub fn budget_bar(remaining: Option<f64>) -> String {
    let mut s = format!(
        r##"<svg class="budget" role="img" viewBox="0 0 {WIDTH} 22" width="{WIDTH}" height="22"><title>error budget remaining</title><rect x="0.5" y="2.5" width="{w}" height="16" fill="#fff" stroke="#888"/>"##,
        w = WIDTH - 1.0,
    );
    if let Some(r) = remaining {
        let (fill, share) = if r < 0.0 {
            ("#c62828", 1.0)
        } else if r < 0.25 {
            ("#e0a100", r)
        } else {
            ("#1a7f37", r.min(1.0))
        };
        let text = if r < 0.0 {
            format!("overspent: {:.1}x the budget used", 1.0 - r)
        } else {
            format!("{} left", pct(r))
        };
        let _ = write!(
            s,
            r##"<rect x="1" y="3" width="{w:.1}" height="15" fill="{fill}"/><text x="{tx}" y="15" font-size="11" fill="{tf}">{text}</text>"##,
            w = (WIDTH - 2.0) * share,
            tx = 6,
            tf = if (0.0..0.25).contains(&r) {
                "#222"
            } else {
                "#fff"
            },
        );
    }
    s.push_str("</svg>");
    s
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}
