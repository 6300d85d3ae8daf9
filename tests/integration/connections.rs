//! Slow, idle and half-sent clients (issue 15, inputs 2-4): none can starve
//! the exporter's writes or its scrape, none lives forever, and none holds
//! up a shutdown.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::server::{Exporter, Home};

const TOKEN: &str = "pusher-0123456789abcdef";

fn config(token_file: &std::path::Path) -> String {
    format!(
        "version: 1
auth:
  tokens:
    - name: pusher
      token_file: {}
slas:
  - name: api
    promise: 300ms
    objective: 99%
    min_deliveries: 1
",
        token_file.display()
    )
}

/// A request head (and what of the body follows it), then nothing more.
fn half_sent(ex: &Exporter, head_and_body: &str) -> TcpStream {
    let mut s = TcpStream::connect(ex.addr()).unwrap();
    s.write_all(head_and_body.as_bytes()).unwrap();
    s.flush().unwrap();
    s
}

/// What the server sent before it closed `s`, waiting at most `within`;
/// `None` when it was still open then.
fn closed_within(s: &mut TcpStream, within: Duration) -> Option<String> {
    s.set_read_timeout(Some(within)).unwrap();
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => Some(String::from_utf8_lossy(&got).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
            Some(String::from_utf8_lossy(&got).into_owned())
        }
        Err(_) => None,
    }
}

fn push(ex: &Exporter, token: Option<&str>) -> u16 {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|b| vec![("authorization", b)])
        .unwrap_or_default();
    ex.post_with(
        "/api/v1/deliveries",
        "application/json",
        br#"{"sla":"api","duration":"100ms"}"#,
        &headers,
    )
    .status
}

fn closed(ex: &Exporter, reason: &str) -> f64 {
    ex.metrics()
        .value("amaze_http_connections_closed_total", &[("reason", reason)])
        .unwrap_or(0.0)
}

/// Issue 15, input 2: sixteen clients declare 16 MiB bodies and send none.
/// Bytes are charged as they arrive, so every other write goes through;
/// the sixteen are cut off at the read timeout with 408.
#[test]
fn declared_but_unsent_bodies_hold_no_budget_and_time_out() {
    let secrets = tempfile::tempdir().unwrap();
    let token_file = secrets.path().join("pusher.token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let home = Home::new(&config(&token_file));
    let ex = home.start(&["--web.read-timeout=2s"]);
    let head = format!(
        "POST /api/v1/deliveries HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/x-ndjson\r\nContent-Length: 16777216\r\n\r\n"
    );
    let mut stalled: Vec<TcpStream> = (0..16).map(|_| half_sent(&ex, &head)).collect();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(push(&ex, Some(TOKEN)), 200, "a valid write goes through");
    assert_eq!(
        push(&ex, None),
        401,
        "an unauthenticated one is refused as such"
    );
    for s in &mut stalled {
        let answer = closed_within(s, Duration::from_secs(10)).expect("cut off");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("--web.read-timeout (2s)"), "{answer}");
    }
    let m = ex.metrics();
    assert_eq!(
        m.value(
            "amaze_ingest_rejected_total",
            &[("source", "http"), ("reason", "body_timeout")]
        ),
        Some(16.0)
    );
    assert_eq!(
        m.value(
            "amaze_ingest_rejected_total",
            &[("source", "http"), ("reason", "overloaded")]
        ),
        Some(0.0)
    );
}

/// Issue 15, input 3: connections that send nothing, half a head, or idle
/// after a request are closed at their deadlines and counted.
#[test]
fn silent_half_sent_and_idle_connections_are_closed_at_their_deadlines() {
    let home =
        Home::new("version: 1\nslas:\n  - name: api\n    promise: 300ms\n    objective: 99%\n");
    let ex = home.start(&["--web.read-header-timeout=1s", "--web.idle-timeout=2s"]);
    let started = Instant::now();
    let mut silent = TcpStream::connect(ex.addr()).unwrap();
    let mut half_head = half_sent(&ex, "GET /metrics HTTP/1.1\r\nHost: x\r\n");
    let mut kept = half_sent(&ex, "GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n");
    // Bytes keep coming, but the head never ends.
    let mut trickle = half_sent(&ex, "GET /metrics HTTP/1.1\r\n");
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(400));
        let _ = trickle.write_all(b"X-A: b\r\n");
    }
    for s in [&mut silent, &mut half_head, &mut trickle] {
        assert!(closed_within(s, Duration::from_secs(5)).is_some());
    }
    let answer = closed_within(&mut kept, Duration::from_secs(5)).expect("idle one closed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "idle for its full 2s: {took:?}"
    );
    assert_eq!(closed(&ex, "header_timeout"), 3.0);
    assert_eq!(closed(&ex, "idle_timeout"), 1.0);
}

/// Whether this process may open `n` more files; raises its own limit (as
/// root) when it can. Prints why not otherwise.
fn may_open(n: u64) -> bool {
    let me = std::process::id().to_string();
    let _ = std::process::Command::new("prlimit")
        .args(["--pid", &me, &format!("--nofile={n}:")])
        .status();
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3)?.parse::<u64>().ok())
        .unwrap_or(0);
    if soft < n {
        assert!(
            std::env::var("AMAZE_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "opening {n} files is required (AMAZE_REQUIRE_TOOLS=1): run as root"
        );
        eprintln!("skipping: this process may open {soft} files, needs {n}");
        return false;
    }
    true
}

/// Issue 15, input 3: 1,100 idle connections against the usual service
/// limit of 1,024 open files. The longest idle ones make room for new
/// ones, so the scrape keeps answering.
#[test]
fn idle_connections_past_the_file_limit_leave_the_scrape_up() {
    if !may_open(4096) {
        return;
    }
    let home =
        Home::new("version: 1\nslas:\n  - name: api\n    promise: 300ms\n    objective: 99%\n");
    let ex = home.start_wrapped(&["prlimit", "--nofile=1024:1024", "--"], &[]);
    let addr = ex.addr();
    let idle: Vec<TcpStream> = (0..1100)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let asked = Instant::now();
    let m = ex.metrics();
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "scrape took {:?}",
        asked.elapsed()
    );
    let open = m.value("amaze_http_connections", &[]).unwrap();
    assert!(open <= 512.0, "{open} open");
    assert!(
        closed(&ex, "evicted") >= 588.0,
        "{}",
        closed(&ex, "evicted")
    );
    assert!(ex.log().contains("connection cap reached"), "{}", ex.log());
    drop(idle);
}

/// Issue 15, input 4: SIGTERM with a half-sent request and a half-sent body
/// ends within the grace period, exit 0, with the final snapshot written.
#[test]
fn sigterm_ends_within_the_grace_period_despite_half_sent_requests() {
    let home = Home::new(
        "version: 1\nslas:\n  - name: api\n    promise: 300ms\n    objective: 99%\n    min_deliveries: 1\n",
    );
    let ex = home.start(&[
        "--web.shutdown-timeout=1s",
        "--storage.snapshot-interval=1h",
    ]);
    assert_eq!(push(&ex, None), 200);
    let _head = half_sent(&ex, "POST /api/v1/deliveries HTTP/1.1\r\nHost: x\r\n");
    let _body = half_sent(
        &ex,
        "POST /api/v1/deliveries HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",
    );
    std::thread::sleep(Duration::from_millis(200));
    let log = {
        let asked = Instant::now();
        let code = ex.stop_and_log();
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "took {:?}",
            asked.elapsed()
        );
        assert_eq!(code.0, Some(0), "{}", code.1);
        code.1
    };
    assert!(log.contains("stopped"), "{log}");
    let snapshots = std::fs::read_dir(home.data())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("snapshot-"))
        })
        .count();
    assert!(snapshots >= 1, "the final snapshot is written");
    let again = home.start(&[]);
    assert_eq!(
        again
            .metrics()
            .sum("amaze_deliveries_total", &[("sla", "api")]),
        1.0
    );
}
