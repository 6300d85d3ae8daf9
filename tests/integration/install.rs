//! What a server install uses: the systemd unit (checked by
//! `systemd-analyze verify`, hardened, stopping after the shutdown deadline),
//! the man page generated from the command line (committed, kept current)
//! and shell completions.

use std::path::PathBuf;
use std::process::Command;

use crate::server::tool_available;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_amaze-exporter"))
}

#[test]
fn the_committed_man_page_is_the_generated_one() {
    let out = bin().arg("man").output().unwrap();
    assert!(out.status.success());
    let committed = std::fs::read(root().join("dist/man/amaze-exporter.1")).unwrap();
    assert!(
        committed == out.stdout,
        "dist/man/amaze-exporter.1 is stale: run `cargo run -- man > dist/man/amaze-exporter.1`"
    );
    let page = String::from_utf8(out.stdout).unwrap();
    for text in [
        ".TH amaze-exporter 1",
        "amaze\\-exporter\\-import(1)",
        "\\-\\-storage.path",
    ] {
        assert!(page.contains(text), "no {text} in the man page");
    }
}

#[test]
fn completions_cover_every_subcommand() {
    for shell in ["bash", "zsh", "fish"] {
        let out = bin().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        for sub in [
            "check",
            "rules",
            "demo",
            "import",
            "report",
            "man",
            "completions",
        ] {
            assert!(script.contains(sub), "{shell} completions miss {sub}");
        }
    }
    let out = bin().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

/// The unit as shipped, with its binary path pointed at this build, passes
/// `systemd-analyze verify`; it is hardened, and waits for the exporter's
/// shutdown deadline and final snapshot before killing it.
#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let unit = std::fs::read_to_string(root().join("dist/systemd/amaze-exporter.service")).unwrap();
    for line in [
        "DynamicUser=yes",
        "StateDirectory=amaze-exporter",
        "ConfigurationDirectory=amaze-exporter",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "RestartPreventExitStatus=2",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit lacks {line}");
    }
    let seconds = |key: &str| -> u64 {
        let value = unit
            .lines()
            .chain(unit.split(" --").map(str::trim))
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key}"));
        humantime::parse_duration(value.split_whitespace().next().unwrap_or(""))
            .unwrap()
            .as_secs()
    };
    assert!(
        seconds("TimeoutStopSec=") > 2 * seconds("web.shutdown-timeout="),
        "systemd must wait past the shutdown deadline and the final snapshot"
    );
    if !tool_available("systemd-analyze") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("amaze-exporter.service");
    std::fs::write(
        &path,
        unit.replace(
            "/usr/local/bin/amaze-exporter",
            env!("CARGO_BIN_EXE_amaze-exporter"),
        ),
    )
    .unwrap();
    // --man=no: the page is not installed on the test machine.
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
}
