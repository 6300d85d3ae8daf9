//! Input limits through the real binary: lines per request, open deliveries
//! per SLA, and bytes of writes in flight shed with 429 while reads go on.

use std::io::Write;
use std::net::TcpStream;

use crate::server::Home;

const CONFIG: &str = "version: 1
limits:
  max_lines_per_request: 3
  max_inflight_bytes: 1048576
  max_open_deliveries: 2
  max_body_bytes: 1048576
slas:
  - name: api
    promise: 300ms
    objective: 99%
";

#[test]
fn limits_refuse_with_clear_statuses_and_change_nothing() {
    let home = Home::new(CONFIG);
    let ex = home.start(&[]);
    let line = r#"{"sla":"api","duration":"10ms"}"#;
    let r = ex.push(&[line; 4].join("\n"));
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(
        r.body.contains("limits.max_lines_per_request is 3"),
        "{}",
        r.body
    );
    assert_eq!(ex.push(&[line; 3].join("\n")).status, 200);

    for id in ["a", "b"] {
        let body = format!(r#"{{"sla":"api","id":"{id}"}}"#);
        assert_eq!(
            ex.post(
                "/api/v1/deliveries/start",
                "application/json",
                body.as_bytes()
            )
            .status,
            200
        );
    }
    let r = ex.post(
        "/api/v1/deliveries/start",
        "application/json",
        br#"{"sla":"api","id":"c"}"#,
    );
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.body.contains("max_open_deliveries"), "{}", r.body);
    let m = ex.metrics();
    assert_eq!(
        m.value(
            "amaze_window_deliveries",
            &[("sla", "api"), ("scope", "sla"), ("window", "5m")]
        ),
        Some(3.0)
    );
    assert_eq!(m.sum("amaze_open_deliveries", &[("sla", "api")]), 2.0);
}

#[test]
fn writes_past_the_bytes_in_flight_are_shed_while_reads_go_on() {
    let home = Home::new(CONFIG);
    let ex = home.start(&[]);
    let addr = ex.addr().to_owned();
    // A client that has sent 900 KiB of a 1000 KiB body holds what it sent
    // of the 1 MiB budget until it is done (bytes are charged as received).
    let mut slow = TcpStream::connect(&addr).unwrap();
    write!(
        slow,
        "POST /api/v1/deliveries HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-ndjson\r\nContent-Length: 1024000\r\n\r\n"
    )
    .unwrap();
    slow.write_all(b"{\"sla\":\"api\",").unwrap();
    slow.write_all(&vec![b' '; 900 * 1024]).unwrap();
    slow.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));

    let big = format!("{}\n", r#"{"sla":"api","duration":"10ms"}"#).repeat(3);
    let padded = format!("{big}{}", " ".repeat(300 * 1024));
    let r = ex.push(&padded);
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.body.contains("max_inflight_bytes"), "{}", r.body);
    // Reads are never shed, and a small write still fits.
    assert_eq!(ex.get("/metrics").status, 200);
    assert_eq!(ex.push(&big).status, 200);
    // An open-delivery event that does not fit is shed under its own source.
    let padded_event = format!(
        "{}{}",
        r#"{"sla":"api","id":"T-9"}"#,
        " ".repeat(300 * 1024)
    );
    let r = ex.post(
        "/api/v1/deliveries/start",
        "application/json",
        padded_event.as_bytes(),
    );
    assert_eq!(r.status, 429, "{}", r.body);

    drop(slow);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(
        ex.push(&padded).status,
        200,
        "the budget is back once the slow client is gone"
    );
    let m = ex.metrics();
    assert_eq!(
        m.value(
            "amaze_ingest_rejected_total",
            &[("source", "http"), ("reason", "overloaded")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.value(
            "amaze_ingest_rejected_total",
            &[("source", "open"), ("reason", "overloaded")]
        ),
        Some(1.0),
        "the shedder counts under the route's source"
    );
    assert_eq!(
        m.value(
            "amaze_window_deliveries",
            &[("sla", "api"), ("scope", "sla"), ("window", "5m")]
        ),
        Some(6.0),
        "every 2xx recorded, nothing of the shed one"
    );
}

/// Issue 15, input 12: 100,000 bad lines get a short answer (the first 100
/// listed, the rest counted), and a 10 MB SLA name is not echoed whole.
#[test]
fn error_answers_are_bounded_however_bad_the_body() {
    let ex = crate::server::Exporter::start(
        "version: 1\nslas:\n  - name: api\n    promise: 300ms\n    objective: 99%\n",
    );
    let bad = "{\"sla\":\"api\",\"duration\":\"soon\"}\n".repeat(100_000);
    let r = ex.push(&bad);
    assert_eq!(r.status, 400);
    assert!(r.body.len() < 64 << 10, "{} bytes", r.body.len());
    let v = r.json();
    assert_eq!(v["errors"].as_array().map(Vec::len), Some(100));
    assert_eq!(v["more"], 99_900);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .ends_with("(the first 100 are listed, and 99900 more)"),
        "{}",
        v["error"]
    );
    let name = "n".repeat(10 << 20);
    let r = ex.push(&format!("{{\"sla\":\"{name}\",\"duration\":\"1s\"}}\n"));
    assert_eq!(r.status, 404, "{}", &r.body[..200.min(r.body.len())]);
    assert!(r.body.len() < 2048, "{} bytes", r.body.len());
    assert!(r.body.contains("bytes)"), "{}", r.body);
}

/// Found by review: a body larger than `max_body_bytes` by its declared
/// length is refused at once, without `100 Continue`, not after the read
/// timeout; and a budget below one body's limit is a config problem (such a
/// body got a 429 that could never succeed).
#[test]
fn oversized_bodies_are_refused_at_once_and_budgets_fit_a_body() {
    use std::io::Read;
    let ex = crate::server::Exporter::start(
        "version: 1\nslas:\n  - name: api\n    promise: 300ms\n    objective: 99%\n",
    );
    let addr = ex.addr().to_owned();
    let mut s = TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "POST /api/v1/deliveries HTTP/1.1\r\nHost: x\r\nContent-Length: 16777217\r\nExpect: 100-continue\r\n\r\n"
    )
    .unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .unwrap();
    let mut answer = vec![0u8; 4096];
    let n = s.read(&mut answer).expect("an answer within 3 s");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("limits.max_body_bytes"), "{answer}");

    let err = amaze_exporter::config::Config::parse(
        "version: 1\nlimits:\n  max_body_bytes: 2097152\n  max_inflight_bytes: 1048576\nslas:\n  - name: api\n    promise: 1s\n    objective: 99%\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(
            "limits.max_inflight_bytes (line 4): 1048576 is below max_body_bytes (2097152)"
        ),
        "{err}"
    );
}
