//! Configuration: YAML in, a validated [`Config`] out, or every problem at once.

mod auth;
mod calendars;
mod fields;
mod raw;
mod sources;
mod validate;
pub mod web;

use std::path::Path;

pub use crate::sla::Limits;
use crate::sla::Sla;

pub use validate::Problem;

/// The one config version this build reads.
pub const VERSION: u32 = 1;

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// What every input must keep to.
    pub limits: Limits,
    /// Who may write.
    pub auth: crate::auth::Auth,
    /// The SLAs, in file order.
    pub slas: Vec<Sla>,
    /// Sources besides HTTP push.
    pub sources: Sources,
}

/// Sources beyond HTTP push (which is always on), each off unless configured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sources {
    /// Timers over UDP.
    pub statsd: Option<crate::ingest::statsd::StatsdConfig>,
    /// Followed log files.
    pub log_tail: Vec<crate::ingest::log_tail::LogTailConfig>,
    /// Active checks.
    pub probes: Vec<crate::ingest::probe::ProbeConfig>,
}

/// Why a config file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// It cannot be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// It is not valid YAML, or not of the expected shape.
    #[error("config is not valid YAML for amaze-exporter:\n{0}")]
    Syntax(String),
    /// Every problem, with its path and line.
    #[error("config has {} problem{}:\n{}", .0.len(), if .0.len() == 1 { "" } else { "s" }, Problems(.0))]
    Invalid(Vec<Problem>),
}

struct Problems<'a>(&'a [Problem]);

impl std::fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for p in self.0 {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::parse(&text)
    }

    /// Validates config text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let raw = raw::parse(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        validate::validate(raw).map_err(ConfigError::Invalid)
    }

    /// The catalog of this config's SLAs, limits and tokens.
    pub fn catalog(self) -> crate::sla::Catalog {
        crate::sla::Catalog::with(self.slas, self.limits, self.auth)
    }

    /// The SLA named `name`.
    pub fn sla(&self, name: &str) -> Option<&Sla> {
        self.slas.iter().find(|s| s.name == name)
    }
}
