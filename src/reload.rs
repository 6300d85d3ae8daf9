//! Config reloads (SIGHUP and `POST /-/reload`): the file is read and
//! validated again, and only a valid one replaces the running config,
//! through the journal so no batch is applied under a catalog it was not
//! admitted against.

use std::path::PathBuf;
use std::sync::Arc;

use crate::clock::Clock;
use crate::config::{Config, ConfigError};
use crate::exposition::SelfMetrics;
use crate::persist::Journal;

/// Re-reads the config file and switches to it, keeping state (SIGHUP and
/// `POST /-/reload`). An invalid file changes nothing.
pub struct Reloader {
    path: PathBuf,
    journal: Journal,
    metrics: SelfMetrics,
    clock: Arc<dyn Clock>,
}

impl Reloader {
    /// Reloads `path` into `journal`, counting in `metrics`.
    pub fn new(
        path: PathBuf,
        journal: Journal,
        metrics: SelfMetrics,
        clock: Arc<dyn Clock>,
    ) -> Reloader {
        Reloader {
            path,
            journal,
            metrics,
            clock,
        }
    }

    /// Returns the number of SLAs now configured, or every problem found.
    pub async fn reload(&self) -> Result<usize, ReloadError> {
        let path = self.path.clone();
        let loaded = tokio::task::spawn_blocking(move || Config::load(&path))
            .await
            .map_err(|e| ReloadError::Internal(e.to_string()))?;
        let config = match loaded {
            Ok(c) => c,
            Err(e) => {
                self.metrics.reload_ok.set(0);
                tracing::error!(config = %self.path.display(), "reload rejected; the previous config keeps running: {e}");
                return Err(ReloadError::Config(e));
            }
        };
        let slas = config.slas.len();
        self.journal
            .reload(Arc::new(config.catalog()))
            .await
            .map_err(|e| ReloadError::Internal(e.to_string()))?;
        self.metrics.reload_ok.set(1);
        self.metrics
            .reload_time
            .set(self.clock.now() as f64 / 1000.0);
        tracing::info!(config = %self.path.display(), slas, "config reloaded");
        Ok(slas)
    }
}

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file is invalid: every problem, with its path and line.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The file could not be applied (the exporter is stopping).
    #[error("reload failed: {0}")]
    Internal(String),
}
