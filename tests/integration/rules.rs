//! The shipped Prometheus rules and scrape config, checked by promtool.

use std::process::Command;

use crate::server::tool_available;

fn promtool(args: &[&str]) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/config/prometheus"))
        .output()
        .expect("run promtool");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn rules_and_scrape_config_are_valid() {
    if !tool_available("promtool") {
        return;
    }
    for file in ["amaze-rules.yml", "amaze-fleet-rules.yml"] {
        let (ok, out) = promtool(&["check", "rules", file]);
        assert!(ok, "{out}");
    }
    let (ok, out) = promtool(&["check", "config", "prometheus.yml"]);
    assert!(ok, "{out}");
}

#[test]
fn rule_unit_tests_pass() {
    if !tool_available("promtool") {
        return;
    }
    for file in ["amaze-rules.test.yml", "amaze-fleet-rules.test.yml"] {
        let (ok, out) = promtool(&["test", "rules", &format!("tests/{file}")]);
        assert!(ok, "{out}");
    }
}

/// The shipped fleet rules are what `rules` generates from the shipped
/// config, so they cannot drift from the SLAs they cover.
#[test]
fn shipped_fleet_rules_are_generated_from_the_shipped_config() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_amaze-exporter"))
        .args(["rules", "--config.file", "config/amaze.yaml"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/prometheus/amaze-fleet-rules.yml"
    ))
    .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout) == shipped,
        "config/prometheus/amaze-fleet-rules.yml is stale: run `cargo run -- rules --config.file config/amaze.yaml > config/prometheus/amaze-fleet-rules.yml`"
    );
    // One margin rule per SLA and window, each with the SLA's objective.
    assert!(shipped.contains("histogram_quantile(0.99,\n              sum by (job, sla, replica) (rate(amaze_delivery_duration_ratio{sla=\"api_latency\"}[5m]))"), "{shipped}");
}

#[test]
fn rules_refuses_a_broken_config_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "version: 1\nslas:\n  - name: api\n    promise: soon\n    objective: 99%\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_amaze-exporter"))
        .args(["rules", "--config.file"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("slas[0].promise"), "{err}");
}

#[test]
fn every_alert_has_a_unit_test_and_every_metric_exists() {
    for (rules, tests) in [
        ("amaze-rules.yml", "tests/amaze-rules.test.yml"),
        ("amaze-fleet-rules.yml", "tests/amaze-fleet-rules.test.yml"),
    ] {
        alerts_tested(rules, tests);
    }
}

fn alerts_tested(rules: &str, tests: &str) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config/prometheus/");
    let rules = std::fs::read_to_string(format!("{dir}{rules}")).unwrap();
    let tests = std::fs::read_to_string(format!("{dir}{tests}")).unwrap();
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert!(alerts.len() >= 4, "{alerts:?}");
    let tests: serde_json::Value = serde_saphyr::from_str(&tests).expect("test file is YAML");
    let cases: Vec<(&str, usize)> = tests["tests"]
        .as_array()
        .expect("tests")
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_array().into_iter().flatten())
        .map(|c| {
            (
                c["alertname"].as_str().unwrap_or(""),
                c["exp_alerts"].as_array().map_or(0, Vec::len),
            )
        })
        .collect();
    for a in &alerts {
        assert!(
            cases.iter().any(|(n, fired)| n == a && *fired > 0),
            "no unit test shows {a} firing"
        );
        assert!(
            cases.iter().any(|(n, fired)| n == a && *fired == 0),
            "no unit test shows {a} quiet"
        );
    }
    // Every amaze_ metric the rules read is one the exporter defines.
    let known: Vec<&str> = amaze_exporter::exposition::names::ALL
        .iter()
        .map(|n| n.name)
        .collect();
    // Recording rules (`sla:...:...`) hold colons, so they are one word here.
    for word in rules.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')) {
        if word.starts_with("amaze_") && !word.starts_with("amaze_exporter") {
            assert!(known.contains(&word), "rules use unknown metric {word}");
        }
    }
}
