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
fn the_committed_man_pages_are_the_generated_ones() {
    let mut pages = vec![(None, "amaze-exporter.1".to_owned())];
    for sub in amaze_exporter::cli::man_subcommands() {
        let file = format!("amaze-exporter-{sub}.1");
        pages.push((Some(sub), file));
    }
    assert!(pages.len() >= 8, "{pages:?}");
    for (sub, file) in &pages {
        let out = bin().arg("man").args(sub).output().unwrap();
        assert!(out.status.success(), "{file}");
        let committed = std::fs::read(root().join("dist/man").join(file)).unwrap_or_default();
        assert!(
            committed == out.stdout,
            "dist/man/{file} is stale: run `cargo run -- man {} > dist/man/{file}`",
            sub.as_deref().unwrap_or("")
        );
    }
    let page = |file: &str| std::fs::read_to_string(root().join("dist/man").join(file)).unwrap();
    let main = page("amaze-exporter.1");
    for text in [
        ".TH amaze-exporter 1",
        "amaze\\-exporter\\-import(1)",
        "\\-\\-storage.path",
    ] {
        assert!(main.contains(text), "no {text} in the man page");
    }
    // Every page the main one refers to exists, with its subcommand's flags.
    let demo = page("amaze-exporter-demo.1");
    for text in [
        ".TH amaze-exporter-demo 1",
        "\\-\\-breach\\-after",
        "\\-\\-erode",
    ] {
        assert!(demo.contains(text), "no {text} in amaze-exporter-demo.1");
    }
    let import = page("amaze-exporter-import.1");
    assert!(import.contains("\\-\\-dry\\-run"), "{import}");
    let out = bin().args(["man", "nope"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("these have pages: check"));
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
    // Completing in a real bash: subcommands, then a subcommand's flags.
    let script = bin().args(["completions", "bash"]).output().unwrap().stdout;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("amaze-exporter.bash");
    std::fs::write(&path, script).unwrap();
    let complete = |line: &str| {
        let words: Vec<&str> = line.split(' ').collect();
        let program = format!(
            "source '{}'; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}; \
             _amaze__exporter amaze-exporter '{}' '{}'; echo \"${{COMPREPLY[@]}}\"",
            path.display(),
            words
                .iter()
                .map(|w| format!("'{w}'"))
                .collect::<Vec<_>>()
                .join(" "),
            words.len() - 1,
            words[words.len() - 1],
            words[words.len() - 2],
        );
        let out = Command::new("bash")
            .arg("-c")
            .arg(program)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let subcommands = complete("amaze-exporter de");
    assert!(subcommands.contains("demo"), "{subcommands}");
    let flags = complete("amaze-exporter demo --");
    for flag in ["--erode", "--breach-after", "--duration", "--target"] {
        assert!(flags.contains(flag), "no {flag} in `{flags}`");
    }
    let flags = complete("amaze-exporter import --");
    assert!(flags.contains("--dry-run"), "{flags}");
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
        "RuntimeDirectory=amaze-exporter",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit lacks {line}");
    }
    // RestartPreventExitStatus covers the main process only: a check in an
    // ExecStartPre that exits 2 would be restarted until the start limit.
    assert!(
        !unit.lines().any(|l| l.starts_with("ExecStartPre=")),
        "a refused config would restart in a loop"
    );
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
