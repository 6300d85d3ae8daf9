//! The shipped Grafana dashboards, checked offline: shape, variables, queries
//! and metric names. `e2e.rs` runs their queries against a real Prometheus.

use std::collections::HashSet;

use serde_json::Value;

pub const DASHBOARDS: [&str; 2] = ["amaze-overview.json", "amaze-sla-detail.json"];

pub fn load(name: &str) -> Value {
    let path = format!("{}/dashboards/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"))
}

/// Every (panel title, PromQL expression) of a dashboard.
pub fn queries(dashboard: &Value) -> Vec<(String, String)> {
    panels(dashboard)
        .iter()
        .flat_map(|p| {
            let title = p["title"].as_str().unwrap_or("").to_owned();
            p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |t| (title.clone(), t["expr"].as_str().unwrap_or("").to_owned()))
        })
        .collect()
}

/// Every (panel title, its data queries): the queries a panel is blank
/// without. Reference lines (promise, thresholds) have a `refId` starting
/// with `ref_` and do not count: a panel showing only them is blank.
pub fn data_queries(dashboard: &Value) -> Vec<(String, Vec<String>)> {
    panels(dashboard)
        .iter()
        .filter_map(|p| {
            let exprs: Vec<String> = p["targets"]
                .as_array()?
                .iter()
                .filter(|t| !t["refId"].as_str().unwrap_or("").starts_with("ref_"))
                .filter_map(|t| t["expr"].as_str().map(str::to_owned))
                .collect();
            (!exprs.is_empty()).then(|| (p["title"].as_str().unwrap_or("").to_owned(), exprs))
        })
        .collect()
}

fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().expect("panels") {
        out.push(p);
        // Panels folded into a collapsed row live inside it.
        out.extend(p["panels"].as_array().into_iter().flatten());
    }
    out
}

#[test]
fn dashboards_are_well_formed() {
    let mut uids = HashSet::new();
    for name in DASHBOARDS {
        let d = load(name);
        assert!(
            uids.insert(d["uid"].as_str().expect("uid").to_owned()),
            "{name}: duplicate uid"
        );
        assert!(
            d["schemaVersion"].as_u64().expect("schemaVersion") >= 36,
            "{name}: Grafana 10+ schema"
        );
        let vars: Vec<&str> = d["templating"]["list"]
            .as_array()
            .expect("templating")
            .iter()
            .filter_map(|v| v["name"].as_str())
            .collect();
        assert!(
            vars.contains(&"datasource") && vars.contains(&"sla"),
            "{name}: {vars:?}"
        );
        let mut ids = HashSet::new();
        for p in panels(&d) {
            let title = p["title"].as_str().unwrap_or("");
            assert!(
                ids.insert(p["id"].as_u64().expect("panel id")),
                "{name}: duplicate panel id in {title}"
            );
            if p["type"] == "row" || p["type"] == "text" {
                continue;
            }
            assert!(!title.is_empty(), "{name}: a panel has no title");
            assert_eq!(
                p["datasource"]["uid"], "${datasource}",
                "{name}/{title}: datasource"
            );
            let targets = p["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{name}/{title}: no query");
            for t in targets {
                assert!(
                    !t["expr"].as_str().unwrap_or("").trim().is_empty(),
                    "{name}/{title}: empty query"
                );
            }
            assert!(
                p["fieldConfig"]["defaults"]["unit"].is_string(),
                "{name}/{title}: no unit"
            );
        }
    }
}

#[test]
fn every_metric_a_dashboard_reads_exists() {
    let known: HashSet<&str> = amaze_exporter::exposition::names::ALL
        .iter()
        .map(|n| n.name)
        .collect();
    for name in DASHBOARDS {
        let d = load(name);
        let mut texts: Vec<String> = queries(&d).into_iter().map(|(_, e)| e).collect();
        texts.extend(
            d["templating"]["list"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v["definition"].as_str().map(str::to_owned)),
        );
        for expr in texts {
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')) {
                if !word.starts_with("amaze_") {
                    continue;
                }
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| word.strip_suffix(s))
                    .filter(|b| known.contains(b))
                    .unwrap_or(word);
                assert!(
                    known.contains(base),
                    "{name}: unknown metric {word} in {expr}"
                );
            }
        }
    }
}

#[test]
fn provisioning_points_at_the_dashboards() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards/provisioning");
    let dashboards = std::fs::read_to_string(format!("{dir}/dashboards/amaze.yml")).unwrap();
    let parsed: Value = serde_saphyr::from_str(&dashboards).unwrap();
    assert_eq!(parsed["providers"][0]["type"], "file");
    assert!(parsed["providers"][0]["options"]["path"].is_string());
    let sources = std::fs::read_to_string(format!("{dir}/datasources/prometheus.yml")).unwrap();
    let parsed: Value = serde_saphyr::from_str(&sources).unwrap();
    assert_eq!(parsed["datasources"][0]["type"], "prometheus");
}
