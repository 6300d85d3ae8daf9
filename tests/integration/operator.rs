//! What an operator sees (issue 15, inputs 7 and 9-11): config files that
//! are not files, every config problem at once with names and guesses,
//! one flag for the config everywhere, startup errors printed once, host
//! names in listen addresses, log lines as logfmt and JSON, and a version
//! that says which build it is.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::server::Home;

fn exporter(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_amaze-exporter"))
        .args(args)
        .output()
        .expect("run amaze-exporter")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_takes_a_file_argument_or_the_serving_flag() {
    let home = Home::new("version: 1\nslas:\n  - name: a\n    promise: 1s\n    objective: 99%\n");
    let config = home.config().display().to_string();
    for args in [
        vec!["check", config.as_str()],
        vec!["check", "--config.file", config.as_str()],
        vec!["check", "--config", config.as_str()],
    ] {
        let out = exporter(&args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stdout), format!("{config}: valid, 1 SLA\n"));
    }
}

/// Input 7: `/dev/zero` and a FIFO are refused at once with exit 2, never
/// read into memory or waited on.
#[test]
fn config_paths_that_are_not_regular_files_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("config.fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let fifo = fifo.display().to_string();
    for (path, what) in [
        ("/dev/zero", "it is a character device, not a regular file"),
        (fifo.as_str(), "it is a FIFO, not a regular file"),
        ("/tmp", "it is a directory, not a regular file"),
    ] {
        let started = Instant::now();
        for args in [
            vec!["check", path],
            vec![&format!("--config.file={path}")[..]],
        ] {
            let out = exporter(&args);
            assert_eq!(out.status.code(), Some(2), "{args:?}");
            let err = text(&out.stderr);
            assert!(err.contains(what), "{args:?}: {err}");
            assert_eq!(err.matches(what).count(), 1, "printed once: {err}");
        }
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    // Found by review: a "regular" file whose reads block is read as what
    // its size says (nothing), not waited on.
    if std::path::Path::new("/proc/kmsg").exists() {
        let started = Instant::now();
        let out = exporter(&["check", "/proc/kmsg"]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    let big = dir.path().join("big.yaml");
    std::fs::write(&big, vec![b'#'; 9 << 20]).unwrap();
    let out = exporter(&["check", &big.display().to_string()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("larger than 8388608 bytes"),
        "{}",
        text(&out.stderr)
    );
}

/// Input 10: two misspelt keys and a bad duration are three problems, each
/// with its path and line, the keys with a guess, under the file's name.
#[test]
fn every_config_problem_is_listed_with_unknown_keys_and_guesses() {
    let home = Home::new(
        "version: 1\nslas:\n  - name: a\n    promise: 1s\n    objectiv: 99%\n    windw: 30d\n    min_deliveries: lots\n",
    );
    let config = home.config().display().to_string();
    let out = exporter(&["check", &config]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    for expected in [
        format!("{config}: config has 4 problems"),
        "slas[0].objective (line 3): required".to_owned(),
        "slas[0].objectiv (line 5): unknown key `objectiv`; did you mean `objective`?".to_owned(),
        "slas[0].windw (line 6): unknown key `windw`; did you mean `window`?".to_owned(),
        "slas[0].min_deliveries (line 7)".to_owned(),
    ] {
        assert!(err.contains(&expected), "missing `{expected}` in:\n{err}");
    }
    assert!(
        !err.contains("<input>") && !err.contains("not valid YAML"),
        "{err}"
    );
}

/// Input 11: a startup error is printed once; host names listen.
#[test]
fn startup_errors_print_once_and_host_names_listen() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let home = Home::new("version: 1\nslas:\n  - name: a\n    promise: 1s\n    objective: 99%\n");
    let out = exporter(&[
        &format!("--config.file={}", home.config().display()),
        &format!("--storage.path={}", home.data().display()),
        &format!("--web.listen-address={addr}"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.matches("cannot listen on").count(), 1, "{err}");

    let ex = home.start(&["--web.listen-address=localhost:0"]);
    assert_eq!(ex.get("/-/healthy").status, 200);
}

/// Found by review: with JSON logs, a config that stops the start is one
/// JSON line too (exit 2), so a log pipeline reads it.
#[test]
fn a_bad_config_is_one_json_line_when_logs_are_json() {
    let home = Home::new("version: 1\nslas:\n  - name: a\n    promis: 1s\n");
    let out = exporter(&[
        &format!("--config.file={}", home.config().display()),
        &format!("--storage.path={}", home.data().display()),
        "--web.listen-address=127.0.0.1:0",
        "--log.format=json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["level"], "error");
    assert!(
        v["msg"]
            .as_str()
            .unwrap()
            .contains("slas[0].promis (line 4): unknown key `promis`"),
        "{v}"
    );
}

/// Input 9: logfmt and JSON lines start `ts`, `level`, `msg`, values
/// quoted only as logfmt needs.
#[test]
fn log_lines_are_logfmt_or_json_with_ts_level_and_msg() {
    let home = Home::new("version: 1\nslas:\n  - name: a\n    promise: 1s\n    objective: 99%\n");
    let ex = home.start(&["--log.format=logfmt"]);
    let log = ex.log();
    let line = log
        .lines()
        .find(|l| l.contains("state restored"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(line.starts_with("ts="), "{line}");
    assert!(
        line.contains(" level=info msg=\"state restored\" "),
        "{line}"
    );
    assert!(line.contains(" snapshot=none "), "{line}");
    drop(ex);

    let ex = home.start(&["--log.format=json"]);
    let log = ex.log();
    let line = log
        .lines()
        .find(|l| l.contains("amaze-exporter listening"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(line.starts_with(r#"{"ts":""#), "{line}");
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["level"], "info");
    assert_eq!(v["msg"], "amaze-exporter listening");
    assert_eq!(v["slas"], 1);
}

/// Input 11: `--version` and `amaze_build_info` name the revision and date.
#[test]
fn the_version_names_its_revision_and_build_date() {
    let out = exporter(&["--version"]);
    let version = text(&out.stdout);
    assert!(
        version.starts_with(&format!(
            "amaze-exporter {} (revision ",
            env!("CARGO_PKG_VERSION")
        )),
        "{version}"
    );
    assert!(version.contains(", built 20"), "{version}");
    // In a git checkout it is this checkout's HEAD, never an earlier build's
    // (a build script that stops watching HEAD keeps a stale revision).
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success());
    if let Some(head) = head {
        let head = text(&head.stdout);
        assert!(
            version.contains(&format!("(revision {}", head.trim())),
            "{version} is not HEAD {head}"
        );
    }
    let ex = crate::server::Exporter::start(
        "version: 1\nslas:\n  - name: a\n    promise: 1s\n    objective: 99%\n",
    );
    let m = ex.metrics();
    let info =
        m.0.lines()
            .find(|l| l.starts_with("amaze_build_info{"))
            .unwrap();
    assert!(info.contains("build_date=\"20"), "{info}");
    assert!(info.contains("revision=\""), "{info}");
}

/// A signal sent the moment the exporter says it is listening meets its
/// handler, never the default action: SIGHUP reloads, SIGTERM stops with 0.
#[test]
fn signals_right_after_listening_are_handled() {
    let home = crate::server::Home::new(
        "version: 1\nslas:\n  - name: api\n    promise: 300ms\n    objective: 99%\n",
    );
    for _ in 0..10 {
        let ex = home.start(&[]);
        ex.signal("HUP");
        assert_eq!(ex.stop(), Some(0), "killed by a signal it should handle");
    }
}
