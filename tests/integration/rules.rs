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
    let (ok, out) = promtool(&["check", "rules", "amaze-rules.yml"]);
    assert!(ok, "{out}");
    let (ok, out) = promtool(&["check", "config", "prometheus.yml"]);
    assert!(ok, "{out}");
}

#[test]
fn rule_unit_tests_pass() {
    if !tool_available("promtool") {
        return;
    }
    let (ok, out) = promtool(&["test", "rules", "tests/amaze-rules.test.yml"]);
    assert!(ok, "{out}");
}

#[test]
fn every_alert_has_a_unit_test_and_every_metric_exists() {
    let rules = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/prometheus/amaze-rules.yml"
    ))
    .unwrap();
    let tests = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/prometheus/tests/amaze-rules.test.yml"
    ))
    .unwrap();
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert!(alerts.len() >= 8, "{alerts:?}");
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
