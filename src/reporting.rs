//! `amaze-exporter report`: a month's SLA report as Markdown, CSV or JSON,
//! from a running exporter or from a state directory no exporter is using.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::exposition::monthly::{self, Month};
use crate::persist::Offline;

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// A Markdown document: a table of every SLA, then each SLA's worst days.
    Markdown,
    /// One row per SLA.
    Csv,
    /// The report as `GET /api/v1/report` answers it.
    Json,
}

impl ReportFormat {
    fn as_str(self) -> &'static str {
        match self {
            ReportFormat::Markdown => "markdown",
            ReportFormat::Csv => "csv",
            ReportFormat::Json => "json",
        }
    }
}

/// Where the figures come from.
#[derive(Debug, Clone)]
pub enum ReportSource {
    /// A running exporter's base URL.
    Exporter(String),
    /// A state directory and the config it was written under.
    State {
        /// `--storage.path`.
        path: PathBuf,
        /// `--config.file`.
        config: PathBuf,
    },
}

/// Why no report was made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The config is invalid (exit 2).
    #[error("{0}")]
    Config(String),
    /// The exporter or the state directory cannot be read.
    #[error("{0}")]
    Source(String),
}

/// The report of `month` in `format`, as text.
pub fn run(
    month: Month,
    format: ReportFormat,
    source: &ReportSource,
) -> Result<String, ReportError> {
    match source {
        ReportSource::Exporter(url) => {
            let url = format!(
                "{}/api/v1/report?month={month}&format={}",
                url.trim_end_matches('/'),
                format.as_str()
            );
            let agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(60)))
                .build()
                .new_agent();
            let mut reply = agent
                .get(&url)
                .call()
                .map_err(|e| ReportError::Source(format!("{url}: {e}")))?;
            let text = reply
                .body_mut()
                .read_to_string()
                .map_err(|e| ReportError::Source(format!("{url}: {e}")))?;
            if !reply.status().is_success() {
                return Err(ReportError::Source(format!(
                    "{url}: HTTP {}: {}",
                    reply.status(),
                    text.trim()
                )));
            }
            Ok(text)
        }
        ReportSource::State { path, config } => {
            let loaded = Config::load(config)
                .map_err(|e| ReportError::Config(format!("{}: {e}", config.display())))?;
            let catalog = Arc::new(loaded.catalog());
            let offline = Offline::open(path, catalog).map_err(|e| {
                ReportError::Source(format!("cannot open the state directory: {e}"))
            })?;
            let report = monthly::report(&offline.recorder(), month, SystemClock.now());
            offline.close();
            Ok(match format {
                ReportFormat::Markdown => monthly::markdown(&report),
                ReportFormat::Csv => monthly::csv(&report),
                ReportFormat::Json => {
                    serde_json::to_string_pretty(&report).unwrap_or_default() + "\n"
                }
            })
        }
    }
}
