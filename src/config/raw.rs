//! The config file as written: serde shapes only, every scalar kept as text with
//! its location so validation can report all problems at once.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::fields::Text;
use crate::ingest::RawSources;

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
pub fn parse(text: &str) -> Result<Parsed, SyntaxError> {
    let mut unknown = Vec::new();
    let mut at = String::new();
    let mut note = |path: serde_ignored::Path<'_>| {
        let path = path.to_string();
        // Spanned values carry their location in a field of their own.
        if !path.contains("__serde_saphyr") {
            unknown.push(path);
        }
    };
    let config = serde_saphyr::with_deserializer_from_str(text, |de| {
        let de = serde_ignored::Deserializer::new(de, &mut note);
        serde_path_to_error::deserialize(de).map_err(|e| {
            // A scalar is read into a `Spanned`, whose own field no key names.
            at = e.path().to_string().trim_end_matches(".value").to_owned();
            e.into_inner()
        })
    })
    .map_err(|error| SyntaxError {
        path: crate::config::unknown::bracketed(&at),
        error: Box::new(error),
    })?;
    Ok(Parsed { config, unknown })
}

/// A file that is not YAML, or a value of a shape no field takes, and the
/// YAML path of the value (`sources.statsd.listen`) when serde knows it.
#[derive(Debug)]
pub struct SyntaxError {
    /// Where, as the other problems write paths; empty when unknown.
    pub path: String,
    /// serde-saphyr's message, with line, column and a snippet.
    pub error: Box<serde_saphyr::Error>,
}

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() || self.path == "." {
            write!(f, "{}", self.error)
        } else {
            write!(f, "{}: {}", self.path, self.error)
        }
    }
}

/// Every key the file may hold, at any depth: what a misspelt key is
/// compared with for a "did you mean" (a test keeps it in step with the
/// shapes above).
pub const KEYS: &[&str] = &[
    "admin",
    "alert_margin",
    "auth",
    "calendar",
    "calendars",
    "description",
    "durability",
    "forecast_horizon",
    "goals",
    "holidays",
    "hours",
    "labels",
    "limits",
    "match",
    "max_body_bytes",
    "max_future_skew",
    "max_inflight_bytes",
    "max_label_value_length",
    "max_lines_per_request",
    "max_open_deliveries",
    "max_series",
    "max_tracked_ids",
    "min_deliveries",
    "name",
    "objective",
    "promise",
    "series_windows",
    "slas",
    "sources",
    "target_margin",
    "timezone",
    "token_env",
    "token_file",
    "tokens",
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
        for key in crate::fields::shape_keys(shapes) {
            assert!(KEYS.contains(&key.as_str()), "`{key}` is missing from KEYS");
        }
    }

    /// Every field of every source's shape (`src/ingest/*/config.rs`) is in
    /// its kind's keys, so a misspelt key gets a "did you mean" there too.
    #[test]
    fn source_keys_name_every_field() {
        let ingest = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ingest");
        let known: Vec<&str> = crate::ingest::SOURCE_KEYS
            .iter()
            .copied()
            .flatten()
            .copied()
            .collect();
        let mut files = 0;
        for entry in std::fs::read_dir(ingest).unwrap() {
            let path = entry.unwrap().path().join("config.rs");
            let Ok(source) = std::fs::read_to_string(&path) else {
                continue;
            };
            files += 1;
            for key in crate::fields::shape_keys(&source) {
                assert!(
                    known.contains(&key.as_str()),
                    "`{key}` of {} is in no kind's KEYS",
                    path.display()
                );
            }
        }
        assert!(files >= 4, "found {files} source config files");
    }
}
