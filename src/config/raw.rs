//! The config file as written: serde shapes only, every scalar kept as text with
//! its location so validation can report all problems at once.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

/// A scalar as written, with where it was written.
pub type Text = Spanned<String>;

#[derive(Debug, Deserialize)]
pub struct RawConfig {
    pub version: Option<Text>,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub auth: RawAuth,
    #[serde(default)]
    pub calendars: Vec<RawCalendar>,
    pub slas: Option<Vec<RawSla>>,
    #[serde(default)]
    pub sources: RawSources,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawAuth {
    #[serde(default)]
    pub tokens: Vec<RawToken>,
}

#[derive(Debug, Deserialize)]
pub struct RawToken {
    pub name: Option<Text>,
    pub token_file: Option<Text>,
    pub token_env: Option<Text>,
    #[serde(default)]
    pub slas: Vec<Text>,
    pub admin: Option<Text>,
}

#[derive(Debug, Deserialize)]
pub struct RawCalendar {
    pub name: Option<Text>,
    pub timezone: Option<Text>,
    /// Day or day range (`mon`, `mon-fri`) to time ranges.
    #[serde(default)]
    pub hours: BTreeMap<String, Text>,
    #[serde(default)]
    pub holidays: Vec<Text>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawSources {
    pub statsd: Option<RawStatsd>,
    pub otlp: Option<RawOtlp>,
    #[serde(default)]
    pub log_tail: Vec<RawLogTail>,
    #[serde(default)]
    pub probes: Vec<RawProbe>,
}

#[derive(Debug, Deserialize)]
pub struct RawOtlp {
    #[serde(default)]
    pub spans: Vec<RawSpanRule>,
}

#[derive(Debug, Deserialize)]
pub struct RawSpanRule {
    pub sla: Option<Text>,
    #[serde(default, rename = "match")]
    pub matches: BTreeMap<String, Text>,
    #[serde(default)]
    pub labels: BTreeMap<String, Text>,
    pub failed_status_code: Option<Text>,
}

#[derive(Debug, Deserialize)]
pub struct RawProbe {
    pub name: Option<Text>,
    pub url: Option<Text>,
    pub method: Option<Text>,
    pub sla: Option<Text>,
    #[serde(default)]
    pub labels: BTreeMap<String, Text>,
    pub interval: Option<Text>,
    pub timeout: Option<Text>,
    #[serde(default)]
    pub expect_status: Vec<Text>,
    pub expect_body: Option<Text>,
    pub expect_body_regex: Option<Text>,
    #[serde(default)]
    pub headers: BTreeMap<String, Text>,
    pub body: Option<Text>,
    pub follow_redirects: Option<Text>,
    pub body_limit: Option<Text>,
    pub phases: Option<Text>,
    pub tls_config: Option<RawProbeTls>,
}

/// `tls_config` of a probe, as blackbox_exporter and Prometheus name it.
#[derive(Debug, Deserialize)]
pub struct RawProbeTls {
    pub ca_file: Option<Text>,
    pub cert_file: Option<Text>,
    pub key_file: Option<Text>,
    pub server_name: Option<Text>,
    pub insecure_skip_verify: Option<Text>,
}

#[derive(Debug, Deserialize)]
pub struct RawLogTail {
    pub name: Option<Text>,
    #[serde(default)]
    pub paths: Vec<Text>,
    pub start_at: Option<Text>,
    pub format: Option<Text>,
    pub regex: Option<Text>,
    pub sla: Option<Text>,
    pub sla_field: Option<Text>,
    pub duration_field: Option<Text>,
    pub duration_unit: Option<Text>,
    pub timestamp_field: Option<Text>,
    #[serde(default)]
    pub labels: BTreeMap<String, Text>,
    pub poll_interval: Option<Text>,
    pub rotate_wait: Option<Text>,
    pub max_line_bytes: Option<Text>,
    pub include: Option<Text>,
    pub exclude: Option<Text>,
    pub failed_field: Option<Text>,
    pub failed_match: Option<Text>,
}

#[derive(Debug, Deserialize)]
pub struct RawStatsd {
    pub listen: Option<Text>,
    pub tcp_listen: Option<Text>,
    pub unix_listen: Option<Text>,
    #[serde(default)]
    pub mappings: Vec<RawMapping>,
}

#[derive(Debug, Deserialize)]
pub struct RawMapping {
    pub metric: Option<Text>,
    pub sla: Option<Text>,
    pub duration_unit: Option<Text>,
    #[serde(default)]
    pub labels: BTreeMap<String, Text>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawLimits {
    pub max_body_bytes: Option<Text>,
    pub max_future_skew: Option<Text>,
    pub max_label_value_length: Option<Text>,
    pub max_tracked_ids: Option<Text>,
    pub max_lines_per_request: Option<Text>,
    pub max_inflight_bytes: Option<Text>,
    pub max_open_deliveries: Option<Text>,
}

#[derive(Debug, Deserialize)]
pub struct RawSla {
    pub name: Option<Text>,
    pub description: Option<Text>,
    pub promise: Option<Text>,
    pub objective: Option<Text>,
    pub target_margin: Option<Text>,
    pub alert_margin: Option<Text>,
    pub window: Option<Text>,
    pub min_deliveries: Option<Text>,
    #[serde(default)]
    pub labels: Vec<Text>,
    #[serde(default)]
    pub goals: Vec<RawGoal>,
    pub max_series: Option<Text>,
    pub durability: Option<Text>,
    pub forecast_horizon: Option<Text>,
    pub calendar: Option<Text>,
    pub series_windows: Option<Vec<Text>>,
}

#[derive(Debug, Deserialize)]
pub struct RawGoal {
    #[serde(rename = "match")]
    pub matches: Option<BTreeMap<String, Text>>,
    pub promise: Option<Text>,
}

/// The file as read, and the keys in it that no field takes.
#[derive(Debug)]
pub struct Parsed {
    /// Every known key's value.
    pub config: RawConfig,
    /// Paths of unknown keys, in file order, as serde_ignored writes them
    /// (`slas.?[0].promis`, `?` for an optional value).
    pub unknown: Vec<String>,
}

/// Parses YAML text into the raw shape, collecting unknown keys instead of
/// stopping at the first; the error carries serde-saphyr's line, column and
/// source snippet.
pub fn parse(text: &str) -> Result<Parsed, serde_saphyr::Error> {
    let mut unknown = Vec::new();
    let config = serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_ignored::deserialize(de, |path| {
            let path = path.to_string();
            // Spanned values carry their location in a field of their own.
            if !path.contains("__serde_saphyr") {
                unknown.push(path);
            }
        })
    })?;
    Ok(Parsed { config, unknown })
}

/// Every key the file may hold, at any depth: what a misspelt key is
/// compared with for a "did you mean" (a test keeps it in step with the
/// shapes above).
pub const KEYS: &[&str] = &[
    "admin",
    "alert_margin",
    "auth",
    "body",
    "body_limit",
    "ca_file",
    "calendar",
    "calendars",
    "cert_file",
    "description",
    "durability",
    "duration_field",
    "duration_unit",
    "exclude",
    "expect_body",
    "expect_body_regex",
    "expect_status",
    "failed_field",
    "failed_match",
    "failed_status_code",
    "follow_redirects",
    "forecast_horizon",
    "format",
    "goals",
    "headers",
    "holidays",
    "hours",
    "include",
    "insecure_skip_verify",
    "interval",
    "key_file",
    "labels",
    "limits",
    "listen",
    "log_tail",
    "mappings",
    "match",
    "max_body_bytes",
    "max_future_skew",
    "max_inflight_bytes",
    "max_label_value_length",
    "max_line_bytes",
    "max_lines_per_request",
    "max_open_deliveries",
    "max_series",
    "max_tracked_ids",
    "method",
    "metric",
    "min_deliveries",
    "name",
    "objective",
    "otlp",
    "paths",
    "phases",
    "poll_interval",
    "probes",
    "promise",
    "regex",
    "rotate_wait",
    "series_windows",
    "server_name",
    "sla",
    "sla_field",
    "slas",
    "sources",
    "spans",
    "start_at",
    "statsd",
    "target_margin",
    "tcp_listen",
    "timeout",
    "timestamp_field",
    "timezone",
    "tls_config",
    "token_env",
    "token_file",
    "tokens",
    "unix_listen",
    "url",
    "version",
    "window",
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field of the shapes above (by its YAML name) is in [`KEYS`].
    #[test]
    fn keys_name_every_field() {
        let source = include_str!("raw.rs");
        // The shapes of the file, not what parsing returns.
        let shapes = source.split("pub struct Parsed").next().unwrap_or(source);
        let lines: Vec<&str> = shapes.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(field) = line.trim().strip_prefix("pub ") else {
                continue;
            };
            let Some((name, _)) = field.split_once(':') else {
                continue;
            };
            if name.contains(' ') || name.contains('(') {
                continue;
            }
            let renamed = i
                .checked_sub(1)
                .and_then(|j| lines[j].split("rename = \"").nth(1))
                .and_then(|r| r.split('"').next());
            let key = renamed.unwrap_or(name.trim_start_matches("r#"));
            assert!(KEYS.contains(&key), "`{key}` is missing from KEYS");
        }
    }
}
