//! The HTTP surface: routes, shared state, health endpoints.

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};

use crate::app::{ReloadError, Reloader};
use crate::auth::{Caller, Denied};
use crate::clock::Clock;
use crate::exposition::{self, SelfMetrics};
use crate::ingest::{http_push, open};
use crate::load_shed::{Shedder, shed};
use crate::persist::{Journal, Pending};
use crate::sla::Catalog;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub journal: Journal,
    pub metrics: SelfMetrics,
    pub clock: Arc<dyn Clock>,
    pub reloader: Arc<Reloader>,
}

pub fn router(state: AppState, telemetry_path: &str) -> Router {
    let landing_metrics = telemetry_path.to_owned();
    // Taken from the config at start; a reload does not change them.
    let limits = state.journal.recorder().catalog().limits.clone();
    let shedder = Shedder::new(
        limits.max_inflight_bytes,
        limits.max_body_bytes,
        state.metrics.clone(),
    );
    // Writes: bodies bounded one by one and together.
    let write = |route: MethodRouter<AppState>| {
        route
            .layer(DefaultBodyLimit::max(limits.max_body_bytes))
            .layer(axum::middleware::from_fn_with_state(shedder.clone(), shed))
    };
    Router::new()
        .route(
            "/",
            get(move |State(app): State<AppState>| landing(app, landing_metrics)),
        )
        .route(telemetry_path, get(metrics))
        .route("/-/healthy", get(|| async { "Healthy\n" }))
        .route("/-/ready", get(|| async { "Ready\n" }))
        .route("/-/reload", post(reload).put(reload))
        .route("/api/v1/deliveries", write(post(http_push::handle)))
        .route("/api/v1/deliveries/start", write(post(open::start)))
        .route("/api/v1/deliveries/pause", write(post(open::pause)))
        .route("/api/v1/deliveries/resume", write(post(open::resume)))
        .route("/api/v1/deliveries/finish", write(post(open::finish)))
        .route("/api/v1/deliveries/events", write(post(open::many)))
        .route("/api/v1/open", get(open::list))
        .route("/api/v1/slas", get(slas))
        .with_state(state)
}

async fn landing(app: AppState, telemetry_path: String) -> Response {
    let now = app.clock.now();
    let recorder = app.journal.recorder();
    let page = tokio::task::spawn_blocking(move || {
        exposition::landing::render(&recorder, &telemetry_path, now)
    })
    .await;
    match page {
        Ok(html) => axum::response::Html(html).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("landing page failed: {e}\n"),
        )
            .into_response(),
    }
}

/// The caller of a write, by its `Authorization` header and the tokens of
/// `catalog`'s config.
pub fn caller(catalog: &Catalog, headers: &HeaderMap) -> Result<Caller, Denied> {
    catalog
        .auth
        .caller(headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()))
}

/// Checks that `caller` may write every SLA `pending` names.
pub fn authorize(caller: &Caller, pending: &Pending) -> Result<(), Denied> {
    pending
        .sla_names()
        .into_iter()
        .try_for_each(|sla| caller.may_write(sla))
}

/// 401 (with a `WWW-Authenticate` challenge) or 403, counted under `source`.
pub fn denied(metrics: &SelfMetrics, source: &str, d: &Denied) -> Response {
    metrics.rejected(source, d.reason(), 1);
    let status = StatusCode::from_u16(d.status()).unwrap_or(StatusCode::FORBIDDEN);
    let mut r = (
        status,
        axum::Json(serde_json::json!({ "error": d.to_string() })),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"amaze-exporter\""),
        );
    }
    r
}

/// Every SLA's promise, figures and open deliveries as JSON.
async fn slas(State(app): State<AppState>) -> Response {
    let now = app.clock.now();
    let recorder = app.journal.recorder();
    match tokio::task::spawn_blocking(move || exposition::summary::slas(&recorder, now)).await {
        Ok(slas) => axum::Json(serde_json::json!({ "slas": slas })).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

/// Reloads the config file; 400 with every problem when it is invalid.
/// With tokens configured, only an admin token may.
async fn reload(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let catalog = app.journal.recorder().catalog().clone();
    if let Err(d) = caller(&catalog, &headers).and_then(|c| c.may_reload()) {
        return denied(&app.metrics, "reload", &d);
    }
    match app.reloader.reload().await {
        Ok(slas) => format!("config reloaded: {slas} SLAs\n").into_response(),
        Err(ReloadError::Config(e)) => (
            StatusCode::BAD_REQUEST,
            format!("config rejected; the previous config keeps running.\n{e}\n"),
        )
            .into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}

async fn metrics(State(app): State<AppState>) -> Response {
    let now = app.clock.now();
    let recorder = app.journal.recorder();
    // Figures are computed from sketches under per-SLA locks: keep it off the
    // async workers so a large scrape never stalls ingest.
    let rendered =
        tokio::task::spawn_blocking(move || exposition::render(&recorder, &app.metrics, now)).await;
    match rendered {
        Ok(Ok(text)) => ([(header::CONTENT_TYPE, exposition::CONTENT_TYPE)], text).into_response(),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot render metrics: {e}\n"),
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("metrics task failed: {e}\n"),
        )
            .into_response(),
    }
}
