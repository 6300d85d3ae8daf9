//! Wires config, recorder, exposition and HTTP together and runs until stopped.

use std::future::Future;
use std::sync::Arc;

use crate::cli::{LogFormat, RunArgs};
use crate::clock::SystemClock;
use crate::config::{Config, ConfigError};
use crate::exposition::SelfMetrics;
use crate::http::{AppState, router};
use crate::ingest::http_push;
use crate::recorder::Recorder;
use crate::sla::Catalog;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("server failed: {0}")]
    Serve(std::io::Error),
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

/// Loads the config, serves until `shutdown` resolves, then drains in-flight requests.
pub async fn run(
    args: RunArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    let config = Config::load(&args.config)?;
    let slas = config.slas.len();
    let catalog = Arc::new(Catalog::new(config));
    let metrics = SelfMetrics::new()?;
    metrics.register_source(http_push::SOURCE, &SelfMetrics::refusal_reasons());
    let state = AppState {
        recorder: Arc::new(Recorder::new(catalog)),
        metrics,
        clock: Arc::new(SystemClock),
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| AppError::Listen {
            addr: args.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(AppError::Serve)?;
    tracing::info!(%addr, config = %args.config.display(), slas, "amaze-exporter listening");
    axum::serve(listener, router(state, &args.telemetry_path))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(AppError::Serve)?;
    tracing::info!("stopped");
    Ok(())
}
