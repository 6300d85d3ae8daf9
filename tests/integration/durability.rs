//! Durable state through the real binary: restarts, torn logs, snapshot versions, reloads.

use std::time::{Duration, Instant};

use crate::push::CONFIG;
use crate::server::{Exporter, Home, Metrics};

/// A varied load: labels, goals, failures, ids, and deliveries hours old
/// (they reach the long windows through the late path).
fn traffic(round: usize) -> String {
    let mut out = String::new();
    for i in 0..400 {
        let ms = 5 + (i * 7919 + round * 31) % 330;
        let route = ["/a", "/b", "/c"][i % 3];
        out.push_str(&format!(
            "{{\"sla\":\"checkout\",\"duration\":\"{ms}ms\",\"labels\":{{\"route\":\"{route}\"}},\"id\":\"r{round}-{i}\"}}\n"
        ));
    }
    let now = jiff::Timestamp::now();
    for i in 0..60 {
        let priority = ["P1", "P2"][i % 2];
        let minutes = 10 + (i * 37) % 300;
        let at = now - jiff::SignedDuration::from_mins(((i * 13) % 600) as i64);
        if i % 17 == 0 {
            out.push_str(&format!(
                "{{\"sla\":\"tickets\",\"failed\":true,\"labels\":{{\"priority\":\"{priority}\"}},\"delivered_at\":\"{at}\"}}\n"
            ));
        } else {
            out.push_str(&format!(
                "{{\"sla\":\"tickets\",\"duration\":\"{minutes}m\",\"labels\":{{\"priority\":\"{priority}\"}},\"delivered_at\":\"{at}\"}}\n"
            ));
        }
    }
    out
}

fn push_ok(ex: &Exporter, body: &str) {
    let r = ex.push(body);
    assert_eq!(r.status, 200, "{}", r.body);
}

fn assert_same(before: &Metrics, after: &Metrics) {
    let (b, a) = (before.figures(), after.figures());
    assert!(b.len() > 100, "too few figures to compare: {}", b.len());
    for (x, y) in b.iter().zip(&a) {
        assert_eq!(x, y, "a figure changed across the restart");
    }
    assert_eq!(b.len(), a.len());
}

/// Polls until `cond` holds, failing after a generous deadline.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn graceful_restart_reproduces_every_figure() {
    let home = Home::new(CONFIG);
    let ex = home.start(&[]);
    push_ok(&ex, &traffic(1));
    let before = ex.metrics();
    assert_eq!(ex.stop(), Some(0), "SIGTERM exits 0");
    let snapshots = std::fs::read_dir(home.data())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".snap")
        })
        .count();
    assert_eq!(snapshots, 1, "a final snapshot is written on SIGTERM");
    let ex = home.start(&[]);
    let after = ex.metrics();
    assert_same(&before, &after);
    assert_eq!(
        after.value("amaze_recovery_replayed_records", &[]),
        Some(0.0)
    );
    // Ids survive too: a retry after the restart is a duplicate.
    let r = ex.push(&traffic(1));
    assert_eq!(r.json()["duplicates"].as_u64(), Some(400), "{}", r.body);
}

#[test]
fn kill_9_replays_the_log_to_the_same_figures() {
    let home = Home::new(CONFIG);
    let ex = home.start(&[]);
    push_ok(&ex, &traffic(1));
    push_ok(&ex, &traffic(2));
    let before = ex.metrics();
    ex.crash();
    let ex = home.start(&[]);
    assert_same(&before, &ex.metrics());
    assert_eq!(
        ex.metrics().value("amaze_recovery_replayed_records", &[]),
        Some(2.0)
    );
}

#[test]
fn snapshot_plus_log_tail_reproduces_every_figure() {
    let home = Home::new(CONFIG);
    let ex = home.start(&["--storage.snapshot-interval=100ms"]);
    push_ok(&ex, &traffic(1));
    wait_for("a snapshot", || {
        ex.metrics()
            .value("amaze_snapshot_last_success_timestamp_seconds", &[])
            .is_some_and(|t| t > 0.0)
    });
    push_ok(&ex, &traffic(2));
    push_ok(&ex, &traffic(3));
    let before = ex.metrics();
    ex.crash();
    let ex = home.start(&["--storage.snapshot-interval=1h"]);
    let after = ex.metrics();
    assert_same(&before, &after);
    let replayed = after.value("amaze_recovery_replayed_records", &[]).unwrap();
    assert!(
        replayed <= 2.0,
        "the snapshot covered the first batch: {replayed}"
    );
}

fn segments(home: &Home) -> Vec<std::path::PathBuf> {
    let mut s: Vec<_> = std::fs::read_dir(home.data().join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    s.sort();
    s
}

#[test]
fn torn_log_tail_is_cut_with_a_warning_and_the_rest_restored() {
    let home = Home::new(CONFIG);
    let ex = home.start(&[]);
    push_ok(&ex, &traffic(1));
    let before = ex.metrics();
    ex.crash();
    // A record header promising 100 bytes, then only 10: a write cut short.
    let last = segments(&home).pop().unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    let good = bytes.len();
    bytes.extend_from_slice(&100u32.to_le_bytes());
    bytes.extend_from_slice(&[7; 14]);
    std::fs::write(&last, &bytes).unwrap();
    let ex = home.start(&[]);
    assert_same(&before, &ex.metrics());
    assert_eq!(
        ex.metrics().value("amaze_recovery_cut_bytes", &[]),
        Some(18.0)
    );
    assert!(ex.log().contains("cut the log's tail"), "{}", ex.log());
    assert_eq!(std::fs::metadata(&last).unwrap().len() as usize, good);
    // Writing goes on after the cut, and survives another crash.
    push_ok(&ex, &traffic(2));
    let before = ex.metrics();
    ex.crash();
    assert_same(&before, &home.start(&[]).metrics());
}

#[test]
fn corrupt_last_record_is_dropped_and_the_exporter_starts() {
    let home = Home::new(CONFIG);
    let ex = home.start(&[]);
    push_ok(&ex, &traffic(1));
    let before = ex.metrics();
    push_ok(&ex, &traffic(2));
    ex.crash();
    let last = segments(&home).pop().unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x55;
    std::fs::write(&last, &bytes).unwrap();
    let ex = home.start(&[]);
    assert_same(&before, &ex.metrics());
    assert!(ex.log().contains("checksum mismatch"), "{}", ex.log());
}

#[test]
fn snapshot_of_an_unknown_version_is_reported_clearly() {
    let home = Home::new(CONFIG);
    let ex = home.start(&[]);
    push_ok(&ex, &traffic(1));
    assert_eq!(ex.stop(), Some(0));
    let snap = std::fs::read_dir(home.data())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "snap"))
        .unwrap();
    let mut bytes = std::fs::read(&snap).unwrap();
    bytes[8..12].copy_from_slice(&99u32.to_le_bytes());
    std::fs::write(&snap, &bytes).unwrap();
    let log = match home.try_start(&[]) {
        Ok(_) => panic!("started over a snapshot it cannot read"),
        Err(log) => log,
    };
    assert!(
        log.contains("format version 99")
            && log.contains(&format!(
                "this build reads versions 1 to {}",
                amaze_exporter::persist::SNAPSHOT_VERSION
            )),
        "{log}"
    );
}

#[test]
fn a_second_exporter_on_the_same_directory_is_refused() {
    let home = Home::new(CONFIG);
    let _first = home.start(&[]);
    let log = match home.try_start(&[]) {
        Ok(_) => panic!("two exporters share one state directory"),
        Err(log) => log,
    };
    assert!(log.contains("in use by another amaze-exporter"), "{log}");
}

const RELOADED: &str = r#"
version: 1
limits:
  max_body_bytes: 65536
slas:
  - name: checkout
    promise: 600ms
    objective: 99%
    target_margin: 50%
    min_deliveries: 10
    labels: [route]
  - name: signup
    promise: 2s
    objective: 90%
"#;

#[test]
fn reload_keeps_state_applies_new_promises_and_drops_removed_slas() {
    let home = Home::new(CONFIG);
    let ex = home.start(&[]);
    push_ok(&ex, &traffic(1));
    let before = ex.metrics();
    let checkout = [("sla", "checkout"), ("scope", "sla"), ("window", "5m")];
    let count = before.value("amaze_window_deliveries", &checkout);
    home.write_config(RELOADED);
    let r = ex.reload();
    assert_eq!(r.status, 200, "{}", r.body);
    let after = ex.metrics();
    assert_eq!(after.value("amaze_window_deliveries", &checkout), count);
    assert_eq!(
        after.value("amaze_sla_promise_seconds", &[("sla", "checkout")]),
        Some(0.6)
    );
    assert!(
        !after.0.contains("sla=\"tickets\""),
        "removed SLA still exported"
    );
    assert_eq!(
        after.value("amaze_config_last_reload_successful", &[]),
        Some(1.0)
    );
    // A delivery of 450ms is late under 300ms but within the new 600ms.
    push_ok(
        &ex,
        "{\"sla\":\"checkout\",\"duration\":\"450ms\",\"labels\":{\"route\":\"/a\"}}",
    );
    let late = [("sla", "checkout"), ("route", "/a"), ("result", "late")];
    assert_eq!(
        ex.metrics().value("amaze_deliveries_total", &late),
        before.value("amaze_deliveries_total", &late),
        "judged by the new promise"
    );
    assert_eq!(
        ex.push("{\"sla\":\"tickets\",\"duration\":\"1m\"}").status,
        404
    );
    assert_eq!(
        ex.push("{\"sla\":\"signup\",\"duration\":\"1s\"}").status,
        200
    );
    // The reloaded state is what a restart restores.
    let before = ex.metrics();
    assert_eq!(ex.stop(), Some(0));
    assert_same(&before, &home.start(&[]).metrics());
}

#[test]
fn invalid_reload_is_rejected_with_every_problem_and_changes_nothing() {
    let home = Home::new(CONFIG);
    let ex = home.start(&[]);
    push_ok(&ex, &traffic(1));
    let before = ex.metrics();
    home.write_config(
        "version: 1\nslas:\n  - name: checkout\n    promise: soon\n    objective: 150%\n",
    );
    let r = ex.reload();
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("slas[0].promise"), "{}", r.body);
    assert!(r.body.contains("slas[0].objective"), "{}", r.body);
    let after = ex.metrics();
    assert_eq!(
        after.value("amaze_config_last_reload_successful", &[]),
        Some(0.0)
    );
    assert_same(&before, &after);
    // The old config keeps running: its SLAs still take deliveries.
    assert_eq!(
        ex.push("{\"sla\":\"tickets\",\"duration\":\"1m\"}").status,
        200
    );
}

#[test]
fn sighup_reloads_the_config() {
    let home = Home::new(CONFIG);
    let ex = home.start(&[]);
    push_ok(&ex, &traffic(1));
    home.write_config(RELOADED);
    ex.signal("HUP");
    wait_for("the reloaded promise", || {
        ex.metrics()
            .value("amaze_sla_promise_seconds", &[("sla", "checkout")])
            == Some(0.6)
    });
    let m = ex.metrics();
    assert_eq!(
        m.value(
            "amaze_window_deliveries",
            &[("sla", "checkout"), ("scope", "sla"), ("window", "5m")]
        ),
        Some(400.0)
    );
}

#[test]
fn a_crash_right_after_a_reload_restores_the_reloaded_state() {
    let home = Home::new(CONFIG);
    let ex = home.start(&["--storage.snapshot-interval=1h"]);
    push_ok(&ex, &traffic(1));
    home.write_config(RELOADED);
    assert_eq!(ex.reload().status, 200);
    // The reload asks for a snapshot at once, so logged deliveries are not
    // judged again under the new promise by a replay.
    wait_for("the snapshot after the reload", || {
        ex.metrics()
            .value("amaze_snapshot_last_success_timestamp_seconds", &[])
            .is_some_and(|t| t > 0.0)
    });
    let before = ex.metrics();
    ex.crash();
    assert_same(&before, &home.start(&[]).metrics());
}
