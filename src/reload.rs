//! Config reloads (SIGHUP and `POST /-/reload`): the file is read and
//! validated again, and only a valid one replaces the running config:
//! SLAs, limits and tokens through the journal, so no batch is applied
//! under a catalog it was not admitted against, then the sources.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::clock::Clock;
use crate::config::{Config, ConfigError};
use crate::exposition::SelfMetrics;
use crate::ingest::Changes;
use crate::persist::Journal;
use crate::sla::Limits;
use crate::supervisor::Supervisor;

/// Re-reads the config file and switches to it, keeping state (SIGHUP and
/// `POST /-/reload`). An invalid file changes nothing.
pub struct Reloader {
    path: PathBuf,
    journal: Journal,
    supervisor: Arc<Supervisor>,
    /// The limits the HTTP server was built with; it keeps them.
    started: Limits,
    metrics: SelfMetrics,
    clock: Arc<dyn Clock>,
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// SLAs now configured.
    pub slas: usize,
    /// What happened to the sources.
    pub sources: Changes,
    /// Settings that changed but apply only after a restart.
    pub restart_needed: Vec<String>,
}

impl fmt::Display for Reloaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "config reloaded: {} SLAs", self.slas)?;
        writeln!(f, "{}", self.sources)?;
        if !self.restart_needed.is_empty() {
            writeln!(
                f,
                "restart needed to apply: {}",
                self.restart_needed.join(", ")
            )?;
        }
        Ok(())
    }
}

impl Reloader {
    /// Reloads `path` into `journal` and `supervisor`, counting in
    /// `metrics`; `started` are the limits the exporter started with.
    pub fn new(
        path: PathBuf,
        journal: Journal,
        supervisor: Arc<Supervisor>,
        started: Limits,
        metrics: SelfMetrics,
        clock: Arc<dyn Clock>,
    ) -> Reloader {
        Reloader {
            path,
            journal,
            supervisor,
            started,
            metrics,
            clock,
        }
    }

    /// Stops the sources (the exporter is stopping).
    pub async fn stop_sources(&self) {
        self.supervisor.stop().await;
    }

    /// Says what changed, or every problem found.
    pub async fn reload(&self) -> Result<Reloaded, ReloadError> {
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
        let restart_needed = restart_needed(&self.started, &config.limits);
        let sources = config.sources.clone();
        if let Err(e) = self.journal.reload(Arc::new(config.catalog())).await {
            // The state before the change could not be snapshotted (or the
            // exporter is stopping): nothing changed.
            self.metrics.reload_ok.set(0);
            tracing::error!(config = %self.path.display(), error = %e, "reload not applied; the previous config keeps running");
            return Err(ReloadError::Internal(format!(
                "{e}; the previous config keeps running"
            )));
        }
        let sources = self.supervisor.apply(sources).await;
        // A source that could not be changed (an address that would not
        // bind) leaves the file and what runs apart: not a success.
        self.metrics
            .reload_ok
            .set(i64::from(sources.failed.is_empty()));
        self.metrics
            .reload_time
            .set(self.clock.now() as f64 / 1000.0);
        tracing::info!(
            config = %self.path.display(),
            slas,
            %sources,
            restart_needed = %restart_needed.join(", "),
            "config reloaded"
        );
        for failed in &sources.failed {
            tracing::error!(failed, "a source could not be changed on reload");
        }
        Ok(Reloaded {
            slas,
            sources,
            restart_needed,
        })
    }
}

/// The settings of `now` that differ from `started` and that the HTTP
/// server took at start: request bodies are bounded as they were then.
fn restart_needed(started: &Limits, now: &Limits) -> Vec<String> {
    let mut out = Vec::new();
    if started.max_body_bytes != now.max_body_bytes {
        out.push("limits.max_body_bytes".to_owned());
    }
    if started.max_inflight_bytes != now.max_inflight_bytes {
        out.push("limits.max_inflight_bytes".to_owned());
    }
    out
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
