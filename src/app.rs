//! Wires config, storage, exposition and HTTP together and runs until stopped.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use crate::basic_auth::{self, BasicAuth};
use crate::cli::{LogFormat, RunArgs};
use crate::clock::{Clock, SystemClock};
use crate::config::web::WebConfig;
use crate::config::{Config, ConfigError};
use crate::exposition::SelfMetrics;
use crate::http::{AppState, router};
use crate::ingest::{Shutdown, SourceContext, http_push, log_tail, probe, statsd};
use crate::persist::{self, Journal, Storage, StorageError};
use crate::sla::Catalog;

/// Log bytes after which a snapshot is written whatever the interval.
const SNAPSHOT_LOG_BYTES: u64 = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("server failed: {0}")]
    Serve(std::io::Error),
    #[error(transparent)]
    WebConfig(#[from] crate::config::web::WebConfigError),
}

pub fn init_logging(args: &RunArgs) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(args.log_level.as_str()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Logfmt => builder.with_ansi(false).init(),
    }
}

/// Loads the config, restores state, serves until `shutdown` resolves, then
/// drains in-flight requests and writes a final snapshot.
pub async fn run(
    args: RunArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    let config = Config::load(&args.config)?;
    let web = match &args.web_config {
        Some(path) => WebConfig::load(path)?,
        None => WebConfig::default(),
    };
    let slas = config.slas.len();
    let sources = config.sources.clone();
    let catalog = Arc::new(Catalog::new(config));
    let metrics = SelfMetrics::new()?;
    metrics.register_source(http_push::SOURCE, &SelfMetrics::refusal_reasons());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let options = persist::Options {
        path: args.storage_path.clone(),
        snapshot_interval: args.snapshot_interval,
        snapshot_log_bytes: SNAPSHOT_LOG_BYTES,
    };
    let (storage, recovery) = {
        let (catalog, clock, m) = (catalog.clone(), clock.clone(), metrics.storage.clone());
        tokio::task::spawn_blocking(move || Storage::open(&options, catalog, clock, m))
            .await
            .map_err(|e| AppError::Serve(std::io::Error::other(e)))??
    };
    tracing::info!(
        path = %args.storage_path.display(),
        snapshot = ?recovery.snapshot.as_ref().map(|(p, _, _)| p.display().to_string()),
        snapshot_age_s = recovery.snapshot.as_ref().map(|(_, _, at)| (clock.now() - at) / 1000),
        records = recovery.records,
        deliveries = recovery.deliveries,
        took = ?recovery.duration,
        "state restored"
    );
    metrics.reload_ok.set(1);
    metrics.reload_time.set(clock.now() as f64 / 1000.0);
    let reloader = Arc::new(Reloader {
        path: args.config.clone(),
        journal: storage.journal().clone(),
        metrics: metrics.clone(),
        clock: clock.clone(),
    });
    let (stop_sources, shutdown_sources) = Shutdown::new();
    let context = SourceContext {
        journal: storage.journal().clone(),
        metrics: metrics.clone(),
        clock: clock.clone(),
        shutdown: shutdown_sources,
    };
    let mut running = Vec::new();
    if let Some(config) = sources.statsd {
        let socket = statsd::bind(&config)
            .await
            .map_err(|source| AppError::Listen {
                addr: config.listen,
                source,
            })?;
        metrics.register_source(statsd::SOURCE, &statsd::reasons());
        running.push(tokio::spawn(statsd::run(socket, config, context.clone())));
    }
    if !sources.log_tail.is_empty() {
        let mut reasons = log_tail::reasons();
        reasons.extend(SelfMetrics::refusal_reasons());
        metrics.register_source(log_tail::SOURCE, &reasons);
    }
    if !sources.probes.is_empty() {
        metrics.register_source(probe::SOURCE, &SelfMetrics::refusal_reasons());
    }
    for config in sources.probes {
        running.push(tokio::spawn(probe::run(config, context.clone())));
    }
    for config in sources.log_tail {
        running.push(tokio::spawn(log_tail::run(config, context.clone())));
    }
    let state = AppState {
        journal: storage.journal().clone(),
        metrics,
        clock,
        reloader: reloader.clone(),
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| AppError::Listen {
            addr: args.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(AppError::Serve)?;
    tracing::info!(
        %addr,
        config = %args.config.display(),
        slas,
        tls = web.tls.is_some(),
        basic_auth = !web.users.is_empty(),
        "amaze-exporter listening"
    );
    let hangups = tokio::spawn(crate::shutdown::on_hangup(move || {
        let reloader = reloader.clone();
        async move {
            // Failures are logged and counted inside.
            let _ = reloader.reload().await;
        }
    }));
    let mut app = router(state.clone(), &args.telemetry_path);
    if !web.users.is_empty() {
        let guard = (Arc::new(BasicAuth::new(web.users.clone())), state);
        app = app.layer(axum::middleware::from_fn_with_state(
            guard,
            basic_auth::require,
        ));
    }
    let served = match web.tls {
        Some(tls) => crate::tls::serve(listener, app, tls, shutdown).await,
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    };
    hangups.abort();
    stop_sources.stop();
    for source in running {
        let _ = source.await;
    }
    // Requests and sources are drained; make what they logged durable and snapshot it.
    storage.close().await;
    served.map_err(AppError::Serve)?;
    tracing::info!("stopped");
    Ok(())
}

/// Re-reads the config file and switches to it, keeping state (SIGHUP and
/// `POST /-/reload`). An invalid file changes nothing.
pub struct Reloader {
    path: PathBuf,
    journal: Journal,
    metrics: SelfMetrics,
    clock: Arc<dyn Clock>,
}

impl Reloader {
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
            .reload(Arc::new(Catalog::new(config)))
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

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("reload failed: {0}")]
    Internal(String),
}
