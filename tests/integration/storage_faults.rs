//! Storage faults injected with strace (issue 15): fdatasync, fsync and
//! rename fail as a failing disk makes them. After each, `kill -9` and a
//! restart: every acknowledged delivery is counted exactly once, and the
//! live figures are the ones a restart rebuilds.

use std::time::Duration;

use crate::server::{Exporter, Home, tool_available};

const CONFIG: &str = r#"
version: 1
slas:
  - name: strict
    promise: 1s
    objective: 99%
    min_deliveries: 1
    durability: sync
  - name: relaxed
    promise: 1s
    objective: 99%
    min_deliveries: 1
    durability: async
"#;

fn push(ex: &Exporter, sla: &str, ms: u32) -> (u16, String) {
    let r = ex.push(&format!("{{\"sla\":\"{sla}\",\"duration\":\"{ms}ms\"}}\n"));
    (r.status, r.body)
}

fn accepted(ex: &Exporter, sla: &str, ms: u32) {
    let (status, body) = push(ex, sla, ms);
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"accepted":1,"duplicates":0}"#),
        "a new delivery to {sla} is accepted once:\n{}",
        ex.log()
    );
}

fn total(ex: &Exporter, sla: &str) -> f64 {
    ex.metrics().sum("amaze_deliveries_total", &[("sla", sla)])
}

/// Kills the exporter, restarts it untraced on the same state, and checks
/// the restarted figures are the live ones.
fn crash_and_compare(home: &Home, ex: Exporter) -> Exporter {
    let live = ex.metrics().figures();
    ex.crash();
    let again = home.start(&[]);
    assert_eq!(again.metrics().figures(), live, "restarted figures differ");
    again
}

/// Issue 15, input 1: the first fdatasync fails; the records it left in
/// doubt (an async delivery already answered, and the sync one waiting)
/// are written again to a new segment and synced there.
#[test]
fn a_failed_fdatasync_loses_no_acknowledged_delivery() {
    if !tool_available("strace") {
        return;
    }
    let home = Home::new(CONFIG);
    let ex = home.start(&["--storage.snapshot-interval=1h"]);
    let _faults = ex.inject(&["-e", "inject=fdatasync:error=EIO:when=1"]);
    accepted(&ex, "relaxed", 100);
    accepted(&ex, "strict", 100);
    for ms in 0..20 {
        accepted(&ex, "relaxed", 200 + ms);
    }
    assert_eq!(total(&ex, "relaxed"), 21.0);
    assert_eq!(total(&ex, "strict"), 1.0);
    let m = ex.metrics();
    assert_eq!(
        m.value("amaze_storage_errors_total", &[("operation", "sync")]),
        Some(1.0)
    );
    assert_eq!(m.value("amaze_storage_writable", &[]), Some(1.0));
    assert!(
        ex.log().contains("written again to a new segment"),
        "{}",
        ex.log()
    );
    let again = crash_and_compare(&home, ex);
    assert_eq!(total(&again, "relaxed"), 21.0);
    assert_eq!(total(&again, "strict"), 1.0);
}

/// The disk keeps failing: the sync delivery is refused (and never comes
/// back at replay), new writes get 503 while the acknowledged async one
/// waits in memory, and all is written once the disk takes it.
#[test]
fn a_disk_that_keeps_failing_refuses_new_writes_and_keeps_acknowledged_ones() {
    if !tool_available("strace") {
        return;
    }
    let home = Home::new(CONFIG);
    // fdatasync 1 (the strict push), 2 (its tail written again) and 3 (the
    // next push's attempt to write it again) fail; the retry a second
    // later succeeds.
    let ex = home.start(&["--storage.snapshot-interval=1h"]);
    let _faults = ex.inject(&["-e", "inject=fdatasync:error=EIO:when=1..3"]);
    accepted(&ex, "relaxed", 100);
    let (status, body) = push(&ex, "strict", 100);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("Input/output error"), "{body}");
    let (status, body) = push(&ex, "relaxed", 150);
    assert_eq!(status, 503, "nothing new while the log is in doubt: {body}");
    assert_eq!(ex.metrics().value("amaze_storage_writable", &[]), Some(0.0));
    let mut waited = Duration::ZERO;
    while ex.metrics().value("amaze_storage_writable", &[]) != Some(1.0) {
        assert!(
            waited < Duration::from_secs(10),
            "never recovered:\n{}",
            ex.log()
        );
        std::thread::sleep(Duration::from_millis(50));
        waited += Duration::from_millis(50);
    }
    accepted(&ex, "relaxed", 200);
    accepted(&ex, "strict", 200);
    let m = ex.metrics();
    // Each failure counted once: the strict push's sync (and its rewrite),
    // the next push's rewrite; the rewrite that worked is no failure.
    assert_eq!(
        m.value("amaze_storage_errors_total", &[("operation", "sync")]),
        Some(1.0)
    );
    assert_eq!(
        m.value("amaze_storage_errors_total", &[("operation", "append")]),
        Some(1.0)
    );
    assert_eq!(total(&ex, "relaxed"), 2.0);
    assert_eq!(total(&ex, "strict"), 1.0);
    let again = crash_and_compare(&home, ex);
    assert_eq!(total(&again, "relaxed"), 2.0);
    assert_eq!(total(&again, "strict"), 1.0);
}

/// Snapshots whose fsync or rename fails leave the last good snapshot and
/// the log in place: nothing acknowledged is lost.
#[test]
fn failed_snapshot_fsync_and_rename_lose_nothing() {
    if !tool_available("strace") {
        return;
    }
    for fault in [
        "inject=rename,renameat,renameat2:error=EIO",
        "inject=fsync:error=EIO",
    ] {
        let home = Home::new(CONFIG);
        let ex = home.start(&["--storage.snapshot-interval=1s"]);
        // The log's segment is open (and its directory synced) before the
        // faults begin; from then on only snapshots fsync or rename.
        accepted(&ex, "strict", 99);
        let faults = ex.inject(&["-e", fault]);
        for ms in 0..10 {
            accepted(&ex, "strict", 100 + ms);
            accepted(&ex, "relaxed", 100 + ms);
        }
        let failed = || {
            ex.metrics()
                .value("amaze_storage_errors_total", &[("operation", "snapshot")])
                .unwrap_or(0.0)
        };
        let mut waited = Duration::ZERO;
        while failed() < 1.0 {
            assert!(
                waited < Duration::from_secs(10),
                "{fault}: no snapshot failed:\n{}",
                ex.log()
            );
            std::thread::sleep(Duration::from_millis(100));
            waited += Duration::from_millis(100);
        }
        accepted(&ex, "relaxed", 300);
        drop(faults);
        let again = crash_and_compare(&home, ex);
        assert_eq!(total(&again, "relaxed"), 11.0, "{fault}");
        assert_eq!(total(&again, "strict"), 11.0, "{fault}");
    }
}

/// Found by review: a reload whose snapshot failed was applied, and after
/// `kill -9` the restart judged deliveries recorded before it by the new
/// promise. Now the state before a reload is snapshotted first; a reload
/// whose snapshot fails changes nothing (503), and one that succeeds
/// survives a crash with every figure as it was live.
#[test]
fn a_reload_is_applied_only_once_the_state_before_it_is_snapshotted() {
    if !tool_available("strace") {
        return;
    }
    let home = Home::new(CONFIG);
    let ex = home.start(&["--storage.snapshot-interval=1h"]);
    // Within the promise of 1s; late against the 800ms one reloaded below.
    for _ in 0..5 {
        accepted(&ex, "strict", 900);
    }
    let within = |ex: &Exporter| {
        ex.metrics().sum(
            "amaze_deliveries_total",
            &[("sla", "strict"), ("result", "within")],
        )
    };
    let promise = |ex: &Exporter| {
        ex.metrics()
            .value("amaze_sla_promise_seconds", &[("sla", "strict")])
    };
    assert_eq!(within(&ex), 5.0);
    home.write_config(&CONFIG.replacen("promise: 1s", "promise: 800ms", 1));
    {
        let _faults = ex.inject(&["-e", "inject=rename,renameat,renameat2:error=EIO"]);
        let r = ex.reload();
        assert_eq!(r.status, 503, "{}", r.body);
        assert!(
            r.body.contains("previous config keeps running"),
            "{}",
            r.body
        );
        assert_eq!(
            ex.metrics()
                .value("amaze_config_last_reload_successful", &[]),
            Some(0.0)
        );
        assert_eq!(promise(&ex), Some(1.0), "nothing changed");
    }
    let r = ex.reload();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(promise(&ex), Some(0.8));
    assert_eq!(within(&ex), 5.0, "recorded deliveries keep their verdict");
    let again = crash_and_compare(&home, ex);
    assert_eq!(within(&again), 5.0);
}
