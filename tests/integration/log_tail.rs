//! Log tailing through the real binary: rotation, truncation, resuming after restarts and crashes.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::conformance::{self, Source, wait_for};
use crate::server::{Exporter, Home};

fn config(dir: &Path, start_at: &str) -> String {
    format!(
        r#"
version: 1
slas:
  - name: web
    promise: 300ms
    objective: 99%
    min_deliveries: 1
    labels: [route]
sources:
  log_tail:
    - name: access
      paths: ["{}/app.log"]
      start_at: {start_at}
      regex: '^(?P<route>\S+) (?P<ms>\d+)ms$'
      sla: web
      duration_field: ms
      duration_unit: ms
      labels: {{route: route}}
      poll_interval: 20ms
"#,
        dir.display()
    )
}

fn append(path: &Path, lines: usize, route: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for i in 0..lines {
        writeln!(f, "{route} {}ms", 10 + i % 200).unwrap();
    }
}

fn counted(ex: &Exporter) -> f64 {
    ex.metrics()
        .value(
            "amaze_window_deliveries",
            &[("sla", "web"), ("scope", "sla"), ("window", "5m")],
        )
        .unwrap_or(0.0)
}

fn wait_counted(ex: &Exporter, n: f64) {
    wait_for(&format!("{n} deliveries"), || counted(ex) == n);
    // And no more arrive after a few more polls.
    std::thread::sleep(std::time::Duration::from_millis(150));
    assert_eq!(counted(ex), n);
}

struct Logs {
    dir: tempfile::TempDir,
}

impl Logs {
    fn new() -> Logs {
        Logs {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("app.log")
    }
}

#[test]
fn log_tail_meets_the_source_contract() {
    let logs = Logs::new();
    let home = Home::new(&config(logs.dir.path(), "beginning"));
    let ex = home.start(&[]);
    let path = logs.log();
    let bad = path.clone();
    conformance::check(
        ex,
        &Source {
            name: "log",
            sla: "web",
            feed_good: &move |_| {
                append(&path, 30, "/a");
                30
            },
            feed_bad: Some(&move |_| append(&bad, 1, "not a timing line:")),
        },
    );
}

#[test]
fn rename_rotation_loses_nothing_written_to_either_file() {
    let logs = Logs::new();
    let home = Home::new(&config(logs.dir.path(), "beginning"));
    let ex = home.start(&[]);
    let log = logs.log();
    let mut old = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    for i in 0..100 {
        writeln!(old, "/old {}ms", i).unwrap();
    }
    wait_counted(&ex, 100.0);
    // Rotate: rename, keep writing to the old handle a little, then a new file.
    std::fs::rename(&log, logs.dir.path().join("app.log.1")).unwrap();
    for i in 0..50 {
        writeln!(old, "/old {}ms", i).unwrap();
    }
    drop(old);
    append(&log, 70, "/new");
    wait_counted(&ex, 220.0);
}

#[test]
fn copytruncate_rotation_reads_the_new_content_from_the_start() {
    let logs = Logs::new();
    let home = Home::new(&config(logs.dir.path(), "beginning"));
    let ex = home.start(&[]);
    let log = logs.log();
    append(&log, 100, "/a");
    wait_counted(&ex, 100.0);
    std::fs::copy(&log, logs.dir.path().join("app.log.1")).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, 30, "/b");
    wait_counted(&ex, 130.0);
    assert!(ex.log().contains("truncated"), "{}", ex.log());
}

#[test]
fn restart_resumes_at_the_checkpoint_without_skipping_or_doubling() {
    let logs = Logs::new();
    let home = Home::new(&config(logs.dir.path(), "beginning"));
    let log = logs.log();
    let ex = home.start(&[]);
    append(&log, 100, "/a");
    wait_counted(&ex, 100.0);
    assert_eq!(ex.stop(), Some(0));
    // Written while the exporter was down.
    append(&log, 50, "/b");
    let ex = home.start(&[]);
    wait_counted(&ex, 150.0);
    // kill -9 right after lines are counted: the positions recorded with
    // them say where to resume, so nothing is read twice.
    append(&log, 40, "/c");
    wait_counted(&ex, 190.0);
    ex.crash();
    append(&log, 10, "/d");
    let ex = home.start(&[]);
    wait_counted(&ex, 200.0);
}

#[test]
fn crashes_while_reading_a_large_log_neither_skip_nor_double_a_line() {
    let logs = Logs::new();
    let home = Home::new(&config(logs.dir.path(), "beginning"));
    let lines = 300_000;
    append(&logs.log(), lines, "/a");
    // Snapshots every 100ms race the reading: a snapshot may hold a batch's
    // deliveries or its positions first, and either way must resume right.
    let flags = ["--storage.snapshot-interval=100ms"];
    let mut crashed_at = Vec::new();
    for fraction in [0.2, 0.5, 0.8] {
        let ex = home.start(&flags);
        let at = (lines as f64 * fraction).floor();
        wait_for(&format!("{at} deliveries"), || counted(&ex) >= at);
        ex.crash();
        crashed_at.push(at);
    }
    let ex = home.start(&flags);
    wait_counted(&ex, lines as f64);
    assert!(ex.log().contains("snapshot"), "{}", ex.log());
    eprintln!("crashed past {crashed_at:?} of {lines} lines; all counted once");
}

#[test]
fn start_at_end_skips_what_was_there_before_the_first_start() {
    let logs = Logs::new();
    append(&logs.log(), 100, "/old");
    let home = Home::new(&config(logs.dir.path(), "end"));
    let ex = home.start(&[]);
    std::thread::sleep(std::time::Duration::from_millis(200));
    append(&logs.log(), 7, "/new");
    wait_counted(&ex, 7.0);
}

/// Every route counted, by label: nothing recorded under a corrupt label.
fn routes(ex: &Exporter) -> Vec<(String, f64)> {
    let text = ex.metrics().0;
    let mut out: Vec<(String, f64)> = text
        .lines()
        .filter(|l| l.starts_with("amaze_deliveries_total{") && l.contains("result=\"within\""))
        .filter_map(|l| {
            let route = l.split("route=\"").nth(1)?.split('"').next()?.to_owned();
            let n = l.rsplit_once(' ')?.1.parse().ok()?;
            Some((route, n))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Issue 14, input 1: the writer keeps appending to the renamed file for
/// 1.5 s before it reopens (logrotate `create` with a late reopen); with 20ms
/// polls that is many polls, and the renamed file must be read to its end.
#[test]
fn a_writer_that_reopens_late_loses_nothing() {
    let logs = Logs::new();
    let home = Home::new(&config(logs.dir.path(), "beginning"));
    let ex = home.start(&[]);
    let log = logs.log();
    let mut writer = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    for i in 0..100 {
        writeln!(writer, "/before {}ms", i).unwrap();
    }
    wait_counted(&ex, 100.0);
    std::fs::rename(&log, logs.dir.path().join("app.log.1")).unwrap();
    for burst in 0..15 {
        for i in 0..10 {
            writeln!(writer, "/late {}ms", burst * 10 + i).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(writer);
    append(&log, 50, "/after");
    wait_counted(&ex, 300.0);
    assert_eq!(
        routes(&ex),
        [
            ("/after".into(), 50.0),
            ("/before".into(), 100.0),
            ("/late".into(), 150.0)
        ]
    );
}

/// Issue 14, input 2: lines appended, then the file renamed off the glob
/// and a new one created, all while the exporter was stopped.
#[test]
fn a_file_rotated_while_stopped_is_found_and_finished() {
    let logs = Logs::new();
    let home = Home::new(&config(logs.dir.path(), "beginning"));
    let log = logs.log();
    let ex = home.start(&[]);
    append(&log, 5, "/a");
    wait_counted(&ex, 5.0);
    assert_eq!(ex.stop(), Some(0));
    append(&log, 3, "/b");
    std::fs::rename(&log, logs.dir.path().join("app.log.1")).unwrap();
    append(&log, 2, "/c");
    let ex = home.start(&[]);
    wait_counted(&ex, 10.0);
    assert_eq!(
        routes(&ex),
        [("/a".into(), 5.0), ("/b".into(), 3.0), ("/c".into(), 2.0)]
    );
}

/// Issue 14, input 3: truncated and regrown past the read position before
/// the next poll, then the same while stopped: every new line once, never
/// from the middle of one.
#[test]
fn a_file_truncated_and_regrown_is_read_from_its_start() {
    let logs = Logs::new();
    let slow =
        config(logs.dir.path(), "beginning").replace("poll_interval: 20ms", "poll_interval: 1s");
    let home = Home::new(&slow);
    let log = logs.log();
    std::fs::write(&log, "/t0 10ms\n").unwrap();
    let ex = home.start(&[]);
    wait_for("the first line", || counted(&ex) == 1.0);
    // Truncate and regrow within one poll interval.
    let mut lines = String::new();
    for i in 0..30 {
        lines.push_str(&format!("/t1 {}ms\n", 100 + i));
    }
    std::fs::write(&log, &lines).unwrap();
    wait_counted(&ex, 31.0);
    assert_eq!(routes(&ex), [("/t0".into(), 1.0), ("/t1".into(), 30.0)]);
    assert_eq!(ex.stop(), Some(0));
    let mut lines = String::new();
    for i in 0..60 {
        lines.push_str(&format!("/t2 {}ms\n", 100 + i));
    }
    std::fs::write(&log, &lines).unwrap();
    let ex = home.start(&[]);
    wait_counted(&ex, 91.0);
    assert_eq!(
        routes(&ex),
        [
            ("/t0".into(), 1.0),
            ("/t1".into(), 30.0),
            ("/t2".into(), 60.0)
        ]
    );
}

/// Issue 14, input 4: a line far past `max_line_bytes` with no newline yet
/// is skipped to its end and counted once; memory stays bounded and the
/// next line is read.
#[test]
fn an_endless_line_is_skipped_in_bounded_memory() {
    let logs = Logs::new();
    let home = Home::new(&config(logs.dir.path(), "beginning"));
    let ex = home.start(&[]);
    let log = logs.log();
    append(&log, 1, "/first");
    wait_counted(&ex, 1.0);
    let mut f = OpenOptions::new().append(true).open(&log).unwrap();
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..64 {
        f.write_all(&chunk).unwrap();
    }
    f.flush().unwrap();
    let too_long = |ex: &Exporter| {
        ex.metrics().value(
            "amaze_ingest_rejected_total",
            &[("source", "log"), ("reason", "line_too_long")],
        )
    };
    wait_for("the long line refused", || too_long(&ex) == Some(1.0));
    let rss = ex
        .metrics()
        .value("process_resident_memory_bytes", &[])
        .unwrap();
    assert!(rss < 120e6, "64 MiB without a newline held {rss} bytes");
    f.write_all(b"\n/next 5ms\n").unwrap();
    drop(f);
    wait_counted(&ex, 2.0);
    assert_eq!(too_long(&ex), Some(1.0), "counted once");
    let behind = ex
        .metrics()
        .value("amaze_log_tail_behind_bytes", &[("name", "access")]);
    assert_eq!(behind, Some(0.0));
}

/// Issue 15, input 8: a path whose reads block (`/proc/kmsg` waits for the
/// kernel to log) neither blocks the exporter nor its shutdown: a file's
/// size says what there is to read, and SIGTERM does not wait for a stuck
/// read.
#[test]
fn a_file_whose_reads_block_holds_up_nothing() {
    let logs = Logs::new();
    let config = config(logs.dir.path(), "beginning").replace(
        &format!("[\"{}/app.log\"]", logs.dir.path().display()),
        &format!(
            "[\"/proc/kmsg\", \"{}/app.log\"]",
            logs.dir.path().display()
        ),
    );
    let home = Home::new(&config);
    let ex = home.start(&[]);
    append(&logs.log(), 5, "/a");
    wait_counted(&ex, 5.0);
    let asked = std::time::Instant::now();
    assert_eq!(ex.stop(), Some(0));
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(5),
        "stopped in {:?}",
        asked.elapsed()
    );
}

/// Found by review: a file quiet for longer than `rotate_wait` before it
/// was rotated still gets the writer's lines until it reopens; the quiet is
/// counted from the rotation (logrotate `create`, `postrotate sleep 2`).
#[test]
fn a_file_quiet_before_its_rotation_is_still_read_after_it() {
    let logs = Logs::new();
    let config = config(logs.dir.path(), "beginning").replace(
        "poll_interval: 20ms",
        "poll_interval: 20ms\n      rotate_wait: 1s",
    );
    let home = Home::new(&config);
    let ex = home.start(&[]);
    let log = logs.log();
    let mut writer = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    for i in 0..5 {
        writeln!(writer, "/before {i}ms").unwrap();
    }
    wait_counted(&ex, 5.0);
    // Quiet for longer than rotate_wait.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    std::fs::rename(&log, logs.dir.path().join("app.log.1")).unwrap();
    std::fs::File::create(&log).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    for i in 0..3 {
        writeln!(writer, "/late {i}ms").unwrap();
    }
    drop(writer);
    append(&log, 2, "/after");
    wait_counted(&ex, 10.0);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        routes(&ex),
        [
            ("/after".into(), 2.0),
            ("/before".into(), 5.0),
            ("/late".into(), 3.0)
        ]
    );
}

/// Found by review: more matched files than the soft open-file limit
/// allows. The exporter raises its soft limit to the hard one at start, as
/// Go exporters do, so every file is followed and the rest keeps working.
#[test]
fn more_files_than_the_soft_open_file_limit_are_all_followed() {
    let logs = Logs::new();
    for i in 0..300 {
        std::fs::write(logs.dir.path().join(format!("f{i}.log")), "/f 1ms\n").unwrap();
    }
    let config = config(logs.dir.path(), "beginning").replace(
        &format!("[\"{}/app.log\"]", logs.dir.path().display()),
        &format!("[\"{}/*.log\"]", logs.dir.path().display()),
    );
    let home = Home::new(&config);
    let ex = home.start_wrapped(&["prlimit", "--nofile=200:", "--"], &[]);
    wait_counted(&ex, 300.0);
    assert_eq!(ex.get("/-/ready").status, 200);
}

/// Found by review: a path removed from a log source by a reload and added
/// back resumes where it was; its lines are not read again (and no false
/// "file is gone" warning is logged).
#[test]
fn a_path_removed_and_added_back_is_not_read_again() {
    let logs = Logs::new();
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("c.log"), "/c 5ms\n").unwrap();
    let one = config(logs.dir.path(), "beginning");
    let both = one.replace(
        &format!("[\"{}/app.log\"]", logs.dir.path().display()),
        &format!(
            "[\"{}/app.log\", \"{}/*.log\"]",
            logs.dir.path().display(),
            other.path().display()
        ),
    );
    let home = Home::new(&one);
    let ex = home.start(&[]);
    for round in 0..3 {
        home.write_config(&both);
        assert_eq!(ex.reload().status, 200);
        append(&logs.log(), 1, "/a");
        wait_counted(&ex, 2.0 + round as f64);
        home.write_config(&one);
        assert_eq!(ex.reload().status, 200);
    }
    append(&logs.log(), 1, "/a");
    wait_counted(&ex, 5.0);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(routes(&ex), [("/a".into(), 4.0), ("/c".into(), 1.0)]);
    assert!(!ex.log().contains("is gone"), "{}", ex.log());
}
