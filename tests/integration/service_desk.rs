//! Service-desk clocks through the real binary: ticket lifecycles on business
//! hours, pauses, at-risk states, the open list, idempotency, and restarts.

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};
use serde_json::Value;

use crate::server::{Exporter, Home};

const CONFIG: &str = r#"
version: 1
calendars:
  - name: berlin_office
    timezone: Europe/Berlin
    hours:
      mon-fri: "09:00-17:00"
slas:
  - name: tickets
    promise: 8h
    objective: 90%
    alert_margin: 25%
    min_deliveries: 1
    calendar: berlin_office
    labels: [priority]
    goals:
      - match: {priority: P1}
        promise: 4h
  - name: chat
    promise: 8h
    objective: 90%
    alert_margin: 25%
    min_deliveries: 1
  - name: contract
    promise: 1h
    objective: 90%
    min_deliveries: 1
    window: calendar_month
    calendar: berlin_office
"#;

/// The Friday 7 to 13 days before today, in Berlin: a whole past week.
fn past_friday() -> Date {
    let today = Zoned::now().with_time_zone(TimeZone::get("Europe/Berlin").unwrap());
    let mut d = today.date() - 7.days();
    while d.weekday() != Weekday::Friday {
        d -= 1.day();
    }
    d
}

fn berlin(date: Date, hour: i8, minute: i8) -> String {
    date.at(hour, minute, 0, 0)
        .in_tz("Europe/Berlin")
        .unwrap()
        .timestamp()
        .to_string()
}

fn ago(hours: i64) -> String {
    (Timestamp::now() - hours.hours()).to_string()
}

fn event(ex: &Exporter, kind: &str, body: Value) -> (u16, Value) {
    let r = ex.post(
        &format!("/api/v1/deliveries/{kind}"),
        "application/json",
        body.to_string().as_bytes(),
    );
    let json = serde_json::from_str(&r.body).unwrap_or(Value::Null);
    (r.status, json)
}

fn ok(ex: &Exporter, kind: &str, body: Value) -> Value {
    let (status, json) = event(ex, kind, body.clone());
    assert_eq!(status, 200, "{kind} {body}: {json}");
    json
}

fn open(ex: &Exporter, query: &str) -> Vec<Value> {
    let r = ex.get(&format!("/api/v1/open{query}"));
    assert_eq!(r.status, 200, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    v["open"].as_array().unwrap().clone()
}

fn ids(items: &[Value]) -> Vec<&str> {
    items.iter().map(|i| i["id"].as_str().unwrap()).collect()
}

fn deliveries(ex: &Exporter, sla: &str, priority: &str, result: &str) -> f64 {
    ex.metrics()
        .value(
            "amaze_deliveries_total",
            &[("sla", sla), ("priority", priority), ("result", result)],
        )
        .unwrap_or(0.0)
}

#[test]
fn a_ticket_lifecycle_counts_business_hours_only() {
    let home = Home::new(CONFIG);
    let ex = home.start(&[]);
    let fri = past_friday();
    let mon = fri + 3.days();
    let t1 = serde_json::json!({"sla": "tickets", "id": "T-1"});
    let with = |base: &Value, at: String| {
        let mut v = base.clone();
        v["at"] = Value::String(at);
        v
    };
    // Opened Friday 15:00, waiting on the customer from 16:00 until Monday
    // 09:30, answered Monday 11:00: 1h + 1.5h of business time.
    let mut start = with(&t1, berlin(fri, 15, 0));
    start["labels"] = serde_json::json!({"priority": "P2"});
    assert_eq!(ok(&ex, "start", start.clone())["result"], "started");
    assert_eq!(
        ok(&ex, "pause", with(&t1, berlin(fri, 16, 0)))["result"],
        "paused"
    );
    assert_eq!(
        ok(&ex, "resume", with(&t1, berlin(mon, 9, 30)))["result"],
        "resumed"
    );
    let finished = ok(&ex, "finish", with(&t1, berlin(mon, 11, 0)));
    assert_eq!(finished["result"], "finished");
    assert_eq!(finished["seconds"], 9000.0);
    assert_eq!(finished["within_promise"], true);

    // P1 promises 4h: opened Friday 10:00, answered Monday 10:00 is 7h + 1h.
    let t2 = serde_json::json!({"sla": "tickets", "id": "T-2"});
    let mut start2 = with(&t2, berlin(fri, 10, 0));
    start2["labels"] = serde_json::json!({"priority": "P1"});
    ok(&ex, "start", start2);
    let late = ok(&ex, "finish", with(&t2, berlin(mon, 10, 0)));
    assert_eq!(late["seconds"], 8.0 * 3600.0);
    assert_eq!(late["within_promise"], false);

    // A start/finish pair pushed whole runs on the same calendar: Friday
    // 16:00 to Monday 10:00 is 2h.
    let pair = format!(
        r#"{{"sla":"tickets","labels":{{"priority":"P3"}},"started_at":"{}","delivered_at":"{}"}}"#,
        berlin(fri, 16, 0),
        berlin(mon, 10, 0)
    );
    assert_eq!(ex.push(&pair).status, 200);

    let m = ex.metrics();
    let sum = |p: &str| {
        m.value(
            "amaze_delivery_duration_seconds_sum",
            &[("sla", "tickets"), ("priority", p)],
        )
    };
    assert_eq!(sum("P2"), Some(9000.0));
    assert_eq!(sum("P1"), Some(28800.0));
    assert_eq!(sum("P3"), Some(7200.0));
    assert_eq!(deliveries(&ex, "tickets", "P2", "within"), 1.0);
    assert_eq!(deliveries(&ex, "tickets", "P1", "late"), 1.0);
    assert_eq!(
        m.value("amaze_open_overdue_total", &[("sla", "tickets")]),
        Some(1.0),
        "T-2 went past its 4h promise before it was answered"
    );

    // Opened Monday 16:00 and never answered: a week of business days later
    // it is overdue, with its due time in the past.
    let mut start3 = serde_json::json!({"sla": "tickets", "id": "T-3", "at": berlin(mon, 16, 0)});
    start3["labels"] = serde_json::json!({"priority": "P2"});
    ok(&ex, "start", start3);
    let items = open(&ex, "?sla=tickets");
    assert_eq!(ids(&items), ["T-3"]);
    let t3 = &items[0];
    assert_eq!(t3["state"], "overdue");
    assert_eq!(t3["labels"]["priority"], "P2");
    assert!(
        t3["elapsed_seconds"].as_f64().unwrap() >= 4.0 * 8.0 * 3600.0,
        "{t3}"
    );
    assert!(t3["remaining_seconds"].as_f64().unwrap() < 0.0);
    // Due at Tuesday 15:00: 1h on Monday and 7h on Tuesday.
    assert_eq!(t3["due_at"], berlin(mon + 1.day(), 16, 0));
}

#[test]
fn open_items_are_on_track_at_risk_or_overdue_and_listed_soonest_due_first() {
    let home = Home::new(CONFIG);
    let ex = home.start(&[]);
    // Round the clock, 8h promise, at risk past 6h.
    for (id, hours) in [("C-1", 1), ("C-2", 7), ("C-3", 9)] {
        ok(
            &ex,
            "start",
            serde_json::json!({"sla": "chat", "id": id, "at": ago(hours)}),
        );
    }
    let m = ex.metrics();
    for state in ["on_track", "at_risk", "overdue"] {
        assert_eq!(
            m.value(
                "amaze_open_deliveries",
                &[("sla", "chat"), ("state", state)]
            ),
            Some(1.0),
            "{state}"
        );
    }
    let oldest = m
        .value("amaze_open_oldest_elapsed_ratio", &[("sla", "chat")])
        .unwrap();
    assert!((oldest - 9.0 / 8.0).abs() < 0.01, "{oldest}");

    let all = open(&ex, "");
    assert_eq!(ids(&all), ["C-3", "C-2", "C-1"]);
    let at_risk = open(&ex, "?sla=chat&state=at_risk");
    assert_eq!(ids(&at_risk), ["C-2"]);
    let c2 = &at_risk[0];
    let remaining = c2["remaining_seconds"].as_f64().unwrap();
    assert!((remaining - 3600.0).abs() < 60.0, "{c2}");
    let due: Timestamp = c2["due_at"].as_str().unwrap().parse().unwrap();
    let in_seconds = due.as_second() - Timestamp::now().as_second();
    assert!((in_seconds - 3600).abs() < 60, "{c2}");
    assert_eq!(ex.get("/api/v1/open?state=late").status, 400);
    assert_eq!(ex.get("/api/v1/open?sla=nope").status, 404);

    let slas: Value = serde_json::from_str(&ex.get("/api/v1/slas").body).unwrap();
    let chat = slas["slas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "chat")
        .unwrap();
    assert_eq!(chat["open"]["at_risk"], 1);
    assert_eq!(chat["open"]["overdue"], 1);
    assert_eq!(chat["promise_seconds"], 28800.0);
    assert_eq!(chat["compliance_window"], "30d");
    assert_eq!(chat["windows"].as_array().unwrap().len(), 7);

    let landing = ex.get("/").body;
    assert!(
        landing.contains("<a href=\"/api/v1/open?sla=chat\">3 open</a>")
            && landing.contains("1 at risk, 1 overdue"),
        "{landing}"
    );

    // A paused item has no due time and its clock stands still.
    ok(
        &ex,
        "pause",
        serde_json::json!({"sla": "chat", "id": "C-1"}),
    );
    let c1 = open(&ex, "?sla=chat&state=on_track");
    assert_eq!(c1[0]["paused"], true);
    assert_eq!(c1[0]["due_at"], Value::Null);
}

#[test]
fn repeats_change_nothing_and_impossible_events_are_refused() {
    let home = Home::new(CONFIG);
    let ex = home.start(&[]);
    let start = serde_json::json!({"sla": "chat", "id": "A", "at": ago(2)});
    ok(&ex, "start", start.clone());
    assert_eq!(ok(&ex, "start", start)["result"], "unchanged");

    let refused = |kind: &str, body: Value, status: u16, says: &str| {
        let (got, json) = event(&ex, kind, body.clone());
        assert_eq!(got, status, "{kind} {body}: {json}");
        let error =
            json["error"].as_str().unwrap_or_default().to_owned() + &json["errors"].to_string();
        assert!(error.contains(says), "{kind} {body}: {json}");
    };
    refused(
        "resume",
        serde_json::json!({"sla": "chat", "id": "A"}),
        409,
        "not paused",
    );
    refused(
        "finish",
        serde_json::json!({"sla": "chat", "id": "B"}),
        404,
        "start it first",
    );
    refused(
        "pause",
        serde_json::json!({"sla": "chat", "id": "A", "at": ago(3)}),
        409,
        "before the delivery's last event",
    );
    refused(
        "start",
        serde_json::json!({"sla": "nope", "id": "A"}),
        404,
        "unknown SLA",
    );
    refused(
        "pause",
        serde_json::json!({"sla": "chat", "id": "A", "labels": {"x": "y"}}),
        400,
        "start only",
    );
    refused(
        "pause",
        serde_json::json!({"sla": "chat", "id": "A", "at": "yesterday"}),
        400,
        "RFC 3339",
    );
    refused(
        "finish",
        serde_json::json!({"sla": "chat", "id": "A", "at": ago(-2)}),
        400,
        "in the future",
    );
    assert_eq!(open(&ex, "").len(), 1, "nothing refused changed anything");

    let finished = ok(&ex, "finish", serde_json::json!({"sla": "chat", "id": "A"}));
    assert_eq!(finished["result"], "finished");
    assert_eq!(
        ok(&ex, "finish", serde_json::json!({"sla": "chat", "id": "A"}))["result"],
        "unchanged"
    );
    refused(
        "pause",
        serde_json::json!({"sla": "chat", "id": "A"}),
        409,
        "already finished",
    );
    let m = ex.metrics();
    let total = m.sum("amaze_deliveries_total", &[("sla", "chat")]);
    assert_eq!(total, 1.0, "the repeated finish counted once");

    // The batch form: every line applies or is refused on its own.
    let batch = format!(
        "{}\n{}\n",
        serde_json::json!({"event": "start", "sla": "chat", "id": "D"}),
        serde_json::json!({"event": "resume", "sla": "chat", "id": "D"})
    );
    let r = ex.post(
        "/api/v1/deliveries/events",
        "application/x-ndjson",
        batch.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["results"][0]["result"], "started");
    assert_eq!(v["results"][1]["status"], 409);
}

#[test]
fn calendar_month_figures_start_at_the_month_start_in_the_calendar_zone() {
    let home = Home::new(CONFIG);
    let ex = home.start(&[]);
    let now = Zoned::now().with_time_zone(TimeZone::get("Europe/Berlin").unwrap());
    let month_start = now
        .date()
        .first_of_month()
        .at(0, 0, 0, 0)
        .in_tz("Europe/Berlin")
        .unwrap();
    let before = (month_start.timestamp() - 1.hour()).to_string();
    let body = format!(
        "{}\n{}\n",
        serde_json::json!({"sla": "contract", "duration": "10m", "delivered_at": before}),
        serde_json::json!({"sla": "contract", "duration": "2h"})
    );
    let r = ex.push(&body);
    assert_eq!(r.status, 200, "{}", r.body);
    let m = ex.metrics();
    let window = |w: &str, name: &str| {
        m.value(
            name,
            &[("sla", "contract"), ("scope", "sla"), ("window", w)],
        )
    };
    assert_eq!(window("31d", "amaze_window_deliveries"), Some(2.0));
    assert_eq!(
        window("calendar_month", "amaze_window_deliveries"),
        Some(1.0)
    );
    assert_eq!(
        window("calendar_month", "amaze_window_bad_deliveries"),
        Some(1.0)
    );
    // The month is the compliance window: the error budget is the month's.
    let budget = window("calendar_month", "amaze_error_budget_remaining_ratio").unwrap();
    assert!(
        (budget + 9.0).abs() < 1e-9,
        "1 bad of 1 against a 10% allowance: {budget}"
    );
    assert_eq!(window("31d", "amaze_error_budget_remaining_ratio"), None);
    let slas: Value = serde_json::from_str(&ex.get("/api/v1/slas").body).unwrap();
    let contract = &slas["slas"][2];
    assert_eq!(contract["name"], "contract");
    assert_eq!(contract["calendar"], "berlin_office");
    assert_eq!(contract["compliance_window"], "calendar_month");
    let month = contract["windows"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(month["window"], "calendar_month");
    assert_eq!(month["deliveries"], 1);
    assert_eq!(month["status"], "breaching");
}

#[test]
fn open_items_survive_restarts_and_crashes() {
    let home = Home::new(CONFIG);
    let ex = home.start(&[]);
    ok(
        &ex,
        "start",
        serde_json::json!({"sla": "chat", "id": "K-1", "at": ago(2)}),
    );
    ok(
        &ex,
        "start",
        serde_json::json!({"sla": "chat", "id": "K-2", "at": ago(1)}),
    );
    ok(
        &ex,
        "pause",
        serde_json::json!({"sla": "chat", "id": "K-2"}),
    );
    let before = open(&ex, "");
    assert_eq!(ex.stop(), Some(0));

    let ex = home.start(&[]);
    let after = open(&ex, "");
    assert_eq!(ids(&after), ids(&before));
    assert_eq!(after[1]["paused"], true);
    assert_eq!(after[1]["elapsed_seconds"], before[1]["elapsed_seconds"]);
    ok(
        &ex,
        "finish",
        serde_json::json!({"sla": "chat", "id": "K-1"}),
    );
    ex.crash();

    let ex = home.start(&[]);
    assert_eq!(ids(&open(&ex, "")), ["K-2"]);
    assert_eq!(
        ok(
            &ex,
            "finish",
            serde_json::json!({"sla": "chat", "id": "K-1"})
        )["result"],
        "unchanged",
        "the finish before the crash was durable"
    );
}
