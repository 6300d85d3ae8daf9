//! Wires config, storage, exposition and HTTP together and runs until stopped.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::cli::RunArgs;
use crate::clock::{Clock, SystemClock};
use crate::config::web::WebConfig;
use crate::config::{Config, ConfigError};
use crate::exposition::SelfMetrics;
use crate::http::basic_auth::{self, BasicAuth};
use crate::http::serve::ConnLimits;
use crate::http::{AppState, router};
use crate::ingest::{Shutdown, SourceContext};
use crate::persist::{self, Storage, StorageError};
use crate::reload::Reloader;
use crate::sla::LiveCatalog;
use crate::supervisor::Supervisor;

/// Log bytes after which a snapshot is written whatever the interval.
const SNAPSHOT_LOG_BYTES: u64 = 256 << 20;

/// Why the exporter could not start or keep serving (exit code 1, or 2 for config problems).
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The config file is unreadable or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The state directory cannot be opened or restored.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A listen address is taken or not allowed.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address (or socket path) asked for.
        addr: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A self-metric could not be registered (a bug).
    #[error("cannot register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The HTTP server stopped with an error.
    #[error("server failed: {0}")]
    Serve(std::io::Error),
    /// The log writer died (a bug): nothing more could be recorded.
    #[error(
        "the log writer stopped; restart the exporter (the log holds every acknowledged write)"
    )]
    WriterDied,
    /// The web config (`--web.config.file`) is unreadable or invalid.
    #[error(transparent)]
    WebConfig(#[from] crate::config::web::WebConfigError),
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
    let limits = config.limits.clone();
    let catalog = LiveCatalog::new(Arc::new(config.catalog()));
    let metrics = SelfMetrics::new()?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let storage = open_storage(&args, catalog.clone(), &metrics, clock.clone()).await?;
    let (stop_sources, shutdown_sources) = Shutdown::new();
    let ingest = SourceContext::new(
        storage.journal().clone(),
        catalog,
        metrics.clone(),
        clock.clone(),
        shutdown_sources,
    );
    let supervisor = Supervisor::start(sources, ingest.clone())
        .await
        .map_err(|e| AppError::Listen {
            addr: e.addr,
            source: e.source,
        })?;
    let otlp_grpc = spawn_otlp_grpc(args.otlp_grpc.as_deref(), &ingest).await?;
    let reloader = Arc::new(Reloader::new(
        args.config.clone(),
        storage.journal().clone(),
        Arc::new(supervisor),
        limits,
        metrics,
        clock,
    ));
    let listener = TcpListener::bind(args.listen.as_str())
        .await
        .map_err(|source| AppError::Listen {
            addr: args.listen.to_string(),
            source,
        })?;
    let addr = listener.local_addr().map_err(AppError::Serve)?;
    // Bound and logged before the main listener is announced, so whoever
    // waits for that line finds this one too.
    let otlp_http_listener = bind(args.otlp_http.as_deref(), "OTLP/HTTP listening").await?;
    let hangups = tokio::spawn(reload_on_hangup(reloader.clone()));
    tracing::info!(
        %addr,
        config = %args.config.display(),
        slas,
        tls = web.tls.is_some(),
        basic_auth = !web.users.is_empty(),
        "amaze-exporter listening"
    );

    let state = AppState {
        ingest,
        reloader: reloader.clone(),
    };
    // A dead log writer ends serving too: the exporter exits 1 so that its
    // service manager restarts it, and the restart replays the log.
    let storage = Arc::new(storage);
    let shutdown = {
        let storage = storage.clone();
        async move {
            tokio::select! {
                () = shutdown => {}
                () = storage.writer_died() => {}
            }
        }
    };
    let otlp_http = otlp_http_listener.map(|l| spawn_otlp_http(l, &state, &web, &args));
    let routes = router(state.clone(), &args.telemetry_path, args.read_timeout);
    let served = serve(listener, routes, state, web, args.conn_limits(), shutdown).await;
    hangups.abort();
    stop_sources.stop();
    reloader.stop_sources().await;
    if let Some(http) = otlp_http {
        let _ = http.await;
    }
    if let Some(grpc) = otlp_grpc {
        // Calls in flight finish before the log is closed.
        let _ = grpc.await;
    }
    // Requests and sources are drained; make what they logged durable and snapshot it.
    storage.close().await;
    served.map_err(AppError::Serve)?;
    if !storage.journal().alive() {
        return Err(AppError::WriterDied);
    }
    tracing::info!("stopped");
    Ok(())
}

/// Serves OTLP/gRPC on `addr` when asked for, until the sources stop.
async fn spawn_otlp_grpc(
    addr: Option<&str>,
    ingest: &SourceContext,
) -> Result<Option<JoinHandle<()>>, AppError> {
    let Some(listener) = bind(addr, "OTLP/gRPC listening").await? else {
        return Ok(None);
    };
    let ctx = ingest.clone();
    let stop = ingest.shutdown.clone();
    Ok(Some(tokio::spawn(async move {
        if let Err(e) = crate::ingest::otlp::grpc::serve(listener, ctx, stop).await {
            tracing::error!(error = %e, "OTLP/gRPC stopped");
        }
    })))
}

/// Serves the OTLP/HTTP route alone on `listener`, with the web config and
/// tokens of the main listener, until the sources stop.
fn spawn_otlp_http(
    listener: TcpListener,
    state: &AppState,
    web: &WebConfig,
    args: &RunArgs,
) -> JoinHandle<()> {
    let routes = crate::http::otlp_router(state.clone(), args.read_timeout);
    let mut stop = state.ingest.shutdown.clone();
    let served = serve(
        listener,
        routes,
        state.clone(),
        web.clone(),
        args.conn_limits(),
        async move { stop.wait().await },
    );
    tokio::spawn(async move {
        if let Err(e) = served.await {
            tracing::error!(error = %e, "OTLP/HTTP stopped");
        }
    })
}

/// Reloads the config on every SIGHUP. Listens from the call on, not from
/// the first poll (`on_hangup` registers eagerly), so a SIGHUP sent the
/// moment the exporter says it listens is never the default action.
fn reload_on_hangup(reloader: Arc<Reloader>) -> impl Future<Output = ()> {
    crate::shutdown::on_hangup(move || {
        let reloader = reloader.clone();
        async move {
            // Failures are logged and counted inside.
            let _ = reloader.reload().await;
        }
    })
}

/// Binds an optional listener (`None` when not asked for) and logs its
/// address under `message`.
async fn bind(addr: Option<&str>, message: &'static str) -> Result<Option<TcpListener>, AppError> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| AppError::Listen {
            addr: addr.to_owned(),
            source,
        })?;
    let local = listener.local_addr().map_err(AppError::Serve)?;
    tracing::info!(addr = %local, "{message}");
    Ok(Some(listener))
}

/// Opens the state directory, restoring what it holds, off the async workers.
async fn open_storage(
    args: &RunArgs,
    catalog: LiveCatalog,
    metrics: &SelfMetrics,
    clock: Arc<dyn Clock>,
) -> Result<Storage, AppError> {
    let options = persist::Options {
        path: args.storage_path.clone(),
        snapshot_interval: args.snapshot_interval,
        snapshot_log_bytes: SNAPSHOT_LOG_BYTES,
    };
    let (storage, recovery) = {
        let (clock, m) = (clock.clone(), metrics.storage.clone());
        tokio::task::spawn_blocking(move || Storage::open(&options, catalog, clock, m))
            .await
            .map_err(|e| AppError::Serve(std::io::Error::other(e)))??
    };
    tracing::info!(
        path = %args.storage_path.display(),
        snapshot = %recovery
            .snapshot
            .as_ref()
            .map_or_else(|| "none".to_owned(), |s| s.path.display().to_string()),
        snapshot_age_s = recovery
            .snapshot
            .as_ref()
            .map(|s| (clock.now() - s.taken_at) / 1000),
        records = recovery.records,
        deliveries = recovery.deliveries,
        took = ?recovery.duration,
        "state restored"
    );
    metrics.reload_ok.set(1);
    metrics.reload_time.set(clock.now() as f64 / 1000.0);
    Ok(storage)
}

/// Serves `app` on `listener`, over TLS and behind basic auth as the web
/// config asks, until `shutdown` resolves.
async fn serve(
    listener: TcpListener,
    mut app: axum::Router,
    state: AppState,
    web: WebConfig,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let metrics = state.ingest.metrics().http.clone();
    if !web.users.is_empty() {
        let guard = (Arc::new(BasicAuth::new(web.users.clone())), state);
        app = app.layer(axum::middleware::from_fn_with_state(
            guard,
            basic_auth::require,
        ));
    }
    crate::http::serve::serve(listener, app, web.tls, limits, metrics, shutdown).await
}
