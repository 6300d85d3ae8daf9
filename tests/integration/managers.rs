//! The managers' view against the real binary: the status page's states,
//! history across restarts, the monthly report from the CLI and the API,
//! the promise advisor, and `import` (a million rows, idempotent, all or
//! nothing, with a progress bar in a pseudo-terminal).

use std::io::Write;
use std::process::{Command, Stdio};

use crate::server::{Exporter, Home, tool_available};

const CONFIG: &str = "version: 1
slas:
  - name: api
    description: API answers
    promise: 300ms
    objective: 99%
    target_margin: 50%
    alert_margin: 20%
    min_deliveries: 10
  - name: desk
    description: Tickets answered
    promise: 4h
    objective: 90%
    target_margin: 25%
    min_deliveries: 5
    labels: [priority]
";

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).unwrap().to_string()
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_amaze-exporter"))
}

/// api: 2,000 fast deliveries (50 ms) over the last 20 days, then 200 in
/// the last half hour at 270 ms: the hour's margin is 10%, under the 20%
/// alert margin, while the 30 days stay amazing. desk: healthy tickets.
fn eroding(ex: &Exporter) {
    let now = now_ms();
    let mut body = String::new();
    for i in 0..2000i64 {
        let at = now - 2 * 3_600_000 - i * 20 * 86_400_000 / 2000;
        body.push_str(&format!(
            "{{\"sla\":\"api\",\"duration\":\"50ms\",\"delivered_at\":\"{}\"}}\n",
            rfc3339(at)
        ));
    }
    for i in 0..200i64 {
        body.push_str(&format!(
            "{{\"sla\":\"api\",\"duration\":\"270ms\",\"delivered_at\":\"{}\"}}\n",
            rfc3339(now - i * 9_000)
        ));
    }
    for i in 0..60i64 {
        body.push_str(&format!(
            "{{\"sla\":\"desk\",\"duration\":\"{}m\",\"labels\":{{\"priority\":\"P2\"}},\"delivered_at\":\"{}\"}}\n",
            20 + i,
            rfc3339(now - i * 3_600_000)
        ));
    }
    let r = ex.push(&body);
    assert_eq!(r.status, 200, "{}", r.body);
}

/// The section of the page for `sla`.
fn card<'a>(page: &'a str, sla: &str) -> &'a str {
    let start = page
        .find(&format!("data-sla=\"{sla}\""))
        .unwrap_or_else(|| panic!("no card for {sla}:\n{page}"));
    let end = page[start..]
        .find("</section>")
        .map_or(page.len(), |e| start + e);
    &page[start..end]
}

#[test]
fn the_status_page_warns_as_amaze_margin_low_does() {
    let ex = Exporter::start(CONFIG);
    eroding(&ex);
    let page = ex.get("/");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let api = card(&page.body, "api");
    assert!(api.contains("data-state=\"warning\""), "{api}");
    // 1 - 270/300 = 10%, within the sketch's 1% of 270 ms.
    let figure = |after: &str| -> f64 {
        let rest = api
            .split(after)
            .nth(1)
            .unwrap_or_else(|| panic!("no `{after}`: {api}"));
        rest.split('%').next().unwrap().parse().unwrap()
    };
    assert!(
        (figure("Warning: the last hour's margin is ") - 10.0).abs() <= 0.91,
        "{api}"
    );
    assert!(api.contains("below the 20% alert margin."), "{api}");
    // The 30 days: 2,200 deliveries, the 99th percentile among the slow
    // ones (rank 2,178 > 2,000 fast): 270 ms again, meeting.
    assert!((figure("● 30d ") - 10.0).abs() <= 0.91, "{api}");
    assert!((figure("○ last hour ") - 10.0).abs() <= 0.91, "{api}");
    assert!(api.contains("<svg class=\"trend\""), "{api}");
    assert!(api.contains("<polyline"), "a line over the days: {api}");
    assert!(api.contains("<svg class=\"budget\""), "{api}");
    assert!(api.contains("100.0% left"), "no late delivery: {api}");
    let desk = card(&page.body, "desk");
    assert!(desk.contains("data-state=\"amazing\""), "{desk}");
    for text in [
        "As of ",
        "<b>Margin</b>: how far delivery beats the promise",
        "content=\"30\"",
    ] {
        assert!(page.body.contains(text), "missing {text}");
    }
    assert!(!page.body.contains("<script"), "no script on the page");
    assert!(
        !page.body.contains("http://") && !page.body.contains("https://"),
        "nothing from elsewhere"
    );

    // The same condition as the shipped alert: the hour's margin is below
    // the alert margin and not negative.
    let m = ex.metrics();
    let hour = m
        .value(
            "amaze_margin_ratio",
            &[("sla", "api"), ("window", "1h"), ("scope", "sla")],
        )
        .unwrap();
    let alert = m
        .value("amaze_sla_alert_margin_ratio", &[("sla", "api")])
        .unwrap();
    assert!((0.0..alert).contains(&hour), "{hour} vs {alert}");
}

#[test]
fn the_sla_page_and_the_advisor_answer_what_if() {
    let ex = Exporter::start(CONFIG);
    eroding(&ex);
    // Advice from the hour: q = 270 ms, T' = 0.27 / (1 - 0.5) = 540 ms.
    let a = ex.get("/api/v1/advice?sla=api").json();
    let hour = a["windows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["window"] == "1h")
        .unwrap();
    let q = hour["objective_quantile_seconds"].as_f64().unwrap();
    let t = hour["advised_promise_seconds"].as_f64().unwrap();
    assert!(
        (q - 0.27).abs() <= 0.0027 && (t - 0.54).abs() <= 0.0054,
        "{hour}"
    );
    assert_eq!(a["relative_accuracy"], 0.01);
    // What if 250 ms for 90%? The hour's 200 at 270 ms are late: 0% within.
    let w = ex
        .get("/api/v1/advice?sla=api&promise=250ms&objective=90%25")
        .json();
    let windows = w["what_if"]["windows"].as_array().unwrap();
    let hour = windows.iter().find(|x| x["window"] == "1h").unwrap();
    assert_eq!(
        (hour["compliance"].as_f64(), hour["status"].as_str()),
        (Some(0.0), Some("breaching"))
    );
    let month = windows.iter().find(|x| x["window"] == "30d").unwrap();
    // 2,000 of 2,200 within: 90.9% keeps 90%; the 90th percentile is 50 ms,
    // a margin of 1 - 50/250 = 80%, past the 50% target.
    // (serde_json reads floats to within an ulp)
    assert!((month["compliance"].as_f64().unwrap() - 2000.0 / 2200.0).abs() < 1e-12);
    assert_eq!(month["status"], "amazing", "{month}");
    assert!(
        (month["margin"].as_f64().unwrap() - 0.8).abs() <= 0.002,
        "{month}"
    );
    // Bad questions get a clear answer and change nothing.
    for (query, status, says) in [
        ("sla=nope", 404, "unknown SLA `nope`"),
        ("sla=api&objective=1", 400, "objective `1` is not a share"),
        (
            "sla=api&promise=soon",
            400,
            "promise `soon` is not a positive duration",
        ),
        ("sla=api&promise=0s", 400, "promise `0s`"),
        ("sla=api&colour=red", 400, "unknown parameter `colour`"),
        ("promise=1s", 400, "parameter `sla` is required"),
    ] {
        let r = ex.get(&format!("/api/v1/advice?{query}"));
        assert_eq!(r.status, status, "{query}: {}", r.body);
        assert!(
            r.json()["error"].as_str().unwrap().contains(says),
            "{query}: {}",
            r.body
        );
    }
    let page = ex.get("/slas/api?promise=250ms&objective=90%25");
    assert_eq!(page.status, 200);
    for text in [
        "What could we promise?",
        "Had the promise been 250ms for 90% of deliveries",
        "<form method=\"get\" action=\"/slas/api\">",
    ] {
        assert!(page.body.contains(text), "missing {text}:\n{}", page.body);
    }
    assert_eq!(ex.get("/slas/nope").status, 404);
    // A what-if that cannot be read is said beside the form, still a page.
    let bad = ex.get("/slas/api?objective=99");
    assert_eq!(bad.status, 400);
    assert!(
        bad.body
            .contains("objective `99` is not a share between 0 and 1"),
        "{}",
        bad.body
    );
    assert!(
        bad.body
            .contains("<form method=\"get\" action=\"/slas/api\">")
    );
    // Empty form fields mean "not asked".
    assert_eq!(ex.get("/slas/api?promise=&objective=").status, 200);
}

/// `n` push-format lines of `desk`, one a day going back `days` from `now`
/// (several a day), with ids; durations spread 10 minutes to 5 hours.
/// A four-nines SLA with 2 late deliveries in 10,001: compliance 99.980%
/// is below the objective, and no page or report rounds it to 100%; a
/// 99.999% objective reads as written.
#[test]
fn pages_never_round_compliance_across_its_objective() {
    let ex = Exporter::start(
        "version: 1\nslas:\n  - name: pct\n    promise: 1s\n    objective: 99.99%\n  - name: five\n    promise: 1s\n    objective: 99.999%\n",
    );
    let fast = "{\"sla\":\"pct\",\"duration\":\"100ms\"}\n".repeat(9_999);
    let slow = "{\"sla\":\"pct\",\"duration\":\"2s\"}\n".repeat(2);
    assert_eq!(ex.push(&(fast + &slow)).status, 200);
    let five = "{\"sla\":\"five\",\"duration\":\"100ms\"}\n".repeat(20);
    assert_eq!(ex.push(&five).status, 200);
    let status = ex.get("/").body;
    let card = card(&status, "pct");
    assert!(
        card.contains("Breaching: 99.980% of deliveries within the promise"),
        "{card}"
    );
    let page = ex.get("/slas/pct").body;
    assert!(page.contains("99.980%"), "{page}");
    assert!(!page.contains("100.0%"), "{page}");
    let five = ex.get("/slas/five").body;
    assert!(five.contains("99.999%"), "{five}");
    let month = jiff::Timestamp::now().strftime("%Y-%m").to_string();
    let md = ex
        .get(&format!("/api/v1/report?month={month}&format=markdown"))
        .body;
    assert!(md.contains("| 99.999% |"), "{md}");
    assert!(md.contains("| 99.99% |"), "{md}");
    assert!(md.contains("| 99.980% |"), "{md}");
    assert!(!md.contains("100.00%"), "{md}");
}

fn ticket_lines(now: i64, n: i64, days: i64) -> String {
    let mut out = String::new();
    for i in 0..n {
        let at = now - 3_600_000 - i * days * 86_400_000 / n;
        let minutes = 10 + (i * 7919) % 290;
        out.push_str(&format!(
            "{{\"sla\":\"desk\",\"id\":\"t{i}\",\"duration\":\"{minutes}m\",\"labels\":{{\"priority\":\"P{p}\"}},\"delivered_at\":\"{at}\"}}\n",
            p = 1 + i % 3,
            at = rfc3339(at),
        ));
    }
    out
}

/// Backfills NDJSON `text`, which must be accepted; the answer.
fn backfill(ex: &Exporter, text: &str) -> serde_json::Value {
    let r = ex.post("/api/v1/backfill", "application/x-ndjson", text.as_bytes());
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn report_json(ex: &Exporter, month: &str) -> serde_json::Value {
    let mut r = ex.get(&format!("/api/v1/report?month={month}")).json();
    r.as_object_mut().unwrap().remove("generated_at");
    r
}

fn last_month() -> String {
    let today = jiff::Zoned::now()
        .with_time_zone(jiff::tz::TimeZone::UTC)
        .date();
    let first = today.first_of_month().yesterday().unwrap();
    format!("{:04}-{:02}", first.year(), first.month())
}

#[test]
fn history_survives_restarts_and_crashes() {
    let home = Home::new(CONFIG);
    let ex = home.start(&[]);
    let now = now_ms();
    let answer = backfill(&ex, &ticket_lines(now, 3000, 120));
    assert_eq!(answer["accepted"], 3000);
    let older = answer["backfilled"].as_u64().unwrap();
    assert!(older > 2000, "most are older than the 30 days: {answer}");
    let month = last_month();
    let before = report_json(&ex, &month);
    let desk = &before["slas"][1];
    assert!(desk["deliveries"].as_u64().unwrap() > 600, "{desk}");
    assert_eq!(ex.stop(), Some(0));
    let ex = home.start(&[]);
    assert_eq!(report_json(&ex, &month), before, "after a clean restart");
    // A crash: the log replays the history too.
    let more = ticket_lines(now - 5 * 86_400_000, 500, 90).replace("\"id\":\"t", "\"id\":\"u");
    backfill(&ex, &more);
    let after_more = report_json(&ex, &month);
    ex.crash();
    let ex = home.start(&[]);
    assert_eq!(report_json(&ex, &month), after_more, "after kill -9");
    // The same backfill again counts nothing.
    let again = backfill(&ex, &more);
    assert_eq!(
        (again["accepted"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(500))
    );
    assert_eq!(report_json(&ex, &month), after_more);
    // Too old for the history: refused with the field and line.
    let old = format!(
        "{{\"sla\":\"desk\",\"duration\":\"1m\",\"labels\":{{\"priority\":\"P1\"}},\"delivered_at\":\"{}\"}}\n",
        rfc3339(now - 401 * 86_400_000)
    );
    let r = ex.post("/api/v1/backfill", "application/x-ndjson", old.as_bytes());
    assert_eq!(r.status, 400);
    let e = &r.json()["errors"][0];
    assert_eq!(
        (e["line"].as_u64(), e["field"].as_str()),
        (Some(1), Some("delivered_at"))
    );
    assert!(
        e["reason"]
            .as_str()
            .unwrap()
            .contains("400 days of history"),
        "{e}"
    );
    // Live pushes still refuse what the windows do not hold.
    let live = ex.push(&ticket_lines(now - 40 * 86_400_000, 1, 1));
    assert_eq!(live.status, 400, "{}", live.body);
}

#[test]
fn the_report_command_prints_what_the_api_serves() {
    let ex = Exporter::start(CONFIG);
    let now = now_ms();
    backfill(&ex, &ticket_lines(now, 2000, 90));
    let month = last_month();
    for format in ["markdown", "csv", "json"] {
        let out = bin()
            .args([
                "report",
                "--month",
                &month,
                "--format",
                format,
                "--target",
                &format!("http://{}", ex.addr()),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let printed = String::from_utf8(out.stdout).unwrap();
        let served = ex
            .get(&format!("/api/v1/report?month={month}&format={format}"))
            .body;
        // Equal but for the moment each was generated.
        let strip = |s: &str| {
            s.lines()
                .filter(|l| !l.contains("enerated"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(strip(&printed), strip(&served), "{format}");
    }
    let page = ex.get(&format!("/report?month={month}"));
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains(&format!("SLA report for {month}")),
        "{}",
        page.body
    );
    assert!(page.body.contains("data-sla=\"desk\""));
    // Bad months are refused, by the API and the command.
    let r = ex.get("/api/v1/report?month=2026-13");
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("not YYYY-MM"));
    assert_eq!(ex.get("/report?month=nov").status, 400);
    assert_eq!(
        ex.get("/api/v1/report?month=2026-11&format=pdf").status,
        400
    );
    let out = bin()
        .args(["report", "--month", "2026-1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "clap refuses the flag");
}

/// Writes `text` to a file in a temporary directory.
fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    path
}

fn deliveries(ex: &Exporter, sla: &str) -> f64 {
    ex.metrics()
        .value(
            "amaze_window_deliveries",
            &[("sla", sla), ("window", "30d"), ("scope", "sla")],
        )
        .unwrap_or(0.0)
}

#[test]
fn import_checks_everything_first_and_records_nothing_on_a_bad_row() {
    let ex = Exporter::start(CONFIG);
    let dir = tempfile::tempdir().unwrap();
    let now = now_ms();
    let t = |h: i64| {
        jiff::Timestamp::from_millisecond(now - h * 3_600_000)
            .unwrap()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string()
    };
    // A ticket export: created and first reply, the priority in `prio`.
    let csv = format!(
        "ticket,created,first_reply,prio,agent\n\
         T-1,{},{},P1,ann\n\
         T-2,{},{},P2,bob\n\
         T-3,{},,P3,cyd\n\
         T-4,{},{},P2,dan\n\
         T-5,{},{},P1,eve\n\
         T-6,yesterday,{},P1,fay\n",
        t(5),
        t(4),
        t(30),
        t(27),
        t(3),
        t(8),
        t(9),
        t(900 * 24),
        t(900 * 24 - 1),
        t(2),
    );
    let path = file(&dir, "tickets.csv", &csv);
    let flags = |extra: &[&str]| {
        let mut args = vec![
            "import".to_owned(),
            path.display().to_string(),
            "--sla=desk".into(),
            "--column=id=ticket".into(),
            "--column=started_at=created".into(),
            "--column=delivered_at=first_reply".into(),
            "--label=priority=prio".into(),
            format!("--target=http://{}", ex.addr()),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let out = bin().args(flags(&[])).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let name = path.display().to_string();
    for expected in [
        format!("{name}:4: delivered_at: required with started_at"),
        format!("{name}:5: delivered_at: is before started_at"),
        format!("{name}:6: delivered_at: is older than the 400 days of history"),
        format!("{name}:7: started_at (column created): `yesterday` is neither an RFC 3339"),
        "4 rows would be refused; nothing was imported".to_owned(),
    ] {
        assert!(stderr.contains(&expected), "missing {expected}:\n{stderr}");
    }
    assert_eq!(deliveries(&ex, "desk"), 0.0, "nothing half-applied");
    // Only the good rows: a dry run says what would happen, and records nothing.
    let good: String = csv.lines().take(3).map(|l| format!("{l}\n")).collect();
    let path_good = file(&dir, "good.csv", &good);
    let mut dry = flags(&["--dry-run"]);
    dry[1] = path_good.display().to_string();
    let out = bin().args(&dry).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "would import 2 of 2 rows; none would be refused\n"
    );
    assert_eq!(deliveries(&ex, "desk"), 0.0);
    let mut real = flags(&[]);
    real[1] = path_good.display().to_string();
    let out = bin().args(&real).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "imported 2 of 2 rows: 0 older than every window (history only), 0 duplicates\n"
    );
    assert_eq!(deliveries(&ex, "desk"), 2.0);
    let out = bin().args(&real).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "imported 0 of 2 rows: 0 older than every window (history only), 2 duplicates\n"
    );
    assert_eq!(
        deliveries(&ex, "desk"),
        2.0,
        "a re-import counts nothing twice"
    );
    // A dry run counts the duplicates it would meet: already recorded, or
    // repeated within the file (here 10,001 rows apart, across chunks).
    let out = bin().args(&dry).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "would import 0 of 2 rows, 2 of them duplicates; none would be refused\n"
    );
    let mut twice = good.clone();
    for i in 0..10_000 {
        twice.push_str(&format!("X-{i},{},{},P3,x\n", t(5), t(4)));
    }
    twice.push_str(&format!("X-7,{},{},P3,x\n", t(5), t(4)));
    twice.push_str(&format!("X-7,{},{},P3,x\n", t(5), t(4)));
    let path_twice = file(&dir, "twice.csv", &twice);
    dry[1] = path_twice.display().to_string();
    let out = bin().args(&dry).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "would import 10000 of 10004 rows, 4 of them duplicates; none would be refused\n"
    );
    // A column named twice, and a row past the size any delivery takes.
    let path_bad = file(&dir, "header.csv", "sla,duration,sla\ndesk,1s,desk\n");
    dry[1] = path_bad.display().to_string();
    let out = bin().args(&dry).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("column `sla` appears twice in the header row")
    );
    let huge = format!(
        "{{\"sla\":\"desk\",\"duration\":\"1s\",\"id\":\"{}\"}}\n",
        "x".repeat(2 << 20)
    );
    let path_huge = file(&dir, "huge.ndjson", &huge);
    let out = bin()
        .args([
            "import",
            &path_huge.display().to_string(),
            &format!("--target=http://{}", ex.addr()),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("huge.ndjson:1: the row is 2097190 bytes, over the 1048576"),
        "{said}"
    );
    // The backfill endpoint refuses a query it does not know, in JSON.
    let r = ex.post(
        "/api/v1/backfill?dry_run=yes",
        "application/x-ndjson",
        b"{}",
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "dry_run `yes` is not true or false");
    // Bad flags: exit 2 with the flag named.
    let out = bin()
        .args(flags(&["--column=durration=x"]))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--column: `durration` is not a delivery field")
    );
    // An unreachable exporter is a clear failure.
    let out = bin()
        .args(["import", &name, "--target=http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("http://127.0.0.1:1"));
}

#[test]
fn import_writes_a_state_directory_offline() {
    let home = Home::new(CONFIG);
    let dir = tempfile::tempdir().unwrap();
    let now = now_ms();
    let path = file(&dir, "year.ndjson", &ticket_lines(now, 5000, 365));
    let out = bin()
        .args(["import", &path.display().to_string()])
        .arg(format!("--storage.path={}", home.data().display()))
        .arg(format!("--config.file={}", home.config().display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("imported 5000 of 5000 rows"));
    // Offline reports read the same state.
    let month = last_month();
    let offline = bin()
        .args(["report", "--month", &month, "--format", "json"])
        .arg(format!("--storage.path={}", home.data().display()))
        .arg(format!("--config.file={}", home.config().display()))
        .output()
        .unwrap();
    assert!(
        offline.status.success(),
        "{}",
        String::from_utf8_lossy(&offline.stderr)
    );
    let mut offline: serde_json::Value = serde_json::from_slice(&offline.stdout).unwrap();
    offline.as_object_mut().unwrap().remove("generated_at");
    let ex = home.start(&[]);
    assert_eq!(report_json(&ex, &month), offline);
    assert!(offline["slas"][1]["deliveries"].as_u64().unwrap() > 300);
    // A directory in use is refused, not shared.
    let out = bin()
        .args(["import", &path.display().to_string()])
        .arg(format!("--storage.path={}", home.data().display()))
        .arg(format!("--config.file={}", home.config().display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open the state directory"));
}

/// A million rows imported with a progress bar (in a pseudo-terminal, as a
/// person sees it) give the figures of the same file pushed, and a second
/// import counts nothing twice.
#[test]
fn a_million_rows_import_like_a_push() {
    if !tool_available("script") {
        return;
    }
    const ROWS: i64 = 1_000_000;
    let config = CONFIG.replace(
        "min_deliveries: 10\n",
        "min_deliveries: 10\n    labels: [route]\n",
    );
    let imported = Exporter::start(&config);
    let pushed = Exporter::start(&config);
    let now = now_ms();
    let mut text = String::with_capacity(ROWS as usize * 110);
    for i in 0..ROWS {
        // Two days of deliveries, 20 to 419 ms, on 8 routes.
        let at = now - 60_000 - i * 2 * 86_400_000 / ROWS;
        text.push_str(&format!(
            "{{\"sla\":\"api\",\"id\":\"r{i}\",\"duration\":\"{}ms\",\"labels\":{{\"route\":\"/r{}\"}},\"delivered_at\":\"{}\"}}\n",
            20 + (i * 7919) % 400,
            i % 8,
            rfc3339(at)
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = file(&dir, "million.ndjson", &text);
    for chunk in text.lines().collect::<Vec<_>>().chunks(100_000) {
        let r = pushed.push(&(chunk.join("\n") + "\n"));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let command = format!(
        "{} import {} --target=http://{}",
        env!("CARGO_BIN_EXE_amaze-exporter"),
        path.display(),
        imported.addr()
    );
    let out = Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .env("COLUMNS", "120")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{tty}");
    for seen in [
        "checking [",
        "importing [",
        "rows/s",
        " left",
        "imported 1000000 of 1000000 rows",
    ] {
        assert!(
            tty.contains(seen),
            "no `{seen}` in what the terminal showed:\n{}",
            &tty[tty.len().saturating_sub(2000)..]
        );
    }
    let figures = |ex: &Exporter| {
        let mut v = ex.get("/api/v1/slas").json();
        for sla in v["slas"].as_array_mut().unwrap() {
            sla.as_object_mut().unwrap().remove("open");
        }
        v
    };
    assert_eq!(figures(&imported), figures(&pushed));
    assert_eq!(imported.metrics().figures(), pushed.metrics().figures());
    let again = bin()
        .args([
            "import",
            &path.display().to_string(),
            &format!("--target=http://{}", imported.addr()),
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        "imported 0 of 1000000 rows: 0 older than every window (history only), 1000000 duplicates\n"
    );
    assert_eq!(figures(&imported), figures(&pushed));
}

/// A reload that changes the promise: reports and advice say what judged
/// the deliveries, rather than putting old figures under the new promise.
#[test]
fn a_changed_promise_is_said_where_figures_were_judged_by_the_old_one() {
    let home = Home::new(CONFIG);
    let ex = home.start(&[]);
    let now = now_ms();
    backfill(&ex, &ticket_lines(now, 2000, 90));
    let month = last_month();
    let before = report_json(&ex, &month);
    assert!(
        before["slas"][1].get("judged_by_seconds").is_none(),
        "{before}"
    );
    home.write_config(&CONFIG.replace("promise: 4h", "promise: 2h"));
    assert_eq!(ex.reload().status, 200);
    let after = report_json(&ex, &month);
    let desk = &after["slas"][1];
    assert_eq!(desk["promise"], "2h");
    assert_eq!(desk["judged_by_seconds"], serde_json::json!([14400.0]));
    assert_eq!(
        desk["compliance"], before["slas"][1]["compliance"],
        "figures as judged"
    );
    let text = ex
        .get(&format!("/api/v1/report?month={month}&format=markdown"))
        .body;
    assert!(
        text.contains(
            "a reload changed the promise: these deliveries were judged against 4h (now 2h)"
        ),
        "{text}"
    );
    // The advisor gives seconds of the promise that judged each window, and
    // none where two did.
    let r = ex.push(&ticket_lines(now, 50, 1).replace("\"id\":\"t", "\"id\":\"new"));
    assert_eq!(r.status, 200, "{}", r.body);
    let a = ex.get("/api/v1/advice?sla=desk").json();
    let month_window = a["windows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["window"] == "30d")
        .unwrap();
    assert_eq!(
        month_window["judged_by_seconds"],
        serde_json::json!([7200.0, 14400.0]),
        "{month_window}"
    );
    assert!(
        month_window.get("advised_promise_seconds").is_none(),
        "{month_window}"
    );
    assert!(month_window["advised_scale"].as_f64().is_some());
    // A changed objective does not rewrite a month recorded under another.
    home.write_config(
        &CONFIG
            .replace("promise: 4h", "promise: 2h")
            .replace("objective: 90%", "objective: 99%"),
    );
    assert_eq!(ex.reload().status, 200);
    let after = report_json(&ex, &month);
    let desk = &after["slas"][1];
    assert_eq!(
        (desk["objective"].as_f64(), desk["objective_now"].as_f64()),
        (Some(0.9), Some(0.99))
    );
    assert_eq!(
        desk["kept"], before["slas"][1]["kept"],
        "the verdict stands"
    );
    let text = ex
        .get(&format!("/api/v1/report?month={month}&format=markdown"))
        .body;
    assert!(
        text.contains("judged by the objective in force then, 90% (now 99%)"),
        "{text}"
    );
    // A month before any history says so.
    let empty = report_json(&ex, "2020-01");
    assert_eq!(empty["slas"][1]["history_covers_month"], false);
    let text = ex.get("/api/v1/report?month=2020-01&format=markdown").body;
    assert!(text.contains("after this month: no figures"), "{text}");
}
