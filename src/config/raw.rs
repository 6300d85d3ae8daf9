//! The config file as written: serde shapes only, every scalar kept as text with
//! its location so validation can report all problems at once.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

/// A scalar as written, with where it was written.
pub type Text = Spanned<String>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    #[serde(default)]
    pub tokens: Vec<RawToken>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawToken {
    pub name: Option<Text>,
    pub token_file: Option<Text>,
    pub token_env: Option<Text>,
    #[serde(default)]
    pub slas: Vec<Text>,
    pub admin: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
pub struct RawSources {
    pub statsd: Option<RawStatsd>,
    #[serde(default)]
    pub log_tail: Vec<RawLogTail>,
    #[serde(default)]
    pub probes: Vec<RawProbe>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
pub struct RawProbeTls {
    pub ca_file: Option<Text>,
    pub cert_file: Option<Text>,
    pub key_file: Option<Text>,
    pub server_name: Option<Text>,
    pub insecure_skip_verify: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
pub struct RawStatsd {
    pub listen: Option<Text>,
    pub tcp_listen: Option<Text>,
    pub unix_listen: Option<Text>,
    #[serde(default)]
    pub mappings: Vec<RawMapping>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMapping {
    pub metric: Option<Text>,
    pub sla: Option<Text>,
    pub duration_unit: Option<Text>,
    #[serde(default)]
    pub labels: BTreeMap<String, Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGoal {
    #[serde(rename = "match")]
    pub matches: Option<BTreeMap<String, Text>>,
    pub promise: Option<Text>,
}

/// Parses YAML text into the raw shape; the error carries serde-saphyr's
/// line, column and source snippet.
pub fn parse(text: &str) -> Result<RawConfig, serde_saphyr::Error> {
    serde_saphyr::from_str(text)
}
