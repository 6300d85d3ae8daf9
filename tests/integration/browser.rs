//! The status page and the monthly report as a browser shows them: real
//! headless Chromium renders each at a fixed size; the rendered DOM holds
//! every SLA with its state and the trend pictures, the screenshot shows
//! the warning colour, and the report prints to PDF. Screenshots land in
//! `target/screenshots/`; with `AMAZE_UPDATE_DOCS=1` they also replace the
//! README's pictures in `docs/images/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::server::{Exporter, tool_available};

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 1100;

/// Three SLAs: one eroding in its last hour, one healthy, one breaching.
const CONFIG: &str = "version: 1
slas:
  - name: api_latency
    description: Public API requests answered within 300ms
    promise: 300ms
    objective: 99%
    target_margin: 50%
    alert_margin: 20%
    min_deliveries: 10
  - name: support_first_response
    description: Support tickets get a first human reply
    promise: 8h
    objective: 95%
    target_margin: 50%
    min_deliveries: 5
  - name: order_shipping
    description: Orders handed to the carrier
    promise: 2d
    objective: 98%
    target_margin: 25%
    min_deliveries: 5
";

fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).unwrap().to_string()
}

/// A deterministic spread in [0, 1).
fn spread(i: i64) -> f64 {
    ((i * 7919 + 13) % 1000) as f64 / 1000.0
}

/// 30 days of traffic: api fast until its last half hour; tickets quick;
/// shipping late on a few days. Old days go through backfill.
fn traffic(ex: &Exporter) {
    let now = jiff::Timestamp::now().as_millisecond();
    let hour = 3_600_000;
    let mut body = String::new();
    for i in 0..6000i64 {
        let at = now - 40 * 60_000 - i * 30 * 24 * hour / 6000;
        body.push_str(&format!(
            "{{\"sla\":\"api_latency\",\"duration\":\"{}ms\",\"delivered_at\":\"{}\"}}\n",
            40 + (spread(i) * 110.0) as i64,
            rfc3339(at)
        ));
    }
    for i in 0..400i64 {
        body.push_str(&format!(
            "{{\"sla\":\"api_latency\",\"duration\":\"{}ms\",\"delivered_at\":\"{}\"}}\n",
            200 + (spread(i) * 70.0) as i64,
            rfc3339(now - i * 4_500)
        ));
    }
    for i in 0..900i64 {
        let at = now - i * 30 * 24 * hour / 900;
        body.push_str(&format!(
            "{{\"sla\":\"support_first_response\",\"duration\":\"{}m\",\"delivered_at\":\"{}\"}}\n",
            20 + (spread(i) * 160.0) as i64,
            rfc3339(at)
        ));
        let late = (i / 30) % 9 == 4;
        body.push_str(&format!(
            "{{\"sla\":\"order_shipping\",\"duration\":\"{}h\",\"delivered_at\":\"{}\"}}\n",
            if late {
                50 + (spread(i) * 20.0) as i64
            } else {
                6 + (spread(i) * 30.0) as i64
            },
            rfc3339(at)
        ));
    }
    let r = ex.post("/api/v1/backfill", "application/x-ndjson", body.as_bytes());
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Headless Chromium with the flags a closed machine needs (no background
/// networking, no sandbox as root, a fresh profile).
fn chromium(profile: &Path, args: &[String]) -> std::process::Output {
    let mut c = Command::new("chromium");
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .arg(format!("--window-size={WIDTH},{HEIGHT}"))
    .args(args);
    let child = c.output().expect("run chromium");
    assert!(
        child.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&child.stderr)
    );
    child
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The pixels of a PNG: (width, height, RGB bytes).
fn pixels(path: &Path) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("chromium wrote {other:?}"),
    };
    let rgb = buf
        .chunks_exact(channels)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    (info.width, info.height, rgb)
}

/// Pixels within a few levels of `rgb`.
fn count(pixels: &[u8], rgb: [u8; 3]) -> usize {
    pixels
        .chunks_exact(3)
        .filter(|p| (0..3).all(|i| p[i].abs_diff(rgb[i]) <= 6))
        .count()
}

fn publish(shot: &Path, name: &str) {
    if std::env::var("AMAZE_UPDATE_DOCS").as_deref() == Ok("1") {
        let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/images");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::copy(shot, docs.join(name)).unwrap();
    }
}

#[test]
fn chromium_renders_the_status_page_and_the_report() {
    if !tool_available("chromium") {
        return;
    }
    let ex = Exporter::start(CONFIG);
    traffic(&ex);
    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://{}/", ex.addr());

    // The DOM as Chromium built it: every SLA, its state, its pictures.
    let dom =
        String::from_utf8(chromium(profile.path(), &["--dump-dom".into(), url.clone()]).stdout)
            .unwrap();
    for (sla, state) in [
        ("api_latency", "warning"),
        ("support_first_response", "amazing"),
        ("order_shipping", "breaching"),
    ] {
        let marker = format!("data-sla=\"{sla}\" data-state=\"{state}\"");
        assert!(
            dom.contains(&marker),
            "no {marker} in the rendered page:\n{dom}"
        );
    }
    assert!(
        dom.matches("<svg class=\"trend\"").count() >= 6,
        "two trends per SLA"
    );
    assert!(dom.matches("<polyline").count() >= 3, "trend lines drawn");
    assert!(dom.contains("Warning: the last hour's margin is"), "{dom}");

    // The screenshot at a fixed size shows the warning and breach colours.
    let shots = screenshots();
    let status = shots.join("status.png");
    chromium(
        profile.path(),
        &[format!("--screenshot={}", status.display()), url],
    );
    let (w, h, shown) = pixels(&status);
    assert_eq!((w, h), (WIDTH, HEIGHT));
    assert!(
        count(&shown, [0xe0, 0x6c, 0x00]) > 500,
        "the warning orange is on screen"
    );
    assert!(
        count(&shown, [0xc6, 0x28, 0x28]) > 300,
        "the breach red is on screen"
    );
    assert!(
        count(&shown, [0x1a, 0x7f, 0x37]) > 300,
        "the amazing green is on screen"
    );
    publish(&status, "status.png");

    // An SLA's page: its windows, trends, the advisor and a what-if.
    let sla_url = format!(
        "http://{}/slas/api_latency?promise=250ms&objective=99%25",
        ex.addr()
    );
    let dom =
        String::from_utf8(chromium(profile.path(), &["--dump-dom".into(), sla_url.clone()]).stdout)
            .unwrap();
    for text in [
        "What could we promise?",
        "Had the promise been 250ms for 99% of deliveries",
        "<form method=\"get\"",
    ] {
        assert!(dom.contains(text), "no {text} on the SLA page:\n{dom}");
    }
    let sla = shots.join("sla.png");
    chromium(
        profile.path(),
        &[format!("--screenshot={}", sla.display()), sla_url],
    );
    assert_eq!(pixels(&sla).0, WIDTH);
    publish(&sla, "sla.png");

    // The report of the month holding most of the 30 days (this one from
    // the 15th, else the last): rendered, screenshot, printed.
    let today = jiff::Zoned::now()
        .with_time_zone(jiff::tz::TimeZone::UTC)
        .date();
    let day = if today.day() >= 15 {
        today
    } else {
        today.first_of_month().yesterday().unwrap()
    };
    let month = day.strftime("%Y-%m").to_string();
    let report_url = format!("http://{}/report?month={month}", ex.addr());
    let dom = String::from_utf8(
        chromium(profile.path(), &["--dump-dom".into(), report_url.clone()]).stdout,
    )
    .unwrap();
    for sla in ["api_latency", "support_first_response", "order_shipping"] {
        assert!(
            dom.contains(&format!("<tr data-sla=\"{sla}\">")),
            "{sla} in the report:\n{dom}"
        );
    }
    assert!(
        dom.contains("broken, missed by"),
        "order_shipping broke its promise:\n{dom}"
    );
    let report = shots.join("report.png");
    chromium(
        profile.path(),
        &[
            format!("--screenshot={}", report.display()),
            report_url.clone(),
        ],
    );
    assert_eq!(pixels(&report).0, WIDTH);
    publish(&report, "report.png");
    let pdf = shots.join("report.pdf");
    chromium(
        profile.path(),
        &[
            "--no-pdf-header-footer".into(),
            format!("--print-to-pdf={}", pdf.display()),
            report_url,
        ],
    );
    let printed = std::fs::read(&pdf).unwrap();
    assert!(
        printed.starts_with(b"%PDF") && printed.len() > 5_000,
        "a printable report"
    );
}
