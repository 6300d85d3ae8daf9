//! A full or read-only state directory: ingest answers 503, `/metrics` keeps
//! serving, and ingest recovers by itself when the disk does. Uses a small
//! tmpfs, so it needs root (CI runs as root with AMAZE_REQUIRE_TOOLS=1).

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use crate::server::{Exporter, Home};

const CONFIG: &str = r#"
version: 1
slas:
  - name: disk
    promise: 1s
    objective: 99%
    min_deliveries: 1
"#;

/// A tmpfs mounted for one test, unmounted on drop.
struct Tmpfs {
    path: PathBuf,
    _parent: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let parent = tempfile::tempdir().expect("temp dir");
        let path = parent.path().join("state");
        std::fs::create_dir(&path).expect("mount point");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .is_ok_and(|o| o.status.success());
        if !mounted {
            assert!(
                std::env::var("AMAZE_REQUIRE_TOOLS").as_deref() != Ok("1"),
                "mounting a tmpfs is required (AMAZE_REQUIRE_TOOLS=1): run as root"
            );
            eprintln!("skipping: cannot mount a tmpfs (needs root)");
            return None;
        }
        Some(Tmpfs {
            path,
            _parent: parent,
        })
    }

    fn remount(&self, mode: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&self.path)
            .status()
            .expect("run mount");
        assert!(ok.success(), "remount {mode} failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Enough deliveries that their record needs a fresh page of the tmpfs.
fn batch(n: usize) -> String {
    (0..n)
        .map(|i| format!("{{\"sla\":\"disk\",\"duration\":\"{}ms\"}}\n", 100 + i % 50))
        .collect()
}

fn counted(ex: &Exporter) -> f64 {
    ex.metrics()
        .value(
            "amaze_window_deliveries",
            &[("sla", "disk"), ("scope", "sla"), ("window", "5m")],
        )
        .unwrap_or(0.0)
}

#[test]
fn full_disk_answers_503_and_ingest_recovers_when_space_returns() {
    let Some(fs) = Tmpfs::mount("2m") else { return };
    let home = Home::with_data(CONFIG, fs.path.clone());
    let ex = home.start(&["--storage.snapshot-interval=1h"]);
    assert_eq!(ex.push(&batch(500)).status, 200);

    // Fill every last byte.
    let filler = fs.path.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    while f.write_all(&[0; 4096]).is_ok() {}
    drop(f);

    let r = ex.push(&batch(500));
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("No space left on device"), "{}", r.body);
    let m = ex.metrics();
    assert_eq!(m.value("amaze_storage_writable", &[]), Some(0.0));
    assert!(m.value("amaze_storage_errors_total", &[("operation", "append")]) >= Some(1.0));
    assert_eq!(
        m.value(
            "amaze_ingest_rejected_total",
            &[("source", "http"), ("reason", "storage_unavailable")]
        ),
        Some(500.0)
    );
    assert_eq!(counted(&ex), 500.0, "the refused batch changed nothing");
    assert!(ex.log().contains("ingest answers 503"), "{}", ex.log());

    std::fs::remove_file(&filler).unwrap();
    let r = ex.push(&batch(500));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(ex.metrics().value("amaze_storage_writable", &[]), Some(1.0));
    assert_eq!(counted(&ex), 1000.0);

    // What was acknowledged after the recovery is durable.
    ex.crash();
    let ex = home.start(&[]);
    assert_eq!(counted(&ex), 1000.0);
}

#[test]
fn read_only_state_directory_serves_metrics_and_recovers_when_writable() {
    let Some(fs) = Tmpfs::mount("4m") else { return };
    let home = Home::with_data(CONFIG, fs.path.clone());
    let ex = home.start(&[]);
    assert_eq!(ex.push(&batch(10)).status, 200);
    assert_eq!(ex.stop(), Some(0));

    fs.remount("ro");
    let ex = home.start(&[]);
    assert_eq!(
        counted(&ex),
        10.0,
        "state is read from a read-only directory"
    );
    let r = ex.push(&batch(10));
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("Read-only file system"), "{}", r.body);
    assert_eq!(ex.metrics().value("amaze_storage_writable", &[]), Some(0.0));

    fs.remount("rw");
    let r = ex.push(&batch(10));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(counted(&ex), 20.0);
    assert_eq!(ex.stop(), Some(0));
}
