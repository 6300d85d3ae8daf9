//! Configuration: YAML in, a validated [`Config`] out, or every problem at once.

mod auth;
mod calendars;
mod raw;
mod unknown;
mod validate;
pub mod web;

use std::path::Path;

pub use crate::fields::{Problem, file};
pub use crate::ingest::Sources;
pub use crate::sla::Limits;
use crate::sla::Sla;

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
    /// Sources besides HTTP push, OTLP rules included.
    pub sources: Sources,
}

/// Why a config file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// It cannot be read, or is not a regular file of a config's size.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: file::FileError,
    },
    /// It is not YAML, or a value has a shape no field takes (a list
    /// where a map goes).
    #[error("config cannot be read:\n{0}")]
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
        let text = file::text(path, file::CONFIG_BYTES).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::parse(&text).map_err(|e| match e {
            // serde-saphyr's snippet names the text `<input>`.
            ConfigError::Syntax(m) => {
                ConfigError::Syntax(m.replace("<input>", &path.display().to_string()))
            }
            other => other,
        })
    }

    /// Validates config text: every problem at once, unknown keys included.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let parsed = raw::parse(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        let unknown = unknown::problems(text, &parsed.unknown);
        match validate::validate(parsed.config) {
            Ok(config) if unknown.is_empty() => Ok(config),
            Ok(_) => Err(ConfigError::Invalid(unknown)),
            Err(mut problems) => {
                // Each unknown key among the others, by line.
                for u in unknown {
                    let at = problems
                        .iter()
                        .position(|p| p.line.zip(u.line).is_some_and(|(p, u)| p > u))
                        .unwrap_or(problems.len());
                    problems.insert(at, u);
                }
                Err(ConfigError::Invalid(problems))
            }
        }
    }

    /// The catalog of this config's SLAs, limits and tokens.
    pub fn catalog(self) -> crate::sla::Catalog {
        crate::sla::Catalog::with(self.slas, self.limits, self.auth, self.sources.otlp)
    }

    /// The SLA named `name`.
    pub fn sla(&self, name: &str) -> Option<&Sla> {
        self.slas.iter().find(|s| s.name == name)
    }
}
